//! `--media`: the command-line client joins its calls with the synthetic test pattern
//! and tone (or a camera and microphone: `--camera`, `--microphone`), and reports what
//! it receives as JSON lines: once a second per participant (`{"media":"received",…}`:
//! pictures, counter gaps, glass-to-glass latency, audio), plus connection states, the
//! far end's mute and camera, and failures. It is the far end the desktop app's
//! end-to-end tests call.

use std::collections::BTreeMap;
use std::future::pending;

use clap::Args;
use serde_json::json;
use tincan_media::{
    pattern, AudioInput, AudioOutput, AudioProcessing, CallMedia, MediaConfig, MediaEvent,
    PeerSettings, VideoInput, VideoSettings,
};
use tincan_sdk::protocol::{Event, IceServer, Invitation, RoomId};
use tincan_sdk::Client;
use tokio::sync::mpsc;

use crate::output::emit;

/// Media options shared by `listen` and `call`.
#[derive(Debug, Clone, Args)]
pub struct MediaOpts {
    /// Send and receive audio and video in accepted calls (the test pattern and tone
    /// unless --camera / --microphone say otherwise).
    #[arg(long)]
    pub media: bool,
    /// Local address for media; `0.0.0.0:0` is every interface except loopback.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:0")]
    pub media_bind: String,
    /// Outgoing picture size and rate, `WIDTHxHEIGHT@FPS`.
    #[arg(long, value_name = "WxH@FPS", default_value = "640x480@30", value_parser = parse_video)]
    pub video: VideoSettings,
    /// Only relayed (TURN) media paths.
    #[arg(long)]
    pub relay_only: bool,
    /// What to send as sound: `tone` (synthetic), `default` (the default microphone), or
    /// a device id from `tincan devices`.
    #[arg(long, value_name = "DEVICE", default_value = "tone")]
    pub microphone: String,
    /// Echo cancellation for the microphone (`on` or `off`; off with a headset). The
    /// synthetic tone is never processed.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub echo_cancellation: bool,
    /// Noise suppression and automatic gain control for the microphone (`on` or `off`;
    /// off for music).
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub noise_suppression: bool,
    /// Where to play received sound: `none`, `default`, or a device id from `tincan devices`.
    #[arg(long, value_name = "DEVICE", default_value = "none")]
    pub speakers: String,
    /// What to send as video: `pattern` (the synthetic, stamped test pattern), `default`
    /// (the first camera), or a camera id from `tincan devices` (`/dev/video0`).
    #[arg(long, value_name = "DEVICE", default_value = "pattern")]
    pub camera: String,
    /// Share a screen instead of sending a camera: `default` (the X display's first
    /// screen, or the desktop portal's dialog on Wayland), or a screen or window id from
    /// `tincan devices` (`screen:0`, `window:0x400001`, `:5/screen:0`, `portal`).
    #[arg(long, value_name = "ID", conflicts_with = "camera")]
    pub screen: Option<String>,
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("expected on or off, got {s:?}")),
    }
}

fn parse_video(s: &str) -> Result<VideoSettings, String> {
    let bad = || format!("expected WIDTHxHEIGHT@FPS such as 640x480@30, got {s:?}");
    let (size, fps) = s.split_once('@').ok_or_else(bad)?;
    let (w, h) = size.split_once('x').ok_or_else(bad)?;
    let (width, height, fps): (usize, usize, u32) = (
        w.parse().map_err(|_| bad())?,
        h.parse().map_err(|_| bad())?,
        fps.parse().map_err(|_| bad())?,
    );
    if width < 64 || height < 64 || width % 2 == 1 || height % 2 == 1 || !(1..=60).contains(&fps) {
        return Err(format!(
            "{s}: width and height must be even and at least 64, fps 1–60"
        ));
    }
    let bitrate_bps = (width * height * fps as usize / 9).clamp(150_000, 2_500_000) as u32;
    Ok(VideoSettings {
        width,
        height,
        fps,
        bitrate_bps,
        grain: 0,
    })
}

/// What arrived from one participant since the last report.
#[derive(Debug, Default)]
struct Tally {
    frames: u64,
    last_counter: Option<u32>,
    /// Pictures missing between consecutive counters.
    gaps: u64,
    out_of_order: u64,
    unstamped: u64,
    latency_us: Vec<u32>,
    audio_packets: u64,
    loudest: f32,
    /// Width and height of the latest picture (a shared screen has its own).
    size: Option<(u32, u32)>,
}

/// One call's media, reporting as it goes.
pub struct CliMedia {
    media: CallMedia,
    /// The call, when known (to hang up a one-to-one call whose media failed).
    invitation: Option<Invitation>,
    events: mpsc::Receiver<MediaEvent>,
    tallies: BTreeMap<String, Tally>,
}

impl CliMedia {
    /// Starts media for `room`; `video` is false for audio calls (camera off).
    pub fn start(
        client: &Client,
        opts: &MediaOpts,
        video: bool,
        room: RoomId,
        token: String,
        ice: &[IceServer],
    ) -> CliMedia {
        let peer = PeerSettings {
            ice_servers: tincan_media::ice_servers(ice),
            relay_only: opts.relay_only,
            bind: vec![opts.media_bind.clone()],
            ice_check_interval: std::time::Duration::from_millis(10),
            turn_tls: None,
        };
        let mut config = MediaConfig::new(client.user_id().as_str(), peer);
        config.video = opts.video;
        config.camera = video;
        config.microphone = AudioInput::from_choice(&opts.microphone);
        config.speakers = AudioOutput::from_choice(&opts.speakers);
        config.processing = AudioProcessing {
            echo_cancellation: opts.echo_cancellation,
            noise_suppression: opts.noise_suppression,
        };
        config.camera_device = match &opts.screen {
            Some(id) => VideoInput::Screen(id.clone()),
            None => VideoInput::from_choice(&opts.camera),
        };
        emit(&json!({"media": "started", "roomID": room.as_str()}).to_string());
        let (media, events) = CallMedia::start(client.clone(), room, token, config);
        CliMedia {
            media,
            invitation: None,
            events,
            tallies: BTreeMap::new(),
        }
    }

    pub fn set_invitation(&mut self, invitation: Invitation) {
        self.invitation = Some(invitation);
    }

    pub fn invitation(&self) -> Option<&Invitation> {
        self.invitation.as_ref()
    }

    pub fn room(&self) -> &RoomId {
        self.media.room()
    }

    pub fn add_peer(&self, user: &str) {
        self.media.add_peer(user);
    }

    pub fn on_event(&self, event: &Event) {
        self.media.on_event(event);
    }

    /// Closes media and reports the end.
    pub async fn close(self) {
        self.media.close().await;
        emit(&json!({"media": "ended"}).to_string());
    }

    fn report(&mut self, event: MediaEvent) {
        let line = match event {
            MediaEvent::PeerState { user, state, .. } => {
                json!({"media": "peerState", "user": user, "state": state})
            }
            MediaEvent::Frame { user, frame, .. } => {
                let t = self.tallies.entry(user).or_default();
                t.frames += 1;
                t.size = Some((frame.width, frame.height));
                match frame.stamp {
                    Some(stamp) => {
                        if let Some(last) = t.last_counter {
                            if stamp.counter <= last {
                                t.out_of_order += 1;
                            } else {
                                t.gaps += u64::from(stamp.counter - last - 1);
                            }
                        }
                        t.last_counter = Some(stamp.counter);
                        t.latency_us.push(stamp.age_us(pattern::now_us()));
                    }
                    None => t.unstamped += 1,
                }
                return;
            }
            MediaEvent::Audio { user, level, .. } => {
                let t = self.tallies.entry(user).or_default();
                t.audio_packets += 1;
                t.loudest = t.loudest.max(level);
                return;
            }
            MediaEvent::RemoteState {
                user,
                mic,
                camera,
                screen,
            } => {
                json!({"media": "remoteState", "user": user, "mic": mic, "camera": camera, "screen": screen})
            }
            MediaEvent::Quality { user, quality } => {
                let t = self.tallies.entry(user.clone()).or_default();
                let mut latency = std::mem::take(&mut t.latency_us);
                latency.sort_unstable();
                let p50 = latency
                    .get(latency.len() / 2)
                    .map(|us| f64::from(*us) / 1000.0);
                let line = json!({
                    "media": "received", "user": user, "frames": t.frames, "lastCounter": t.last_counter,
                    "gaps": t.gaps, "outOfOrder": t.out_of_order, "unstamped": t.unstamped,
                    "latencyMsP50": p50, "audioPackets": t.audio_packets, "audioLevel": t.loudest,
                    "quality": quality, "size": t.size,
                });
                t.loudest = 0.0;
                line
            }
            MediaEvent::Failed { user, reason } => {
                json!({"media": "failed", "user": user, "reason": reason})
            }
            MediaEvent::DeviceUnavailable { device, reason } => {
                json!({"media": "deviceUnavailable", "device": device, "reason": reason})
            }
            MediaEvent::AudioOnly { on, target_kbps } => {
                json!({"media": "audioOnly", "on": on, "targetKbps": target_kbps})
            }
            MediaEvent::Verification { user, code } => {
                json!({"media": "verification", "user": user, "code": code})
            }
            MediaEvent::Ended | MediaEvent::Preview { .. } => return,
        };
        emit(&line.to_string());
    }
}

/// The next media event of `media`, reported; never resolves without media. Returns
/// `true` when media with a participant failed for good: a one-to-one call should then
/// be hung up, as the desktop app does, so that neither side sits in a silent call.
pub async fn next(media: &mut Option<CliMedia>) -> bool {
    let Some(m) = media.as_mut() else {
        return pending().await;
    };
    match m.events.recv().await {
        Some(event) => {
            let failed = matches!(event, MediaEvent::Failed { .. });
            m.report(event);
            failed
        }
        None => pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_settings_parse_and_refuse_nonsense() {
        let v = parse_video("320x240@15").unwrap();
        assert_eq!((v.width, v.height, v.fps), (320, 240, 15));
        assert!(parse_video("320x240").is_err());
        assert!(parse_video("31x240@15").is_err());
        assert!(parse_video("320x240@0").is_err());
    }

    #[test]
    fn audio_processing_is_on_unless_turned_off() {
        use clap::Parser;
        #[derive(Parser)]
        struct Opts {
            #[command(flatten)]
            media: MediaOpts,
        }
        let on = Opts::try_parse_from(["t", "--media"]).unwrap().media;
        assert!(on.echo_cancellation && on.noise_suppression);
        let off = Opts::try_parse_from([
            "t",
            "--echo-cancellation",
            "off",
            "--noise-suppression",
            "off",
        ])
        .unwrap()
        .media;
        assert!(!off.echo_cancellation && !off.noise_suppression);
        assert!(Opts::try_parse_from(["t", "--echo-cancellation", "maybe"]).is_err());
    }
}
