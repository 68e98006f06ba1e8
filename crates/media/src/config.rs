//! How a call's media is set up: the peer connections, the picture, the sound devices.

use std::time::Duration;

use crate::peer::PeerSettings;
use crate::processing::AudioProcessing;
use crate::source::VideoSettings;

/// How a call's media is set up.
pub struct MediaConfig {
    /// This side's userID: decides who offers to whom.
    pub me: String,
    pub peer: PeerSettings,
    pub video: VideoSettings,
    /// Whether the camera starts on (video calls) or off (audio calls).
    pub camera: bool,
    /// Width of the RGBA copy of each decoded remote picture, for a window to draw;
    /// 0 for none (a headless client only needs the stamp).
    pub frame_rgba_width: u32,
    /// Width of the local preview pictures ([`crate::MediaEvent::Preview`]); 0 for none.
    pub preview_width: u32,
    /// How long a lost path may take to come back (ICE restart) before media with that
    /// participant is given up.
    pub recover_within: Duration,
    /// How long a new connection may take to come up before it is given up.
    pub connect_within: Duration,
    /// Where outgoing pictures come from.
    pub camera_device: VideoInput,
    /// Outgoing sound.
    pub microphone: AudioInput,
    /// Where received sound is played.
    pub speakers: AudioOutput,
    /// Echo cancellation and noise suppression (with gain control) for the microphone;
    /// both on by default. The synthetic tone is never processed.
    pub processing: AudioProcessing,
    /// The call's room, part of each peer connection's verification code
    /// ([`crate::verify`]); [`crate::CallMedia`] sets it.
    pub room: String,
}

/// Where outgoing pictures come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoInput {
    /// The synthetic moving pattern, stamped with its frame counter and capture time.
    TestPattern,
    /// A camera by id ([`crate::camera::cameras`]), or the first one. If it cannot be
    /// opened, or stops, the test pattern is sent instead and
    /// [`crate::MediaEvent::DeviceUnavailable`] says why.
    Camera(Option<String>),
    /// A screen or window by id ([`crate::screen::screens`]), sent at its own size (up to
    /// 1920×1080) with the encoder tuned for screen content; the far end is told it is a
    /// screen. If it cannot be opened, the test pattern is sent instead and
    /// [`crate::MediaEvent::DeviceUnavailable`] (device `screen`) says why.
    Screen(String),
}

/// Where outgoing sound comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioInput {
    /// The synthetic 440 Hz tone.
    Tone,
    /// A microphone by id ([`crate::audio::audio_devices`]), or the default one. If it
    /// cannot be opened, the tone is sent instead and [`crate::MediaEvent::DeviceUnavailable`] says why.
    Device(Option<String>),
}

/// Where received sound goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioOutput {
    /// Nowhere (decoded and counted only).
    None,
    /// Speakers by id, or the default ones; if they cannot be opened, nowhere, and
    /// [`crate::MediaEvent::DeviceUnavailable`] says why.
    Device(Option<String>),
}

impl MediaConfig {
    /// Defaults for `me`: 640×480 at 30 fps, camera on, loopback and LAN as the stack picks.
    pub fn new(me: impl Into<String>, peer: PeerSettings) -> MediaConfig {
        MediaConfig {
            me: me.into(),
            peer,
            video: VideoSettings::default(),
            camera: true,
            frame_rgba_width: 0,
            preview_width: 0,
            recover_within: Duration::from_secs(15),
            connect_within: Duration::from_secs(20),
            camera_device: VideoInput::TestPattern,
            microphone: AudioInput::Tone,
            speakers: AudioOutput::None,
            processing: AudioProcessing::default(),
            room: String::new(),
        }
    }
}

impl AudioInput {
    /// A device as settings and command-line options name it: `default` (or empty) for
    /// the machine's default, a device id, or the synthetic / silent choice (`tone` here,
    /// `none` and `pattern` for the others). One vocabulary for the app and the CLI.
    pub fn from_choice(choice: &str) -> AudioInput {
        match choice {
            "tone" => AudioInput::Tone,
            "default" | "" => AudioInput::Device(None),
            id => AudioInput::Device(Some(id.to_owned())),
        }
    }
}

impl AudioOutput {
    /// See [`AudioInput::from_choice`]; `none` is no playback.
    pub fn from_choice(choice: &str) -> AudioOutput {
        match choice {
            "none" => AudioOutput::None,
            "default" | "" => AudioOutput::Device(None),
            id => AudioOutput::Device(Some(id.to_owned())),
        }
    }
}

impl VideoInput {
    /// See [`AudioInput::from_choice`]; `pattern` is the test pattern.
    pub fn from_choice(choice: &str) -> VideoInput {
        match choice {
            "pattern" => VideoInput::TestPattern,
            "default" | "" => VideoInput::Camera(None),
            id => VideoInput::Camera(Some(id.to_owned())),
        }
    }
}
