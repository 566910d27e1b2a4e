import Crypto
import Foundation

/// Canonical JSON: object keys sorted by UTF-16 code units (as RFC 8785 does), no
/// insignificant whitespace, integers written plainly, other numbers in their shortest
/// round-trip form, strings with only the escapes JSON requires. Two documents that mean
/// the same thing have the same canonical text, so `params_hash` binds a decision to
/// exactly the parameters that were shown.
extension JSONValue {
    public var canonicalString: String {
        var output = ""
        output.reserveCapacity(64)
        JSONValue.writeCanonical(self, into: &output)
        return output
    }

    /// Lowercase hex SHA-256 of the canonical form.
    public var canonicalHash: String {
        Digest.sha256Hex(canonicalString)
    }

    private static func writeCanonical(_ value: JSONValue, into output: inout String) {
        switch value {
        case .null: output += "null"
        case .bool(let flag): output += flag ? "true" : "false"
        case .int(let number): output += String(number)
        case .double(let number): output += canonicalNumber(number)
        case .string(let text): writeString(text, into: &output)
        case .array(let items):
            output += "["
            for (index, item) in items.enumerated() {
                if index > 0 { output += "," }
                writeCanonical(item, into: &output)
            }
            output += "]"
        case .object(let members):
            output += "{"
            let keys = members.keys.sorted { $0.utf16.lexicographicallyPrecedes($1.utf16) }
            for (index, key) in keys.enumerated() {
                if index > 0 { output += "," }
                writeString(key, into: &output)
                output += ":"
                writeCanonical(members[key]!, into: &output)
            }
            output += "}"
        }
    }

    static func canonicalNumber(_ number: Double) -> String {
        guard number.isFinite else { return "null" }
        // Every integral value that `Int64` holds is written like the `.int` of the same number, so that
        // `.double(2^53)` and `.int(2^53)` agree and re-parsing canonical text gives the same text.
        if let integer = Int64(exactly: number) { return String(integer) }
        return "\(number)"
    }

    private static func writeString(_ text: String, into output: inout String) {
        output += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case "\u{08}": output += "\\b"
            case "\u{0C}": output += "\\f"
            default:
                if scalar.value < 0x20 {
                    output += String(format: "\\u%04x", scalar.value)
                } else {
                    output.unicodeScalars.append(scalar)
                }
            }
        }
        output += "\""
    }
}

/// SHA-256 helpers used for params hashes, key hashes and the audit chain.
public enum Digest {
    public static func sha256Hex(_ text: String) -> String {
        sha256Hex(Data(text.utf8))
    }

    public static func sha256Hex(_ data: Data) -> String {
        hex(SHA256.hash(data: data))
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Lowercase hexadecimal of a byte sequence.
    public static func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var output: [UInt8] = []
        output.reserveCapacity(64)
        for byte in bytes {
            output.append(hexDigits[Int(byte >> 4)])
            output.append(hexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Compares two strings in time that depends only on their lengths.
    public static func constantTimeEquals(_ lhs: String, _ rhs: String) -> Bool {
        let left = Array(lhs.utf8)
        let right = Array(rhs.utf8)
        guard left.count == right.count else { return false }
        var difference: UInt8 = 0
        for index in left.indices { difference |= left[index] ^ right[index] }
        return difference == 0
    }
}
