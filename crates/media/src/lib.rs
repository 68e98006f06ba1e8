//! Tincan media: real audio and video for accepted calls.
pub mod codec;
pub mod error;
pub mod negotiation;
pub mod pattern;

pub use error::MediaError;
