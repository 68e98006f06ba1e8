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
    bitrate_bps: u32,
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
            // Receivers ask for a key frame when they need one (PLI, `keyframe`); the
            // encoder's own, every 10 s, are for a far end that never asks. Every 2 s
            // they took a third of the video bitrate on a thin link (a 24 KB key frame
            // at ~300 kbit/s), in bursts the link's queue dropped (docs/network-lab.md).
            .intra_frame_period(IntraFramePeriod::from_num_frames(fps * 10));
        let inner = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| MediaError::Codec(format!("H.264 encoder: {e}")))?;
        Ok(VideoEncoder { inner, bitrate_bps })
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

    /// Aims at `bps` from the next picture on, without a new key frame: what the
    /// bandwidth estimate asks for. The ceiling moves with it (OpenH264 holds the target
    /// under the ceiling it was created with), raised first and lowered last so the
    /// target never sits above it.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<(), MediaError> {
        use openh264_sys2::{
            SBitrateInfo, ENCODER_OPTION, ENCODER_OPTION_BITRATE, ENCODER_OPTION_MAX_BITRATE,
            LAYER_NUM, SPATIAL_LAYER_0, SPATIAL_LAYER_ALL,
        };
        let bps = bps.clamp(MIN_VIDEO_BPS, i32::MAX as u32);
        // The target is the whole stream's; the ceiling that rate control checks it
        // against is the (only) spatial layer's.
        let target = (ENCODER_OPTION_BITRATE, SPATIAL_LAYER_ALL);
        let ceiling = (ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0);
        let options: [(ENCODER_OPTION, LAYER_NUM); 2] = if bps > self.bitrate_bps {
            [ceiling, target]
        } else {
            [target, ceiling]
        };
        for (option, layer) in options {
            let mut info = SBitrateInfo {
                iLayer: layer,
                iBitrate: bps as i32,
            };
            // SAFETY: the encoder is initialised (created in `with_content`), and both
            // options take a pointer to an `SBitrateInfo` that lives across the call.
            let rc = unsafe {
                self.inner
                    .raw_api()
                    .set_option(option, std::ptr::addr_of_mut!(info).cast())
            };
            if rc != 0 {
                return Err(MediaError::Codec(format!(
                    "H.264 encoder refused bitrate {bps} (option {option}, code {rc})"
                )));
            }
        }
        self.bitrate_bps = bps;
        Ok(())
    }

    /// The bitrate aimed at, bit/s.
    pub fn bitrate(&self) -> u32 {
        self.bitrate_bps
    }
}

/// The least a video encoder is asked for: OpenH264's rate control misbehaves far below.
pub const MIN_VIDEO_BPS: u32 = 30_000;

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
        let mut encoder = AudioEncoder { inner };
        // FEC on from the start; its strength follows the loss the far end reports.
        encoder.set_protection(crate::adaptation::AUDIO_BPS, 0)?;
        Ok(encoder)
    }

    /// Sets the bitrate and the loss to expect (per cent), which tunes the in-band FEC
    /// (always on: a lost packet is then rebuilt from the next one's redundancy).
    pub fn set_protection(&mut self, bps: u32, expected_loss_pct: u8) -> Result<(), MediaError> {
        let err = |e: audiopus::Error| MediaError::Codec(format!("Opus settings: {e}"));
        self.inner
            .set_bitrate(audiopus::Bitrate::BitsPerSecond(
                bps.clamp(6_000, 510_000) as i32
            ))
            .map_err(err)?;
        self.inner.set_inband_fec(true).map_err(err)?;
        self.inner
            .set_packet_loss_perc(expected_loss_pct.min(100))
            .map_err(err)
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

    /// Bits per picture over `n` pictures of the moving pattern after the first second.
    fn bits_per_second(enc: &mut VideoEncoder, n: u32) -> f64 {
        let mut frame = I420::new(320, 240);
        let mut bytes = 0usize;
        for counter in 0..n {
            pattern::draw(
                &mut frame,
                Stamp {
                    counter,
                    captured_us: counter * 33_333,
                },
            );
            // Noise below the stamp, so that the picture takes every bit it is given.
            let mut x = 0x9E37_79B9u32 ^ counter.wrapping_mul(0x85EB_CA6B);
            for px in &mut frame.data[320 * 60..320 * 240] {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *px = (x >> 24) as u8;
            }
            let au = enc.encode(&frame).unwrap();
            if counter >= 30 {
                bytes += au.len();
            }
        }
        (bytes * 8) as f64 / (f64::from(n - 30) / 30.0)
    }

    #[test]
    fn a_running_encoder_follows_a_lower_bitrate_without_a_new_key_frame() {
        let mut enc = VideoEncoder::new(30, 1_500_000).unwrap();
        let high = bits_per_second(&mut enc, 120);
        enc.set_bitrate(150_000).unwrap();
        assert_eq!(enc.bitrate(), 150_000);
        let low = bits_per_second(&mut enc, 120);
        assert!(low < high / 2.0, "{high} -> {low} bit/s");
        assert!(low < 150_000.0 * 1.5, "{low} bit/s aiming at 150 kbit/s");
        // And back up, above the ceiling it was created with.
        enc.set_bitrate(2_000_000).unwrap();
        let again = bits_per_second(&mut enc, 120);
        assert!(again > low * 2.0, "{low} -> {again} bit/s");
    }

    #[test]
    fn opus_takes_a_lower_bitrate_and_loss_protection() {
        let mut tone = Tone::new();
        let mut enc = AudioEncoder::new().unwrap();
        enc.set_protection(16_000, 10).unwrap();
        let total: usize = (0..50)
            .map(|_| enc.encode(&tone.next_frame()).unwrap().len())
            .sum();
        // 50 packets are a second: 16 kbit/s is 2000 bytes, give or take.
        assert!(total < 3000, "{total} bytes in a second at 16 kbit/s");
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
