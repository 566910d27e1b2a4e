import AgentRuntime
import CountersignTesting
import Foundation
import GRDB
import GateCore
import Testing

@testable import Storage

/// A database file of its own in a fresh temporary folder. Tests run in parallel: no
/// two share a file. Call ``remove()`` (in a `defer`) when done.
struct TemporaryDatabase {
    let directory: URL
    var path: String { directory.appendingPathComponent("countersign.db").path }

    init() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("countersign-storage-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }
}

@Suite("SQLiteStore")
struct SQLiteStoreTests {
    @Test("Store conformance", arguments: StoreConformance.Check.allCases)
    func conformance(check: StoreConformance.Check) async throws {
        let database = try TemporaryDatabase()
        defer { database.remove() }
        let path = database.path
        try await StoreConformance.run(check) { try SQLiteStore(path: path) }
    }

    @Test("WAL journal and synchronous=FULL from the first connection on")
    func pragmas() async throws {
        let database = try TemporaryDatabase()
        defer { database.remove() }
        let store = try SQLiteStore(path: database.path)
        #expect(try await store.synchronousLevel() == 2)
        #expect(try await store.journalMode() == "wal")
        try await store.migrate()
        #expect(try await store.synchronousLevel() == 2)
        #expect(try await store.journalMode() == "wal")

        // And again on a store opened on an existing file.
        let reopened = try SQLiteStore(path: database.path)
        #expect(try await reopened.synchronousLevel() == 2)
        #expect(try await reopened.journalMode() == "wal")
    }

    /// The queries that must stay fast with many rows (the pending inbox, expiry, crash
    /// recovery) are answered from the v4 indexes, which hold only the rows in the state
    /// the query looks for; none of them scans its table.
    @Test("The inbox, expiry and recovery queries use their partial indexes")
    func queryPlans() async throws {
        let database = try TemporaryDatabase()
        defer { database.remove() }
        let store = try SQLiteStore(path: database.path)
        try await store.migrate()
        let plans: [(sql: String, index: String)] = [
            (
                "SELECT c.* FROM confirmations c WHERE c.namespace_id = 'n' AND c.status = 'pending' "
                    + "ORDER BY c.created_at, c.id LIMIT 50", "confirmations_pending"
            ),
            (
                "SELECT c.* FROM confirmations c WHERE c.namespace_id = 'n' AND c.status = 'denied' "
                    + "ORDER BY c.created_at, c.id LIMIT 50", "confirmations_namespace"
            ),
            (
                "SELECT * FROM confirmations WHERE status = 'pending' AND expires_at <= 5 ORDER BY expires_at",
                "confirmations_due"
            ),
            ("SELECT MIN(expires_at) FROM confirmations WHERE status = 'pending'", "confirmations_due"),
            ("SELECT * FROM tool_calls WHERE status = 'executing'", "tool_calls_executing"),
            ("SELECT id FROM runs WHERE status = 'running' ORDER BY created_at", "runs_running"),
            ("SELECT COUNT(*) FROM confirmations WHERE run_id = 'r' AND status = 'pending'", "confirmations_run"),
        ]
        for (sql, index) in plans {
            let plan = try await store.pool.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql).map { $0["detail"] as String }
            }.joined(separator: "; ")
            #expect(
                plan.contains("USING INDEX \(index)") || plan.contains("USING COVERING INDEX \(index)"),
                "\(sql) → \(plan)")
        }
    }

    /// A group-commit batch runs each write in a savepoint; its statement journal must
    /// stay in memory rather than spill into a temporary file (2 = MEMORY).
    @Test("Statement journals stay in memory on the writer and the readers")
    func temporaryStoreInMemory() async throws {
        let database = try TemporaryDatabase()
        defer { database.remove() }
        let store = try SQLiteStore(path: database.path)
        try await store.migrate()
        let writer = try await store.pool.writeWithoutTransaction { db in
            try Int.fetchOne(db, sql: "PRAGMA temp_store")
        }
        let reader = try await store.pool.read { db in try Int.fetchOne(db, sql: "PRAGMA temp_store") }
        #expect(writer == 2)
        #expect(reader == 2)
    }

    /// SPEC §2.9: a restarted server finds every session, pending confirmation, event
    /// and audit entry, and the pending confirmation can still be decided. With a
    /// schema version, the data is written under that older schema and the reopened
    /// store migrates it first (an upgrade with a paused run in the file).
    @Test(
        "Everything committed survives closing and reopening the file, and upgrading its schema",
        arguments: [nil, "v3_policy_provenance"])
    func durableAcrossReopen(writtenUnder schema: String?) async throws {
        let database = try TemporaryDatabase()
        defer { database.remove() }
        let written = try await writeAndClose(path: database.path, schema: schema)

        let store = try SQLiteStore(path: database.path)
        try await store.migrate()
        let world = StoreScenario(store: store, namespace: written.namespace)
        #expect(try await store.namespaces() == [written.namespace])
        #expect(try await store.namespace(idOrName: written.namespace.name) == written.namespace)
        #expect(try await store.key(prefix: written.key.prefix) == written.key)
        #expect(try await store.session(id: written.session.id) == written.session)
        #expect(try await world.allEvents(of: written.session.id) == written.events)
        #expect(try await world.allAudit() == written.audit)
        #expect(try await store.confirmation(id: written.confirmation.id) == written.confirmation)
        #expect(try await store.runSnapshot(runID: written.run.id) == written.snapshot)
        #expect(try await store.history(sessionID: written.session.id) == written.history)
        #expect(try await store.nextExpiry() == written.confirmation.expiresAt)
        let inbox = try await store.confirmations(
            namespaceID: written.namespace.id, filter: ConfirmationFilter(status: .pending))
        #expect(inbox == [written.confirmation])
        #expect(try await store.recoverAfterCrash(now: StoreFixtures.time(seconds: 50)).isEmpty, "the run was paused")

        let outcome = try await store.decide(
            confirmationID: written.confirmation.id,
            request: DecisionRequest(kind: .approve, paramsHash: written.confirmation.paramsHash), decidedBy: "alice",
            grantAllowed: false, now: StoreFixtures.time(seconds: 60))
        #expect(outcome.confirmation.status == .approved)
        #expect(outcome.resumeRunID == written.run.id)
        #expect(outcome.events.first?.seq == (written.events.last?.seq ?? 0) + 1)
    }

    @Test("v3 keeps the grants of a v2 database: each gets an id and no scope")
    func grantsSurviveMigrationV3() async throws {
        let database = try TemporaryDatabase()
        defer { database.remove() }
        let store = try SQLiteStore(path: database.path)
        // A v2 database with one grant, as a v2 server wrote it.
        try store.migrate(
            upTo: "v2_compat_ids",
            thenExecute: """
                INSERT INTO namespaces (id, name, created_at) VALUES ('ns_1', 'default', 1000);
                INSERT INTO sessions (id, namespace_id, actor, agent, status, metadata, created_at, updated_at)
                    VALUES ('ses_1', 'ns_1', 'alice', 'demo', 'idle', '{}', 1000, 1000);
                INSERT INTO grants VALUES ('ses_1', 'write_file', 'conf_1', 'alice', 5000);
                """)
        let session = try #require(try await store.session(id: "ses_1"))
        try await store.migrate()
        let grants = try await store.grants(sessionID: session.id)
        #expect(grants.count == 1)
        #expect(grants.first?.id.hasPrefix("grt_") == true)
        #expect(grants.first?.toolName == "write_file")
        #expect(grants.first?.scope.isEmpty == true)
        #expect(grants.first?.createdAt == Date(timeIntervalSince1970: 5))
        #expect(grants.first?.covers(toolName: "write_file", params: ["path": "any"]) == true)
    }

    @Test("An executing call found after a restart is interrupted, and its run is handed back")
    func crashWhileExecuting() async throws {
        let database = try TemporaryDatabase()
        defer { database.remove() }
        let path = database.path
        let (runID, callID): (String, String) = try await {
            let world = try await StoreScenario.make(try SQLiteStore(path: path))
            let session = try await world.newSession()
            let run = try await world.startRun(in: session)
            let step = try await world.commitStep(run: run, calls: [.auto()])
            guard
                case .claimed = try await world.store.claimToolCall(
                    callID: step.calls[0].id, rerun: false, now: StoreFixtures.time(seconds: 4))
            else { throw CountersignError(.internal, "not claimed") }
            return (run.id, step.calls[0].id)
        }()

        let store = try SQLiteStore(path: path)
        try await store.migrate()
        #expect(try await store.runSnapshot(runID: runID).calls.first?.status == .executing)
        #expect(try await store.recoverAfterCrash(now: StoreFixtures.time(seconds: 10)) == [runID])
        #expect(try await store.runSnapshot(runID: runID).calls.first?.status == .interrupted)
        #expect(
            try await store.claimToolCall(callID: callID, rerun: false, now: StoreFixtures.time(seconds: 11))
                == .notClaimable(.interrupted))
    }

    @Test("Opening a path in a folder that does not exist fails")
    func badPath() throws {
        let database = try TemporaryDatabase()
        defer { database.remove() }
        #expect(throws: (any Error).self) {
            _ = try SQLiteStore(path: database.directory.appendingPathComponent("missing/countersign.db").path)
        }
    }

    private struct Written: Sendable {
        var namespace: Namespace
        var key: APIKey
        var session: Session
        var run: Run
        var confirmation: AgentRuntime.Confirmation
        var events: [SessionEvent]
        var audit: [AuditEntry]
        var snapshot: RunSnapshot
        var history: [ChatMessage]
    }

    /// Writes a paused run with a pending confirmation through a store that is gone
    /// when this returns.
    /// Writes a paused run with a pending confirmation, under the full schema or, with
    /// `schema`, the schema up to and including that migration.
    private func writeAndClose(path: String, schema: String? = nil) async throws -> Written {
        let store = try SQLiteStore(path: path)
        let world: StoreScenario
        if let schema {
            try store.migrate(upTo: schema)
            let namespace = StoreFixtures.namespace("durable")
            try await store.createNamespace(
                namespace,
                audit: StoreFixtures.audit(
                    namespaceID: namespace.id, actor: "system", action: "namespace.created", subject: namespace.id,
                    data: ["name": "durable"]))
            world = StoreScenario(store: store, namespace: namespace)
        } else {
            world = try await StoreScenario.make(store, namespaceName: "durable")
        }
        let key = StoreFixtures.key(namespaceID: world.namespace.id, actor: "alice", role: .member)
        try await store.createKey(
            key,
            audit: StoreFixtures.audit(namespaceID: world.namespace.id, action: "key.created", subject: key.prefix))
        let session = try await world.newSession()
        let run = try await world.startRun(in: session)
        let step = try await world.commitStep(run: run, calls: [.confirm(), .auto()])
        guard
            case .claimed = try await store.claimToolCall(
                callID: step.calls[1].id, rerun: false, now: StoreFixtures.time(seconds: 4))
        else { throw CountersignError(.internal, "not claimed") }
        _ = try await store.finishToolCall(
            callID: step.calls[1].id, output: ToolOutput(success: true, content: "read"), taints: true,
            now: StoreFixtures.time(seconds: 5))
        guard case .paused = try await store.pauseRun(runID: run.id, now: StoreFixtures.time(seconds: 6)) else {
            throw CountersignError(.internal, "not paused")
        }
        let written = Written(
            namespace: world.namespace, key: key, session: try #require(try await store.session(id: session.id)),
            run: run, confirmation: step.confirmations[0], events: try await world.allEvents(of: session.id),
            audit: try await world.allAudit(), snapshot: try await store.runSnapshot(runID: run.id),
            history: try await store.history(sessionID: session.id))
        #expect(written.session.tainted)
        #expect(written.snapshot.run.status == .awaiting)
        return written
    }
}
