//! Where outgoing media comes from.
//!
//! A [`VideoSource`] draws pictures; the capture thread paces it, encodes each picture
//! once and hands the access unit to the session, which sends it to every peer. The
//! synthetic camera ([`TestPattern`]) is what machines without a camera use, tests
//! included; a real camera ([`crate::camera::Camera`]) implements the same trait.
//!
//! The capture thread opens the source chosen ([`VideoInput`]) when the camera is turned
//! on and closes it when it is turned off, so a real camera (and its light) is only in
//! use while pictures are sent. A camera that cannot be opened, or stops, is reported
//! ([`MediaEvent::DeviceUnavailable`]) and replaced by the test pattern.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::adaptation::VideoTarget;
use crate::camera::Camera;
use crate::codec::{self, VideoEncoder};
use crate::config::VideoInput;
use crate::error::MediaError;
use crate::event::MediaEvent;
use crate::keyframe;
use crate::pattern::{self, Stamp, I420};
use crate::screen;

/// Picture size, rate and bitrate of outgoing video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoSettings {
    pub width: usize,
    pub height: usize,
    pub fps: u32,
    pub bitrate_bps: u32,
    /// Sensor noise the test pattern adds, as a real camera's picture has (luma ±
    /// `grain`; 0 for none). The smooth pattern alone needs ~120 kbit/s at 320×240
    /// whatever bitrate it is given, so a test of congestion control could never make
    /// it fill a thin link; with grain the encoder spends its whole budget, as with a
    /// camera. Other sources ignore it.
    pub grain: u8,
}

impl Default for VideoSettings {
    /// 640×480 at 30 fps, 1 Mbit/s: what a desktop call sends by default.
    fn default() -> Self {
        VideoSettings {
            width: 640,
            height: 480,
            fps: 30,
            bitrate_bps: 1_000_000,
            grain: 0,
        }
    }
}

impl VideoSettings {
    pub fn frame_duration(&self) -> Duration {
        Duration::from_secs(1) / self.fps.max(1)
    }
}

/// Something that produces pictures.
pub trait VideoSource: Send + 'static {
    /// Fills `frame` with picture number `counter`, captured at `captured_us`; an error
    /// means the source is gone (a camera unplugged) and will not recover.
    fn capture(
        &mut self,
        frame: &mut I420,
        counter: u32,
        captured_us: u64,
    ) -> Result<(), MediaError>;

    /// The size of the pictures the source has (a shared screen's), when it has one of
    /// its own; the capture thread then sends at that size (see
    /// [`crate::screen::share_settings`]) instead of the call's camera size.
    fn native_size(&self) -> Option<(usize, usize)> {
        None
    }
}

/// The synthetic camera: a moving pattern stamped with its frame counter and capture time.
#[derive(Debug, Default)]
pub struct TestPattern {
    /// See [`VideoSettings::grain`].
    pub grain: u8,
}

impl VideoSource for TestPattern {
    fn capture(
        &mut self,
        frame: &mut I420,
        counter: u32,
        captured_us: u64,
    ) -> Result<(), MediaError> {
        pattern::draw_grainy(
            frame,
            Stamp {
                counter,
                captured_us: captured_us as u32,
            },
            self.grain,
        );
        Ok(())
    }
}

/// Opens the source `input` names.
fn open(input: &VideoInput, settings: &VideoSettings) -> Result<Box<dyn VideoSource>, MediaError> {
    match input {
        VideoInput::TestPattern => Ok(Box::new(TestPattern {
            grain: settings.grain,
        })),
        VideoInput::Camera(id) => Ok(Box::new(Camera::open(id.as_deref(), settings)?)),
        VideoInput::Screen(id) => {
            let (w, h) = screen::SHARE_MAX;
            screen::open(id, &screen::share_settings(w, h))
        }
    }
}

/// What the encoder is set up for: the picture's size, rate and bitrate, and whether
/// it is screen content (text, sharp edges, still) or camera video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EncoderSetup {
    settings: VideoSettings,
    screen: bool,
}

impl EncoderSetup {
    /// The setup for `source` opened from `input`: a screen at its own size (capped),
    /// anything else at the call's camera settings.
    fn for_source(input: &VideoInput, source: &dyn VideoSource, camera: VideoSettings) -> Self {
        match input {
            VideoInput::Screen(_) => {
                let (w, h) = source.native_size().unwrap_or(screen::SHARE_MAX);
                EncoderSetup {
                    settings: screen::share_settings(w, h),
                    screen: true,
                }
            }
            _ => EncoderSetup {
                settings: camera,
                screen: false,
            },
        }
    }

    /// A new encoder for this setup, whose first picture is a key frame carrying the new
    /// SPS (so decoders follow a size change), with a picture and a period to match; `None`
    /// (logged) keeps the previous ones.
    fn start(&self) -> Option<(VideoEncoder, I420, Duration)> {
        match self.encoder() {
            Ok(encoder) => {
                tracing::info!(
                    width = self.settings.width,
                    height = self.settings.height,
                    fps = self.settings.fps,
                    screen = self.screen,
                    "video encoder set up"
                );
                Some((
                    encoder,
                    I420::new(self.settings.width, self.settings.height),
                    self.settings.frame_duration(),
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "keeping the previous video encoder");
                None
            }
        }
    }

    /// This setup as the bandwidth allows (`target`): the picture divided by its scale,
    /// the rate by its divisor, the bitrate never above the setup's own.
    fn shaped(&self, target: Option<VideoTarget>) -> EncoderSetup {
        let Some(target) = target else {
            return *self;
        };
        let s = self.settings;
        let scale = target.scale.max(1) as usize;
        // Even sizes (I420's colour planes are half the size), and never so small that
        // the encoder or the pattern's stamp cannot work with it.
        let side = |full: usize| ((full / scale) & !1).max(MIN_SIDE.min(full & !1)).max(2);
        EncoderSetup {
            settings: VideoSettings {
                width: side(s.width),
                height: side(s.height),
                fps: (s.fps / target.fps_divisor.max(1)).max(1),
                bitrate_bps: target.bitrate_bps.min(s.bitrate_bps),
                grain: s.grain,
            },
            screen: self.screen,
        }
    }

    fn encoder(&self) -> Result<VideoEncoder, MediaError> {
        let content = if self.screen {
            codec::Content::Screen
        } else {
            codec::Content::Camera
        };
        VideoEncoder::with_content(self.settings.fps, self.settings.bitrate_bps, content)
    }
}

/// The smallest picture side a bandwidth step shrinks to.
const MIN_SIDE: usize = 96;

/// Shrinks `src` into `dst` (smaller by a whole factor or so) by averaging blocks:
/// sharper than dropping pixels, and cheap next to encoding.
fn downscale(src: &I420, dst: &mut I420) {
    fn plane(src: &[u8], sw: usize, sh: usize, dst: &mut [u8], dw: usize, dh: usize) {
        let (fx, fy) = ((sw / dw).max(1), (sh / dh).max(1));
        for y in 0..dh {
            for x in 0..dw {
                let mut sum = 0u32;
                for row in src[y * fy * sw..].chunks(sw).take(fy) {
                    sum += row[x * fx..x * fx + fx]
                        .iter()
                        .map(|p| u32::from(*p))
                        .sum::<u32>();
                }
                dst[y * dw + x] = (sum / (fx * fy) as u32) as u8;
            }
        }
    }
    let (sw, sh, dw, dh) = (src.width, src.height, dst.width, dst.height);
    let (sl, dl) = (sw * sh, dw * dh);
    let (sc, dc) = ((sw / 2) * (sh / 2), (dw / 2) * (dh / 2));
    plane(&src.data[..sl], sw, sh, &mut dst.data[..dl], dw, dh);
    plane(
        &src.data[sl..sl + sc],
        sw / 2,
        sh / 2,
        &mut dst.data[dl..dl + dc],
        dw / 2,
        dh / 2,
    );
    plane(
        &src.data[sl + sc..],
        sw / 2,
        sh / 2,
        &mut dst.data[dl + dc..],
        dw / 2,
        dh / 2,
    );
}

/// Orders for the capture thread.
#[derive(Debug)]
pub(crate) enum CaptureCommand {
    /// Camera on or off; off sends nothing at all.
    Camera(bool),
    /// Make the next picture a key frame (a new peer connected).
    KeyFrame,
    /// Whether anyone is connected to send pictures to; with nobody, pictures are
    /// drawn for the preview but not encoded.
    Audience(bool),
    /// Take pictures from another source (a camera, or the test pattern).
    Input(VideoInput),
    /// What the bandwidth allows (see [`crate::adaptation`]); `None`: audio only, no
    /// pictures are encoded (the preview goes on).
    Target(Option<VideoTarget>),
    /// Whether a path is congested: requested key frames wait (see
    /// [`keyframe::CONGESTED_WAIT`]).
    Congested(bool),
}

/// One encoded picture.
#[derive(Debug)]
pub(crate) struct EncodedVideo {
    pub data: Bytes,
    /// How long it stands: the frame rate's period, longer while the rate is reduced.
    pub duration: Duration,
}

/// The capture thread's body: paces the source at the frame rate, encodes, and hands
/// each access unit to the session. Returns when the session drops its command sender.
/// A picture the session has no room for is dropped, not queued: late video is useless.
/// `events` gets the local preview (`preview_width` wide, 0 for none) and device reports.
pub(crate) fn capture_loop(
    mut input: VideoInput,
    settings: VideoSettings,
    mut camera: bool,
    commands: Receiver<CaptureCommand>,
    out: mpsc::Sender<EncodedVideo>,
    events: mpsc::Sender<MediaEvent>,
    preview_width: u32,
) {
    // Reports go out without waiting: the session may be closing and not reading.
    let unavailable = |input: &VideoInput, e: MediaError| {
        let device = match input {
            VideoInput::Screen(_) => "screen",
            _ => "camera",
        };
        tracing::warn!(error = %e, device, "video source unavailable; sending the test pattern");
        let _ = events.try_send(MediaEvent::DeviceUnavailable {
            device,
            reason: e.to_string(),
        });
    };
    // Open only while the camera is on.
    let mut source: Option<Box<dyn VideoSource>> = None;
    // The camera's settings; a shared screen has its own size, rate and encoder tuning,
    // so the encoder and the picture are made anew when the source changes between them.
    let camera_settings = settings;
    let mut setup = EncoderSetup {
        settings,
        screen: false,
    };
    let mut encoder = match setup.encoder() {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "video capture stopped");
            return;
        }
    };
    let mut frame = I420::new(settings.width, settings.height);
    let mut period = settings.frame_duration();
    // What the bandwidth allows, and the setup the encoder is built for under it (the
    // source's `setup`, shrunk); `picture` holds a shrunk picture when the two differ.
    let mut target = Some(VideoTarget {
        bitrate_bps: settings.bitrate_bps,
        fps_divisor: 1,
        scale: 1,
    });
    let mut encoded = setup;
    let mut picture = I420::new(settings.width, settings.height);
    // Key frames asked for by receivers (PLI/FIR), made at most every 500 ms.
    let mut key_frames = keyframe::Sending::default();
    let mut next = Instant::now();
    let mut counter = 0u32;
    let mut ticks = 0u32;
    let mut audience = false;
    loop {
        match commands.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Ok(CaptureCommand::Camera(on)) => {
                if on && !camera {
                    encoder.force_key_frame();
                }
                if !on {
                    source = None;
                }
                camera = on;
                continue;
            }
            Ok(CaptureCommand::Input(chosen)) => {
                input = chosen;
                source = None;
                encoder.force_key_frame();
                continue;
            }
            Ok(CaptureCommand::KeyFrame) => {
                // Served at a bounded rate below, however many receivers ask how often.
                key_frames.request(Instant::now());
                continue;
            }
            Ok(CaptureCommand::Congested(on)) => {
                key_frames.set_congested(on);
                continue;
            }
            Ok(CaptureCommand::Audience(any)) => {
                audience = any;
                continue;
            }
            Ok(CaptureCommand::Target(wanted)) => {
                if target.is_none() && wanted.is_some() {
                    // Back from audio only: the far end's decoder needs a fresh start.
                    encoder.force_key_frame();
                }
                target = wanted;
                let shaped = setup.shaped(target);
                let same_shape = |a: &EncoderSetup, b: &EncoderSetup| {
                    (a.settings.width, a.settings.height, a.settings.fps)
                        == (b.settings.width, b.settings.height, b.settings.fps)
                };
                if shaped == encoded {
                } else if same_shape(&shaped, &encoded) {
                    // Only the bitrate: the running encoder follows, no key frame.
                    match encoder.set_bitrate(shaped.settings.bitrate_bps) {
                        Ok(()) => encoded = shaped,
                        Err(e) => tracing::warn!(error = %e, "video bitrate not changed"),
                    }
                } else if let Some(new) = shaped.start() {
                    // Another size or rate: a new encoder, whose first picture is a key
                    // frame with the new size.
                    (encoder, picture, period) = new;
                    encoded = shaped;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        next += period;
        if next < now {
            // Fell behind (a busy machine): skip ahead rather than burst.
            next = now + period;
        }
        if !camera {
            continue;
        }
        if source.is_none() {
            let opened = open(&input, &camera_settings).unwrap_or_else(|e| {
                unavailable(&input, e);
                input = VideoInput::TestPattern;
                Box::new(TestPattern {
                    grain: camera_settings.grain,
                })
            });
            let wanted = EncoderSetup::for_source(&input, opened.as_ref(), camera_settings);
            if wanted != setup {
                if let Some(new) = wanted.shaped(target).start() {
                    (encoder, picture, period) = new;
                    encoded = wanted.shaped(target);
                    frame = I420::new(wanted.settings.width, wanted.settings.height);
                    setup = wanted;
                }
            }
            source = Some(opened);
        }
        let Some(current) = source.as_mut() else {
            continue;
        };
        let shrunk = (encoded.settings.width, encoded.settings.height)
            != (setup.settings.width, setup.settings.height);
        // The test pattern draws at any size, and drawn small its stamp stays readable
        // (a shrunk stamp would not be); everything else is captured, then shrunk.
        let draw_small = shrunk && matches!(input, VideoInput::TestPattern);
        let into = if draw_small { &mut picture } else { &mut frame };
        if let Err(e) = current.capture(into, counter, pattern::now_us()) {
            unavailable(&input, e);
            input = VideoInput::TestPattern;
            source = None;
            continue;
        }
        // A screen learns its size late (the portal's, once the user has chosen): follow
        // it from the next picture on, rather than stretching it to the size guessed.
        if setup.screen {
            let wanted = EncoderSetup::for_source(&input, current.as_ref(), camera_settings);
            if wanted != setup {
                if let Some(new) = wanted.shaped(target).start() {
                    (encoder, picture, period) = new;
                    encoded = wanted.shaped(target);
                    frame = I420::new(wanted.settings.width, wanted.settings.height);
                    setup = wanted;
                    continue;
                }
            }
        }
        ticks = ticks.wrapping_add(1);
        // The local preview is a small copy, five times a second: it only shows that the
        // camera works and what the others see.
        let preview_every = (encoded.settings.fps / 5).max(1);
        if preview_width > 0 && ticks.is_multiple_of(preview_every) {
            let shown = if draw_small { &picture } else { &frame };
            let _ = events.try_send(MediaEvent::Preview {
                frame: codec::preview(shown, preview_width),
            });
        }
        // Nobody to send to, or audio only: nothing to encode.
        if !audience || target.is_none() {
            continue;
        }
        if shrunk && !draw_small {
            downscale(&frame, &mut picture);
        }
        let sent = if shrunk { &picture } else { &frame };
        let now = Instant::now();
        if key_frames.force_now(now) {
            encoder.force_key_frame();
        }
        match encoder.encode(sent) {
            Ok(unit) if !unit.is_empty() => {
                if keyframe::is_key_frame(&unit) {
                    key_frames.key_frame_sent(now, unit.len(), encoded.settings.bitrate_bps);
                }
                // The counter numbers pictures sent, so a receiver's gap is a loss, not a skip.
                counter = counter.wrapping_add(1);
                let _ = out.try_send(EncodedVideo {
                    data: Bytes::from(unit),
                    duration: period,
                });
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "video frame not encoded"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera_setup() -> EncoderSetup {
        EncoderSetup {
            settings: VideoSettings::default(),
            screen: false,
        }
    }

    #[test]
    fn a_bandwidth_step_shrinks_the_picture_and_the_rate_never_the_ceiling() {
        let setup = camera_setup();
        let full = VideoTarget {
            bitrate_bps: 5_000_000,
            fps_divisor: 1,
            scale: 1,
        };
        assert_eq!(
            setup.shaped(Some(full)).settings,
            VideoSettings::default(),
            "the setup's own bitrate is the ceiling"
        );
        let small = setup.shaped(Some(VideoTarget {
            bitrate_bps: 120_000,
            fps_divisor: 2,
            scale: 4,
        }));
        assert_eq!(
            small.settings,
            VideoSettings {
                width: 160,
                height: 120,
                fps: 15,
                bitrate_bps: 120_000,
                grain: 0,
            }
        );
        // Audio only keeps the setup (nothing is encoded anyway).
        assert_eq!(setup.shaped(None), setup);
        // A tiny source is not shrunk below what the encoder and stamp can use.
        let tiny = EncoderSetup {
            settings: VideoSettings {
                width: 200,
                height: 100,
                ..VideoSettings::default()
            },
            screen: false,
        }
        .shaped(Some(VideoTarget {
            bitrate_bps: 100_000,
            fps_divisor: 2,
            scale: 4,
        }));
        assert_eq!((tiny.settings.width, tiny.settings.height), (96, 96));
    }

    #[test]
    fn downscaling_averages_blocks_in_every_plane() {
        let mut src = I420::new(8, 4);
        let luma = 8 * 4;
        // Left half of the luma dark, right half bright; colour planes flat.
        for y in 0..4 {
            for x in 0..8 {
                src.data[y * 8 + x] = if x < 4 { 20 } else { 220 };
            }
        }
        src.data[luma..].fill(100);
        let mut dst = I420::new(4, 2);
        downscale(&src, &mut dst);
        assert_eq!(&dst.data[..8], &[20, 20, 220, 220, 20, 20, 220, 220]);
        assert!(dst.data[8..].iter().all(|p| *p == 100));
    }

    #[test]
    fn the_test_pattern_drawn_small_keeps_its_stamp_through_the_codec() {
        let setup = camera_setup().shaped(Some(VideoTarget {
            bitrate_bps: 150_000,
            fps_divisor: 2,
            scale: 4,
        }));
        let (mut encoder, mut picture, period) = setup.start().expect("encoder");
        assert_eq!(period, Duration::from_secs(1) / 15);
        let mut decoder = codec::VideoDecoder::new(0).unwrap();
        let mut read = Vec::new();
        for counter in 0..5 {
            TestPattern::default()
                .capture(&mut picture, counter, 0)
                .unwrap();
            let unit = encoder.encode(&picture).unwrap();
            if let Some(frame) = decoder.decode(&unit).unwrap() {
                read.extend(frame.stamp.map(|s| s.counter));
            }
        }
        assert_eq!(read, vec![0, 1, 2, 3, 4]);
    }

    /// The capture thread with the test pattern at 320×240, 30 fps, for an audience.
    fn capture_thread() -> (
        std::sync::mpsc::Sender<CaptureCommand>,
        mpsc::Receiver<EncodedVideo>,
        std::thread::JoinHandle<()>,
    ) {
        let (commands, command_rx) = std::sync::mpsc::channel();
        let (out, pictures) = mpsc::channel(64);
        let (events, _) = mpsc::channel(1);
        let settings = VideoSettings {
            width: 320,
            height: 240,
            fps: 30,
            bitrate_bps: 300_000,
            grain: 0,
        };
        let thread = std::thread::spawn(move || {
            capture_loop(
                VideoInput::TestPattern,
                settings,
                true,
                command_rx,
                out,
                events,
                0,
            )
        });
        commands.send(CaptureCommand::Audience(true)).unwrap();
        (commands, pictures, thread)
    }

    /// The next picture, decoded: (its duration, whether it is a key frame, its size and
    /// stamp once decodable).
    fn next(
        pictures: &mut mpsc::Receiver<EncodedVideo>,
        decoder: &mut codec::VideoDecoder,
    ) -> (Duration, bool, Option<codec::DecodedFrame>) {
        let picture = pictures.blocking_recv().expect("the capture thread runs");
        let key = crate::keyframe::is_key_frame(&picture.data);
        let decoded = decoder.decode(&picture.data).ok().flatten();
        (picture.duration, key, decoded)
    }

    #[test]
    fn the_capture_thread_follows_a_step_with_a_key_frame_at_the_new_size_and_rate() {
        let (commands, mut pictures, thread) = capture_thread();
        let mut decoder = codec::VideoDecoder::new(0).unwrap();
        let (duration, _, _) = next(&mut pictures, &mut decoder);
        assert_eq!(duration, Duration::from_secs(1) / 30);
        commands
            .send(CaptureCommand::Target(Some(VideoTarget {
                bitrate_bps: 150_000,
                fps_divisor: 2,
                scale: 2,
            })))
            .unwrap();
        // Within a second of pictures, one at the new rate and size, and the first of
        // those is a key frame a fresh decoder can start from.
        let mut fresh = codec::VideoDecoder::new(0).unwrap();
        let mut stepped = None;
        for _ in 0..30 {
            let picture = pictures.blocking_recv().expect("the capture thread runs");
            if picture.duration == Duration::from_secs(1) / 15 {
                stepped = Some(picture);
                break;
            }
        }
        let stepped = stepped.expect("a picture at half the rate within a second");
        assert!(
            crate::keyframe::is_key_frame(&stepped.data),
            "starts with a key frame"
        );
        let frame = fresh
            .decode(&stepped.data)
            .unwrap()
            .expect("decodes on its own");
        assert_eq!((frame.width, frame.height), (160, 120));
        assert!(
            frame.stamp.is_some(),
            "the pattern drawn small keeps its stamp"
        );
        drop(commands);
        thread.join().unwrap();
    }

    #[test]
    fn audio_only_sends_no_pictures_and_video_resumes_with_a_key_frame() {
        let (commands, mut pictures, thread) = capture_thread();
        let mut decoder = codec::VideoDecoder::new(0).unwrap();
        let mut stamps: Vec<(u32, bool)> = Vec::new();
        for _ in 0..5 {
            let (_, key, frame) = next(&mut pictures, &mut decoder);
            stamps.extend(frame.and_then(|f| f.stamp).map(|s| (s.captured_us, key)));
        }
        commands.send(CaptureCommand::Target(None)).unwrap();
        // How long the link stays thin: an input of the test, not a wait for anything.
        std::thread::sleep(Duration::from_millis(600));
        commands
            .send(CaptureCommand::Target(Some(VideoTarget {
                bitrate_bps: 300_000,
                fps_divisor: 1,
                scale: 1,
            })))
            .unwrap();
        // Whatever was sent before the thread went audio only, then the pictures after.
        for _ in 0..40 {
            let (_, key, frame) = next(&mut pictures, &mut decoder);
            stamps.extend(frame.and_then(|f| f.stamp).map(|s| (s.captured_us, key)));
        }
        drop(commands);
        thread.join().unwrap();
        // The capture times show the hole: one gap of about the audio-only time, and the
        // picture after it is a key frame.
        let (gap_us, after_key) = stamps
            .windows(2)
            .map(|w| (w[1].0.wrapping_sub(w[0].0), w[1].1))
            .max_by_key(|(gap, _)| *gap)
            .expect("pictures");
        assert!(
            gap_us >= 400_000,
            "largest gap between pictures {gap_us} µs"
        );
        assert!(after_key, "video resumes with a key frame");
    }
}
