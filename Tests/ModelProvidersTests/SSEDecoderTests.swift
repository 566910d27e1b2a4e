import Testing

@testable import ModelProviders

@Suite struct SSEDecoderTests {
    let wire =
        "event: message_start\r\ndata: {\"a\":1}\r\n\r\n: ping\n\ndata: line one\ndata:line two\n\ndata: é😀\r\rid: 7\nretry: 10\ndata: [DONE]\n\n"
    let expected = [
        ServerSentEvent(event: "message_start", data: "{\"a\":1}"),
        ServerSentEvent(data: "line one\nline two"),
        ServerSentEvent(data: "é😀"),
        ServerSentEvent(data: "[DONE]"),
    ]

    @Test func decodesWholeBody() {
        var decoder = ServerSentEventDecoder()
        var events = decoder.feed(Array(wire.utf8))
        events += decoder.finish()
        #expect(events == expected)
    }

    /// Chunks cut anywhere — inside a line, inside a UTF-8 sequence, between \r and \n —
    /// give the same events.
    @Test func decodesByteByByteAndAtEverySplit() {
        let bytes = Array(wire.utf8)
        var decoder = ServerSentEventDecoder()
        var events: [ServerSentEvent] = []
        for byte in bytes { events += decoder.feed([byte]) }
        events += decoder.finish()
        #expect(events == expected)
        for split in 1..<bytes.count {
            var decoder = ServerSentEventDecoder()
            var events = decoder.feed(bytes[..<split])
            events += decoder.feed(bytes[split...])
            events += decoder.finish()
            #expect(events == expected, "split at \(split)")
        }
    }

    @Test func deliversALastEventWithoutItsBlankLine() {
        var decoder = ServerSentEventDecoder()
        #expect(decoder.feed(Array("data: {\"x\":2}".utf8)).isEmpty)
        #expect(decoder.finish() == [ServerSentEvent(data: "{\"x\":2}")])
    }

    @Test func ignoresEventsWithoutData() {
        var decoder = ServerSentEventDecoder()
        #expect(decoder.feed(Array("event: ping\n\n: comment\n\n".utf8)).isEmpty)
        #expect(decoder.finish().isEmpty)
    }
}
