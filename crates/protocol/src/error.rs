//! The error-code table: every `errCode` a Tincan server sends.
//!
//! Codes 1001–1004 and 1501–1502 keep OpenIM v3's meanings (`ArgsError`,
//! `NoPermissionError`, `RecordNotFoundError`, token errors); the 16xx block is ours, for
//! call rules OpenIM leaves to each client. docs/protocol.md carries the same table.

use serde::{Deserialize, Serialize};

/// An `errCode`. `0` is success and is not a variant here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrCode {
    /// The server failed; the request may be retried.
    Internal,
    /// The frame was not JSON, or not a request object.
    MalformedFrame,
    /// A field is missing, has the wrong type or an invalid value.
    Args,
    /// The signed-in user may not do this (acting as someone else, not a member, not a
    /// participant, wrong room token).
    NoPermission,
    /// The `method` is not one the server knows.
    UnknownMethod,
    /// A room, user or group does not exist.
    NotFound,
    /// The frame exceeds the server's size limit.
    FrameTooLarge,
    /// Too many requests on this connection; slow down and retry.
    RateLimited,
    /// The connection has not signed in yet (send `login` first).
    NotLoggedIn,
    /// The user already has the maximum number of connected devices.
    TooManyDevices,
    /// `login` was sent twice on one connection.
    AlreadyLoggedIn,
    /// The client speaks a protocol version the server does not.
    UnsupportedVersion,
    /// The login token is malformed or its signature is wrong.
    TokenInvalid,
    /// The login token has expired; sign in again.
    TokenExpired,
    /// The invitation was already answered on another of the user's devices.
    AlreadyAnswered,
    /// The invitation is no longer ringing (answered, cancelled, timed out or ended).
    NotRinging,
    /// The signed-in user is already in a call.
    Busy,
    /// The group already has a call in progress; join it instead of starting another.
    GroupCallInProgress,
    /// The call already has as many people as the server allows in one room.
    RoomFull,
    /// The room token is missing, expired or for another room.
    RoomTokenInvalid,
    /// The server is shutting down.
    ShuttingDown,
    /// Too many failed sign-ins for this account or from this address; wait the time the
    /// message names, then retry.
    SignInThrottled,
    /// The server is busy hashing other passwords; retry in a moment.
    ServerBusy,
    /// The request came from a web page whose `Origin` the server does not allow, or
    /// named a `Host` the server does not answer to (DNS rebinding).
    OriginRefused,
}

impl ErrCode {
    /// Every code, for tables and tests.
    pub const ALL: [ErrCode; 24] = [
        ErrCode::Internal,
        ErrCode::MalformedFrame,
        ErrCode::Args,
        ErrCode::NoPermission,
        ErrCode::UnknownMethod,
        ErrCode::NotFound,
        ErrCode::FrameTooLarge,
        ErrCode::RateLimited,
        ErrCode::NotLoggedIn,
        ErrCode::TooManyDevices,
        ErrCode::AlreadyLoggedIn,
        ErrCode::UnsupportedVersion,
        ErrCode::TokenInvalid,
        ErrCode::TokenExpired,
        ErrCode::AlreadyAnswered,
        ErrCode::NotRinging,
        ErrCode::Busy,
        ErrCode::GroupCallInProgress,
        ErrCode::RoomFull,
        ErrCode::RoomTokenInvalid,
        ErrCode::ShuttingDown,
        ErrCode::SignInThrottled,
        ErrCode::ServerBusy,
        ErrCode::OriginRefused,
    ];

    /// The number on the wire.
    pub fn code(self) -> u32 {
        match self {
            ErrCode::Internal => 500,
            ErrCode::MalformedFrame => 1000,
            ErrCode::Args => 1001,
            ErrCode::NoPermission => 1002,
            ErrCode::UnknownMethod => 1003,
            ErrCode::NotFound => 1004,
            ErrCode::FrameTooLarge => 1005,
            ErrCode::RateLimited => 1006,
            ErrCode::NotLoggedIn => 1007,
            ErrCode::TooManyDevices => 1008,
            ErrCode::AlreadyLoggedIn => 1009,
            ErrCode::UnsupportedVersion => 1010,
            ErrCode::SignInThrottled => 1011,
            ErrCode::ServerBusy => 1012,
            ErrCode::OriginRefused => 1013,
            ErrCode::TokenInvalid => 1501,
            ErrCode::TokenExpired => 1502,
            ErrCode::AlreadyAnswered => 1601,
            ErrCode::NotRinging => 1602,
            ErrCode::Busy => 1603,
            ErrCode::RoomTokenInvalid => 1604,
            ErrCode::ShuttingDown => 1605,
            ErrCode::GroupCallInProgress => 1606,
            ErrCode::RoomFull => 1607,
        }
    }

    /// The code for a wire number, if it is one of ours.
    pub fn from_code(n: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == n)
    }

    /// Whether the same request may succeed if sent again later.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrCode::Internal
                | ErrCode::RateLimited
                | ErrCode::ShuttingDown
                | ErrCode::SignInThrottled
                | ErrCode::ServerBusy
        )
    }

    /// A short name, as used in docs and logs.
    pub fn name(self) -> &'static str {
        match self {
            ErrCode::Internal => "Internal",
            ErrCode::MalformedFrame => "MalformedFrame",
            ErrCode::Args => "Args",
            ErrCode::NoPermission => "NoPermission",
            ErrCode::UnknownMethod => "UnknownMethod",
            ErrCode::NotFound => "NotFound",
            ErrCode::FrameTooLarge => "FrameTooLarge",
            ErrCode::RateLimited => "RateLimited",
            ErrCode::NotLoggedIn => "NotLoggedIn",
            ErrCode::TooManyDevices => "TooManyDevices",
            ErrCode::AlreadyLoggedIn => "AlreadyLoggedIn",
            ErrCode::UnsupportedVersion => "UnsupportedVersion",
            ErrCode::TokenInvalid => "TokenInvalid",
            ErrCode::TokenExpired => "TokenExpired",
            ErrCode::AlreadyAnswered => "AlreadyAnswered",
            ErrCode::NotRinging => "NotRinging",
            ErrCode::Busy => "Busy",
            ErrCode::GroupCallInProgress => "GroupCallInProgress",
            ErrCode::RoomFull => "RoomFull",
            ErrCode::RoomTokenInvalid => "RoomTokenInvalid",
            ErrCode::ShuttingDown => "ShuttingDown",
            ErrCode::SignInThrottled => "SignInThrottled",
            ErrCode::ServerBusy => "ServerBusy",
            ErrCode::OriginRefused => "OriginRefused",
        }
    }
}

impl Serialize for ErrCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.code())
    }
}

impl<'de> Deserialize<'de> for ErrCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        ErrCode::from_code(n)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown errCode {n}")))
    }
}

/// An error as it travels: a code and a message that says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({}): {message}", code.name(), code.code())]
pub struct WireError {
    /// The code.
    pub code: ErrCode,
    /// For a person: what was wrong and, where it helps, what to do.
    pub message: String,
}

impl WireError {
    /// Builds an error.
    pub fn new(code: ErrCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrCode::ALL {
            assert!(seen.insert(c.code()), "duplicate {}", c.code());
            assert_eq!(ErrCode::from_code(c.code()), Some(c));
        }
    }
}
