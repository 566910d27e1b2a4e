import Foundation
import GateCore
import Yams

/// A mistake in a configuration file: where it is (file, line, column, and the path of
/// keys inside the document, e.g. `agents[1].policy.rules[0].when.path`) and what is
/// wrong with it.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    /// 1-based; nil when the position is not known (e.g. a YAML syntax error without one).
    public var line: Int?
    public var column: Int?
    /// Path inside the document; empty for the document itself.
    public var path: String
    public var message: String

    public init(file: String, line: Int? = nil, column: Int? = nil, path: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.path = path
        self.message = message
    }

    public var description: String {
        var location = file
        if let line {
            location += ":\(line)"
            if let column { location += ":\(column)" }
        }
        return path.isEmpty ? "\(location): \(message)" : "\(location): \(path): \(message)"
    }
}

/// A node of the YAML document with its path, for reading a configuration with errors
/// that say exactly where.
struct ConfigNode {
    let node: Node
    let path: String
    let file: String

    func error(_ message: String) -> ConfigError {
        ConfigError(file: file, line: node.mark?.line, column: node.mark?.column, path: path, message: message)
    }

    func child(_ key: String, _ node: Node) -> ConfigNode {
        let isIdentifier = !key.isEmpty && key.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
        let step = isIdentifier ? key : "[\"\(key)\"]"
        let joined = path.isEmpty ? step : (isIdentifier ? "\(path).\(step)" : "\(path)\(step)")
        return ConfigNode(node: node, path: joined, file: file)
    }

    var kind: String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar:
            if isNull { return "null" }
            switch tagName {
            case .bool: return "a boolean"
            case .int: return "an integer"
            case .float: return "a number"
            default: return "a string"
            }
        }
    }

    /// The resolved YAML tag (`int`, `float`, `bool`, `null`, `str`, …).
    var tagName: Tag.Name { Tag.Name(rawValue: node.tag.description) }

    var isNull: Bool {
        guard case .scalar = node else { return false }
        return tagName == .null
    }

    /// The entries of a mapping, in file order. Keys must be strings, appear once, and be
    /// among `allowed` (when given).
    func mapping(allowed: [String]? = nil) throws -> [(key: String, value: ConfigNode)] {
        guard case .mapping(let mapping) = node else { throw error("expected a mapping, found \(kind)") }
        var seen = Set<String>()
        var entries: [(key: String, value: ConfigNode)] = []
        for (keyNode, valueNode) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                throw ConfigNode(node: keyNode, path: path, file: file).error("keys must be strings")
            }
            let key = scalar.string
            let value = child(key, valueNode)
            let at = ConfigNode(node: keyNode, path: path, file: file)
            if !seen.insert(key).inserted { throw at.error("duplicate key '\(key)'") }
            if let allowed, !allowed.contains(key) {
                var hint = ""
                if let close = allowed.min(by: { editDistance($0, key) < editDistance($1, key) }),
                    editDistance(close, key) <= 2
                {
                    hint = " — did you mean '\(close)'?"
                }
                throw at.error(
                    "unknown key '\(key)'\(hint) (expected one of: \(allowed.joined(separator: ", ")))")
            }
            entries.append((key, value))
        }
        return entries
    }

    /// A mapping as a dictionary, checked like ``mapping(allowed:)``.
    func fields(_ allowed: [String]) throws -> [String: ConfigNode] {
        Dictionary(try mapping(allowed: allowed), uniquingKeysWith: { first, _ in first })
    }

    func list() throws -> [ConfigNode] {
        guard case .sequence(let sequence) = node else { throw error("expected a list, found \(kind)") }
        return sequence.enumerated().map { index, item in
            ConfigNode(node: item, path: "\(path)[\(index)]", file: file)
        }
    }

    /// A scalar as text (numbers as written). Null, lists and mappings are refused.
    func string() throws -> String {
        guard case .scalar(let scalar) = node, !isNull else { throw error("expected a string, found \(kind)") }
        return scalar.string
    }

    func nonEmptyString() throws -> String {
        let text = try string()
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else { throw error("must not be empty") }
        return text
    }

    func bool() throws -> Bool {
        guard case .scalar = node, tagName == .bool, let value = node.bool else {
            throw error("expected true or false, found \(kind)")
        }
        return value
    }

    func int(min: Int? = nil) throws -> Int {
        guard case .scalar = node, tagName == .int, let value = node.int else {
            throw error("expected an integer, found \(kind)")
        }
        if let min, value < min { throw error("must be at least \(min)") }
        return value
    }

    func number() throws -> Double {
        guard case .scalar = node, tagName == .int || tagName == .float, let value = node.float else {
            throw error("expected a number, found \(kind)")
        }
        return value
    }

    /// Seconds: a number (`90`, `0.5`) or a string with a unit (`500ms`, `90s`, `5m`, `1h`).
    func seconds(allowZero: Bool = false) throws -> Double {
        let value: Double
        if case .scalar = node, tagName == .int || tagName == .float, let number = node.float {
            value = number
        } else if case .scalar(let scalar) = node, !isNull {
            let text = scalar.string.trimmingCharacters(in: .whitespaces).lowercased()
            let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
            guard let (unit, factor) = units.first(where: { text.hasSuffix($0.0) }),
                let number = Double(text.dropLast(unit.count).trimmingCharacters(in: .whitespaces))
            else {
                throw error("expected seconds (a number, or a duration such as 500ms, 90s, 5m, 1h), found '\(text)'")
            }
            value = number * factor
        } else {
            throw error("expected seconds, found \(kind)")
        }
        guard value.isFinite, allowZero ? value >= 0 : value > 0 else {
            throw error(allowZero ? "must not be negative" : "must be greater than 0")
        }
        return value
    }

    /// Any YAML value as JSON (for `equals` matchers).
    func json() throws -> JSONValue {
        switch node {
        case .scalar(let scalar):
            switch tagName {
            case .null: return .null
            case .bool: return node.bool.map(JSONValue.bool) ?? .string(scalar.string)
            case .int: return node.int.map { JSONValue.int(Int64($0)) } ?? .string(scalar.string)
            case .float: return node.float.map(JSONValue.double) ?? .string(scalar.string)
            default: return .string(scalar.string)
            }
        case .sequence:
            return .array(try list().map { try $0.json() })
        case .mapping:
            var object: [String: JSONValue] = [:]
            for (key, value) in try mapping() { object[key] = try value.json() }
            return .object(object)
        }
    }
}

/// Levenshtein distance, for "did you mean" hints.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a)
    let b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = Swift.min(
                previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
