//! What arrives from one participant: audio is decoded where it arrives (it is cheap)
//! and played and reported; pictures go to the participant's decoder thread, which
//! reports each decoded picture.

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle as ThreadHandle;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::audio::SpeakerSlot;
use crate::census;
use crate::codec::{self, AudioDecoder, VideoDecoder};
use crate::event::MediaEvent;
use crate::freeze::Pictures;
use crate::keyframe::DecoderLoss;
use crate::peer::Inbound;

/// Where a participant's inbound media goes: pictures to the decoder thread (dropped
/// when it is behind), audio decoded right away (it is cheap) and reported.
pub(crate) fn inbound_sink(
    user: String,
    video: std_mpsc::SyncSender<Bytes>,
    events: mpsc::Sender<MediaEvent>,
    speakers: SpeakerSlot,
) -> Arc<dyn Fn(Inbound) + Send + Sync> {
    let decoder = Mutex::new(AudioDecoder::new().ok());
    Arc::new(move |inbound| match inbound {
        Inbound::Video(unit) => {
            let _ = video.try_send(unit);
        }
        Inbound::Audio(packet) => {
            let mut decoder = decoder.lock().expect("audio decoder lock");
            let Some(decoder) = decoder.as_mut() else {
                return;
            };
            match decoder.decode(&packet) {
                Ok(pcm) => {
                    if let Some(speakers) = speakers.lock().expect("speakers slot").as_ref() {
                        speakers.play(&user, pcm);
                    }
                    let _ = events.try_send(MediaEvent::Audio {
                        user: user.clone(),
                        samples: pcm.len(),
                        level: codec::level(pcm),
                        at: Instant::now(),
                    });
                }
                Err(e) => tracing::debug!(error = %e, "audio packet not decoded"),
            }
        }
    })
}

/// The decoder thread of one participant: returns when its input closes.
pub(crate) fn spawn_decoder(
    user: String,
    rgba_width: u32,
    input: std_mpsc::Receiver<Bytes>,
    events: mpsc::Sender<MediaEvent>,
    pictures: Arc<Mutex<Pictures>>,
    loss: Arc<DecoderLoss>,
) -> ThreadHandle<()> {
    census::thread("tincan-decode", move || {
        let mut decoder = match VideoDecoder::new(rgba_width) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "video decoding unavailable");
                return;
            }
        };
        for unit in input {
            match decoder.decode(&unit) {
                Ok(Some(frame)) => {
                    let at = Instant::now();
                    pictures.lock().expect("pictures").shown(at);
                    // A consumer that falls behind loses pictures, never the call's control events.
                    let _ = events.try_send(MediaEvent::Frame {
                        user: user.clone(),
                        frame,
                        at,
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    // A lost reference or no parameter sets: the track reader asks for a key frame.
                    loss.raise();
                    tracing::debug!(error = %e, "picture not decoded");
                }
            }
        }
    })
}
