//! One call's media: a handle ([`MediaSession`]) and the task that owns every peer
//! connection of the call.
//!
//! The task is the only place media state changes. It takes commands from the handle
//! (a participant joined or left, a negotiation message arrived, mute, camera), events
//! from the peer connections, encoded pictures from the capture thread, and a 20 ms
//! audio tick; it reports [`MediaEvent`]s on a channel and sends negotiation messages
//! through the caller's [`OutSignal`] channel.
//!
//! Teardown, in this order (tested by `tests/integration/media.rs`):
//! 1. the sources stop: the capture thread's command channel closes, so it returns, and
//!    the microphone closes;
//! 2. every peer connection closes, which stops its driver task and drops its sockets;
//!    the remote tracks end, so their reader tasks return and drop the decoders' inputs;
//! 3. the decoder threads and the capture thread are joined, and the speakers close;
//! 4. [`MediaEvent::Ended`] is sent and the task returns; [`MediaSession::close`] returns
//!    after that.

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle as ThreadHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::adaptation::Adaptation;
use crate::audio::{Microphone, SpeakerSlot, Speakers};
use crate::bandwidth;
use crate::census;
use crate::codec::{AudioEncoder, Tone};
use crate::config::{AudioInput, AudioOutput, MediaConfig, VideoInput};
use crate::event::{MediaEvent, OutSignal};
use crate::freeze::Pictures;
use crate::inbound::{inbound_sink, spawn_decoder};
use crate::keyframe::DecoderLoss;
use crate::negotiation::{Negotiation, Signal, Step};
use crate::path::{PathChange, PathWatch};
use crate::peer::{Counters, Peer, PeerEvent, PeerState};
use crate::processing::{AudioProcessing, AudioProcessor};
use crate::source::{self, CaptureCommand, EncodedVideo};

/// Events waiting for the consumer. Pictures, previews and audio reports are dropped
/// when it is full (late media is useless); control events wait for room.
const EVENT_CAPACITY: usize = 256;
/// Encoded pictures waiting for the session task; a newer one is dropped when full.
const ENCODED_CAPACITY: usize = 2;
/// Access units waiting for a participant's decoder thread; dropped when it is behind.
const DECODE_CAPACITY: usize = 8;
/// How often the encoders' targets follow the bandwidth estimate: about once per feedback
/// report, and the policy's own holds do the smoothing. Every 250 ms (until 2026-12-06)
/// an encoder kept its old rate for up to a quarter second after a cut, into a queue
/// already full (the network lab's case (e)); a look at the readings is cheap.
const ADAPT_EVERY: Duration = Duration::from_millis(100);

mod quality;
mod sound;

enum Command {
    AddPeer(String),
    RemovePeer(String),
    Signal { from: String, payload: String },
    Mic(bool),
    Camera(bool),
    CameraDevice(VideoInput),
    Devices(Option<AudioInput>, Option<AudioOutput>),
    Processing(AudioProcessing),
    Close(oneshot::Sender<()>),
}

/// The handle to one call's media. Dropping it without [`MediaSession::close`] also
/// tears everything down, but nobody can wait for it.
pub struct MediaSession {
    commands: mpsc::UnboundedSender<Command>,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl MediaSession {
    /// Starts the session's task (on the current tokio runtime) and its capture thread.
    pub fn start(
        config: MediaConfig,
        signals: mpsc::UnboundedSender<OutSignal>,
    ) -> (MediaSession, mpsc::Receiver<MediaEvent>) {
        let (command_tx, command_rx) = mpsc::unbounded_channel();
        let (event_tx, event_rx) = mpsc::channel(EVENT_CAPACITY);
        let (video_tx, video_rx) = mpsc::channel(ENCODED_CAPACITY);
        let (capture_tx, capture_rx) = std_mpsc::channel();
        let (input, video, camera) = (config.camera_device.clone(), config.video, config.camera);
        let (capture_events, preview_width) = (event_tx.clone(), config.preview_width);
        let capture = census::thread("tincan-capture", move || {
            source::capture_loop(
                input,
                video,
                camera,
                capture_rx,
                video_tx,
                capture_events,
                preview_width,
            )
        });
        let (peer_tx, peer_rx) = mpsc::unbounded_channel();
        let config_processing = config.processing;
        let video_bps = config.video.bitrate_bps;
        let driver = Driver {
            microphone: None,
            speakers: SpeakerSlot::default(),
            mic: true,
            camera: config.camera,
            screen: matches!(config.camera_device, VideoInput::Screen(_)),
            config,
            peers: HashMap::new(),
            generation: 0,
            events: event_tx,
            signals,
            peer_tx,
            capture: Some(capture_tx),
            capture_thread: Some(capture),
            tone: Tone::new(),
            processor: AudioProcessor::new(config_processing),
            audio: AudioEncoder::new().ok(),
            // The capture thread holds each picture to its own setup's bitrate; this is
            // only the ceiling the estimate may ask for.
            adaptation: Adaptation::new(bandwidth::MAX_BPS as u32).for_video(video_bps),
            congested: false,
        };
        let task = tokio::spawn(census::task(driver.run(command_rx, peer_rx, video_rx)));
        (
            MediaSession {
                commands: command_tx,
                task: tokio::sync::Mutex::new(Some(task)),
            },
            event_rx,
        )
    }

    /// `user` is in the call: connect to them (idempotent).
    pub fn add_peer(&self, user: &str) {
        let _ = self.commands.send(Command::AddPeer(user.to_owned()));
    }

    /// `user` left the call: close the connection with them.
    pub fn remove_peer(&self, user: &str) {
        let _ = self.commands.send(Command::RemovePeer(user.to_owned()));
    }

    /// A negotiation message from `from` (the JSON `payload` of `onReceiveMediaSignal`).
    pub fn signal(&self, from: &str, payload: &str) {
        let _ = self.commands.send(Command::Signal {
            from: from.to_owned(),
            payload: payload.to_owned(),
        });
    }

    /// Microphone on (sending) or off (muted: nothing is sent, the far end is told).
    pub fn set_mic(&self, on: bool) {
        let _ = self.commands.send(Command::Mic(on));
    }

    /// Switches sound devices during the call (`None`: keep the one in use).
    pub fn set_devices(&self, microphone: Option<AudioInput>, speakers: Option<AudioOutput>) {
        let _ = self.commands.send(Command::Devices(microphone, speakers));
    }

    /// Echo cancellation and noise suppression on or off for the microphone, from its
    /// next 20 ms frame (what the far end hears changes at once).
    pub fn set_processing(&self, processing: AudioProcessing) {
        let _ = self.commands.send(Command::Processing(processing));
    }

    /// Camera on or off (nothing is sent, the far end is told).
    pub fn set_camera(&self, on: bool) {
        let _ = self.commands.send(Command::Camera(on));
    }

    /// Switches the picture source during the call (a camera, or the test pattern).
    pub fn set_camera_device(&self, input: VideoInput) {
        let _ = self.commands.send(Command::CameraDevice(input));
    }

    /// Tears the session down (see the module docs for the order) and returns once
    /// every connection, task and thread it started is gone — also when several callers
    /// close at once. Closing again does nothing.
    pub async fn close(&self) {
        let (ack_tx, ack_rx) = oneshot::channel();
        if self.commands.send(Command::Close(ack_tx)).is_ok() {
            let _ = ack_rx.await;
        }
        // The lock is held while the task finishes, so a second caller returns only
        // once it has; the handle stays in place if this caller is cancelled meanwhile.
        let mut task = self.task.lock().await;
        if let Some(handle) = task.as_mut() {
            let _ = handle.await;
            *task = None;
        }
    }
}

/// One remote participant.
struct Remote {
    generation: u64,
    negotiation: Negotiation,
    peer: Peer,
    /// Whether the path works, and when to restart ICE or give up on it.
    path: PathWatch,
    decoder_input: Option<std_mpsc::SyncSender<Bytes>>,
    decoder: Option<ThreadHandle<()>>,
    /// Pictures shown and freezes, counted by the decoder thread.
    pictures: Arc<Mutex<Pictures>>,
    last: Counters,
}

struct Driver {
    config: MediaConfig,
    mic: bool,
    camera: bool,
    /// Whether the picture chosen is a shared screen (the far end labels it so).
    screen: bool,
    peers: HashMap<String, Remote>,
    generation: u64,
    events: mpsc::Sender<MediaEvent>,
    signals: mpsc::UnboundedSender<OutSignal>,
    peer_tx: mpsc::UnboundedSender<(String, u64, PeerEvent)>,
    capture: Option<std_mpsc::Sender<CaptureCommand>>,
    capture_thread: Option<ThreadHandle<()>>,
    tone: Tone,
    /// Echo cancellation, noise suppression, gain control for the microphone (never the
    /// tone: no acoustic path to cancel, and noise suppression would take a steady tone
    /// for noise).
    processor: AudioProcessor,
    microphone: Option<Microphone>,
    /// Shared with every participant's inbound sink, so the speakers can change mid-call.
    speakers: SpeakerSlot,
    audio: Option<AudioEncoder>,
    /// What the encoders aim for, from the bandwidth estimates of the participants.
    adaptation: Adaptation,
    /// Whether a participant's path was congested at the last look (the capture thread
    /// holds requested key frames back meanwhile).
    congested: bool,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut peer_events: mpsc::UnboundedReceiver<(String, u64, PeerEvent)>,
        mut video: mpsc::Receiver<EncodedVideo>,
    ) {
        let mut audio_tick = tokio::time::interval(Duration::from_millis(20));
        audio_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut quality_tick = tokio::time::interval(Duration::from_secs(1));
        quality_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut adapt_tick = tokio::time::interval(ADAPT_EVERY);
        adapt_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let devices = (self.config.microphone.clone(), self.config.speakers.clone());
        self.switch_sound_devices(Some(devices.0), Some(devices.1))
            .await;
        let ack = loop {
            tokio::select! {
                command = commands.recv() => match command {
                    None => break None,
                    Some(Command::Close(ack)) => break Some(ack),
                    Some(command) => self.on_command(command).await,
                },
                Some((user, generation, event)) = peer_events.recv() => {
                    self.on_peer_event(user, generation, event).await;
                }
                Some(picture) = video.recv() => {
                    for remote in self.peers.values_mut().filter(|r| r.path.is_up()) {
                        if let Err(e) = remote.peer.send_video(picture.data.clone(), picture.duration).await {
                            tracing::debug!(error = %e, "video not sent");
                        }
                    }
                }
                _ = audio_tick.tick() => self.send_audio().await,
                _ = quality_tick.tick() => self.check_quality().await,
                _ = adapt_tick.tick() => self.adapt().await,
            }
        };
        self.teardown().await;
        let _ = self.events.send(MediaEvent::Ended).await;
        if let Some(ack) = ack {
            let _ = ack.send(());
        }
    }

    /// Switches to the microphone and speakers asked for (`None`: keep what is in use),
    /// opening and closing devices off the async threads (a sound server can take its
    /// time). One that cannot be opened is reported, and the call goes on with the tone
    /// or without playback.
    async fn switch_sound_devices(
        &mut self,
        input: Option<AudioInput>,
        output: Option<AudioOutput>,
    ) {
        let opened = tokio::task::spawn_blocking(move || {
            let microphone = input.map(|i| match i {
                AudioInput::Tone => Ok(None),
                AudioInput::Device(id) => Microphone::open(id.as_deref()).map(Some),
            });
            let speakers = output.map(|o| match o {
                AudioOutput::None => Ok(None),
                AudioOutput::Device(id) => Speakers::open(id.as_deref()).map(Some),
            });
            (microphone, speakers)
        })
        .await;
        let Ok((microphone, speakers)) = opened else {
            return;
        };
        let mut failures = Vec::new();
        // Devices taken out of use, closed together off the async threads.
        let (mut old_microphone, mut old_speakers) = (None, None);
        if let Some(m) = microphone {
            let new = m.unwrap_or_else(|e| {
                failures.push(("microphone", e));
                None
            });
            old_microphone = std::mem::replace(&mut self.microphone, new);
        }
        if let Some(sp) = speakers {
            let new = sp.unwrap_or_else(|e| {
                failures.push(("speakers", e));
                None
            });
            let old = std::mem::replace(&mut *self.speakers.lock().expect("speakers slot"), new);
            old_speakers = old;
        }
        let _ = tokio::task::spawn_blocking(move || drop((old_microphone, old_speakers))).await;
        for (device, e) in failures {
            tracing::warn!(device, error = %e, "sound device unavailable");
            let reason = e.to_string();
            let _ = self
                .events
                .send(MediaEvent::DeviceUnavailable { device, reason })
                .await;
        }
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::AddPeer(user) => self.add_peer(&user).await,
            Command::RemovePeer(user) => {
                if let Some(speakers) = self.speakers.lock().expect("speakers slot").as_ref() {
                    speakers.remove(&user);
                }
                if let Some(remote) = self.peers.remove(&user) {
                    close_remote(remote).await;
                    self.update_audience();
                    let closed = MediaEvent::PeerState {
                        user,
                        state: PeerState::Closed,
                        at: Instant::now(),
                    };
                    let _ = self.events.send(closed).await;
                }
            }
            Command::Signal { from, payload } => self.on_signal(from, &payload).await,
            Command::Mic(on) => {
                self.mic = on;
                self.broadcast_state();
            }
            Command::Camera(on) => {
                self.camera = on;
                if let Some(capture) = &self.capture {
                    let _ = capture.send(CaptureCommand::Camera(on));
                }
                self.broadcast_state();
            }
            Command::CameraDevice(input) => {
                let screen = matches!(input, VideoInput::Screen(_));
                if let Some(capture) = &self.capture {
                    let _ = capture.send(CaptureCommand::Input(input));
                }
                if screen != self.screen {
                    self.screen = screen;
                    self.broadcast_state();
                }
            }
            Command::Devices(input, output) => self.switch_sound_devices(input, output).await,
            Command::Processing(processing) => self.processor.set(processing),
            Command::Close(_) => unreachable!("handled by the loop"),
        }
    }

    /// What we send, for the `state` message.
    fn own_state(&self) -> Signal {
        Signal::State {
            mic: self.mic,
            // Audio only (a thin link) looks like a camera turned off to the others:
            // no pictures are coming, and the window shows why not on our side.
            camera: self.camera && !self.adaptation.plan().audio_only(),
            screen: self.screen,
        }
    }

    fn broadcast_state(&self) {
        let state = self.own_state();
        for user in self.peers.keys() {
            self.send_signal(user, &state);
        }
    }

    fn send_signal(&self, to: &str, signal: &Signal) {
        let payload = serde_json::to_string(signal).expect("signals serialize");
        let _ = self.signals.send(OutSignal {
            to: to.to_owned(),
            payload,
        });
    }

    /// Creates the connection with `user` if there is none, and starts negotiating.
    async fn add_peer(&mut self, user: &str) {
        if user == self.config.me || self.peers.contains_key(user) {
            return;
        }
        self.generation += 1;
        let generation = self.generation;
        let (decoder_tx, decoder_rx) = std_mpsc::sync_channel::<Bytes>(DECODE_CAPACITY);
        let pictures = Arc::new(Mutex::new(Pictures::default()));
        // Raised by the decoder, read by the connection's track reader: it asks for a key frame.
        let decoder_loss = Arc::new(DecoderLoss::default());
        let decoder = spawn_decoder(
            user.to_owned(),
            self.config.frame_rgba_width,
            decoder_rx,
            self.events.clone(),
            pictures.clone(),
            decoder_loss.clone(),
        );
        let events = {
            let tx = self.peer_tx.clone();
            let user = user.to_owned();
            Arc::new(move |e| {
                let _ = tx.send((user.clone(), generation, e));
            })
        };
        let inbound = inbound_sink(
            user.to_owned(),
            decoder_tx.clone(),
            self.events.clone(),
            self.speakers.clone(),
        );
        let seed = (generation as u32).wrapping_mul(0x9E37_79B9) ^ std::process::id();
        let peer = match Peer::new(&self.config.peer, events, inbound, seed, decoder_loss).await {
            Ok(peer) => peer,
            Err(e) => {
                drop(decoder_tx);
                // Off the async threads: the stack may still hold the decoder's other input
                // for a moment.
                let _ = tokio::task::spawn_blocking(move || decoder.join()).await;
                let _ = self
                    .events
                    .send(MediaEvent::Failed {
                        user: user.to_owned(),
                        reason: e.to_string(),
                    })
                    .await;
                return;
            }
        };
        let _ = self
            .events
            .send(MediaEvent::PeerState {
                user: user.to_owned(),
                state: PeerState::Connecting,
                at: Instant::now(),
            })
            .await;
        let mut remote = Remote {
            generation,
            negotiation: Negotiation::new(&self.config.me, user),
            peer,
            path: PathWatch::new(Instant::now()),
            decoder_input: Some(decoder_tx),
            decoder: Some(decoder),
            pictures,
            last: Counters::default(),
        };
        let steps = remote.negotiation.start();
        self.peers.insert(user.to_owned(), remote);
        self.run_steps(user, steps).await;
    }

    async fn on_signal(&mut self, from: String, payload: &str) {
        let signal: Signal = match serde_json::from_str(payload) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(from = %from, error = %e, "media signal not understood; ignored");
                return;
            }
        };
        if !self.peers.contains_key(&from) {
            // The far end learnt of us before we learnt of it: only a greeting or an
            // offer may open a connection; anything else belongs to one we closed.
            if !matches!(signal, Signal::Hello | Signal::Offer { .. }) {
                return;
            }
            self.add_peer(&from).await;
        }
        let Some(remote) = self.peers.get_mut(&from) else {
            return;
        };
        match remote.negotiation.on_signal(signal) {
            Ok(steps) => self.run_steps(&from, steps).await,
            Err(reason) => {
                tracing::warn!(from = %from, reason, "media signal out of order; ignored")
            }
        }
    }

    /// Carries out negotiation steps; a step that fails ends media with that participant.
    async fn run_steps(&mut self, user: &str, steps: Vec<Step>) {
        let mut queue = std::collections::VecDeque::from(steps);
        while let Some(step) = queue.pop_front() {
            let Some(remote) = self.peers.get_mut(user) else {
                return;
            };
            let result = match step {
                Step::Send(signal) => {
                    self.send_signal(user, &signal);
                    Ok(())
                }
                Step::Offer { ice_restart } => match remote.peer.offer(ice_restart).await {
                    Ok(sdp) => {
                        self.send_signal(user, &Signal::Offer { sdp });
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                Step::Answer { sdp } => match remote.peer.answer(sdp).await {
                    Ok(sdp) => {
                        queue.extend(remote.negotiation.remote_description_set());
                        self.send_signal(user, &Signal::Answer { sdp });
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                Step::ApplyAnswer { sdp } => match remote.peer.apply_answer(sdp).await {
                    Ok(()) => {
                        queue.extend(remote.negotiation.remote_description_set());
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                Step::AddCandidate(c) => {
                    if let Err(e) = remote.peer.add_candidate(c).await {
                        tracing::debug!(error = %e, "remote candidate refused");
                    }
                    Ok(())
                }
                Step::RemoteState {
                    mic,
                    camera,
                    screen,
                } => {
                    let _ = self
                        .events
                        .send(MediaEvent::RemoteState {
                            user: user.to_owned(),
                            mic,
                            camera,
                            screen,
                        })
                        .await;
                    Ok(())
                }
                Step::Closed { reason } => {
                    self.give_up(user, format!("the other side ended media: {reason}"), false)
                        .await;
                    return;
                }
            };
            if let Err(e) = result {
                self.give_up(user, e.to_string(), true).await;
                return;
            }
        }
    }

    /// Ends media with `user` for good and says so (to the far end too, when `tell`).
    async fn give_up(&mut self, user: &str, reason: String, tell: bool) {
        if tell {
            self.send_signal(
                user,
                &Signal::Bye {
                    reason: reason.clone(),
                },
            );
        }
        if let Some(remote) = self.peers.remove(user) {
            close_remote(remote).await;
            self.update_audience();
        }
        let _ = self
            .events
            .send(MediaEvent::Failed {
                user: user.to_owned(),
                reason,
            })
            .await;
    }

    async fn on_peer_event(&mut self, user: String, generation: u64, event: PeerEvent) {
        let Some(remote) = self
            .peers
            .get_mut(&user)
            .filter(|r| r.generation == generation)
        else {
            return;
        };
        match event {
            PeerEvent::Candidate(c) => self.send_signal(&user, &Signal::Candidate(c)),
            // The capture thread rate-limits these (keyframe.rs): many may come, one serves all.
            PeerEvent::KeyFrameRequest => {
                if let Some(capture) = &self.capture {
                    let _ = capture.send(CaptureCommand::KeyFrame);
                }
            }
            PeerEvent::State(state) => {
                let _ = self
                    .events
                    .send(MediaEvent::PeerState {
                        user: user.clone(),
                        state,
                        at: Instant::now(),
                    })
                    .await;
                match remote.path.on_state(state, Instant::now()) {
                    PathChange::Up => {
                        if let Some(code) = remote.peer.verification_code(&self.config.room).await {
                            let _ = self
                                .events
                                .send(MediaEvent::Verification {
                                    user: user.clone(),
                                    code,
                                })
                                .await;
                        }
                        self.update_audience();
                        // The new peer needs a key frame before it can show anything.
                        if let Some(capture) = &self.capture {
                            let _ = capture.send(CaptureCommand::KeyFrame);
                        }
                        // Tell the newcomer what we are (not) sending.
                        if !self.mic || !self.camera || self.screen {
                            self.send_signal(&user, &self.own_state());
                        }
                    }
                    PathChange::Lost => {
                        let steps = remote.negotiation.restart();
                        self.update_audience();
                        self.run_steps(&user, steps).await;
                    }
                    PathChange::None => {}
                }
            }
        }
    }

    /// Tells the capture thread whether anyone can receive pictures.
    fn update_audience(&self) {
        let any = self.peers.values().any(|r| r.path.is_up());
        if let Some(capture) = &self.capture {
            let _ = capture.send(CaptureCommand::Audience(any));
        }
    }

    async fn teardown(&mut self) {
        self.capture = None;
        if let Some(microphone) = self.microphone.take() {
            let _ = tokio::task::spawn_blocking(move || drop(microphone)).await;
        }
        for (_, remote) in self.peers.drain() {
            close_remote(remote).await;
        }
        if let Some(capture) = self.capture_thread.take() {
            let _ = tokio::task::spawn_blocking(move || capture.join()).await;
        }
        // The connections (and their track readers) are gone: nothing plays any more.
        let speakers = self.speakers.lock().expect("speakers slot").take();
        if let Some(speakers) = speakers {
            let _ = tokio::task::spawn_blocking(move || drop(speakers)).await;
        }
    }
}

/// Closes one participant's connection, then waits for its decoder thread.
async fn close_remote(mut remote: Remote) {
    remote.peer.close().await;
    remote.decoder_input = None;
    if let Some(decoder) = remote.decoder.take() {
        let _ = tokio::task::spawn_blocking(move || decoder.join()).await;
    }
}
