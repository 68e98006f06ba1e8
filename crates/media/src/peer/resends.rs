//! Which of the NACK responder's resends go out: at most one per packet per round trip,
//! and all of them together within a share of the bandwidth estimate.
//!
//! The stack's responder resends a packet every time the far end asks, and the far end
//! asks every 100 ms until a copy arrives. On a thin link the round trip is longer than
//! that (the bottleneck's queue alone is 100 ms in the network lab), so every lost packet
//! was sent two, three times over; the copies filled the queue, more packets were lost,
//! and the sender put ~570 kbit/s on a 500 kbit/s link whose estimate was ~300 (case (e)
//! of docs/network-lab.md) while the encoder held its own target. libwebrtc keeps the
//! same two rules: a packet is not resent again within one round trip
//! (`RtpPacketHistory`'s minimum time between retransmissions), and retransmissions
//! share a rate limit with the rest of what is sent.
//!
//! And a video packet sent before the stream's latest key frame is not resent: the key
//! frame supersedes every picture before it, and the far end jumps to it. After a
//! burst of loss (the first second under the network lab's cap, case (e)) the far end
//! kept asking for the burst's packets for a second after the key frame it had asked
//! for; their resends took the whole resend share, and the encoders, left the estimate
//! less the resends, dropped to a smaller picture (and another key frame).
//!
//! [`Resends`] is the rule, without IO (time and the estimate are passed in);
//! [`ResendGate`] is the interceptor that applies it, between the responder and the
//! pacer, reading the estimate and round trip from the peer's [`BandwidthHandle`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use rtc::shared::marshal::MarshalSize;

use crate::bandwidth::BandwidthHandle;
use crate::remembered::Remembered;

/// Its place in the chain: above the pacer (3 000), so resends are paced, and below the
/// NACK responder (4 000), so it sees what the responder produces.
pub(super) const SLOT: usize = 3_500;

/// The shortest time between two resends of one packet, when the round trip is not
/// known yet or is shorter.
pub const MIN_RESEND_GAP: Duration = Duration::from_millis(100);
/// The share of the bandwidth estimate resends may take, on average.
pub const RESEND_SHARE: f64 = 0.25;
/// How much unused resend budget may be saved up, in seconds of [`RESEND_SHARE`]: a
/// picture's worth of packets lost at once can be repaired in one go.
pub const RESEND_BURST: Duration = Duration::from_millis(500);
/// Packets whose last resend is remembered; older ones may be resent again at once (the
/// far end stops asking after 10 requests, 1 s, well within this at any rate).
const REMEMBERED: usize = 4096;

/// The rule for resends of one peer connection.
#[derive(Debug, Default)]
pub struct Resends {
    last: Remembered<(u32, u16), Instant, REMEMBERED>,
    /// Per video stream, the latest key frame: its first packet and its RTP timestamp.
    key_frames: HashMap<u32, (u16, u32)>,
    budget_bits: f64,
    refilled: Option<Instant>,
}

impl Resends {
    /// Packet `seq` of stream `ssrc`, with RTP timestamp `timestamp`, starts a key frame
    /// (or carries part of its start: parameter sets and the first slice may come in
    /// several packets, the first of which counts).
    pub fn key_frame(&mut self, ssrc: u32, seq: u16, timestamp: u32) {
        match self.key_frames.get(&ssrc) {
            Some(&(_, known)) if known == timestamp => {}
            _ => {
                self.key_frames.insert(ssrc, (seq, timestamp));
            }
        }
    }

    /// Whether packet `seq` of `ssrc` was sent before the stream's latest key frame.
    fn superseded(&self, (ssrc, seq): (u32, u16)) -> bool {
        self.key_frames
            .get(&ssrc)
            .is_some_and(|&(first, _)| seq != first && first.wrapping_sub(seq) < 0x8000)
    }

    /// Whether a resend of packet `seq` of stream `ssrc`, `bits` long, may go out at `now`,
    /// with the estimate at `target_bps` and the round trip at `rtt`. A resend allowed is
    /// counted (its time and its bits).
    pub fn allow(
        &mut self,
        now: Instant,
        (ssrc, seq): (u32, u16),
        bits: f64,
        rtt: Duration,
        target_bps: f64,
    ) -> bool {
        let rate = target_bps.max(0.0) * RESEND_SHARE;
        let cap = rate * RESEND_BURST.as_secs_f64();
        let elapsed = self
            .refilled
            .map_or(RESEND_BURST, |at| now.saturating_duration_since(at));
        self.budget_bits = (self.budget_bits + rate * elapsed.as_secs_f64()).min(cap);
        self.refilled = Some(now);

        if self.superseded((ssrc, seq)) {
            return false;
        }
        let gap = rtt.max(MIN_RESEND_GAP);
        if self
            .last
            .get(&(ssrc, seq))
            .is_some_and(|at| now.saturating_duration_since(*at) < gap)
        {
            return false;
        }
        if self.budget_bits < bits {
            return false;
        }
        self.budget_bits -= bits;
        self.last.insert((ssrc, seq), now);
        true
    }
}

/// Resends allowed over the last second, for the rate the encoders leave them.
#[derive(Debug, Default)]
struct Recent {
    sent: VecDeque<(Instant, f64)>,
    bits: f64,
}

impl Recent {
    fn add(&mut self, now: Instant, bits: f64) {
        self.sent.push_back((now, bits));
        self.bits += bits;
    }

    /// Bit/s over the second before `now`.
    fn rate(&mut self, now: Instant) -> f64 {
        while let Some(&(at, bits)) = self.sent.front() {
            if now.saturating_duration_since(at) < Duration::from_secs(1) {
                break;
            }
            self.sent.pop_front();
            self.bits -= bits;
        }
        if self.sent.is_empty() {
            self.bits = 0.0;
        }
        self.bits
    }
}

/// How often the resend rate is published (on any packet written, not more often).
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// Drops the resends [`Resends`] refuses; passes everything else, and publishes what
/// the resends allowed take.
pub(super) struct ResendGate {
    resends: Resends,
    /// The H.264 streams we send (whose key frames the rule watches).
    h264: HashSet<u32>,
    recent: Recent,
    published: Option<Instant>,
    bandwidth: BandwidthHandle,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
    refused: u64,
}

impl ResendGate {
    pub(super) fn new(bandwidth: BandwidthHandle) -> ResendGate {
        ResendGate {
            resends: Resends::default(),
            h264: HashSet::new(),
            recent: Recent::default(),
            published: None,
            bandwidth,
            read: VecDeque::new(),
            write: VecDeque::new(),
            refused: 0,
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for ResendGate {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(packet) = &msg.message.packet {
            if msg.message.has(&Attribute::Retransmission) {
                let reading = self.bandwidth.reading();
                let key = (packet.header.ssrc, packet.header.sequence_number);
                let bits = (packet.marshal_size() * 8) as f64;
                if !self
                    .resends
                    .allow(msg.now, key, bits, reading.rtt, reading.target_bps)
                {
                    self.refused += 1;
                    if self.refused.is_power_of_two() {
                        tracing::debug!(refused = self.refused, "resends held back");
                    }
                    return Ok(());
                }
                self.recent.add(msg.now, bits);
            } else if self.h264.contains(&packet.header.ssrc)
                && crate::keyframe::starts_key_frame(&packet.payload)
            {
                self.resends.key_frame(
                    packet.header.ssrc,
                    packet.header.sequence_number,
                    packet.header.timestamp,
                );
            }
            if self
                .published
                .is_none_or(|at| msg.now.saturating_duration_since(at) >= PUBLISH_EVERY)
            {
                self.published = Some(msg.now);
                self.bandwidth.set_resend_bps(self.recent.rate(msg.now));
            }
        }
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for ResendGate {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if info.mime_type.eq_ignore_ascii_case("video/H264") {
            self.h264.insert(info.ssrc);
        }
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.h264.remove(&info.ssrc);
    }
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKET: f64 = 1200.0 * 8.0;
    const RTT: Duration = Duration::from_millis(250);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_packet_asked_for_again_within_a_round_trip_is_resent_once() {
        let t0 = Instant::now();
        let mut resends = Resends::default();
        assert!(resends.allow(t0, (1, 7), PACKET, RTT, 1e6));
        // The far end asks every 100 ms; its requests before our copy could arrive are
        // not answered again.
        assert!(!resends.allow(t0 + ms(100), (1, 7), PACKET, RTT, 1e6));
        assert!(!resends.allow(t0 + ms(200), (1, 7), PACKET, RTT, 1e6));
        // A round trip on, the copy was lost too: once more.
        assert!(resends.allow(t0 + ms(300), (1, 7), PACKET, RTT, 1e6));
        // Other packets, and the same sequence number of another stream, are their own.
        assert!(resends.allow(t0 + ms(300), (1, 8), PACKET, RTT, 1e6));
        assert!(resends.allow(t0 + ms(300), (2, 7), PACKET, RTT, 1e6));
    }

    #[test]
    fn packets_sent_before_the_latest_key_frame_are_not_resent() {
        let t0 = Instant::now();
        let mut resends = Resends::default();
        // A key frame starting at 100 (its parameter sets), its slice from 101 on.
        resends.key_frame(1, 100, 9000);
        resends.key_frame(1, 101, 9000);
        assert!(!resends.allow(t0, (1, 99), PACKET, RTT, 1e6), "superseded");
        assert!(
            resends.allow(t0, (1, 100), PACKET, RTT, 1e6),
            "the key frame's own"
        );
        assert!(resends.allow(t0, (1, 105), PACKET, RTT, 1e6), "after it");
        assert!(
            resends.allow(t0, (2, 99), PACKET, RTT, 1e6),
            "another stream"
        );
        // Across the wrap of sequence numbers.
        resends.key_frame(1, 3, 18000);
        assert!(!resends.allow(t0, (1, 65530), PACKET, RTT, 1e6));
        assert!(resends.allow(t0, (1, 4), PACKET, RTT, 1e6));
    }

    #[test]
    fn without_a_round_trip_yet_resends_of_one_packet_are_spaced_by_the_minimum() {
        let t0 = Instant::now();
        let mut resends = Resends::default();
        assert!(resends.allow(t0, (1, 7), PACKET, Duration::ZERO, 1e6));
        assert!(!resends.allow(t0 + ms(50), (1, 7), PACKET, Duration::ZERO, 1e6));
        assert!(resends.allow(t0 + MIN_RESEND_GAP, (1, 7), PACKET, Duration::ZERO, 1e6));
    }

    #[test]
    fn resends_stay_within_their_share_of_the_estimate() {
        let t0 = Instant::now();
        let mut resends = Resends::default();
        let target = 300_000.0;
        // Every packet lost, asked for once: 10 s of 100 packets a second.
        let mut allowed = 0u32;
        let mut seq = 0u16;
        for tick in 0..1000u64 {
            let now = t0 + ms(10 * tick);
            if resends.allow(now, (1, seq), PACKET, RTT, target) {
                allowed += 1;
            }
            seq = seq.wrapping_add(1);
        }
        let sent_bps = f64::from(allowed) * PACKET / 10.0;
        let most =
            target * RESEND_SHARE + target * RESEND_SHARE * RESEND_BURST.as_secs_f64() / 10.0;
        assert!(sent_bps <= most, "{sent_bps} > {most}");
        assert!(
            sent_bps >= target * RESEND_SHARE * 0.9,
            "{sent_bps}: the share is used"
        );
    }
}
