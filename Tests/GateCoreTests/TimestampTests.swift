import Foundation
import GateCore
import Testing

@Suite("Timestamp")
struct TimestampTests {
    @Test(
        "Formats ISO 8601 UTC with milliseconds",
        arguments: [
            (0.0, "1970-01-01T00:00:00.000Z"),
            (0.0009, "1970-01-01T00:00:00.000Z"),
            (1.9999, "1970-01-01T00:00:01.999Z"),
            (1_795_673_069.123, "2026-11-26T06:04:29.123Z"),
            (1_709_251_199.5, "2024-02-29T23:59:59.500Z"),
            (951_868_800, "2000-03-01T00:00:00.000Z"),
            (4_102_444_799.999, "2099-12-31T23:59:59.999Z"),
            (-0.25, "1969-12-31T23:59:59.750Z"),
            (-1, "1969-12-31T23:59:59.000Z"),
            (-86_400, "1969-12-31T00:00:00.000Z"),
            (-301_231_800, "1960-06-15T12:30:00.000Z"),
        ])
    func format(seconds: Double, expected: String) {
        #expect(Timestamp.format(Date(timeIntervalSince1970: seconds)) == expected)
    }

    @Test("Parses with and without fractional seconds, and with offsets")
    func parse() throws {
        let withMillis = try #require(Timestamp.parse("2026-11-26T06:04:29.123Z"))
        #expect(abs(withMillis.timeIntervalSince1970 - 1_795_673_069.123) < 0.000_5)
        let whole = try #require(Timestamp.parse("2026-11-26T06:04:29Z"))
        #expect(whole.timeIntervalSince1970 == 1_795_673_069)
        let offset = try #require(Timestamp.parse("2026-11-26T08:04:29+02:00"))
        #expect(offset.timeIntervalSince1970 == 1_795_673_069)
    }

    @Test(
        "Rejects text that is not an ISO 8601 date-time",
        arguments: ["", "yesterday", "2026-11-26", "2026-11-26 06:04:29", "1795673069", "2026-13-01T00:00:00Z"])
    func rejects(text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    @Test("format(parse(text)) gives the text back, millisecond for millisecond")
    func roundTrip() throws {
        var millis: Int64 = 1_795_673_069_000
        for _ in 0..<5000 {
            millis += 7
            let text = Timestamp.format(Date(timeIntervalSince1970: Double(millis) / 1000))
            #expect(text.hasSuffix(String(format: ".%03lldZ", millis % 1000)))
            let parsed = try #require(Timestamp.parse(text))
            #expect(Timestamp.format(parsed) == text)
        }
    }
}
