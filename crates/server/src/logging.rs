//! What never reaches a log: `trace` output of the crates that print whole frames.
//!
//! tungstenite logs every WebSocket frame at `trace` and hyper/reqwest log requests, so
//! `RUST_LOG=trace` would write login tokens, room tokens and TURN credentials to the log.
//! The server's and the CLI's subscribers add [`frames_never_logged`], a global filter
//! that `RUST_LOG` cannot override. Our own code logs ids and codes, never secrets.

use tracing::{Level, Subscriber};
use tracing_subscriber::Layer;

/// A global filter dropping `trace` events of [`tincan_protocol::limits::FRAME_LOGGING_CRATES`].
pub fn frames_never_logged<S: Subscriber>() -> impl Layer<S> {
    tracing_subscriber::filter::filter_fn(|meta| {
        *meta.level() < Level::TRACE || !tincan_protocol::limits::is_frame_logging(meta.target())
    })
}
