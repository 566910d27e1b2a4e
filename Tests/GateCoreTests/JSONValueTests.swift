import Foundation
import GateCore
import Testing

@Suite("JSONValue")
struct JSONValueTests {
    @Test(
        "Decoding keeps integers, doubles and booleans apart",
        arguments: [
            ("7", JSONValue.int(7)),
            ("-7", .int(-7)),
            ("0", .int(0)),
            ("1", .int(1)),
            ("9223372036854775807", .int(Int64.max)),
            ("-9223372036854775808", .int(Int64.min)),
            ("7.5", .double(7.5)),
            ("-0.25", .double(-0.25)),
            ("1e-3", .double(0.001)),
            ("9223372036854775808", .double(9_223_372_036_854_775_808)),
            ("true", .bool(true)),
            ("false", .bool(false)),
            ("null", .null),
            (#""text""#, .string("text")),
            (#""1""#, .string("1")),
            (#""true""#, .string("true")),
            (#""\u00e9\n""#, .string("é\n")),
        ])
    func decodesScalars(text: String, expected: JSONValue) throws {
        #expect(try JSONValue.parse(text) == expected)
    }

    @Test("Integral numbers written with a fraction or exponent mean the integer")
    func integralNumbersWithFraction() throws {
        for text in ["1.0", "1e0", "100e-2", "0.5e1"] {
            let value = try JSONValue.parse(text)
            #expect(value.intValue == Int64(Double(text)!), "\(text)")
            #expect(value.canonicalString == JSONValue.int(Int64(Double(text)!)).canonicalString, "\(text)")
        }
    }

    /// `parse(String)` answers objects and arrays with a fast parser and falls back to
    /// `JSONDecoder` for anything that parser does not handle: both must agree on every
    /// document, valid or not.
    @Test("The fast parser agrees with JSONDecoder")
    func fastParserAgreesWithJSONDecoder() throws {
        func decoded(_ text: String) -> JSONValue? {
            try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        }
        var documents = [
            "{}", "[]", " { } ", "[1,]", "[1,,]", "{\"a\":1,}", #"{"a":1,"a":2}"#, #"{"a":-0}"#, "[-]", "[01]", "[-01]",
            "[1.0]", "[1e2]", "[1E2]", "[-1.5e-3]", "[123456789012345678]", "[1234567890123456789]",
            "[-9223372036854775808]", "[9223372036854775807]", "[9223372036854775808]", #"["\u00e9"]"#,
            #"["\ud83d\ude00"]"#, #"["\ud83d"]"#, #"["a\nb\t\"c\"\\\/\b\f\r"]"#, #"["\x"]"#, "[\"\u{01}\"]",
            #"["é ü 😀"]"#, "[true,false,null]", "[tru]", "[nulll]", "[1 2]", "{\"a\" 1}", "{'a':1}", "[1]x",
            String(repeating: "[", count: 70) + String(repeating: "]", count: 70),
            String(repeating: "[", count: 600) + String(repeating: "]", count: 600),
            #"{"session_id":"ses_1","params":{"path":"notes/todo.txt","content":"buy milk"},"n":[1,-2,{"x":null}]}"#,
        ]
        // Random canonical documents, as the store writes them.
        var generator = SystemRandomNumberGenerator()
        func random(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0..<(depth > 3 ? 5 : 7), using: &generator) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &generator))
            case 2: return .int(Int64.random(in: Int64.min...Int64.max, using: &generator) >> Int64.random(in: 0..<63))
            case 3: return .double(Double.random(in: -1e6...1e6, using: &generator))
            case 4:
                let alphabet = Array("ab \"\\/\n\t\u{1}é😀")
                return .string(String((0..<Int.random(in: 0..<8)).map { _ in alphabet.randomElement()! }))
            case 5: return .array((0..<Int.random(in: 0..<4)).map { _ in random(depth + 1) })
            default:
                return .object(
                    Dictionary(
                        (0..<Int.random(in: 0..<4)).map { ("k\($0)", random(depth + 1)) },
                        uniquingKeysWith: { a, _ in a }))
            }
        }
        for _ in 0..<300 { documents.append(JSONValue.array([random(0), random(0)]).canonicalString) }
        for text in documents {
            #expect((try? JSONValue.parse(text)) == decoded(text), "\(text)")
        }
    }

    @Test("Decoding arrays and objects, nested")
    func decodesContainers() throws {
        let value = try JSONValue.parse(
            #"{"a": [1, 2.5, true, null, "x", {"b": []}], "c": {"d": false}, "e": {}}"#)
        let expected: JSONValue = [
            "a": [1, 2.5, true, nil, "x", ["b": []]],
            "c": ["d": false],
            "e": [:],
        ]
        #expect(value == expected)
        #expect(value["a"]?.arrayValue?[0] == .int(1))
        #expect(value["a"]?.arrayValue?[1] == .double(2.5))
        #expect(value["a"]?.arrayValue?[2] == .bool(true))
    }

    @Test(
        "Malformed JSON throws a validation error",
        arguments: [
            // Foundation's decoder tolerates one trailing comma ("[1,]"), so that case is not listed.
            "", " ", "{", "}", "[1,,]", "[,]", "[1 2]", "{'a': 1}", #"{"a" 1}"#, #"{"a": 1,,}"#, "nul", "tru", "01",
            "NaN", "Infinity", "+1", ".5", "1.", "[1] x", #""unterminated"#, #""\x""#, #""\ud800""#, "{a: 1}",
        ])
    func malformedJSONThrows(text: String) {
        let error = #expect(throws: CountersignError.self) {
            try JSONValue.parse(text)
        }
        #expect(error?.code == .validationError)
        #expect(error?.httpStatus == 400)
    }

    @Test("Malformed bytes (not UTF-8) throw a validation error")
    func invalidUTF8Throws() {
        let error = #expect(throws: CountersignError.self) {
            try JSONValue.parse(Data([0x22, 0xFF, 0xFE, 0x22]))
        }
        #expect(error?.code == .validationError)
    }

    @Test("Encoding and decoding through Codable round-trips")
    func codableRoundTrip() throws {
        let value: JSONValue = ["int": 3, "double": 0.5, "bool": false, "null": nil, "list": ["a", 1], "obj": [:]]
        let data = try JSONEncoder().encode(value)
        #expect(try JSONDecoder().decode(JSONValue.self, from: data) == value)
        #expect(try JSONValue.parse(data) == value)
    }

    @Test("init(encoding:) and decode(as:) convert to and from Codable types")
    func convertsCodableTypes() throws {
        struct Call: Codable, Equatable {
            var path: String
            var count: Int
            var ratio: Double
            var at: Date
        }
        let call = Call(path: "a/b.txt", count: 2, ratio: 0.75, at: Date(timeIntervalSince1970: 1_795_673_069.123))
        let value = try JSONValue(encoding: call)
        #expect(value["path"] == .string("a/b.txt"))
        #expect(value["count"] == .int(2))
        #expect(value["ratio"] == .double(0.75))
        #expect(value["at"] == .string("2026-11-26T06:04:29.123Z"))
        let decoded = try value.decode(as: Call.self)
        #expect(decoded.path == call.path && decoded.count == call.count && decoded.ratio == call.ratio)
        #expect(Timestamp.format(decoded.at) == "2026-11-26T06:04:29.123Z")
    }

    @Test("decode(as:) reports a type mismatch")
    func decodeMismatchThrows() {
        struct Needs: Decodable { var count: Int }
        let value: JSONValue = ["count": "three"]
        #expect(throws: DecodingError.self) { try value.decode(as: Needs.self) }
    }

    @Test("Accessors return a value only for their own kind")
    func accessors() {
        let text: JSONValue = "x"
        #expect(text.stringValue == "x")
        #expect(text.intValue == nil && text.doubleValue == nil && text.boolValue == nil)
        #expect(JSONValue.bool(true).boolValue == true)
        #expect(JSONValue.int(1).boolValue == nil)
        #expect(JSONValue.int(4).intValue == 4)
        #expect(JSONValue.int(4).doubleValue == 4)
        #expect(JSONValue.double(4.0).intValue == 4)
        #expect(JSONValue.double(4.5).intValue == nil)
        #expect(JSONValue.double(1e300).intValue == nil)
        #expect(JSONValue.double(4.5).doubleValue == 4.5)
        #expect(JSONValue.array([1]).arrayValue == [1])
        #expect(JSONValue.object(["a": 1]).objectValue == ["a": 1])
        #expect(JSONValue.object(["a": 1])["a"] == .int(1))
        #expect(JSONValue.object(["a": 1])["b"] == nil)
        #expect(JSONValue.array([1])["a"] == nil)
    }

    @Test(
        "Type names used in messages",
        arguments: [
            (JSONValue.null, "null"), (.bool(true), "boolean"), (.int(1), "integer"), (.double(1.5), "number"),
            (.string(""), "string"), (.array([]), "array"), (.object([:]), "object"),
        ])
    func typeNames(value: JSONValue, name: String) {
        #expect(value.typeName == name)
    }

    @Test("Literals build the matching cases")
    func literals() {
        let value: JSONValue = ["s": "x", "i": 1, "d": 1.5, "b": true, "n": nil, "a": [1]]
        #expect(
            value
                == .object([
                    "s": .string("x"), "i": .int(1), "d": .double(1.5), "b": .bool(true), "n": .null,
                    "a": .array([.int(1)]),
                ]))
    }
}

@Suite("CountersignError")
struct CountersignErrorTests {
    @Test(
        "Each code has its native HTTP status",
        arguments: [
            (CountersignError.Code.validationError, 400), (.unauthenticated, 401), (.forbidden, 403),
            (.notFound, 404), (.alreadyDecided, 409), (.paramsMismatch, 409), (.confirmationPending, 409),
            (.sessionBusy, 409), (.expired, 410), (.tooLarge, 413), (.rateLimited, 429), (.unavailable, 503),
            (.internal, 500),
        ])
    func httpStatus(code: CountersignError.Code, status: Int) {
        #expect(CountersignError(code, "m").httpStatus == status)
    }

    @Test("Wire names of the codes")
    func wireNames() {
        #expect(CountersignError.Code.validationError.rawValue == "validation_error")
        #expect(CountersignError.Code.alreadyDecided.rawValue == "already_decided")
        #expect(CountersignError.Code.paramsMismatch.rawValue == "params_mismatch")
        #expect(CountersignError.Code.confirmationPending.rawValue == "confirmation_pending")
        #expect(CountersignError.Code.notFound.rawValue == "not_found")
        #expect(CountersignError.Code.tooLarge.rawValue == "too_large")
        #expect(CountersignError.Code.rateLimited.rawValue == "rate_limited")
        #expect(CountersignError.Code.expired.rawValue == "expired")
    }

    @Test("Convenience constructors and description")
    func constructors() {
        let missing = CountersignError.notFound("Session")
        #expect(missing.code == .notFound)
        #expect(missing.message == "Session not found.")
        #expect(missing.description == "not_found: Session not found.")
        let invalid = CountersignError.validation("Bad.", details: ["field": "x"])
        #expect(invalid.code == .validationError)
        #expect(invalid.details?["field"] == .string("x"))
    }
}
