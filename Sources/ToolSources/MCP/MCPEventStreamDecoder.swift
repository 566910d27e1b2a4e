/// One event of a `text/event-stream` body of an MCP server.
struct MCPStreamEvent: Sendable, Equatable {
    var id: String?
    var event: String?
    var data: String
}

/// An incremental decoder of the SSE wire format for MCP's Streamable HTTP transport:
/// chunks may be cut anywhere (inside a line, a UTF-8 sequence, between `\r` and `\n`).
/// Unlike the providers' decoder (ModelProviders, which ToolSources does not depend
/// on) it keeps the `id:` field, which a client sends back as `Last-Event-ID` when it
/// reopens the server's stream.
struct MCPEventStreamDecoder: Sendable {
    private var line: [UInt8] = []
    private var dataLines: [String] = []
    private var eventName: String?
    private var eventID: String?
    private var hasData = false
    private var afterCarriageReturn = false

    /// The id of the last event that carried one.
    private(set) var lastEventID: String?

    mutating func feed(_ bytes: some Sequence<UInt8>) -> [MCPStreamEvent] {
        var events: [MCPStreamEvent] = []
        for byte in bytes {
            if afterCarriageReturn {
                afterCarriageReturn = false
                if byte == UInt8(ascii: "\n") { continue }
            }
            switch byte {
            case UInt8(ascii: "\n"):
                if let event = endLine() { events.append(event) }
            case UInt8(ascii: "\r"):
                afterCarriageReturn = true
                if let event = endLine() { events.append(event) }
            default:
                line.append(byte)
            }
        }
        return events
    }

    /// At the end of the body: an event whose blank line never came is still delivered.
    mutating func finish() -> [MCPStreamEvent] {
        var events: [MCPStreamEvent] = []
        if !line.isEmpty, let event = endLine() { events.append(event) }
        if let event = dispatch() { events.append(event) }
        return events
    }

    private mutating func endLine() -> MCPStreamEvent? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty { return dispatch() }
        if line.first == UInt8(ascii: ":") { return nil }
        let text = String(decoding: line, as: UTF8.self)
        var field = Substring(text)
        var value: Substring = ""
        if let colon = text.firstIndex(of: ":") {
            field = text[..<colon]
            value = text[text.index(after: colon)...]
            if value.first == " " { value = value.dropFirst() }
        }
        switch field {
        case "data":
            dataLines.append(String(value))
            hasData = true
        case "event":
            eventName = String(value)
        case "id" where !value.contains("\0"):
            eventID = String(value)
            lastEventID = String(value)
        default:
            break
        }
        return nil
    }

    private mutating func dispatch() -> MCPStreamEvent? {
        defer {
            dataLines.removeAll()
            eventName = nil
            eventID = nil
            hasData = false
        }
        guard hasData else { return nil }
        return MCPStreamEvent(id: eventID, event: eventName, data: dataLines.joined(separator: "\n"))
    }
}
