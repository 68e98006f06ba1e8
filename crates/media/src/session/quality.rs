//! The session task's look at its paths: the encoders follow the bandwidth estimate
//! (every [`super::ADAPT_EVERY`]), and once a second each participant's quality is
//! reported and paths lost too long are given up.

use std::time::Instant;

use super::Driver;
use crate::adaptation::Estimate;
use crate::bandwidth::Reading;
use crate::event::{MediaEvent, Quality};
use crate::peer::resends::RESEND_SHARE;
use crate::source::CaptureCommand;

impl Driver {
    /// Every [`super::ADAPT_EVERY`]: the encoders follow the bandwidth estimate. One encoder
    /// serves every participant, so the thinnest path (and the worst loss) decides.
    pub(super) async fn adapt(&mut self) {
        let readings: Vec<Reading> = self
            .peers
            .values()
            .filter(|r| r.path.is_up())
            .map(|r| r.peer.bandwidth())
            .collect();
        if readings.is_empty() {
            return;
        }
        let congested = readings.iter().any(|r| r.overused);
        if congested != self.congested {
            self.congested = congested;
            if let Some(capture) = &self.capture {
                let _ = capture.send(CaptureCommand::Congested(congested));
            }
        }
        // What new media may use: the target less what resends take now (libwebrtc
        // likewise gives the encoder the target less its protection overhead), at most
        // their share of the target as it is now. Resends are counted over the last
        // second, and right after a cap they are those of the rate before it: in the
        // network lab's case (e) they came to 150-250 kbit/s of a 385 kbit/s estimate,
        // and the picture dropped to a quarter of its size for nothing.
        let for_media = |r: &Reading| {
            let resends = r.resend_bps.min(r.target_bps * RESEND_SHARE);
            (r.target_bps - resends).max(0.0)
        };
        let estimate = readings.iter().fold(
            Estimate {
                target_bps: f64::INFINITY,
                loss: 0.0,
            },
            |e, r| Estimate {
                target_bps: e.target_bps.min(for_media(r)),
                loss: e.loss.max(r.loss),
            },
        );
        let was_audio_only = self.adaptation.plan().audio_only();
        let Some(plan) = self.adaptation.update(Instant::now(), estimate) else {
            return;
        };
        tracing::debug!(
            target_bps = estimate.target_bps as u64,
            loss = estimate.loss,
            ?plan,
            "encoders follow the bandwidth estimate"
        );
        if let Some(capture) = &self.capture {
            let _ = capture.send(CaptureCommand::Target(plan.video));
        }
        if let Some(audio) = self.audio.as_mut() {
            if let Err(e) = audio.set_protection(plan.audio_bps, plan.expected_loss_pct) {
                tracing::warn!(error = %e, "audio bitrate not changed");
            }
        }
        if plan.audio_only() != was_audio_only {
            let on = plan.audio_only();
            tracing::info!(
                on,
                target_kbps = estimate.target_bps / 1000.0,
                "audio only (the link is too thin for video)"
            );
            let _ = self
                .events
                .send(MediaEvent::AudioOnly {
                    on,
                    target_kbps: estimate.target_bps / 1000.0,
                })
                .await;
            self.broadcast_state();
        }
    }

    /// Once a second: quality per participant, and giving up on paths lost too long.
    pub(super) async fn check_quality(&mut self) {
        let mut lost = Vec::new();
        for (user, remote) in &mut self.peers {
            let given_up = remote.path.given_up(
                Instant::now(),
                self.config.connect_within,
                self.config.recover_within,
            );
            if let Some(why) = given_up {
                lost.push((user.clone(), why));
                continue;
            }
            if !remote.path.is_up() {
                continue;
            }
            let now = remote.peer.counters().await;
            let prev = std::mem::replace(&mut remote.last, now.clone());
            let (fps_in, freezes) = remote.pictures.lock().expect("pictures").take_second();
            let quality = Quality::between(&prev, &now, fps_in, freezes);
            let _ = self
                .events
                .send(MediaEvent::Quality {
                    user: user.clone(),
                    quality,
                })
                .await;
        }
        for (user, why) in lost {
            self.give_up(&user, why.reason().into(), true).await;
        }
    }
}
