//! Microphone and speakers, through cpal (ALSA; PulseAudio and PipeWire through their
//! ALSA plugins). The only module that imports cpal.
//!
//! Media works in 48 kHz mono 16-bit PCM, 20 ms at a time (what Opus carries). A device
//! runs at its own rate, with its own channel count and sample format, on its own
//! callback thread; each stream is converted at the edge (nearest-sample resampling,
//! mixing down or copying to every channel), which is plenty for speech.
//!
//! A cpal stream cannot move between threads, so each open device gets a thread that
//! builds the stream, reports whether that worked, and holds it until told to stop.
//! Playback mixes every participant into one stream, each with its own queue, which is
//! kept short (a queue longer than 200 ms drops its oldest samples) so that a
//! stall does not turn into a growing delay.
//!
//! For echo cancellation ([`crate::processing`]) the speakers keep a copy of what they
//! mixed, at 48 kHz, for the session's task to take every 20 ms as the far-end
//! reference, and both directions remember the latency cpal's callback timestamps
//! report (mix to loudspeaker, microphone to callback), which gives the canceller its
//! delay hint.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample, StreamConfig, StreamInstant};
use serde::Serialize;

use crate::census;
use crate::codec::{AUDIO_FRAME, AUDIO_RATE};
use crate::error::MediaError;

/// At most this much audio waits to be played per participant, or to be sent (samples
/// at 48 kHz: 200 ms).
const MAX_QUEUE: usize = AUDIO_RATE as usize / 5;

/// A device latency as the last callback reported it, in µs; [`UNKNOWN`] until then (or
/// when the host reports none).
type Latency = Arc<AtomicU32>;
const UNKNOWN: u32 = u32::MAX;

fn new_latency() -> Latency {
    Arc::new(AtomicU32::new(UNKNOWN))
}

fn store_latency(latency: &AtomicU32, later: StreamInstant, earlier: StreamInstant) {
    let us = later
        .duration_since(earlier)
        .as_micros()
        .min(u128::from(UNKNOWN - 1));
    latency.store(us as u32, Ordering::Relaxed);
}

fn load_latency(latency: &AtomicU32) -> Option<Duration> {
    match latency.load(Ordering::Relaxed) {
        UNKNOWN => None,
        us => Some(Duration::from_micros(u64::from(us))),
    }
}

/// A sound device a person can pick in settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AudioDevice {
    /// Stable id (`alsa:default`, `alsa:hw:1,0`, …): what settings store.
    pub id: String,
    /// What the person sees.
    pub name: String,
}

/// The machine's microphones and speakers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AudioDevices {
    pub microphones: Vec<AudioDevice>,
    pub speakers: Vec<AudioDevice>,
}

/// Lists the sound devices cpal's default host offers (none on a machine without sound).
pub fn audio_devices() -> AudioDevices {
    let host = cpal::default_host();
    let describe = |d: cpal::Device| -> Option<AudioDevice> {
        let id = d.id().ok()?.to_string();
        let name = d
            .description()
            .map(|x| x.name().to_owned())
            .unwrap_or_else(|_| id.clone());
        Some(AudioDevice { id, name })
    };
    AudioDevices {
        microphones: host
            .input_devices()
            .map(|it| it.filter_map(describe).collect())
            .unwrap_or_default(),
        speakers: host
            .output_devices()
            .map(|it| it.filter_map(describe).collect())
            .unwrap_or_default(),
    }
}

fn device(id: Option<&str>, input: bool) -> Result<cpal::Device, MediaError> {
    let host = cpal::default_host();
    let what = if input { "microphone" } else { "speakers" };
    let found = match id {
        None if input => host.default_input_device(),
        None => host.default_output_device(),
        Some(id) => {
            let parsed = id
                .parse()
                .map_err(|e| MediaError::Device(format!("{what} {id:?}: {e}")))?;
            host.device_by_id(&parsed)
        }
    };
    found.ok_or_else(|| MediaError::Device(format!("no {what} {}", id.unwrap_or("(default)"))))
}

/// The device's configuration closest to ours: 48 kHz if it can, f32 or i16 samples.
fn config(device: &cpal::Device, input: bool) -> Result<(StreamConfig, SampleFormat), MediaError> {
    let ranges: Vec<_> = if input {
        device
            .supported_input_configs()
            .map(|c| c.collect())
            .unwrap_or_default()
    } else {
        device
            .supported_output_configs()
            .map(|c| c.collect())
            .unwrap_or_default()
    };
    let usable = |f: SampleFormat| matches!(f, SampleFormat::F32 | SampleFormat::I16);
    let at_48k = ranges.iter().find(|r| {
        usable(r.sample_format())
            && r.min_sample_rate() <= AUDIO_RATE
            && AUDIO_RATE <= r.max_sample_rate()
    });
    let chosen = match at_48k {
        Some(r) => r.with_sample_rate(AUDIO_RATE),
        None => {
            let d = if input {
                device.default_input_config()
            } else {
                device.default_output_config()
            };
            d.map_err(|e| MediaError::Device(format!("no usable configuration: {e}")))?
        }
    };
    if !usable(chosen.sample_format()) {
        return Err(MediaError::Device(format!(
            "unsupported sample format {}",
            chosen.sample_format()
        )));
    }
    let format = chosen.sample_format();
    Ok((chosen.into(), format))
}

/// A playing stream, held by its own thread; dropping this stops it and joins the thread.
struct HeldStream {
    stop: Option<std_mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for HeldStream {
    fn drop(&mut self) {
        self.stop = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `build` on a new thread that keeps the stream it returns until the returned
/// [`HeldStream`] is dropped; returns once the stream plays (or failed to).
fn hold_stream(
    name: &str,
    build: impl FnOnce() -> Result<cpal::Stream, MediaError> + Send + 'static,
) -> Result<HeldStream, MediaError> {
    let (ready_tx, ready_rx) = std_mpsc::channel();
    let (stop_tx, stop_rx) = std_mpsc::channel::<()>();
    let thread = census::thread(name, move || {
        let stream = build().and_then(|s| {
            s.play()
                .map_err(|e| MediaError::Device(format!("cannot start: {e}")))?;
            Ok(s)
        });
        match stream {
            Ok(stream) => {
                let _ = ready_tx.send(Ok(()));
                // Held until the owner drops its sender.
                let _ = stop_rx.recv();
                drop(stream);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        }
    });
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(HeldStream {
            stop: Some(stop_tx),
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(MediaError::Device("the audio thread stopped".into()))
        }
    }
}

/// Resamples 48 kHz to `rate` (nearest sample).
fn resample(pcm: &[i16], from: u32, to: u32) -> impl Iterator<Item = i16> + '_ {
    let n = (pcm.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    (0..n).map(move |i| pcm[(i as u64 * u64::from(from) / u64::from(to)) as usize])
}

/// The speakers in use, if any, shared by whoever plays into them; replaced in place when
/// the person picks other speakers during a call.
pub(crate) type SpeakerSlot = Arc<Mutex<Option<Speakers>>>;

/// Speakers: plays every participant's decoded audio, mixed.
pub struct Speakers {
    queues: Arc<Mutex<HashMap<String, VecDeque<i16>>>>,
    rate: u32,
    /// What was mixed, at 48 kHz, until [`Speakers::take_played`] (at most 200 ms: the
    /// oldest is dropped if nobody takes it).
    played: Arc<Mutex<VecDeque<i16>>>,
    /// From mixing a sample to its leaving the loudspeaker.
    latency: Latency,
    _stream: HeldStream,
}

impl Speakers {
    /// Opens `id`, or the default output device.
    pub fn open(id: Option<&str>) -> Result<Speakers, MediaError> {
        let device = device(id, false)?;
        let (config, format) = config(&device, false)?;
        let queues: Arc<Mutex<HashMap<String, VecDeque<i16>>>> = Arc::default();
        let rate = config.sample_rate;
        let played: Arc<Mutex<VecDeque<i16>>> = Arc::default();
        let latency = new_latency();
        let out = Mixer {
            queues: queues.clone(),
            played: played.clone(),
            latency: latency.clone(),
        };
        let stream = hold_stream("tincan-speakers", move || match format {
            SampleFormat::F32 => output::<f32>(&device, config, out),
            _ => output::<i16>(&device, config, out),
        })?;
        Ok(Speakers {
            queues,
            rate,
            played,
            latency,
            _stream: stream,
        })
    }

    /// Whole 20 ms frames of what was mixed for the loudspeaker since the last call
    /// (48 kHz mono), oldest first: the echo canceller's reference.
    pub fn take_played(&self) -> Vec<i16> {
        let mut played = self.played.lock().expect("played audio");
        let whole = played.len() / AUDIO_FRAME * AUDIO_FRAME;
        played.drain(..whole).collect()
    }

    /// From mixing to the loudspeaker, as the device last reported (None until it has).
    pub fn latency(&self) -> Option<Duration> {
        load_latency(&self.latency)
    }

    /// Queues 48 kHz mono PCM from `from` for playback.
    pub fn play(&self, from: &str, pcm: &[i16]) {
        let mut queues = self.queues.lock().expect("speaker queues");
        let q = queues.entry(from.to_owned()).or_default();
        q.extend(resample(pcm, AUDIO_RATE, self.rate));
        let limit = MAX_QUEUE * self.rate as usize / AUDIO_RATE as usize;
        if q.len() > limit {
            let extra = q.len() - limit;
            q.drain(..extra);
        }
    }

    /// Forgets a participant who left.
    pub fn remove(&self, from: &str) {
        self.queues.lock().expect("speaker queues").remove(from);
    }
}

/// What the output callback shares with [`Speakers`].
struct Mixer {
    queues: Arc<Mutex<HashMap<String, VecDeque<i16>>>>,
    played: Arc<Mutex<VecDeque<i16>>>,
    latency: Latency,
}

fn output<T: SizedSample + FromSample<f32>>(
    device: &cpal::Device,
    config: StreamConfig,
    mixer: Mixer,
) -> Result<cpal::Stream, MediaError> {
    let channels = usize::from(config.channels.max(1));
    let rate = config.sample_rate;
    let mut mixed_now = Vec::new();
    device
        .build_output_stream(
            config,
            move |data: &mut [T], info: &cpal::OutputCallbackInfo| {
                let t = info.timestamp();
                store_latency(&mixer.latency, t.playback, t.callback);
                mixed_now.clear();
                let mut queues = mixer.queues.lock().expect("speaker queues");
                for frame in data.chunks_mut(channels) {
                    let mixed: i32 = queues
                        .values_mut()
                        .filter_map(|q| q.pop_front())
                        .map(i32::from)
                        .sum();
                    let mixed = mixed.clamp(i16::MIN.into(), i16::MAX.into()) as i16;
                    mixed_now.push(mixed);
                    frame.fill(T::from_sample(f32::from(mixed) / 32768.0));
                }
                drop(queues);
                let mut played = mixer.played.lock().expect("played audio");
                played.extend(resample(&mixed_now, rate, AUDIO_RATE));
                if played.len() > MAX_QUEUE {
                    let extra = played.len() - MAX_QUEUE;
                    played.drain(..extra);
                }
            },
            |e| tracing::warn!(error = %e, "speakers"),
            None,
        )
        .map_err(|e| MediaError::Device(format!("speakers: {e}")))
}

/// A microphone: 20 ms frames of 48 kHz mono PCM as the device delivers them.
pub struct Microphone {
    queue: Arc<Mutex<VecDeque<i16>>>,
    /// From the sound reaching the microphone to the callback that delivers it.
    latency: Latency,
    _stream: HeldStream,
}

impl Microphone {
    /// Opens `id`, or the default input device.
    pub fn open(id: Option<&str>) -> Result<Microphone, MediaError> {
        let device = device(id, true)?;
        let (config, format) = config(&device, true)?;
        let queue: Arc<Mutex<VecDeque<i16>>> = Arc::default();
        let fill = queue.clone();
        let latency = new_latency();
        let reported = latency.clone();
        let stream = hold_stream("tincan-microphone", move || match format {
            SampleFormat::F32 => input::<f32>(&device, config, fill, reported),
            _ => input::<i16>(&device, config, fill, reported),
        })?;
        Ok(Microphone {
            queue,
            latency,
            _stream: stream,
        })
    }

    /// How long the sound of a sample analysed now as played reaches the echo canceller
    /// in the microphone's next frame: the speakers' latency, the microphone's, and what
    /// waits in the microphone's queue. None when neither device reports a latency.
    pub fn echo_delay(&self, speakers: &Speakers) -> Option<Duration> {
        let (out, inp) = (speakers.latency(), load_latency(&self.latency));
        if out.is_none() && inp.is_none() {
            return None;
        }
        let queued = self.queue.lock().expect("microphone queue").len();
        let queued = Duration::from_micros(queued as u64 * 1_000_000 / u64::from(AUDIO_RATE));
        Some(out.unwrap_or_default() + inp.unwrap_or_default() + queued)
    }

    /// The next 20 ms, if the device has delivered that much. More than 60 ms waiting
    /// (a device clock a little fast, a missed tick) is cut to 20 ms, so the delay never
    /// settles at the queue's limit.
    pub fn next_frame(&self) -> Option<Vec<i16>> {
        let mut q = self.queue.lock().expect("microphone queue");
        if q.len() > 3 * AUDIO_FRAME {
            let extra = q.len() - 2 * AUDIO_FRAME;
            q.drain(..extra);
        }
        (q.len() >= AUDIO_FRAME).then(|| q.drain(..AUDIO_FRAME).collect())
    }
}

fn input<T: SizedSample>(
    device: &cpal::Device,
    config: StreamConfig,
    queue: Arc<Mutex<VecDeque<i16>>>,
    latency: Latency,
) -> Result<cpal::Stream, MediaError>
where
    f32: FromSample<T>,
{
    let channels = usize::from(config.channels.max(1));
    let rate = config.sample_rate;
    device
        .build_input_stream(
            config,
            move |data: &[T], info: &cpal::InputCallbackInfo| {
                let t = info.timestamp();
                store_latency(&latency, t.callback, t.capture);
                let mono: Vec<i16> = data
                    .chunks(channels)
                    .map(|frame| {
                        let sum: f32 = frame.iter().map(|s| s.to_sample::<f32>()).sum();
                        (sum / channels as f32 * 32767.0).clamp(-32768.0, 32767.0) as i16
                    })
                    .collect();
                let mut q = queue.lock().expect("microphone queue");
                q.extend(resample(&mono, rate, AUDIO_RATE));
                if q.len() > MAX_QUEUE {
                    let extra = q.len() - MAX_QUEUE;
                    q.drain(..extra);
                }
            },
            |e| tracing::warn!(error = %e, "microphone"),
            None,
        )
        .map_err(|e| MediaError::Device(format!("microphone: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_duration() {
        let pcm: Vec<i16> = (0..960).collect();
        assert_eq!(resample(&pcm, 48_000, 44_100).count(), 882);
        assert_eq!(resample(&pcm, 48_000, 48_000).collect::<Vec<_>>(), pcm);
    }

    /// ALSA's built-in `null` device exists on every Linux machine with libasound, sound
    /// card or not: playback and capture open, run and close cleanly.
    #[test]
    fn the_null_device_plays_and_records() {
        let speakers = Speakers::open(Some("alsa:null")).expect("ALSA null output");
        speakers.play("bob", &[1000; AUDIO_FRAME]);
        let mic = Microphone::open(Some("alsa:null")).expect("ALSA null input");
        // The null device delivers silence as fast as it is read.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let frame = loop {
            if let Some(f) = mic.next_frame() {
                break f;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no audio from the null microphone"
            );
            std::thread::yield_now();
        };
        assert_eq!(frame.len(), AUDIO_FRAME);
        // What the speakers mixed comes back, in whole frames, for the echo canceller.
        let played = loop {
            let p = speakers.take_played();
            if !p.is_empty() {
                break p;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "nothing played into the null speakers"
            );
            std::thread::yield_now();
        };
        assert_eq!(played.len() % AUDIO_FRAME, 0);
        if let Some(delay) = mic.echo_delay(&speakers) {
            assert!(delay < std::time::Duration::from_secs(10), "{delay:?}");
        }
        drop(mic);
        drop(speakers);
        assert_eq!(census::census().threads, 0);
    }

    #[test]
    fn latencies_are_unknown_until_reported() {
        let latency = new_latency();
        assert_eq!(load_latency(&latency), None);
        let at = |ms: u64| {
            StreamInstant::ZERO
                .checked_add(Duration::from_millis(ms))
                .unwrap()
        };
        store_latency(&latency, at(45), at(5));
        assert_eq!(load_latency(&latency), Some(Duration::from_millis(40)));
        // A host whose clocks disagree reports no negative latency.
        store_latency(&latency, at(5), at(45));
        assert_eq!(load_latency(&latency), Some(Duration::ZERO));
    }
}
