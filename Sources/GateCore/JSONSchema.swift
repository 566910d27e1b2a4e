import Foundation

/// A validator for the subset of JSON Schema that tool input schemas use: `type`
/// (one or several), `properties`, `required`, `additionalProperties` (boolean or
/// schema), `items`, `enum`, `const`, `minLength`/`maxLength`, `minimum`/`maximum`,
/// `minItems`/`maxItems` and `pattern`. Unknown keywords are ignored, as the
/// specification asks of validators.
public struct JSONSchema: Sendable, Equatable {
    public let document: JSONValue

    public init(_ document: JSONValue) {
        self.document = document
    }

    public struct Violation: Sendable, Equatable, CustomStringConvertible {
        /// JSON Pointer to the offending value, `""` for the root.
        public var path: String
        public var message: String
        public var description: String { path.isEmpty ? message : "\(path): \(message)" }
    }

    public func validate(_ value: JSONValue) -> [Violation] {
        var violations: [Violation] = []
        Self.check(value, against: document, path: "", into: &violations)
        return violations
    }

    private static func check(_ value: JSONValue, against schema: JSONValue, path: String, into out: inout [Violation])
    {
        if case .bool(let allowed) = schema {
            if !allowed { out.append(Violation(path: path, message: "no value is allowed here")) }
            return
        }
        guard let schema = schema.objectValue else { return }

        if let type = schema["type"] {
            let names = type.arrayValue?.compactMap(\.stringValue) ?? type.stringValue.map { [$0] } ?? []
            if !names.isEmpty, !names.contains(where: { matchesType(value, $0) }) {
                out.append(
                    Violation(path: path, message: "expected \(names.joined(separator: " or ")), got \(value.typeName)")
                )
                return
            }
        }
        if let options = schema["enum"]?.arrayValue,
            !options.contains(where: { $0.canonicalString == value.canonicalString })
        {
            out.append(
                Violation(
                    path: path, message: "must be one of \(options.map(\.canonicalString).joined(separator: ", "))"))
        }
        if let constant = schema["const"], constant.canonicalString != value.canonicalString {
            out.append(Violation(path: path, message: "must be \(constant.canonicalString)"))
        }

        switch value {
        case .string(let text):
            // JSON Schema counts characters as RFC 8259 does: Unicode code points, not grapheme clusters.
            let length = text.unicodeScalars.count
            if let min = schema["minLength"]?.intValue, length < min {
                out.append(Violation(path: path, message: "must be at least \(min) characters"))
            }
            if let max = schema["maxLength"]?.intValue, length > max {
                out.append(Violation(path: path, message: "must be at most \(max) characters"))
            }
            if let pattern = schema["pattern"]?.stringValue,
                let regex = try? NSRegularExpression(pattern: pattern),
                regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) == nil
            {
                out.append(Violation(path: path, message: "must match \(pattern)"))
            }
        case .int, .double:
            let number = value.doubleValue ?? 0
            if let min = schema["minimum"]?.doubleValue, number < min {
                out.append(Violation(path: path, message: "must be ≥ \(JSONValue.canonicalNumber(min))"))
            }
            if let max = schema["maximum"]?.doubleValue, number > max {
                out.append(Violation(path: path, message: "must be ≤ \(JSONValue.canonicalNumber(max))"))
            }
        case .array(let items):
            if let min = schema["minItems"]?.intValue, items.count < min {
                out.append(Violation(path: path, message: "must have at least \(min) items"))
            }
            if let max = schema["maxItems"]?.intValue, items.count > max {
                out.append(Violation(path: path, message: "must have at most \(max) items"))
            }
            if let itemSchema = schema["items"] {
                for (index, item) in items.enumerated() {
                    check(item, against: itemSchema, path: "\(path)/\(index)", into: &out)
                }
            }
        case .object(let members):
            let properties = schema["properties"]?.objectValue ?? [:]
            for name in schema["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] where members[name] == nil {
                out.append(Violation(path: "\(path)/\(escape(name))", message: "is required"))
            }
            for name in members.keys.sorted() {
                let member = members[name]!
                let memberPath = "\(path)/\(escape(name))"
                if let propertySchema = properties[name] {
                    check(member, against: propertySchema, path: memberPath, into: &out)
                } else if let additional = schema["additionalProperties"] {
                    if case .bool(false) = additional {
                        out.append(Violation(path: memberPath, message: "is not an allowed property"))
                    } else {
                        check(member, against: additional, path: memberPath, into: &out)
                    }
                }
            }
        case .null, .bool:
            break
        }
    }

    private static func matchesType(_ value: JSONValue, _ name: String) -> Bool {
        switch (name, value) {
        case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object):
            return true
        case ("integer", .int): return true
        case ("integer", .double(let number)): return number.rounded() == number
        case ("number", .int), ("number", .double): return true
        default: return false
        }
    }

    private static func escape(_ name: String) -> String {
        name.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }
}
