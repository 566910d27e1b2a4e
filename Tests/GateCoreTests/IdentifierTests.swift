import Foundation
import GateCore
import Testing

private let base62 = Set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

@Suite("Identifier")
struct IdentifierTests {
    @Test(
        "prefix, underscore, then 22 base62 characters, random or time-ordered",
        arguments: ["conf", "ses", "call", "run", "grt", "ns"], [false, true])
    func shape(prefix: String, ordered: Bool) {
        let id = ordered ? Identifier.ordered(prefix) : Identifier.make(prefix)
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

@Suite("Identifier.ordered")
struct OrderedIdentifierTests {
    @Test("A later millisecond sorts after an earlier one, across digit carries")
    func sortsByTime() {
        let starts: [Double] = [0, 61.999, 1_790_000_000, 1_790_000_000.061, 4_000_000_000]
        for start in starts {
            let earlier = Identifier.ordered("conf", now: Date(timeIntervalSince1970: start))
            let later = Identifier.ordered("conf", now: Date(timeIntervalSince1970: start + 0.001))
            let muchLater = Identifier.ordered("conf", now: Date(timeIntervalSince1970: start + 86_400))
            #expect(earlier < later, "\(earlier) !< \(later)")
            #expect(later < muchLater)
        }
    }

    @Test("The time characters encode the millisecond; the rest is random")
    func timeThenRandom() {
        let now = Date(timeIntervalSince1970: 1_795_000_000.123)
        let ids = (0..<2000).map { _ in Identifier.ordered("ses", now: now) }
        let times = Set(ids.map { $0.dropFirst(4).prefix(Identifier.timeCharacters) })
        #expect(times.count == 1)
        var millis: UInt64 = 0
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        for character in times.first! { millis = millis * 62 + UInt64(alphabet.firstIndex(of: character)!) }
        #expect(millis == 1_795_000_000_123)
        #expect(Set(ids).count == ids.count)
        let symbols = ids.reduce(into: Set<Character>()) { seen, id in
            seen.formUnion(id.suffix(Identifier.randomCharacters))
        }
        #expect(symbols == base62)
    }
}
