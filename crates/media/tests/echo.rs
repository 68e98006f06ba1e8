//! Audio processing on a synthetic echo path, without hardware.
//!
//! The far end's speech (synthetic: a glottal pulse train through formant filters, in
//! syllables, with fricative noise) is played to a virtual speaker; what the speaker plays
//! reaches the virtual microphone 120 ms later through a small room (a direct path at
//! −10 dB and decaying reflections), mixed with the near end's speech (another voice:
//! higher pitch, other vowels, its own rhythm) and a faint noise floor. The processor gets
//! the played signal as its reference, as the session's task does, and the microphone
//! frame by frame.
//!
//! Figures (see docs/benchmarks.md) are printed with `--nocapture`.

use tincan_media::processing::{AudioProcessing, AudioProcessor, STEP};

const RATE: usize = 48_000;
const FRAME: usize = 960;

/// A small deterministic generator (xorshift), so every run hears the same signals.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// A two-pole resonator: one formant.
struct Resonator {
    y1: f32,
    y2: f32,
}

impl Resonator {
    fn run(&mut self, x: f32, freq: f32, bandwidth: f32) -> f32 {
        let r = (-std::f32::consts::PI * bandwidth / RATE as f32).exp();
        let theta = 2.0 * std::f32::consts::PI * freq / RATE as f32;
        let (a1, a2) = (2.0 * r * theta.cos(), -r * r);
        let gain = 1.0 - r;
        let y = gain * x + a1 * self.y1 + a2 * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// A voice: pitch, vowels (F1, F2, F3), syllable rhythm.
struct Voice {
    pitch: f32,
    vowels: &'static [(f32, f32, f32)],
    syllable_s: f32,
    pause_every: usize,
    seed: u64,
}

const LOW_VOICE: Voice = Voice {
    pitch: 110.0,
    vowels: &[
        (730.0, 1090.0, 2440.0),
        (270.0, 2290.0, 3010.0),
        (530.0, 1840.0, 2480.0),
        (300.0, 870.0, 2240.0),
        (570.0, 840.0, 2410.0),
    ],
    syllable_s: 0.22,
    pause_every: 5,
    seed: 0x1234_5678,
};

const HIGH_VOICE: Voice = Voice {
    pitch: 215.0,
    vowels: &[
        (850.0, 1220.0, 2810.0),
        (310.0, 2790.0, 3310.0),
        (610.0, 2330.0, 2990.0),
        (370.0, 950.0, 2670.0),
    ],
    syllable_s: 0.18,
    pause_every: 4,
    seed: 0x9abc_def0,
};

impl Voice {
    /// `seconds` of speech at 48 kHz, peaking near `peak` (full scale 1.0): syllables
    /// with raised-cosine envelopes, a pause every few syllables, pitch drifting.
    fn speak(&self, seconds: f32) -> Vec<f32> {
        let n = (seconds * RATE as f32) as usize;
        let mut rng = Rng(self.seed);
        let mut out = Vec::with_capacity(n);
        let mut formants = [
            Resonator { y1: 0.0, y2: 0.0 },
            Resonator { y1: 0.0, y2: 0.0 },
            Resonator { y1: 0.0, y2: 0.0 },
        ];
        let syllable = (self.syllable_s * RATE as f32) as usize;
        let mut phase = 0.0f32;
        for i in 0..n {
            let index = i / syllable;
            let within = (i % syllable) as f32 / syllable as f32;
            let silent = index % self.pause_every == self.pause_every - 1;
            let envelope = if silent {
                0.0
            } else {
                (std::f32::consts::PI * within).sin().powf(0.7)
            };
            let vowel = self.vowels[(index * 7 + index / 3) % self.vowels.len()];
            // Intonation: a slow drift and a fall within each syllable.
            let t = i as f32 / RATE as f32;
            let f0 = self.pitch * (1.0 + 0.08 * (t * 1.3).sin() - 0.05 * within);
            phase += f0 / RATE as f32;
            // A glottal pulse (a skewed pulse once per period) plus a little aspiration.
            let pulse = if phase >= 1.0 {
                phase -= 1.0;
                1.0
            } else {
                0.0
            };
            let excitation = pulse * 6.0 + 0.02 * rng.next();
            let voiced = formants[0].run(excitation, vowel.0, 90.0)
                + 0.5 * formants[1].run(excitation, vowel.1, 110.0)
                + 0.25 * formants[2].run(excitation, vowel.2, 150.0);
            // A fricative at the start of some syllables: high-frequency noise.
            let fricative = if index.is_multiple_of(3) && within < 0.25 && !silent {
                0.15 * rng.next() * (1.0 - within * 4.0)
            } else {
                0.0
            };
            out.push(voiced * envelope + fricative);
        }
        out
    }
}

fn scaled(signal: &[f32], rms_dbfs: f32) -> Vec<f32> {
    let current = rms(signal);
    let target = 10f32.powf(rms_dbfs / 20.0);
    signal.iter().map(|x| x * target / current).collect()
}

fn rms(signal: &[f32]) -> f32 {
    (signal.iter().map(|x| x * x).sum::<f32>() / signal.len().max(1) as f32).sqrt()
}

fn energy(signal: &[f32]) -> f64 {
    signal.iter().map(|&x| f64::from(x) * f64::from(x)).sum()
}

fn db(ratio: f64) -> f64 {
    10.0 * ratio.log10()
}

/// The room between speaker and microphone: `delay_ms` of travel and buffering, a direct
/// path at −10 dB and a decaying tail of reflections over ~40 ms.
fn room(delay_ms: usize) -> Vec<(usize, f32)> {
    let mut rng = Rng(0x5eed);
    let delay = delay_ms * RATE / 1000;
    let mut taps = vec![(delay, 0.316)];
    for k in 1..40 {
        let at = delay + k * RATE / 1000 + (rng.next().abs() * 40.0) as usize;
        let gain = 0.12 * (-(k as f32) / 10.0).exp() * rng.next();
        taps.push((at, gain));
    }
    taps
}

fn convolve(signal: &[f32], taps: &[(usize, f32)]) -> Vec<f32> {
    let mut out = vec![0.0; signal.len()];
    for &(at, gain) in taps {
        for (i, x) in signal.iter().enumerate() {
            if i + at < out.len() {
                out[i + at] += gain * x;
            }
        }
    }
    out
}

fn to_i16(x: f32) -> i16 {
    (x * 32767.0).clamp(-32768.0, 32767.0) as i16
}

/// Runs the processor the way the session's task does: each 20 ms, the frame the speaker
/// played is analysed, then the microphone frame is processed. Returns the output.
fn run(settings: AudioProcessing, played: &[f32], microphone: &[f32]) -> Vec<f32> {
    let mut processor = AudioProcessor::new(settings);
    processor.set_delay_ms(120);
    let mut out = Vec::with_capacity(microphone.len());
    for (far, near) in played.chunks(FRAME).zip(microphone.chunks(FRAME)) {
        let far: Vec<i16> = far.iter().map(|&x| to_i16(x)).collect();
        let mut frame: Vec<i16> = near.iter().map(|&x| to_i16(x)).collect();
        processor.analyze_render(&far);
        processor.process_capture(&mut frame);
        out.extend(frame.iter().map(|&s| f32::from(s) / 32767.0));
    }
    out
}

fn seconds(s: f32) -> usize {
    (s * RATE as f32) as usize
}

/// The correlation (Pearson) of two signals' 10 ms energy envelopes in dB: does the
/// output rise and fall with the clean near-end speech?
fn envelope_correlation(a: &[f32], b: &[f32]) -> f64 {
    let env = |s: &[f32]| -> Vec<f64> {
        s.chunks(STEP)
            .map(|c| db(energy(c) / c.len() as f64 + 1e-10))
            .collect()
    };
    let (x, y) = (env(a), env(b));
    let n = x.len().min(y.len()) as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(&y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    sxy / (sxx * syy).sqrt()
}

struct EchoScene {
    played: Vec<f32>,
    echo: Vec<f32>,
    near: Vec<f32>,
    microphone: Vec<f32>,
}

/// 0–6 s the far end talks alone; 6–10 s both talk (double talk); 10–12 s the far end
/// alone again.
fn echo_scene(delay_ms: usize) -> EchoScene {
    let total = seconds(12.0);
    let played = scaled(&LOW_VOICE.speak(12.0), -20.0);
    let echo = convolve(&played, &room(delay_ms));
    let mut near = vec![0.0; total];
    let talk = scaled(&HIGH_VOICE.speak(4.0), -24.0);
    near[seconds(6.0)..seconds(10.0)].copy_from_slice(&talk);
    let mut rng = Rng(0xfeed);
    let microphone = (0..total)
        .map(|i| echo[i] + near[i] + 0.0003 * rng.next())
        .collect();
    EchoScene {
        played,
        echo,
        near,
        microphone,
    }
}

/// ERLE over a far-end-only stretch: the echo's energy at the microphone over what is
/// left of it in the output.
fn erle(scene: &EchoScene, out: &[f32], from: f32, to: f32) -> f64 {
    let r = seconds(from)..seconds(to);
    db(energy(&scene.microphone[r.clone()]) / energy(&out[r]).max(1e-12))
}

#[test]
fn echo_is_cancelled_and_near_end_speech_survives() {
    let scene = echo_scene(120);
    let on = run(AudioProcessing::default(), &scene.played, &scene.microphone);
    let converged = erle(&scene, &on, 3.0, 6.0);
    let by_second: Vec<String> = (0..6)
        .map(|s| format!("{:.0}", erle(&scene, &on, s as f32, s as f32 + 1.0)))
        .collect();
    println!(
        "ERLE second by second from the start (dB): {}",
        by_second.join(", ")
    );
    let after_double_talk = erle(&scene, &on, 10.5, 12.0);
    let double_talk = seconds(6.0)..seconds(10.0);
    let survival = envelope_correlation(&on[double_talk.clone()], &scene.near[double_talk.clone()]);
    let level = db(energy(&on[double_talk.clone()]) / energy(&scene.near[double_talk.clone()]));
    let echo_level =
        db(energy(&scene.echo[double_talk.clone()]) / energy(&scene.near[double_talk.clone()]));
    println!(
        "processing on: ERLE {converged:.1} dB (3–6 s), {after_double_talk:.1} dB after double talk; \
         near end in double talk: envelope correlation {survival:.2}, level {level:+.1} dB \
         (echo was {echo_level:+.1} dB relative to it)"
    );
    assert!(
        converged >= 25.0,
        "ERLE {converged:.1} dB after convergence"
    );
    assert!(
        after_double_talk >= 25.0,
        "ERLE {after_double_talk:.1} dB after double talk"
    );
    assert!(
        survival >= 0.7,
        "near-end speech lost in double talk: correlation {survival:.2}"
    );
    assert!(
        level > -10.0,
        "near-end speech attenuated by {level:.1} dB in double talk"
    );
    // Without gain control (which raises this quiet talker on purpose), the near end's
    // level in double talk is what it was.
    let echo_only = AudioProcessing {
        echo_cancellation: true,
        noise_suppression: false,
    };
    let ec = run(echo_only, &scene.played, &scene.microphone);
    let ec_erle = erle(&scene, &ec, 3.0, 6.0);
    let ec_level = db(energy(&ec[double_talk.clone()]) / energy(&scene.near[double_talk.clone()]));
    let ec_survival = envelope_correlation(&ec[double_talk.clone()], &scene.near[double_talk]);
    println!(
        "echo cancellation alone: ERLE {ec_erle:.1} dB; near end in double talk: correlation \
         {ec_survival:.2}, level {ec_level:+.1} dB"
    );
    assert!(
        ec_erle >= 25.0,
        "ERLE {ec_erle:.1} dB (echo cancellation alone)"
    );
    assert!(
        ec_level.abs() <= 4.0,
        "near-end level changed by {ec_level:+.1} dB in double talk"
    );
    assert!(ec_survival >= 0.7, "correlation {ec_survival:.2}");
}

#[test]
fn with_processing_off_the_echo_is_there() {
    let scene = echo_scene(120);
    let off = run(AudioProcessing::OFF, &scene.played, &scene.microphone);
    let erle_off = erle(&scene, &off, 3.0, 6.0);
    let echo_out = db(energy(&off[seconds(3.0)..seconds(6.0)])
        / energy(&scene.played[seconds(3.0)..seconds(6.0)]));
    println!(
        "processing off: ERLE {erle_off:.1} dB, echo in the output {echo_out:.1} dB re the far end"
    );
    assert!(
        erle_off.abs() < 0.5,
        "off changes nothing: {erle_off:.1} dB"
    );
    assert!(
        echo_out > -15.0,
        "the echo reaches the far end: {echo_out:.1} dB"
    );
}

#[test]
fn echo_is_cancelled_at_short_and_long_delays() {
    for delay in [50, 200] {
        let scene = echo_scene(delay);
        let on = run(AudioProcessing::default(), &scene.played, &scene.microphone);
        let converged = erle(&scene, &on, 3.0, 6.0);
        println!("delay {delay} ms: ERLE {converged:.1} dB");
        assert!(
            converged >= 25.0,
            "delay {delay} ms: ERLE {converged:.1} dB"
        );
    }
}

#[test]
fn stationary_noise_is_reduced_and_speech_kept() {
    // 8 s: near-end speech with pauses, in fan-like noise (white noise, low-passed) at
    // about 15 dB below the speech.
    let speech = scaled(&HIGH_VOICE.speak(8.0), -24.0);
    let mut rng = Rng(0xabcd);
    let mut lp = 0.0f32;
    let noise_raw: Vec<f32> = (0..speech.len())
        .map(|_| {
            lp = 0.8 * lp + 0.2 * rng.next();
            lp
        })
        .collect();
    let noise = scaled(&noise_raw, -39.0);
    let microphone: Vec<f32> = speech.iter().zip(&noise).map(|(s, n)| s + n).collect();
    let silence = vec![0.0; microphone.len()];
    let settings = AudioProcessing {
        echo_cancellation: false,
        noise_suppression: true,
    };
    let out = run(settings, &silence, &microphone);
    // Pauses: 10 ms steps after 2 s where the clean speech is (nearly) silent.
    let (mut noise_in, mut noise_out, mut speech_in, mut speech_out) = (0.0, 0.0, 0.0, 0.0);
    for (i, clean) in speech.chunks(STEP).enumerate().skip(200) {
        let r = i * STEP..(i + 1) * STEP;
        if energy(clean) < 1e-9 {
            noise_in += energy(&microphone[r.clone()]);
            noise_out += energy(&out[r]);
        } else if energy(clean) > energy(&noise[r.clone()]) * 10.0 {
            speech_in += energy(&microphone[r.clone()]);
            speech_out += energy(&out[r]);
        }
    }
    let reduction = db(noise_in / noise_out.max(1e-12));
    let speech_change = db(speech_out / speech_in);
    let survival = envelope_correlation(&out[seconds(2.0)..], &speech[seconds(2.0)..]);
    println!(
        "noise suppression: noise reduced by {reduction:.1} dB in pauses; speech level \
         {speech_change:+.1} dB; envelope correlation with clean speech {survival:.2}"
    );
    assert!(
        noise_in > 0.0 && speech_in > 0.0,
        "the scene has pauses and speech"
    );
    assert!(reduction >= 6.0, "noise reduced by only {reduction:.1} dB");
    assert!(
        speech_change > -6.0,
        "speech attenuated by {speech_change:.1} dB"
    );
}

/// CPU per stream (this thread's CPU time over the audio's duration; includes making the
/// frames): run with `cargo test -p tincan-media --test echo -- --ignored
/// --nocapture cpu` (the DSP crates are built with opt-level 3 even in dev builds).
#[test]
#[ignore]
fn cpu_per_stream() {
    let scene = echo_scene(120);
    // This thread's CPU time, not the wall clock: other work on the machine does not count.
    let cpu = || {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec we own.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
    };
    let settings = [
        ("AEC3 + NS + AGC2", AudioProcessing::default()),
        (
            "AEC3 only",
            AudioProcessing {
                echo_cancellation: true,
                noise_suppression: false,
            },
        ),
        (
            "NS + AGC2 only",
            AudioProcessing {
                echo_cancellation: false,
                noise_suppression: true,
            },
        ),
    ];
    for (name, setting) in settings {
        let rounds = 5;
        let start = cpu();
        for _ in 0..rounds {
            std::hint::black_box(run(setting, &scene.played, &scene.microphone));
        }
        let spent = cpu() - start;
        let audio = 12.0 * f64::from(rounds);
        println!(
            "processing ({name}, 48 kHz mono, render + capture): {:.2} % of a core per stream \
             ({spent:.2} s CPU for {audio:.0} s of audio)",
            100.0 * spent / audio
        );
    }
}
