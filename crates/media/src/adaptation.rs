//! What the encoders aim for, given the bandwidth estimate: the policy, without IO.
//!
//! The congestion controller ([`crate::bandwidth`]) says how many bits per second the
//! path takes; this decides how to spend them. Audio comes first (its bitrate and Opus's
//! in-band FEC follow loss), video gets the rest minus headroom, and when video's share
//! shrinks it gives up in steps: bitrate first, then frame rate, then resolution, and
//! below a floor the call goes audio only. Going down is quick (a link that is full
//! now is full now); going up waits until the estimate has held well above the next
//! step's need for a while, so a noisy estimate cannot make the picture flap.
//!
//! [`Adaptation::update`] takes the estimate and the time and returns a new [`Plan`]
//! when anything changed; the session applies it to the capture thread and the Opus
//! encoder.

use std::time::{Duration, Instant};

/// Share of the estimate the encoders may use: the rest is RTP, UDP and SRTP overhead
/// and RTCP. (NACK resends are taken off the estimate before it gets here: the session
/// passes the target less what resends took over the last second.)
pub const HEADROOM: f64 = 0.85;

/// Opus at a good link, at a lossy one (in-band FEC takes a share of the bits, so the
/// bitrate is raised to keep the speech's own quality), and at a tight one.
pub const AUDIO_BPS: u32 = 24_000;
pub const AUDIO_LOSSY_BPS: u32 = 32_000;
pub const AUDIO_TIGHT_BPS: u32 = 16_000;
/// Loss (0–1) from which audio counts as lossy.
pub const LOSSY: f64 = 0.05;
/// Below this estimate audio drops to its tight bitrate.
pub const TIGHT_ESTIMATE_BPS: f64 = 120_000.0;
/// The largest loss Opus is told to expect, in per cent (its FEC is tuned for it).
pub const MAX_EXPECTED_LOSS_PCT: u8 = 30;

/// A video quality step: what the picture needs at least, and what it gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Video bitrate below which this step is left for the next one down.
    pub min_bps: u32,
    /// Frame rate divisor: 1 is the configured rate, 2 half of it.
    pub fps_divisor: u32,
    /// Picture size divisor: 1 is the configured size, 2 half the width and height.
    pub scale: u32,
}

/// The steps, best first. Sized for the default 640×480 at 30 fps: ~350 kbit/s keeps it
/// sharp at full rate, half the rate spends the bits on half the pictures, and half and a
/// quarter of the size keep a recognisable face down to ~100 kbit/s. Below the last step
/// video is not worth its bits: audio only.
pub const STEPS: [Step; 4] = [
    Step {
        min_bps: 350_000,
        fps_divisor: 1,
        scale: 1,
    },
    Step {
        min_bps: 220_000,
        fps_divisor: 2,
        scale: 1,
    },
    Step {
        min_bps: 140_000,
        fps_divisor: 2,
        scale: 2,
    },
    Step {
        min_bps: VIDEO_FLOOR_BPS,
        fps_divisor: 2,
        scale: 4,
    },
];

/// Video's share below which the call goes audio only.
pub const VIDEO_FLOOR_BPS: u32 = 100_000;

/// Going up one step needs the video share at this multiple of the step's need…
pub const UP_MARGIN: f64 = 1.25;
/// …held this long (and this long since the last change).
pub const UP_HOLD: Duration = Duration::from_secs(3);
/// Going audio only needs the share below the floor this long: one low reading of a
/// noisy estimate is not a reason to drop the picture.
pub const AUDIO_ONLY_AFTER: Duration = Duration::from_secs(1);
/// A smaller picture needs the share under the step this long, unless it is under
/// [`DEEP_DROP`] of the step's need. A lower frame rate is taken at once, but a new
/// picture size restarts the encoder with a key frame, 18-28 KB at 320x240: at the
/// ~300 kbit/s a 500 kbit/s link leaves for video, more than half a second of it. In the
/// network lab's case (e) a burst of resends took the share a few per cent under a step
/// for a moment, and each such moment cost two key frames (down, and up again 3 s
/// later), whose bursts lost packets and set off the next burst of resends.
pub const DOWN_HOLD: Duration = Duration::from_secs(1);
pub const DEEP_DROP: f64 = 0.75;
/// Coming back to video needs the share this far above the floor, held this long.
pub const VIDEO_BACK_MARGIN: f64 = 1.5;
pub const VIDEO_BACK_HOLD: Duration = Duration::from_secs(4);

/// What the video encoder is to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoTarget {
    pub bitrate_bps: u32,
    /// Divisors of the configured frame rate and picture size (see [`Step`]).
    pub fps_divisor: u32,
    pub scale: u32,
}

/// What both encoders aim for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// `None`: audio only, no pictures are sent.
    pub video: Option<VideoTarget>,
    pub audio_bps: u32,
    /// The loss Opus is told to expect, per cent: its in-band FEC follows it.
    pub expected_loss_pct: u8,
}

impl Plan {
    pub fn audio_only(&self) -> bool {
        self.video.is_none()
    }
}

/// The estimate, as the policy reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The congestion controller's target for everything we send, bit/s.
    pub target_bps: f64,
    /// Share of our packets the far end reports lost, 0–1.
    pub loss: f64,
}

/// The policy's state: the step in use (`None`: audio only) and since when the estimate
/// has argued for a change.
#[derive(Debug)]
pub struct Adaptation {
    /// The configured (most) video bitrate.
    max_video_bps: u32,
    /// The steps' needs as a share of [`STEPS`]' (sized for 1 Mbit/s video): a call
    /// configured for less video needs less for each step.
    step_scale: f64,
    step: Option<usize>,
    plan: Plan,
    last_change: Option<Instant>,
    /// Since when the share has allowed one step up (or video back).
    up_since: Option<Instant>,
    /// Since when the share has been under the floor.
    floor_since: Option<Instant>,
    /// Since when the share has asked for a smaller picture.
    down_since: Option<Instant>,
}

impl Adaptation {
    /// Starts at the best step with the configured bitrate: what a call sends before the
    /// estimator has said anything.
    pub fn new(max_video_bps: u32) -> Adaptation {
        Adaptation {
            max_video_bps,
            step_scale: 1.0,
            step: Some(0),
            plan: Plan {
                video: Some(VideoTarget {
                    bitrate_bps: max_video_bps,
                    fps_divisor: 1,
                    scale: 1,
                }),
                audio_bps: AUDIO_BPS,
                expected_loss_pct: 0,
            },
            last_change: None,
            up_since: None,
            floor_since: None,
            down_since: None,
        }
    }

    /// Sizes the steps for a call whose video is configured for `reference_bps` (the
    /// steps are for 1 Mbit/s; less scales them down, more does not scale them up). The
    /// audio-only floor does not move: it is about the link, not the picture.
    pub fn for_video(mut self, reference_bps: u32) -> Adaptation {
        self.step_scale = (f64::from(reference_bps) / 1_000_000.0).clamp(0.0, 1.0);
        self
    }

    /// What step `i` needs, bit/s.
    fn need(&self, i: usize) -> f64 {
        (f64::from(STEPS[i].min_bps) * self.step_scale).max(f64::from(VIDEO_FLOOR_BPS))
    }

    pub fn plan(&self) -> Plan {
        self.plan
    }

    /// Folds in a new estimate; returns the new plan when it differs from the last one.
    pub fn update(&mut self, now: Instant, estimate: Estimate) -> Option<Plan> {
        let loss = if estimate.loss.is_finite() {
            estimate.loss.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let target = if estimate.target_bps.is_finite() {
            estimate.target_bps.max(0.0)
        } else {
            0.0
        };
        let audio_bps = if target < TIGHT_ESTIMATE_BPS {
            AUDIO_TIGHT_BPS
        } else if loss >= LOSSY {
            AUDIO_LOSSY_BPS
        } else {
            AUDIO_BPS
        };
        let expected_loss_pct = ((loss * 100.0).round() as u8).min(MAX_EXPECTED_LOSS_PCT);
        let share = (target * HEADROOM - f64::from(audio_bps)).max(0.0);
        self.step = self.next_step(now, share);
        let video = self.step.map(|i| {
            let step = STEPS[i];
            let need = self.need(i) as u32;
            VideoTarget {
                // Never above what the call is configured for, never below the step's
                // need (the encoder undershoots a bit anyway).
                bitrate_bps: (share as u32).clamp(need, self.max_video_bps.max(need)),
                fps_divisor: step.fps_divisor,
                scale: step.scale,
            }
        });
        let plan = Plan {
            video,
            audio_bps,
            expected_loss_pct,
        };
        if plan == self.plan || !significant(&self.plan, &plan) {
            return None;
        }
        if plan.video.map(|v| (v.fps_divisor, v.scale))
            != self.plan.video.map(|v| (v.fps_divisor, v.scale))
        {
            self.last_change = Some(now);
        }
        self.plan = plan;
        Some(plan)
    }

    /// The step for video's share `share`: down at once (to the best step that fits),
    /// up one step at a time after the share has held, audio only after a second under
    /// the floor, video back after a longer hold well above it.
    fn next_step(&mut self, now: Instant, share: f64) -> Option<usize> {
        let fits = (0..STEPS.len()).find(|i| share >= self.need(*i));
        let settled = self
            .last_change
            .is_none_or(|at| now.saturating_duration_since(at) >= UP_HOLD);
        match self.step {
            None => {
                self.floor_since = None;
                self.down_since = None;
                let back = share >= f64::from(VIDEO_FLOOR_BPS) * VIDEO_BACK_MARGIN;
                if !back {
                    self.up_since = None;
                    return None;
                }
                let since = *self.up_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= VIDEO_BACK_HOLD {
                    self.up_since = None;
                    // Back at the lowest step; better ones follow as the share holds.
                    return Some(STEPS.len() - 1);
                }
                None
            }
            Some(current) => {
                let Some(fits) = fits else {
                    self.up_since = None;
                    self.down_since = None;
                    let since = *self.floor_since.get_or_insert(now);
                    if now.saturating_duration_since(since) >= AUDIO_ONLY_AFTER {
                        self.floor_since = None;
                        return None;
                    }
                    // Meanwhile the lowest step, at the least it can do.
                    return Some(STEPS.len() - 1);
                };
                self.floor_since = None;
                if fits > current {
                    self.up_since = None;
                    return Some(self.step_down(now, share, current, fits));
                }
                self.down_since = None;
                if current == 0 {
                    self.up_since = None;
                    return Some(0);
                }
                let up = share >= self.need(current - 1) * UP_MARGIN;
                if !up {
                    self.up_since = None;
                    return Some(current);
                }
                let since = *self.up_since.get_or_insert(now);
                if settled && now.saturating_duration_since(since) >= UP_HOLD {
                    self.up_since = None;
                    return Some(current - 1);
                }
                Some(current)
            }
        }
    }
}

impl Adaptation {
    /// Down from step `current` towards `fits`, the best step the share pays for: the
    /// frame rate at once, the picture size after [`DOWN_HOLD`] (or at once if the
    /// share fell under [`DEEP_DROP`] of the step's need).
    fn step_down(&mut self, now: Instant, share: f64, current: usize, fits: usize) -> usize {
        let scale = STEPS[current].scale;
        let same_size = (current..=fits)
            .rev()
            .find(|i| STEPS[*i].scale == scale)
            .unwrap_or(current);
        if same_size == fits {
            self.down_since = None;
            return fits;
        }
        let since = *self.down_since.get_or_insert(now);
        if share < self.need(same_size) * DEEP_DROP
            || now.saturating_duration_since(since) >= DOWN_HOLD
        {
            self.down_since = None;
            return fits;
        }
        same_size
    }
}

/// Whether `new` is worth telling the encoders about: any change of step, audio or
/// expected loss, or a video bitrate more than 5 % away (the estimate moves a little
/// with every feedback report; the encoder's rate control needs no such precision).
fn significant(old: &Plan, new: &Plan) -> bool {
    if old.audio_bps != new.audio_bps || old.expected_loss_pct != new.expected_loss_pct {
        return true;
    }
    match (old.video, new.video) {
        (Some(o), Some(n)) => {
            (o.fps_divisor, o.scale) != (n.fps_divisor, n.scale)
                || (f64::from(n.bitrate_bps) - f64::from(o.bitrate_bps)).abs()
                    > f64::from(o.bitrate_bps) * 0.05
        }
        (o, n) => o.is_some() != n.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u32 = 1_000_000;

    fn est(kbps: f64) -> Estimate {
        Estimate {
            target_bps: kbps * 1000.0,
            loss: 0.0,
        }
    }

    /// Feeds `kbps` every 100 ms for `secs`; returns the last plan.
    fn hold(a: &mut Adaptation, now: &mut Instant, kbps: f64, secs: u64) -> Plan {
        for _ in 0..secs * 10 {
            *now += Duration::from_millis(100);
            a.update(*now, est(kbps));
        }
        a.plan()
    }

    #[test]
    fn a_plentiful_estimate_keeps_the_configured_video() {
        let mut a = Adaptation::new(MAX);
        let mut now = Instant::now();
        let plan = hold(&mut a, &mut now, 3000.0, 5);
        let video = plan.video.expect("video");
        assert_eq!(
            (video.bitrate_bps, video.fps_divisor, video.scale),
            (MAX, 1, 1)
        );
        assert_eq!(plan.audio_bps, AUDIO_BPS);
    }

    #[test]
    fn a_tighter_estimate_lowers_the_bitrate_before_anything_else() {
        let mut a = Adaptation::new(MAX);
        let mut now = Instant::now();
        let plan = hold(&mut a, &mut now, 500.0, 2);
        let video = plan.video.expect("video");
        assert_eq!((video.fps_divisor, video.scale), (1, 1), "{plan:?}");
        let share = 500_000.0 * HEADROOM - f64::from(AUDIO_BPS);
        assert!(
            (f64::from(video.bitrate_bps) - share).abs() < 1.0,
            "{plan:?}"
        );
        assert!(f64::from(video.bitrate_bps) < 500_000.0);
    }

    #[test]
    fn falling_estimates_give_up_frame_rate_then_resolution_then_video() {
        let mut a = Adaptation::new(MAX);
        let mut now = Instant::now();
        let v = hold(&mut a, &mut now, 300.0, 1).video.unwrap();
        assert_eq!((v.fps_divisor, v.scale), (2, 1), "frame rate first");
        let v = hold(&mut a, &mut now, 200.0, 1).video.unwrap();
        assert_eq!((v.fps_divisor, v.scale), (2, 2), "then resolution");
        let v = hold(&mut a, &mut now, 150.0, 1).video.unwrap();
        assert_eq!((v.fps_divisor, v.scale), (2, 4), "a smaller one");
        // Under the floor: not at the first reading, but within a second or two.
        now += Duration::from_millis(100);
        assert!(a.update(now, est(100.0)).is_none_or(|p| !p.audio_only()));
        let plan = hold(&mut a, &mut now, 100.0, 2);
        assert!(plan.audio_only(), "{plan:?}");
        assert_eq!(plan.audio_bps, AUDIO_TIGHT_BPS);
    }

    #[test]
    fn a_moment_a_little_under_a_step_keeps_the_picture_size_but_a_second_of_it_does_not() {
        let mut a = Adaptation::new(MAX);
        let mut now = Instant::now();
        let v = hold(&mut a, &mut now, 300.0, 5).video.unwrap();
        assert_eq!((v.fps_divisor, v.scale), (2, 1));
        // 260 kbit/s leaves video ~197 kbit/s, under the 220 this step needs but not
        // far under: half a second of it keeps the picture (at the step's least)…
        now += Duration::from_millis(500);
        a.update(now, est(260.0));
        let v = a.plan().video.unwrap();
        assert_eq!((v.fps_divisor, v.scale), (2, 1));
        // …and the estimate coming back restarts the wait.
        now += Duration::from_millis(500);
        a.update(now, est(300.0));
        now += Duration::from_millis(500);
        a.update(now, est(260.0));
        assert_eq!(a.plan().video.unwrap().scale, 1);
        // A second under the step: the smaller picture.
        let v = hold(&mut a, &mut now, 260.0, 1).video.unwrap();
        assert_eq!((v.fps_divisor, v.scale), (2, 2));
    }

    #[test]
    fn a_drop_goes_straight_to_the_step_that_fits() {
        let mut a = Adaptation::new(MAX);
        let now = Instant::now() + Duration::from_millis(100);
        let plan = a.update(now, est(200.0)).expect("a change");
        assert_eq!(plan.video.map(|v| v.scale), Some(2), "{plan:?}");
    }

    #[test]
    fn audio_only_returns_to_video_when_the_link_recovers_then_climbs_step_by_step() {
        let mut a = Adaptation::new(MAX);
        let mut now = Instant::now();
        assert!(hold(&mut a, &mut now, 80.0, 3).audio_only());
        // Just above the floor is not enough to come back (hysteresis).
        assert!(hold(&mut a, &mut now, 150.0, 10).audio_only());
        // Well above it, held: video comes back at the lowest step…
        let mut back_after = None;
        for i in 1..=100 {
            now += Duration::from_millis(100);
            if let Some(plan) = a.update(now, est(2000.0)) {
                if !plan.audio_only() && back_after.is_none() {
                    back_after = Some(i);
                    assert_eq!(plan.video.unwrap().scale, 4, "lowest step first");
                }
            }
        }
        let back_after = back_after.expect("video came back");
        assert!(back_after <= 50, "back after {back_after} readings");
        // …and, with the link good for long enough, reaches the best step again.
        let plan = hold(&mut a, &mut now, 2000.0, 20);
        let v = plan.video.unwrap();
        assert_eq!((v.bitrate_bps, v.fps_divisor, v.scale), (MAX, 1, 1));
    }

    #[test]
    fn a_noisy_estimate_around_a_threshold_does_not_flap() {
        let mut a = Adaptation::new(MAX);
        let mut now = Instant::now();
        hold(&mut a, &mut now, 300.0, 1);
        let mut step_changes = 0;
        let mut last = a.plan().video.map(|v| (v.fps_divisor, v.scale));
        for i in 0..300 {
            now += Duration::from_millis(100);
            // ±15 % around an estimate whose share sits right at the full-rate step.
            let kbps = 440.0 * if i % 2 == 0 { 1.15 } else { 0.85 };
            a.update(now, est(kbps));
            let steps = a.plan().video.map(|v| (v.fps_divisor, v.scale));
            if steps != last {
                step_changes += 1;
                last = steps;
            }
        }
        assert!(step_changes <= 2, "{step_changes} step changes in 30 s");
    }

    #[test]
    fn loss_raises_audio_protection_and_its_bitrate() {
        let mut a = Adaptation::new(MAX);
        let now = Instant::now();
        let plan = a
            .update(
                now,
                Estimate {
                    target_bps: 800_000.0,
                    loss: 0.08,
                },
            )
            .expect("a change");
        assert_eq!(
            (plan.audio_bps, plan.expected_loss_pct),
            (AUDIO_LOSSY_BPS, 8)
        );
        let plan = a
            .update(
                now,
                Estimate {
                    target_bps: 800_000.0,
                    loss: 0.9,
                },
            )
            .expect("a change");
        assert_eq!(plan.expected_loss_pct, MAX_EXPECTED_LOSS_PCT, "capped");
        let plan = a.update(now, est(800.0)).expect("a change");
        assert_eq!((plan.audio_bps, plan.expected_loss_pct), (AUDIO_BPS, 0));
    }

    #[test]
    fn nonsense_estimates_are_read_as_nothing_left() {
        let mut a = Adaptation::new(MAX);
        let mut now = Instant::now();
        for bad in [f64::NAN, f64::NEG_INFINITY, -5.0] {
            for _ in 0..20 {
                now += Duration::from_millis(100);
                a.update(
                    now,
                    Estimate {
                        target_bps: bad,
                        loss: f64::NAN,
                    },
                );
            }
        }
        let plan = a.plan();
        assert!(plan.audio_only());
        assert_eq!(plan.expected_loss_pct, 0);
    }

    #[test]
    fn a_call_configured_for_little_video_keeps_its_picture_down_to_the_floor() {
        // 320×240 at 300 kbit/s: every step's need scales under the floor, so the
        // picture keeps its size and rate until audio only.
        let mut a = Adaptation::new(MAX).for_video(300_000);
        let mut now = Instant::now();
        let v = hold(&mut a, &mut now, 160.0, 2).video.expect("video");
        assert_eq!((v.fps_divisor, v.scale), (1, 1), "{v:?}");
        assert!(hold(&mut a, &mut now, 100.0, 2).audio_only());
        // The default (1 Mbit/s) keeps the steps as they are.
        let mut a = Adaptation::new(MAX).for_video(1_000_000);
        let v = hold(&mut a, &mut now, 300.0, 1).video.expect("video");
        assert_eq!((v.fps_divisor, v.scale), (2, 1), "{v:?}");
    }

    #[test]
    fn small_wobbles_of_the_estimate_are_not_reported() {
        let mut a = Adaptation::new(MAX);
        let now = Instant::now();
        a.update(now, est(600.0)).expect("a change");
        assert_eq!(a.update(now, est(610.0)), None);
    }
}
