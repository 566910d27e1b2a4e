import Foundation
import Synchronization

/// Named points where a test build of the server kills itself with SIGKILL, to prove
/// crash behaviour at the exact instants that matter (between the committed claim and
/// the tool, between the tool and its recorded result, …). Configured only through
/// `COUNTERSIGN_FAILPOINTS`, e.g. `after-claim=0.2,after-tool=0.2` with
/// `COUNTERSIGN_FAILPOINT_SEED=42`; empty (the default) costs one dictionary lookup.
public final class Failpoints: Sendable {
    public static let names = ["after-decide", "after-claim", "after-tool", "before-model", "after-step"]

    private let probabilities: [String: Double]
    private let generator: Mutex<SplitMix64>

    public init(probabilities: [String: Double] = [:], seed: UInt64 = 0) {
        self.probabilities = probabilities
        self.generator = Mutex(SplitMix64(seed: seed))
    }

    public static let none = Failpoints()

    /// Parses `name=probability,…`; unknown names or bad numbers are an error.
    public static func parse(_ text: String, seed: UInt64) throws -> Failpoints {
        var probabilities: [String: Double] = [:]
        for item in text.split(separator: ",") where !item.isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, names.contains(parts[0]), let p = Double(parts[1]), (0...1).contains(p) else {
                throw FailpointError(text: String(item))
            }
            probabilities[parts[0]] = p
        }
        return Failpoints(probabilities: probabilities, seed: seed)
    }

    public struct FailpointError: Error, CustomStringConvertible {
        public var text: String
        public var description: String {
            "Bad failpoint '\(text)': use name=probability with a name from \(Failpoints.names.joined(separator: ", "))."
        }
    }

    /// Kills the process with SIGKILL with the configured probability.
    public func hit(_ name: String) {
        guard let probability = probabilities[name] else { return }
        let draw = generator.withLock { $0.nextUnit() }
        if draw < probability {
            FileHandle.standardError.write(Data("failpoint \(name): SIGKILL\n".utf8))
            kill(getpid(), SIGKILL)
        }
    }
}

/// A small, seedable generator (Steele, Lea, Flood: SplitMix64).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func nextUnit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
