/// Random identifiers with a type prefix (`conf_…`, `ses_…`, `call_…`), base62.
public enum Identifier {
    static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

    /// `prefix_` followed by `length` base62 characters from the system's CSPRNG.
    public static func make(_ prefix: String, length: Int = 22) -> String {
        var generator = SystemRandomNumberGenerator()
        var result = prefix + "_"
        result.reserveCapacity(prefix.count + 1 + length)
        for _ in 0..<length {
            // Rejection sampling keeps the distribution uniform over 62 symbols.
            while true {
                let byte = UInt8.random(in: 0...255, using: &generator)
                if byte < 248 {
                    result.append(alphabet[Int(byte % 62)])
                    break
                }
            }
        }
        return result
    }
}
