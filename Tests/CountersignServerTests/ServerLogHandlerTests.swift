import Logging
import Synchronization
import Testing

@testable import CountersignServer

/// Collects what a handler writes.
final class Lines: TextOutputStream, Sendable {
    private let text = Mutex("")
    func write(_ string: String) { text.withLock { $0 += string } }
    var value: String { text.withLock { $0 } }
}

@Suite struct ServerLogHandlerTests {
    /// The same lines as swift-log's StreamLogHandler, after the timestamp: metadata set
    /// on the logger, given with the message, from a provider and from an error.
    @Test func writesWhatStreamLogHandlerWrites() {
        struct Failure: Error, CustomStringConvertible { var description: String { "disk full" } }
        let provider = Logger.MetadataProvider { ["trace": "t1", "actor": "provider"] }
        let ours = Lines()
        let theirs = Lines()
        var loggers = [
            Logger(label: "countersign.test") { ServerLogHandler(label: $0, stream: ours, metadataProvider: provider) },
            Logger(label: "countersign.test") {
                StreamLogHandler(label: $0, stream: theirs, metadataProvider: provider)
            },
        ]
        for index in loggers.indices {
            loggers[index].logLevel = .debug
            loggers[index][metadataKey: "request_id"] = "req_1"
            loggers[index][metadataKey: "actor"] = "alice"
            loggers[index].trace("not written")
            loggers[index].info("plain")
            loggers[index].warning("with metadata", metadata: ["path": "/v1/x", "actor": "bob"])
            loggers[index].error("with an error", error: Failure())
            loggers[index][metadataKey: "request_id"] = nil
            loggers[index].notice("after a removal")
        }
        let strip = { (text: String) in
            text.split(separator: "\n").map { line in
                line.split(separator: " ", maxSplits: 1).last.map(String.init) ?? ""
            }
        }
        #expect(strip(ours.value).count == 4)
        #expect(strip(ours.value) == strip(theirs.value))
        #expect(ours.value.contains("warning countersign.test: actor=bob path=/v1/x request_id=req_1 trace=t1"))
    }
}
