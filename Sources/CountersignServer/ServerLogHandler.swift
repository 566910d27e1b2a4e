import Foundation
import Logging

/// The server's log lines: the format of swift-log's `StreamLogHandler`
/// (`<time> <level> <label>: <key=value …> [<source>] <message>`), with the metadata
/// formatted when a line is written instead of each time it is set.
///
/// `StreamLogHandler` formats the whole metadata dictionary again on every change, and
/// every request changes it three times (Hummingbird's request id, then Countersign's
/// request id and actor) whether or not anything is logged: 0.6% of the server's CPU
/// in the load test, where nothing is.
public struct ServerLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let stream: any TextOutputStream & Sendable

    /// Writes to standard error.
    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil) {
        self.init(label: label, stream: StandardError(), metadataProvider: metadataProvider)
    }

    public init(label: String, stream: any TextOutputStream & Sendable, metadataProvider: Logger.MetadataProvider?) {
        self.label = label
        self.stream = stream
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty {
            all.merge(provided) { _, provided in provided }
        }
        if let explicit = event.metadata, !explicit.isEmpty {
            all.merge(explicit) { _, explicit in explicit }
        }
        if let error = event.error {
            all["error.message"] = "\(error)"
            all["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        var line = "\(Self.timestamp()) \(event.level)\(label.isEmpty ? "" : " ")\(label):"
        for (key, value) in all.sorted(by: { $0.key < $1.key }) { line += " \(key)=\(value)" }
        line += " [\(event.source)] \(event.message)\n"
        var stream = stream
        stream.write(line)
    }

    static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        guard localtime_r(&now, &parts) != nil else { return "<unknown>" }
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Standard error, one `write` per line (unbuffered, as `stderr` is).
    struct StandardError: TextOutputStream, Sendable {
        mutating func write(_ string: String) {
            var string = string
            string.withUTF8 { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = Foundation.write(2, bytes.baseAddress! + offset, bytes.count - offset)
                    if written <= 0 {
                        if written < 0, errno == EINTR { continue }
                        return
                    }
                    offset += written
                }
            }
        }
    }
}
