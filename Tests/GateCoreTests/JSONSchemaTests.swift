import GateCore
import Testing

/// The violations as `path: message` lines, in the order the validator reports them.
private func violations(_ value: JSONValue, _ schema: JSONValue) -> [String] {
    JSONSchema(schema).validate(value).map(\.description)
}

private func paths(_ value: JSONValue, _ schema: JSONValue) -> [String] {
    JSONSchema(schema).validate(value).map(\.path)
}

private let writeFileSchema: JSONValue = [
    "type": "object",
    "properties": [
        "path": ["type": "string", "minLength": 1],
        "text": ["type": "string"],
        "mode": ["enum": ["overwrite", "append"]],
    ],
    "required": ["path", "text"],
    "additionalProperties": false,
]

@Suite("JSONSchema")
struct JSONSchemaTests {
    @Test("A valid document has no violations")
    func validDocument() {
        #expect(violations(["path": "a.txt", "text": "hi", "mode": "append"], writeFileSchema).isEmpty)
        #expect(violations(["path": "a.txt", "text": ""], writeFileSchema).isEmpty)
    }

    // MARK: type

    @Test(
        "Type mismatches name the expected and the actual type",
        arguments: [
            ("string", JSONValue.int(5), "expected string, got integer"),
            ("integer", .string("5"), "expected integer, got string"),
            ("integer", .double(2.5), "expected integer, got number"),
            ("number", .bool(true), "expected number, got boolean"),
            ("boolean", .int(1), "expected boolean, got integer"),
            ("null", .object([:]), "expected null, got object"),
            ("object", .array([]), "expected object, got array"),
            ("array", .null, "expected array, got null"),
        ])
    func typeMismatch(type: String, value: JSONValue, message: String) {
        #expect(violations(value, ["type": .string(type)]) == [message])
    }

    @Test(
        "Type matches",
        arguments: [
            ("string", JSONValue.string("")), ("integer", .int(-3)), ("integer", .double(2.0)),
            ("number", .int(2)), ("number", .double(2.5)), ("boolean", .bool(false)), ("null", .null),
            ("object", .object([:])), ("array", .array([])),
        ])
    func typeMatches(type: String, value: JSONValue) {
        #expect(violations(value, ["type": .string(type)]).isEmpty)
    }

    @Test("Union types accept any of their members")
    func unionTypes() {
        let schema: JSONValue = ["type": ["string", "null"]]
        #expect(violations("x", schema).isEmpty)
        #expect(violations(nil, schema).isEmpty)
        #expect(violations(1, schema) == ["expected string or null, got integer"])
        #expect(violations(["a": 1], ["type": ["integer", "object"]]).isEmpty)
    }

    @Test("A type mismatch stops the other checks of that value")
    func typeMismatchStops() {
        let schema: JSONValue = ["type": "string", "enum": ["a"], "minLength": 3]
        #expect(violations(5, schema) == ["expected string, got integer"])
    }

    // MARK: objects

    @Test("Missing required properties are reported at their own path")
    func required() {
        #expect(violations([:], writeFileSchema) == ["/path: is required", "/text: is required"])
        #expect(violations(["text": "x"], writeFileSchema) == ["/path: is required"])
        #expect(violations(["path": nil, "text": "x"], writeFileSchema) == ["/path: expected string, got null"])
    }

    @Test("additionalProperties: false rejects unknown properties")
    func additionalPropertiesFalse() {
        #expect(
            violations(["path": "a", "text": "b", "zeta": 1, "extra": true], writeFileSchema)
                == ["/extra: is not an allowed property", "/zeta: is not an allowed property"])
    }

    @Test("additionalProperties as a schema validates the other properties; absent, it allows them")
    func additionalPropertiesSchema() {
        let schema: JSONValue = [
            "properties": ["name": ["type": "string"]], "additionalProperties": ["type": "integer"],
        ]
        #expect(violations(["name": "n", "count": 2], schema).isEmpty)
        #expect(violations(["name": "n", "count": "2"], schema) == ["/count: expected integer, got string"])
        #expect(violations(["name": "n", "anything": [1]], ["properties": ["name": ["type": "string"]]]).isEmpty)
        #expect(violations(["x": 1], ["additionalProperties": true]).isEmpty)
    }

    @Test("Object keywords are ignored for values that are not objects")
    func objectKeywordsOnlyApplyToObjects() {
        #expect(violations("text", ["required": ["a"], "additionalProperties": false]).isEmpty)
    }

    // MARK: paths

    @Test("Nested objects and arrays are reported with JSON Pointers")
    func nestedPaths() {
        let schema: JSONValue = [
            "type": "object",
            "properties": [
                "items": [
                    "type": "array",
                    "items": [
                        "type": "object",
                        "properties": [
                            "id": ["type": "integer"],
                            "tags": ["type": "array", "items": ["type": "string"]],
                        ],
                        "required": ["id"],
                    ],
                ],
                "owner": ["type": "object", "properties": ["name": ["type": "string"]]],
            ],
        ]
        let value: JSONValue = [
            "items": [
                ["id": 1, "tags": ["a", "b"]],
                ["tags": ["c", 7]],
                ["id": "3"],
            ],
            "owner": ["name": false],
        ]
        #expect(
            violations(value, schema) == [
                "/items/1/id: is required",
                "/items/1/tags/1: expected string, got integer",
                "/items/2/id: expected integer, got string",
                "/owner/name: expected string, got boolean",
            ])
    }

    @Test("Property names are escaped in pointers: ~ as ~0, / as ~1")
    func pointerEscaping() {
        let schema: JSONValue = ["properties": ["a/b": ["type": "string"], "m~n": ["type": "string"]]]
        #expect(paths(["a/b": 1, "m~n": 2], schema) == ["/a~1b", "/m~0n"])
        #expect(paths([:], ["required": ["x/y~z"]]) == ["/x~1y~0z"])
    }

    @Test("Root violations have an empty path and a bare description")
    func rootPath() throws {
        let violation = try #require(JSONSchema(["type": "object"]).validate(1).first)
        #expect(violation.path == "")
        #expect(violation.description == "expected object, got integer")
    }

    // MARK: enum and const

    @Test("enum compares JSON values, whatever their key order or number form")
    func enumKeyword() {
        let schema: JSONValue = ["enum": ["a", 1, ["k": [1, 2], "j": nil]]]
        #expect(violations("a", schema).isEmpty)
        #expect(violations(1.0, schema).isEmpty)
        #expect(violations(["j": nil, "k": [1, 2]], schema).isEmpty)
        #expect(violations("b", schema) == [#"must be one of "a", 1, {"j":null,"k":[1,2]}"#])
        #expect(violations("1", schema).count == 1)
        #expect(violations(["k": [2, 1], "j": nil], schema).count == 1)
    }

    @Test("const")
    func constKeyword() {
        #expect(violations("v1", ["const": "v1"]).isEmpty)
        #expect(violations("v2", ["const": "v1"]) == [#"must be "v1""#])
        #expect(violations(false, ["const": nil]) == ["must be null"])
        #expect(violations(3.0, ["const": 3]).isEmpty)
    }

    // MARK: strings

    @Test(
        "minLength and maxLength are inclusive",
        arguments: [("ab", false), ("abc", true), ("abcde", true), ("abcdef", false), ("", false)])
    func stringLength(text: String, valid: Bool) {
        let schema: JSONValue = ["type": "string", "minLength": 3, "maxLength": 5]
        #expect(violations(.string(text), schema).isEmpty == valid)
    }

    @Test("Length messages")
    func stringLengthMessages() {
        #expect(violations("a", ["minLength": 2]) == ["must be at least 2 characters"])
        #expect(violations("abc", ["maxLength": 2]) == ["must be at most 2 characters"])
    }

    @Test("String length counts Unicode code points, as RFC 8259 characters")
    func stringLengthCountsCodePoints() {
        // One code point each, although UTF-16 needs two units for the emoji.
        #expect(violations("😀", ["maxLength": 1]).isEmpty)
        #expect(violations("é", ["maxLength": 1]).isEmpty)
        // "e" + COMBINING ACUTE ACCENT: one grapheme, two code points.
        #expect(violations("e\u{301}", ["minLength": 2]).isEmpty)
        #expect(violations("e\u{301}", ["maxLength": 1]) == ["must be at most 1 characters"])
        // 👍🏽 is the emoji and a skin-tone modifier: two code points.
        #expect(violations("👍🏽", ["maxLength": 1]).count == 1)
    }

    @Test(
        "pattern searches anywhere unless anchored",
        arguments: [
            ("^[a-z]+$", "abc", true), ("^[a-z]+$", "abc1", false), ("b", "abc", true), ("^b", "abc", false),
            (#"\d{3}"#, "ab123", true), (#"\.md$"#, "notes.md", true), (#"\.md$"#, "notes.mdx", false),
            ("^$", "", true),
        ])
    func pattern(pattern: String, text: String, valid: Bool) {
        let found = violations(.string(text), ["pattern": .string(pattern)])
        #expect(found == (valid ? [] : ["must match \(pattern)"]))
    }

    @Test("String keywords are ignored for other types")
    func stringKeywordsOnlyApplyToStrings() {
        #expect(violations(12_345, ["maxLength": 2, "pattern": "^x$"]).isEmpty)
    }

    // MARK: numbers

    @Test(
        "minimum and maximum are inclusive, for integers and doubles",
        arguments: [
            (JSONValue.int(0), false), (.double(0.5), false), (.int(1), true), (.double(1.0), true),
            (.double(7.25), true), (.int(10), true), (.double(10.5), false), (.int(11), false),
        ])
    func numberRange(value: JSONValue, valid: Bool) {
        #expect(violations(value, ["minimum": 1, "maximum": 10]).isEmpty == valid)
    }

    @Test("Range messages")
    func numberRangeMessages() {
        #expect(violations(0, ["minimum": 1]) == ["must be ≥ 1"])
        #expect(violations(3, ["maximum": 2.5]) == ["must be ≤ 2.5"])
        #expect(violations(-1, ["minimum": -0.5, "maximum": -2]) == ["must be ≥ -0.5", "must be ≤ -2"])
        #expect(violations("3", ["minimum": 5]).isEmpty)
    }

    // MARK: arrays

    @Test("minItems and maxItems")
    func arraySize() {
        let schema: JSONValue = ["type": "array", "minItems": 1, "maxItems": 2]
        #expect(violations([], schema) == ["must have at least 1 items"])
        #expect(violations([1], schema).isEmpty)
        #expect(violations([1, 2], schema).isEmpty)
        #expect(violations([1, 2, 3], schema) == ["must have at most 2 items"])
    }

    // MARK: boolean and empty schemas

    @Test(
        "true and {} accept everything; false rejects everything",
        arguments: [
            JSONValue.null, .bool(false), .int(0), .double(0.5), .string(""), .array([1]), .object(["a": 1]),
        ])
    func booleanSchemas(value: JSONValue) {
        #expect(violations(value, true).isEmpty)
        #expect(violations(value, [:]).isEmpty)
        #expect(violations(value, false) == ["no value is allowed here"])
    }

    @Test("A false subschema forbids a property; a true one allows anything there")
    func booleanSubschemas() {
        let schema: JSONValue = ["properties": ["secret": false, "free": true], "additionalProperties": false]
        #expect(violations(["free": [1, "x"]], schema).isEmpty)
        #expect(violations(["secret": "x"], schema) == ["/secret: no value is allowed here"])
        #expect(
            violations([true, 1], ["items": false]) == ["/0: no value is allowed here", "/1: no value is allowed here"])
    }

    @Test("Unknown keywords are ignored")
    func unknownKeywords() {
        #expect(violations("x", ["type": "string", "format": "email", "x-ui": ["hidden": true]]).isEmpty)
    }

    @Test("All violations are collected, not only the first")
    func collectsAll() {
        let found = violations(["path": "", "mode": "replace", "extra": 1], writeFileSchema)
        #expect(
            found == [
                "/text: is required",
                "/extra: is not an allowed property",
                #"/mode: must be one of "overwrite", "append""#,
                "/path: must be at least 1 characters",
            ])
    }
}
