import GateCore
import Testing

@testable import ModelProviders

@Suite struct SSEDecoderTests {
    let wire =
        "event: message_start\r\ndata: {\"a\":1}\r\n\r\n: ping\n\ndata: line one\ndata:line two\n\ndata: é😀\r\rid: 7\nretry: 10\ndata: [DONE]\n\n"
    let expected = [
        SSEEvent(event: "message_start", data: "{\"a\":1}"),
        SSEEvent(data: "line one\nline two"),
        SSEEvent(data: "é😀"),
        SSEEvent(id: "7", data: "[DONE]"),
    ]

    @Test func decodesWholeBody() {
        var decoder = SSEDecoder()
        var events = decoder.feed(Array(wire.utf8))
        events += decoder.finish()
        #expect(events == expected)
    }

    /// Chunks cut anywhere — inside a line, inside a UTF-8 sequence, between \r and \n —
    /// give the same events.
    @Test func decodesByteByByteAndAtEverySplit() {
        let bytes = Array(wire.utf8)
        var decoder = SSEDecoder()
        var events: [SSEEvent] = []
        for byte in bytes { events += decoder.feed([byte]) }
        events += decoder.finish()
        #expect(events == expected)
        for split in 1..<bytes.count {
            var decoder = SSEDecoder()
            var events = decoder.feed(bytes[..<split])
            events += decoder.feed(bytes[split...])
            events += decoder.finish()
            #expect(events == expected, "split at \(split)")
        }
    }

    @Test func deliversALastEventWithoutItsBlankLine() {
        var decoder = SSEDecoder()
        #expect(decoder.feed(Array("data: {\"x\":2}".utf8)).isEmpty)
        #expect(decoder.finish() == [SSEEvent(data: "{\"x\":2}")])
    }

    @Test func ignoresEventsWithoutData() {
        var decoder = SSEDecoder()
        #expect(decoder.feed(Array("event: ping\n\n: comment\n\n".utf8)).isEmpty)
        #expect(decoder.finish().isEmpty)
    }
}
