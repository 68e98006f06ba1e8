//! # tincan-sdk
//!
//! The async Rust client for a Tincan server: OpenIM's signaling API
//! (`signalingInvite` … `signalingHungUp` and the later calls) over one WebSocket, with
//! automatic reconnect and resync, plus register / sign-in over HTTP.
//!
//! ## Shape
//!
//! [`connect`] signs in and returns a [`Client`] and a channel of [`SdkEvent`]s. The
//! client is a cheap handle: one async method per API call, each taking the caller's
//! `operationID` and returning `Result<Reply, SdkError>`. Events — OpenIM's callbacks
//! and connection-state changes — arrive on the channel in order. Apps written against
//! OpenIM's listener interface use [`SignalingListener`] and [`spawn_listener`], a thin
//! adapter over the channel. [`ApiResult`] turns any result into OpenIM's
//! `{errCode, errMsg, data}`.
//!
//! ## IO boundary
//!
//! One driver task per client owns the socket, the timers and the reconnects (module
//! `driver`); module `connection` opens sockets, signs in, and runs the writer task
//! that owns a socket's sending half. Everything that decides —
//! which invitations ring, which events to pass on, how long to wait before the next
//! reconnect, when a silent connection counts as dead, how a URL maps to the server's
//! endpoints — is plain code without IO (`ringing`, `backoff`, `keepalive`,
//! `endpoint`) with its own unit tests. Every wait uses tokio's clock, so tests may
//! pause time (see [`ConnectOptions`] for the one caveat).
//!
//! ## Reconnect and resync
//!
//! When the connection drops, requests in flight fail with
//! [`SdkError::Disconnected`], the app sees `Connection(Reconnecting { attempt, .. })`,
//! and the SDK retries with exponential backoff (100 ms doubling to 5 s, jittered),
//! signing in again with the same deviceID so the server resumes the device's call.
//! It never reconnects after [`Client::close`], after `onKickedOffline` (another
//! connection took this deviceID), or when the server refuses the token; those end in
//! `Connection(Closed { reason })`, the last event. When the server closes the connection
//! because it is restarting (close code [`SERVER_RESTART_CLOSE_CODE`], 1012), the app sees
//! `Connection(ServerRestarting)` first: the server keeps the call in progress for when its
//! participants sign in again, and media goes on peer to peer meanwhile.
//!
//! A reconnect ends with `Connection(Resynced { login })`. Nobody's device should keep
//! ringing for a call that is over, and no call should ring twice, so the SDK keeps a
//! small local view of the invitations ringing on this device (by roomID):
//!
//! - `onReceiveNewInvitation` adds a room; the answer to this device's own accept or
//!   reject, `onInvitationCancelled`, `onInvitationTimeout`,
//!   `onInviteeAcceptedByOtherDevice` and `onInviteeRejectedByOtherDevice` remove it.
//! - Each login reply's `pendingInvitations` is the truth. Invitations that rang before
//!   the drop but are no longer pending are delivered as `onInvitationCancelled` (with
//!   the last payload seen, stamped with the server's time), so the app stops ringing.
//!   Pending invitations that are new are delivered as `onReceiveNewInvitation`.
//! - The server re-sends every pending invitation as `onReceiveNewInvitation` after a
//!   login; for a room that already rings these are dropped, so the app sees each
//!   invitation once. The first login works the same way: when [`connect`] returns,
//!   `Connection(Connected)` and then the pending invitations are on the channel.
//!
//! [`Client::ringing`] shows the view. For a call in progress, `login.current_call` in
//! `Resynced` says whether the device is still in it; if the app thought it was and
//! it is `None`, the call ended while the device was away.
//!
//! ## Example
//!
//! ```no_run
//! use tincan_sdk::protocol::{InviteParams, Invitation, MediaType, UserId, SESSION_SINGLE};
//! use tincan_sdk::{connect, sign_in, DeviceInfo, SdkEvent};
//!
//! # async fn run() -> Result<(), tincan_sdk::SdkError> {
//! let server = "http://127.0.0.1:7070";
//! let token = sign_in(server, "alice", "secret").await?;
//! let (client, mut events) = connect(server, &token.token, DeviceInfo::random_linux()).await?;
//!
//! let reply = client
//!     .signaling_invite(
//!         "op-1",
//!         InviteParams {
//!             invitation: Invitation {
//!                 invitee_user_id_list: vec![UserId::new("bob").unwrap()],
//!                 media_type: MediaType::Video,
//!                 session_type: SESSION_SINGLE,
//!                 ..Invitation::default()
//!             },
//!             offline_push_info: None,
//!         },
//!     )
//!     .await?;
//! println!("ringing bob in room {}", reply.room_id);
//!
//! while let Some(event) = events.recv().await {
//!     match event {
//!         SdkEvent::Signaling(e) => println!("{}: {}", e.name(), tincan_sdk::event_data(&e)),
//!         SdkEvent::Connection(state) => println!("connection: {state:?}"),
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod accounts;
mod backoff;
mod call;
mod client;
mod connection;
mod driver;
mod endpoint;
mod error;
mod event;
mod keepalive;
mod listener;
mod options;
mod ringing;
mod tls;

pub use tincan_protocol as protocol;

pub use accounts::{register, sign_in, Accounts, TokenInfo, HTTP_TIMEOUT};
pub use backoff::Backoff;
pub use call::{CallEnd, CallError, CallModel, CallPhase, CallState, Direction, EndReason};
pub use client::{connect, connect_with, new_operation_id, Client};
pub use driver::SERVER_RESTART_CLOSE_CODE;
pub use endpoint::Endpoint;
pub use error::{codes, ApiResult, SdkError};
pub use event::{event_data, CloseReason, ConnectionState, SdkEvent};
pub use listener::{dispatch, spawn_listener, SignalingListener};
pub use options::{
    ConnectOptions, DeviceInfo, BACKOFF_INITIAL, BACKOFF_MAX, CONNECT_TIMEOUT, EVENT_CAPACITY,
    KEEPALIVE_INTERVAL, REQUEST_TIMEOUT,
};
