import Crypto
import Foundation

/// Canonical JSON: object keys sorted by UTF-16 code units (as RFC 8785 does), no
/// insignificant whitespace, integers written plainly, other numbers in their shortest
/// round-trip form, strings with only the escapes JSON requires. Two documents that mean
/// the same thing have the same canonical text, so `params_hash` binds a decision to
/// exactly the parameters that were shown.
extension JSONValue {
    public var canonicalString: String {
        String(decoding: canonicalBytes, as: UTF8.self)
    }

    /// The canonical text as UTF-8 bytes.
    public var canonicalBytes: [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(128)
        JSONValue.writeCanonical(self, into: &output)
        return output
    }

    /// Lowercase hex SHA-256 of the canonical form.
    public var canonicalHash: String {
        Digest.sha256Hex(canonicalBytes)
    }

    private static func writeCanonical(_ value: JSONValue, into output: inout [UInt8]) {
        switch value {
        case .null: output.append(contentsOf: "null".utf8)
        case .bool(let flag): output.append(contentsOf: (flag ? "true" : "false").utf8)
        case .int(let number): output.append(contentsOf: String(number).utf8)
        case .double(let number): output.append(contentsOf: canonicalNumber(number).utf8)
        case .string(let text): writeString(text, into: &output)
        case .array(let items):
            output.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                writeCanonical(item, into: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let members):
            output.append(UInt8(ascii: "{"))
            let sorted = members.count < 2 ? Array(members) : members.sorted { utf16Precedes($0.key, $1.key) }
            for (index, member) in sorted.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                writeString(member.key, into: &output)
                output.append(UInt8(ascii: ":"))
                writeCanonical(member.value, into: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    /// Whether `lhs` sorts before `rhs` by UTF-16 code units, compared on their UTF-8
    /// bytes. UTF-8 byte order is code-point order, which differs from UTF-16 order only
    /// between U+E000–U+FFFF (lead bytes 0xEE, 0xEF) and the supplementary planes (lead
    /// bytes 0xF0–0xF4), whose surrogates sort below U+E000. The first differing bytes
    /// of two strings sit at the same place in their code points (the bytes before them
    /// are equal), so they are both lead bytes or both continuation bytes of
    /// equally long sequences.
    static func utf16Precedes(_ lhs: String, _ rhs: String) -> Bool {
        var left = lhs.utf8.makeIterator()
        var right = rhs.utf8.makeIterator()
        while true {
            guard let x = left.next() else { return right.next() != nil }
            guard let y = right.next() else { return false }
            if x == y { continue }
            if x >= 0xF0 && (y == 0xEE || y == 0xEF) { return true }
            if y >= 0xF0 && (x == 0xEE || x == 0xEF) { return false }
            return x < y
        }
    }

    static func canonicalNumber(_ number: Double) -> String {
        guard number.isFinite else { return "null" }
        // Every integral value that `Int64` holds is written like the `.int` of the same number, so that
        // `.double(2^53)` and `.int(2^53)` agree and re-parsing canonical text gives the same text.
        if let integer = Int64(exactly: number) { return String(integer) }
        return "\(number)"
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Writes a JSON string: runs of bytes that need no escape are copied whole.
    private static func writeString(_ text: String, into output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { bytes in
            var runStart = 0
            for index in 0..<bytes.count {
                let byte = bytes[index]
                if byte >= 0x20 && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") { continue }
                output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index]))
                runStart = index + 1
                output.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""): output.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): output.append(UInt8(ascii: "\\"))
                case UInt8(ascii: "\n"): output.append(UInt8(ascii: "n"))
                case UInt8(ascii: "\r"): output.append(UInt8(ascii: "r"))
                case UInt8(ascii: "\t"): output.append(UInt8(ascii: "t"))
                case 0x08: output.append(UInt8(ascii: "b"))
                case 0x0C: output.append(UInt8(ascii: "f"))
                default:
                    output.append(contentsOf: "u00".utf8)
                    output.append(hexDigits[Int(byte >> 4)])
                    output.append(hexDigits[Int(byte & 0x0F)])
                }
            }
            output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<bytes.count]))
        }
        output.append(UInt8(ascii: "\""))
    }
}

/// SHA-256 helpers used for params hashes, key hashes and the audit chain.
public enum Digest {
    public static func sha256Hex(_ text: String) -> String {
        sha256Hex(Data(text.utf8))
    }

    /// Lowercase hex SHA-256 of raw bytes (`Data`, `[UInt8]`, …).
    public static func sha256Hex<Bytes: DataProtocol>(_ bytes: Bytes) -> String {
        hex(SHA256.hash(data: bytes))
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
