//! The ringtone reaches the output: played on ALSA's null device (present wherever
//! libasound is, sound card or not), what the speakers mixed carries the two tones.

use std::time::{Duration, Instant};

use tincan_media::{census, ringtone, AudioOutput, Ringtone};

/// Power of `freq` in `pcm` (48 kHz), Goertzel.
fn power(pcm: &[i16], freq: f32) -> f64 {
    let w = 2.0 * std::f64::consts::PI * f64::from(freq) / 48_000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in pcm {
        let s = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

#[test]
fn the_ringtone_plays_its_two_tones_on_the_null_device() {
    let ring = Ringtone::start(&AudioOutput::Device(Some("alsa:null".into())))
        .expect("ALSA null output")
        .expect("a ringtone");
    // The null device consumes faster than real time, so what was mixed is mostly
    // silence between the ringtone's frames: keep what is not.
    let mut heard = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while heard.len() < 9_600 {
        heard.extend(ring.take_played().into_iter().filter(|&s| s != 0));
        assert!(
            Instant::now() < deadline,
            "only {} ringtone samples reached the speakers in 10 s",
            heard.len()
        );
        std::thread::yield_now();
    }
    let peak = heard.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak > 5_000, "peak {peak}");
    let tones: f64 = ringtone::TONES.iter().map(|&f| power(&heard, f)).sum();
    for other in [300.0, 700.0, 1_000.0] {
        let p = power(&heard, other);
        assert!(
            tones > 100.0 * p,
            "{other} Hz is as loud as the ringtone's tones ({p:e} vs {tones:e})"
        );
    }
    drop(ring);
    // Stopping it leaves no thread behind.
    assert_eq!(census().threads, 0);
}
