import CountersignClient
import CountersignTesting
import Foundation
import GateCore
import Testing

/// Reads a session's SSE stream from the start until an event of `type` arrives
/// (for a given run, when `runID` is set). Synchronises on the durable log, never on time.
func waitForEvent(
    _ client: CountersignClient, session: String, type: String, runID: String? = nil
) async throws -> ServerSentEvent {
    for try await event in client.eventStream(.GET, "/v1/sessions/\(session)/events") where event.event == type {
        if let runID, (try? JSONValue.parse(event.data))?["run_id"]?.stringValue != runID { continue }
        return event
    }
    throw CountersignError(.internal, "stream ended before \(type)")
}

extension JSONValue {
    var string: String { stringValue ?? "" }
}

/// Asserts the native error shape and code.
func expectError(
    _ response: CountersignClient.RawResponse, status: Int, code: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(response.status == status, "body: \(response.text)", sourceLocation: sourceLocation)
    let error = response.json?["error"]
    #expect(error?["code"]?.stringValue == code, "body: \(response.text)", sourceLocation: sourceLocation)
    #expect(error?["message"]?.stringValue?.isEmpty == false, sourceLocation: sourceLocation)
    #expect(error?["details"]?.objectValue != nil, sourceLocation: sourceLocation)
}

/// Creates a demo session and sends `content`; returns the session id and the reply.
func startDemo(_ client: CountersignClient, _ content: String) async throws -> (String, JSONValue) {
    let session = try await client.createSession(agent: "demo")
    let id = session["id"]!.string
    let reply = try await client.send(sessionID: id, content: content)
    return (id, reply)
}
