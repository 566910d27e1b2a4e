/// The one error type of Countersign. Every failure a client can see carries one of
/// these codes; each API surface maps codes to its own status codes in one place.
public struct CountersignError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable, Codable {
        case validationError = "validation_error"
        case unauthenticated
        case forbidden
        case notFound = "not_found"
        case alreadyDecided = "already_decided"
        case paramsMismatch = "params_mismatch"
        case confirmationPending = "confirmation_pending"
        case sessionBusy = "session_busy"
        case expired
        case tooLarge = "too_large"
        case rateLimited = "rate_limited"
        case unavailable
        case `internal`
    }

    public var code: Code
    public var message: String
    public var details: JSONValue?

    public init(_ code: Code, _ message: String, details: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// The HTTP status of the native API for this code.
    public var httpStatus: Int {
        switch code {
        case .validationError: 400
        case .unauthenticated: 401
        case .forbidden: 403
        case .notFound: 404
        case .alreadyDecided, .paramsMismatch, .confirmationPending, .sessionBusy: 409
        case .expired: 410
        case .tooLarge: 413
        case .rateLimited: 429
        case .unavailable: 503
        case .internal: 500
        }
    }

    public static func notFound(_ what: String) -> CountersignError {
        CountersignError(.notFound, "\(what) not found.")
    }

    public static func validation(_ message: String, details: JSONValue? = nil) -> CountersignError {
        CountersignError(.validationError, message, details: details)
    }
}
