import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Identifiers with a type prefix (`conf_…`, `ses_…`, `call_…`), base62.
///
/// Two kinds:
/// - ``make(_:length:)``: every character from the system's CSPRNG. For secrets (API
///   keys, nonces) and anything whose creation time must not show.
/// - ``ordered(_:now:)``: record ids. 8 characters of creation time in milliseconds,
///   then 14 random characters (83 bits). Ids made later sort after earlier ones (to the
///   millisecond), so the store's primary-key and foreign-key indexes grow at their
///   right edge: the rows a batch of concurrent sessions writes share B-tree pages
///   instead of each landing on a page of its own, which is what the write volume per
///   gate cycle was made of (see docs/performance.md).
public enum Identifier {
    /// Base62 in ASCII order, so that character order is numeric order.
    static let alphabet: [UInt8] = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    /// Characters of an ordered id that encode its time (62^8 ms is about 6,900 years).
    public static let timeCharacters = 8
    /// Random characters of an ordered id.
    public static let randomCharacters = 14

    /// `prefix_` followed by `length` random base62 characters from the system's CSPRNG.
    public static func make(_ prefix: String, length: Int = 22) -> String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(prefix.utf8.count + 1 + length)
        bytes.append(contentsOf: prefix.utf8)
        bytes.append(UInt8(ascii: "_"))
        appendRandom(length, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `prefix_` followed by 22 base62 characters: the time `now` in milliseconds since
    /// 1970 (8 characters, most significant first), then 14 random ones.
    public static func ordered(_ prefix: String, now: Date = Date()) -> String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(prefix.utf8.count + 1 + timeCharacters + randomCharacters)
        bytes.append(contentsOf: prefix.utf8)
        bytes.append(UInt8(ascii: "_"))
        var millis = UInt64(max(0, (now.timeIntervalSince1970 * 1000).rounded(.down)))
        var time = [UInt8](repeating: alphabet[0], count: timeCharacters)
        for index in stride(from: timeCharacters - 1, through: 0, by: -1) {
            time[index] = alphabet[Int(millis % 62)]
            millis /= 62
        }
        bytes.append(contentsOf: time)
        appendRandom(randomCharacters, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends `count` uniformly random base62 characters. A byte ≥ 248 is rejected,
    /// which keeps the distribution uniform over the 62 symbols; the random bytes are
    /// drawn in one system call for the whole id (and again only for rejects).
    private static func appendRandom(_ count: Int, to bytes: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count + 8) { pool in
            var produced = 0
            while produced < count {
                let wanted = min(pool.count, count - produced + 2)
                fillRandom(UnsafeMutableBufferPointer(rebasing: pool[..<wanted]))
                for byte in pool[..<wanted] where byte < 248 && produced < count {
                    bytes.append(alphabet[Int(byte % 62)])
                    produced += 1
                }
            }
        }
    }

    /// Fills `buffer` (at most 256 bytes) from the system's CSPRNG: `getentropy`, the
    /// `getrandom` system call that `SystemRandomNumberGenerator` also uses, in one call.
    private static func fillRandom(_ buffer: UnsafeMutableBufferPointer<UInt8>) {
        #if canImport(Glibc)
            if getentropy(buffer.baseAddress!, buffer.count) == 0 { return }
        #endif
        var generator = SystemRandomNumberGenerator()
        for index in buffer.indices { buffer[index] = generator.next() }
    }
}
