//! Retransmission (RTCP NACK) for video: what `configure_nack` of webrtc-rs sets up,
//! with a bound on how often one lost packet is asked for again.
//!
//! The stack's default generator asks for a missing packet every 100 ms for as long as
//! it stays in its window, with no limit. On a thin link that is a storm: in the network
//! lab (case (e), a 500 kbit/s cap) the receiver kept asking for the same nine video
//! packets, the sender resent them at its whole pacing rate for a minute after the call
//! had gone audio only — 16 packets a second, 160 kbit/s — and the audio queued behind
//! them was refused, so the far end heard almost nothing and reported the gaps as loss,
//! which held the estimate at its floor. libwebrtc gives up on a packet after 10
//! requests (`kMaxNackRetries`); so do we. A picture a resend cannot repair is repaired
//! by a key frame request (`keyframe`), which is rate-limited.

use rtc::interceptor::{NackGeneratorBuilder, NackResponderBuilder, Slot};
use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RtpCodecKind, TYPE_RTCP_FB_NACK};
use webrtc::peer_connection::{MediaEngine, Registry};

/// Requests for one missing packet before the receiver gives up on it.
pub const MAX_NACKS_PER_PACKET: u16 = 10;

/// How far behind the newest packet of a stream an SRTP packet may arrive and still be
/// accepted, in packets (RFC 3711's replay window). A resend travels on the stream's
/// own SSRC with its original sequence number, so it always arrives behind newer
/// packets: with webrtc-rs's default of 64 (about half a second of video at 1 Mbit/s),
/// a resend that waited in the pacer behind a key frame on a thin link was refused as
/// "duplicated" although it never arrived, the picture stayed broken, and the refused
/// copy was reported lost in the TWCC feedback — loss the link never had, which drove
/// the estimate to its floor in the network lab's case (e). libwebrtc (and Firefox,
/// aiortc) accept 1024 behind.
pub const SRTP_REPLAY_WINDOW: usize = 1024;

/// Negotiates `nack` and `nack pli` for video and adds the responder (resends what the
/// far end asks for) and the generator (asks for what is missing, at most
/// [`MAX_NACKS_PER_PACKET`] times per packet).
pub fn configure(registry: Registry, media: &mut MediaEngine) -> Registry {
    for parameter in ["", "pli"] {
        media.register_feedback(
            RTCPFeedback {
                typ: TYPE_RTCP_FB_NACK.to_owned(),
                parameter: parameter.to_owned(),
            },
            RtpCodecKind::Video,
        );
    }
    registry
        .with(Slot::NackResponder, NackResponderBuilder::new().build())
        .with(
            Slot::NackGenerator,
            NackGeneratorBuilder::new()
                .with_max_nacks_per_packet(MAX_NACKS_PER_PACKET)
                .build(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_window_covers_every_resend_the_receiver_asks_for() {
        // The receiver asks for a packet for up to MAX_NACKS_PER_PACKET × 100 ms; at
        // the highest estimate, in full-size packets, that many newer packets may
        // overtake the resend.
        let packets_per_second = crate::bandwidth::MAX_BPS / (1200.0 * 8.0);
        let asking = f64::from(MAX_NACKS_PER_PACKET) * 0.1;
        assert!(SRTP_REPLAY_WINDOW as f64 >= packets_per_second * asking);
    }
}
