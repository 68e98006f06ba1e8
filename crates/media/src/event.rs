//! What a media session says: to its owner ([`MediaEvent`]) and, through the owner, to
//! the other participants ([`OutSignal`]).

use std::time::Instant;

use serde::Serialize;

use crate::codec::DecodedFrame;
use crate::peer::PeerState;

/// A negotiation message for `to`, as JSON, for the caller to relay through the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutSignal {
    pub to: String,
    pub payload: String,
}

/// Link quality with one participant, once a second.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Quality {
    /// Round trip of the media path, ms.
    pub rtt_ms: f64,
    /// Share of the participant's packets lost in the last second, 0–1.
    pub loss: f64,
    /// Received and sent bitrate over the last second, kbit/s.
    pub kbps_in: f64,
    pub kbps_out: f64,
    /// Remote pictures decoded in the last second.
    pub fps_in: u32,
    /// `host` (direct), `srflx` (through a NAT) or `relay` (through TURN).
    pub path: String,
}

/// What a session reports.
#[derive(Debug)]
pub enum MediaEvent {
    /// The connection with `user` changed state.
    PeerState {
        user: String,
        state: PeerState,
        at: Instant,
    },
    /// A decoded picture from `user`.
    Frame {
        user: String,
        frame: DecodedFrame,
        at: Instant,
    },
    /// A small copy of our own outgoing picture, a few times a second.
    Preview {
        frame: DecodedFrame,
    },
    /// One decoded audio packet from `user`: how many samples, and how loud (0–1).
    Audio {
        user: String,
        samples: usize,
        level: f32,
        at: Instant,
    },
    /// `user` turned their microphone or camera on or off.
    RemoteState {
        user: String,
        mic: bool,
        camera: bool,
    },
    Quality {
        user: String,
        quality: Quality,
    },
    /// A device could not be opened or stopped working (`device` is `microphone`,
    /// `speakers` or `camera`); the call goes on with the tone, without playback, or
    /// with the test pattern.
    DeviceUnavailable {
        device: &'static str,
        reason: String,
    },
    /// Media with `user` ended and will not come back: the path could not be recovered,
    /// or the far end gave up. The call should end for this participant.
    Failed {
        user: String,
        reason: String,
    },
    /// The session has closed; nothing follows.
    Ended,
}
