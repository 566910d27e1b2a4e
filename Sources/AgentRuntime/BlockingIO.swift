import Dispatch
import Synchronization

/// Runs blocking file-system work (mkdir, a write that ends in fsync) on threads of its
/// own instead of Swift's cooperative pool, which has one thread per core: an fsync
/// there waits for the disk with a core's worth of sessions stalled behind it. With 16
/// gate cycles in flight on the 2-core benchmark machine, the workspace writes' fsyncs
/// held both pool threads often enough that CPU sat idle (docs/performance.md).
///
/// The work is spread over 16 serial queues (each gets a thread of its own when busy,
/// which libdispatch's shared concurrent queues do not promise on Linux), round-robin.
public enum BlockingIO {
    private static let lanes = 16
    private static let queues: [DispatchQueue] = (0..<lanes).map {
        DispatchQueue(label: "countersign.blocking-io.\($0)", qos: .userInitiated)
    }
    private static let next = Atomic<Int>(0)

    /// Runs `body` on a blocking-I/O thread and returns its result.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let lane = next.wrappingAdd(1, ordering: .relaxed).oldValue & (lanes - 1)
        return try await withCheckedThrowingContinuation { continuation in
            queues[lane].async { continuation.resume(with: Result { try body() }) }
        }
    }

    /// ``run(_:)`` for work that cannot throw.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        let lane = next.wrappingAdd(1, ordering: .relaxed).oldValue & (lanes - 1)
        return await withCheckedContinuation { continuation in
            queues[lane].async { continuation.resume(returning: body()) }
        }
    }
}
