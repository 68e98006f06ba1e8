//! The call hub: every device, invitation and room, as a state machine without IO.
//!
//! The hub takes [`Input`]s (a parsed request from a connection, a closed connection, a
//! timer firing, shutdown) with the current time, and queues [`Output`]s (events for
//! connections, replies to requests, connections to close) and call records to write. It
//! never touches a socket or a clock and never writes JSON: `switchboard/` feeds it,
//! renders each output's frame once and carries out what it asks, so races such as accept
//! vs cancel vs timeout are plain unit tests on typed events (see `tests.rs`).
//!
//! Timers are lazy: the hub records a deadline in the state it belongs to (an invitee's
//! ring deadline, a participant's grace deadline) and in a queue; when the queue says a
//! deadline passed, the hub checks that the state still holds that deadline before
//! acting. Nothing needs to be cancelled.
//!
//! State changes go through few choke points that log `old -> new (reason)`:
//! [`Hub::set_invitee`] (ringing, answered, …), [`Hub::join`] / [`Hub::leave`]
//! (participants) and [`Hub::end_call`].

mod answer;
mod call;
mod invite;
mod lifecycle;
mod presence;
#[cfg(test)]
mod proptests;
mod room;
mod saved;
mod session;
#[cfg(test)]
mod tests;

pub use lifecycle::{RecordUpdate, ENDED_MEMORY};
pub use saved::{NotResumed, SavedCall, SAVED_CALL_VERSION};

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::value::{to_raw_value, RawValue};
use tokio::time::Instant;
use tracing::{info, warn};

use tincan_protocol::limits::bounded_nickname;
use tincan_protocol::{
    ClientFrame, DeviceId, ErrCode, Event, GroupInfo, ParticipantInfo, PublicUserInfo, Request,
    RequestId, RoomId, SignalingInfo, UserId, WireError,
};

use crate::auth::{IceConfig, TokenSigner};
use crate::store::{Store, StoreError};
use call::{Call, InviteeState};

/// A connection's id, unique for the server's lifetime.
pub type ConnId = u64;

/// The current time, as the switchboard reads it.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic time, for deadlines (tokio's, so tests can pause it).
    pub mono: Instant,
    /// Wall clock, Unix ms, for timestamps and token expiry.
    pub wall_ms: i64,
}

/// What the hub reacts to. Inputs are moved into the hub once, so the size difference
/// between variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Input {
    /// A parsed request from a connection.
    Request {
        /// From.
        conn: ConnId,
        /// The request.
        frame: ClientFrame,
    },
    /// A connection closed.
    Closed {
        /// Which.
        conn: ConnId,
        /// When its peer was last heard from. A peer found silent is found late (after
        /// its pings went unanswered); the grace periods count from this moment.
        last_heard: Instant,
    },
    /// The user's account was removed from the store: sign out every device of theirs
    /// and take them out of their call.
    AccountRemoved {
        /// Whose.
        user: UserId,
    },
    /// The server is stopping, to start again: cancel what rings, keep answered calls
    /// (see `saved.rs`).
    Shutdown,
}

/// What the hub asks the switchboard to do. Frames stay typed: the switchboard renders
/// each one once (`switchboard/render.rs`), whatever the number of recipients. Events,
/// the largest variant, are also the most common, so they are not boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Output {
    /// An event for each of these connections.
    Event {
        /// Recipients, never empty.
        to: Vec<ConnId>,
        /// What happened.
        event: Event,
    },
    /// The answer to a request.
    Reply {
        /// The connection that asked.
        conn: ConnId,
        /// The answer.
        reply: Reply,
    },
    /// A last frame for `conn`, then its close (code 1008).
    Close {
        /// Which.
        conn: ConnId,
        /// What it is told first.
        last: Frame,
        /// The close frame's reason.
        reason: &'static str,
    },
}

/// The answer to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The request's `requestID`.
    pub request_id: RequestId,
    /// The request's `operationID`.
    pub operation_id: String,
    /// Its `data` (already JSON: each method answers with a type of its own), or why not.
    pub result: Result<Box<RawValue>, WireError>,
}

impl Reply {
    /// The answer to `frame`.
    pub fn to(frame: &ClientFrame, result: Result<Box<RawValue>, WireError>) -> Reply {
        Reply {
            request_id: frame.request_id.clone(),
            operation_id: frame.operation_id.clone(),
            result,
        }
    }
}

/// One frame for a client.
#[derive(Debug, Clone)]
pub enum Frame {
    /// An event (boxed: a reply is far smaller).
    Event(Box<Event>),
    /// An answer.
    Reply(Reply),
}

/// The hub's rules, from the server configuration.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Ring time when an invitation says `timeout: 0`.
    pub default_timeout: Duration,
    /// Longest ring time; larger requests are cut to this.
    pub max_timeout: Duration,
    /// How long an unanswered call waits for its inviter's device to come back.
    pub inviter_grace: Duration,
    /// How long a call waits for a participant's device to come back.
    pub participant_grace: Duration,
    /// Connected devices per user.
    pub max_devices_per_user: usize,
    /// Invitees per invitation, and participants per room.
    pub max_room_size: usize,
    /// Room token lifetime.
    pub room_token_ttl: Duration,
    /// `liveURL` handed out with room tokens.
    pub live_url: String,
    /// STUN/TURN servers.
    pub ice: IceConfig,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(30),
            max_timeout: Duration::from_secs(120),
            inviter_grace: Duration::from_secs(10),
            participant_grace: Duration::from_secs(30),
            max_devices_per_user: 5,
            max_room_size: 16,
            room_token_ttl: Duration::from_secs(3600),
            live_url: String::new(),
            ice: IceConfig::default(),
        }
    }
}

/// A signed-in connection.
#[derive(Debug, Clone)]
struct ConnInfo {
    user: UserId,
    device: DeviceId,
    platform: u8,
}

/// One user's devices and calls.
#[derive(Debug, Default)]
struct Presence {
    nickname: String,
    /// Connected devices, oldest first.
    devices: Vec<(DeviceId, ConnId)>,
    /// The room this user is a participant of (busy while set).
    room: Option<RoomId>,
    /// Rooms whose invitation rings for this user, oldest first.
    ringing: Vec<RoomId>,
}

impl Presence {
    fn is_idle(&self) -> bool {
        self.devices.is_empty() && self.room.is_none() && self.ringing.is_empty()
    }
}

/// What a timer is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Ring { room: RoomId, user: UserId },
    Grace { room: RoomId, user: UserId },
}

/// The call hub. See the module docs.
pub struct Hub {
    cfg: HubConfig,
    store: Arc<dyn Store>,
    signer: TokenSigner,
    conns: HashMap<ConnId, ConnInfo>,
    users: HashMap<UserId, Presence>,
    calls: HashMap<RoomId, Call>,
    group_calls: HashMap<tincan_protocol::GroupId, RoomId>,
    timers: BTreeSet<(Instant, Timer)>,
    out: Vec<Output>,
    /// Wall time of the input being handled; stamped on every event it causes.
    wall_ms: i64,
    /// Recently ended rooms, so a late answer hears "ended" rather than "unknown".
    ended: HashMap<RoomId, tincan_protocol::EndReason>,
    ended_order: std::collections::VecDeque<RoomId>,
    /// Call records to write, oldest first (taken by the switchboard after each input).
    records: Vec<RecordUpdate>,
    /// Calls whose record changed during the input being handled.
    records_changed: Vec<RoomId>,
    /// The record number of each call in progress; see [`RecordUpdate::call`].
    record_numbers: HashMap<RoomId, u64>,
    record_count: u64,
    /// Codes of the error replies decided, for the metrics (taken by the switchboard).
    errors: Vec<ErrCode>,
    /// Who follows whose presence, and the statuses last told (`presence.rs`).
    watch: presence::Watch,
}

type Handled = Result<Box<RawValue>, WireError>;

fn raw<T: Serialize>(v: &T) -> Handled {
    Ok(to_raw_value(v).expect("reply types serialize"))
}

pub(super) fn args(msg: impl Into<String>) -> WireError {
    WireError::new(ErrCode::Args, msg)
}

pub(super) fn denied(msg: impl Into<String>) -> WireError {
    WireError::new(ErrCode::NoPermission, msg)
}

/// Refuses a request that names someone other than the signed-in user as the actor.
pub(super) fn check_self(given: &str, me: &UserId, field: &str) -> Result<(), WireError> {
    if given.is_empty() || given == me.as_str() {
        Ok(())
    } else {
        Err(denied(format!(
            "{field} is {given:?} but you are signed in as {me}; you can only act as yourself"
        )))
    }
}

fn store_failed(e: StoreError) -> WireError {
    warn!(error = %e, "store failed");
    WireError::new(ErrCode::Internal, "the server's storage failed; try again")
}

impl Hub {
    /// A hub with no connections and no calls.
    pub fn new(cfg: HubConfig, store: Arc<dyn Store>, signer: TokenSigner) -> Self {
        Self {
            cfg,
            store,
            signer,
            conns: HashMap::new(),
            users: HashMap::new(),
            calls: HashMap::new(),
            group_calls: HashMap::new(),
            timers: BTreeSet::new(),
            out: Vec::new(),
            wall_ms: 0,
            ended: HashMap::new(),
            ended_order: std::collections::VecDeque::new(),
            records: Vec::new(),
            records_changed: Vec::new(),
            record_numbers: HashMap::new(),
            record_count: 0,
            errors: Vec::new(),
            watch: presence::Watch::default(),
        }
    }

    /// A hub with no connections and no calls that goes on numbering records where this
    /// one stopped, so that the record writer, which outlives both, never sees a number
    /// twice (cluster mode swaps hubs when leadership moves: `cluster/`).
    pub fn successor(&self) -> Hub {
        Hub::new(self.cfg.clone(), self.store.clone(), self.signer.clone())
            .numbered_from(self.record_count)
    }

    /// This hub, numbering records after `floor`.
    pub fn numbered_from(mut self, floor: u64) -> Hub {
        self.record_count = self.record_count.max(floor);
        self
    }

    /// The last record number handed out.
    pub fn record_floor(&self) -> u64 {
        self.record_count
    }

    /// Takes the outputs queued so far.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    /// When [`Hub::handle_timeout`] should be called next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Number of calls in progress.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// Calls nobody has answered yet, and calls in which people have talked.
    pub fn calls_by_state(&self) -> (usize, usize) {
        let connected = self.calls.values().filter(|c| c.was_connected).count();
        (self.calls.len() - connected, connected)
    }

    /// The codes of the error replies decided since last asked (for the metrics).
    pub fn take_errors(&mut self) -> Vec<ErrCode> {
        std::mem::take(&mut self.errors)
    }

    /// Users with a signed-in device.
    pub fn signed_in_users(&self) -> Vec<UserId> {
        self.users
            .iter()
            .filter(|(_, p)| !p.devices.is_empty())
            .map(|(u, _)| u.clone())
            .collect()
    }

    /// Number of signed-in connections.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Reacts to one input.
    pub fn handle(&mut self, now: Now, input: Input) {
        self.wall_ms = now.wall_ms;
        match input {
            Input::Request { conn, frame } => self.handle_request(now, conn, frame),
            Input::Closed { conn, last_heard } => self.handle_closed(now, conn, last_heard),
            Input::AccountRemoved { user } => self.account_removed(now, user),
            Input::Shutdown => self.handle_shutdown(now),
        }
        self.flush_records(now);
    }

    /// The user signed in on `conn`, if it is signed in.
    pub fn user_of(&self, conn: ConnId) -> Option<UserId> {
        self.conns.get(&conn).map(|c| c.user.clone())
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Now) {
        self.wall_ms = now.wall_ms;
        while let Some((at, _)) = self.timers.first() {
            if *at > now.mono {
                break;
            }
            let (_, timer) = self.timers.pop_first().expect("first exists");
            match timer {
                Timer::Ring { room, user } => self.ring_expired(now, room, user),
                Timer::Grace { room, user } => self.grace_expired(now, room, user),
            }
        }
        self.flush_records(now);
    }

    fn arm(&mut self, at: Instant, timer: Timer) {
        self.timers.insert((at, timer));
    }

    fn handle_request(&mut self, now: Now, conn: ConnId, mut frame: ClientFrame) {
        let span = tracing::info_span!("req", op = %frame.operation_id, conn, method = frame.request.method());
        let _enter = span.enter();
        let result = match (&frame.request, self.conns.get(&conn).cloned()) {
            (Request::Login(p), None) => {
                let p = p.clone();
                return self.login(now, conn, &frame, p);
            }
            (Request::Login(_), Some(_)) => Err(WireError::new(
                ErrCode::AlreadyLoggedIn,
                "this connection is already signed in; open a new connection to sign in again",
            )),
            (_, None) => Err(WireError::new(
                ErrCode::NotLoggedIn,
                "sign in first: the first request on a connection must be \"login\"",
            )),
            (_, Some(me)) => {
                // Moved out, not cloned (a relayed signal carries KBs); the reply needs
                // only the frame's ids.
                let request = std::mem::replace(&mut frame.request, Request::Ping);
                self.dispatch(now, conn, &me, request)
            }
        };
        if let Err(e) = &result {
            info!(code = e.code.code(), error = %e.message, "refused");
        }
        self.reply(conn, &frame, result);
    }

    fn dispatch(&mut self, now: Now, conn: ConnId, me: &ConnInfo, request: Request) -> Handled {
        match request {
            Request::Invite(p) => self.invite(now, conn, me, p, false),
            Request::InviteInGroup(p) => self.invite(now, conn, me, p, true),
            Request::Accept(p) => self.accept(now, conn, me, p),
            Request::Reject(p) => self.reject(now, conn, me, p),
            Request::Cancel(p) => self.cancel(now, me, p),
            Request::HungUp(p) => self.hang_up(now, me, p),
            Request::GetRoomByGroupId(p) => self.room_by_group(me, p),
            Request::GetTokenByRoomId(p) => self.token_by_room(now, conn, me, p),
            Request::GetInvitationInfoStartApp => self.start_app(me),
            Request::SendCustomSignal(p) => self.custom_signal(now, me, p),
            Request::SendMediaSignal(p) => self.media_signal(now, me, p),
            Request::SubscribePresence(p) => self.subscribe_presence(conn, p),
            // Answered from the store outside the hub (`queries.rs`): reading them here
            // would hold every other decision up while the store works.
            Request::GetCallHistory(_) | Request::GetContacts(_) => Err(WireError::new(
                ErrCode::Internal,
                "this request is answered outside the call hub; the server misrouted it",
            )),
            Request::Ping => raw(&tincan_protocol::PongReply {
                server_time: now.wall_ms,
            }),
            Request::Login(_) => unreachable!("login is handled before dispatch"),
            #[allow(unreachable_patterns)]
            other => Err(WireError::new(
                ErrCode::UnknownMethod,
                format!("{} is not supported by this server", other.method()),
            )),
        }
    }

    fn reply(&mut self, conn: ConnId, frame: &ClientFrame, result: Handled) {
        match &result {
            Err(e) => self.errors.push(e.code),
            // The sender asked to hear only of failures (`noReplyOnSuccess`).
            Ok(_) if frame.no_reply_on_success => return,
            Ok(_) => {}
        }
        self.out.push(Output::Reply {
            conn,
            reply: Reply::to(frame, result),
        });
    }

    // ---- delivery helpers -----------------------------------------------------------

    /// Every event leaves through here (rendered by the switchboard, which also drops one
    /// too large for its recipients: `switchboard/render.rs`).
    fn send(&mut self, to: Vec<ConnId>, event: Event) {
        if to.is_empty() {
            return;
        }
        self.out.push(Output::Event { to, event });
    }

    /// Every connected device of `user`.
    fn user_conns(&self, user: &UserId) -> Vec<ConnId> {
        self.users
            .get(user)
            .map(|p| p.devices.iter().map(|(_, c)| *c).collect())
            .unwrap_or_default()
    }

    /// The connection of one device, if connected.
    fn device_conn(&self, user: &UserId, device: &DeviceId) -> Option<ConnId> {
        self.users
            .get(user)?
            .devices
            .iter()
            .find(|(d, _)| d == device)
            .map(|(_, c)| *c)
    }

    fn user_info(&self, user: &UserId) -> PublicUserInfo {
        let nickname = match self.users.get(user) {
            Some(p) if !p.nickname.is_empty() => p.nickname.clone(),
            _ => self
                .store
                .user(user)
                .ok()
                .flatten()
                .map(|r| r.nickname)
                .unwrap_or_default(),
        };
        PublicUserInfo {
            user_id: user.clone(),
            nickname: bounded_nickname(nickname),
            face_url: String::new(),
        }
    }

    fn participant_info(&self, call: &Call, user: &UserId) -> ParticipantInfo {
        ParticipantInfo {
            user_info: self.user_info(user),
            group_info: call.group.as_ref().map(|g| GroupInfo {
                group_id: g.clone(),
                group_name: call.group_name.clone(),
                member_user_id_list: Vec::new(),
            }),
        }
    }

    fn participant_list(&self, call: &Call) -> Vec<ParticipantInfo> {
        call.participants
            .iter()
            .map(|p| self.participant_info(call, &p.user))
            .collect()
    }

    /// A SignalingInfo for `call` with `op` as the operator.
    fn info_as(&self, call: &Call, op: &UserId, platform: Option<u8>) -> SignalingInfo {
        let platform = platform
            .or_else(|| call.participant(op).map(|p| p.platform))
            .unwrap_or(0);
        SignalingInfo {
            invitation: call.invitation.clone(),
            op_user_id: op.clone(),
            user_id: op.clone(),
            op_user_platform_id: platform,
            participant: Some(self.participant_info(call, op)),
            offline_push_info: call.offline_push.clone(),
            event_time: self.wall_ms,
        }
    }

    /// `Busy` when `user` is already in a call: nobody is in two at once.
    fn check_not_in_call(&self, user: &UserId) -> Result<(), WireError> {
        match self.users.get(user).and_then(|p| p.room.as_ref()) {
            Some(r) => Err(WireError::new(
                ErrCode::Busy,
                format!("you are already in a call (room {r}); hang up first"),
            )),
            None => Ok(()),
        }
    }

    fn room_token(&self, now: Now, room: &RoomId, user: &UserId) -> String {
        self.signer.room_token(
            room,
            user,
            now.wall_ms + self.cfg.room_token_ttl.as_millis() as i64,
        )
    }
}

impl Hub {
    /// The choke point for invitee state: logs, and keeps the invitee's ringing list
    /// in step.
    fn set_invitee(&mut self, room: &RoomId, user: &UserId, new: InviteeState, reason: &str) {
        let call = self
            .calls
            .get_mut(room)
            .expect("set_invitee on a live call");
        let inv = call.invitee_mut(user).expect("set_invitee on an invitee");
        let old = inv.state;
        inv.state = new;
        // Per invitee and step: for following one call, not for the operator.
        tracing::debug!(room = %room, invitee = %user, ?old, ?new, reason, "invitee state");
        self.record_changed(room);
        let was = matches!(old, InviteeState::Ringing { .. });
        let is = matches!(new, InviteeState::Ringing { .. });
        let presence = self.users.entry(user.clone()).or_default();
        if is && !was {
            presence.ringing.push(room.clone());
        } else if was && !is {
            presence.ringing.retain(|r| r != room);
        }
        if !is {
            self.forget_if_idle(user);
        }
    }
}
