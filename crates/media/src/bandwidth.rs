//! The bandwidth estimate of one peer connection: GCC (Google Congestion Control: a
//! delay-based trend from TWCC feedback and a loss-based half, the lower of the two
//! wins), wrapped so that its figures reach the session.
//!
//! Both halves are ours, after libwebrtc. The delay half ([`delay`]: packet groups, a
//! trendline, an overuse detector, AIMD held to 1.5 times the acknowledged rate)
//! replaced rtc-interceptor's, whose detector never saw the network lab's 500 kbit/s
//! cap and whose rate climbed to our ceiling meanwhile. The loss half ([`loss`]) replaced
//! its `LossController`, which cut every 200 ms for one loss episode and took a thin
//! link's call to its floor (docs/network-lab.md, case (e)); ours cuts once per report
//! and round trip, never below what the path delivered. The acknowledged rate both use
//! is measured on the far end's clock ([`acked`]). And a resend the far end already had
//! is not counted as lost (see [`Repeats`]).
//!
//! The stack drives the estimator from inside its interceptor chain, where nothing
//! outside can reach it; [`Estimator`] is what it drives, and it copies each new
//! figure into a [`BandwidthHandle`] the peer keeps. No IO and no clock: every instant
//! comes from the chain (or a test). This and [`crate::peer`] are the only modules that
//! name `rtc` types: this one only the estimator seam (`BandwidthEstimator`,
//! `PacketReport`) and the interceptors it registers.
//!
//! What the chain's pacer is told is the estimate times [`PACING_FACTOR`]: the encoders
//! aim under the estimate ([`crate::adaptation::HEADROOM`]), but a key frame is a burst
//! several times the average, and a pacer held to the average would queue it for
//! hundreds of milliseconds (or refuse its tail, breaking the picture it was meant to
//! repair). libwebrtc paces at 2.5 times the estimate for the same reason.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::interceptor::{
    BandwidthEstimator, CongestionControlBuilder, EstimatorStats, PacerBuilder, PacketReport,
    Registry, Slot, TwccReceiverBuilder, TwccSenderBuilder,
};

pub mod acked;
mod aimd;
pub mod delay;
pub mod loss;

use acked::Acknowledged;
use delay::DelayBased;
use loss::LossBased;

use crate::remembered::Remembered;
use crate::source::VideoSettings;

/// Adds send-side congestion control to a peer connection's interceptors: the send
/// history and feedback ingest driving [`Estimator`], a pacer with a small queue, the
/// transport-wide sequence numbers our feedback refers to, and the TWCC reports that
/// feed the far end's estimator. (The `transport-cc` feedback and the TWCC header
/// extension are negotiated in the media engine, by `peer`.) Returns the handle that
/// reads the estimate.
pub fn congestion_control(registry: Registry) -> (Registry, BandwidthHandle) {
    let (estimator, handle) = Estimator::new(initial_bps(VideoSettings::default().bitrate_bps));
    let pacer = PacerBuilder::new()
        .with_target_bitrate(estimator.pacing_bps())
        .with_queue_limit(PACER_QUEUE)
        .build();
    let registry = registry
        .with(
            Slot::CongestionControl,
            CongestionControlBuilder::new(estimator).build(),
        )
        .with(Slot::Pacer, pacer)
        .with(Slot::TwccSender, TwccSenderBuilder::new().build())
        .with(Slot::TwccReceiver, TwccReceiverBuilder::new().build());
    (registry, handle)
}

/// The estimate before any feedback: what the call's video is configured for plus audio,
/// so a call on a good link starts at full quality and a thin link is found within a
/// few feedback reports (GCC backs off from what actually arrives, not by steps).
pub fn initial_bps(video_bps: u32) -> f64 {
    f64::from(video_bps) / crate::adaptation::HEADROOM + 40_000.0
}

/// The lowest estimate: audio with its overhead still fits, and GCC's own floor
/// (100 kbit/s) would hide the thin links the audio-only step is for.
pub const MIN_BPS: f64 = 40_000.0;
/// The highest: a 1:1 call never needs more, and an estimate that climbs without limit
/// while we send little (audio only, a still screen) is a guess, not a measurement.
pub const MAX_BPS: f64 = 6_000_000.0;
/// The pacer's rate as a multiple of the estimate (see the module's doc).
pub const PACING_FACTOR: f64 = 1.5;
/// The pacer never runs slower than this, whatever the estimate: audio only (Opus at up
/// to 32 kbit/s and ~30 kbit/s of packet headers at 50 packets a second; 56 kbit/s
/// measured in the network lab) with RTCP must always get through. Held to 1.5 × the
/// estimate's floor (60 kbit/s) the pacer would queue and then refuse audio itself, and
/// the far end would report that as loss, holding the estimate at its floor. libwebrtc
/// does not hold audio back in its pacer at all.
pub const MIN_PACING_BPS: f64 = 160_000.0;

/// The pacer's rate for an estimate of `estimate_bps`.
pub fn pacing_bps(estimate_bps: f64) -> f64 {
    (estimate_bps * PACING_FACTOR).max(MIN_PACING_BPS)
}

/// Packets the pacer may hold; more are refused. Small: a queue that holds seconds of
/// video is latency, not smoothing, and the encoder follows the estimate anyway.
pub const PACER_QUEUE: usize = 128;

/// What the estimator says, as of its last feedback report.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Reading {
    /// The target for everything we send to this peer, bit/s.
    pub target_bps: f64,
    /// Share of our packets the peer reported lost (smoothed), 0–1.
    pub loss: f64,
    /// The delay-based and loss-based halves, bit/s.
    pub delay_bps: f64,
    pub loss_bps: f64,
    /// Feedback reports folded in so far: 0 means the figures are the initial guess.
    pub reports: u64,
    /// The delay half reads a growing queue (overuse) as of the last report.
    pub overused: bool,
    /// The round trip as the last feedback showed it (its newest packet's departure to
    /// the report's arrival); zero before any.
    pub rtt: Duration,
    /// What resends took over the last second, bit/s (set by the peer's resend gate,
    /// [`crate::peer::resends`]): the encoders get the target less this.
    pub resend_bps: f64,
}

/// The peer's side of the estimator: a cheap copy of its latest figures.
#[derive(Debug, Clone, Default)]
pub struct BandwidthHandle(Arc<Mutex<Reading>>);

impl BandwidthHandle {
    pub fn reading(&self) -> Reading {
        *self.0.lock().expect("bandwidth reading")
    }

    /// What resends took over the last second, bit/s.
    pub fn set_resend_bps(&self, bps: f64) {
        self.0.lock().expect("bandwidth reading").resend_bps = bps;
    }
}

/// GCC, publishing into a [`BandwidthHandle`]; what the interceptor chain drives.
pub struct Estimator {
    /// What the far end reports arriving (the acknowledged rate).
    received: Acknowledged,
    delay: DelayBased,
    loss: LossBased,
    repeats: Repeats,
    /// From the last feedback: now less the departure of the newest packet it reports.
    rtt: Duration,
    target: f64,
    reports: u64,
    handle: BandwidthHandle,
}

impl Estimator {
    /// An estimator starting at `initial_bps`, and the handle it publishes to.
    pub fn new(initial_bps: f64) -> (Estimator, BandwidthHandle) {
        let initial = initial_bps.clamp(MIN_BPS, MAX_BPS);
        let handle = BandwidthHandle::default();
        let estimator = Estimator {
            received: Acknowledged::default(),
            delay: DelayBased::new(initial, MIN_BPS, MAX_BPS),
            loss: LossBased::new(initial, MIN_BPS, MAX_BPS),
            repeats: Repeats::default(),
            rtt: Duration::ZERO,
            target: initial,
            reports: 0,
            handle: handle.clone(),
        };
        estimator.publish();
        (estimator, handle)
    }

    /// The pacer's rate: [`PACING_FACTOR`] times the estimate, never under
    /// [`MIN_PACING_BPS`].
    pub fn pacing_bps(&self) -> f64 {
        pacing_bps(self.target)
    }

    fn publish(&self) {
        let mut published = self.handle.0.lock().expect("bandwidth reading");
        *published = Reading {
            target_bps: self.target,
            loss: self.loss.average_loss().unwrap_or(0.0),
            delay_bps: self.delay.bound(),
            loss_bps: self.loss.bound(),
            reports: self.reports,
            overused: self.delay.usage() == delay::Usage::Over,
            rtt: self.rtt,
            resend_bps: published.resend_bps,
        };
    }
}

impl BandwidthEstimator for Estimator {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        if reports.is_empty() {
            return;
        }
        let (mut lost, mut counted, mut repeats) = (0, 0, 0);
        let mut newest: Option<Instant> = None;
        let mut arrivals = Vec::with_capacity(reports.len());
        for report in reports {
            if let (true, Some(arrival)) = (report.arrived, report.arrival) {
                self.received.add(arrival, report.size);
                newest = newest.max(Some(report.departure));
                arrivals.push((arrival, report.departure));
            }
            match self.repeats.count(report) {
                Fate::Arrived => counted += 1,
                Fate::Lost => (lost, counted) = (lost + 1, counted + 1),
                Fate::Repeat => repeats += 1,
            }
        }
        if let Some(departure) = newest {
            self.rtt = now.saturating_duration_since(departure);
        }
        let received = self.received.rate_bps();
        // Delay: the groups in the order they arrived (as libwebrtc sorts them), then
        // one decision per report.
        arrivals.sort_by_key(|(arrival, _)| *arrival);
        for (arrival, departure) in arrivals {
            self.delay.on_packet(now, departure, arrival);
        }
        let delay = self.delay.update(now, received, self.rtt);
        let usage = self.delay.usage();
        // Loss: one report per 20 packets, one cut per report and round trip.
        self.loss.on_feedback(lost, counted);
        if let Some(bps) = received {
            self.loss.on_acknowledged(now, bps);
        }
        let bound = self.loss.update(now, self.target, self.rtt);
        self.target = delay.min(bound).clamp(MIN_BPS, MAX_BPS);
        self.reports += 1;
        tracing::trace!(
            packets = reports.len(),
            lost,
            repeats,
            ?usage,
            received_bps = received.unwrap_or(0.0) as u64,
            delay_bps = delay as u64,
            loss_bps = bound as u64,
            target_bps = self.target as u64,
            rtt_ms = self.rtt.as_millis() as u64,
            "bandwidth feedback"
        );
        self.publish();
    }

    /// The pacer's rate (see [`PACING_FACTOR`]); the estimate itself is in the handle.
    fn target_bitrate(&self) -> f64 {
        self.pacing_bps()
    }

    fn stats(&self) -> EstimatorStats {
        let mut stats = EstimatorStats::default();
        stats.delay_based_bitrate = Some(self.delay.bound());
        stats.loss_based_bitrate = Some(self.loss.bound());
        stats.packet_loss = self.loss.average_loss();
        stats.round_trip_time = Some(self.rtt);
        stats
    }
}

/// What one packet's feedback says for the loss half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Arrived,
    Lost,
    /// Reported lost, but an earlier copy (same SSRC and RTP sequence number) arrived.
    Repeat,
}

/// RTP packets (SSRC, sequence number) whose arrival was reported lately.
///
/// We resend a lost packet on its own SSRC with its own sequence number (NACK without
/// RTX), and the receiver asks again every 100 ms until a copy arrives: when the round
/// trip is longer than that, a second copy is sent after the first and arrives after
/// it, and the receiver's SRTP replay check refuses it before TWCC records it, so the
/// feedback says "lost". In the network lab that was a stream of resends the far end
/// already had, all counted as loss, which held the estimate at its floor after the
/// link had room again. libwebrtc resends on an RTX stream, whose copies are received
/// (and counted) as such; here a copy reported lost after one arrived is not loss.
#[derive(Debug, Default)]
struct Repeats {
    arrived: Remembered<(u32, u16), (), REPEATS_REMEMBERED>,
}

/// Arrivals remembered: some seconds of video at any rate the estimate allows, while
/// the receiver asks for a packet for 1 s at most (10 requests, 100 ms apart).
const REPEATS_REMEMBERED: usize = 4096;

impl Repeats {
    fn count(&mut self, report: &PacketReport) -> Fate {
        let key = (report.ssrc, report.rtp_sequence_number);
        if !report.arrived {
            return if self.arrived.contains(&key) {
                Fate::Repeat
            } else {
                Fate::Lost
            };
        }
        self.arrived.insert(key, ());
        Fate::Arrived
    }
}

#[cfg(test)]
mod simulation;

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::transport_feedbacks::cc_feedback_report::Ecn;

    fn report(id: u64, seq: u16, departure: Instant, arrival_ms: Option<u64>) -> PacketReport {
        PacketReport {
            ssrc: 7,
            id,
            rtp_sequence_number: seq,
            is_twcc: true,
            twcc_sequence_number: id as u16,
            size: 1200,
            arrived: arrival_ms.is_some(),
            departure,
            arrival: arrival_ms.map(Duration::from_millis),
            ecn: Ecn::default(),
        }
    }

    #[test]
    fn a_resend_the_far_end_already_had_is_not_counted_as_lost() {
        let start = Instant::now();
        let (mut estimator, handle) = Estimator::new(1_000_000.0);
        let mut id = 0u64;
        for round in 0..20u64 {
            let now = start + Duration::from_millis(100 * (round + 1));
            let sent = now - Duration::from_millis(60);
            let ms = 100 * round + 60;
            let mut reports = Vec::new();
            // Ten new packets, all arrived…
            for k in 0..10u64 {
                let seq = (round * 10 + k) as u16;
                reports.push(report(id, seq, sent, Some(ms + k)));
                id += 1;
            }
            // …and ten resends of packets that had arrived, refused by the far end's
            // replay check, so its feedback says "not received".
            for k in 0..10u64 {
                let seq = (round * 10 + k) as u16;
                reports.push(report(id, seq, sent, None));
                id += 1;
            }
            estimator.on_reports(now, &reports);
        }
        let reading = handle.reading();
        assert_eq!(reading.loss, 0.0, "{reading:?}");
        assert!(reading.target_bps >= 1_000_000.0, "{reading:?}");
    }
}
