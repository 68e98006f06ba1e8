//! The ringtone of an incoming call, synthesised and played through the same speakers
//! path as a call's audio ([`crate::audio::Speakers`]), so that it rings while the
//! window is hidden (a hidden webview's audio is throttled) and a test can observe it on
//! ALSA's null device through [`Ringtone::take_played`].
//!
//! The pattern is a double ring: 400 Hz + 450 Hz together, on 0.4 s, off 0.2 s, on 0.4 s,
//! off 2 s (3 s per cycle), with 10 ms fades so that it does not click. [`sample`] is the
//! pattern as a pure function of the sample index; the player only paces it out.

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::audio::Speakers;
use crate::census;
use crate::codec::{AUDIO_FRAME, AUDIO_RATE};
use crate::config::AudioOutput;
use crate::error::MediaError;

/// The two tones, in Hz.
pub const TONES: [f32; 2] = [400.0, 450.0];
/// One cycle of the pattern, in samples at 48 kHz (3 s).
pub const CYCLE: u64 = 3 * AUDIO_RATE as u64;
/// Peak of each tone (two together stay below a third of full scale).
const AMPLITUDE: f32 = 0.15 * 32767.0;
/// Fade in and out at each burst's edges (10 ms).
const FADE: u64 = AUDIO_RATE as u64 / 100;
/// The bursts within a cycle, as [start, end) in samples.
const BURSTS: [(u64, u64); 2] = [
    (0, AUDIO_RATE as u64 * 4 / 10),
    (AUDIO_RATE as u64 * 6 / 10, AUDIO_RATE as u64),
];
/// How far ahead of the wall clock the player keeps the speakers' queue (the queue drops
/// what is more than 200 ms ahead; less than a frame ahead risks gaps).
const LEAD: Duration = Duration::from_millis(60);
/// The player wakes this often to top the queue up (one frame).
const TICK: Duration = Duration::from_millis(20);
/// The ringtone's queue in the speakers' mixer.
const SOURCE: &str = "ringtone";

/// Sample `n` (48 kHz mono) of the pattern.
pub fn sample(n: u64) -> i16 {
    let t = n % CYCLE;
    let Some(&(start, end)) = BURSTS.iter().find(|(s, e)| (*s..*e).contains(&t)) else {
        return 0;
    };
    let edge = (t - start).min(end - 1 - t);
    let gain = (edge as f32 / FADE as f32).min(1.0);
    let secs = n as f32 / AUDIO_RATE as f32;
    let v: f32 = TONES
        .iter()
        .map(|f| (2.0 * std::f32::consts::PI * f * (secs % 1.0)).sin())
        .sum();
    (v * AMPLITUDE * gain) as i16
}

/// The 20 ms frame starting at sample `first`.
pub fn frame(first: u64) -> Vec<i16> {
    (first..first + AUDIO_FRAME as u64).map(sample).collect()
}

/// A ringtone playing; dropping it stops it (at once: its queued audio is discarded)
/// and joins its thread.
pub struct Ringtone {
    speakers: Arc<Speakers>,
    stop: Option<std_mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ringtone {
    /// Starts ringing on `output`: `Ok(None)` for [`AudioOutput::None`] (the person chose
    /// no playback), an error when the speakers cannot be opened.
    pub fn start(output: &AudioOutput) -> Result<Option<Ringtone>, MediaError> {
        let id = match output {
            AudioOutput::None => return Ok(None),
            AudioOutput::Device(id) => id.as_deref(),
        };
        let speakers = Arc::new(Speakers::open(id)?);
        let (stop_tx, stop_rx) = std_mpsc::channel::<()>();
        let feeding = speakers.clone();
        let thread = census::thread("tincan-ringtone", move || feed(&feeding, &stop_rx));
        Ok(Some(Ringtone {
            speakers,
            stop: Some(stop_tx),
            thread: Some(thread),
        }))
    }

    /// What the speakers mixed since the last call (48 kHz mono, whole 20 ms frames): a
    /// capture of the output, as [`Speakers::take_played`].
    pub fn take_played(&self) -> Vec<i16> {
        self.speakers.take_played()
    }
}

impl Drop for Ringtone {
    fn drop(&mut self) {
        self.stop = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.speakers.remove(SOURCE);
    }
}

/// Keeps the speakers' queue [`LEAD`] ahead of the wall clock until told to stop (or the
/// owner is gone).
fn feed(speakers: &Speakers, stop: &std_mpsc::Receiver<()>) {
    let started = Instant::now();
    let mut next: u64 = 0;
    loop {
        let due = started.elapsed() + LEAD;
        let due = (due.as_micros() as u64).saturating_mul(AUDIO_RATE as u64) / 1_000_000;
        while next < due {
            speakers.play(SOURCE, &frame(next));
            next += AUDIO_FRAME as u64;
        }
        match stop.recv_timeout(TICK) {
            Err(std_mpsc::RecvTimeoutError::Timeout) => continue,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_rings_twice_then_pauses() {
        let rate = AUDIO_RATE as u64;
        let loud = |from: u64, to: u64| (from..to).map(|n| sample(n).unsigned_abs()).max();
        // The middle of each burst is loud, the gaps silent.
        assert!(loud(rate / 10, rate * 3 / 10).unwrap() > 5_000);
        assert_eq!(loud(rate * 4 / 10, rate * 6 / 10), Some(0));
        assert!(loud(rate * 7 / 10, rate * 9 / 10).unwrap() > 5_000);
        assert_eq!(loud(rate, CYCLE), Some(0));
        // The next cycle repeats the first.
        assert!(loud(CYCLE + rate / 10, CYCLE + rate * 3 / 10).unwrap() > 5_000);
        // Fades: the first sample of a burst is silent, its peak stays below clipping.
        assert_eq!(sample(0), 0);
        assert!(loud(0, CYCLE).unwrap() < i16::MAX as u16 / 2);
    }

    #[test]
    fn no_playback_chosen_means_no_ringtone() {
        assert!(Ringtone::start(&AudioOutput::None).unwrap().is_none());
    }
}
