//! The app's call media: starts a [`CallMedia`] when a call of ours gets a room (our
//! invite succeeded, or we accepted), feeds it the session's signaling events, ends it
//! when the call ends, and hands what it produces to the window: decoded pictures
//! through the page's frame [`Channel`] as raw bytes, everything else as events (through
//! [`crate::events`]).
//!
//! The page does not start or stop media itself: the OpenIM-shaped API (`signalingInvite`
//! … `signalingHungUp`) is all it calls, so the seed's examples get sound and picture too.
//!
//! Frame message layout (little-endian), one per picture, drawn by `ui/media.js`:
//! `u8 kind` (0 remote, 1 local preview) · `u8 n` · `n` bytes userID (UTF-8) · `u16 width` ·
//! `u16 height` · `u32 counter` (stamp, or `u32::MAX`) · `u32 latency µs` (or `u32::MAX`) ·
//! RGBA pixels.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tauri::ipc::{Channel, InvokeResponseBody};
use tauri::{AppHandle, Manager};
use tincan_media::{
    pattern, AudioInput, AudioOutput, AudioProcessing, CallMedia, EarlyEvents, MediaConfig,
    MediaEvent, PeerSettings, VideoInput, VideoSettings,
};
use tincan_sdk::protocol::{
    ActionParams, Event, IceServer, Invitation, MediaType, RoomId, SESSION_SINGLE,
};
use tincan_sdk::{new_operation_id, CallPhase, CallState, Client};

use crate::{events, levels};

/// Width of the pictures sent to the window (the canvas scales them).
const WINDOW_WIDTH: u32 = 320;
/// At most this many pictures per second per participant reach the window.
const WINDOW_FPS: u32 = 15;

/// The call whose media runs.
struct Active {
    room: RoomId,
    invitation: Invitation,
    media: Arc<CallMedia>,
}

/// The active call's media, and what came for a call whose media has not started yet
/// (one lock for both: an event is either kept or given to the media, never lost between).
#[derive(Default)]
struct Call {
    active: Option<Active>,
    early: EarlyEvents,
}

/// Managed state: the active call's media and the page's frame channel.
#[derive(Default)]
pub struct MediaState {
    call: Mutex<Call>,
    frames: Mutex<Option<Channel<InvokeResponseBody>>>,
    /// Where media binds (`TINCAN_MEDIA_BIND`; default every interface but loopback).
    bind: Mutex<Option<String>>,
    /// The sound devices and camera chosen in settings.
    devices: Mutex<DeviceChoice>,
    /// Echo cancellation and noise suppression as chosen in settings (both on by default).
    processing: Mutex<AudioProcessing>,
    /// The screen or window the active call shares instead of the camera, if any.
    sharing: Mutex<Option<String>>,
}

/// Devices as settings name them: `default`, a device id, or `tone` / `none` /
/// `pattern` (the synthetic source, or no playback).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct DeviceChoice {
    pub microphone: String,
    pub speakers: String,
    /// Absent from pages older than camera support: the default camera.
    #[serde(default = "default_device")]
    pub camera: String,
}

fn default_device() -> String {
    "default".into()
}

impl Default for DeviceChoice {
    /// The machine's default microphone, speakers and camera (the tone, silence and the
    /// test pattern when it has none).
    fn default() -> Self {
        DeviceChoice {
            microphone: default_device(),
            speakers: default_device(),
            camera: default_device(),
        }
    }
}

impl DeviceChoice {
    fn input(&self) -> AudioInput {
        AudioInput::from_choice(&self.microphone)
    }

    fn video(&self) -> VideoInput {
        VideoInput::from_choice(&self.camera)
    }

    fn output(&self) -> AudioOutput {
        AudioOutput::from_choice(&self.speakers)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MediaState {
    pub fn new(bind: Option<String>) -> MediaState {
        MediaState {
            bind: Mutex::new(bind),
            ..MediaState::default()
        }
    }

    /// Where media binds: `--media-bind` / `TINCAN_MEDIA_BIND`, or `None` for every
    /// interface but loopback.
    pub fn bind(&self) -> Option<String> {
        lock(&self.bind).clone()
    }

    /// Devices for the call in progress, if any, and the next ones. The camera is only
    /// reopened when it changed (reopening costs a moment of picture).
    pub fn set_devices(&self, choice: DeviceChoice) {
        let previous = std::mem::replace(&mut *lock(&self.devices), choice.clone());
        if let Some(media) = self.media() {
            media.set_devices(Some(choice.input()), Some(choice.output()));
            // While a screen is shared the camera choice waits for sharing to stop.
            if choice.camera != previous.camera && lock(&self.sharing).is_none() {
                media.set_camera_device(choice.video());
            }
        }
    }

    /// Shares the screen or window `id` (from [`tincan_media::screens`]) in the call in
    /// progress instead of the camera, turning the picture on; `None` stops sharing and
    /// goes back to the camera chosen in settings (the page then sets the camera on or
    /// off as its button says). `false` when there is no call.
    pub fn share_screen(&self, id: Option<String>) -> bool {
        let Some(media) = self.media() else {
            return false;
        };
        match &id {
            Some(id) => {
                media.set_camera_device(VideoInput::Screen(id.clone()));
                media.set_camera(true);
            }
            None => media.set_camera_device(lock(&self.devices).video()),
        }
        *lock(&self.sharing) = id;
        true
    }

    /// Echo cancellation and noise suppression for the call in progress, at once, and
    /// the next ones.
    pub fn set_processing(&self, processing: AudioProcessing) {
        *lock(&self.processing) = processing;
        if let Some(media) = self.media() {
            media.set_processing(processing);
        }
    }

    /// The speakers chosen in settings (the ringtone plays there too).
    pub fn speakers(&self) -> AudioOutput {
        lock(&self.devices).output()
    }

    /// The page's channel for pictures (it registers one at start-up).
    pub fn set_frames(&self, channel: Channel<InvokeResponseBody>) {
        *lock(&self.frames) = Some(channel);
    }

    fn media(&self) -> Option<Arc<CallMedia>> {
        lock(&self.call).active.as_ref().map(|a| a.media.clone())
    }
}

/// Starts media for `invitation`'s call in `room`, replacing any other. `peer`: connect
/// to this participant at once (the invitee of a one-to-one call, to its inviter).
pub fn start(
    app: &AppHandle,
    client: Client,
    invitation: Invitation,
    room: RoomId,
    token: String,
    ice: &[IceServer],
    peer: Option<String>,
) {
    let state = app.state::<MediaState>();
    if lock(&state.call)
        .active
        .as_ref()
        .is_some_and(|a| a.room == room)
    {
        // Already in this call (people added to it, a repeated join): media goes on.
        if let (Some(peer), Some(media)) = (peer, state.media()) {
            media.add_peer(&peer);
        }
        return;
    }
    let bind = lock(&state.bind)
        .clone()
        .unwrap_or_else(|| "0.0.0.0:0".to_owned());
    let settings = PeerSettings {
        ice_servers: tincan_media::ice_servers(ice),
        relay_only: false,
        bind: vec![bind],
        ice_check_interval: Duration::from_millis(10),
        turn_tls: None,
    };
    let mut config = MediaConfig::new(client.user_id().as_str(), settings);
    config.video = VideoSettings::default();
    config.camera = invitation.media_type == MediaType::Video;
    config.frame_rgba_width = WINDOW_WIDTH;
    config.preview_width = WINDOW_WIDTH / 2;
    let devices = lock(&state.devices).clone();
    config.microphone = devices.input();
    config.speakers = devices.output();
    config.camera_device = devices.video();
    config.processing = *lock(&state.processing);
    let (media, events) = CallMedia::start(client.clone(), room.clone(), token, config);
    let media = Arc::new(media);
    if let Some(peer) = peer {
        media.add_peer(&peer);
    }
    let previous = {
        let mut call = lock(&state.call);
        // The far end's answer may have come before our reply did (the forwarder and this
        // command are separate tasks): it goes to this media first, in order, under the
        // lock the forwarder takes too.
        for event in call.early.take(&room) {
            media.on_event(&event);
        }
        call.active.replace(Active {
            room: room.clone(),
            invitation,
            media: media.clone(),
        })
    };
    // A new call starts with the camera, whatever the last one shared.
    *lock(&state.sharing) = None;
    if let Some(previous) = previous {
        tauri::async_runtime::spawn(async move { previous.media.close().await });
    }
    tauri::async_runtime::spawn(pump(app.clone(), client, room, media, events));
}

/// Feeds a signaling event to the active call's media (whom to connect to, negotiation),
/// or keeps it for the call's media about to start (see [`EarlyEvents`]).
pub fn on_event(app: &AppHandle, event: &Event) {
    let state = app.state::<MediaState>();
    let mut call = lock(&state.call);
    let Call { active, early } = &mut *call;
    if !early.keep(event, active.as_ref().map(|a| &a.room)) {
        if let Some(active) = active {
            active.media.on_event(event);
        }
    }
}

/// Follows the SDK's model of this device's call: when it says the call is over, its
/// media ends. (Media starts from the invite's or accept's reply, which carries the room
/// token; see `commands::joining`.)
pub fn on_call_state(app: &AppHandle, state: &CallState) {
    if state.phase != CallPhase::Ended {
        return;
    }
    // No room: our invite was refused before it had one, and no media started.
    if let Ok(room) = RoomId::new(state.room_id.clone()) {
        end(app, Some(&room));
    }
}

/// Ends the active call's media (only if it is `room`'s, when given).
pub fn end(app: &AppHandle, room: Option<&RoomId>) {
    let state = app.state::<MediaState>();
    let active = {
        let mut call = lock(&state.call);
        match (call.active.as_ref(), room) {
            (Some(a), Some(r)) if &a.room != r => None,
            _ => call.active.take(),
        }
    };
    if let Some(active) = active {
        let app = app.clone();
        tauri::async_runtime::spawn(async move {
            active.media.close().await;
            events::emit_media_ended(&app, active.room.as_str());
        });
    }
}

/// Microphone and camera of the active call; `false` when there is none.
pub fn set_mic(app: &AppHandle, on: bool) -> bool {
    app.state::<MediaState>()
        .media()
        .map(|m| m.set_mic(on))
        .is_some()
}

pub fn set_camera(app: &AppHandle, on: bool) -> bool {
    app.state::<MediaState>()
        .media()
        .map(|m| m.set_camera(on))
        .is_some()
}

/// Carries one call's media events to the window until the session ends.
async fn pump(
    app: AppHandle,
    client: Client,
    room: RoomId,
    media: Arc<CallMedia>,
    mut events: tokio::sync::mpsc::Receiver<MediaEvent>,
) {
    let mut last_sent: std::collections::HashMap<(u8, String), Instant> = Default::default();
    let min_gap = Duration::from_secs(1) / WINDOW_FPS;
    let mut levels = levels::Levels::default();
    while let Some(event) = events.recv().await {
        match event {
            MediaEvent::Audio {
                user,
                samples,
                level,
                at,
            } => {
                if let Some(dbfs) = levels.add(&user, samples, level, at) {
                    let payload = serde_json::json!({"userID": user, "dbfs": dbfs});
                    events::emit_media(&app, events::MediaWindowEvent::AudioLevel, payload);
                }
            }
            MediaEvent::Frame { user, frame, .. } => {
                send_frame(&app, &mut last_sent, min_gap, 0, &user, &frame)
            }
            MediaEvent::Preview { frame } => {
                send_frame(&app, &mut last_sent, min_gap, 1, "", &frame)
            }
            MediaEvent::Ended => break,
            other => {
                let Some((name, payload)) = events::to_media_window_event(&other) else {
                    continue;
                };
                events::emit_media(&app, name, payload);
                if let MediaEvent::Failed { .. } = other {
                    // In its own task: pictures and events keep flowing while it hangs up.
                    let (app, client, room, media) =
                        (app.clone(), client.clone(), room.clone(), media.clone());
                    tauri::async_runtime::spawn(async move {
                        give_up(&app, &client, &room, &media).await
                    });
                }
            }
        }
    }
}

/// Media with a participant of a one-to-one call could not recover: hang up, so both
/// sides end cleanly instead of sitting in a silent call.
async fn give_up(app: &AppHandle, client: &Client, room: &RoomId, media: &Arc<CallMedia>) {
    let state = app.state::<MediaState>();
    let invitation = match lock(&state.call).active.as_ref() {
        Some(a) if &a.room == room && Arc::ptr_eq(&a.media, media) => a.invitation.clone(),
        _ => return,
    };
    if invitation.session_type != SESSION_SINGLE {
        return;
    }
    let params = ActionParams {
        op_user_id: client.user_id().to_string(),
        invitation,
    };
    if let Err(e) = client.signaling_hung_up(&new_operation_id(), params).await {
        tracing::warn!(error = %e, "hang-up after a media failure");
    }
    end(app, Some(room));
}

fn send_frame(
    app: &AppHandle,
    last_sent: &mut std::collections::HashMap<(u8, String), Instant>,
    min_gap: Duration,
    kind: u8,
    user: &str,
    frame: &tincan_media::DecodedFrame,
) {
    if frame.rgba.is_empty() {
        return;
    }
    let key = (kind, user.to_owned());
    let now = Instant::now();
    if last_sent
        .get(&key)
        .is_some_and(|t| now.duration_since(*t) < min_gap)
    {
        return;
    }
    last_sent.insert(key, now);
    let Some(channel) = lock(&app.state::<MediaState>().frames).clone() else {
        return;
    };
    let user = &user.as_bytes()[..user.len().min(255)];
    let mut bytes = Vec::with_capacity(frame.rgba.len() + 16 + user.len());
    bytes.push(kind);
    bytes.push(user.len() as u8);
    bytes.extend_from_slice(user);
    bytes.extend_from_slice(&(frame.width as u16).to_le_bytes());
    bytes.extend_from_slice(&(frame.height as u16).to_le_bytes());
    let (counter, latency) = match frame.stamp {
        Some(s) => (s.counter, s.age_us(pattern::now_us())),
        None => (u32::MAX, u32::MAX),
    };
    bytes.extend_from_slice(&counter.to_le_bytes());
    bytes.extend_from_slice(&latency.to_le_bytes());
    bytes.extend_from_slice(&frame.rgba);
    if let Err(e) = channel.send(InvokeResponseBody::Raw(bytes)) {
        tracing::debug!(error = %e, "picture not delivered to the window");
    }
}
