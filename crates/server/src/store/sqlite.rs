//! [`SqliteStore`]: one SQLite file in WAL mode, with one connection for reads and one
//! for writes, so a write waiting for the database's lock never holds up a read.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use tincan_protocol::{CallRecord, EndReason, GroupId, RoomId, UserId};

use super::files;
use super::{CallRowId, CallWrite, GroupRow, Store, StoreError, Term, UserRow};

/// How long a write waits for another connection's write lock before failing with
/// "busy". Writers that must not fail (the record writer) retry on top of it.
pub const WRITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a read waits when the database is busy. In WAL mode readers do not wait for
/// writers at all; only rare events (recovery of a crashed writer's WAL) make a read
/// wait, and reads are made under the hub's lock, so they give up quickly and the
/// request is answered "try again" rather than holding every other user up.
pub const READ_BUSY_TIMEOUT: Duration = Duration::from_millis(250);

/// The embedded store: one SQLite file (WAL mode), created on first use.
pub struct SqliteStore {
    read: Mutex<Connection>,
    /// `None` in memory, where a private database has exactly one connection.
    write: Option<Mutex<Connection>>,
    path: Option<PathBuf>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY,
    nickname TEXT NOT NULL,
    password_hash TEXT
);
CREATE TABLE IF NOT EXISTS groups (
    group_id TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS group_members (
    group_id TEXT NOT NULL REFERENCES groups(group_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX IF NOT EXISTS group_members_by_user ON group_members(user_id);
-- One row per call. Room ids may repeat (clients may choose them, OpenIM's examples
-- reuse the group id), so calls are keyed by their own row id. `open` marks a call in
-- progress: written when it starts ringing, so that a crash cannot erase it.
CREATE TABLE IF NOT EXISTS calls (
    call_id INTEGER PRIMARY KEY,
    room_id TEXT NOT NULL,
    end_ms INTEGER NOT NULL,
    record TEXT NOT NULL,
    open INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS call_users (
    call_id INTEGER NOT NULL REFERENCES calls(call_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    end_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, end_ms, call_id)
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// The newest schema version this build knows (kept in SQLite's `user_version`).
/// Version 1 is `SCHEMA` plus the changes below; databases made before versions were
/// kept are at 0 and come up to 1 through the same, repeatable, steps.
pub const SCHEMA_VERSION: i32 = 3;

/// One step of the schema, run in the transaction that records its version.
type Migration = fn(&Connection) -> Result<(), StoreError>;

/// Brings the database up to [`SCHEMA_VERSION`], one numbered step at a time, each in
/// a transaction with its version; a database from a newer build is refused.
fn migrate(c: &Connection) -> Result<(), StoreError> {
    let at: i32 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if at > SCHEMA_VERSION {
        return Err(StoreError::Config(format!(
            "the database is at schema version {at}, newer than this server's {SCHEMA_VERSION}; run a newer tincan-server"
        )));
    }
    let steps: [Migration; SCHEMA_VERSION as usize] = [migration_1, migration_2, migration_3];
    for (i, step) in steps.iter().enumerate().skip(at as usize) {
        let version = i as i32 + 1;
        let tx = c.unchecked_transaction()?;
        step(&tx)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "SQLite schema migrated");
    }
    Ok(())
}

/// Migration 1: the schema as it stood when versions began, reached from any earlier
/// database (every step is safe to run again).
fn migration_1(c: &Connection) -> Result<(), StoreError> {
    c.execute_batch(SCHEMA)?;
    let has_open = c
        .prepare("SELECT 1 FROM pragma_table_info('calls') WHERE name = 'open'")?
        .exists([])?;
    if !has_open {
        c.execute_batch("ALTER TABLE calls ADD COLUMN open INTEGER NOT NULL DEFAULT 0")?;
    }
    c.execute_batch(
        "CREATE INDEX IF NOT EXISTS calls_open ON calls(call_id) WHERE open = 1;
         CREATE INDEX IF NOT EXISTS calls_by_end ON calls(end_ms);
         CREATE INDEX IF NOT EXISTS call_users_by_call ON call_users(call_id);",
    )?;
    Ok(())
}

/// Migration 2: the saved state of each call in progress, so a restarted server can
/// resume it (`hub/saved.rs`); NULL once the call is closed.
fn migration_2(c: &Connection) -> Result<(), StoreError> {
    c.execute_batch("ALTER TABLE calls ADD COLUMN live TEXT")?;
    Ok(())
}

/// Migration 3: the fencing term of call record writes (`Term`), one row, from 0.
fn migration_3(c: &Connection) -> Result<(), StoreError> {
    c.execute_batch(
        "CREATE TABLE fence (id INTEGER PRIMARY KEY CHECK (id = 1), term INTEGER NOT NULL);
         INSERT INTO fence (id, term) VALUES (1, 0);",
    )?;
    Ok(())
}

/// A transaction that holds the write lock from its first statement, so what it reads
/// (the term) stays true until it commits.
fn begin_write(c: &Connection) -> Result<Transaction<'_>, StoreError> {
    Ok(Transaction::new_unchecked(
        c,
        TransactionBehavior::Immediate,
    )?)
}

/// Refuses a write from `term` when a later one has been claimed. Called first in the
/// write's transaction: SQLite runs one writer at a time, so a claim cannot come
/// between this check and the commit.
fn check_term(tx: &Connection, term: Term) -> Result<(), StoreError> {
    let current: Term = tx
        .prepare_cached("SELECT term FROM fence WHERE id = 1")?
        .query_row([], |r| r.get(0))?;
    if current > term {
        return Err(StoreError::Fenced {
            ours: term,
            current,
        });
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed, owner-only) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        files::prepare_database(path)?;
        let write = Connection::open(path)?;
        write.pragma_update(None, "journal_mode", "WAL")?;
        write.pragma_update(None, "synchronous", "NORMAL")?;
        write.pragma_update(None, "foreign_keys", "ON")?;
        write.busy_timeout(WRITE_BUSY_TIMEOUT)?;
        migrate(&write)?;
        let read = Connection::open(path)?;
        read.busy_timeout(READ_BUSY_TIMEOUT)?;
        // SQLite gives -wal and -shm the database file's mode; made by an older version
        // they may be more open.
        for f in files::companions(path) {
            files::private_file_mode_fixed(&f)?;
        }
        Ok(Self {
            read: Mutex::new(read),
            write: Some(Mutex::new(write)),
            path: Some(path.to_owned()),
        })
    }

    /// A private in-memory database (tests, benchmarks).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&conn)?;
        Ok(Self {
            read: Mutex::new(conn),
            write: None,
            path: None,
        })
    }

    fn reading<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self
            .read
            .lock()
            .expect("store mutex is never poisoned: no panics inside");
        f(&conn)
    }

    fn writing<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn: MutexGuard<'_, Connection> = self
            .write
            .as_ref()
            .unwrap_or(&self.read)
            .lock()
            .expect("store mutex is never poisoned: no panics inside");
        f(&conn)
    }
}

fn parse_user(s: String) -> Result<UserId, StoreError> {
    UserId::new(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse_group(s: String) -> Result<GroupId, StoreError> {
    GroupId::new(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse_record(s: &str) -> Result<CallRecord, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

impl SqliteStore {
    fn members(conn: &Connection, group: &str) -> Result<Vec<UserId>, StoreError> {
        let mut stmt = conn.prepare_cached(
            "SELECT user_id FROM group_members WHERE group_id = ?1 ORDER BY user_id",
        )?;
        let rows = stmt.query_map([group], |r| r.get::<_, String>(0))?;
        rows.map(|r| parse_user(r?)).collect()
    }

    fn group_rows(
        conn: &Connection,
        sql: &str,
        arg: Option<&str>,
    ) -> Result<Vec<GroupRow>, StoreError> {
        let mut stmt = conn.prepare_cached(sql)?;
        let map = |r: &rusqlite::Row<'_>| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?));
        let ids: Vec<(String, String)> = match arg {
            Some(a) => stmt.query_map([a], map)?.collect::<Result<_, _>>()?,
            None => stmt.query_map([], map)?.collect::<Result<_, _>>()?,
        };
        ids.into_iter()
            .map(|(id, name)| {
                Ok(GroupRow {
                    members: Self::members(conn, &id)?,
                    group_id: parse_group(id)?,
                    name,
                })
            })
            .collect()
    }

    fn user_rows(conn: &Connection, after: &str, limit: i64) -> Result<Vec<UserRow>, StoreError> {
        let mut stmt = conn.prepare_cached(
            "SELECT user_id, nickname, password_hash FROM users WHERE user_id > ?1
             ORDER BY user_id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        rows.map(|r| {
            let (id, nickname, password_hash) = r?;
            Ok(UserRow {
                user_id: parse_user(id)?,
                nickname,
                password_hash,
            })
        })
        .collect()
    }
}

impl SqliteStore {
    /// One record of [`Store::put_calls`], in its transaction `tx`.
    fn write_call(tx: &Connection, w: &CallWrite<'_>) -> Result<CallRowId, StoreError> {
        let (row, record, open, live) = (w.row, w.record, w.open, w.live);
        let json = serde_json::to_string(record).expect("records serialize");
        let updated = match row {
            Some(id) => tx
                .prepare_cached(
                    "UPDATE calls SET room_id = ?2, end_ms = ?3, record = ?4, open = ?5, live = ?6
                     WHERE call_id = ?1",
                )?
                .execute(params![
                    id,
                    record.room_id.as_str(),
                    record.end_time,
                    json,
                    open,
                    live
                ])?
                .eq(&1)
                .then_some(id),
            None => None,
        };
        let call_id = match updated {
            Some(id) => {
                tx.prepare_cached("DELETE FROM call_users WHERE call_id = ?1")?
                    .execute([id])?;
                id
            }
            None => {
                tx.prepare_cached(
                    "INSERT INTO calls (room_id, end_ms, record, open, live) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![record.room_id.as_str(), record.end_time, json, open, live])?;
                tx.last_insert_rowid()
            }
        };
        for u in w.people() {
            tx.prepare_cached(
                "INSERT INTO call_users (call_id, user_id, end_ms) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![call_id, u, record.end_time])?;
        }
        Ok(call_id)
    }

    /// [`Store::close_open_calls`].
    fn close_open(&self, reason: EndReason, term: Term) -> Result<Vec<RoomId>, StoreError> {
        self.writing(|c| {
            let tx = begin_write(c)?;
            check_term(&tx, term)?;
            let open: Vec<(i64, String)> = tx
                .prepare("SELECT call_id, record FROM calls WHERE open = 1 ORDER BY call_id")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let mut rooms = Vec::with_capacity(open.len());
            for (id, json) in open {
                let mut record = parse_record(&json)?;
                record.end_reason = reason;
                let json = serde_json::to_string(&record).expect("records serialize");
                tx.execute(
                    "UPDATE calls SET record = ?2, open = 0, live = NULL WHERE call_id = ?1",
                    params![id, json],
                )?;
                rooms.push(record.room_id);
            }
            tx.commit()?;
            Ok(rooms)
        })
    }
}

impl Store for SqliteStore {
    fn add_user(
        &self,
        user: &UserId,
        nickname: &str,
        hash: Option<&str>,
    ) -> Result<(), StoreError> {
        self.writing(|c| {
            c.execute(
                "INSERT INTO users (user_id, nickname, password_hash) VALUES (?1, ?2, ?3)",
                params![user.as_str(), nickname, hash],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("user {user}"))
                } else {
                    e.into()
                }
            })?;
            Ok(())
        })
    }

    fn set_password(&self, user: &UserId, hash: &str) -> Result<(), StoreError> {
        self.writing(|c| {
            let n = c.execute(
                "UPDATE users SET password_hash = ?2 WHERE user_id = ?1",
                params![user.as_str(), hash],
            )?;
            if n == 0 {
                return Err(StoreError::Missing(format!("user {user}")));
            }
            Ok(())
        })
    }

    fn delete_user(&self, user: &UserId) -> Result<(), StoreError> {
        self.writing(|c| {
            // group_members goes with it (ON DELETE CASCADE, foreign keys on).
            let n = c.execute("DELETE FROM users WHERE user_id = ?1", [user.as_str()])?;
            if n == 0 {
                return Err(StoreError::Missing(format!("user {user}")));
            }
            Ok(())
        })
    }

    fn user(&self, user: &UserId) -> Result<Option<UserRow>, StoreError> {
        self.reading(|c| {
            let row = c
                .prepare_cached("SELECT nickname, password_hash FROM users WHERE user_id = ?1")?
                .query_row([user.as_str()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
                })
                .optional()?;
            Ok(row.map(|(nickname, password_hash)| UserRow {
                user_id: user.clone(),
                nickname,
                password_hash,
            }))
        })
    }

    fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        self.reading(|c| Self::user_rows(c, "", -1))
    }

    fn users_page(&self, after: Option<&UserId>, limit: u32) -> Result<Vec<UserRow>, StoreError> {
        self.reading(|c| Self::user_rows(c, after.map_or("", UserId::as_str), i64::from(limit)))
    }

    fn create_group(&self, group: &GroupId, name: &str) -> Result<(), StoreError> {
        self.writing(|c| {
            c.execute(
                "INSERT INTO groups (group_id, name) VALUES (?1, ?2)",
                params![group.as_str(), name],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("group {group}"))
                } else {
                    e.into()
                }
            })?;
            Ok(())
        })
    }

    fn add_member(&self, group: &GroupId, user: &UserId) -> Result<(), StoreError> {
        self.writing(|c| {
            let exists = |sql: &str, id: &str| -> Result<bool, StoreError> {
                Ok(c.prepare_cached(sql)?.exists([id])?)
            };
            if !exists("SELECT 1 FROM groups WHERE group_id = ?1", group.as_str())? {
                return Err(StoreError::Missing(format!("group {group}")));
            }
            if !exists("SELECT 1 FROM users WHERE user_id = ?1", user.as_str())? {
                return Err(StoreError::Missing(format!("user {user}")));
            }
            c.execute(
                "INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?1, ?2)",
                params![group.as_str(), user.as_str()],
            )?;
            Ok(())
        })
    }

    fn remove_member(&self, group: &GroupId, user: &UserId) -> Result<(), StoreError> {
        self.writing(|c| {
            c.execute(
                "DELETE FROM group_members WHERE group_id = ?1 AND user_id = ?2",
                params![group.as_str(), user.as_str()],
            )?;
            Ok(())
        })
    }

    fn group(&self, group: &GroupId) -> Result<Option<GroupRow>, StoreError> {
        self.reading(|c| {
            Ok(Self::group_rows(
                c,
                "SELECT group_id, name FROM groups WHERE group_id = ?1",
                Some(group.as_str()),
            )?
            .pop())
        })
    }

    fn groups(&self) -> Result<Vec<GroupRow>, StoreError> {
        self.reading(|c| {
            Self::group_rows(
                c,
                "SELECT group_id, name FROM groups ORDER BY group_id",
                None,
            )
        })
    }

    fn groups_of(&self, user: &UserId) -> Result<Vec<GroupRow>, StoreError> {
        self.reading(|c| {
            Self::group_rows(
                c,
                "SELECT g.group_id, g.name FROM groups g JOIN group_members m ON m.group_id = g.group_id
                 WHERE m.user_id = ?1 ORDER BY g.group_id",
                Some(user.as_str()),
            )
        })
    }

    fn claim_term(&self) -> Result<Term, StoreError> {
        self.writing(|c| {
            c.prepare_cached("UPDATE fence SET term = term + 1 WHERE id = 1 RETURNING term")?
                .query_row([], |r| r.get(0))
                .map_err(Into::into)
        })
    }

    fn put_calls(
        &self,
        writes: &[CallWrite<'_>],
        term: Term,
    ) -> Result<Vec<CallRowId>, StoreError> {
        self.writing(|c| {
            let tx = begin_write(c)?;
            check_term(&tx, term)?;
            let rows = writes
                .iter()
                .map(|w| Self::write_call(&tx, w))
                .collect::<Result<Vec<_>, _>>()?;
            tx.commit()?;
            Ok(rows)
        })
    }

    fn live_calls(&self) -> Result<Vec<(CallRowId, String)>, StoreError> {
        self.reading(|c| {
            c.prepare(
                "SELECT call_id, live FROM calls WHERE open = 1 AND live IS NOT NULL ORDER BY call_id",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()
            .map_err(Into::into)
        })
    }

    fn close_open_calls(&self, reason: EndReason, term: Term) -> Result<Vec<RoomId>, StoreError> {
        self.close_open(reason, term)
    }

    fn recent_ended_rooms(&self, limit: usize) -> Result<Vec<(RoomId, EndReason)>, StoreError> {
        self.reading(|c| {
            let mut stmt = c.prepare(
                "SELECT record FROM calls WHERE open = 0 ORDER BY end_ms DESC, call_id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit as i64], |r| r.get::<_, String>(0))?;
            let mut rooms = rows
                .map(|r| {
                    let record = parse_record(&r?)?;
                    Ok((record.room_id, record.end_reason))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            rooms.reverse();
            Ok(rooms)
        })
    }

    fn call_history(
        &self,
        user: &UserId,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<CallRecord>, StoreError> {
        self.reading(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT c.record FROM call_users u JOIN calls c ON c.call_id = u.call_id
                 WHERE u.user_id = ?1 AND u.end_ms < ?2 AND c.open = 0
                 ORDER BY u.end_ms DESC, u.call_id DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![user.as_str(), before.unwrap_or(i64::MAX), limit],
                |r| r.get::<_, String>(0),
            )?;
            rows.map(|r| parse_record(&r?)).collect()
        })
    }

    fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.reading(|c| {
            Ok(
                c.prepare_cached("SELECT value FROM settings WHERE key = ?1")?
                    .query_row([key], |r| r.get(0))
                    .optional()?,
            )
        })
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.writing(|c| {
            c.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?1, ?2)",
                params![key, value],
            )?;
            Ok(())
        })
    }

    fn delete_setting(&self, key: &str) -> Result<(), StoreError> {
        self.writing(|c| {
            // Overwrite the value's bytes rather than only unlinking them, and fold the
            // WAL back so no copy of the old page lingers there.
            c.pragma_update(None, "secure_delete", "ON")?;
            c.execute("DELETE FROM settings WHERE key = ?1", [key])?;
            c.pragma_update(None, "secure_delete", "OFF")?;
            if self.path.is_some() {
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            }
            Ok(())
        })
    }

    fn key_file(&self) -> Option<PathBuf> {
        self.path.as_ref().map(|p| {
            let mut s = p.as_os_str().to_owned();
            s.push(".key");
            PathBuf::from(s)
        })
    }
}
#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
