import Foundation
import GateCore
import Testing

@Suite struct WhitespaceTests {
    /// Every scalar Foundation counts as white space or a newline, and a few that it does
    /// not, around and inside text: the result must be Foundation's.
    @Test(arguments: [false, true])
    func trimsLikeFoundation(includingNewlines: Bool) {
        let set: CharacterSet = includingNewlines ? .whitespacesAndNewlines : .whitespaces
        var edges: [String] = [
            "", " ", "\t", "\n", "\r\n", "\u{0B}", "\u{0C}", "\u{85}", "\u{A0}", "\u{1680}",
            "\u{2000}", "\u{200A}", "\u{200B}", "\u{2028}", "\u{2029}", "\u{202F}", "\u{205F}", "\u{3000}",
            "\u{FEFF}", "\u{1F600}", "é", "x",
        ]
        for value in UInt32(0)...0x3000 where set.contains(Unicode.Scalar(value)!) {
            edges.append(String(Unicode.Scalar(value)!))
        }
        for left in edges {
            for right in edges {
                for middle in ["", "a b", "[DONE]", " \u{A0} ", "\n"] {
                    let text = left + middle + right
                    #expect(
                        text.trimmingWhitespace(includingNewlines: includingNewlines)
                            == text.trimmingCharacters(in: set), "\(Array(text.unicodeScalars))")
                }
            }
        }
        #expect(Substring("  key ").trimmingWhitespace() == "key")
    }
}
