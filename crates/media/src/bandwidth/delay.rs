//! The delay-based half of the estimate, as libwebrtc's `DelayBasedBwe` does it: packet
//! groups, a trendline over their delay, an overuse detector with an adaptive threshold,
//! and an AIMD rate controller held to what the far end acknowledges.
//!
//! Why not rtc-interceptor's delay half (its Kalman slope estimator, overuse detector and
//! rate controller, what this replaced): behind the network lab's 500 kbit/s cap its
//! detector said `Normal` in every sampled report while the cap's queue filled and
//! emptied, and its rate climbed to our 6 Mbit/s ceiling while 500 kbit/s arrived
//! (docs/network-lab.md, case (e)); in a simulation with a deep buffer it filled two
//! seconds of queue. Three differences make libwebrtc's see that queue: the trend is the
//! slope of a line through the last [`WINDOW`] smoothed delays (not a per-group Kalman
//! estimate that trusts each group little), it is scaled by the number of groups seen
//! (up to [`MAX_DELTAS`]) and [`THRESHOLD_GAIN`] before the threshold, and the rate may
//! never climb above 1.5 times the acknowledged rate ([`Aimd`]).
//!
//! Pure: packet timings and instants in, a bound out. Constants and their names follow
//! libwebrtc (`trendline_estimator.cc`, `inter_arrival_delta.cc`; the rate controller's,
//! in [`super::aimd`], `aimd_rate_control.cc` and `link_capacity_estimator.cc`) so they
//! can be compared.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::aimd::Aimd;

/// Packets sent within this of a group's first are one group (a frame's burst).
pub const GROUP_LENGTH: Duration = Duration::from_millis(5);
/// A packet arriving within this of the last one, and sooner than its sending spacing
/// would say, was queued behind it: same group (libwebrtc's `kBurstDeltaThreshold`).
const BURST_DELTA: Duration = Duration::from_millis(5);
/// A burst is never longer than this.
const MAX_BURST: Duration = Duration::from_millis(100);
/// Groups whose arrivals go backwards this many times in a row reset the grouping.
const REORDERED_RESET: u32 = 3;
/// No packet for this long: the old delays say nothing about the path now.
const STREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// Delays the trend line is fitted through.
pub const WINDOW: usize = 20;
/// Weight of the history in the smoothed accumulated delay.
const SMOOTHING: f64 = 0.9;
/// The trend is multiplied by this and by the groups seen before the threshold.
pub const THRESHOLD_GAIN: f64 = 4.0;
/// …counting at most this many groups.
pub const MAX_DELTAS: u32 = 60;
/// Overuse must last this long (in send time) and two groups before it counts, ms.
const OVERUSING_TIME_MS: f64 = 10.0;
/// The adaptive threshold: its start, range, and how fast it follows the trend up
/// and down (per ms).
const THRESHOLD_START: f64 = 12.5;
const THRESHOLD_MIN: f64 = 6.0;
const THRESHOLD_MAX: f64 = 600.0;
const K_UP: f64 = 0.0087;
const K_DOWN: f64 = 0.039;
/// A trend this far over the threshold is an outlier the threshold does not follow.
const MAX_ADAPT_OFFSET: f64 = 15.0;

/// What the detector concludes about the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Usage {
    #[default]
    Normal,
    /// A queue is building: we send more than the path carries.
    Over,
    /// A queue is draining.
    Under,
}

/// The delay-based bound and what it is decided from.
#[derive(Debug, Clone)]
pub struct DelayBased {
    groups: Groups,
    trend: Trendline,
    rate: Aimd,
    last_packet: Option<Instant>,
}

impl DelayBased {
    pub fn new(initial_bps: f64, min_bps: f64, max_bps: f64) -> DelayBased {
        DelayBased {
            groups: Groups::default(),
            trend: Trendline::default(),
            rate: Aimd::new(initial_bps, min_bps, max_bps),
            last_packet: None,
        }
    }

    /// One packet the far end reported arriving: when we sent it, when it arrived (on the
    /// far end's clock) and its size. Feed a report's packets in order of arrival.
    pub fn on_packet(&mut self, now: Instant, departure: Instant, arrival: Duration) {
        if self
            .last_packet
            .is_some_and(|last| now.saturating_duration_since(last) > STREAM_TIMEOUT)
        {
            self.groups = Groups::default();
            self.trend = Trendline::default();
        }
        self.last_packet = Some(now);
        if let Some(delta) = self.groups.on_packet(departure, arrival) {
            self.trend.on_delta(delta);
        }
    }

    /// After a report's packets: the detector's verdict acted on. `acked_bps` is what the
    /// far end reported arriving lately, `rtt` the round trip.
    pub fn update(&mut self, now: Instant, acked_bps: Option<f64>, rtt: Duration) -> f64 {
        self.rate.rtt = rtt;
        let usage = self.trend.usage;
        // An overuse is acted on once per round trip (a cut takes that long to show), or
        // at once if what arrives fell under half the estimate.
        if usage == Usage::Over {
            if let Some(acked) = acked_bps {
                if self.rate.time_to_reduce_further(now, acked) {
                    self.rate.update(now, usage, Some(acked));
                }
            }
        } else {
            self.rate.update(now, usage, acked_bps);
        }
        self.rate.bitrate
    }

    pub fn usage(&self) -> Usage {
        self.trend.usage
    }

    pub fn bound(&self) -> f64 {
        self.rate.bitrate
    }
}

/// The spacing of two consecutive packet groups, as sent and as arrived.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Delta {
    send_ms: f64,
    arrival_ms: f64,
    /// When the later group completed, on the far end's clock, ms.
    at_ms: f64,
}

#[derive(Debug, Clone, Copy)]
struct Group {
    first_departure: Instant,
    /// The latest departure in the group.
    departure: Instant,
    first_arrival: Duration,
    /// The latest arrival in the group (its completion).
    arrival: Duration,
}

/// Packets grouped into the bursts they were sent in (libwebrtc's `InterArrivalDelta`).
#[derive(Debug, Clone, Default)]
struct Groups {
    current: Option<Group>,
    previous: Option<Group>,
    reordered: u32,
}

impl Groups {
    fn on_packet(&mut self, departure: Instant, arrival: Duration) -> Option<Delta> {
        let Some(current) = self.current.as_mut() else {
            self.current = Some(Group::starting(departure, arrival));
            return None;
        };
        if departure < current.first_departure {
            return None; // sent before this group: reordered on the way
        }
        if current.takes(departure, arrival) {
            current.departure = current.departure.max(departure);
            current.arrival = arrival;
            return None;
        }
        let closed = *current;
        *current = Group::starting(departure, arrival);
        let previous = self.previous.replace(closed)?;
        if closed.arrival < previous.arrival {
            self.reordered += 1;
            if self.reordered >= REORDERED_RESET {
                *self = Groups::default();
            }
            return None;
        }
        self.reordered = 0;
        Some(Delta {
            send_ms: ms(closed.departure - previous.departure),
            arrival_ms: ms(closed.arrival - previous.arrival),
            at_ms: ms(closed.arrival),
        })
    }
}

impl Group {
    fn starting(departure: Instant, arrival: Duration) -> Group {
        Group {
            first_departure: departure,
            departure,
            first_arrival: arrival,
            arrival,
        }
    }

    /// Whether a packet belongs to this group: sent with it, or queued behind it.
    fn takes(&self, departure: Instant, arrival: Duration) -> bool {
        let send_delta = departure.saturating_duration_since(self.departure);
        if send_delta.is_zero() {
            return true;
        }
        let arrival_delta = arrival.saturating_sub(self.arrival);
        let burst = arrival_delta < send_delta
            && arrival_delta <= BURST_DELTA
            && arrival.saturating_sub(self.first_arrival) < MAX_BURST;
        burst || departure.saturating_duration_since(self.first_departure) <= GROUP_LENGTH
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The trend of the queueing delay and the detector reading it (libwebrtc's
/// `TrendlineEstimator`).
#[derive(Debug, Clone)]
struct Trendline {
    deltas: u32,
    first_at_ms: Option<f64>,
    accumulated_ms: f64,
    smoothed_ms: f64,
    /// (arrival since the first, smoothed accumulated delay), ms.
    history: VecDeque<(f64, f64)>,
    trend: f64,
    threshold: f64,
    threshold_updated_ms: Option<f64>,
    /// How long the trend has been over the threshold, in send time, ms.
    over_ms: Option<f64>,
    over_count: u32,
    usage: Usage,
}

impl Default for Trendline {
    fn default() -> Trendline {
        Trendline {
            deltas: 0,
            first_at_ms: None,
            accumulated_ms: 0.0,
            smoothed_ms: 0.0,
            history: VecDeque::with_capacity(WINDOW + 1),
            trend: 0.0,
            threshold: THRESHOLD_START,
            threshold_updated_ms: None,
            over_ms: None,
            over_count: 0,
            usage: Usage::Normal,
        }
    }
}

impl Trendline {
    fn on_delta(&mut self, delta: Delta) {
        self.deltas = (self.deltas + 1).min(1000);
        let first = *self.first_at_ms.get_or_insert(delta.at_ms);
        self.accumulated_ms += delta.arrival_ms - delta.send_ms;
        self.smoothed_ms = SMOOTHING * self.smoothed_ms + (1.0 - SMOOTHING) * self.accumulated_ms;
        self.history
            .push_back((delta.at_ms - first, self.smoothed_ms));
        if self.history.len() > WINDOW {
            self.history.pop_front();
        }
        let trend = if self.history.len() == WINDOW {
            slope(&self.history).unwrap_or(self.trend)
        } else {
            self.trend
        };
        self.detect(trend, delta.send_ms, delta.at_ms);
    }

    fn detect(&mut self, trend: f64, send_ms: f64, now_ms: f64) {
        if self.deltas < 2 {
            self.usage = Usage::Normal;
            return;
        }
        let modified = f64::from(self.deltas.min(MAX_DELTAS)) * trend * THRESHOLD_GAIN;
        if modified > self.threshold {
            let over = self.over_ms.map_or(send_ms / 2.0, |t| t + send_ms);
            self.over_ms = Some(over);
            self.over_count += 1;
            if over > OVERUSING_TIME_MS && self.over_count > 1 && trend >= self.trend {
                self.over_ms = Some(0.0);
                self.over_count = 0;
                self.usage = Usage::Over;
            }
        } else {
            self.over_ms = None;
            self.over_count = 0;
            self.usage = if modified < -self.threshold {
                Usage::Under
            } else {
                Usage::Normal
            };
        }
        self.trend = trend;
        self.adapt_threshold(modified, now_ms);
    }

    /// The threshold follows the trend: slowly up (a path with jittery delay does not
    /// read as overuse forever), faster down.
    fn adapt_threshold(&mut self, modified: f64, now_ms: f64) {
        let last = *self.threshold_updated_ms.get_or_insert(now_ms);
        if modified.abs() > self.threshold + MAX_ADAPT_OFFSET {
            self.threshold_updated_ms = Some(now_ms);
            return;
        }
        let k = if modified.abs() < self.threshold {
            K_DOWN
        } else {
            K_UP
        };
        let elapsed = (now_ms - last).clamp(0.0, 100.0);
        self.threshold = (self.threshold + k * (modified.abs() - self.threshold) * elapsed)
            .clamp(THRESHOLD_MIN, THRESHOLD_MAX);
        self.threshold_updated_ms = Some(now_ms);
    }
}

/// The least-squares slope through `points`, if they are not all at one x.
fn slope(points: &VecDeque<(f64, f64)>) -> Option<f64> {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    (den != 0.0).then(|| num / den)
}

#[cfg(test)]
mod tests {
    use super::super::aimd::BETA;
    use super::*;

    /// Feeds packets sent every `gap_ms` whose one-way delay grows by `growth_ms` per
    /// packet, reporting every five packets; returns the usage after each report.
    fn run(
        delay: &mut DelayBased,
        start: Instant,
        packets: u64,
        gap_ms: u64,
        growth_ms: f64,
    ) -> Vec<Usage> {
        let mut usages = Vec::new();
        for i in 0..packets {
            let departure = start + Duration::from_millis(i * gap_ms);
            let arrival = Duration::from_secs_f64(
                (i * gap_ms) as f64 / 1000.0 + 0.02 + growth_ms * i as f64 / 1000.0,
            );
            delay.on_packet(departure, departure, arrival);
            if i % 5 == 4 {
                delay.update(departure, Some(500_000.0), Duration::from_millis(50));
                usages.push(delay.usage());
            }
        }
        usages
    }

    #[test]
    fn a_steady_path_reads_normal_and_the_rate_climbs_no_higher_than_what_arrives_allows() {
        let start = Instant::now();
        let mut delay = DelayBased::new(400_000.0, 40_000.0, 6_000_000.0);
        let usages = run(&mut delay, start, 2000, 10, 0.0);
        assert!(usages.iter().all(|u| *u == Usage::Normal), "{usages:?}");
        // 8 % a second for 20 s, but no higher than 1.5 × 500 kbit/s acknowledged
        // + 10 kbit/s.
        assert_eq!(delay.bound(), 760_000.0);
    }

    #[test]
    fn a_queue_growing_a_tenth_of_the_sending_spacing_is_overuse_and_cuts_to_beta_of_what_arrives()
    {
        let start = Instant::now();
        let mut delay = DelayBased::new(1_000_000.0, 40_000.0, 6_000_000.0);
        // 10 % over the link: each 10 ms packet waits 1 ms longer than the last.
        let usages = run(&mut delay, start, 200, 10, 1.0);
        assert!(usages.contains(&Usage::Over), "{usages:?}");
        assert!(delay.bound() <= BETA * 500_000.0 + 1.0, "{}", delay.bound());
    }

    #[test]
    fn a_draining_queue_reads_underuse_and_holds_the_rate() {
        let start = Instant::now();
        let mut delay = DelayBased::new(400_000.0, 40_000.0, 6_000_000.0);
        // A queue builds for a second (1 ms more per 10 ms packet)…
        run(&mut delay, start, 100, 10, 1.0);
        // …then drains: arrivals 8 ms apart for packets sent 10 ms apart (the last
        // packet of the first second arrived at 0.99 + 0.02 + 0.099 s).
        let mut usages = Vec::new();
        let mut at_underuse = None;
        for i in 100..150u64 {
            let departure = start + Duration::from_millis(i * 10);
            let arrival = Duration::from_secs_f64(1.109 + (i - 99) as f64 * 0.008);
            delay.on_packet(departure, departure, arrival);
            if i % 5 == 4 {
                delay.update(departure, Some(400_000.0), Duration::from_millis(50));
                usages.push(delay.usage());
                if delay.usage() == Usage::Under {
                    at_underuse.get_or_insert(delay.bound());
                }
            }
        }
        let at_underuse = at_underuse.unwrap_or_else(|| panic!("no underuse: {usages:?}"));
        assert!(!usages.contains(&Usage::Over), "{usages:?}");
        assert!(
            delay.bound() <= at_underuse,
            "{} after {at_underuse}",
            delay.bound()
        );
    }

    #[test]
    fn packets_sent_within_a_group_length_are_one_group() {
        let start = Instant::now();
        let mut groups = Groups::default();
        let at = |ms: u64| Duration::from_millis(ms);
        assert_eq!(groups.on_packet(start, at(100)), None);
        assert_eq!(groups.on_packet(start + at(3), at(104)), None);
        // A new group: the first closes, with nothing to compare it to.
        assert_eq!(groups.on_packet(start + at(20), at(121)), None);
        // The next closes the second, 17 ms after the first as sent, 17 as arrived.
        let delta = groups.on_packet(start + at(40), at(141)).expect("a delta");
        assert_eq!((delta.send_ms, delta.arrival_ms), (17.0, 17.0));
    }
}
