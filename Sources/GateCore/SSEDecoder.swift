/// One event of a `text/event-stream` body.
public struct SSEEvent: Sendable, Equatable {
    /// The `id:` field, nil when the event had none.
    public var id: String?
    /// The `event:` field; nil when the event had none (the default type, `message`).
    public var event: String?
    /// The `data:` lines joined with `\n`.
    public var data: String

    public init(id: String? = nil, event: String? = nil, data: String) {
        self.id = id
        self.event = event
        self.data = data
    }
}

/// An incremental decoder of the SSE wire format (the WHATWG `text/event-stream`
/// grammar): bytes arrive in chunks cut anywhere — inside a line, inside a UTF-8
/// sequence, between `\r` and `\n` — and complete events come out. Comments (`: ping`)
/// and `retry:` are skipped; `id:` is kept (a client that reopens a stream sends the last
/// one back as `Last-Event-ID`). Model providers and MCP's Streamable HTTP transport
/// both read their streams with it.
public struct SSEDecoder: Sendable {
    private var line: [UInt8] = []
    private var dataLines: [String] = []
    private var eventName: String?
    private var eventID: String?
    private var hasData = false
    /// A `\r` ended the last line; a `\n` right after it belongs to the same line end.
    private var afterCarriageReturn = false

    /// The id of the last event that carried one.
    public private(set) var lastEventID: String?

    public init() {}

    /// Feeds bytes; returns the events they complete.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [SSEEvent] {
        if let events = bytes.withContiguousStorageIfAvailable({ feed(buffer: $0) }) { return events }
        return Array(bytes).withUnsafeBufferPointer { feed(buffer: $0) }
    }

    /// Feeds contiguous bytes: the line breaks are found in one pass, and the bytes
    /// between them are appended to the current line a run at a time.
    public mutating func feed(buffer: UnsafeBufferPointer<UInt8>) -> [SSEEvent] {
        var events: [SSEEvent] = []
        var index = 0
        if afterCarriageReturn, let first = buffer.first {
            afterCarriageReturn = false
            if first == UInt8(ascii: "\n") { index = 1 }
        }
        var start = index
        while index < buffer.count {
            let byte = buffer[index]
            guard byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") else {
                index += 1
                continue
            }
            line.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[start..<index]))
            if let event = endLine() { events.append(event) }
            index += 1
            if byte == UInt8(ascii: "\r") {
                // A `\n` right after the `\r` ends the same line; it may come in the next chunk.
                if index == buffer.count {
                    afterCarriageReturn = true
                } else if buffer[index] == UInt8(ascii: "\n") {
                    index += 1
                }
            }
            start = index
        }
        if start < buffer.count { line.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[start...])) }
        return events
    }

    /// At the end of the body: an event whose blank line never came is still delivered
    /// (some servers close the stream right after the last `data:` line).
    public mutating func finish() -> [SSEEvent] {
        var events: [SSEEvent] = []
        if !line.isEmpty, let event = endLine() { events.append(event) }
        if let event = dispatch() { events.append(event) }
        return events
    }

    private mutating func endLine() -> SSEEvent? {
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

    private mutating func dispatch() -> SSEEvent? {
        defer {
            dataLines.removeAll()
            eventName = nil
            eventID = nil
            hasData = false
        }
        guard hasData else { return nil }
        let data = dataLines.count == 1 ? dataLines[0] : dataLines.joined(separator: "\n")
        return SSEEvent(id: eventID, event: eventName, data: data)
    }
}
