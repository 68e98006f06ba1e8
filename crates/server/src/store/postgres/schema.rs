//! The PostgreSQL schema as numbered migrations, applied in order at start-up and
//! recorded in `schema_migrations`, under an advisory lock so that nodes starting at
//! the same time apply each migration once.

use tokio_postgres::Client;

use super::super::StoreError;

/// The channel the triggers below notify when a user, a group or a membership changes,
/// with `u:<userID>` or `g:<groupID>` as the payload: every server on the database
/// keeps its copy of users and groups current from it (`mirror.rs`).
pub const CHANGES_CHANNEL: &str = "tincan_store";

/// Key of the advisory lock held while migrating (any constant of our own).
const MIGRATION_LOCK: i64 = 0x7417_c4a0;

/// Every migration, oldest first; migration `n` is `MIGRATIONS[n - 1]`. Append only:
/// a database that has run one never runs it again.
const MIGRATIONS: &[&str] = &[
    // 1: the schema of the SQLite store, in PostgreSQL's types. Ids sort bytewise
    // (COLLATE "C"), as in SQLite, so pages of contacts come in the same order.
    r#"
CREATE TABLE users (
    user_id TEXT COLLATE "C" PRIMARY KEY,
    nickname TEXT NOT NULL,
    password_hash TEXT
);
CREATE TABLE groups (
    group_id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE group_members (
    group_id TEXT COLLATE "C" NOT NULL REFERENCES groups(group_id) ON DELETE CASCADE,
    user_id TEXT COLLATE "C" NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_by_user ON group_members(user_id);
CREATE TABLE calls (
    call_id BIGSERIAL PRIMARY KEY,
    room_id TEXT NOT NULL,
    end_ms BIGINT NOT NULL,
    record TEXT NOT NULL,
    open BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX calls_open ON calls(call_id) WHERE open;
CREATE INDEX calls_by_end ON calls(end_ms);
CREATE TABLE call_users (
    call_id BIGINT NOT NULL REFERENCES calls(call_id) ON DELETE CASCADE,
    user_id TEXT COLLATE "C" NOT NULL,
    end_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, end_ms, call_id)
);
CREATE INDEX call_users_by_call ON call_users(call_id);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE FUNCTION tincan_user_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('tincan_store', 'u:' || OLD.user_id);
    ELSE
        PERFORM pg_notify('tincan_store', 'u:' || NEW.user_id);
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION tincan_group_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('tincan_store', 'g:' || OLD.group_id);
    ELSE
        PERFORM pg_notify('tincan_store', 'g:' || NEW.group_id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION tincan_user_changed();
CREATE TRIGGER groups_changed AFTER INSERT OR UPDATE OR DELETE ON groups
    FOR EACH ROW EXECUTE FUNCTION tincan_group_changed();
CREATE TRIGGER group_members_changed AFTER INSERT OR UPDATE OR DELETE ON group_members
    FOR EACH ROW EXECUTE FUNCTION tincan_group_changed();
"#,
    // 2: the saved state of each call in progress, so a restarted server can resume it
    // (`hub/saved.rs`); NULL once the call is closed.
    "ALTER TABLE calls ADD COLUMN live TEXT;",
    // 3: the fencing term of call record writes (`store::Term`), one row, from 0.
    "CREATE TABLE fence (id INT PRIMARY KEY CHECK (id = 1), term BIGINT NOT NULL);
     INSERT INTO fence (id, term) VALUES (1, 0);",
];

/// The newest migration this build knows.
pub fn latest() -> i32 {
    MIGRATIONS.len() as i32
}

/// Brings the database up to [`latest`], returning the version it was at. A database
/// migrated by a newer build is refused rather than guessed at.
pub async fn migrate(client: &mut Client) -> Result<i32, StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let at: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    if at > latest() {
        return Err(StoreError::Corrupt(format!(
            "the database is at schema version {at}, newer than this server's {}; run a newer tincan-server",
            latest()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(at as usize) {
        let version = i as i32 + 1;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        tracing::info!(version, "PostgreSQL schema migrated");
    }
    tx.commit().await?;
    Ok(at)
}
