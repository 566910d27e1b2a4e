/// One Server-Sent Event.
public struct ServerSentEvent: Sendable, Equatable {
    public var id: String?
    public var event: String
    public var data: String

    public init(id: String?, event: String, data: String) {
        self.id = id
        self.event = event
        self.data = data
    }
}

/// An incremental parser for the `text/event-stream` format (WHATWG HTML §9.2):
/// feed it bytes as they arrive, take the events it completes. Comments (heartbeats)
/// are counted but not returned.
public struct SSEParser: Sendable {
    private var buffer: [UInt8] = []
    private var id: String?
    private var event: String?
    private var data: [String] = []
    private var sawField = false
    public private(set) var comments = 0
    /// Return comment lines (heartbeats) as events of type `":"` with the comment as data.
    public var emitComments: Bool

    public init(emitComments: Bool = false) {
        self.emitComments = emitComments
    }

    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [ServerSentEvent] {
        buffer.append(contentsOf: bytes)
        var events: [ServerSentEvent] = []
        while let newline = buffer.firstIndex(where: { $0 == 0x0A || $0 == 0x0D }) {
            var lineEnd = newline
            var next = newline + 1
            if buffer[newline] == 0x0D {
                if next == buffer.count { break }  // wait: a \n may follow
                if buffer[next] == 0x0A { next += 1 }
            }
            let line = String(decoding: buffer[..<lineEnd], as: UTF8.self)
            lineEnd = next
            buffer.removeFirst(lineEnd)
            if let event = process(line) { events.append(event) }
        }
        return events
    }

    private mutating func process(_ line: String) -> ServerSentEvent? {
        if line.isEmpty {
            defer {
                event = nil
                data = []
                sawField = false
            }
            guard sawField, !data.isEmpty || event != nil else { return nil }
            return ServerSentEvent(id: id, event: event ?? "message", data: data.joined(separator: "\n"))
        }
        if line.hasPrefix(":") {
            comments += 1
            guard emitComments else { return nil }
            return ServerSentEvent(id: nil, event: ":", data: String(line.dropFirst()).trimmingPrefixSpace())
        }
        let field: Substring
        var value: Substring
        if let colon = line.firstIndex(of: ":") {
            field = line[..<colon]
            value = line[line.index(after: colon)...]
            if value.hasPrefix(" ") { value = value.dropFirst() }
        } else {
            field = Substring(line)
            value = ""
        }
        switch field {
        case "id": id = String(value); sawField = true
        case "event": event = String(value); sawField = true
        case "data": data.append(String(value)); sawField = true
        default: break
        }
        return nil
    }
}

extension String {
    fileprivate func trimmingPrefixSpace() -> String { hasPrefix(" ") ? String(dropFirst()) : self }
}
