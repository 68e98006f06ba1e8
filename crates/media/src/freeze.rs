//! Pictures and freezes of one participant's video, as people see them — without IO.
//!
//! The decoder thread reports each picture it shows ([`Pictures::shown`]); once a second
//! the session takes the count ([`Pictures::take_second`]) for the quality figures. A
//! freeze is WebRTC's (the `freezeCount` of its statistics): a gap between two pictures
//! longer than three times the average interval or the average plus 150 ms, whichever is
//! longer. The average is a moving one, so a stream that is slow all along (a still
//! screen at a few pictures a second) is not a string of freezes, and the count and the
//! frozen time only grow for the length of the call, like the browser's.

use std::time::{Duration, Instant};

/// Pictures over which the average interval settles (the weight of the newest).
const AVERAGE_WEIGHT: f64 = 1.0 / 30.0;
/// A freeze is longer than both of these, relative to the average interval.
const FREEZE_FACTOR: f64 = 3.0;
const FREEZE_EXTRA: Duration = Duration::from_millis(150);

/// The freezes so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Freezes {
    pub count: u32,
    pub frozen: Duration,
}

#[derive(Debug, Default)]
pub struct Pictures {
    in_second: u32,
    last: Option<Instant>,
    /// Moving average of the interval between pictures, seconds; `None` until two came.
    average: Option<f64>,
    freezes: Freezes,
}

impl Pictures {
    /// A picture was shown at `at`.
    pub fn shown(&mut self, at: Instant) {
        self.in_second += 1;
        if let Some(last) = self.last.replace(at) {
            let gap = at.saturating_duration_since(last).as_secs_f64();
            if let Some(average) = self.average {
                let limit = (average * FREEZE_FACTOR).max(average + FREEZE_EXTRA.as_secs_f64());
                if gap > limit {
                    self.freezes.count += 1;
                    self.freezes.frozen += Duration::from_secs_f64(gap);
                }
            }
            // A freeze's gap is not folded into the average: it would raise the bar for
            // the next one.
            let folded = match self.average {
                Some(average) if gap > average * FREEZE_FACTOR => average,
                Some(average) => average + AVERAGE_WEIGHT * (gap - average),
                None => gap,
            };
            self.average = Some(folded);
        }
    }

    /// Pictures shown since the last call, and the freezes so far.
    pub fn take_second(&mut self) -> (u32, Freezes) {
        (std::mem::take(&mut self.in_second), self.freezes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_steady_stream_has_no_freezes_and_counts_its_pictures() {
        let (t0, mut p) = (Instant::now(), Pictures::default());
        for i in 0..30 {
            p.shown(at(t0, i * 33));
        }
        assert_eq!(p.take_second(), (30, Freezes::default()));
        assert_eq!(p.take_second().0, 0, "the count starts again");
    }

    #[test]
    fn a_gap_past_the_rule_is_one_freeze_of_its_length() {
        let (t0, mut p) = (Instant::now(), Pictures::default());
        for i in 0..30 {
            p.shown(at(t0, i * 33));
        }
        // 33 ms pictures: the limit is max(99 ms, 183 ms) = 183 ms.
        p.shown(at(t0, 29 * 33 + 180));
        assert_eq!(p.take_second().1.count, 0, "180 ms is not yet a freeze");
        p.shown(at(t0, 29 * 33 + 180 + 700));
        let (_, freezes) = p.take_second();
        assert_eq!(freezes.count, 1);
        assert_eq!(freezes.frozen, Duration::from_millis(700));
    }

    #[test]
    fn a_slow_stream_is_not_a_string_of_freezes() {
        let (t0, mut p) = (Instant::now(), Pictures::default());
        // A still screen: a picture every 500 ms.
        for i in 0..20 {
            p.shown(at(t0, i * 500));
        }
        assert_eq!(p.take_second().1, Freezes::default());
    }
}
