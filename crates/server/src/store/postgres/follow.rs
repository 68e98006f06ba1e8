//! Reading users and groups for the mirror, and following the database's notifications
//! on a thread of its own, listening again (and reloading everything, since changes
//! made meanwhile were not announced to us) when the connection is lost.

use std::sync::{mpsc, Arc};
use std::time::Duration;

use futures_executor::block_on;
use tincan_protocol::{CallRecord, GroupId, UserId};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, GenericClient};
use tracing::{info, warn};

use super::super::{GroupRow, StoreError, UserRow};
use super::link::Links;
use super::mirror::Mirror;
use super::CHANGES_CHANNEL;

/// First wait before listening again after the notification connection was lost;
/// doubled each failure up to [`RELISTEN_MAX`].
const RELISTEN_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between attempts to listen again.
const RELISTEN_MAX: Duration = Duration::from_secs(5);

pub fn parse_user(s: String) -> Result<UserId, StoreError> {
    UserId::new(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub fn parse_group(s: String) -> Result<GroupId, StoreError> {
    GroupId::new(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub fn parse_record(s: &str) -> Result<CallRecord, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

pub fn user_row(r: &tokio_postgres::Row) -> Result<UserRow, StoreError> {
    Ok(UserRow {
        user_id: parse_user(r.get(0))?,
        nickname: r.get(1),
        password_hash: r.get(2),
    })
}

pub async fn fetch_user(
    c: &impl GenericClient,
    user: &UserId,
) -> Result<Option<UserRow>, StoreError> {
    c.query_opt(
        "SELECT user_id, nickname, password_hash FROM users WHERE user_id = $1",
        &[&user.as_str()],
    )
    .await?
    .as_ref()
    .map(user_row)
    .transpose()
}

pub async fn user_rows(
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
pub async fn group_rows(
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

pub fn load_all(c: &Client, mirror: &Mirror) -> Result<(), StoreError> {
    let _one_at_a_time = mirror.reloading();
    let users = block_on(user_rows(c, "", None))?;
    let groups = block_on(group_rows(c, "TRUE", None))?;
    mirror.replace(users, groups);
    Ok(())
}

pub fn reload_user(c: &Client, mirror: &Mirror, user: &UserId) -> Result<(), StoreError> {
    let _one_at_a_time = mirror.reloading();
    let row = block_on(fetch_user(c, user))?;
    mirror.set_user(user, row);
    Ok(())
}

pub fn reload_group(c: &Client, mirror: &Mirror, group: &GroupId) -> Result<(), StoreError> {
    let _one_at_a_time = mirror.reloading();
    let row = block_on(group_rows(c, "g.group_id = $1", Some(group.as_str())))?.pop();
    mirror.set_group(group, row);
    Ok(())
}

/// Listens for changes on a connection of its own and loads everything; then follows
/// the changes on a thread until the store is dropped.
pub fn start(links: Arc<Links>, mirror: Arc<Mirror>) -> Result<(), StoreError> {
    let first = listen(&links, &mirror)?;
    std::thread::Builder::new()
        .name("tincan-postgres-mirror".into())
        .spawn(move || follow(&links, &mirror, first))
        .map_err(|e| StoreError::Config(format!("store thread: {e}")))?;
    Ok(())
}

fn listen(links: &Links, mirror: &Mirror) -> Result<(Client, mpsc::Receiver<String>), StoreError> {
    let (tx, rx) = mpsc::channel::<String>();
    let client = links.connect(Some(tx))?;
    block_on(client.batch_execute(&format!("LISTEN {CHANGES_CHANNEL}")))?;
    // After LISTEN: a change made while we load is announced too, and reloaded after.
    load_all(&client, mirror)?;
    Ok((client, rx))
}

fn follow(links: &Links, mirror: &Mirror, first: (Client, mpsc::Receiver<String>)) {
    let (mut client, mut changes) = first;
    loop {
        for key in &changes {
            apply(&client, mirror, &key);
        }
        // The connection ended (its task dropped the sender).
        let mut delay = RELISTEN_FIRST;
        loop {
            if links.is_stopped() {
                return;
            }
            match listen(links, mirror) {
                Ok((c, rx)) => {
                    info!(database = %links.target(), "PostgreSQL notifications followed again; users and groups reloaded");
                    client = c;
                    changes = rx;
                    break;
                }
                Err(e) => {
                    warn!(database = %links.target(), error = %e, "cannot follow PostgreSQL's notifications yet; sign-ins see users and groups as they were");
                    // A background retry, not a wait for a result: nothing else to wake us.
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(RELISTEN_MAX);
                }
            }
        }
    }
}

fn apply(client: &Client, mirror: &Mirror, key: &str) {
    let done = if let Some(u) = key.strip_prefix("u:") {
        UserId::new(u)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
            .and_then(|u| reload_user(client, mirror, &u))
    } else if let Some(g) = key.strip_prefix("g:") {
        GroupId::new(g)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
            .and_then(|g| reload_group(client, mirror, &g))
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
