import AgentRuntime
import Hummingbird
import Logging

/// Who is calling: the key's actor, role and namespace.
public struct Identity: Sendable, Equatable {
    public var actor: String
    public var role: Role
    public var namespaceID: String
    public var keyPrefix: String

    /// Approvers and admins see and (approvers) decide everything in the namespace.
    public var seesWholeNamespace: Bool { role == .approver || role == .admin }
}

public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var identity: Identity?
    public var requestID: String = ""

    public init(source: Source) {
        coreContext = .init(source: source)
    }

    /// The caller; only routes behind ``AuthMiddleware`` use it.
    public func requireIdentity() throws -> Identity {
        guard let identity else { throw CountersignErrorResponse.unauthenticated }
        return identity
    }
}
