import GRDB

/// Versioned schema of the SQLite store. A released migration is never edited: a
/// change is a new migration appended to the list.
enum SQLiteMigrations {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1_initial") { db in
            try db.execute(sql: v1)
        }
        migrator.registerMigration("v2_compat_ids") { db in
            try db.execute(sql: v2)
        }
        migrator.registerMigration("v3_policy_provenance") { db in
            try db.execute(sql: v3)
        }
        migrator.registerMigration("v4_status_indexes") { db in
            try db.execute(sql: v4)
        }
        return migrator
    }

    /// Timestamps are integer milliseconds since 1970 (UTC). JSON columns hold
    /// canonical JSON text; `*_json` blobs carry `"v": 1` where they are structs.
    static let v1 = """
        CREATE TABLE namespaces (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            created_at INTEGER NOT NULL
        );
        CREATE TABLE api_keys (
            prefix TEXT PRIMARY KEY,
            hash TEXT NOT NULL,
            namespace_id TEXT NOT NULL REFERENCES namespaces(id),
            actor TEXT NOT NULL,
            role TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            expires_at INTEGER,
            revoked_at INTEGER
        );
        CREATE INDEX api_keys_namespace ON api_keys(namespace_id);
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            namespace_id TEXT NOT NULL REFERENCES namespaces(id),
            actor TEXT NOT NULL,
            agent TEXT NOT NULL,
            status TEXT NOT NULL,
            metadata TEXT NOT NULL,
            tainted INTEGER NOT NULL DEFAULT 0,
            active_run_id TEXT,
            last_seq INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        );
        CREATE INDEX sessions_namespace ON sessions(namespace_id, created_at, id);
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES sessions(id),
            status TEXT NOT NULL,
            step INTEGER NOT NULL,
            final_step_only INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            created_at INTEGER NOT NULL,
            ended_at INTEGER
        );
        CREATE INDEX runs_status ON runs(status);
        CREATE INDEX runs_session ON runs(session_id);
        CREATE TABLE messages (
            session_id TEXT NOT NULL REFERENCES sessions(id),
            idx INTEGER NOT NULL,
            run_id TEXT NOT NULL,
            step INTEGER NOT NULL,
            body TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (session_id, idx)
        ) WITHOUT ROWID;
        CREATE TABLE tool_calls (
            id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES sessions(id),
            run_id TEXT NOT NULL REFERENCES runs(id),
            step INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            model_call_id TEXT NOT NULL,
            tool_name TEXT NOT NULL,
            params TEXT NOT NULL,
            original_params TEXT,
            gate TEXT NOT NULL,
            status TEXT NOT NULL,
            confirmation_id TEXT,
            output TEXT
        );
        CREATE INDEX tool_calls_run_step ON tool_calls(run_id, step, idx);
        CREATE INDEX tool_calls_session ON tool_calls(session_id);
        CREATE INDEX tool_calls_status ON tool_calls(status);
        CREATE TABLE confirmations (
            id TEXT PRIMARY KEY,
            namespace_id TEXT NOT NULL REFERENCES namespaces(id),
            session_id TEXT NOT NULL REFERENCES sessions(id),
            run_id TEXT NOT NULL REFERENCES runs(id),
            call_id TEXT NOT NULL UNIQUE REFERENCES tool_calls(id),
            tool_name TEXT NOT NULL,
            tool_key TEXT NOT NULL,
            summary TEXT NOT NULL,
            policy TEXT NOT NULL,
            rule_id TEXT,
            params TEXT NOT NULL,
            params_hash TEXT NOT NULL,
            requested_by TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            status TEXT NOT NULL,
            decision TEXT
        );
        CREATE INDEX confirmations_inbox ON confirmations(namespace_id, status, created_at, id);
        CREATE INDEX confirmations_due ON confirmations(status, expires_at);
        CREATE INDEX confirmations_run ON confirmations(run_id, status);
        CREATE INDEX confirmations_session ON confirmations(session_id, status);
        CREATE TABLE grants (
            session_id TEXT NOT NULL REFERENCES sessions(id),
            tool_name TEXT NOT NULL,
            confirmation_id TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (session_id, tool_name)
        ) WITHOUT ROWID;
        CREATE TABLE events (
            session_id TEXT NOT NULL REFERENCES sessions(id),
            seq INTEGER NOT NULL,
            type TEXT NOT NULL,
            data TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (session_id, seq)
        ) WITHOUT ROWID;
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            namespace_id TEXT NOT NULL,
            at INTEGER NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            subject TEXT NOT NULL,
            data TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX audit_namespace ON audit(namespace_id, id);
        """

    /// The seed wire formats (SPEC §7): ids they need in their own shape, bound to
    /// Countersign ids, and server secrets (the chat API's cookie key).
    static let v2 = """
        CREATE TABLE compat_ids (
            kind TEXT NOT NULL,
            external_id TEXT NOT NULL,
            local_id TEXT NOT NULL,
            namespace_id TEXT NOT NULL REFERENCES namespaces(id),
            created_at INTEGER NOT NULL,
            PRIMARY KEY (kind, external_id)
        ) WITHOUT ROWID;
        CREATE TABLE compat_secrets (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            created_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        """

    /// Policy provenance (issue 8): which call tainted a session and a confirmation,
    /// which rule or grant let a call through, and grants with an id and an optional
    /// argument scope (several grants per tool), listed and revocable one by one.
    static let v3 = """
        ALTER TABLE sessions ADD COLUMN tainted_by TEXT;
        ALTER TABLE confirmations ADD COLUMN tainted_by TEXT;
        ALTER TABLE tool_calls ADD COLUMN rule_id TEXT;
        ALTER TABLE tool_calls ADD COLUMN grant_id TEXT;
        CREATE TABLE session_grants (
            id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES sessions(id),
            tool_name TEXT NOT NULL,
            scope TEXT,
            confirmation_id TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_at INTEGER NOT NULL
        );
        CREATE INDEX session_grants_session ON session_grants(session_id, tool_name);
        INSERT INTO session_grants (id, session_id, tool_name, scope, confirmation_id, created_by, created_at)
            SELECT 'grt_' || lower(hex(randomblob(12))), session_id, tool_name, NULL, confirmation_id, created_by,
                created_at
            FROM grants;
        DROP TABLE grants;
        """

    /// Indexes that no longer move with every status change. A confirmation goes
    /// pending → approved → executing → succeeded and a call awaiting → ready →
    /// executing → succeeded; each step moved the row's entry in every index that
    /// had `status` in its key (four for confirmations), so each commit rewrote index
    /// pages all over those indexes. Only the few states that queries look for keep an
    /// index of their own (partial indexes), and the other indexes drop `status`:
    /// - the inbox: pending confirmations by namespace in their own index; any
    ///   status by namespace in order of creation;
    /// - expiry: pending confirmations by `expires_at`;
    /// - crash recovery: executing calls and running runs;
    /// - per run and per session: by run or session only (a handful of rows each).
    static let v4 = """
        DROP INDEX confirmations_inbox;
        DROP INDEX confirmations_due;
        DROP INDEX confirmations_run;
        DROP INDEX confirmations_session;
        DROP INDEX tool_calls_status;
        DROP INDEX runs_status;
        CREATE INDEX confirmations_pending ON confirmations(namespace_id, created_at, id) WHERE status = 'pending';
        CREATE INDEX confirmations_namespace ON confirmations(namespace_id, created_at, id);
        CREATE INDEX confirmations_due ON confirmations(expires_at) WHERE status = 'pending';
        CREATE INDEX confirmations_run ON confirmations(run_id);
        CREATE INDEX confirmations_session ON confirmations(session_id);
        CREATE INDEX tool_calls_executing ON tool_calls(id) WHERE status = 'executing';
        CREATE INDEX runs_running ON runs(created_at) WHERE status = 'running';
        """
}
