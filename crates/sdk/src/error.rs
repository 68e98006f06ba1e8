//! The SDK's one error type, its OpenIM-style numeric codes, and [`ApiResult`], the
//! `{errCode, errMsg, data}` shape apps show to OpenIM-style callers.

use serde::Serialize;
use tincan_protocol::{ErrCode, WireError};

/// Local error codes, in the range OpenIM's SDK uses for errors that never reached the
/// server (its `sdkerrs` package). Server codes (500, 1000–1999) come from
/// [`tincan_protocol::ErrCode`] unchanged.
///
/// | code  | name            | when |
/// |-------|-----------------|------|
/// | 10000 | `NetworkError`  | not connected, connection lost, HTTP transport failed |
/// | 10001 | `NetworkTimeout`| no reply within the request timeout |
/// | 10002 | `ArgsError`     | the caller passed something the SDK refuses to send |
/// | 10006 | `SdkInternal`   | the server sent something the SDK could not understand |
/// | 10101 | `LoginOut`      | the client is closed (by the app, kicked offline, or the token was refused) |
pub mod codes {
    /// Not connected, the connection dropped, or an HTTP request failed in transport.
    pub const NETWORK: u32 = 10000;
    /// No reply within the request timeout.
    pub const TIMEOUT: u32 = 10001;
    /// A bad argument, refused before anything was sent.
    pub const ARGS: u32 = 10002;
    /// The server's answer could not be understood (a protocol mismatch or a bug).
    pub const INTERNAL: u32 = 10006;
    /// The client is closed and will not reconnect.
    pub const LOGGED_OUT: u32 = 10101;
}

/// Everything that can go wrong in an SDK call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdkError {
    /// The server answered with a non-zero `errCode`. Retryable only when
    /// [`ErrCode::is_retryable`] says so (Internal, RateLimited, ShuttingDown).
    #[error(transparent)]
    Server(#[from] WireError),
    /// There is no connection right now (the SDK is reconnecting), or it dropped before
    /// the reply came. Retryable: wait for `ConnectionState::Resynced` and try again —
    /// but check the resynced state first, the request may have taken effect.
    #[error("not connected to the server (the SDK is reconnecting)")]
    Disconnected,
    /// No reply within the request timeout. Retryable, with the same caveat as
    /// [`SdkError::Disconnected`]: the request may have taken effect.
    #[error("no reply from the server in time")]
    Timeout,
    /// The client is closed: by [`crate::Client::close`], because another connection
    /// with the same deviceID replaced it, or because the server refused its token on a
    /// reconnect. Not retryable: connect again (after signing in again, for a token).
    #[error("the client is closed")]
    Closed,
    /// The WebSocket could not be opened, or the connection failed during login.
    /// Retryable.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// An HTTP request (register, sign in) failed in transport, or its reply was not
    /// the expected JSON. Retryable.
    #[error("HTTP request failed: {0}")]
    Http(String),
    /// The server's TLS certificate was refused: not signed by a trusted authority (the
    /// system's, or the extra CA file), issued for another host, expired… Not
    /// retryable: the server's certificate or the client's CA setting must change.
    #[error("the TLS certificate of {host} was refused: {reason}")]
    Certificate {
        /// The host connected to.
        host: String,
        /// Why, in words.
        reason: String,
    },
    /// The server sent something this SDK does not understand. Not retryable: the
    /// client and server disagree about the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The caller passed an argument the SDK refuses to send (a malformed URL, `login`
    /// through `call_raw`). Not retryable.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl SdkError {
    /// The server's numeric `errCode`, when the error came from the server.
    pub fn code(&self) -> Option<u32> {
        self.server_error().map(|e| e.code.code())
    }

    /// The server's error, when the error came from the server (match on its `code`).
    pub fn server_error(&self) -> Option<&WireError> {
        match self {
            SdkError::Server(e) => Some(e),
            _ => None,
        }
    }

    /// The OpenIM-style numeric code for any error: the server's `errCode`, or one of
    /// the local [`codes`].
    pub fn err_code(&self) -> u32 {
        match self {
            SdkError::Server(e) => e.code.code(),
            SdkError::Disconnected
            | SdkError::Connect(_)
            | SdkError::Http(_)
            | SdkError::Certificate { .. } => codes::NETWORK,
            SdkError::Timeout => codes::TIMEOUT,
            SdkError::InvalidArgument(_) => codes::ARGS,
            SdkError::Protocol(_) => codes::INTERNAL,
            SdkError::Closed => codes::LOGGED_OUT,
        }
    }

    /// Whether the same call may succeed if made again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            SdkError::Server(e) => e.code.is_retryable(),
            SdkError::Disconnected
            | SdkError::Timeout
            | SdkError::Connect(_)
            | SdkError::Http(_) => true,
            SdkError::Closed
            | SdkError::Protocol(_)
            | SdkError::InvalidArgument(_)
            | SdkError::Certificate { .. } => false,
        }
    }

    /// Whether a reconnect should stop after this login error: the token is bad or the
    /// server will never speak our protocol version.
    pub(crate) fn is_fatal_for_login(&self) -> bool {
        matches!(
            self.server_error().map(|e| e.code),
            Some(ErrCode::TokenInvalid | ErrCode::TokenExpired | ErrCode::UnsupportedVersion)
        )
    }
}

/// OpenIM's result shape: `{"errCode": 0, "errMsg": "", "data": …}`. Apps that present
/// the OpenIM call shape (the Tauri app, the CLI) convert every SDK result into this.
///
/// ```
/// use tincan_sdk::{ApiResult, SdkError};
/// let ok: ApiResult = Ok::<_, SdkError>(serde_json::json!({"roomID": "r1"})).into();
/// assert_eq!(ok.err_code, 0);
/// let err: ApiResult = Err::<(), _>(SdkError::Timeout).into();
/// assert_eq!(err.err_code, 10001);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiResult {
    /// 0 on success; otherwise the server's code or a local one ([`codes`]).
    pub err_code: u32,
    /// Empty on success; otherwise what went wrong.
    pub err_msg: String,
    /// The reply data on success; `null` on error.
    pub data: serde_json::Value,
}

impl ApiResult {
    /// The result for an error.
    pub fn from_error(e: &SdkError) -> Self {
        let err_msg = match e {
            // The server's message is already meant for a person; skip our prefix.
            SdkError::Server(w) => w.message.clone(),
            other => other.to_string(),
        };
        ApiResult {
            err_code: e.err_code(),
            err_msg,
            data: serde_json::Value::Null,
        }
    }
}

impl<T: Serialize> From<Result<T, SdkError>> for ApiResult {
    fn from(r: Result<T, SdkError>) -> Self {
        match r {
            Ok(data) => match serde_json::to_value(data) {
                Ok(data) => ApiResult {
                    err_code: 0,
                    err_msg: String::new(),
                    data,
                },
                Err(e) => ApiResult::from_error(&SdkError::Protocol(format!(
                    "reply does not serialize: {e}"
                ))),
            },
            Err(e) => ApiResult::from_error(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tincan_protocol::Empty;

    #[test]
    fn server_errors_keep_their_wire_code() {
        let e = SdkError::Server(WireError::new(ErrCode::NotRinging, "the call is over"));
        assert_eq!(e.code(), Some(1602));
        assert_eq!(e.err_code(), 1602);
        assert!(!e.is_retryable());
        let e = SdkError::Server(WireError::new(ErrCode::RateLimited, "slow down"));
        assert!(e.is_retryable());
    }

    #[test]
    fn local_errors_map_to_openim_sdk_codes() {
        assert_eq!(SdkError::Disconnected.err_code(), 10000);
        assert_eq!(SdkError::Connect("x".into()).err_code(), 10000);
        assert_eq!(SdkError::Http("x".into()).err_code(), 10000);
        assert_eq!(SdkError::Timeout.err_code(), 10001);
        assert_eq!(SdkError::InvalidArgument("x".into()).err_code(), 10002);
        assert_eq!(SdkError::Protocol("x".into()).err_code(), 10006);
        assert_eq!(SdkError::Closed.err_code(), 10101);
        assert_eq!(SdkError::Timeout.code(), None);
        assert!(SdkError::Timeout.is_retryable());
        assert!(!SdkError::Closed.is_retryable());
    }

    #[test]
    fn api_result_of_success_carries_data() {
        let r: ApiResult = Ok::<_, SdkError>(Empty {}).into();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"errCode":0,"errMsg":"","data":{}}"#
        );
    }

    #[test]
    fn api_result_of_server_error_uses_the_server_message() {
        let r: ApiResult = Err::<Empty, _>(SdkError::Server(WireError::new(
            ErrCode::AlreadyAnswered,
            "answered on another device",
        )))
        .into();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"errCode":1601,"errMsg":"answered on another device","data":null}"#
        );
    }

    #[test]
    fn api_result_of_local_error_uses_local_code() {
        let r: ApiResult = Err::<Empty, _>(SdkError::Disconnected).into();
        assert_eq!(r.err_code, 10000);
        assert!(r.err_msg.contains("not connected"), "{}", r.err_msg);
        assert_eq!(r.data, serde_json::Value::Null);
    }

    #[test]
    fn token_errors_stop_reconnecting() {
        let fatal = SdkError::Server(WireError::new(ErrCode::TokenExpired, "expired"));
        assert!(fatal.is_fatal_for_login());
        let busy = SdkError::Server(WireError::new(ErrCode::TooManyDevices, "too many"));
        assert!(!busy.is_fatal_for_login());
        assert!(!SdkError::Connect("refused".into()).is_fatal_for_login());
    }
}
