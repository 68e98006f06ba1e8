//! Reconnect delays: exponential backoff with "equal jitter". No IO, no clock; the
//! caller supplies the randomness so that tests are deterministic.

use std::time::Duration;

/// Exponential backoff: the base delay doubles from `initial` up to `max`; each delay
/// is half the base plus a random share of the other half. Jitter spreads the
/// reconnects of many clients after a server restart; keeping half of the base
/// guarantees the delay still grows.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `initial` and never exceeding `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// How many delays have been handed out since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The delay before the next attempt. `jitter` is a random number in `[0, 1]`
    /// (values outside are clamped).
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let base = self.base(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let half = base / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// Starts over from `initial` (after a connection succeeded).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    fn base(&self, attempt: u32) -> Duration {
        // 2^20 × anything sensible is far beyond `max`; stop doubling there.
        let factor = 1u32 << attempt.min(20);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// A random number in `[0, 1)` for [`Backoff::next_delay`], from the OS-seeded
/// generator behind UUID v4 (already a dependency; reconnect jitter needs no more).
pub(crate) fn random_jitter() -> f64 {
    let (hi, _) = uuid::Uuid::new_v4().as_u64_pair();
    (hi >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn delays_double_up_to_the_cap() {
        let mut b = Backoff::new(100 * MS, 5000 * MS);
        let full: Vec<_> = (0..10).map(|_| b.next_delay(1.0)).collect();
        assert_eq!(
            full,
            [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000].map(|n| n * MS)
        );
        assert_eq!(b.attempt(), 10);
    }

    #[test]
    fn jitter_keeps_at_least_half_of_the_base() {
        let mut lo = Backoff::new(100 * MS, 5000 * MS);
        let mut mid = lo.clone();
        assert_eq!(lo.next_delay(0.0), 50 * MS);
        assert_eq!(lo.next_delay(0.0), 100 * MS);
        assert_eq!(mid.next_delay(0.5), 75 * MS);
        assert_eq!(mid.next_delay(-3.0), 100 * MS, "clamped to 0");
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(100 * MS, 5000 * MS);
        for _ in 0..5 {
            b.next_delay(1.0);
        }
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_delay(1.0), 100 * MS);
    }

    #[test]
    fn many_attempts_do_not_overflow() {
        let mut b = Backoff::new(100 * MS, 5000 * MS);
        for _ in 0..100 {
            assert!(b.next_delay(1.0) <= 5000 * MS);
        }
    }

    #[test]
    fn a_cap_below_initial_is_raised_to_initial() {
        let mut b = Backoff::new(300 * MS, 100 * MS);
        assert_eq!(b.next_delay(1.0), 300 * MS);
        assert_eq!(b.next_delay(1.0), 300 * MS);
    }

    #[test]
    fn random_jitter_is_in_the_unit_interval() {
        for _ in 0..100 {
            let j = random_jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }
}
