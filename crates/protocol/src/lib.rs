//! # tincan-protocol
//!
//! The wire contract between Tincan clients and the Tincan server: OpenIM's signaling
//! API (`signalingInvite` … `signalingHungUp` and the later calls) carried as JSON text
//! frames over one WebSocket, plus the error-code table.
//!
//! This crate does no IO. The server parses [`ClientFrame`]s and writes responses and
//! [`Event`]s; clients do the reverse. docs/protocol.md explains every message with
//! examples, and `tests/golden/` snapshots each one so that a wire change shows in
//! review.
//!
//! ```
//! use tincan_protocol::{ClientFrame, Request};
//! let frame = ClientFrame::parse(
//!     r#"{"requestID":1,"operationID":"op-1","method":"signalingInvite",
//!         "data":{"invitation":{"inviteeUserIDList":["bob"],"mediaType":"video","sessionType":1}}}"#,
//! ).unwrap();
//! assert!(matches!(frame.request, Request::Invite(_)));
//! ```
#![deny(missing_docs)]

pub mod account;
pub mod error;
pub mod event;
pub mod ids;
pub mod json_text;
pub mod limits;
pub mod model;
mod one_pass;
pub mod presence;
pub mod request;

pub use account::{LoginBody, RegisterBody};
pub use error::{ErrCode, WireError};
pub use event::{
    response_json, CustomSignalInfo, Event, KickedInfo, MediaSignalInfo, RoomParticipantInfo,
    ServerFrame, SignalingInfo, EVENTS,
};
pub use ids::{DeviceId, GroupId, IdError, PlatformId, RoomId, UserId};
pub use json_text::JsonText;
pub use model::*;
pub use presence::{
    PresenceReply, PresenceStatus, SubscribePresenceParams, UserPresence, MAX_PRESENCE_WATCH,
};
pub use request::*;

/// The protocol version this crate speaks. A server refuses a `login` with another one.
pub const PROTOCOL_VERSION: u32 = 1;

/// The WebSocket path on a Tincan server.
pub const WS_PATH: &str = "/ws";

/// The header an embedded server's own app sends its per-launch secret in, on
/// `POST /api/register` and `POST /api/login` (docs/protocol.md §2.1). Lowercase, as HTTP/2
/// and the `http` crate want header names.
pub const LOCAL_SECRET_HEADER: &str = "x-tincan-local-secret";
