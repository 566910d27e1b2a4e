import Testing

@testable import GateCore

@Suite("Regex cache")
struct RegexCacheTests {
    @Test("A pattern is compiled once, however often it is matched")
    func compiledOnce() {
        let cache = RegexCache()
        for _ in 0..<100 { #expect(cache.regex("acct-[0-9]+") != nil) }
        #expect(cache.compilations == 1)
        _ = cache.regex("other")
        #expect(cache.compilations == 2)
    }

    @Test("An invalid pattern is not cached and never matches")
    func invalid() {
        let cache = RegexCache()
        #expect(cache.regex("(unclosed") == nil)
        #expect(cache.compilations == 0)
        #expect(!ValueMatcher.regex("(unclosed").matches("(unclosed"))
    }

    @Test("The cache is bounded: when full it starts again")
    func bounded() {
        let cache = RegexCache(capacity: 3)
        for pattern in ["a", "b", "c", "d"] { _ = cache.regex(pattern) }
        #expect(cache.compilations == 4)
        _ = cache.regex("d")
        #expect(cache.compilations == 4, "d is in the new generation")
        _ = cache.regex("a")
        #expect(cache.compilations == 5, "a was dropped when the cache filled")
    }
}
