//! Requests answered from the store outside the hub: `getContacts` and
//! `getCallHistory`.
//!
//! Neither changes call state, and either may read many rows, so the hub does not
//! answer them: a contacts page or a history read under the hub's lock would hold up
//! every other user's request for as long as it takes. The switchboard takes the
//! signed-in user from the hub (identity always comes from the login, never from the
//! request) and hands the request here, on a task of its own.

use std::sync::Arc;

use serde_json::value::{to_raw_value, RawValue};
use tokio::sync::Semaphore;
use tracing::warn;

use tincan_protocol::limits::{bounded_nickname, MAX_SERVER_FRAME};
use tincan_protocol::{
    ContactsParams, ContactsReply, ErrCode, GroupInfo, HistoryParams, HistoryReply, PublicUserInfo,
    Request, UserId, WireError, CONTACTS_PAGE_BYTES, CONTACTS_PAGE_DEFAULT, CONTACTS_PAGE_MAX,
};

use crate::records::{HistoryError, Records};
use crate::store::{Store, StoreError};

/// Store queries running at once; more wait their turn. Each runs on the blocking pool,
/// and a flood of them must not take all of its threads.
pub const QUERY_CONCURRENCY: usize = 4;

/// Records per history reply when the request gives no `limit`, and the most allowed.
const HISTORY_DEFAULT: u32 = 50;
const HISTORY_MAX: u32 = 200;

/// The answer to one query: the reply's `data`, or why not.
pub type Answer = Result<Box<RawValue>, WireError>;

/// Whether the switchboard should send `request` here rather than to the hub.
pub fn is_query(request: &Request) -> bool {
    matches!(
        request,
        Request::GetContacts(_) | Request::GetCallHistory(_)
    )
}

/// Answers a query of `user`'s.
/// Store reads on the blocking pool take one of `slots` ([`QUERY_CONCURRENCY`]);
/// history reads are made by the record writer, in its queue, and take none (so that,
/// while the database is locked, waiting history requests hold no contacts page up).
pub async fn answer(
    store: Arc<dyn Store>,
    slots: &Semaphore,
    records: &Records,
    user: UserId,
    request: Request,
) -> Answer {
    match request {
        Request::GetContacts(p) => {
            let _slot = slots
                .acquire()
                .await
                .map_err(|_| internal("the server is stopping"))?;
            tokio::task::spawn_blocking(move || contacts(store.as_ref(), &user, p))
                .await
                .map_err(|_| internal("the contacts query failed"))?
        }
        Request::GetCallHistory(p) => history(records, user, p).await,
        other => Err(internal(&format!("{} is not a query", other.method()))),
    }
}

fn internal(what: &str) -> WireError {
    WireError::new(ErrCode::Internal, format!("{what}; try again"))
}

fn store_failed(e: StoreError) -> WireError {
    warn!(error = %e, "store failed");
    WireError::new(ErrCode::Internal, "the server's storage failed; try again")
}

fn raw<T: serde::Serialize>(v: &T) -> Answer {
    Ok(to_raw_value(v).expect("reply types serialize"))
}

/// One page of contacts: users sorted by id after `p.after`, without `me`, at most
/// `count` of them and at most [`CONTACTS_PAGE_BYTES`] of them; groups on the first page.
pub fn contacts(store: &dyn Store, me: &UserId, p: ContactsParams) -> Answer {
    let count = match p.count {
        Some(0) => {
            return Err(WireError::new(
                ErrCode::Args,
                format!("data.count must be 1 to {CONTACTS_PAGE_MAX}, got 0"),
            ))
        }
        Some(n) => n.min(CONTACTS_PAGE_MAX),
        None => CONTACTS_PAGE_DEFAULT,
    };
    // One more than a page, plus one in case `me` is among them: whether a row is left
    // over says whether more follow.
    let rows = store
        .users_page(p.after.as_ref(), count + 2)
        .map_err(store_failed)?;
    let mut users = Vec::new();
    let mut bytes = 0;
    let mut last = None;
    let mut has_more = false;
    for row in rows {
        if row.user_id == *me {
            last = Some(row.user_id);
            continue;
        }
        let info = PublicUserInfo {
            user_id: row.user_id,
            nickname: bounded_nickname(row.nickname),
            face_url: String::new(),
        };
        let size = serde_json::to_string(&info).expect("serializes").len() + 1;
        let full = users.len() == count as usize
            || (bytes + size > CONTACTS_PAGE_BYTES && !users.is_empty());
        if full {
            has_more = true;
            break;
        }
        last = Some(info.user_id.clone());
        bytes += size;
        users.push(info);
    }
    let groups = if p.after.is_none() {
        store
            .groups_of(me)
            .map_err(store_failed)?
            .into_iter()
            .map(|g| GroupInfo {
                group_id: g.group_id,
                group_name: g.name,
                member_user_id_list: g.members,
            })
            .collect()
    } else {
        Vec::new()
    };
    raw(&ContactsReply {
        users,
        groups,
        has_more,
        next_cursor: if has_more { last } else { None },
    })
}

async fn history(records: &Records, user: UserId, p: HistoryParams) -> Answer {
    let limit = p.limit.unwrap_or(HISTORY_DEFAULT).clamp(1, HISTORY_MAX);
    let mut records = match records.history(user, limit, p.before_time).await {
        Ok(r) => r,
        Err(HistoryError::Stopped) => {
            return Err(WireError::new(
                ErrCode::ShuttingDown,
                "the server is shutting down; reconnect in a moment",
            ))
        }
        Err(HistoryError::Store(e)) => return Err(store_failed(e)),
    };
    // Records of big group calls are large: send fewer (the oldest are left for the
    // next page, asked with beforeTime) rather than a frame no client accepts.
    let budget = MAX_SERVER_FRAME - 1024;
    let mut size: usize = records
        .iter()
        .map(|r| serde_json::to_string(r).expect("serializes").len() + 1)
        .sum();
    while size > budget {
        let Some(r) = records.pop() else { break };
        size -= serde_json::to_string(&r).expect("serializes").len() + 1;
    }
    raw(&HistoryReply { records })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    fn uid(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    fn page(store: &dyn Store, me: &str, after: Option<&str>, count: Option<u32>) -> ContactsReply {
        let p = ContactsParams {
            after: after.map(uid),
            count,
        };
        serde_json::from_str(contacts(store, &uid(me), p).unwrap().get()).unwrap()
    }

    #[test]
    fn pages_skip_yourself_and_end_with_no_cursor() {
        let s = SqliteStore::open_in_memory().unwrap();
        for u in ["a", "b", "c", "d"] {
            s.add_user(&uid(u), u, None).unwrap();
        }
        let p1 = page(&s, "b", None, Some(1));
        assert_eq!(p1.users.len(), 1);
        assert_eq!(p1.users[0].user_id, uid("a"));
        assert!(p1.has_more);
        // The next page starts after "a"; "b" (me) is skipped.
        let p2 = page(&s, "b", Some("a"), Some(1));
        assert_eq!(p2.users[0].user_id, uid("c"));
        let p3 = page(
            &s,
            "b",
            p2.next_cursor.as_ref().map(UserId::as_str),
            Some(1),
        );
        assert_eq!(p3.users[0].user_id, uid("d"));
        assert!(!p3.has_more);
        assert_eq!(p3.next_cursor, None);
        let all = page(&s, "b", None, None);
        assert_eq!(all.users.len(), 3);
        assert!(!all.has_more);
    }

    #[test]
    fn a_page_that_ends_on_yourself_still_moves_on() {
        let s = SqliteStore::open_in_memory().unwrap();
        for u in ["a", "b", "c"] {
            s.add_user(&uid(u), u, None).unwrap();
        }
        let p = page(&s, "a", None, Some(1));
        assert_eq!(p.users[0].user_id, uid("b"));
        assert_eq!(p.next_cursor, Some(uid("b")));
        let p = page(&s, "c", Some("a"), Some(1));
        assert_eq!(p.users[0].user_id, uid("b"));
        assert!(!p.has_more, "only c (me) is left");
    }
}
