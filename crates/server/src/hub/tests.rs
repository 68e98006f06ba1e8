//! The hub's rules as plain tests: no runtime, no sockets, time moved by hand.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use tincan_protocol::{ClientFrame, Event, GroupId, UserId};

use super::{ConnId, Frame, Hub, HubConfig, Input, Now, Output, Reply};
use crate::auth::TokenSigner;
use crate::store::{SqliteStore, Store};

mod presence;
mod saved;

struct H {
    hub: Hub,
    now: Now,
    signer: TokenSigner,
    next_req: u64,
    /// Frames each connection got, oldest first.
    inbox: std::collections::HashMap<ConnId, Vec<Got>>,
}

/// A frame a connection got: an event as the hub made it, or a reply. A reply's `data`
/// is JSON already (each method answers with a type of its own), so replies are read as
/// `{requestID, errCode, errMsg, data}` values.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Got {
    Event(Event),
    Reply(Value),
}

fn reply_value(r: &Reply) -> Value {
    let (code, msg, data) = match &r.result {
        Ok(data) => (0, String::new(), serde_json::from_str(data.get()).unwrap()),
        Err(e) => (e.code.code(), e.message.clone(), Value::Null),
    };
    json!({"requestID": r.request_id, "errCode": code, "errMsg": msg, "data": data})
}

impl Got {
    fn of(frame: Frame) -> Got {
        match frame {
            Frame::Event(e) => Got::Event(*e),
            Frame::Reply(r) => Got::Reply(reply_value(&r)),
        }
    }
}

impl H {
    fn new() -> H {
        H::with_config(HubConfig::default())
    }

    fn with_config(config: HubConfig) -> H {
        let store = Arc::new(SqliteStore::open_in_memory().unwrap());
        for u in ["alice", "bob", "carol", "dave"] {
            store.add_user(&uid(u), u, None).unwrap();
        }
        let g = GroupId::new("team").unwrap();
        store.create_group(&g, "Team").unwrap();
        for u in ["alice", "bob", "carol"] {
            store.add_member(&g, &uid(u)).unwrap();
        }
        let signer = TokenSigner::new(b"test");
        let hub = Hub::new(config, store as Arc<dyn Store>, signer.clone());
        H {
            hub,
            now: Now {
                mono: Instant::now(),
                wall_ms: 1_000_000,
            },
            signer,
            next_req: 1,
            inbox: Default::default(),
        }
    }

    fn collect(&mut self) {
        for out in self.hub.take_outputs() {
            let (to, got) = match out {
                Output::Event { to, event } => (to, Frame::Event(Box::new(event))),
                Output::Reply { conn, reply } => (vec![conn], Frame::Reply(reply)),
                Output::Close { conn, last, .. } => (vec![conn], last),
            };
            for c in to {
                self.inbox.entry(c).or_default().push(Got::of(got.clone()));
            }
        }
    }

    /// Sends a request and returns its response frame.
    fn req(&mut self, conn: ConnId, method: &str, data: Value) -> Value {
        let id = self.next_req;
        self.next_req += 1;
        let text = json!({"requestID": id, "operationID": format!("op{id}"), "method": method, "data": data});
        let frame = ClientFrame::parse(&text.to_string()).unwrap();
        self.hub.handle(self.now, Input::Request { conn, frame });
        self.collect();
        let inbox = self.inbox.get_mut(&conn).unwrap();
        let i = inbox
            .iter()
            .position(|f| matches!(f, Got::Reply(r) if r["requestID"] == id))
            .expect("a response");
        match inbox.remove(i) {
            Got::Reply(r) => r,
            Got::Event(_) => unreachable!("found a reply"),
        }
    }

    fn login(&mut self, conn: ConnId, user: &str, device: &str) -> Value {
        let token = self.signer.login_token(&uid(user), i64::MAX);
        let r = self.req(
            conn,
            "login",
            json!({"token": token, "deviceID": device, "platformID": 7}),
        );
        assert_eq!(r["errCode"], 0, "{r}");
        r
    }

    /// Names of the events `conn` got since last asked.
    fn events(&mut self, conn: ConnId) -> Vec<String> {
        self.take_events(conn)
            .into_iter()
            .map(|e| e.name().to_owned())
            .collect()
    }

    /// The events `conn` got since last asked; replies stay.
    fn take_events(&mut self, conn: ConnId) -> Vec<Event> {
        let inbox = self.inbox.entry(conn).or_default();
        let mut events = Vec::new();
        inbox.retain(|f| match f {
            Got::Event(e) => {
                events.push(e.clone());
                false
            }
            Got::Reply(_) => true,
        });
        events
    }

    fn advance(&mut self, d: Duration) {
        self.now.mono += d;
        self.now.wall_ms += d.as_millis() as i64;
        self.hub.handle_timeout(self.now);
        self.collect();
    }

    fn close(&mut self, conn: ConnId) {
        self.hub.handle(
            self.now,
            Input::Closed {
                conn,
                last_heard: self.now.mono,
            },
        );
        self.collect();
    }

    fn invite(&mut self, conn: ConnId, to: &str) -> String {
        let r = self.req(conn, "signalingInvite", json!({"invitation": {"inviteeUserIDList": [to], "mediaType": "video", "sessionType": 1, "timeout": 30}}));
        assert_eq!(r["errCode"], 0, "{r}");
        r["data"]["roomID"].as_str().unwrap().to_owned()
    }
}

fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

fn action(room: &str) -> Value {
    json!({"invitation": {"roomID": room}})
}

#[test]
fn cancel_then_accept_is_refused_as_not_ringing() {
    let mut h = H::new();
    h.login(1, "alice", "a1");
    h.login(2, "bob", "b1");
    let room = h.invite(1, "bob");
    assert_eq!(h.events(2), ["onReceiveNewInvitation"]);
    assert_eq!(h.req(1, "signalingCancel", action(&room))["errCode"], 0);
    assert_eq!(h.events(2), ["onInvitationCancelled"]);
    let r = h.req(2, "signalingAccept", action(&room));
    assert_eq!(r["errCode"], 1602, "{r}");
    assert_eq!(h.hub.call_count(), 0);
}

#[test]
fn accept_then_late_timeout_does_nothing() {
    let mut h = H::new();
    h.login(1, "alice", "a1");
    h.login(2, "bob", "b1");
    let room = h.invite(1, "bob");
    assert_eq!(h.req(2, "signalingAccept", action(&room))["errCode"], 0);
    assert_eq!(h.events(1), ["onInviteeAccepted"]);
    h.advance(Duration::from_secs(31));
    assert!(h.events(1).is_empty());
    assert!(h.events(2).iter().all(|e| e == "onReceiveNewInvitation"));
    assert_eq!(h.hub.call_count(), 1);
}

#[test]
fn timeout_tells_inviter_and_stops_every_ringing_device() {
    let mut h = H::new();
    h.login(1, "alice", "a1");
    h.login(2, "bob", "b1");
    h.login(3, "bob", "b2");
    let room = h.invite(1, "bob");
    h.advance(Duration::from_secs(29));
    assert!(h.events(1).is_empty());
    h.advance(Duration::from_secs(1));
    match &h.take_events(1)[..] {
        [Event::InvitationTimeout(info)] => assert_eq!(info.op_user_id, uid("bob")),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.events(2),
        ["onReceiveNewInvitation", "onInvitationTimeout"]
    );
    assert_eq!(
        h.events(3),
        ["onReceiveNewInvitation", "onInvitationTimeout"]
    );
    assert_eq!(h.req(2, "signalingAccept", action(&room))["errCode"], 1602);
}

#[test]
fn second_device_accept_is_refused_and_first_wins() {
    let mut h = H::new();
    h.login(1, "alice", "a1");
    h.login(2, "bob", "b1");
    h.login(3, "bob", "b2");
    let room = h.invite(1, "bob");
    assert_eq!(h.req(2, "signalingAccept", action(&room))["errCode"], 0);
    assert_eq!(
        h.events(3),
        ["onReceiveNewInvitation", "onInviteeAcceptedByOtherDevice"]
    );
    let r = h.req(3, "signalingAccept", action(&room));
    assert_eq!(r["errCode"], 1601, "{r}");
    let r = h.req(3, "signalingReject", action(&room));
    assert_eq!(r["errCode"], 1601, "{r}");
    assert_eq!(h.events(1), ["onInviteeAccepted"]);
}

#[test]
fn crossing_invitations_become_one_call() {
    let mut h = H::new();
    h.login(1, "alice", "a1");
    h.login(2, "bob", "b1");
    let room = h.invite(1, "bob");
    let r = h.req(
        2,
        "signalingInvite",
        json!({"invitation": {"inviteeUserIDList": ["alice"], "sessionType": 1}}),
    );
    assert_eq!(r["errCode"], 0, "{r}");
    assert_eq!(r["data"]["roomID"], room.as_str());
    assert_eq!(h.events(1), ["onInviteeAccepted"]);
    assert_eq!(h.hub.call_count(), 1);
}

#[test]
fn busy_invitee_is_listed_not_rung() {
    let mut h = H::new();
    for (c, u) in [(1, "alice"), (2, "bob"), (3, "carol")] {
        h.login(c, u, &format!("{u}-d"));
    }
    let room = h.invite(1, "bob");
    h.req(2, "signalingAccept", action(&room));
    h.events(2);
    let r = h.req(
        3,
        "signalingInvite",
        json!({"invitation": {"inviteeUserIDList": ["bob"], "sessionType": 1}}),
    );
    assert_eq!(r["data"]["busyLineUserIDList"], json!(["bob"]));
    assert!(h.events(2).is_empty());
    assert_eq!(h.hub.call_count(), 1, "the all-busy call ended at once");
}

#[test]
fn group_call_ends_below_two_and_cancels_whoever_still_rings() {
    let mut h = H::new();
    for (c, u) in [(1, "alice"), (2, "bob"), (3, "carol")] {
        h.login(c, u, &format!("{u}-d"));
    }
    let r = h.req(1, "signalingInviteInGroup", json!({"invitation": {"inviteeUserIDList": ["bob", "carol"], "groupID": "team", "sessionType": 2}}));
    let room = r["data"]["roomID"].as_str().unwrap().to_owned();
    h.req(2, "signalingAccept", action(&room));
    assert_eq!(
        h.events(1),
        ["onInviteeAccepted", "onRoomParticipantConnected"]
    );
    assert_eq!(h.req(2, "signalingHungUp", action(&room))["errCode"], 0);
    assert_eq!(h.events(1), ["onHangUp", "onRoomParticipantDisconnected"]);
    assert_eq!(
        h.events(3),
        ["onReceiveNewInvitation", "onInvitationCancelled"]
    );
    assert_eq!(h.hub.call_count(), 0);
}

#[test]
fn inviter_lost_before_answer_cancels_after_grace() {
    let mut h = H::new();
    h.login(1, "alice", "a1");
    h.login(2, "bob", "b1");
    h.invite(1, "bob");
    h.close(1);
    h.advance(Duration::from_secs(9));
    assert_eq!(h.events(2), ["onReceiveNewInvitation"]);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.events(2), ["onInvitationCancelled"]);
    assert_eq!(h.hub.call_count(), 0);
}

#[test]
fn participant_resumes_within_grace() {
    let mut h = H::new();
    h.login(1, "alice", "a1");
    h.login(2, "bob", "b1");
    let room = h.invite(1, "bob");
    h.req(2, "signalingAccept", action(&room));
    h.close(2);
    h.advance(Duration::from_secs(20));
    let r = h.login(3, "bob", "b1");
    assert_eq!(r["data"]["currentCall"]["roomID"], room.as_str());
    h.advance(Duration::from_secs(20));
    assert_eq!(h.hub.call_count(), 1);
    assert_eq!(h.req(3, "signalingHungUp", action(&room))["errCode"], 0);
    assert!(h.events(1).contains(&"onHangUp".to_owned()));
}

#[test]
fn participant_lost_is_hung_up_after_grace() {
    let mut h = H::new();
    h.login(1, "alice", "a1");
    h.login(2, "bob", "b1");
    let room = h.invite(1, "bob");
    h.req(2, "signalingAccept", action(&room));
    h.events(1);
    h.close(2);
    h.advance(Duration::from_secs(30));
    assert_eq!(h.events(1), ["onHangUp"]);
    assert_eq!(h.hub.call_count(), 0);
}

#[test]
fn acting_as_someone_else_is_refused() {
    let mut h = H::new();
    h.login(1, "alice", "a1");
    h.login(2, "bob", "b1");
    let r = h.req(1, "signalingInvite", json!({"invitation": {"inviterUserID": "bob", "inviteeUserIDList": ["carol"], "sessionType": 1}}));
    assert_eq!(r["errCode"], 1002);
    let room = h.invite(1, "bob");
    let r = h.req(
        2,
        "signalingAccept",
        json!({"opUserID": "alice", "invitation": {"roomID": room}}),
    );
    assert_eq!(r["errCode"], 1002);
    let r = h.req(2, "signalingCancel", action(&room));
    assert_eq!(r["errCode"], 1002, "only the caller cancels");
}

#[test]
fn requests_before_login_are_refused() {
    let mut h = H::new();
    let r = h.req(
        9,
        "signalingInvite",
        json!({"invitation": {"inviteeUserIDList": ["bob"]}}),
    );
    assert_eq!(r["errCode"], 1007);
}

#[test]
fn same_device_signing_in_again_replaces_the_old_connection() {
    let mut h = H::new();
    h.login(1, "alice", "a1");
    h.login(2, "alice", "a1");
    assert_eq!(h.events(1), ["onKickedOffline"]);
    assert_eq!(h.hub.conn_count(), 1);
}

#[test]
fn calling_back_while_in_another_call_is_busy_not_a_merge() {
    let mut h = H::new();
    for (c, u) in [(1, "alice"), (2, "bob"), (3, "carol")] {
        h.login(c, u, &format!("{u}-d"));
    }
    // Alice's and carol's calls both ring bob; bob answers carol's.
    h.invite(1, "bob");
    let carols = h.invite(3, "bob");
    assert_eq!(h.req(2, "signalingAccept", action(&carols))["errCode"], 0);
    // Alice's call still rings him, but calling her back must not merge him into it:
    // he would be in two calls at once.
    let r = h.req(
        2,
        "signalingInvite",
        json!({"invitation": {"inviteeUserIDList": ["alice"], "sessionType": 1}}),
    );
    assert_eq!(r["errCode"], 1603, "{r}");
    assert_eq!(h.hub.call_count(), 2);
}

#[test]
fn a_call_is_recorded_open_from_its_first_ring_and_closed_once_at_its_end() {
    use tincan_protocol::{EndReason, InviteeOutcome};
    let mut h = H::new();
    h.login(1, "alice", "a1");
    h.login(2, "bob", "b1");
    let room = h.invite(1, "bob");
    let ringing = h.hub.take_records();
    assert_eq!(ringing.len(), 1, "one update per input: {ringing:?}");
    assert!(ringing[0].open);
    assert_eq!(ringing[0].record.room_id.as_str(), room);
    assert_eq!(ringing[0].record.end_reason, EndReason::ServerRestart);
    assert_eq!(h.req(2, "signalingAccept", action(&room))["errCode"], 0);
    let answered = h.hub.take_records();
    assert_eq!(answered.len(), 1);
    assert!(answered[0].open);
    assert_eq!(answered[0].call, ringing[0].call, "the same row");
    assert_eq!(
        answered[0].record.invitees[0].outcome,
        InviteeOutcome::Accepted
    );
    assert_eq!(h.req(1, "signalingHungUp", action(&room))["errCode"], 0);
    let ended = h.hub.take_records();
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert!(!ended[0].open);
    assert_eq!(ended[0].call, ringing[0].call);
    assert_eq!(ended[0].record.end_reason, EndReason::HungUp);
    // A ping changes no call: nothing to write.
    h.req(1, "ping", json!({}));
    assert!(h.hub.take_records().is_empty());
}

#[test]
fn rooms_ended_before_a_restart_answer_not_ringing() {
    use tincan_protocol::{EndReason, RoomId};
    let mut h = H::new();
    h.hub
        .remember_ended([(RoomId::new("cut").unwrap(), EndReason::ServerRestart)]);
    h.login(2, "bob", "b1");
    let r = h.req(2, "signalingAccept", action("cut"));
    assert_eq!(r["errCode"], 1602, "{r}");
    assert!(
        r["errMsg"].as_str().unwrap().contains("started again"),
        "{r}"
    );
    assert_eq!(
        h.req(2, "signalingAccept", action("never"))["errCode"],
        1004
    );
}

#[test]
fn a_full_room_and_a_second_group_call_have_codes_of_their_own() {
    let mut h = H::with_config(HubConfig {
        max_room_size: 2,
        ..HubConfig::default()
    });
    h.login(1, "alice", "a1");
    h.login(2, "bob", "b1");
    h.login(3, "carol", "c1");
    let r = h.req(
        1,
        "signalingInviteInGroup",
        json!({"invitation": {"inviteeUserIDList": ["bob"], "groupID": "team", "sessionType": 2}}),
    );
    assert_eq!(r["errCode"], 0, "{r}");
    let room = r["data"]["roomID"].as_str().unwrap().to_owned();
    assert_eq!(h.req(2, "signalingAccept", action(&room))["errCode"], 0);
    // A second call in the group: 1606, not "you are in a call" (she is not).
    let r = h.req(
        3,
        "signalingInviteInGroup",
        json!({"invitation": {"inviteeUserIDList": ["alice"], "groupID": "team", "sessionType": 2}}),
    );
    assert_eq!(r["errCode"], 1606, "{r}");
    assert!(r["errMsg"].as_str().unwrap().contains(&room), "{r}");
    // Joining the call, with two people in a room for two: 1607.
    let r = h.req(3, "signalingGetTokenByRoomID", json!({"roomID": room}));
    assert_eq!(r["errCode"], 1607, "{r}");
    // Already in a call is still 1603.
    let r = h.req(
        2,
        "signalingInvite",
        json!({"invitation": {"inviteeUserIDList": ["carol"], "sessionType": 1}}),
    );
    assert_eq!(r["errCode"], 1603, "{r}");
}

#[test]
fn a_signal_sent_without_reply_on_success_is_delivered_and_only_a_failure_answered() {
    let mut h = H::new();
    h.login(1, "alice", "a1");
    h.login(2, "bob", "b1");
    h.login(3, "carol", "c1");
    let room = h.invite(1, "bob");
    let r = h.req(2, "signalingAccept", action(&room));
    assert_eq!(r["errCode"], 0, "{r}");
    h.take_events(1);
    h.take_events(2);
    let quiet = |id: u64, room: &str| {
        json!({"requestID": id, "operationID": "q", "method": "signalingSendCustomSignal",
            "noReplyOnSuccess": true, "data": {"roomID": room, "customInfo": "hi"}})
        .to_string()
    };
    // Delivered, and the sender gets nothing back.
    let frame = ClientFrame::parse(&quiet(900, &room)).unwrap();
    assert!(frame.no_reply_on_success);
    h.hub.handle(h.now, Input::Request { conn: 1, frame });
    h.collect();
    assert_eq!(h.events(2), vec!["onReceiveCustomSignal"]);
    assert!(
        h.inbox.get(&1).is_none_or(|f| f.is_empty()),
        "{:?}",
        h.inbox.get(&1)
    );
    // Carol is not in the call: the failure is answered all the same.
    let frame = ClientFrame::parse(&quiet(901, &room)).unwrap();
    h.hub.handle(h.now, Input::Request { conn: 3, frame });
    h.collect();
    match &h.inbox[&3][..] {
        [Got::Reply(r)] => {
            assert_eq!(r["requestID"], 901);
            assert_eq!(r["errCode"], 1002, "{r}");
        }
        other => panic!("{other:?}"),
    }
}
