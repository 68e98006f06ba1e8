//! How loud each participant is, for the window's "who is speaking" highlight: the
//! decoded sound's level per packet ([`tincan_media::MediaEvent::Audio`], RMS 0–1, every
//! 20 ms) folded into one RMS figure in dBFS per participant every [`PERIOD`]. Pure: the
//! caller passes the packets' times and emits what [`Levels::add`] returns.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often a participant's level reaches the window (~4 a second: enough to follow
/// who speaks, few enough events).
pub const PERIOD: Duration = Duration::from_millis(250);
/// The floor reported for silence (a level of 0 has no logarithm).
pub const SILENCE_DBFS: f64 = -100.0;

/// One participant's sound since their last report.
struct Window {
    started: Instant,
    /// Σ level² · samples: the mean square of the window, weighted by packet length.
    energy: f64,
    samples: u64,
}

/// The running windows of every participant heard.
#[derive(Default)]
pub struct Levels {
    windows: HashMap<String, Window>,
}

impl Levels {
    /// Adds one decoded packet of `user` (`samples` long, RMS `level` in 0–1, decoded
    /// `at`). Returns their RMS level in dBFS over the last [`PERIOD`] when that period
    /// is complete, and starts the next one.
    pub fn add(&mut self, user: &str, samples: usize, level: f32, at: Instant) -> Option<f64> {
        let w = self
            .windows
            .entry(user.to_owned())
            .or_insert_with(|| Window {
                started: at,
                energy: 0.0,
                samples: 0,
            });
        let level = f64::from(level.clamp(0.0, 1.0));
        w.energy += level * level * samples as f64;
        w.samples += samples as u64;
        if at.saturating_duration_since(w.started) < PERIOD || w.samples == 0 {
            return None;
        }
        let rms = (w.energy / w.samples as f64).sqrt();
        *w = Window {
            started: at,
            energy: 0.0,
            samples: 0,
        };
        Some(dbfs(rms))
    }

    /// Forgets `user` (they left the call).
    pub fn remove(&mut self, user: &str) {
        self.windows.remove(user);
    }
}

/// RMS (0–1) in dBFS, floored at [`SILENCE_DBFS`].
pub fn dbfs(rms: f64) -> f64 {
    if rms <= 0.0 {
        return SILENCE_DBFS;
    }
    (20.0 * rms.log10()).max(SILENCE_DBFS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKET: Duration = Duration::from_millis(20);

    #[test]
    fn one_level_per_period_per_participant() {
        let mut levels = Levels::default();
        let t0 = Instant::now();
        let mut reports = Vec::new();
        for i in 0..50u32 {
            let at = t0 + PACKET * i; // 1 s of packets
            if let Some(db) = levels.add("bob", 960, 0.5, at) {
                reports.push(db);
            }
        }
        assert_eq!(reports.len(), 3, "{reports:?}"); // at 260, 520, 780 ms
        for db in reports {
            assert!((db - dbfs(0.5)).abs() < 1e-9, "{db}");
        }
    }

    #[test]
    fn the_level_is_the_rms_over_the_period_not_the_last_packet() {
        let mut levels = Levels::default();
        let t0 = Instant::now();
        // Loud for the first half of the period, silent after.
        let mut last = None;
        for i in 0..=13u32 {
            let level = if i < 7 { 1.0 } else { 0.0 };
            last = levels.add("bob", 960, level, t0 + PACKET * i).or(last);
        }
        let db = last.expect("a report after 260 ms");
        // 7 loud packets of 14: mean square 0.5 → -3 dB.
        assert!((db - dbfs(0.5f64.sqrt())).abs() < 0.01, "{db}");
    }

    #[test]
    fn silence_is_the_floor_and_people_are_apart() {
        let mut levels = Levels::default();
        let t0 = Instant::now();
        assert_eq!(levels.add("bob", 960, 0.0, t0), None);
        assert_eq!(levels.add("carol", 960, 0.9, t0), None);
        assert_eq!(levels.add("bob", 960, 0.0, t0 + PERIOD), Some(SILENCE_DBFS));
        let carol = levels.add("carol", 960, 0.9, t0 + PERIOD).unwrap();
        assert!(carol > -1.0, "{carol}");
        levels.remove("bob");
        assert_eq!(levels.add("bob", 960, 0.5, t0 + PERIOD * 2), None);
    }
}
