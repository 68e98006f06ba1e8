//! The delay half's rate controller (libwebrtc's `AimdRateControl` and
//! `LinkCapacityEstimator`): what the overuse detector's verdicts ([`Usage`]) and the
//! acknowledged rate make of the delay-based bound. Pure: verdicts, rates and instants
//! in, a rate out.

use std::time::{Duration, Instant};

use super::delay::Usage;

/// A decrease: to this share of the acknowledged rate.
pub const BETA: f64 = 0.85;
/// The increase may not take the rate above this times the acknowledged rate…
pub const ACKED_LIMIT_FACTOR: f64 = 1.5;
/// …plus this, so an uneven encoder at a low rate does not hold it down.
const ACKED_LIMIT_OFFSET_BPS: f64 = 10_000.0;
/// …and never below this. libwebrtc learns that a link has room again by probing
/// (bursts of padding); webrtc-rs sends no padding, so a call gone audio only (some
/// 56 kbit/s on the wire) would be held under 1.5 × that for good and video would never
/// come back (the network lab's case (f)). With this floor the estimate may climb to
/// where video is tried again (it needs a target of ~205 kbit/s, see
/// [`crate::adaptation::VIDEO_BACK_MARGIN`]), and the detector judges that try.
pub const ACKED_LIMIT_FLOOR_BPS: f64 = 300_000.0;
/// Far from any known capacity, the rate grows by this factor a second.
const MULTIPLICATIVE_INCREASE: f64 = 1.08;
/// Near the capacity last seen, by about one packet per response time, at least this.
const MIN_ADDITIVE_BPS_PER_S: f64 = 4_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RateState {
    Hold,
    Increase,
    Decrease,
}

/// The rate controller (libwebrtc's `AimdRateControl`): multiplicative decrease to
/// [`BETA`] times what arrives on overuse; hold while the queue drains; then increase,
/// multiplicatively far from the capacity last found and by about a packet per response
/// time near it, never above [`ACKED_LIMIT_FACTOR`] times what arrives.
#[derive(Debug, Clone)]
pub(super) struct Aimd {
    pub(super) bitrate: f64,
    min: f64,
    max: f64,
    state: RateState,
    changed_at: Option<Instant>,
    latest_acked: f64,
    capacity: Capacity,
    pub(super) rtt: Duration,
}

impl Aimd {
    pub(super) fn new(initial: f64, min: f64, max: f64) -> Aimd {
        Aimd {
            bitrate: initial.clamp(min, max),
            min,
            max,
            state: RateState::Hold,
            changed_at: None,
            latest_acked: initial,
            capacity: Capacity::default(),
            rtt: Duration::from_millis(200),
        }
    }

    pub(super) fn time_to_reduce_further(&self, now: Instant, acked: f64) -> bool {
        let interval = self
            .rtt
            .clamp(Duration::from_millis(10), Duration::from_millis(200));
        self.changed_at
            .is_none_or(|at| now.saturating_duration_since(at) >= interval)
            || acked < 0.5 * self.bitrate
    }

    pub(super) fn update(&mut self, now: Instant, usage: Usage, acked: Option<f64>) {
        let acked = acked.unwrap_or(self.latest_acked);
        self.latest_acked = acked;
        self.state = match (usage, self.state) {
            (Usage::Normal, RateState::Hold) => {
                self.changed_at = Some(now);
                RateState::Increase
            }
            (Usage::Normal, state) => state,
            (Usage::Over, _) => RateState::Decrease,
            (Usage::Under, _) => RateState::Hold,
        };
        let mut next = None;
        match self.state {
            RateState::Hold => {}
            RateState::Increase => {
                if acked > self.capacity.upper_bound() {
                    self.capacity = Capacity::default();
                }
                let limit = (ACKED_LIMIT_FACTOR * acked + ACKED_LIMIT_OFFSET_BPS)
                    .max(ACKED_LIMIT_FLOOR_BPS);
                if self.bitrate < limit {
                    let since = self
                        .changed_at
                        .map(|at| now.saturating_duration_since(at).as_secs_f64());
                    let increase = if self.capacity.estimate.is_some() {
                        self.additive_per_s() * since.unwrap_or(0.0)
                    } else {
                        let alpha = MULTIPLICATIVE_INCREASE.powf(since.unwrap_or(1.0).min(1.0));
                        (self.bitrate * (alpha - 1.0)).max(1_000.0)
                    };
                    next = Some((self.bitrate + increase).min(limit));
                }
                self.changed_at = Some(now);
            }
            RateState::Decrease => {
                let mut decreased = BETA * acked;
                if decreased > self.bitrate {
                    if let Some(capacity) = self.capacity.estimate {
                        decreased = BETA * capacity;
                    }
                }
                if decreased < self.bitrate {
                    next = Some(decreased);
                }
                if acked < self.capacity.lower_bound() {
                    self.capacity = Capacity::default();
                }
                self.capacity.on_overuse(acked);
                self.state = RateState::Hold;
                self.changed_at = Some(now);
            }
        }
        self.bitrate = next.unwrap_or(self.bitrate).clamp(self.min, self.max);
    }

    /// Near the capacity: about one packet per response time (a round trip plus the
    /// detector's ~100 ms), as a frame of 30 at the current rate is packetised.
    fn additive_per_s(&self) -> f64 {
        let frame_bits = self.bitrate / 30.0;
        let packets = (frame_bits / (1200.0 * 8.0)).ceil().max(1.0);
        let response = (self.rtt + Duration::from_millis(100)).as_secs_f64();
        (frame_bits / packets / response).max(MIN_ADDITIVE_BPS_PER_S)
    }
}

/// The link's capacity as the acknowledged rates at overuse say, with its spread
/// (libwebrtc's `LinkCapacityEstimator`), kbit/s inside.
#[derive(Debug, Clone, Copy)]
struct Capacity {
    estimate: Option<f64>,
    deviation: f64,
}

impl Default for Capacity {
    fn default() -> Capacity {
        Capacity {
            estimate: None,
            deviation: 0.4,
        }
    }
}

impl Capacity {
    const ALPHA: f64 = 0.05;

    fn on_overuse(&mut self, acked_bps: f64) {
        let sample = acked_bps / 1000.0;
        let estimate = self
            .estimate
            .map_or(sample, |e| (1.0 - Self::ALPHA) * e + Self::ALPHA * sample);
        let error = estimate - sample;
        self.deviation = ((1.0 - Self::ALPHA) * self.deviation
            + Self::ALPHA * error * error / estimate.max(1.0))
        .clamp(0.4, 2.5);
        self.estimate = Some(estimate * 1000.0);
    }

    fn spread_bps(&self, estimate_bps: f64) -> f64 {
        3.0 * (self.deviation * estimate_bps / 1000.0).sqrt() * 1000.0
    }

    fn upper_bound(&self) -> f64 {
        self.estimate
            .map_or(f64::INFINITY, |e| e + self.spread_bps(e))
    }

    fn lower_bound(&self) -> f64 {
        self.estimate
            .map_or(0.0, |e| (e - self.spread_bps(e)).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_sending_only_audio_may_climb_to_the_floor_where_video_is_tried_again() {
        let start = Instant::now();
        let mut aimd = Aimd::new(60_000.0, 40_000.0, 6_000_000.0);
        for tenth in 1..=300u64 {
            let now = start + Duration::from_millis(100 * tenth);
            aimd.update(now, Usage::Normal, Some(56_000.0));
        }
        assert_eq!(aimd.bitrate, ACKED_LIMIT_FLOOR_BPS);
    }

    #[test]
    fn the_capacity_found_at_overuse_turns_the_increase_additive() {
        let start = Instant::now();
        let mut aimd = Aimd::new(500_000.0, 40_000.0, 6_000_000.0);
        aimd.rtt = Duration::from_millis(100);
        aimd.update(start, Usage::Over, Some(500_000.0));
        assert_eq!(aimd.bitrate, 425_000.0);
        aimd.update(
            start + Duration::from_millis(100),
            Usage::Normal,
            Some(425_000.0),
        );
        aimd.update(
            start + Duration::from_secs(1),
            Usage::Normal,
            Some(425_000.0),
        );
        // About one packet (1770 of a 425 kbit/s 30 fps frame, so two of 885 bytes)
        // per 200 ms: ~35 kbit/s a second, not 8 %.
        let grown = aimd.bitrate - 425_000.0;
        assert!((25_000.0..40_000.0).contains(&grown), "{grown}");
    }
}
