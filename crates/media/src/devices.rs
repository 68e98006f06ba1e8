//! Every capture and playback device, for settings to offer.

use serde::Serialize;

use crate::audio::{audio_devices, AudioDevice};
use crate::camera::{cameras, CameraDevice};
use crate::screen::{screens, ScreenSource};

/// The machine's microphones, speakers and cameras, and the screens and windows that
/// can be shared (empty lists for what it lacks).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Devices {
    pub microphones: Vec<AudioDevice>,
    pub speakers: Vec<AudioDevice>,
    pub cameras: Vec<CameraDevice>,
    pub screens: Vec<ScreenSource>,
}

/// Lists them; this opens devices to ask what they are, so call it off async threads.
pub fn devices() -> Devices {
    let audio = audio_devices();
    Devices {
        microphones: audio.microphones,
        speakers: audio.speakers,
        cameras: cameras(),
        screens: screens(),
    }
}
