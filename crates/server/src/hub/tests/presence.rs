//! Presence: who is told, when, and what.

use serde_json::{json, Value};

use tincan_protocol::PresenceStatus::{self, InCall, Offline, Online};
use tincan_protocol::{Event, UserPresence};

use super::{action, uid, H};

/// The presence events `conn` got since last asked.
fn presence_events(h: &mut H, conn: u64) -> Vec<UserPresence> {
    h.take_events(conn)
        .into_iter()
        .filter_map(|e| match e {
            Event::PresenceChanged(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn pair(user: &str, status: PresenceStatus) -> UserPresence {
    UserPresence {
        user_id: uid(user),
        status,
    }
}

fn subscribe(h: &mut H, conn: u64, users: &[&str]) -> Value {
    let r = h.req(conn, "subscribePresence", json!({ "userIDList": users }));
    assert_eq!(r["errCode"], 0, "{r}");
    r["data"]["presence"].clone()
}

#[test]
fn a_follower_is_told_when_a_contact_signs_in_and_out() {
    let mut h = H::new();
    h.login(3, "carol", "c1");
    let now = subscribe(&mut h, 3, &["alice", "bob"]);
    assert_eq!(
        now,
        json!([{"userID": "alice", "status": "offline"}, {"userID": "bob", "status": "offline"}])
    );
    h.login(1, "alice", "a1");
    assert_eq!(presence_events(&mut h, 3), [pair("alice", Online)]);
    // A second device changes nothing others can see; neither does closing one of two.
    h.login(2, "alice", "a2");
    h.close(1);
    assert_eq!(presence_events(&mut h, 3), []);
    h.close(2);
    assert_eq!(presence_events(&mut h, 3), [pair("alice", Offline)]);
}

#[test]
fn a_call_shows_as_in_call_until_it_ends() {
    let mut h = H::new();
    h.login(1, "alice", "a1");
    h.login(2, "bob", "b1");
    h.login(3, "carol", "c1");
    assert_eq!(
        subscribe(&mut h, 3, &["alice", "bob"]),
        json!([{"userID": "alice", "status": "online"}, {"userID": "bob", "status": "online"}])
    );
    let room = h.invite(1, "bob");
    // The caller is busy from the moment the call is placed; the callee only once it
    // answers (ringing is not a call).
    assert_eq!(presence_events(&mut h, 3), [pair("alice", InCall)]);
    assert_eq!(h.req(2, "signalingAccept", action(&room))["errCode"], 0);
    assert_eq!(presence_events(&mut h, 3), [pair("bob", InCall)]);
    // A late follower hears the state as it is now.
    h.login(4, "dave", "d1");
    assert_eq!(
        subscribe(&mut h, 4, &["bob"]),
        json!([{"userID": "bob", "status": "inCall"}])
    );
    assert_eq!(h.req(2, "signalingHungUp", action(&room))["errCode"], 0);
    let mut told = presence_events(&mut h, 3);
    told.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    assert_eq!(told, [pair("alice", Online), pair("bob", Online)]);
    assert_eq!(presence_events(&mut h, 4), [pair("bob", Online)]);
}

#[test]
fn a_dropped_device_in_a_call_stays_in_call_until_its_grace_ends() {
    let mut h = H::new();
    h.login(1, "alice", "a1");
    h.login(2, "bob", "b1");
    h.login(3, "carol", "c1");
    subscribe(&mut h, 3, &["bob"]);
    let room = h.invite(1, "bob");
    assert_eq!(h.req(2, "signalingAccept", action(&room))["errCode"], 0);
    assert_eq!(presence_events(&mut h, 3), [pair("bob", InCall)]);
    // Bob's connection drops: he may come back within the grace period, and a call to
    // him would still find him busy.
    h.close(2);
    assert_eq!(presence_events(&mut h, 3), []);
    h.advance(super::super::HubConfig::default().participant_grace);
    assert_eq!(presence_events(&mut h, 3), [pair("bob", Offline)]);
}

#[test]
fn only_followers_are_told_and_a_new_list_replaces_the_old() {
    let mut h = H::new();
    h.login(3, "carol", "c1");
    h.login(4, "dave", "d1");
    subscribe(&mut h, 3, &["alice", "alice", "bob"]);
    assert_eq!(
        h.hub.watch.follower_count(&uid("alice")),
        1,
        "duplicates count once"
    );
    h.login(1, "alice", "a1");
    assert_eq!(presence_events(&mut h, 3), [pair("alice", Online)]);
    assert_eq!(presence_events(&mut h, 4), [], "dave follows nobody");
    // Carol now follows bob only.
    subscribe(&mut h, 3, &["bob"]);
    h.close(1);
    h.login(2, "bob", "b1");
    assert_eq!(presence_events(&mut h, 3), [pair("bob", Online)]);
    // An empty list follows nobody.
    subscribe(&mut h, 3, &[]);
    h.close(2);
    assert_eq!(presence_events(&mut h, 3), []);
    assert_eq!(h.hub.watch.follower_count(&uid("bob")), 0);
}

#[test]
fn a_closed_or_replaced_connection_follows_nobody() {
    let mut h = H::new();
    h.login(3, "carol", "c1");
    subscribe(&mut h, 3, &["alice"]);
    // The same device signs in on a new connection: the old one's list goes with it.
    h.login(5, "carol", "c1");
    assert_eq!(h.hub.watch.follower_count(&uid("alice")), 0);
    subscribe(&mut h, 5, &["alice"]);
    h.close(5);
    assert_eq!(h.hub.watch.follower_count(&uid("alice")), 0);
    // Carol went offline herself; nothing is sent to her closed connection.
    h.login(1, "alice", "a1");
    assert_eq!(presence_events(&mut h, 5), []);
}

#[test]
fn presence_needs_a_signed_in_connection() {
    let mut h = H::new();
    let r = h.req(9, "subscribePresence", json!({"userIDList": ["alice"]}));
    assert_eq!(r["errCode"], 1007, "{r}");
    assert_eq!(h.hub.watch.follower_count(&uid("alice")), 0);
}
