//! Audio processing between the sound devices and Opus: echo cancellation, noise
//! suppression and automatic gain control, through `sonora` (a pure-Rust port of WebRTC's
//! audio processing: AEC3, NS, AGC2). The only module that imports it.
//!
//! Pure: no devices, no clocks, no threads. The session's task hands it what the speakers
//! played ([`AudioProcessor::analyze_render`], the far-end reference the echo canceller
//! subtracts) and each microphone frame before it is encoded
//! ([`AudioProcessor::process_capture`]), plus a hint of how far the microphone lags the
//! speakers ([`AudioProcessor::set_delay_ms`]). Everything is 48 kHz mono 16-bit PCM; the
//! processor works 10 ms at a time, so a 20 ms frame is two steps.

use serde::{Deserialize, Serialize};
use sonora::config::{
    AdaptiveDigital, EchoCanceller, GainController2, HighPassFilter, NoiseSuppression,
};
use sonora::{Config, StreamConfig};

use crate::codec::AUDIO_RATE;

/// Samples in one processing step (10 ms at 48 kHz).
pub const STEP: usize = AUDIO_RATE as usize / 100;

/// The delay hint when the devices say nothing about their latency: typical of a
/// desktop sound server (a few periods on each side). AEC3 finds the real delay itself;
/// the hint only gives its search a starting point.
pub const DEFAULT_DELAY_MS: u32 = 60;

/// Which processing a call's microphone gets. Both on by default; off for music, or
/// echo cancellation off with a headset (no acoustic path from the speakers).
///
/// Automatic gain control goes with noise suppression: both are tuned for speech (AGC
/// would pump music, as noise suppression would smear it), and a person who turns "noise
/// suppression" off for music expects the signal untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AudioProcessing {
    pub echo_cancellation: bool,
    pub noise_suppression: bool,
}

impl Default for AudioProcessing {
    fn default() -> Self {
        AudioProcessing {
            echo_cancellation: true,
            noise_suppression: true,
        }
    }
}

impl AudioProcessing {
    /// Nothing: the microphone goes to Opus as it is.
    pub const OFF: AudioProcessing = AudioProcessing {
        echo_cancellation: false,
        noise_suppression: false,
    };

    /// Whether any processing is on.
    pub fn any(&self) -> bool {
        self.echo_cancellation || self.noise_suppression
    }

    /// The DSP's configuration for these settings.
    fn config(&self) -> Config {
        Config {
            // Hum and handling noise below ~80 Hz carry no speech; AEC3 wants it gone.
            high_pass_filter: self.any().then(HighPassFilter::default),
            echo_canceller: self.echo_cancellation.then(EchoCanceller::default),
            noise_suppression: self.noise_suppression.then(NoiseSuppression::default),
            gain_controller2: self.noise_suppression.then(|| GainController2 {
                adaptive_digital: Some(AdaptiveDigital::default()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// One microphone's processing: feed it what is played, run each captured frame through it.
pub struct AudioProcessor {
    apm: sonora::AudioProcessing,
    settings: AudioProcessing,
    delay_ms: u32,
    /// Input of the current step (the DSP reads one buffer and writes another).
    scratch: Vec<i16>,
}

impl AudioProcessor {
    pub fn new(settings: AudioProcessing) -> AudioProcessor {
        let stream = StreamConfig::new(AUDIO_RATE, 1);
        let apm = sonora::AudioProcessing::builder()
            .config(settings.config())
            .capture_config(stream)
            .render_config(stream)
            .build();
        AudioProcessor {
            apm,
            settings,
            delay_ms: DEFAULT_DELAY_MS,
            scratch: vec![0; STEP],
        }
    }

    pub fn settings(&self) -> AudioProcessing {
        self.settings
    }

    /// Turns processing on or off at once (from the next frame). The echo canceller
    /// starts learning afresh when it is turned back on (about a second).
    pub fn set(&mut self, settings: AudioProcessing) {
        if settings != self.settings {
            self.settings = settings;
            self.apm.apply_config(settings.config());
        }
    }

    /// How long after a render frame is analysed its sound reaches the microphone's
    /// output to [`AudioProcessor::process_capture`] (device buffers on both sides and
    /// the queues between). Clamped to 0..=500 ms.
    pub fn set_delay_ms(&mut self, ms: u32) {
        self.delay_ms = ms.min(500);
    }

    pub fn delay_ms(&self) -> u32 {
        self.delay_ms
    }

    /// What the speakers play (all participants mixed), as the echo canceller's
    /// reference. Any length; whole 10 ms steps are used (a trailing part shorter than
    /// a step is ignored).
    pub fn analyze_render(&mut self, pcm: &[i16]) {
        if !self.settings.echo_cancellation {
            return;
        }
        for step in pcm.chunks_exact(STEP) {
            self.scratch.copy_from_slice(step);
            let mut out = [0i16; STEP];
            if let Err(e) = self.apm.process_render_i16(&self.scratch, &mut out) {
                tracing::debug!(error = ?e, "render frame not analysed");
            }
        }
    }

    /// Processes one microphone frame in place. Any length; whole 10 ms steps are
    /// processed (a trailing part shorter than a step passes unchanged). With every
    /// setting off the frame is left untouched.
    pub fn process_capture(&mut self, pcm: &mut [i16]) {
        if !self.settings.any() {
            return;
        }
        for step in pcm.chunks_exact_mut(STEP) {
            // Required before every capture step while echo cancellation is on.
            let _ = self.apm.set_stream_delay_ms(self.delay_ms as i32);
            self.scratch.copy_from_slice(step);
            if let Err(e) = self.apm.process_capture_i16(&self.scratch, step) {
                tracing::debug!(error = ?e, "capture frame not processed");
                step.copy_from_slice(&self.scratch);
            }
        }
    }

    /// The echo canceller's own estimate of the delay it found, in ms, once it has one.
    pub fn estimated_delay_ms(&self) -> Option<i32> {
        self.apm.statistics().delay_ms
    }
}

impl std::fmt::Debug for AudioProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioProcessor")
            .field("settings", &self.settings)
            .field("delay_ms", &self.delay_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(len: usize, hz: f32, amplitude: f32) -> Vec<i16> {
        (0..len)
            .map(|i| {
                let t = i as f32 / AUDIO_RATE as f32;
                (amplitude * (2.0 * std::f32::consts::PI * hz * t).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn processing_off_leaves_the_microphone_untouched() {
        let mut p = AudioProcessor::new(AudioProcessing::OFF);
        let input = tone(960, 440.0, 8000.0);
        let mut frame = input.clone();
        p.analyze_render(&input);
        p.process_capture(&mut frame);
        assert_eq!(frame, input);
    }

    #[test]
    fn processing_on_changes_the_microphone_and_can_be_turned_off_at_once() {
        let mut p = AudioProcessor::new(AudioProcessing::default());
        let input = tone(960, 440.0, 8000.0);
        let mut changed = false;
        for _ in 0..50 {
            let mut frame = input.clone();
            p.analyze_render(&[0; 960]);
            p.process_capture(&mut frame);
            changed |= frame != input;
        }
        assert!(changed, "high-pass, noise suppression and gain control act");
        p.set(AudioProcessing::OFF);
        assert_eq!(p.settings(), AudioProcessing::OFF);
        let mut frame = input.clone();
        p.process_capture(&mut frame);
        assert_eq!(frame, input, "off takes effect on the next frame");
    }

    #[test]
    fn odd_lengths_are_harmless() {
        let mut p = AudioProcessor::new(AudioProcessing::default());
        p.analyze_render(&[100; 123]);
        p.analyze_render(&[]);
        let mut short = vec![500i16; 123];
        p.process_capture(&mut short);
        assert_eq!(short, vec![500; 123], "shorter than a step: unchanged");
        let mut long = vec![500i16; STEP + 7];
        p.process_capture(&mut long);
        assert_eq!(&long[STEP..], &[500; 7]);
        p.set_delay_ms(10_000);
        assert_eq!(p.delay_ms(), 500);
    }

    #[test]
    fn settings_travel_as_camel_case_json() {
        let s = serde_json::to_string(&AudioProcessing::default()).unwrap();
        assert_eq!(s, r#"{"echoCancellation":true,"noiseSuppression":true}"#);
    }
}
