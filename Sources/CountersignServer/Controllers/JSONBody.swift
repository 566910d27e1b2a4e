import Foundation
import GateCore
import Hummingbird
import NIOCore

/// A decoded JSON object body with typed, validating accessors. Unknown fields are
/// refused, so a misspelt `edited_parms` is an error instead of a silent no-op.
struct JSONBody {
    let members: [String: JSONValue]
    let path: String

    init(members: [String: JSONValue], path: String = "") {
        self.members = members
        self.path = path
    }

    static func read(_ request: Request, limit: Int, allowed: Set<String>) async throws -> JSONBody {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw CountersignError(.tooLarge, "The request body is larger than \(limit) bytes.")
        }
        guard buffer.readableBytes > 0 else { throw CountersignError.validation("The request body is empty.") }
        let value = try JSONValue.parse(Data(buffer.readableBytesView))
        return try JSONBody(value, allowed: allowed)
    }

    init(_ value: JSONValue, allowed: Set<String>, path: String = "") throws {
        guard case .object(let members) = value else {
            throw CountersignError.validation("\(path.isEmpty ? "The body" : path) must be a JSON object.")
        }
        let unknown = Set(members.keys).subtracting(allowed).sorted()
        if !unknown.isEmpty {
            throw CountersignError.validation(
                "Unknown field\(unknown.count > 1 ? "s" : ""): \(unknown.joined(separator: ", ")).",
                details: ["fields": .array(unknown.map { .string(path + $0) })])
        }
        self.members = members
        self.path = path
    }

    private func fail(_ field: String, _ message: String) -> CountersignError {
        CountersignError.validation("\(path)\(field) \(message).", details: ["field": .string(path + field)])
    }

    func string(_ field: String, required: Bool = false, maxLength: Int = 10_000) throws -> String? {
        guard let value = members[field], value != .null else {
            if required { throw fail(field, "is required") }
            return nil
        }
        guard case .string(let text) = value else { throw fail(field, "must be a string") }
        guard text.count <= maxLength else { throw fail(field, "is longer than \(maxLength) characters") }
        return text
    }

    func requiredString(_ field: String, maxLength: Int = 10_000) throws -> String {
        try string(field, required: true, maxLength: maxLength)!
    }

    func bool(_ field: String, required: Bool = false) throws -> Bool? {
        guard let value = members[field], value != .null else {
            if required { throw fail(field, "is required") }
            return nil
        }
        guard case .bool(let flag) = value else { throw fail(field, "must be true or false") }
        return flag
    }

    func object(_ field: String) throws -> JSONValue? {
        guard let value = members[field], value != .null else { return nil }
        guard case .object = value else { throw fail(field, "must be a JSON object") }
        return value
    }

    func oneOf<T: RawRepresentable>(_ field: String, _ type: T.Type, required: Bool = false) throws -> T?
    where T.RawValue == String, T: CaseIterable {
        guard let text = try string(field, required: required) else { return nil }
        guard let value = T(rawValue: text) else {
            throw fail(field, "must be one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return value
    }

    func date(_ field: String) throws -> Date? {
        guard let text = try string(field) else { return nil }
        guard let date = Timestamp.parse(text) else { throw fail(field, "must be an ISO 8601 date-time") }
        return date
    }
}

extension Request {
    /// Whether the client asked for Server-Sent Events.
    var wantsEventStream: Bool {
        headers[.accept]?.contains("text/event-stream") ?? false
    }

    func query(_ name: String) -> String? {
        uri.queryParameters.get(name)
    }

    func queryInt(_ name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = query(name) else { return value }
        guard let number = Int(text), range.contains(number) else {
            throw CountersignError.validation(
                "Query parameter \(name) must be an integer from \(range.lowerBound) to \(range.upperBound).",
                details: ["field": .string(name)])
        }
        return number
    }
}
