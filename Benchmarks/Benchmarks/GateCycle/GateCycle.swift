// The in-process confirmation cycle of Countersign, measured end to end through the
// public API: create session → user message → run pauses at the gate (one pending
// confirmation) → approve → resumed run completes. Built-in `demo` agent, real
// SQLiteStore (WAL, synchronous=FULL) opened by `ServerRuntime.open`, no HTTP.
//
// Benchmarks (see README.md for what each one is for):
//   GateCycle-disk        one cycle per iteration, database on a real disk file
//   GateCycle-tmpfs       the same cycle, synchronous still FULL, database on tmpfs
//                         (/dev/shm), where fsync returns at once: the fsync cost is the
//                         difference between the two
//   GateCycle-disk-x16    16 sessions driven in parallel (TaskGroup) per iteration
//   GateCycle-tmpfs-x16   the same on tmpfs
//   GateCycle-diskdb      database on disk, session workspaces (the demo tool's files)
//                         on tmpfs: the gate's durable cost without the tool's file
//                         system work
//   GateCycle-diskdb-x16  the same, 16 in parallel
//   GateCycle-disk-x16-nogroupcommit
//                         GateCycle-disk-x16 with the store's group commit off
//                         (`SQLiteStore(path:groupCommit: false)`): one fsync per write
//
// Environment:
//   COUNTERSIGN_BENCH_DISK_DIR   parent folder for the disk database (default: the
//                                system temporary folder; must not be tmpfs)
//   COUNTERSIGN_BENCH_TMPFS_DIR  parent folder for the tmpfs database (default /dev/shm;
//                                the tmpfs benchmarks are skipped when it is missing)
//   COUNTERSIGN_BENCH_SECONDS    maximum measured seconds per benchmark (default 10)
//   COUNTERSIGN_BENCH_KEEP       when set, leave each benchmark's folders in place (see
//                                Harness.remove for why disk comparisons want this)

import AgentRuntime
import Benchmark
import CountersignServer
import Foundation
import GateCore
import Storage

// MARK: Harness

struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One `ServerRuntime` on its own database in a fresh folder, and the engine the cycle
/// runs on: the runtime's own, or (`groupCommit: false`) a second engine over a second
/// `SQLiteStore` on the same file with group commit off, which writes every store call
/// as its own transaction and fsync.
struct Harness: Sendable {
    let runtime: ServerRuntime
    let engine: RunEngine
    let store: SQLiteStore
    let namespaceID: String
    let directory: URL
    /// Where the session workspaces are, when not under `directory`.
    let workspaceDirectory: URL?

    static let message = "write notes/todo.txt buy milk"

    /// A fresh folder for one benchmark under `parent`.
    static func folder(under parent: String, label: String) throws -> URL {
        let directory = URL(fileURLWithPath: parent, isDirectory: true)
            .appendingPathComponent("countersign-bench-\(label)-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// The database goes under `parent`; the session workspaces too, or under
    /// `workspaceParent` when given (the `-diskdb` benchmarks: database on disk,
    /// workspaces on tmpfs).
    static func open(under parent: String, label: String, groupCommit: Bool = true, workspaceParent: String? = nil)
        async throws -> Harness
    {
        let directory = try folder(under: parent, label: label)
        let workspaceDirectory = try workspaceParent.map { try folder(under: $0, label: label + "-workspaces") }
        var config = ServerConfiguration()
        config.databaseURL = "sqlite:\(directory.path)/bench.db"
        config.dataDirectory = (workspaceDirectory ?? directory).path
        let runtime = try await ServerRuntime.open(config)
        guard let namespace = try await runtime.store.namespace(idOrName: "default") else {
            throw BenchFailure("no default namespace after bootstrap")
        }
        var engine = runtime.engine
        guard var store = runtime.store as? SQLiteStore else { throw BenchFailure("store is not SQLiteStore") }
        if !groupCommit {
            store = try SQLiteStore(path: "\(directory.path)/bench.db", groupCommit: false)
            engine = RunEngine(
                store: store, agents: AgentRegistry([DemoAgent.make()]), clock: config.clock,
                configuration: RunEngine.Configuration(
                    confirmationTTL: config.confirmationTTL, workspaceRoot: runtime.engine.configuration.workspaceRoot))
        }
        // The point of the benchmark is the durable configuration: check it is what runs.
        let synchronous = try await store.synchronousLevel()
        let journal = try await store.journalMode()
        guard synchronous == 2, journal.lowercased() == "wal" else {
            throw BenchFailure("expected WAL + synchronous=FULL(2), got \(journal) + \(synchronous)")
        }
        guard (store.commitStatistics != nil) == groupCommit else {
            throw BenchFailure("group commit is \(store.commitStatistics != nil), expected \(groupCommit)")
        }
        return Harness(
            runtime: runtime, engine: engine, store: store, namespaceID: namespace.id, directory: directory,
            workspaceDirectory: workspaceDirectory)
    }

    /// Commits the store has made so far (group commit only).
    var commits: Int? { store.commitStatistics?.commits }

    /// The group-commit writer's time inside transactions so far, in ns.
    var writerBusy: Int? { store.commitStatistics?.writerBusyNanoseconds }

    /// One full confirmation cycle; throws when any step does not end as the contract says.
    func cycle() async throws {
        let session = try await engine.createSession(namespaceID: namespaceID, actor: "bench", agent: "demo")
        let handle = try await engine.send(sessionID: session.id, content: Self.message)
        let paused = await handle.outcome
        guard paused.status == .awaitingConfirmation, paused.pendingConfirmations.count == 1 else {
            throw BenchFailure(
                "expected awaiting_confirmation with 1 pending, got \(paused.status.rawValue) "
                    + "with \(paused.pendingConfirmations.count) (\(paused.error ?? ""))")
        }
        let decision = try await engine.decide(
            confirmationID: paused.pendingConfirmations[0].id, request: DecisionRequest(kind: .approve),
            decidedBy: "bench")
        guard let resumed = decision.resumed else { throw BenchFailure("the approval did not resume the run") }
        let done = await resumed.outcome
        guard done.status == .completed else {
            throw BenchFailure("expected completed, got \(done.status.rawValue) (\(done.error ?? ""))")
        }
    }

    /// `parallel` cycles at once, each on its own session. Returns each cycle's latency in ns.
    func concurrentCycles(_ parallel: Int) async throws -> [Int] {
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<parallel {
                group.addTask {
                    let start = ContinuousClock.now
                    try await cycle()
                    return nanoseconds(ContinuousClock.now - start)
                }
            }
            var latencies: [Int] = []
            latencies.reserveCapacity(parallel)
            for try await latency in group { latencies.append(latency) }
            return latencies
        }
    }

    /// Deletes the benchmark's folders, unless `COUNTERSIGN_BENCH_KEEP` is set. On ext4
    /// without a journal (this machine's disk) every new inode skips the inodes deleted in
    /// the last 1–6 minutes nearby, so deleting one run's tens of thousands of files slows
    /// the file creation of the runs after it; keep the folders when comparing disk runs
    /// back to back and delete them afterwards (see README.md).
    func remove() {
        guard ProcessInfo.processInfo.environment["COUNTERSIGN_BENCH_KEEP"] == nil else { return }
        try? FileManager.default.removeItem(at: directory)
        if let workspaceDirectory { try? FileManager.default.removeItem(at: workspaceDirectory) }
    }
}

/// CPU time of the whole process (every thread: the engine's tasks, GRDB's queues) in ns.
/// `cpuTotal` of the benchmark package comes from getrusage, which on Linux ticks in
/// 10 ms steps and so cannot resolve one cycle.
func processCPUNanoseconds() -> Int {
    var spec = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &spec)
    return Int(spec.tv_sec) * 1_000_000_000 + Int(spec.tv_nsec)
}

func nanoseconds(_ duration: Duration) -> Int {
    let (seconds, attoseconds) = duration.components
    return Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
}

/// Holds a benchmark's harness between its setup, iterations and teardown.
final class HarnessBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Harness?

    var harness: Harness {
        get throws {
            guard let harness = lock.withLock({ value }) else { throw BenchFailure("setup did not run") }
            return harness
        }
    }

    func set(_ harness: Harness?) {
        let old = lock.withLock {
            let old = value
            value = harness
            return old
        }
        old?.remove()
    }
}

// MARK: Locations

enum Location {
    case disk, tmpfs

    var label: String { self == .disk ? "disk" : "tmpfs" }

    var parent: String? {
        let environment = ProcessInfo.processInfo.environment
        switch self {
        case .disk:
            return environment["COUNTERSIGN_BENCH_DISK_DIR"] ?? NSTemporaryDirectory()
        case .tmpfs:
            let path = environment["COUNTERSIGN_BENCH_TMPFS_DIR"] ?? "/dev/shm"
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue
            else { return nil }
            return path
        }
    }

    /// Whether `path` is on tmpfs, from the longest matching mount point in
    /// /proc/self/mounts (Linux); nil where that cannot be told.
    static func isTmpfs(_ path: String) -> Bool? {
        guard let mounts = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) else { return nil }
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        var best: (mountPoint: String, type: String)?
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 3 else { continue }
            let mountPoint = fields[1].replacingOccurrences(of: "\\040", with: " ")
            let inside =
                mountPoint == "/" || resolved == mountPoint || resolved.hasPrefix(mountPoint + "/")
            if inside, mountPoint.count >= (best?.mountPoint.count ?? -1) {
                best = (mountPoint, String(fields[2]))
            }
        }
        return best.map { $0.type == "tmpfs" }
    }

    /// The parent folder, after checking it is the kind of filesystem the benchmark name claims.
    func checkedParent() throws -> String {
        guard let parent else { throw BenchFailure("no \(label) folder") }
        let tmpfs = Self.isTmpfs(parent)
        if self == .disk, tmpfs == true {
            throw BenchFailure(
                "\(parent) is tmpfs, so GateCycle-disk would not measure fsync; "
                    + "set COUNTERSIGN_BENCH_DISK_DIR to a folder on a real disk")
        }
        if self == .tmpfs, tmpfs == false {
            throw BenchFailure("\(parent) is not tmpfs; set COUNTERSIGN_BENCH_TMPFS_DIR to a tmpfs folder")
        }
        return parent
    }
}

/// Where a benchmark keeps its database and its session workspaces.
enum Setup {
    /// Both on disk: the product's number.
    case disk
    /// Both on tmpfs: the CPU floor.
    case tmpfs
    /// The database on disk, the workspaces (the demo tool's files) on tmpfs: the gate's
    /// own durable cost without the file system work of the tool it gates.
    case diskDatabase

    var label: String {
        switch self {
        case .disk: "disk"
        case .tmpfs: "tmpfs"
        case .diskDatabase: "diskdb"
        }
    }

    var available: Bool {
        switch self {
        case .disk: Location.disk.parent != nil
        case .tmpfs, .diskDatabase: Location.tmpfs.parent != nil
        }
    }

    func open(label: String, groupCommit: Bool = true) async throws -> Harness {
        switch self {
        case .disk:
            try await Harness.open(under: Location.disk.checkedParent(), label: label, groupCommit: groupCommit)
        case .tmpfs:
            try await Harness.open(under: Location.tmpfs.checkedParent(), label: label, groupCommit: groupCommit)
        case .diskDatabase:
            try await Harness.open(
                under: Location.disk.checkedParent(), label: label, groupCommit: groupCommit,
                workspaceParent: Location.tmpfs.checkedParent())
        }
    }
}

// MARK: Benchmarks

enum CustomMetrics {
    /// Aggregate completed cycles per second of one parallel batch.
    static var cyclesPerSecond: BenchmarkMetric {
        .custom("cycles/s (aggregate)", polarity: .prefersLarger, useScalingFactor: false)
    }
    /// Latency of each single cycle inside a parallel batch, in microseconds.
    static var cycleLatency: BenchmarkMetric {
        .custom("cycle latency (us)", polarity: .prefersSmaller, useScalingFactor: false)
    }
    /// Store commits (each one fsync of the WAL) per 100 cycles; group commit only.
    static var commitsPer100Cycles: BenchmarkMetric {
        .custom("commits per 100 cycles", polarity: .prefersSmaller, useScalingFactor: false)
    }
    /// Share of the wall-clock time the single group-commit writer spent inside
    /// transactions (SQL work, commit, fsync), in percent; group commit only.
    static var writerBusy: BenchmarkMetric {
        .custom("writer busy (%)", polarity: .prefersSmaller, useScalingFactor: false)
    }
    /// Process CPU time (all threads) spent per cycle, in microseconds.
    static var cpuPerCycle: BenchmarkMetric {
        .custom("CPU per cycle (us)", polarity: .prefersSmaller, useScalingFactor: false)
    }
}

let parallelSessions = 16

let benchmarks: @Sendable () -> Void = {
    let seconds = Int(ProcessInfo.processInfo.environment["COUNTERSIGN_BENCH_SECONDS"] ?? "") ?? 10
    let metrics: [BenchmarkMetric] = [
        .throughput, .wallClock, .mallocCountTotal, .writeSyscalls, CustomMetrics.cpuPerCycle,
        CustomMetrics.commitsPer100Cycles,
    ]

    func sequential(_ setup: Setup) {
        let box = HarnessBox()
        Benchmark(
            "GateCycle-\(setup.label)",
            configuration: .init(
                metrics: metrics, timeUnits: .microseconds, warmupIterations: 20,
                maxDuration: .seconds(seconds), maxIterations: 1_000_000, skip: !setup.available,
                setup: { box.set(try await setup.open(label: setup.label)) },
                teardown: { box.set(nil) })
        ) { benchmark in
            let harness = try box.harness
            let cpu = processCPUNanoseconds()
            let commits = harness.commits
            try await harness.cycle()
            benchmark.measurement(CustomMetrics.cpuPerCycle, (processCPUNanoseconds() - cpu) / 1_000)
            if let before = commits, let after = harness.commits {
                benchmark.measurement(CustomMetrics.commitsPer100Cycles, (after - before) * 100)
            }
        }
    }

    func parallel(_ setup: Setup, groupCommit: Bool) {
        let box = HarnessBox()
        let label = "\(setup.label)-x\(parallelSessions)"
        Benchmark(
            "GateCycle-" + label + (groupCommit ? "" : "-nogroupcommit"),
            configuration: .init(
                metrics: metrics + [
                    CustomMetrics.cyclesPerSecond, CustomMetrics.cycleLatency, CustomMetrics.writerBusy,
                ],
                timeUnits: .microseconds, warmupIterations: 3, maxDuration: .seconds(seconds),
                maxIterations: 1_000_000, skip: !setup.available,
                setup: { box.set(try await setup.open(label: label, groupCommit: groupCommit)) },
                teardown: { box.set(nil) })
        ) { benchmark in
            let harness = try box.harness
            let cpu = processCPUNanoseconds()
            let commits = harness.commits
            let busy = harness.writerBusy
            let start = ContinuousClock.now
            let latencies = try await harness.concurrentCycles(parallelSessions)
            let elapsed = nanoseconds(ContinuousClock.now - start)
            if let before = busy, let after = harness.writerBusy {
                benchmark.measurement(CustomMetrics.writerBusy, (after - before) * 100 / max(elapsed, 1))
            }
            benchmark.measurement(CustomMetrics.cyclesPerSecond, parallelSessions * 1_000_000_000 / max(elapsed, 1))
            benchmark.measurement(
                CustomMetrics.cpuPerCycle, (processCPUNanoseconds() - cpu) / 1_000 / parallelSessions)
            if let before = commits, let after = harness.commits {
                benchmark.measurement(CustomMetrics.commitsPer100Cycles, (after - before) * 100 / parallelSessions)
            }
            for latency in latencies { benchmark.measurement(CustomMetrics.cycleLatency, latency / 1_000) }
        }
    }

    sequential(.disk)
    sequential(.tmpfs)
    sequential(.diskDatabase)
    parallel(.disk, groupCommit: true)
    parallel(.tmpfs, groupCommit: true)
    parallel(.diskDatabase, groupCommit: true)
    parallel(.disk, groupCommit: false)
}
