import AgentRuntime
import Foundation
import GateCore
import Hummingbird
import NIOCore

/// `/health`, `/ready`, `/metrics`, `/openapi.json`: no key needed.
struct HealthController {
    let store: any Store
    let engine: RunEngine

    func register(on router: Router<AppRequestContext>) {
        router.get("health") { _, _ in JSONResponse.make(["status": "ok"]) }
        router.get("ready", use: ready)
        router.get("metrics", use: metrics)
        router.get("openapi.json", use: openAPI)
    }

    @Sendable func ready(_ request: Request, context: AppRequestContext) async throws -> Response {
        do {
            try await store.ping()
        } catch {
            throw CountersignError(.unavailable, "The store is not reachable.")
        }
        return JSONResponse.make(["status": "ready", "store": "ok", "migrations": "done"])
    }

    @Sendable func metrics(_ request: Request, context: AppRequestContext) async throws -> Response {
        var text = ""
        text += "# HELP countersign_active_runs Runs being driven by this process.\n"
        text += "# TYPE countersign_active_runs gauge\n"
        text += "countersign_active_runs \(engine.activeDrivers)\n"
        text += "# HELP countersign_event_subscribers Open event streams.\n"
        text += "# TYPE countersign_event_subscribers gauge\n"
        text += "countersign_event_subscribers \(engine.notifier.subscriberCount)\n"
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    static let openAPIDocument: ByteBuffer = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json", subdirectory: "Resources"),
            let data = try? Data(contentsOf: url)
        else { return ByteBuffer(string: "{}") }
        return ByteBuffer(bytes: data)
    }()

    @Sendable func openAPI(_ request: Request, context: AppRequestContext) async throws -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: Self.openAPIDocument))
    }
}
