//! The acknowledged rate: what the far end reports arriving, measured on its own clock.
//!
//! rtc-interceptor's `RateCalculator` (what this replaced) adds a report's bytes at the
//! instant the report reaches us and divides by the span since its oldest sample in a
//! 500 ms window. Reports come every ~100 ms, so the window holds five reports' bytes
//! over four intervals: a steady 500 kbit/s read as ~600 kbit/s, and every cut meant to
//! go under what the path carries (the delay half's 0.85 × acknowledged, the loss half's
//! floor) landed above it, so the cap's queue never drained (docs/network-lab.md, case
//! (e)). Measured on the far end's arrival times, the rate is what crossed the path,
//! however the reports are batched. libwebrtc's `AcknowledgedBitrateEstimator` also
//! uses arrival times.
//!
//! Pure: arrivals in, a rate out.

use std::collections::VecDeque;
use std::time::Duration;

/// How much arrival time the rate is measured over. Short, because a cut after a sudden
/// cap is taken from this rate: over 500 ms, half a second of the rate before the cap
/// took two cuts and 300 ms more to work through in the simulation, and the network
/// lab's case (e) froze 1.8-3.6 s after its cap; over 250 ms, 1.1-1.8 s. At 500 kbit/s
/// it still spans some 13 full-size packets.
pub const WINDOW: Duration = Duration::from_millis(250);

/// Packets that arrived in the last [`WINDOW`] of the far end's clock.
#[derive(Debug, Clone, Default)]
pub struct Acknowledged {
    /// (arrival on the far end's clock, bytes), oldest first.
    arrivals: VecDeque<(Duration, usize)>,
    bytes: usize,
    newest: Duration,
}

impl Acknowledged {
    /// One packet the far end reported arriving at `arrival`, `size` bytes.
    pub fn add(&mut self, arrival: Duration, size: usize) {
        self.newest = self.newest.max(arrival);
        self.arrivals.push_back((arrival, size));
        self.bytes += size;
        let cutoff = self.newest.saturating_sub(WINDOW);
        while let Some(&(at, size)) = self.arrivals.front() {
            if at >= cutoff {
                break;
            }
            self.arrivals.pop_front();
            self.bytes -= size;
        }
    }

    /// Bit/s over the packets in the window: the bytes after the first one, over the
    /// time from the first arrival to the newest. `None` until two packets are apart.
    pub fn rate_bps(&self) -> Option<f64> {
        let &(first, first_size) = self.arrivals.front()?;
        let span = self.newest.checked_sub(first)?;
        if span.is_zero() {
            return None;
        }
        Some(((self.bytes - first_size) * 8) as f64 / span.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_stream_reads_its_rate_however_the_reports_batch_it() {
        let mut acked = Acknowledged::default();
        // 1200-byte packets every 19.2 ms: 500 kbit/s, for two seconds.
        for i in 0..104u64 {
            acked.add(Duration::from_micros(i * 19_200), 1200);
        }
        let rate = acked.rate_bps().expect("a rate");
        assert!((rate - 500_000.0).abs() < 1_000.0, "{rate}");
    }

    #[test]
    fn one_packet_or_one_instant_says_nothing() {
        let mut acked = Acknowledged::default();
        assert_eq!(acked.rate_bps(), None);
        acked.add(Duration::from_millis(5), 1200);
        acked.add(Duration::from_millis(5), 1200);
        assert_eq!(acked.rate_bps(), None);
    }

    #[test]
    fn the_rate_follows_a_change_within_the_window() {
        let mut acked = Acknowledged::default();
        for i in 0..100u64 {
            acked.add(Duration::from_micros(i * 9_600), 1200); // 1 Mbit/s
        }
        let start = Duration::from_micros(100 * 9_600);
        for i in 0..60u64 {
            acked.add(start + Duration::from_micros(i * 19_200), 1200); // 500 kbit/s
        }
        let rate = acked.rate_bps().expect("a rate");
        assert!((rate - 500_000.0).abs() < 20_000.0, "{rate}");
    }
}
