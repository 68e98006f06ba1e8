//! The hub driven by random sequences of requests, disconnects, reconnects and timer
//! fires, with its invariants checked after every step (docs/security.md, "Fuzzing and
//! the adversarial suite"):
//!
//! - nobody rings for a dead invitation: every room in a user's ringing list is a live
//!   call in which that user is Ringing, with a timer armed for it; and every device's own
//!   view (built only from the frames it got) rings for exactly those rooms;
//! - one call per user: a user is a participant of at most one room, and busy exactly
//!   when in one;
//! - first answer wins: once a device of a user accepted or declined, every later answer
//!   from any device of that user for that room is refused;
//! - a refused request changes nothing and tells nobody but the one who asked;
//! - every output is valid JSON addressed only to open connections, each request gets
//!   exactly one response, and nothing panics.
//!
//! `PROPTEST_CASES=10000 cargo test -p tincan-server --lib proptests` runs it longer.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{json, Value};
use tokio::time::Instant;

use tincan_protocol::{ClientFrame, GroupId, UserId};

use super::{ConnId, Frame, Hub, HubConfig, Input, Now, Output};
use crate::auth::TokenSigner;
use crate::store::{SqliteStore, Store};

mod invariants;

const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
/// Members of the group "team"; dave is not one.
const MEMBERS: [&str; 3] = ["alice", "bob", "carol"];
const DEVICES: usize = 3;

#[derive(Debug, Clone, Copy)]
enum Answer {
    Accept,
    Reject,
    Cancel,
    HungUp,
}

impl Answer {
    fn method(self) -> &'static str {
        match self {
            Answer::Accept => "signalingAccept",
            Answer::Reject => "signalingReject",
            Answer::Cancel => "signalingCancel",
            Answer::HungUp => "signalingHungUp",
        }
    }
}

/// One step. Indices pick among what exists at that moment (modulo its length), so
/// every generated sequence is meaningful and shrinks well.
#[derive(Debug, Clone)]
enum Step {
    /// A new connection signs in as `USERS[user]` on device `device` (reconnecting, or
    /// replacing the same device's connection).
    Login { user: usize, device: usize },
    /// An open connection closes.
    Close { conn: usize },
    /// A 1:1 or group invitation from an open connection.
    Invite {
        from: usize,
        to: Vec<usize>,
        group: bool,
        timeout: u8,
    },
    /// Accept, reject, cancel or hang up a room seen so far; `as_user` names someone
    /// (perhaps not the sender) as opUserID.
    Answer {
        from: usize,
        what: Answer,
        room: usize,
        as_user: Option<usize>,
    },
    /// One of the other requests, about a room seen so far.
    Other { from: usize, which: u8, room: usize },
    /// A connection that never signs in sends a request.
    Anonymous,
    /// Time passes and due timers fire.
    Advance { secs: u8 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..USERS.len(), 0..DEVICES).prop_map(|(user, device)| Step::Login { user, device }),
        2 => any::<usize>().prop_map(|conn| Step::Close { conn }),
        4 => (any::<usize>(), prop::collection::vec(0..USERS.len(), 1..3), any::<bool>(), 0u8..40)
            .prop_map(|(from, to, group, timeout)| Step::Invite { from, to, group, timeout }),
        6 => (
            any::<usize>(),
            prop_oneof![
                Just(Answer::Accept),
                Just(Answer::Reject),
                Just(Answer::Cancel),
                Just(Answer::HungUp)
            ],
            any::<usize>(),
            prop::option::weighted(0.2, 0..USERS.len()),
        )
            .prop_map(|(from, what, room, as_user)| Step::Answer { from, what, room, as_user }),
        1 => (any::<usize>(), 0u8..6, any::<usize>())
            .prop_map(|(from, which, room)| Step::Other { from, which, room }),
        1 => Just(Step::Anonymous),
        3 => (0u8..45).prop_map(|secs| Step::Advance { secs }),
    ]
}

/// The hub, the clock, and what the clients have seen.
struct World {
    hub: Hub,
    now: Now,
    signer: TokenSigner,
    next_conn: ConnId,
    next_req: u64,
    /// Open connections, oldest first, with who signed in on them.
    open: Vec<(ConnId, Option<(usize, usize)>)>,
    /// Every room id seen in any frame, in order.
    rooms: Vec<String>,
    /// The rooms each open connection rings for, as its client works it out.
    ringing: HashMap<ConnId, BTreeSet<String>>,
    /// (room, user) pairs some device of `user` answered (accept or reject).
    answered: HashSet<(String, String)>,
}

impl World {
    fn new() -> World {
        let store = Arc::new(SqliteStore::open_in_memory().unwrap());
        for u in USERS {
            store.add_user(&UserId::new(u).unwrap(), u, None).unwrap();
        }
        let g = GroupId::new("team").unwrap();
        store.create_group(&g, "Team").unwrap();
        for u in MEMBERS {
            store.add_member(&g, &UserId::new(u).unwrap()).unwrap();
        }
        let signer = TokenSigner::new(b"proptest");
        let cfg = HubConfig {
            // Small, so that the limit is reached and refused too.
            max_devices_per_user: 2,
            max_room_size: 3,
            ..HubConfig::default()
        };
        World {
            hub: Hub::new(cfg, store as Arc<dyn Store>, signer.clone()),
            now: Now {
                mono: Instant::now(),
                wall_ms: 1_000_000,
            },
            signer,
            next_conn: 1,
            next_req: 1,
            open: Vec::new(),
            rooms: Vec::new(),
            ringing: HashMap::new(),
            answered: HashSet::new(),
        }
    }

    fn is_open(&self, conn: ConnId) -> bool {
        self.open.iter().any(|(c, _)| *c == conn)
    }

    /// A signed-in connection, picked by `i`.
    fn signed_in(&self, i: usize) -> Option<(ConnId, usize)> {
        let signed: Vec<_> = self
            .open
            .iter()
            .filter_map(|(c, who)| who.map(|(u, _)| (*c, u)))
            .collect();
        (!signed.is_empty()).then(|| signed[i % signed.len()])
    }

    /// Mostly a device that rings for `room`, or one of a user who already answered it
    /// (the races are there); now and then anyone signed in.
    fn answerer(&self, i: usize, room: &str) -> Option<(ConnId, usize)> {
        let involved: Vec<(ConnId, usize)> = self
            .open
            .iter()
            .filter_map(|(c, who)| who.map(|(u, _)| (*c, u)))
            .filter(|(c, u)| {
                self.ringing.get(c).is_some_and(|r| r.contains(room))
                    || self
                        .answered
                        .contains(&(room.to_owned(), USERS[*u].to_owned()))
            })
            .collect();
        if involved.is_empty() || i % 4 == 3 {
            self.signed_in(i)
        } else {
            Some(involved[i % involved.len()])
        }
    }

    fn room(&self, i: usize) -> String {
        // Now and then a room nobody made.
        if self.rooms.is_empty() || i % 8 == 7 {
            "no-such-room".to_owned()
        } else if i.is_multiple_of(2) {
            // Mostly the newest call, where the races are.
            self.rooms[self.rooms.len() - 1].clone()
        } else {
            self.rooms[i % self.rooms.len()].clone()
        }
    }

    fn note_room(&mut self, v: &Value) {
        for r in [&v["roomID"], &v["invitation"]["roomID"]] {
            if let Some(r) = r.as_str() {
                if !r.is_empty() && !self.rooms.iter().any(|x| x == r) {
                    self.rooms.push(r.to_owned());
                }
            }
        }
    }

    /// Takes the hub's outputs, checks them, updates what each client saw, and closes
    /// the connections the hub closed. Returns the frames by recipient.
    fn deliver(&mut self) -> Result<Vec<(ConnId, Value)>, TestCaseError> {
        let mut frames = Vec::new();
        // Closing a connection is an input too; its outputs belong to this step. Each
        // round closes at least one connection, so this ends.
        loop {
            let round = self.deliver_once()?;
            if round.is_empty() {
                return Ok(frames);
            }
            frames.extend(round);
        }
    }

    fn deliver_once(&mut self) -> Result<Vec<(ConnId, Value)>, TestCaseError> {
        let mut frames = Vec::new();
        let mut closed = Vec::new();
        for out in self.hub.take_outputs() {
            let (to, frame) = match out {
                Output::Event { to, event } => (to, Frame::Event(Box::new(event))),
                Output::Reply { conn, reply } => (vec![conn], Frame::Reply(reply)),
                Output::Close { conn, last, .. } => {
                    closed.push(conn);
                    (vec![conn], last)
                }
            };
            // The properties are about what clients get: frames as the switchboard
            // renders them.
            let text = crate::switchboard::render::frame(&frame).ok_or_else(|| {
                TestCaseError::fail(format!("an event too large to send: {frame:?}"))
            })?;
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| TestCaseError::fail(format!("not JSON: {e}: {text}")))?;
            prop_assert!(v.is_object(), "not an object: {text}");
            prop_assert!(!to.is_empty(), "a frame for nobody: {text}");
            for c in to {
                prop_assert!(self.is_open(c), "frame for closed conn {c}: {text}");
                frames.push((c, v.clone()));
            }
            // A connection the hub closed gets nothing more.
            for c in &closed {
                self.open.retain(|(o, _)| o != c);
            }
        }
        for (c, v) in &frames {
            self.note_room(&v["data"]);
            if v["type"] == "event" {
                let room = v["data"]["invitation"]["roomID"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let set = self.ringing.entry(*c).or_default();
                match v["event"].as_str().unwrap_or_default() {
                    "onReceiveNewInvitation" => {
                        set.insert(room);
                    }
                    "onInvitationCancelled"
                    | "onInvitationTimeout"
                    | "onInviteeAcceptedByOtherDevice"
                    | "onInviteeRejectedByOtherDevice" => {
                        set.remove(&room);
                    }
                    _ => {}
                }
            }
        }
        for c in closed {
            self.closed(c);
        }
        Ok(frames)
    }

    fn closed(&mut self, conn: ConnId) {
        self.open.retain(|(o, _)| *o != conn);
        self.ringing.remove(&conn);
        self.hub.handle(
            self.now,
            Input::Closed {
                conn,
                last_heard: self.now.mono,
            },
        );
    }

    /// Sends a request; checks it got exactly one response, addressed to the sender,
    /// and that a refusal changed nothing and told nobody else. Returns the response.
    fn request(&mut self, conn: ConnId, method: &str, data: Value) -> Result<Value, TestCaseError> {
        let id = self.next_req;
        self.next_req += 1;
        let text = json!({"requestID": id, "operationID": format!("op{id}"), "method": method, "data": data});
        let frame = ClientFrame::parse(&text.to_string())
            .map_err(|e| TestCaseError::fail(format!("test made a bad frame {text}: {e:?}")))?;
        let before = self.hub.digest();
        self.hub.handle(self.now, Input::Request { conn, frame });
        let after = self.hub.digest();
        let frames = self.deliver()?;
        let mut responses = frames
            .iter()
            .filter(|(_, v)| v["type"] == "response" && v["requestID"] == id);
        let (to, response) = responses
            .next()
            .ok_or_else(|| TestCaseError::fail(format!("no response to {text}")))?
            .clone();
        prop_assert!(responses.next().is_none(), "two responses to {}", text);
        prop_assert_eq!(to, conn);
        if response["errCode"] != 0 {
            prop_assert_eq!(
                frames.len(),
                1,
                "a refused {} told others: {:?}",
                text,
                frames
            );
            prop_assert_eq!(before, after, "a refused {} changed the hub", text);
        }
        Ok(response)
    }

    fn run(&mut self, step: &Step) -> Result<(), TestCaseError> {
        match step.clone() {
            Step::Login { user, device } => {
                let conn = self.next_conn;
                self.next_conn += 1;
                self.open.push((conn, None));
                let token = self
                    .signer
                    .login_token(&UserId::new(USERS[user]).unwrap(), i64::MAX);
                let r = self.request(
                    conn,
                    "login",
                    json!({"token": token, "deviceID": format!("d{device}"), "platformID": 7}),
                )?;
                if r["errCode"] == 0 {
                    prop_assert!(self.is_open(conn), "signed in but closed");
                    let entry = self.open.iter_mut().find(|(c, _)| *c == conn).unwrap();
                    entry.1 = Some((user, device));
                    let pending = r["data"]["pendingInvitations"].as_array().cloned();
                    let set = self.ringing.entry(conn).or_default();
                    for p in pending.unwrap_or_default() {
                        set.insert(p["invitation"]["roomID"].as_str().unwrap().to_owned());
                    }
                } else {
                    prop_assert!(!self.is_open(conn), "a refused sign-in stays open");
                }
            }
            Step::Close { conn } => {
                if !self.open.is_empty() {
                    let c = self.open[conn % self.open.len()].0;
                    self.closed(c);
                    self.deliver()?;
                }
            }
            Step::Invite {
                from,
                to,
                group,
                timeout,
            } => {
                let Some((conn, _)) = self.signed_in(from) else {
                    return Ok(());
                };
                let invitees: Vec<&str> = to.iter().map(|u| USERS[*u]).collect();
                let data = if group {
                    json!({"invitation": {"inviteeUserIDList": invitees, "groupID": "team",
                        "sessionType": 2, "mediaType": "audio", "timeout": timeout}})
                } else {
                    json!({"invitation": {"inviteeUserIDList": [invitees[0]],
                        "sessionType": 1, "mediaType": "video", "timeout": timeout}})
                };
                let method = if group {
                    "signalingInviteInGroup"
                } else {
                    "signalingInvite"
                };
                let r = self.request(conn, method, data)?;
                if r["errCode"] == 0 {
                    // A crossing invitation joins the call that rang this device.
                    let room = r["data"]["roomID"].as_str().unwrap_or_default().to_owned();
                    self.ringing.entry(conn).or_default().remove(&room);
                }
            }
            Step::Answer {
                from,
                what,
                room,
                as_user,
            } => {
                let room = self.room(room);
                let Some((conn, user)) = self.answerer(from, &room) else {
                    return Ok(());
                };
                let op = as_user.map(|u| USERS[u]).unwrap_or("");
                let key = (room.clone(), USERS[user].to_owned());
                let already = self.answered.contains(&key);
                let r = self.request(
                    conn,
                    what.method(),
                    json!({"opUserID": op, "invitation": {"roomID": room}}),
                )?;
                let ok = r["errCode"] == 0;
                if !op.is_empty() && op != USERS[user] {
                    prop_assert!(!ok, "{} acted as {}: {}", USERS[user], op, r);
                }
                if matches!(what, Answer::Accept | Answer::Reject) {
                    prop_assert!(
                        !(already && ok),
                        "{} answered {} twice: {}",
                        USERS[user],
                        room,
                        r
                    );
                    if ok {
                        self.answered.insert(key);
                        self.ringing.entry(conn).or_default().remove(&room);
                    }
                }
            }
            Step::Other { from, which, room } => {
                let room = self.room(room);
                let Some((conn, user)) = self.answerer(from, &room) else {
                    return Ok(());
                };
                let was_ringing = self.hub.is_ringing_for(USERS[user], &room);
                let (method, data) = match which {
                    0 => ("signalingGetTokenByRoomID", json!({"roomID": room})),
                    1 => ("signalingGetRoomByGroupID", json!({"groupID": "team"})),
                    2 => ("getSignalingInvitationInfoStartApp", json!({})),
                    3 => (
                        "signalingSendCustomSignal",
                        json!({"roomID": room, "customInfo": "hi"}),
                    ),
                    4 => ("subscribePresence", json!({"userIDList": USERS})),
                    _ => ("ping", json!({})),
                };
                let r = self.request(conn, method, data)?;
                if which == 0 && r["errCode"] == 0 {
                    // Joining a group call by its room id answers it, if it rang: the
                    // reply tells this device, "answered elsewhere" the others.
                    self.ringing.entry(conn).or_default().remove(&room);
                    if was_ringing {
                        self.answered.insert((room, USERS[user].to_owned()));
                    }
                }
            }
            Step::Anonymous => {
                let conn = self.next_conn;
                self.next_conn += 1;
                self.open.push((conn, None));
                let r = self.request(conn, "ping", json!({}))?;
                prop_assert!(r["errCode"] == 1007, "{}", r);
                self.closed(conn);
                self.deliver()?;
            }
            Step::Advance { secs } => {
                let d = Duration::from_secs(secs.into());
                self.now.mono += d;
                self.now.wall_ms += d.as_millis() as i64;
                self.hub.handle_timeout(self.now);
                self.deliver()?;
            }
        }
        Ok(())
    }

    /// The invariants that hold between steps.
    fn check(&mut self) -> Result<(), TestCaseError> {
        self.hub.check_invariants().map_err(TestCaseError::fail)?;
        // A user rung again for a room may answer again.
        let hub = &self.hub;
        self.answered
            .retain(|(room, user)| !hub.is_ringing_for(user, room));
        // Every device rings, by what it was told, for exactly what the hub rings.
        for (conn, who) in &self.open {
            let Some((user, _)) = who else { continue };
            let seen = self.ringing.get(conn).cloned().unwrap_or_default();
            let hub_rings = self.hub.ringing_rooms(USERS[*user]);
            prop_assert_eq!(
                &seen,
                &hub_rings,
                "conn {} of {} rings for {:?}, the hub for {:?}",
                conn,
                USERS[*user],
                seen,
                hub_rings
            );
        }
        Ok(())
    }
}

proptest! {
    // 256 cases of up to 60 steps take a few seconds in a debug build;
    // PROPTEST_CASES raises the count.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn hub_keeps_its_invariants_under_random_traffic(steps in prop::collection::vec(step(), 1..60)) {
        let mut w = World::new();
        for s in &steps {
            w.run(s)?;
            w.check()?;
        }
        // Shutting down (to restart) ends every unanswered call and leaves nobody
        // ringing; answered calls are kept for the next start (`saved.rs`).
        w.hub.handle(w.now, Input::Shutdown);
        w.deliver()?;
        w.hub.check_invariants().map_err(TestCaseError::fail)?;
        prop_assert_eq!(w.hub.calls_by_state().0, 0);
        prop_assert!(w.hub.calls.values().all(|c| c.ringing().next().is_none()));
        prop_assert!(w.hub.users.values().all(|p| p.ringing.is_empty()));
    }
}
