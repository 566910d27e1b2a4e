import GateCore
import Testing

private let base62 = Set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

@Suite("Identifier")
struct IdentifierTests {
    @Test("prefix, underscore, then 22 base62 characters", arguments: ["conf", "ses", "call", "ns"])
    func shape(prefix: String) {
        let id = Identifier.make(prefix)
        #expect(id.hasPrefix(prefix + "_"))
        let body = id.dropFirst(prefix.count + 1)
        #expect(body.count == 22)
        #expect(body.allSatisfy(base62.contains))
    }

    @Test("A custom length", arguments: [0, 1, 8, 40])
    func customLength(length: Int) {
        let id = Identifier.make("key", length: length)
        #expect(id.count == 4 + length)
        #expect(id.dropFirst(4).allSatisfy(base62.contains))
    }

    @Test("Identifiers do not repeat")
    func unique() {
        let ids = (0..<2000).map { _ in Identifier.make("conf") }
        #expect(Set(ids).count == ids.count)
    }

    @Test("Every base62 symbol occurs")
    func usesWholeAlphabet() {
        // 44,000 draws over 62 symbols: the chance that one symbol never shows up is below 1e-300.
        let symbols = (0..<2000).reduce(into: Set<Character>()) { seen, _ in
            seen.formUnion(Identifier.make("x").dropFirst(2))
        }
        #expect(symbols == base62)
    }
}
