import GateCore
import Testing

@Suite("Glob")
struct GlobTests {
    @Test(
        "Shell-style matching of whole strings",
        arguments: [
            ("git.commit", "git.*", true),
            ("git.", "git.*", true),
            ("git", "git.*", false),
            ("gitx.commit", "git.*", false),
            ("files.write", "*.write", true),
            ("files.write.bak", "*.write", false),
            ("a.b.c", "*.*", true),
            ("abc", "", false),
            ("", "", true),
            ("", "*", true),
            ("", "?", false),
            ("a", "?", true),
            ("ab", "?", false),
            ("abc", "a?c", true),
            ("ac", "a?c", false),
            ("abc", "a*c", true),
            ("ac", "a*c", true),
            ("abcd", "a*c", false),
            ("abbbc", "a*b*c", true),
            ("aaa", "a**a", true),
            ("mississippi", "m*iss*ppi", true),
            ("mississippi", "m*iss*x", false),
            ("abababc", "*ab*abc", true),
            ("read_file", "read_file", true),
            ("read_file", "Read_file", false),
            ("read_file", "read_fil", false),
            ("é", "?", true),
            ("naïve.txt", "na?ve.*", true),
        ])
    func matches(text: String, pattern: String, expected: Bool) {
        #expect(Glob.matches(text, pattern: pattern) == expected)
    }
}
