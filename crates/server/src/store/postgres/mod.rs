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

mod mirror;
mod schema;

use std::future::Future;
use std::str::FromStr;
use std::sync::{mpsc, Arc, Mutex};

use futures_executor::block_on;
use tincan_protocol::{CallRecord, EndReason, GroupId, RoomId, UserId};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, Config, GenericClient, NoTls};
use tracing::{error, info, warn};

use super::{CallRowId, GroupRow, Store, StoreError, UserRow};
use mirror::Mirror;
pub use schema::CHANGES_CHANNEL;

/// How long one statement may run before PostgreSQL cancels it, so that a stuck
/// database fails a caller (the record writer retries) rather than hanging it.
pub const STATEMENT_TIMEOUT_MS: u32 = 10_000;

/// A store in a PostgreSQL database.
pub struct PostgresStore {
    read: Client,
    write: Mutex<Client>,
    mirror: Arc<Mirror>,
    target: String,
    runtime: Runtime,
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
        let target = target(&config);
        let runtime = Runtime::start()?;
        let (changes_tx, changes) = mpsc::channel::<String>();
        let read = runtime.connect(&config, None, &target)?;
        let mut write = runtime.connect(&config, None, &target)?;
        let listen = runtime.connect(&config, Some(changes_tx), &target)?;
        let from = block_on(schema::migrate(&mut write))?;
        if from < schema::latest() {
            info!(database = %target, from, to = schema::latest(), "PostgreSQL schema migrated");
        }
        block_on(listen.batch_execute(&format!("LISTEN {CHANGES_CHANNEL}")))?;
        let mirror = Arc::new(Mirror::default());
        load_all(&read, &mirror)?;
        spawn_reloader(listen, mirror.clone(), changes)?;
        info!(database = %target, "PostgreSQL store open");
        Ok(Self {
            read,
            write: Mutex::new(write),
            mirror,
            target,
            runtime,
        })
    }

    /// Where the store is, for logs: user, hosts and database, never the password.
    pub fn target(&self) -> &str {
        &self.target
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
        f(&mut c)
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.runtime.stop();
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

/// A current-thread tokio runtime on a thread of its own, driving the connections
/// until the store is dropped (wherever that happens, even inside another runtime).
struct Runtime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Runtime {
    fn start() -> Result<Self, StoreError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Config(format!("store runtime: {e}")))?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("tincan-postgres".into())
            .spawn(move || {
                rt.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| StoreError::Config(format!("store thread: {e}")))?;
        Ok(Self {
            handle,
            stop: Some(stop),
        })
    }

    /// Runs `fut` on the store's runtime and waits for it on this thread.
    fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .expect("the store's runtime runs until the store is dropped")
    }

    /// Opens a connection and drives it on the runtime. Notifications go to `changes`;
    /// a connection that ends is logged (queries on it fail from then on).
    fn connect(
        &self,
        config: &Config,
        changes: Option<mpsc::Sender<String>>,
        target: &str,
    ) -> Result<Client, StoreError> {
        let config = config.clone();
        let target = target.to_owned();
        self.run(async move {
            let (client, mut conn) = config.connect(NoTls).await?;
            tokio::spawn(async move {
                let why = loop {
                    match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                        Some(Ok(AsyncMessage::Notification(n))) => {
                            if let Some(tx) = &changes {
                                let _ = tx.send(n.payload().to_owned());
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break e.to_string(),
                        None => break "closed".to_owned(),
                    }
                };
                if changes.is_some() {
                    error!(database = %target, why, "PostgreSQL notification connection lost: changes made by other servers are no longer seen until restart");
                } else {
                    warn!(database = %target, why, "PostgreSQL connection ended");
                }
            });
            Ok::<_, StoreError>(client)
        })
    }

    fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Reloads the row each notification names, on a thread of its own, until the
/// notification connection ends.
fn spawn_reloader(
    listen: Client,
    mirror: Arc<Mirror>,
    changes: mpsc::Receiver<String>,
) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("tincan-postgres-mirror".into())
        .spawn(move || {
            for key in changes {
                let done = if let Some(u) = key.strip_prefix("u:") {
                    UserId::new(u)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))
                        .and_then(|u| reload_user(&listen, &mirror, &u))
                } else if let Some(g) = key.strip_prefix("g:") {
                    GroupId::new(g)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))
                        .and_then(|g| reload_group(&listen, &mirror, &g))
                } else {
                    Ok(())
                };
                if let Err(e) = done {
                    warn!(
                        key,
                        "PostgreSQL store: a changed row could not be reloaded: {e}"
                    );
                }
            }
        })
        .map_err(|e| StoreError::Config(format!("store thread: {e}")))?;
    Ok(())
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

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

fn user_row(r: &tokio_postgres::Row) -> Result<UserRow, StoreError> {
    Ok(UserRow {
        user_id: parse_user(r.get(0))?,
        nickname: r.get(1),
        password_hash: r.get(2),
    })
}

async fn fetch_user(c: &impl GenericClient, user: &UserId) -> Result<Option<UserRow>, StoreError> {
    c.query_opt(
        "SELECT user_id, nickname, password_hash FROM users WHERE user_id = $1",
        &[&user.as_str()],
    )
    .await?
    .as_ref()
    .map(user_row)
    .transpose()
}

async fn user_rows(
    c: &impl GenericClient,
    after: &str,
    limit: Option<i64>,
) -> Result<Vec<UserRow>, StoreError> {
    c.query(
        "SELECT user_id, nickname, password_hash FROM users WHERE user_id > $1
         ORDER BY user_id LIMIT $2",
        &[&after, &limit],
    )
    .await?
    .iter()
    .map(user_row)
    .collect()
}

/// Groups chosen by `filter` (a condition on `g`, with `$1` when `arg` is given), with
/// their members, sorted by id.
async fn group_rows(
    c: &impl GenericClient,
    filter: &str,
    arg: Option<&str>,
) -> Result<Vec<GroupRow>, StoreError> {
    let sql = format!(
        "SELECT g.group_id, g.name,
                ARRAY(SELECT m.user_id FROM group_members m WHERE m.group_id = g.group_id
                      ORDER BY m.user_id)
         FROM groups g WHERE {filter} ORDER BY g.group_id"
    );
    let rows = match arg {
        Some(a) => c.query(&sql, &[&a]).await?,
        None => c.query(&sql, &[]).await?,
    };
    rows.iter()
        .map(|r| {
            Ok(GroupRow {
                group_id: parse_group(r.get(0))?,
                name: r.get(1),
                members: r
                    .get::<_, Vec<String>>(2)
                    .into_iter()
                    .map(parse_user)
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

fn load_all(c: &Client, mirror: &Mirror) -> Result<(), StoreError> {
    let _one_at_a_time = mirror.reloading();
    let users = block_on(user_rows(c, "", None))?;
    let groups = block_on(group_rows(c, "TRUE", None))?;
    mirror.replace(users, groups);
    Ok(())
}

fn reload_user(c: &Client, mirror: &Mirror, user: &UserId) -> Result<(), StoreError> {
    let _one_at_a_time = mirror.reloading();
    let row = block_on(fetch_user(c, user))?;
    mirror.set_user(user, row);
    Ok(())
}

fn reload_group(c: &Client, mirror: &Mirror, group: &GroupId) -> Result<(), StoreError> {
    let _one_at_a_time = mirror.reloading();
    let row = block_on(group_rows(c, "g.group_id = $1", Some(group.as_str())))?.pop();
    mirror.set_group(group, row);
    Ok(())
}

impl PostgresStore {
    fn reload_user(&self, user: &UserId) -> Result<(), StoreError> {
        reload_user(&self.read, &self.mirror, user)
    }

    fn reload_group(&self, group: &GroupId) -> Result<(), StoreError> {
        reload_group(&self.read, &self.mirror, group)
    }
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
        block_on(user_rows(&self.read, "", None))
    }

    fn users_page(&self, after: Option<&UserId>, limit: u32) -> Result<Vec<UserRow>, StoreError> {
        block_on(user_rows(
            &self.read,
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
        block_on(group_rows(&self.read, "TRUE", None))
    }

    fn groups_of(&self, user: &UserId) -> Result<Vec<GroupRow>, StoreError> {
        block_on(group_rows(
            &self.read,
            "EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = g.group_id AND m.user_id = $1)",
            Some(user.as_str()),
        ))
    }

    fn put_call(
        &self,
        row: Option<CallRowId>,
        record: &CallRecord,
        open: bool,
    ) -> Result<CallRowId, StoreError> {
        let json = serde_json::to_string(record).expect("records serialize");
        let room = record.room_id.as_str();
        let mut users: Vec<&str> = record.invitees.iter().map(|i| i.user_id.as_str()).collect();
        users.extend(record.participant_user_id_list.iter().map(UserId::as_str));
        users.push(record.inviter_user_id.as_str());
        users.sort_unstable();
        users.dedup();
        self.writing(|c| {
            block_on(async {
                let tx = c.transaction().await?;
                let updated = match row {
                    Some(id) => {
                        let n = tx
                            .execute(
                                "UPDATE calls SET room_id = $2, end_ms = $3, record = $4, open = $5
                                 WHERE call_id = $1",
                                &[&id, &room, &record.end_time, &json, &open],
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
                            "INSERT INTO calls (room_id, end_ms, record, open)
                             VALUES ($1, $2, $3, $4) RETURNING call_id",
                            &[&room, &record.end_time, &json, &open],
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
                tx.commit().await?;
                Ok(call_id)
            })
        })
    }

    fn close_open_calls(&self, reason: EndReason) -> Result<Vec<RoomId>, StoreError> {
        self.writing(|c| {
            block_on(async {
                let tx = c.transaction().await?;
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
                        "UPDATE calls SET record = $2, open = FALSE WHERE call_id = $1",
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
        let rows = block_on(self.read.query(
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
        let rows = block_on(self.read.query(
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
