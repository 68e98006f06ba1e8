//! Tincan media: real audio and video for accepted calls, over webrtc-rs.
//!
//! A [`MediaSession`] is one call's media: one peer connection per other participant
//! (a mesh, for group calls), negotiated through the server's room relay, carrying H.264
//! video and Opus audio. Pictures come from a camera ([`camera`], V4L2) or the synthetic
//! [`TestPattern`]; sound from a microphone ([`audio`], cpal) or a synthetic tone.
//! [`peer`] is the only module that touches the WebRTC stack (and [`bandwidth`] its
//! congestion-control seam); [`negotiation`] decides who offers, [`path`] when to
//! restart ICE or give up and [`adaptation`] what the encoders aim for under the
//! bandwidth estimate, all without IO.

pub mod adaptation;
pub mod allocator;
pub mod audio;
pub mod bandwidth;
pub mod call;
pub mod camera;
pub mod census;
pub mod codec;
pub mod config;
pub mod devices;
pub mod error;
pub mod event;
pub mod freeze;
mod inbound;
pub mod keyframe;
pub mod negotiation;
pub mod path;
pub mod pattern;
pub mod peer;
pub mod processing;
mod remembered;
pub mod reorder;
pub mod ringtone;
pub mod screen;
mod sdp;
pub mod session;
pub mod source;
pub mod verify;

pub use allocator::use_one_malloc_arena;
pub use audio::{audio_devices, AudioDevice, AudioDevices};
pub use call::{ice_servers, CallMedia, EarlyEvents};
pub use camera::{cameras, CameraDevice};
pub use census::{census, udp_sockets, Census};
pub use codec::DecodedFrame;
pub use config::{AudioInput, AudioOutput, MediaConfig, VideoInput};
pub use devices::{devices, Devices};
pub use error::MediaError;
pub use event::{MediaEvent, OutSignal, Quality};
pub use pattern::Stamp;
pub use peer::{IceServer, PeerSettings, PeerState};
pub use processing::{AudioProcessing, AudioProcessor};
pub use ringtone::Ringtone;
pub use screen::{screens, ScreenKind, ScreenSource};
pub use session::MediaSession;
pub use source::{TestPattern, VideoSettings, VideoSource};
