import AgentRuntime
import Foundation
import GateCore
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

enum CountersignErrorResponse {
    static let unauthenticated = CountersignError(
        .unauthenticated, "A valid API key is required: send Authorization: Bearer sk_….")
}

extension HTTPField.Name {
    static let requestID = HTTPField.Name("X-Request-Id")!
    static let namespace = HTTPField.Name("X-Namespace")!
    static let lastEventID = HTTPField.Name("Last-Event-ID")!
    static let retryAfter = HTTPField.Name("Retry-After")!
}

/// Gives every request an id and turns every error into the native error shape
/// `{"error": {"code", "message", "details"}}`. A 5xx never carries internals: it is
/// logged with the request id, which the body carries too.
public struct ErrorMiddleware: RouterMiddleware {
    public typealias Context = AppRequestContext

    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        var context = context
        context.requestID = Identifier.make("req", length: 16)
        context.logger[metadataKey: "request_id"] = .string(context.requestID)
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            let apiError = Self.translate(error)
            if apiError.code == .internal || apiError.code == .unavailable {
                context.logger.error(
                    "request failed",
                    metadata: ["error": "\(String(reflecting: error))", "path": "\(request.uri.path)"])
            }
            response = Self.response(for: apiError, requestID: context.requestID)
        }
        response.headers[.requestID] = context.requestID
        return response
    }

    static func translate(_ error: any Error) -> CountersignError {
        switch error {
        case let error as CountersignError:
            return error
        case is NIOTooManyBytesError:
            return CountersignError(.tooLarge, "The request body is too large.")
        case let error as HTTPError:
            switch error.status {
            case .notFound: return CountersignError(.notFound, "No such route.")
            case .methodNotAllowed: return CountersignError(.notFound, "No such route for this method.")
            case .contentTooLarge: return CountersignError(.tooLarge, "The request body is too large.")
            case .badRequest, .unprocessableContent:
                return CountersignError(.validationError, error.body ?? "The request is malformed.")
            case .unauthorized: return CountersignErrorResponse.unauthenticated
            default:
                return CountersignError(.internal, "The server could not complete the request.")
            }
        case is DecodingError:
            return CountersignError(.validationError, "The request body does not have the expected shape.")
        default:
            return CountersignError(.internal, "The server could not complete the request.")
        }
    }

    static func response(for error: CountersignError, requestID: String) -> Response {
        var details = error.details ?? .object([:])
        if error.httpStatus >= 500 {
            error.code == .internal ? (details = .object([:])) : ()
            details = details.setting("request_id", .string(requestID))
        }
        let body: JSONValue = [
            "error": ["code": .string(error.code.rawValue), "message": .string(error.message), "details": details]
        ]
        var response = JSONResponse.make(status: HTTPResponse.Status(code: error.httpStatus), body)
        if error.code == .rateLimited, let retry = error.details?["retry_after"]?.intValue {
            response.headers[.retryAfter] = String(retry)
        }
        return response
    }
}

/// JSON responses from `JSONValue`s.
public enum JSONResponse {
    public static func make(status: HTTPResponse.Status = .ok, _ body: JSONValue) -> Response {
        var buffer = ByteBuffer()
        buffer.writeString(body.canonicalString)
        buffer.writeString("\n")
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: buffer))
    }
}
