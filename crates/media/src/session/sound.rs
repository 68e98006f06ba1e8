//! The session task's sound out: every 20 ms the echo canceller hears what was played,
//! the microphone's frame goes through it, and the encoded frame to everyone connected.

use bytes::Bytes;

use super::Driver;

impl Driver {
    /// Every 20 ms: what the speakers played goes to the echo canceller, the microphone's
    /// next frame through it (also while muted or alone, so the canceller stays adapted),
    /// and that frame (or the tone) to everyone connected.
    pub(super) async fn send_audio(&mut self) {
        let captured = self.capture_processed();
        let Some(encoder) = self.audio.as_mut() else {
            return;
        };
        if !self.mic || !self.peers.values().any(|r| r.path.is_up()) {
            return;
        }
        let frame = match (&self.microphone, captured) {
            (Some(_), Some(frame)) => frame,
            (Some(_), None) => return,
            (None, _) => self.tone.next_frame(),
        };
        let packet = match encoder.encode(&frame) {
            Ok(p) => Bytes::from(p),
            Err(e) => {
                tracing::warn!(error = %e, "audio not encoded");
                return;
            }
        };
        for remote in self.peers.values_mut().filter(|r| r.path.is_up()) {
            if let Err(e) = remote.peer.send_audio(packet.clone()).await {
                tracing::debug!(error = %e, "audio not sent");
            }
        }
    }

    /// Feeds the echo canceller what was played since the last tick, then processes the
    /// microphone's next frame, if there is a microphone and it has one.
    fn capture_processed(&mut self) -> Option<Vec<i16>> {
        let (played, delay) = {
            let speakers = self.speakers.lock().expect("speakers slot");
            let speakers = speakers.as_ref();
            let delay = speakers.zip(self.microphone.as_ref());
            (
                speakers.map(|s| s.take_played()),
                delay.and_then(|(s, mic)| mic.echo_delay(s)),
            )
        };
        let mic = self.microphone.as_ref()?;
        if let Some(played) = played {
            self.processor.analyze_render(&played);
        }
        // The delay the devices report, if they do; otherwise the processor's default.
        if let Some(delay) = delay {
            self.processor.set_delay_ms(delay.as_millis() as u32);
        }
        let mut frame = mic.next_frame()?;
        self.processor.process_capture(&mut frame);
        Some(frame)
    }
}
