//! The loss-based half of the estimate, as libwebrtc's send-side estimation does it.
//!
//! rtc-interceptor's `LossController` (what `Gcc` used) multiplies its own bound by
//! (1 − ½·loss) every 200 ms while the smoothed loss is over 10 %. Behind a thin link
//! with a shallow queue that collapses the estimate: one overshoot (a key frame, an
//! encoder slow to follow, the pacer's headroom) loses half of a second's packets, the
//! feedback about them keeps arriving for several round trips, and every 200 ms another
//! cut is taken for the same episode — 1.5 Mbit/s to its 40 kbit/s floor within a second
//! in the network lab's case (e). libwebrtc avoids that three ways, and so does this:
//!
//! - **One cut per loss report and per round trip.** Loss is measured over at least
//!   [`MIN_PACKETS`] packets; a report above [`HIGH_LOSS`] allows one decrease, and the
//!   next one waits [`DECREASE_INTERVAL`] plus the round trip, so the sender has had
//!   time to act on the first before the second is decided.
//! - **Cut from what is being sent, not from a bound of its own.** The decrease applies to
//!   the combined target, and the increase (under [`LOW_LOSS`]) is 8 % a second above the
//!   lowest target of the last second; the bound never floats far above the target.
//! - **Never below what the path delivers.** A cut never goes under
//!   [`ACKED_FLOOR`] times the acknowledged rate (the recent maximum of what the far end
//!   reported arriving, TWCC): what arrived fits, so losing the excess over it says the
//!   sender overshot, not that the link shrank. libwebrtc's loss-based estimate
//!   (`LossBasedBandwidthEstimation`) has the same floor.
//!
//! Pure: feedback and instants in, a bound out.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Loss under this lets the bound climb.
pub const LOW_LOSS: f64 = 0.02;
/// Loss over this cuts the bound; between the two it holds (a few per cent is normal on
/// a radio link, and reacting to it would give capacity up for good).
pub const HIGH_LOSS: f64 = 0.10;
/// Packets a loss report is measured over, at least (libwebrtc's `kLimitNumPackets`):
/// a fraction of a handful of packets is noise.
pub const MIN_PACKETS: usize = 20;
/// Between two cuts, on top of the round trip (libwebrtc's `kBweDecreaseInterval`).
pub const DECREASE_INTERVAL: Duration = Duration::from_millis(300);
/// The increase: this factor over the lowest target of the last [`INCREASE_WINDOW`].
pub const INCREASE_FACTOR: f64 = 1.08;
pub const INCREASE_WINDOW: Duration = Duration::from_secs(1);
/// Added to each increase, so a low rate does not creep (libwebrtc: 1 kbit/s).
pub const INCREASE_OFFSET_BPS: f64 = 1_000.0;
/// A cut never goes below this share of the acknowledged rate. Under 1 so that what the
/// encoders aim for (the estimate less [`crate::adaptation::HEADROOM`]) sits under what
/// the path carried.
pub const ACKED_FLOOR: f64 = 0.85;
/// How fast the acknowledged maximum forgets a higher rate (libwebrtc: 800 ms).
pub const ACKED_MAX_WINDOW: Duration = Duration::from_millis(800);
/// Weight of a new report in the smoothed loss shown to the rest of the call.
const LOSS_SMOOTHING: f64 = 0.2;

/// The loss-based bound and what it is decided from.
#[derive(Debug, Clone)]
pub struct LossBased {
    bound: f64,
    min: f64,
    max: f64,
    /// Packets counted towards the next report.
    lost: usize,
    expected: usize,
    /// The last report's loss fraction; `None` before the first.
    fraction: Option<f64>,
    /// Smoothed over reports, for the audio's protection and the quality figures.
    average: Option<f64>,
    decreased_since_report: bool,
    last_decrease: Option<Instant>,
    /// (when, target) over the last [`INCREASE_WINDOW`], increasing from the front: the
    /// front is the window's minimum.
    history: VecDeque<(Instant, f64)>,
    acked_max: f64,
    acked_at: Option<Instant>,
}

impl LossBased {
    /// A bound starting at `initial`, held within `min..=max`.
    pub fn new(initial: f64, min: f64, max: f64) -> LossBased {
        LossBased {
            bound: initial.clamp(min, max),
            min,
            max,
            lost: 0,
            expected: 0,
            fraction: None,
            average: None,
            decreased_since_report: false,
            last_decrease: None,
            history: VecDeque::new(),
            acked_max: 0.0,
            acked_at: None,
        }
    }

    pub fn bound(&self) -> f64 {
        self.bound
    }

    /// The smoothed loss, if any report has been made.
    pub fn average_loss(&self) -> Option<f64> {
        self.average
    }

    /// Counts one feedback batch: `lost` of `total` packets did not arrive. A report is
    /// made once [`MIN_PACKETS`] have been counted.
    pub fn on_feedback(&mut self, lost: usize, total: usize) {
        self.lost += lost.min(total);
        self.expected += total;
        if self.expected < MIN_PACKETS {
            return;
        }
        let fraction = self.lost as f64 / self.expected as f64;
        (self.lost, self.expected) = (0, 0);
        self.fraction = Some(fraction);
        self.average = Some(match self.average {
            Some(a) => a + LOSS_SMOOTHING * (fraction - a),
            None => fraction,
        });
        self.decreased_since_report = false;
    }

    /// Folds in the acknowledged rate (what the far end reported arriving, bit/s).
    pub fn on_acknowledged(&mut self, now: Instant, bps: f64) {
        if !bps.is_finite() || bps < 0.0 {
            return;
        }
        let elapsed = self.acked_at.map_or(Duration::from_secs(1), |at| {
            now.saturating_duration_since(at)
        });
        self.acked_at = Some(now);
        if bps > self.acked_max {
            self.acked_max = bps;
        } else {
            let forget = 1.0 - (-elapsed.as_secs_f64() / ACKED_MAX_WINDOW.as_secs_f64()).exp();
            self.acked_max -= forget * (self.acked_max - bps);
        }
    }

    /// The bound for a combined target now at `current`, the round trip being `rtt`.
    pub fn update(&mut self, now: Instant, current: f64, rtt: Duration) -> f64 {
        while self
            .history
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= INCREASE_WINDOW)
        {
            self.history.pop_front();
        }
        while self.history.back().is_some_and(|(_, t)| *t >= current) {
            self.history.pop_back();
        }
        self.history.push_back((now, current));
        let Some(fraction) = self.fraction else {
            return self.bound;
        };
        if fraction < LOW_LOSS {
            let lowest = self.history.front().map_or(current, |(_, t)| *t);
            self.bound = (lowest * INCREASE_FACTOR + INCREASE_OFFSET_BPS).clamp(self.min, self.max);
        } else if fraction > HIGH_LOSS && !self.decreased_since_report {
            let spaced = self
                .last_decrease
                .is_none_or(|at| now.saturating_duration_since(at) >= DECREASE_INTERVAL + rtt);
            let cut = (current * (1.0 - 0.5 * fraction)).max(ACKED_FLOOR * self.acked_max);
            if spaced && cut < self.bound.min(current) {
                self.bound = cut.clamp(self.min, self.max);
                self.last_decrease = Some(now);
                self.decreased_since_report = true;
            }
        }
        self.bound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: f64 = 40_000.0;
    const MAX: f64 = 6_000_000.0;
    const RTT: Duration = Duration::from_millis(100);

    /// Reports of `lost` in 100 packets every 100 ms for `tenths`, the target following
    /// the bound; returns the bound.
    fn feed(l: &mut LossBased, now: &mut Instant, lost: usize, acked: f64, tenths: u32) -> f64 {
        for _ in 0..tenths {
            *now += Duration::from_millis(100);
            l.on_feedback(lost, 100);
            l.on_acknowledged(*now, acked);
            let current = l.bound();
            l.update(*now, current, RTT);
        }
        l.bound()
    }

    #[test]
    fn a_loss_episode_is_cut_once_per_round_trip_not_every_report() {
        let mut l = LossBased::new(1_000_000.0, MIN, MAX);
        let mut now = Instant::now();
        // Half of everything lost for a second, nothing acknowledged to floor it.
        let after = feed(&mut l, &mut now, 50, 0.0, 10);
        // 1 s at one cut per 400 ms (300 ms + the round trip): at most three cuts of 25 %.
        assert!(after >= 1_000_000.0 * 0.75f64.powi(3) - 1.0, "{after}");
        assert!(after < 1_000_000.0 * 0.75 + 1.0, "but it does cut: {after}");
    }

    #[test]
    fn a_cut_never_goes_below_what_the_path_delivered() {
        let mut l = LossBased::new(1_500_000.0, MIN, MAX);
        let mut now = Instant::now();
        // An overshoot into a 500 kbit/s link: 60 % lost for 10 s, 500 kbit/s arriving.
        let after = feed(&mut l, &mut now, 60, 500_000.0, 100);
        assert!(
            (ACKED_FLOOR * 500_000.0 - 1.0..=500_000.0).contains(&after),
            "{after}"
        );
    }

    #[test]
    fn a_clean_path_climbs_eight_per_cent_a_second() {
        let mut l = LossBased::new(500_000.0, MIN, MAX);
        let mut now = Instant::now();
        let after = feed(&mut l, &mut now, 0, 500_000.0, 50);
        // ~5 s at 8 % a second (plus 1 kbit/s a step), give or take one window.
        assert!(after > 500_000.0 * 1.08f64.powi(4), "{after}");
        assert!(after < 500_000.0 * 1.09f64.powi(6), "{after}");
    }

    #[test]
    fn moderate_loss_holds_and_too_few_packets_make_no_report() {
        let mut l = LossBased::new(800_000.0, MIN, MAX);
        let mut now = Instant::now();
        assert_eq!(feed(&mut l, &mut now, 5, 800_000.0, 30), 800_000.0);
        let mut l = LossBased::new(800_000.0, MIN, MAX);
        l.on_feedback(9, 10);
        assert_eq!(l.average_loss(), None);
        assert_eq!(l.update(now, 800_000.0, RTT), 800_000.0);
    }

    #[test]
    fn random_loss_on_a_fat_link_still_brings_the_bound_down() {
        let mut l = LossBased::new(2_000_000.0, MIN, MAX);
        let mut now = Instant::now();
        // 20 % lost whatever is sent: what arrives is 80 % of the target.
        for _ in 0..50 {
            now += Duration::from_millis(100);
            l.on_feedback(20, 100);
            l.on_acknowledged(now, l.bound() * 0.8);
            let current = l.bound();
            l.update(now, current, RTT);
        }
        assert!(l.bound() < 2_000_000.0 * 0.5, "{}", l.bound());
        assert!((0.15..=0.25).contains(&l.average_loss().unwrap()));
    }
}
