//! Codecs: H.264 (OpenH264, constrained baseline, what browsers negotiate as
//! `profile-level-id=42e01f`) for video and Opus for audio.
//!
//! OpenH264 is built from its bundled source, so no system codec library is needed;
//! Opus uses Debian's libopus. Both are synchronous and CPU-bound: callers run them on
//! their own threads, never on the async runtime's workers.

use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, RateControlMode, UsageType,
};
use openh264::formats::{YUVBuffer, YUVSource};
use openh264::OpenH264API;

use crate::error::MediaError;
use crate::pattern::{self, Stamp, I420};

/// Opus runs at 48 kHz; one packet carries 20 ms.
pub const AUDIO_RATE: u32 = 48_000;
pub const AUDIO_FRAME: usize = 960;

/// What the pictures are, for the encoder's tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// A camera: motion everywhere, noise.
    Camera,
    /// A shared screen: sharp edges and text, mostly still. OpenH264's screen-content
    /// mode codes still regions almost for free and keeps text edges.
    Screen,
}

/// Encodes pictures to H.264 access units (Annex-B).
pub struct VideoEncoder {
    inner: Encoder,
}

impl VideoEncoder {
    /// A camera encoder.
    pub fn new(fps: u32, bitrate_bps: u32) -> Result<VideoEncoder, MediaError> {
        VideoEncoder::with_content(fps, bitrate_bps, Content::Camera)
    }

    /// An encoder tuned for `content`.
    pub fn with_content(
        fps: u32,
        bitrate_bps: u32,
        content: Content,
    ) -> Result<VideoEncoder, MediaError> {
        let usage = match content {
            Content::Camera => UsageType::CameraVideoRealTime,
            Content::Screen => UsageType::ScreenContentRealTime,
        };
        let screen = content == Content::Screen;
        let config = EncoderConfig::new()
            .usage_type(usage)
            // Not available in screen-content mode (OpenH264 turns them off with a warning).
            .adaptive_quantization(!screen)
            .background_detection(!screen)
            .bitrate(BitRate::from_bps(bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            // Rate control only works if the encoder may skip a picture now and then
            // (OpenH264 warns otherwise); a skipped picture is simply not sent.
            .skip_frames(true)
            // A key frame every 2 s lets a receiver that lost one recover without asking.
            .intra_frame_period(IntraFramePeriod::from_num_frames(fps * 2));
        let inner = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| MediaError::Codec(format!("H.264 encoder: {e}")))?;
        Ok(VideoEncoder { inner })
    }

    /// One access unit for `frame`; empty when the encoder skipped it to hold the bitrate.
    pub fn encode(&mut self, frame: &I420) -> Result<Vec<u8>, MediaError> {
        let yuv = YUVBuffer::from_vec(frame.data.clone(), frame.width, frame.height);
        let bits = self
            .inner
            .encode(&yuv)
            .map_err(|e| MediaError::Codec(format!("H.264 encode: {e}")))?;
        Ok(bits.to_vec())
    }

    /// The next frame is a key frame (a receiver joined or asked for one).
    pub fn force_key_frame(&mut self) {
        self.inner.force_intra_frame();
    }
}

/// A decoded picture: its size, its stamp if it carries one, and optionally RGBA pixels.
#[derive(Debug, Clone)]
pub struct DecodedFrame {
    pub width: u32,
    pub height: u32,
    pub stamp: Option<Stamp>,
    /// RGBA, `width * height * 4` bytes, scaled down to the decoder's `rgba_width`;
    /// empty when the consumer asked for none.
    pub rgba: Vec<u8>,
}

/// Decodes H.264 access units.
pub struct VideoDecoder {
    inner: Decoder,
    /// Width of the RGBA copy to make, or 0 for none.
    rgba_width: u32,
}

impl VideoDecoder {
    pub fn new(rgba_width: u32) -> Result<VideoDecoder, MediaError> {
        let inner = Decoder::new().map_err(|e| MediaError::Codec(format!("H.264 decoder: {e}")))?;
        Ok(VideoDecoder { inner, rgba_width })
    }

    /// Decodes one access unit; `None` while the decoder waits for more (or for a key frame).
    pub fn decode(&mut self, access_unit: &[u8]) -> Result<Option<DecodedFrame>, MediaError> {
        let Some(yuv) = self
            .inner
            .decode(access_unit)
            .map_err(|e| MediaError::Codec(format!("H.264 decode: {e}")))?
        else {
            return Ok(None);
        };
        let (w, h) = yuv.dimensions();
        let (stride, _, _) = yuv.strides();
        let stamp = pattern::read_stamp(yuv.y(), w, h, stride);
        let rgba = if self.rgba_width == 0 {
            Vec::new()
        } else {
            scaled_rgba(&yuv, self.rgba_width as usize)
        };
        let (width, height) = if self.rgba_width == 0 || self.rgba_width as usize >= w {
            (w as u32, h as u32)
        } else {
            (self.rgba_width, (h * self.rgba_width as usize / w) as u32)
        };
        Ok(Some(DecodedFrame {
            width,
            height,
            stamp,
            rgba,
        }))
    }
}

/// A picture of ours (the local preview) as the window draws it: RGBA at `width`.
pub fn preview(frame: &I420, width: u32) -> DecodedFrame {
    let yuv = YUVBuffer::from_vec(frame.data.clone(), frame.width, frame.height);
    let rgba = scaled_rgba(&yuv, width as usize);
    let w = (width as usize).min(frame.width);
    DecodedFrame {
        width: w as u32,
        height: (frame.height * w / frame.width) as u32,
        stamp: None,
        rgba,
    }
}

/// RGBA at `target_w` wide (never upscaled), nearest neighbour: cheap enough per frame,
/// and the window draws at that size anyway.
pub(crate) fn scaled_rgba(yuv: &impl YUVSource, target_w: usize) -> Vec<u8> {
    let (w, h) = yuv.dimensions();
    let (ys, us, vs) = yuv.strides();
    let tw = target_w.min(w);
    let th = h * tw / w;
    let (y, u, v) = (yuv.y(), yuv.u(), yuv.v());
    let mut out = vec![255u8; tw * th * 4];
    for ty in 0..th {
        let sy = ty * h / th;
        for tx in 0..tw {
            let sx = tx * w / tw;
            let yy = f32::from(y[sy * ys + sx]) - 16.0;
            let uu = f32::from(u[(sy / 2) * us + sx / 2]) - 128.0;
            let vv = f32::from(v[(sy / 2) * vs + sx / 2]) - 128.0;
            let px = &mut out[(ty * tw + tx) * 4..][..3];
            px[0] = (1.164 * yy + 1.596 * vv).clamp(0.0, 255.0) as u8;
            px[1] = (1.164 * yy - 0.392 * uu - 0.813 * vv).clamp(0.0, 255.0) as u8;
            px[2] = (1.164 * yy + 2.017 * uu).clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// Encodes 20 ms of 48 kHz mono PCM to Opus packets.
pub struct AudioEncoder {
    inner: audiopus::coder::Encoder,
}

impl AudioEncoder {
    pub fn new() -> Result<AudioEncoder, MediaError> {
        let inner = audiopus::coder::Encoder::new(
            audiopus::SampleRate::Hz48000,
            audiopus::Channels::Mono,
            audiopus::Application::Voip,
        )
        .map_err(|e| MediaError::Codec(format!("Opus encoder: {e}")))?;
        Ok(AudioEncoder { inner })
    }

    pub fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, MediaError> {
        let mut out = vec![0u8; 1500];
        let n = self
            .inner
            .encode(pcm, &mut out)
            .map_err(|e| MediaError::Codec(format!("Opus encode: {e}")))?;
        out.truncate(n);
        Ok(out)
    }
}

/// Decodes Opus packets to 48 kHz mono PCM.
pub struct AudioDecoder {
    inner: audiopus::coder::Decoder,
    pcm: Vec<i16>,
}

impl AudioDecoder {
    pub fn new() -> Result<AudioDecoder, MediaError> {
        let inner =
            audiopus::coder::Decoder::new(audiopus::SampleRate::Hz48000, audiopus::Channels::Mono)
                .map_err(|e| MediaError::Codec(format!("Opus decoder: {e}")))?;
        Ok(AudioDecoder {
            inner,
            pcm: vec![0; AUDIO_FRAME * 6],
        })
    }

    /// The decoded samples of one packet.
    pub fn decode(&mut self, packet: &[u8]) -> Result<&[i16], MediaError> {
        let n = self
            .inner
            .decode(Some(packet), &mut self.pcm[..], false)
            .map_err(|e| MediaError::Codec(format!("Opus decode: {e}")))?;
        Ok(&self.pcm[..n])
    }
}

/// The synthetic microphone: a 440 Hz tone, 20 ms at a time.
pub struct Tone {
    phase: f32,
}

impl Tone {
    pub fn new() -> Tone {
        Tone { phase: 0.0 }
    }

    pub fn next_frame(&mut self) -> Vec<i16> {
        let step = 2.0 * std::f32::consts::PI * 440.0 / AUDIO_RATE as f32;
        (0..AUDIO_FRAME)
            .map(|_| {
                self.phase = (self.phase + step) % (2.0 * std::f32::consts::PI);
                (self.phase.sin() * 8000.0) as i16
            })
            .collect()
    }
}

impl Default for Tone {
    fn default() -> Self {
        Tone::new()
    }
}

/// Root-mean-square level of `pcm`, 0.0–1.0: how loud the far end is.
pub fn level(pcm: &[i16]) -> f32 {
    if pcm.is_empty() {
        return 0.0;
    }
    let sum: f64 = pcm.iter().map(|s| f64::from(*s) * f64::from(*s)).sum();
    ((sum / pcm.len() as f64).sqrt() / f64::from(i16::MAX)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_round_trip_keeps_the_stamp() {
        let mut enc = VideoEncoder::new(30, 1_000_000).unwrap();
        let mut dec = VideoDecoder::new(160).unwrap();
        let mut frame = I420::new(320, 240);
        let mut read = Vec::new();
        for counter in 0..5 {
            pattern::draw(
                &mut frame,
                Stamp {
                    counter,
                    captured_us: counter * 1000,
                },
            );
            let au = enc.encode(&frame).unwrap();
            if let Some(decoded) = dec.decode(&au).unwrap() {
                assert_eq!((decoded.width, decoded.height), (160, 120));
                assert_eq!(decoded.rgba.len(), 160 * 120 * 4);
                read.push(decoded.stamp.expect("stamp survives coding").counter);
            }
        }
        assert_eq!(read, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn audio_round_trip_keeps_the_tone_audible() {
        let mut tone = Tone::new();
        let mut enc = AudioEncoder::new().unwrap();
        let mut dec = AudioDecoder::new().unwrap();
        let mut last = 0.0;
        for _ in 0..10 {
            let packet = enc.encode(&tone.next_frame()).unwrap();
            let pcm = dec.decode(&packet).unwrap();
            assert_eq!(pcm.len(), AUDIO_FRAME);
            last = level(pcm);
        }
        assert!(last > 0.1, "decoded tone level {last}");
    }
}
