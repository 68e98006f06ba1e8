//! The bandwidth estimate of one peer connection: webrtc-rs's GCC (Google Congestion
//! Control: a delay-based trend from TWCC feedback and a loss-based half, the lower of
//! the two wins) wrapped so that its figures reach the session.
//!
//! The stack drives the estimator from inside its interceptor chain, where nothing
//! outside can reach it; [`Estimator`] is what it drives, and it copies each new
//! figure into a [`BandwidthHandle`] the peer keeps. No IO and no clock: every instant
//! comes from the chain (or a test). This and [`crate::peer`] are the only modules that
//! name `rtc` types: this one only the estimator seam (`BandwidthEstimator`, `Gcc`,
//! `PacketReport`).
//!
//! What the chain's pacer is told is the estimate times [`PACING_FACTOR`]: the encoders
//! aim under the estimate ([`crate::adaptation::HEADROOM`]), but a key frame is a burst
//! several times the average, and a pacer held to the average would queue it for
//! hundreds of milliseconds (or refuse its tail, breaking the picture it was meant to
//! repair). libwebrtc paces at 2.5 times the estimate for the same reason.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rtc::interceptor::{
    BandwidthEstimator, CongestionControlBuilder, EstimatorStats, Gcc, PacerBuilder, PacketReport,
    Registry, Slot, TwccReceiverBuilder, TwccSenderBuilder,
};

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
}

/// The peer's side of the estimator: a cheap copy of its latest figures.
#[derive(Debug, Clone, Default)]
pub struct BandwidthHandle(Arc<Mutex<Reading>>);

impl BandwidthHandle {
    pub fn reading(&self) -> Reading {
        *self.0.lock().expect("bandwidth reading")
    }
}

/// GCC, publishing into a [`BandwidthHandle`]; what the interceptor chain drives.
pub struct Estimator {
    gcc: Gcc,
    reports: u64,
    handle: BandwidthHandle,
}

impl Estimator {
    /// An estimator starting at `initial_bps`, and the handle it publishes to.
    pub fn new(initial_bps: f64) -> (Estimator, BandwidthHandle) {
        let gcc = Gcc::new(initial_bps, MIN_BPS, MAX_BPS);
        let handle = BandwidthHandle::default();
        let estimator = Estimator {
            gcc,
            reports: 0,
            handle: handle.clone(),
        };
        estimator.publish();
        (estimator, handle)
    }

    /// The pacer's rate: [`PACING_FACTOR`] times the estimate, never under
    /// [`MIN_PACING_BPS`].
    pub fn pacing_bps(&self) -> f64 {
        pacing_bps(self.gcc.target_bitrate())
    }

    fn publish(&self) {
        let stats: EstimatorStats = self.gcc.stats();
        let reading = Reading {
            target_bps: self.gcc.target_bitrate(),
            loss: stats.packet_loss.unwrap_or(0.0),
            delay_bps: self.gcc.delay_based_bitrate(),
            loss_bps: self.gcc.loss_based_bitrate(),
            reports: self.reports,
        };
        *self.handle.0.lock().expect("bandwidth reading") = reading;
    }
}

impl BandwidthEstimator for Estimator {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        if reports.is_empty() {
            return;
        }
        self.gcc.on_reports(now, reports);
        self.reports += 1;
        self.publish();
    }

    /// The pacer's rate (see [`PACING_FACTOR`]); the estimate itself is in the handle.
    fn target_bitrate(&self) -> f64 {
        self.pacing_bps()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.gcc.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.gcc.poll_timeout()
    }

    fn stats(&self) -> EstimatorStats {
        self.gcc.stats()
    }
}

#[cfg(test)]
mod tests {
    //! GCC driven through [`Estimator`] by a simulated path: a sender that sends what
    //! the estimate allows, a bottleneck with a drop-tail buffer, and a receiver
    //! reporting arrivals every 100 ms, as TWCC does. Simulated time, no clock.

    use super::*;
    use crate::adaptation::{Adaptation, Estimate};
    use rtc::rtcp::transport_feedbacks::cc_feedback_report::Ecn;
    use std::collections::VecDeque;
    use std::time::Duration;

    const PACKET: usize = 1200;
    const STEP: Duration = Duration::from_millis(5);
    const FEEDBACK_EVERY: u32 = 20; // steps: 100 ms
    const ONE_WAY: Duration = Duration::from_millis(20);

    struct Path {
        start: Instant,
        now: Instant,
        estimator: Estimator,
        handle: BandwidthHandle,
        /// Bottleneck rate, bit/s, and its buffer in time.
        cap_bps: f64,
        buffer: Duration,
        /// Random-looking loss on top of the bottleneck, 0–1.
        loss: f64,
        /// When the bottleneck is next free, on the sender's clock.
        link_free: Instant,
        /// Sent, awaiting a report: (report, arrival instant or None).
        in_flight: VecDeque<(PacketReport, Option<Instant>)>,
        next_id: u64,
        credit_bits: f64,
        steps: u32,
    }

    impl Path {
        fn new(cap_kbps: f64, initial_bps: f64) -> Path {
            let start = Instant::now();
            let (estimator, handle) = Estimator::new(initial_bps);
            Path {
                start,
                now: start,
                estimator,
                handle,
                cap_bps: cap_kbps * 1000.0,
                buffer: Duration::from_millis(150),
                loss: 0.0,
                link_free: start,
                in_flight: VecDeque::new(),
                next_id: 0,
                credit_bits: 0.0,
                steps: 0,
            }
        }

        fn send_one(&mut self) {
            let id = self.next_id;
            self.next_id += 1;
            let tx = Duration::from_secs_f64((PACKET * 8) as f64 / self.cap_bps);
            let begin = self.link_free.max(self.now);
            // Drop-tail: a packet that would wait longer than the buffer holds is lost.
            let lost_at_queue = begin.saturating_duration_since(self.now) > self.buffer;
            // Deterministic "random" loss: every n-th packet.
            let lost_at_random = self.loss > 0.0
                && (id as f64 * self.loss).floor() != ((id + 1) as f64 * self.loss).floor();
            let arrival = if lost_at_queue || lost_at_random {
                None
            } else {
                self.link_free = begin + tx;
                Some(begin + tx + ONE_WAY)
            };
            let report = PacketReport {
                ssrc: 1,
                id,
                rtp_sequence_number: id as u16,
                is_twcc: true,
                twcc_sequence_number: id as u16,
                size: PACKET,
                arrived: arrival.is_some(),
                departure: self.now,
                arrival: arrival.map(|a| a.duration_since(self.start)),
                ecn: Ecn::default(),
            };
            self.in_flight.push_back((report, arrival));
        }

        /// Runs `secs` of simulated time; the sender sends at the estimate (what the
        /// encoders aim for would be less: this is the harder case).
        fn run(&mut self, secs: f64) {
            let steps = (secs / STEP.as_secs_f64()) as u32;
            for _ in 0..steps {
                self.now += STEP;
                self.steps += 1;
                let target = self.handle.reading().target_bps;
                self.credit_bits += target * STEP.as_secs_f64();
                while self.credit_bits >= (PACKET * 8) as f64 {
                    self.credit_bits -= (PACKET * 8) as f64;
                    self.send_one();
                }
                if self.steps.is_multiple_of(FEEDBACK_EVERY) {
                    self.feedback();
                }
            }
        }

        /// What a TWCC report arriving now says: every packet whose fate the receiver
        /// knew one way-trip ago, in send order.
        fn feedback(&mut self) {
            let known_by = self.now - ONE_WAY;
            let mut reports = Vec::new();
            while let Some((report, arrival)) = self.in_flight.front() {
                let known = match arrival {
                    Some(a) => *a <= known_by,
                    // A lost packet is known lost once later ones have arrived.
                    None => report.departure + ONE_WAY * 2 <= known_by,
                };
                if !known {
                    break;
                }
                reports.push(report.clone());
                self.in_flight.pop_front();
            }
            self.estimator.on_reports(self.now, &reports);
        }

        fn target_kbps(&self) -> f64 {
            self.handle.reading().target_bps / 1000.0
        }
    }

    /// What the encoders aim for in all (video and audio) under the policy, kbit/s.
    fn aim_kbps(policy: &mut Adaptation, path: &Path) -> f64 {
        let r = path.handle.reading();
        policy.update(
            path.now,
            Estimate {
                target_bps: r.target_bps,
                loss: r.loss,
            },
        );
        let plan = policy.plan();
        f64::from(plan.video.map_or(0, |v| v.bitrate_bps) + plan.audio_bps) / 1000.0
    }

    #[test]
    fn the_pacer_carries_audio_whatever_the_estimate() {
        // Opus at its lossy-link rate plus IP/UDP/RTP/SRTP headers, 50 packets a second.
        let audio = f64::from(crate::adaptation::AUDIO_LOSSY_BPS) + 50.0 * 70.0 * 8.0;
        assert!(
            pacing_bps(MIN_BPS) >= 2.0 * audio,
            "{}",
            pacing_bps(MIN_BPS)
        );
        assert_eq!(pacing_bps(2_000_000.0), 2_000_000.0 * PACING_FACTOR);
    }

    #[test]
    fn a_500_kbit_bottleneck_brings_the_encoders_under_it_within_10_s() {
        let mut path = Path::new(500.0, initial_bps(1_000_000));
        let mut policy = Adaptation::new(1_000_000);
        assert!(path.target_kbps() > 1000.0, "starts at the configured rate");
        let mut under_at = None;
        for tenth in 1..=100 {
            path.run(0.1);
            if under_at.is_none() && aim_kbps(&mut policy, &path) < 500.0 {
                under_at = Some(tenth);
            }
        }
        let under_at = under_at.expect("the encoders' aim went under the cap within 10 s");
        // Then it stays under, and the estimate stays near the cap rather than
        // collapsing (GCC probes a little above a link, then backs off).
        let (mut low, mut high, mut sum) = (f64::MAX, 0.0f64, 0.0);
        for _ in 0..200 {
            path.run(0.1);
            let aim = aim_kbps(&mut policy, &path);
            assert!(aim < 500.0, "aiming at {aim} kbit/s under a 500 kbit/s cap");
            let kbps = path.target_kbps();
            (low, high, sum) = (low.min(kbps), high.max(kbps), sum + kbps);
        }
        eprintln!(
            "500 kbit/s cap: encoders under it after {} ms; estimate 10-30 s {low:.0}..{high:.0}, \
             mean {:.0} kbit/s",
            under_at * 100,
            sum / 200.0
        );
        assert!(low > 400.0 && high < 600.0, "estimate {low}..{high} kbit/s");
        let video = policy.plan().video.expect("video goes on at 500 kbit/s");
        assert_eq!(video.scale, 1, "{video:?}");
    }

    #[test]
    fn loss_without_queueing_lowers_the_estimate() {
        // A fat link (no queue builds) that loses 20 % of packets.
        let mut path = Path::new(50_000.0, 1_000_000.0);
        path.run(3.0);
        let before = path.target_kbps();
        path.loss = 0.2;
        path.run(5.0);
        let after = path.target_kbps();
        assert!(
            after < before * 0.7,
            "{before} -> {after} kbit/s under 20 % loss"
        );
        let loss = path.handle.reading().loss;
        assert!((0.1..=0.3).contains(&loss), "reported loss {loss}");
    }

    #[test]
    fn the_estimate_climbs_back_when_the_cap_lifts() {
        let mut path = Path::new(300.0, initial_bps(1_000_000));
        path.run(15.0);
        let capped = path.target_kbps();
        assert!(capped < 360.0, "near the cap: {capped}");
        path.cap_bps = 5_000_000.0;
        let mut doubled_at = None;
        for tenth in 1..=200 {
            path.run(0.1);
            if doubled_at.is_none() && path.target_kbps() > capped * 2.0 {
                doubled_at = Some(tenth);
            }
        }
        let lifted = path.target_kbps();
        eprintln!(
            "300 kbit/s cap: estimate {capped:.0} kbit/s; lifted: twice that after {:?} ms, \
             {lifted:.0} kbit/s after 20 s",
            doubled_at.map(|t| t * 100)
        );
        assert!(
            lifted > capped * 2.0,
            "{capped} -> {lifted} kbit/s after the cap lifted"
        );
    }

    #[test]
    fn a_100_kbit_link_goes_audio_only_and_video_returns_when_the_cap_lifts() {
        let mut path = Path::new(100.0, initial_bps(1_000_000));
        let mut policy = Adaptation::new(1_000_000);
        let mut audio_only_at = None;
        for tenth in 1..=100 {
            path.run(0.1);
            aim_kbps(&mut policy, &path);
            if audio_only_at.is_none() && policy.plan().audio_only() {
                audio_only_at = Some(tenth);
            }
        }
        let audio_only_at = audio_only_at.expect("audio only within 10 s on a 100 kbit/s link");
        assert!(
            policy.plan().audio_only(),
            "and it stays so: {:?}",
            policy.plan()
        );
        // Audio alone fits: what the encoders aim for is under the cap.
        assert!(aim_kbps(&mut policy, &path) < 100.0);
        path.cap_bps = 2_000_000.0;
        let mut video_at = None;
        let mut full_at = None;
        for tenth in 1..=600 {
            path.run(0.1);
            aim_kbps(&mut policy, &path);
            let plan = policy.plan();
            if video_at.is_none() && !plan.audio_only() {
                video_at = Some(tenth);
            }
            if full_at.is_none()
                && plan
                    .video
                    .is_some_and(|v| v.scale == 1 && v.fps_divisor == 1)
            {
                full_at = Some(tenth);
            }
        }
        let video_at = video_at.expect("video returns after the cap lifts");
        let full_at = full_at.expect("and reaches full size and rate");
        eprintln!(
            "100 kbit/s cap: audio only after {} ms; cap lifted to 2 Mbit/s: video back after \
             {} ms, full size and rate after {} ms",
            audio_only_at * 100,
            video_at * 100,
            full_at * 100
        );
        assert!(video_at <= 200, "video back after {video_at} tenths");
    }

    #[test]
    fn the_pacer_gets_the_estimate_with_headroom_and_empty_feedback_says_nothing() {
        let (mut estimator, handle) = Estimator::new(500_000.0);
        assert_eq!(estimator.target_bitrate(), 500_000.0 * PACING_FACTOR);
        estimator.on_reports(Instant::now(), &[]);
        assert_eq!(handle.reading().reports, 0);
        assert_eq!(handle.reading().target_bps, 500_000.0);
        // Out-of-range starting points are held to the range.
        let (_, handle) = Estimator::new(1e12);
        assert_eq!(handle.reading().target_bps, MAX_BPS);
    }
}
