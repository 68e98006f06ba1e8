//! The media layer's errors.

use thiserror::Error;

/// What went wrong in media; each says which part failed, for logs and the call screen.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The WebRTC stack refused (building a peer connection, SDP, ICE).
    #[error("WebRTC: {0}")]
    WebRtc(String),
    /// A codec could not be created or failed on a frame.
    #[error("codec: {0}")]
    Codec(String),
    /// A negotiation message from the far end could not be understood.
    #[error("bad media signal from {from}: {reason}")]
    BadSignal { from: String, reason: String },
    /// A capture or playback device could not be opened.
    #[error("device: {0}")]
    Device(String),
    /// The session has ended; nothing more can be done with it.
    #[error("the media session has ended")]
    Ended,
}
