import AgentRuntime
import Foundation
import GateCore
import Hummingbird

/// Requires `Authorization: Bearer sk_…` and resolves the caller's namespace. A key
/// belongs to one namespace; `X-Namespace` (id or name), when sent, must name it.
/// Anything else is 401 (bad key) or 404 (another namespace), never a hint of what
/// exists elsewhere.
public struct AuthMiddleware: RouterMiddleware {
    public typealias Context = AppRequestContext
    let store: any Store
    let clock: any WallClock

    public init(store: any Store, clock: any WallClock) {
        self.store = store
        self.clock = clock
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard let header = request.headers[.authorization] else { throw CountersignErrorResponse.unauthenticated }
        let parts = header.split(separator: " " as Character, maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw CountersignErrorResponse.unauthenticated
        }
        let presented = parts[1].trimmingWhitespace(includingNewlines: false)
        guard let key = try await APIKeys.verify(presented, store: store, now: clock.now()) else {
            throw CountersignError(.unauthenticated, "The API key is unknown, revoked or expired.")
        }
        if let wanted = request.headers[.namespace], !wanted.isEmpty {
            guard let namespace = try await store.namespace(idOrName: wanted), namespace.id == key.namespaceID else {
                throw CountersignError.notFound("Namespace")
            }
        }
        var context = context
        context.identity = Identity(
            actor: key.actor, role: key.role, namespaceID: key.namespaceID, keyPrefix: key.prefix)
        context.logger[metadataKey: "actor"] = .string(key.actor)
        return try await next(request, context)
    }
}
