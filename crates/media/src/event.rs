//! What a media session says: to its owner ([`MediaEvent`]) and, through the owner, to
//! the other participants ([`OutSignal`]).

use std::time::Instant;

use serde::Serialize;

use crate::codec::DecodedFrame;
use crate::freeze::Freezes;
use crate::peer::{Counters, PeerState};

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
    /// What the congestion controller allows us to send to the participant, kbit/s
    /// (audio, video and their overhead; the encoders aim a little under it).
    pub target_kbps: f64,
    /// Freezes of the participant's picture since the call began, and their total
    /// length, ms (WebRTC's rule: [`crate::freeze`]).
    pub freezes: u32,
    pub frozen_ms: u64,
}

impl Quality {
    /// The quality over the interval between two readings of the connection's counters,
    /// with `fps_in` pictures decoded in it (one second apart in a session).
    pub fn between(prev: &Counters, now: &Counters, fps_in: u32, freezes: Freezes) -> Quality {
        let received = now.packets_received.saturating_sub(prev.packets_received);
        let lost = (now.packets_lost - prev.packets_lost).max(0) as u64;
        let kbit = |bytes: u64| bytes as f64 * 8.0 / 1000.0;
        Quality {
            rtt_ms: now.rtt_ms,
            loss: if received + lost == 0 {
                0.0
            } else {
                lost as f64 / (received + lost) as f64
            },
            kbps_in: kbit(now.bytes_received.saturating_sub(prev.bytes_received)),
            kbps_out: kbit(now.bytes_sent.saturating_sub(prev.bytes_sent)),
            fps_in,
            path: now.path.clone(),
            target_kbps: now.target_bps / 1000.0,
            freezes: freezes.count,
            frozen_ms: freezes.frozen.as_millis() as u64,
        }
    }
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
    /// `user` turned their microphone or camera on or off, or started or stopped
    /// sharing a screen (`screen`: their picture is a screen, not a camera).
    RemoteState {
        user: String,
        mic: bool,
        camera: bool,
        screen: bool,
    },
    Quality {
        user: String,
        quality: Quality,
    },
    /// The link is too thin for video (`on`): we send audio only, and tell the others
    /// our camera is off; or it has recovered and pictures go out again. `target_kbps`
    /// is the estimate that decided it (the lowest over the participants).
    AudioOnly {
        on: bool,
        target_kbps: f64,
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
    /// The connection with `user` is up, and this is its verification code
    /// ([`crate::verify`]): the same on both ends unless something between them
    /// substituted a certificate. Sent again after each reconnect.
    Verification {
        user: String,
        code: String,
    },
    /// The session has closed; nothing follows.
    Ended,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_is_what_changed_between_two_readings() {
        let prev = Counters {
            bytes_received: 1_000,
            bytes_sent: 2_000,
            packets_received: 90,
            packets_lost: 5,
            ..Counters::default()
        };
        let now = Counters {
            rtt_ms: 12.5,
            bytes_received: 126_000,
            bytes_sent: 52_000,
            packets_received: 180,
            packets_lost: 15,
            path: "relay".into(),
            target_bps: 480_000.0,
        };
        let q = Quality::between(&prev, &now, 30, Freezes::default());
        assert_eq!(q.kbps_in, 1000.0);
        assert_eq!(q.kbps_out, 400.0);
        assert_eq!(q.loss, 0.1, "10 lost of 100");
        assert_eq!((q.rtt_ms, q.fps_in, q.path.as_str()), (12.5, 30, "relay"));
        assert_eq!(q.target_kbps, 480.0);
        // Nothing sent or lost: no loss, not a division by zero.
        assert_eq!(
            Quality::between(&now, &now, 0, Freezes::default()).loss,
            0.0
        );
    }
}
