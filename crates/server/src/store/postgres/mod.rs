//! [`PostgresStore`]: users, groups, call records and settings in a PostgreSQL database
//! (`--database postgres://user:password@host:port/db`), shared by every server pointed
//! at it.
//!
//! The [`Store`] trait is synchronous, so the store runs tokio-postgres's connections on
//! a runtime thread of its own and waits for each reply on the caller's thread, as a
//! SQLite call would: callers that may wait (the record writer, `queries.rs`, the HTTP
//! handlers on the blocking pool) are already off the hub's lock. The hub's own reads
//! by key (`user`, `group`) never reach the network: they are answered from a copy in
//! memory kept current by notifications (`mirror.rs`).
//!
//! Three connections: one for reads (tokio-postgres pipelines concurrent queries on
//! it), one for writes, behind a mutex so a transaction has it to itself, and one that
//! `LISTEN`s for changes and reloads the mirror. The connection string may hold a
//! password: it is never logged, only [`PostgresStore::target`] (user, hosts, database).
//! TLS is not supported: `sslmode=require` is refused (see docs/deploy.md).

mod follow;
mod link;
mod mirror;
mod schema;

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use futures_executor::block_on;
use tincan_protocol::{CallRecord, EndReason, GroupId, RoomId, UserId};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Config};
use tracing::info;

use super::{CallRowId, CallWrite, GroupRow, Store, StoreError, Term, UserRow};
use follow::{group_rows, is_unique_violation, parse_record, reload_group, reload_user, user_rows};
use link::{Link, Links};
use mirror::Mirror;
pub use schema::CHANGES_CHANNEL;

/// How long one statement may run before PostgreSQL cancels it, so that a stuck
/// database fails a caller (the record writer retries) rather than hanging it.
pub const STATEMENT_TIMEOUT_MS: u32 = 10_000;

/// A store in a PostgreSQL database.
pub struct PostgresStore {
    read: Link,
    write: Mutex<Client>,
    mirror: Arc<Mirror>,
    links: Arc<Links>,
}

impl PostgresStore {
    /// Connects to the database `url` (a `postgres://` URL or a `key=value` string),
    /// brings its schema up to date and loads users and groups.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let mut config =
            Config::from_str(url).map_err(|e| StoreError::Config(format!("database URL: {e}")))?;
        if config.get_ssl_mode() == SslMode::Require {
            return Err(StoreError::Config(
                "sslmode=require: this server connects to PostgreSQL without TLS; use a loopback address, a Unix socket or a tunnel, and sslmode=disable or prefer".into(),
            ));
        }
        config.options(format!("-c statement_timeout={STATEMENT_TIMEOUT_MS}"));
        if config.get_application_name().is_none() {
            config.application_name("tincan-server");
        }
        let links = Links::start(config.clone(), target(&config))?;
        // From here on, dropping `store` stops the runtime, whatever fails below.
        let store = Self {
            read: Link::open(links.clone())?,
            write: Mutex::new(links.connect(None)?),
            mirror: Arc::new(Mirror::default()),
            links,
        };
        let from = store.writing(|c| block_on(schema::migrate(c)))?;
        if from < schema::latest() {
            info!(database = %store.target(), from, to = schema::latest(), "PostgreSQL schema migrated");
        }
        follow::start(store.links.clone(), store.mirror.clone())?;
        info!(database = %store.target(), "PostgreSQL store open");
        Ok(store)
    }

    /// Where the store is, for logs: user, hosts and database, never the password.
    pub fn target(&self) -> &str {
        self.links.target()
    }

    /// Waits (at most `timeout`) until the copy of users and groups in memory satisfies
    /// `done`: for tests of changes made by another server.
    #[cfg(any(test, feature = "test-postgres"))]
    pub fn wait_for_mirror(
        &self,
        timeout: std::time::Duration,
        done: impl Fn(&Self) -> bool,
    ) -> bool {
        self.mirror.wait_until(timeout, |_| done(self))
    }

    pub(in crate::store) fn writing<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut c = self
            .write
            .lock()
            .expect("store mutex is never poisoned: no panics inside");
        self.links.reopen_if_closed(&mut c)?;
        f(&mut c)
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.links.stop();
    }
}

/// `postgres://user@host:port/db` for a connection string, without its password; a
/// string that does not parse is not shown at all.
pub fn describe(url: &str) -> String {
    match Config::from_str(url) {
        Ok(c) => format!("postgres://{}", target(&c)),
        Err(_) => "(a PostgreSQL connection string that does not parse)".into(),
    }
}

/// Whether a connection string holds a password.
pub fn has_password(url: &str) -> bool {
    Config::from_str(url).is_ok_and(|c| c.get_password().is_some())
}

/// `user@host:port/db`.
fn target(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                Host::Unix(p) => p.display().to_string(),
            };
            match config.get_ports().get(i).or(config.get_ports().first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    format!(
        "{}@{}/{}",
        config.get_user().unwrap_or("(default user)"),
        hosts.join(","),
        config.get_dbname().unwrap_or("(default database)")
    )
}

impl PostgresStore {
    fn reload_user(&self, user: &UserId) -> Result<(), StoreError> {
        reload_user(&*self.read.get()?, &self.mirror, user)
    }

    fn reload_group(&self, group: &GroupId) -> Result<(), StoreError> {
        reload_group(&*self.read.get()?, &self.mirror, group)
    }
}

/// One record of [`Store::put_calls`], in its transaction `tx`.
async fn write_call(
    tx: &tokio_postgres::Transaction<'_>,
    w: &CallWrite<'_>,
) -> Result<CallRowId, StoreError> {
    let (row, record, open, live) = (w.row, w.record, w.open, w.live);
    let json = serde_json::to_string(record).expect("records serialize");
    let room = record.room_id.as_str();
    let users = w.people();
    let updated = match row {
        Some(id) => {
            let n = tx
                .execute(
                    "UPDATE calls SET room_id = $2, end_ms = $3, record = $4, open = $5, live = $6
                     WHERE call_id = $1",
                    &[&id, &room, &record.end_time, &json, &open, &live],
                )
                .await?;
            (n == 1).then_some(id)
        }
        None => None,
    };
    let call_id: i64 = match updated {
        Some(id) => {
            tx.execute("DELETE FROM call_users WHERE call_id = $1", &[&id])
                .await?;
            id
        }
        None => tx
            .query_one(
                "INSERT INTO calls (room_id, end_ms, record, open, live)
                 VALUES ($1, $2, $3, $4, $5) RETURNING call_id",
                &[&room, &record.end_time, &json, &open, &live],
            )
            .await?
            .get(0),
    };
    tx.execute(
        "INSERT INTO call_users (call_id, user_id, end_ms)
         SELECT $1, u, $3 FROM unnest($2::text[]) AS u",
        &[&call_id, &users, &record.end_time],
    )
    .await?;
    Ok(call_id)
}

/// Refuses a write from `term` when a later one has been claimed. Called first in the
/// write's transaction: the row lock it takes (`FOR SHARE`) makes a claim on another
/// connection (`UPDATE fence`) wait for this transaction to end, and a transaction that
/// starts after a claim reads the claimed term, so a write either lands before the new
/// term's hub reads the calls or not at all.
async fn check_term(tx: &tokio_postgres::Transaction<'_>, term: Term) -> Result<(), StoreError> {
    let current: Term = tx
        .query_one("SELECT term FROM fence WHERE id = 1 FOR SHARE", &[])
        .await?
        .get(0);
    if current > term {
        return Err(StoreError::Fenced {
            ours: term,
            current,
        });
    }
    Ok(())
}

impl Store for PostgresStore {
    fn add_user(
        &self,
        user: &UserId,
        nickname: &str,
        hash: Option<&str>,
    ) -> Result<(), StoreError> {
        self.writing(|c| {
            block_on(c.execute(
                "INSERT INTO users (user_id, nickname, password_hash) VALUES ($1, $2, $3)",
                &[&user.as_str(), &nickname, &hash],
            ))
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("user {user}"))
                } else {
                    e.into()
                }
            })
        })?;
        self.reload_user(user)
    }

    fn set_password(&self, user: &UserId, hash: &str) -> Result<(), StoreError> {
        let n = self.writing(|c| {
            Ok(block_on(c.execute(
                "UPDATE users SET password_hash = $2 WHERE user_id = $1",
                &[&user.as_str(), &hash],
            ))?)
        })?;
        if n == 0 {
            return Err(StoreError::Missing(format!("user {user}")));
        }
        self.reload_user(user)
    }

    fn delete_user(&self, user: &UserId) -> Result<(), StoreError> {
        let groups = self.mirror.groups_with(user);
        let n = self.writing(|c| {
            // group_members goes with it (ON DELETE CASCADE).
            Ok(block_on(c.execute(
                "DELETE FROM users WHERE user_id = $1",
                &[&user.as_str()],
            ))?)
        })?;
        if n == 0 {
            return Err(StoreError::Missing(format!("user {user}")));
        }
        self.reload_user(user)?;
        for g in &groups {
            self.reload_group(g)?;
        }
        Ok(())
    }

    fn user(&self, user: &UserId) -> Result<Option<UserRow>, StoreError> {
        Ok(self.mirror.user(user))
    }

    fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        block_on(user_rows(&*self.read.get()?, "", None))
    }

    fn users_page(&self, after: Option<&UserId>, limit: u32) -> Result<Vec<UserRow>, StoreError> {
        block_on(user_rows(
            &*self.read.get()?,
            after.map_or("", UserId::as_str),
            Some(i64::from(limit)),
        ))
    }

    fn create_group(&self, group: &GroupId, name: &str) -> Result<(), StoreError> {
        self.writing(|c| {
            block_on(c.execute(
                "INSERT INTO groups (group_id, name) VALUES ($1, $2)",
                &[&group.as_str(), &name],
            ))
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("group {group}"))
                } else {
                    e.into()
                }
            })
        })?;
        self.reload_group(group)
    }

    fn add_member(&self, group: &GroupId, user: &UserId) -> Result<(), StoreError> {
        self.writing(|c| {
            block_on(async {
                let tx = c.transaction().await?;
                let exists = |sql: &'static str, id: &str| {
                    let id = id.to_owned();
                    let tx = &tx;
                    async move { Ok::<_, StoreError>(tx.query_opt(sql, &[&id]).await?.is_some()) }
                };
                // FOR SHARE: neither row can go before the membership is written.
                if !exists(
                    "SELECT 1 FROM groups WHERE group_id = $1 FOR SHARE",
                    group.as_str(),
                )
                .await?
                {
                    return Err(StoreError::Missing(format!("group {group}")));
                }
                if !exists(
                    "SELECT 1 FROM users WHERE user_id = $1 FOR SHARE",
                    user.as_str(),
                )
                .await?
                {
                    return Err(StoreError::Missing(format!("user {user}")));
                }
                tx.execute(
                    "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[&group.as_str(), &user.as_str()],
                )
                .await?;
                tx.commit().await?;
                Ok(())
            })
        })?;
        self.reload_group(group)
    }

    fn remove_member(&self, group: &GroupId, user: &UserId) -> Result<(), StoreError> {
        self.writing(|c| {
            block_on(c.execute(
                "DELETE FROM group_members WHERE group_id = $1 AND user_id = $2",
                &[&group.as_str(), &user.as_str()],
            ))?;
            Ok(())
        })?;
        self.reload_group(group)
    }

    fn group(&self, group: &GroupId) -> Result<Option<GroupRow>, StoreError> {
        Ok(self.mirror.group(group))
    }

    fn groups(&self) -> Result<Vec<GroupRow>, StoreError> {
        block_on(group_rows(&*self.read.get()?, "TRUE", None))
    }

    fn groups_of(&self, user: &UserId) -> Result<Vec<GroupRow>, StoreError> {
        block_on(group_rows(
            &*self.read.get()?,
            "EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = g.group_id AND m.user_id = $1)",
            Some(user.as_str()),
        ))
    }

    fn claim_term(&self) -> Result<Term, StoreError> {
        self.writing(|c| {
            let row = block_on(c.query_one(
                "UPDATE fence SET term = term + 1 WHERE id = 1 RETURNING term",
                &[],
            ))?;
            Ok(row.get(0))
        })
    }

    fn put_calls(
        &self,
        writes: &[CallWrite<'_>],
        term: Term,
    ) -> Result<Vec<CallRowId>, StoreError> {
        self.writing(|c| {
            block_on(async {
                let tx = c.transaction().await?;
                check_term(&tx, term).await?;
                let mut rows = Vec::with_capacity(writes.len());
                for w in writes {
                    rows.push(write_call(&tx, w).await?);
                }
                tx.commit().await?;
                Ok(rows)
            })
        })
    }

    fn live_calls(&self) -> Result<Vec<(CallRowId, String)>, StoreError> {
        let rows = block_on(self.read.get()?.query(
            "SELECT call_id, live FROM calls WHERE open AND live IS NOT NULL ORDER BY call_id",
            &[],
        ))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn close_open_calls(&self, reason: EndReason, term: Term) -> Result<Vec<RoomId>, StoreError> {
        self.writing(|c| {
            block_on(async {
                let tx = c.transaction().await?;
                check_term(&tx, term).await?;
                let open = tx
                    .query(
                        "SELECT call_id, record FROM calls WHERE open ORDER BY call_id FOR UPDATE",
                        &[],
                    )
                    .await?;
                let mut rooms = Vec::with_capacity(open.len());
                for r in open {
                    let id: i64 = r.get(0);
                    let mut record = parse_record(r.get(1))?;
                    record.end_reason = reason;
                    let json = serde_json::to_string(&record).expect("records serialize");
                    tx.execute(
                        "UPDATE calls SET record = $2, open = FALSE, live = NULL WHERE call_id = $1",
                        &[&id, &json],
                    )
                    .await?;
                    rooms.push(record.room_id);
                }
                tx.commit().await?;
                Ok(rooms)
            })
        })
    }

    fn recent_ended_rooms(&self, limit: usize) -> Result<Vec<(RoomId, EndReason)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = block_on(self.read.get()?.query(
            "SELECT record FROM calls WHERE NOT open ORDER BY end_ms DESC, call_id DESC LIMIT $1",
            &[&limit],
        ))?;
        let mut rooms = rows
            .iter()
            .map(|r| {
                let record = parse_record(r.get(0))?;
                Ok((record.room_id, record.end_reason))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        rooms.reverse();
        Ok(rooms)
    }

    fn call_history(
        &self,
        user: &UserId,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let rows = block_on(self.read.get()?.query(
            "SELECT c.record FROM call_users u JOIN calls c ON c.call_id = u.call_id
             WHERE u.user_id = $1 AND u.end_ms < $2 AND NOT c.open
             ORDER BY u.end_ms DESC, u.call_id DESC LIMIT $3",
            &[
                &user.as_str(),
                &before.unwrap_or(i64::MAX),
                &i64::from(limit),
            ],
        ))?;
        rows.iter().map(|r| parse_record(r.get(0))).collect()
    }

    fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(block_on(
            self.read
                .get()?
                .query_opt("SELECT value FROM settings WHERE key = $1", &[&key]),
        )?
        .map(|r| r.get(0)))
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.writing(|c| {
            block_on(c.execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&key, &value],
            ))?;
            Ok(())
        })
    }

    fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        self.writing(|c| {
            // Two statements: the read's snapshot is taken after the insert, so it sees
            // the row of a server that inserted first (and made this insert do nothing).
            block_on(c.execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &value],
            ))?;
            let row = block_on(c.query_one("SELECT value FROM settings WHERE key = $1", &[&key]))?;
            Ok(row.get(0))
        })
    }

    fn delete_setting(&self, key: &str) -> Result<(), StoreError> {
        self.writing(|c| {
            block_on(c.execute("DELETE FROM settings WHERE key = $1", &[&key]))?;
            // The old row version stays in the table's pages until vacuumed; ask now.
            // (PostgreSQL gives no stronger promise: see docs/deploy.md.)
            block_on(c.batch_execute("VACUUM settings"))?;
            Ok(())
        })
    }
}
