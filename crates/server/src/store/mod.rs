//! Accounts, groups, call records and settings behind one interface.
//!
//! [`Store`] is synchronous on purpose: the embedded SQLite store answers a lookup by
//! primary key in microseconds, so the call hub queries it inline rather than paying a
//! task hop per request, and operator commands that edit the file while the server runs
//! are seen at once. A networked backend would implement the trait with a cache.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use tincan_protocol::{CallRecord, GroupId, UserId};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The id is already taken. Not retryable.
    #[error("{0} already exists")]
    Conflict(String),
    /// The user or group does not exist. Not retryable.
    #[error("{0} does not exist")]
    Missing(String),
    /// The database failed. May be retried.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    /// A stored record did not decode. Not retryable.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Id.
    pub user_id: UserId,
    /// Display name.
    pub nickname: String,
    /// Argon2 PHC hash; `None` for users that sign in only with minted tokens.
    pub password_hash: Option<String>,
}

/// A stored group with its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    /// Id.
    pub group_id: GroupId,
    /// Display name.
    pub name: String,
    /// Members, sorted.
    pub members: Vec<UserId>,
}

/// What the server keeps.
pub trait Store: Send + Sync + 'static {
    /// Adds a user; `Conflict` if the id is taken.
    fn add_user(
        &self,
        user: &UserId,
        nickname: &str,
        password_hash: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Replaces a user's password hash.
    fn set_password(&self, user: &UserId, password_hash: &str) -> Result<(), StoreError>;
    /// One user.
    fn user(&self, user: &UserId) -> Result<Option<UserRow>, StoreError>;
    /// Every user, sorted by id.
    fn users(&self) -> Result<Vec<UserRow>, StoreError>;
    /// Creates a group; `Conflict` if the id is taken.
    fn create_group(&self, group: &GroupId, name: &str) -> Result<(), StoreError>;
    /// Adds a member (idempotent); `Missing` if the group or user does not exist.
    fn add_member(&self, group: &GroupId, user: &UserId) -> Result<(), StoreError>;
    /// Removes a member (idempotent).
    fn remove_member(&self, group: &GroupId, user: &UserId) -> Result<(), StoreError>;
    /// One group with its members.
    fn group(&self, group: &GroupId) -> Result<Option<GroupRow>, StoreError>;
    /// Every group, sorted by id.
    fn groups(&self) -> Result<Vec<GroupRow>, StoreError>;
    /// Groups `user` belongs to.
    fn groups_of(&self, user: &UserId) -> Result<Vec<GroupRow>, StoreError>;
    /// Saves a finished call.
    fn save_call(&self, record: &CallRecord) -> Result<(), StoreError>;
    /// Calls `user` placed or was invited to, newest first.
    fn call_history(
        &self,
        user: &UserId,
        limit: u32,
        before_ms: Option<i64>,
    ) -> Result<Vec<CallRecord>, StoreError>;
    /// A server setting.
    fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Sets a server setting.
    fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;
}

/// The embedded store: one SQLite file (WAL mode), created on first use.
pub struct SqliteStore {
    conn: Mutex<Connection>,
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
-- reuse the group id), so calls are keyed by their own row id.
CREATE TABLE IF NOT EXISTS calls (
    call_id INTEGER PRIMARY KEY,
    room_id TEXT NOT NULL,
    end_ms INTEGER NOT NULL,
    record TEXT NOT NULL
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

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Self::init(conn)
    }

    /// A private in-memory database (tests, benchmarks).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self
            .conn
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
}

impl Store for SqliteStore {
    fn add_user(
        &self,
        user: &UserId,
        nickname: &str,
        hash: Option<&str>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
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
        self.with(|c| {
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

    fn user(&self, user: &UserId) -> Result<Option<UserRow>, StoreError> {
        self.with(|c| {
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
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT user_id, nickname, password_hash FROM users ORDER BY user_id",
            )?;
            let rows = stmt.query_map([], |r| {
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
        })
    }

    fn create_group(&self, group: &GroupId, name: &str) -> Result<(), StoreError> {
        self.with(|c| {
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
        self.with(|c| {
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
        self.with(|c| {
            c.execute(
                "DELETE FROM group_members WHERE group_id = ?1 AND user_id = ?2",
                params![group.as_str(), user.as_str()],
            )?;
            Ok(())
        })
    }

    fn group(&self, group: &GroupId) -> Result<Option<GroupRow>, StoreError> {
        self.with(|c| {
            Ok(Self::group_rows(
                c,
                "SELECT group_id, name FROM groups WHERE group_id = ?1",
                Some(group.as_str()),
            )?
            .pop())
        })
    }

    fn groups(&self) -> Result<Vec<GroupRow>, StoreError> {
        self.with(|c| {
            Self::group_rows(
                c,
                "SELECT group_id, name FROM groups ORDER BY group_id",
                None,
            )
        })
    }

    fn groups_of(&self, user: &UserId) -> Result<Vec<GroupRow>, StoreError> {
        self.with(|c| {
            Self::group_rows(
                c,
                "SELECT g.group_id, g.name FROM groups g JOIN group_members m ON m.group_id = g.group_id
                 WHERE m.user_id = ?1 ORDER BY g.group_id",
                Some(user.as_str()),
            )
        })
    }

    fn save_call(&self, record: &CallRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).expect("records serialize");
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            // Cached statements: a record is written under the hub's lock at every call's end.
            tx.prepare_cached("INSERT INTO calls (room_id, end_ms, record) VALUES (?1, ?2, ?3)")?
                .execute(params![record.room_id.as_str(), record.end_time, json])?;
            let call_id = tx.last_insert_rowid();
            let mut users: Vec<&UserId> = record.invitees.iter().map(|i| &i.user_id).collect();
            users.extend(&record.participant_user_id_list);
            users.push(&record.inviter_user_id);
            users.sort();
            users.dedup();
            for u in users {
                tx.prepare_cached(
                    "INSERT INTO call_users (call_id, user_id, end_ms) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![call_id, u.as_str(), record.end_time])?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn call_history(
        &self,
        user: &UserId,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<CallRecord>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT c.record FROM call_users u JOIN calls c ON c.call_id = u.call_id
                 WHERE u.user_id = ?1 AND u.end_ms < ?2 ORDER BY u.end_ms DESC, u.call_id DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![user.as_str(), before.unwrap_or(i64::MAX), limit],
                |r| r.get::<_, String>(0),
            )?;
            rows.map(|r| serde_json::from_str(&r?).map_err(|e| StoreError::Corrupt(e.to_string())))
                .collect()
        })
    }

    fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            Ok(
                c.prepare_cached("SELECT value FROM settings WHERE key = ?1")?
                    .query_row([key], |r| r.get(0))
                    .optional()?,
            )
        })
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?1, ?2)",
                params![key, value],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tincan_protocol::{EndReason, InviteeOutcome, InviteeRecord, MediaType, RoomId};

    fn uid(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    #[test]
    fn users_groups_and_members() {
        let s = SqliteStore::open_in_memory().unwrap();
        s.add_user(&uid("alice"), "Alice", Some("h")).unwrap();
        s.add_user(&uid("bob"), "Bob", None).unwrap();
        assert!(matches!(
            s.add_user(&uid("bob"), "B", None),
            Err(StoreError::Conflict(_))
        ));
        let g = GroupId::new("g1").unwrap();
        s.create_group(&g, "Team").unwrap();
        s.add_member(&g, &uid("alice")).unwrap();
        s.add_member(&g, &uid("bob")).unwrap();
        s.add_member(&g, &uid("bob")).unwrap();
        assert!(matches!(
            s.add_member(&g, &uid("carol")),
            Err(StoreError::Missing(_))
        ));
        assert_eq!(
            s.group(&g).unwrap().unwrap().members,
            vec![uid("alice"), uid("bob")]
        );
        s.remove_member(&g, &uid("bob")).unwrap();
        assert!(s.groups_of(&uid("bob")).unwrap().is_empty());
        assert_eq!(s.groups_of(&uid("alice")).unwrap().len(), 1);
        assert_eq!(s.users().unwrap().len(), 2);
    }

    #[test]
    fn call_history_is_per_user_newest_first() {
        let s = SqliteStore::open_in_memory().unwrap();
        let rec = |room: &str, end: i64| CallRecord {
            room_id: RoomId::new(room).unwrap(),
            inviter_user_id: uid("alice"),
            group_id: String::new(),
            media_type: MediaType::Audio,
            session_type: 1,
            invitees: vec![InviteeRecord {
                user_id: uid("bob"),
                outcome: InviteeOutcome::Rejected,
                answer_time: None,
            }],
            participant_user_id_list: vec![uid("alice")],
            initiate_time: end - 10,
            answer_time: None,
            end_time: end,
            end_reason: EndReason::Rejected,
        };
        s.save_call(&rec("r1", 100)).unwrap();
        s.save_call(&rec("r2", 200)).unwrap();
        s.save_call(&rec("r2", 300)).unwrap();
        assert_eq!(
            s.call_history(&uid("bob"), 10, None).unwrap().len(),
            3,
            "a reused room id keeps both calls"
        );
        let h = s.call_history(&uid("bob"), 10, None).unwrap();
        assert_eq!(
            h.iter().map(|r| r.end_time).collect::<Vec<_>>(),
            [300, 200, 100]
        );
        assert_eq!(s.call_history(&uid("bob"), 10, Some(200)).unwrap().len(), 1);
        assert!(s.call_history(&uid("carol"), 10, None).unwrap().is_empty());
    }
}
