extension StringProtocol {
    /// The text without leading and trailing white space: the same result as Foundation's
    /// `trimmingCharacters(in: .whitespacesAndNewlines)`, or `.whitespaces` when
    /// `includingNewlines` is false, without bridging to `NSString`. Request handlers and
    /// stream decoders call it on every request and every event, where Foundation's
    /// version cost more than the rest of the check.
    public func trimmingWhitespace(includingNewlines: Bool = true) -> String {
        func trims(_ scalar: Unicode.Scalar) -> Bool {
            switch scalar.value {
            case 0x20, 0x09: return true
            case 0x0A...0x0D, 0x85, 0x2028, 0x2029: return includingNewlines
            case 0x21..<0x80: return false
            // Foundation's white space is the category Zs, to which it still adds the
            // zero-width space; what is left of Unicode's White_Space is exactly Zs.
            case 0x200B: return true
            default: return scalar.properties.isWhitespace
            }
        }
        let text = String(self)
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !trims($0) }),
            let last = scalars.lastIndex(where: { !trims($0) })
        else { return "" }
        let end = scalars.index(after: last)
        if first == scalars.startIndex && end == scalars.endIndex { return text }
        return String(scalars[first..<end])
    }
}
