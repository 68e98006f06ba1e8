//! What never reaches a log: `trace` output of the crates that print whole frames.
//!
//! tungstenite logs every WebSocket frame at `trace` and hyper/reqwest log requests, so
//! `RUST_LOG=trace` would write login tokens, room tokens and TURN credentials to the log.
//! The server's and the CLI's subscribers add [`frames_never_logged`], a global filter
//! that `RUST_LOG` cannot override. Our own code logs ids and codes, never secrets.
//!
//! tokio-postgres logs every statement with its parameters at `debug` (password hashes,
//! the token-signing key kept in the settings table), so its `debug` and `trace`
//! events are dropped too ([`STATEMENT_LOGGING_CRATES`]).

use tracing::{Level, Subscriber};
use tracing_subscriber::Layer;

/// Crates that log SQL statements with their parameters at `debug`.
pub const STATEMENT_LOGGING_CRATES: [&str; 1] = ["tokio_postgres"];

/// A global filter dropping `trace` events of [`tincan_protocol::limits::FRAME_LOGGING_CRATES`]
/// and `debug`/`trace` events of [`STATEMENT_LOGGING_CRATES`].
pub fn frames_never_logged<S: Subscriber>() -> impl Layer<S> {
    tracing_subscriber::filter::filter_fn(|meta| {
        let krate = meta.target().split("::").next().unwrap_or("");
        (*meta.level() < Level::TRACE || !tincan_protocol::limits::is_frame_logging(meta.target()))
            && (*meta.level() < Level::DEBUG || !STATEMENT_LOGGING_CRATES.contains(&krate))
    })
}
