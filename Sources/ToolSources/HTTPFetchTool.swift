import AgentRuntime
import AsyncHTTPClient
import Foundation
import GateCore
import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `http_fetch`: GET a URL and return its text. Its output comes from outside, so the
/// tool is `openWorld` and taints the session.
///
/// Limits: the body is cut at `maxBytes` (the model is told), the whole fetch (every
/// redirect hop) has `timeout`, at most `maxRedirects` redirects are followed. No
/// request goes to a link-local or cloud-metadata address, nor to this server itself
/// (a loopback or local address with the server's port), unless the host is in
/// `allowedHosts` (`host` or `host:port`). Every redirect hop is checked again.
public struct HTTPFetchTool: Tool {
    public struct Limits: Sendable, Equatable {
        public var maxBytes: Int
        public var timeout: TimeInterval
        public var maxRedirects: Int
        /// Exceptions to the address checks: `host` or `host:port`, compared lowercased.
        public var allowedHosts: Set<String>

        public init(
            maxBytes: Int = 256 * 1024, timeout: TimeInterval = 10, maxRedirects: Int = 5,
            allowedHosts: Set<String> = []
        ) {
            self.maxBytes = maxBytes
            self.timeout = timeout
            self.maxRedirects = maxRedirects
            self.allowedHosts = Set(allowedHosts.map { $0.lowercased() })
        }
    }

    public var limits: Limits

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    public let descriptor = ToolDescriptor(
        name: "http_fetch", description: "Fetch a web page or API response over HTTP(S) with GET.",
        inputSchema: [
            "type": "object", "properties": ["url": ["type": "string", "description": "http:// or https:// URL"]],
            "required": ["url"], "additionalProperties": false,
        ],
        flags: ToolFlags(effect: .read, openWorld: true, idempotent: true), toolKey: "http.fetch")

    public func summary(of params: JSONValue) -> String { "Fetch \(params["url"]?.stringValue ?? "?")" }

    public func run(_ params: JSONValue, context: ToolContext) async -> ToolOutput {
        let requested = params["url"]?.stringValue ?? ""
        do {
            return try await OutboundHTTP.within(limits.timeout) {
                try await fetch(requested, serverPorts: context.serverPorts)
            }
        } catch let error where OutboundHTTP.isTimeout(error) {
            return .failure("Fetching \(requested) took longer than \(WebhookTool.seconds(limits.timeout)).")
        } catch {
            return .failure("Fetching \(requested) failed: \(error)")
        }
    }

    private func fetch(_ requested: String, serverPorts: Set<Int>) async throws -> ToolOutput {
        let deadline = NIODeadline.now() + .milliseconds(Int64(limits.timeout * 1000))
        var url = requested
        var hops = 0
        do {
            while true {
                guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(),
                    ["http", "https"].contains(scheme), let host = parsed.host, !host.isEmpty
                else { return .failure("Only http:// and https:// URLs can be fetched (got \(url)).") }
                let port = parsed.port ?? (scheme == "https" ? 443 : 80)
                if let refusal = FetchGuard.refusal(
                    host: host, port: port, allowed: limits.allowedHosts, serverPorts: serverPorts)
                {
                    return .failure("Fetching \(url) is not allowed: \(refusal).")
                }
                var request = HTTPClientRequest(url: url)
                request.method = .GET
                request.headers.add(name: "User-Agent", value: "countersign-http-fetch/1")
                let response = try await OutboundHTTP.client.execute(request, deadline: deadline)
                let code = Int(response.status.code)
                if [301, 302, 303, 307, 308].contains(code), let location = response.headers.first(name: "Location") {
                    guard hops < limits.maxRedirects else {
                        return .failure("Fetching \(requested) stopped after \(limits.maxRedirects) redirects.")
                    }
                    guard let next = URL(string: location, relativeTo: parsed)?.absoluteString else {
                        return .failure("Fetching \(url) answered a redirect to an invalid location '\(location)'.")
                    }
                    hops += 1
                    url = next
                    continue
                }
                let (text, truncated) = try await OutboundHTTP.collect(response.body, limit: limits.maxBytes)
                var content = "HTTP \(code)\n\(text)"
                if truncated { content += "\n[truncated: the body is longer than \(limits.maxBytes) bytes]" }
                return ToolOutput(
                    success: (200..<300).contains(code), content: content,
                    data: ["status": .int(Int64(code)), "url": .string(url), "truncated": .bool(truncated)])
            }
        } catch let error where OutboundHTTP.isTimeout(error) {
            throw error
        } catch {
            return .failure("Fetching \(url) failed: \(error)")
        }
    }
}

/// The address checks of `http_fetch`.
public enum FetchGuard {
    /// Names of cloud metadata services, refused whatever they resolve to.
    static let metadataHosts: Set<String> = ["metadata.google.internal", "metadata", "metadata.azure.internal"]

    /// Why a request to `host:port` is refused, or nil when it may go out.
    public static func refusal(host: String, port: Int, allowed: Set<String>, serverPorts: Set<Int>) -> String? {
        var name = host.lowercased()
        if name.hasPrefix("["), name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        let written = host.lowercased()
        if allowed.contains(name) || allowed.contains(written) || allowed.contains("\(written):\(port)") { return nil }
        if metadataHosts.contains(name) { return "\(host) is a cloud metadata service" }
        let addresses = resolve(name)
        if addresses.isEmpty { return nil }  // Let the HTTP client report the DNS failure.
        for address in addresses {
            if let reason = blocked(address) { return "\(host) resolves to \(address.text), \(reason)" }
            if serverPorts.contains(port),
                address.isLoopback || address.isUnspecified || localAddresses.contains(address)
            {
                return "\(host):\(port) is this Countersign server"
            }
        }
        return nil
    }

    /// Link-local (169.254.0.0/16, fe80::/10, where cloud metadata lives) and the
    /// well-known metadata addresses that are not link-local.
    static func blocked(_ address: IPAddress) -> String? {
        switch address {
        case .v4(let bytes):
            if bytes[0] == 169 && bytes[1] == 254 { return "a link-local (cloud metadata) address" }
            if bytes == [100, 100, 100, 200] { return "a cloud metadata address" }
            if bytes[0] == 0 { return "not a routable address" }
        case .v6(let bytes):
            if bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80 { return "a link-local address" }
            if bytes[0] == 0xfd && bytes[1] == 0x00 && bytes[2] == 0x0e && bytes[3] == 0xc2 {
                return "a cloud metadata address"
            }
            if let mapped = address.mappedV4 { return blocked(mapped) }
        }
        return nil
    }

    /// The addresses `host` resolves to (an IP literal resolves to itself).
    static func resolve(_ host: String) -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
            hints.ai_socktype = SOCK_STREAM
        #endif
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var addresses: [IPAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            if let address = info.pointee.ai_addr.flatMap(IPAddress.init(sockaddr:)) { addresses.append(address) }
            cursor = info.pointee.ai_next
        }
        return addresses
    }

    /// This machine's interface addresses, read once.
    static let localAddresses: Set<IPAddress> = {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(first) }
        var addresses: Set<IPAddress> = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            if let address = entry.pointee.ifa_addr.flatMap(IPAddress.init(sockaddr:)) { addresses.insert(address) }
            cursor = entry.pointee.ifa_next
        }
        return addresses
    }()
}

/// An IPv4 or IPv6 address as bytes.
public enum IPAddress: Hashable, Sendable {
    case v4([UInt8])
    case v6([UInt8])

    init?(sockaddr pointer: UnsafeMutablePointer<sockaddr>) {
        switch Int32(pointer.pointee.sa_family) {
        case AF_INET:
            let bytes = pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                withUnsafeBytes(of: address.pointee.sin_addr) { Array($0) }
            }
            self = .v4(bytes)
        case AF_INET6:
            let bytes = pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                withUnsafeBytes(of: address.pointee.sin6_addr) { Array($0) }
            }
            self = .v6(bytes)
        default:
            return nil
        }
    }

    var mappedV4: IPAddress? {
        guard case .v6(let bytes) = self, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff
        else { return nil }
        return .v4(Array(bytes[12..<16]))
    }

    var isLoopback: Bool {
        switch self {
        case .v4(let bytes): return bytes[0] == 127
        case .v6(let bytes): return bytes == Array(repeating: 0, count: 15) + [1] || (mappedV4?.isLoopback ?? false)
        }
    }

    var isUnspecified: Bool {
        switch self {
        case .v4(let bytes): return bytes.allSatisfy { $0 == 0 }
        case .v6(let bytes): return bytes.allSatisfy { $0 == 0 }
        }
    }

    var text: String {
        switch self {
        case .v4(let bytes): return bytes.map(String.init).joined(separator: ".")
        case .v6(let bytes):
            return stride(from: 0, to: 16, by: 2).map {
                String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16)
            }
            .joined(separator: ":")
        }
    }
}
