import Foundation
import GateCore
import Testing

@Suite("Canonical JSON")
struct CanonicalJSONTests {
    // MARK: Key order

    @Test("Object keys are sorted")
    func sortsKeys() {
        let value: JSONValue = ["b": 1, "a": 2, "c": 3]
        #expect(value.canonicalString == #"{"a":2,"b":1,"c":3}"#)
    }

    @Test("Keys sort by code unit: uppercase before underscore before lowercase, prefixes first")
    func sortsByCodeUnit() {
        let value: JSONValue = ["ab": 1, "a": 2, "_": 3, "B": 4, "aa": 5, "": 6]
        #expect(value.canonicalString == #"{"":6,"B":4,"_":3,"a":2,"aa":5,"ab":1}"#)
    }

    @Test("Non-ASCII keys sort by UTF-16 code units, as in RFC 8785 §3.2.3")
    func sortsNonASCIIKeysByUTF16() {
        // The example of RFC 8785: U+1F600 is the surrogate pair D83D DE00, which sorts *before* U+FB33
        // in UTF-16 although its scalar value is larger.
        let value: JSONValue = [
            "\u{20AC}": "Euro Sign",
            "\r": "Carriage Return",
            "\u{FB33}": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\u{1F600}": "Emoji: Grinning Face",
            "\u{80}": "Control",
            "\u{F6}": "Latin Small Letter O With Diaeresis",
        ]
        let expected =
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\","
            + "\"\u{F6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20AC}\":\"Euro Sign\","
            + "\"\u{1F600}\":\"Emoji: Grinning Face\",\"\u{FB33}\":\"Hebrew Letter Dalet With Dagesh\"}"
        // Compare bytes: String's == would also accept a differently normalized output.
        #expect(Array(value.canonicalString.utf8) == Array(expected.utf8))
    }

    @Test("A supplementary-plane key sorts before U+FF61 (UTF-16), not after it (scalar order)")
    func surrogatePairsSortBeforeHighBMP() {
        let value: JSONValue = ["\u{FF61}": 1, "\u{1F600}": 2]
        #expect(Array(value.canonicalString.utf8) == Array("{\"\u{1F600}\":2,\"\u{FF61}\":1}".utf8))
    }

    /// The writer compares keys on their UTF-8 bytes with a correction for the one range
    /// where that order differs from UTF-16's; check it against UTF-16 itself over keys
    /// built from the code points at every boundary.
    @Test("Key order equals UTF-16 code-unit order for keys mixing every UTF-8 length")
    func keyOrderMatchesUTF16() {
        let scalars: [Unicode.Scalar] = [
            "a", "b", "\u{7F}", "\u{80}", "\u{7FF}", "\u{800}", "\u{D7FF}", "\u{E000}", "\u{FB33}", "\u{FFFF}",
            "\u{10000}", "\u{1F600}", "\u{10FFFF}",
        ]
        var generator = SystemRandomNumberGenerator()
        var keys: Set<String> = []
        while keys.count < 300 {
            var key = ""
            for _ in 0..<Int.random(in: 0...3, using: &generator) {
                key.unicodeScalars.append(scalars.randomElement(using: &generator)!)
            }
            keys.insert(key)
        }
        let members = Dictionary(uniqueKeysWithValues: keys.map { ($0, JSONValue.int(1)) })
        let expected = keys.sorted { $0.utf16.lexicographicallyPrecedes($1.utf16) }
        let text = "{" + expected.map { JSONValue.string($0).canonicalString + ":1" }.joined(separator: ",") + "}"
        #expect(JSONValue.object(members).canonicalString == text)
    }

    @Test("Nested objects are sorted at every depth; array order is kept")
    func nestedStructures() {
        let value: JSONValue = [
            "z": ["y": [3, ["b": true, "a": nil], "q"], "x": "s"],
            "a": [],
            "m": [:],
            "k": [[2, 1], ["d": ["c": 0]]],
        ]
        #expect(
            value.canonicalString
                == #"{"a":[],"k":[[2,1],{"d":{"c":0}}],"m":{},"z":{"x":"s","y":[3,{"a":null,"b":true},"q"]}}"#)
    }

    @Test("Scalars at the top level")
    func topLevelScalars() {
        #expect(JSONValue.null.canonicalString == "null")
        #expect(JSONValue.bool(true).canonicalString == "true")
        #expect(JSONValue.bool(false).canonicalString == "false")
        #expect(JSONValue.string("").canonicalString == #""""#)
        #expect(JSONValue.array([]).canonicalString == "[]")
        #expect(JSONValue.object([:]).canonicalString == "{}")
    }

    // MARK: Strings

    @Test(
        "String escapes",
        arguments: [
            ("say \"hi\"", #""say \"hi\"""#),
            ("back\\slash", #""back\\slash""#),
            ("line\nfeed", #""line\nfeed""#),
            ("carriage\rreturn", #""carriage\rreturn""#),
            ("tab\there", #""tab\there""#),
            ("back\u{08}space", #""back\bspace""#),
            ("form\u{0C}feed", #""form\ffeed""#),
            ("nul\u{00}", #""nul\u0000""#),
            ("bell\u{07}", #""bell\u0007""#),
            ("vt\u{0B}", #""vt\u000b""#),
            ("esc\u{1B}", #""esc\u001b""#),
            ("unit sep\u{1F}", #""unit sep\u001f""#),
            ("delete\u{7F}", "\"delete\u{7F}\""),
            ("a/b", #""a/b""#),
            ("<script>&'", #""<script>&'""#),
        ])
    func escapes(text: String, expected: String) {
        #expect(JSONValue.string(text).canonicalString == expected)
    }

    @Test("Keys are escaped like values")
    func escapedKeys() {
        let value: JSONValue = ["a\"b": 1, "c\nd": 2, "e\u{01}": 3]
        #expect(value.canonicalString == #"{"a\"b":1,"c\nd":2,"e\u0001":3}"#)
    }

    @Test("Non-ASCII text is written literally, never as \\u escapes")
    func nonASCIIIsLiteral() {
        let text = "héllo wörld 世界 😀 \u{2028} e\u{301}"
        let canonical = JSONValue.string(text).canonicalString
        #expect(canonical == "\"" + text + "\"")
        #expect(!canonical.contains("\\u"))
        #expect(Array(canonical.utf8) == [UInt8(ascii: "\"")] + Array(text.utf8) + [UInt8(ascii: "\"")])
    }

    // MARK: Numbers

    @Test(
        "Numbers",
        arguments: [
            (JSONValue.double(1.0), "1"),
            (.double(1.5), "1.5"),
            (.double(-0.25), "-0.25"),
            (.double(0.1), "0.1"),
            (.double(-0.0), "0"),
            (.double(0), "0"),
            (.double(-3), "-3"),
            (.double(100), "100"),
            (.double(1e15), "1000000000000000"),
            (.double(9_007_199_254_740_992), "9007199254740992"),
            (.double(1e16), "10000000000000000"),
            (.double(123_456_789.125), "123456789.125"),
            (.int(0), "0"),
            (.int(-42), "-42"),
            (.int(9_007_199_254_740_993), "9007199254740993"),
            (.int(Int64.max), "9223372036854775807"),
            (.int(Int64.min), "-9223372036854775808"),
            (.double(.nan), "null"),
            (.double(.infinity), "null"),
            (.double(-.infinity), "null"),
        ])
    func numbers(value: JSONValue, expected: String) {
        #expect(value.canonicalString == expected)
    }

    @Test(
        "An integer and the same integral double have one canonical form",
        arguments: [
            Int64(0), 7, -7, 1_000_000, 9_007_199_254_740_992, 10_000_000_000_000_000, -9_223_372_036_854_775_808,
        ])
    func integralDoublesMatchIntegers(number: Int64) {
        #expect(JSONValue.double(Double(number)).canonicalString == JSONValue.int(number).canonicalString)
        #expect(JSONValue.double(Double(number)).canonicalHash == JSONValue.int(number).canonicalHash)
    }

    @Test(
        "Canonical numbers parse back to the same value and the same text",
        arguments: [
            0.1, -0.25, 2.5e-3, 1e-7, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 1e300, 1e21, 0x1p63, -0x1p63,
        ])
    func numbersRoundTrip(number: Double) throws {
        let text = JSONValue.double(number).canonicalString
        let parsed = try JSONValue.parse(text)
        #expect(parsed.doubleValue == number)
        #expect(parsed.canonicalString == text)
    }

    // MARK: Hash

    @Test("Known SHA-256 vector: {\"b\":1,\"a\":\"x\"} hashes as the text {\"a\":\"x\",\"b\":1}")
    func knownHashVector() throws {
        // printf '%s' '{"a":"x","b":1}' | sha256sum
        let expected = "cdab067e9f3beb32d1252cfd63e492592fecbf591b0d08cadb24bb17f3864246"
        let value: JSONValue = ["b": 1, "a": "x"]
        #expect(value.canonicalString == #"{"a":"x","b":1}"#)
        #expect(value.canonicalHash == expected)
        #expect(try JSONValue.parse(#"{ "b" : 1.0 , "a" : "x" }"#).canonicalHash == expected)
    }

    @Test("Differently ordered and spaced documents get the same hash")
    func orderDoesNotMatter() throws {
        let first: JSONValue = ["path": "a.txt", "options": ["mode": "append", "create": true], "lines": [1, 2]]
        let second: JSONValue = ["lines": [1, 2], "options": ["create": true, "mode": "append"], "path": "a.txt"]
        let parsed = try JSONValue.parse(
            """
            {
              "options": {"create": true, "mode": "append"},
              "lines": [1, 2.0],
              "path": "a.txt"
            }
            """)
        #expect(first.canonicalHash == second.canonicalHash)
        #expect(first.canonicalHash == parsed.canonicalHash)
    }

    @Test("Any change of content changes the hash")
    func contentChangesHash() {
        let base: JSONValue = ["path": "a.txt", "lines": [1, 2]]
        let variants: [JSONValue] = [
            ["path": "b.txt", "lines": [1, 2]],
            ["path": "a.txt", "lines": [2, 1]],
            ["path": "a.txt", "lines": [1, 2], "extra": nil],
            ["path": "a.txt", "lines": ["1", 2]],
            ["path": "a.txt"],
        ]
        for variant in variants {
            #expect(variant.canonicalHash != base.canonicalHash, "\(variant.canonicalString)")
        }
    }

    @Test("The hash is 64 lowercase hex digits")
    func hashShape() {
        let value: JSONValue = ["k": "v"]
        let hash = value.canonicalHash
        #expect(hash.count == 64)
        #expect(hash.allSatisfy { "0123456789abcdef".contains($0) })
    }

    @Test("Canonical text parses back to an equal document")
    func roundTrip() throws {
        let value: JSONValue = [
            "text": "tab\t, quote \", emoji 😀, nul \u{00}",
            "numbers": [0, -1, 2.5, 1e-7, 9_007_199_254_740_993],
            "nested": ["deep": [["x": nil], [true, false]]],
        ]
        let reparsed = try JSONValue.parse(value.canonicalString)
        #expect(reparsed == value)
        #expect(reparsed.canonicalString == value.canonicalString)
    }
}
