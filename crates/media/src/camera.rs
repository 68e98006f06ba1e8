//! Cameras through V4L2 (the only module that imports `linuxvideo` and `zune-jpeg`).
//!
//! [`cameras`] lists the machine's capture devices; [`Camera`] is one of them opened as a
//! [`VideoSource`]. We ask for the call's picture size in YUYV, the uncompressed format
//! every UVC webcam offers, and take NV12, I420 or MJPEG (decoded with `zune-jpeg`) when
//! the driver prefers those. Pictures are cropped to the call's shape and scaled to its
//! size (nearest neighbour: the encoder's input size is fixed for the call), and the
//! newest one waiting is taken, so a camera running faster than the call does not build
//! up delay. A camera in another format is refused with a reason; the call then sends
//! the test pattern.

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use linuxvideo::format::{PixFormat, PixelFormat};
use linuxvideo::stream::ReadStream;
use linuxvideo::{CapabilityFlags, Device, Fract};
use serde::Serialize;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::error::MediaError;
use crate::pattern::I420;
use crate::source::{VideoSettings, VideoSource};

/// A camera as settings name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CameraDevice {
    /// The device node (`/dev/video0`): what settings store.
    pub id: String,
    /// What the person sees (the driver's card name).
    pub name: String,
}

/// The machine's cameras: V4L2 nodes that capture video (none on a machine without one).
pub fn cameras() -> Vec<CameraDevice> {
    let Ok(devices) = linuxvideo::list() else {
        return Vec::new();
    };
    let mut found: Vec<CameraDevice> = devices
        .filter_map(Result::ok)
        .filter_map(|device| {
            let caps = device.capabilities().ok()?;
            let wanted = CapabilityFlags::VIDEO_CAPTURE | CapabilityFlags::STREAMING;
            if !caps.device_capabilities().contains(wanted) {
                // Metadata nodes and the like, which UVC cameras expose beside the picture.
                return None;
            }
            Some(CameraDevice {
                id: device.path().ok()?.to_string_lossy().into_owned(),
                name: caps.card().to_owned(),
            })
        })
        .collect();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    found
}

/// How the camera's pictures are laid out in its buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Packed 4:2:2, `Y0 U Y1 V`.
    Yuyv,
    /// A Y plane, then interleaved U/V at half resolution.
    Nv12,
    /// Y, U and V planes (I420).
    Yu12,
    /// Motion JPEG: each buffer is a JPEG picture, decoded to [`Layout::Ycc`] first.
    Mjpeg,
    /// Packed full-resolution `Y Cb Cr` (what a JPEG decodes to).
    Ycc,
}

/// A camera's picture: size, bytes per line of the (first) plane, layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Picture {
    pub width: usize,
    pub height: usize,
    pub stride: usize,
    pub layout: Layout,
}

/// An open camera, streaming.
pub struct Camera {
    stream: ReadStream,
    picture: Picture,
    /// Whether `frame` holds a picture from this camera yet.
    filled: bool,
    /// A decoded MJPEG picture, kept between pictures to avoid reallocating.
    decoded: Vec<u8>,
    /// An MJPEG picture with the marker it lacked, likewise kept.
    marked: Vec<u8>,
}

impl std::fmt::Debug for Camera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Camera")
            .field("picture", &self.picture)
            .finish()
    }
}

impl Camera {
    /// Opens camera `id` (a device node from [`cameras`]), or the first camera, for
    /// pictures of `settings`' size and rate.
    pub fn open(id: Option<&str>, settings: &VideoSettings) -> Result<Camera, MediaError> {
        let path = match id {
            Some(id) => id.to_owned(),
            None => cameras()
                .into_iter()
                .next()
                .map(|c| c.id)
                .ok_or_else(|| MediaError::Device("no camera found".into()))?,
        };
        let unavailable =
            |what: &str, e: io::Error| MediaError::Device(format!("camera {path}: {what}: {e}"));
        let device = Device::open(Path::new(&path)).map_err(|e| unavailable("cannot open", e))?;
        let wanted = PixFormat::new(
            settings.width as u32,
            settings.height as u32,
            PixelFormat::YUYV,
        );
        let capture = device
            .video_capture(wanted)
            .map_err(|e| unavailable("cannot capture video", e))?;
        let format = capture.format();
        let picture = Picture {
            width: format.width() as usize,
            height: format.height() as usize,
            stride: format.bytes_per_line() as usize,
            layout: layout(format.pixel_format()).ok_or_else(|| {
                let code = format.pixel_format().as_fourcc();
                MediaError::Device(format!(
                    "camera {path} offers only {} pictures, which Tincan cannot read",
                    String::from_utf8_lossy(&code)
                ))
            })?,
        };
        if picture.width < 2 || picture.height < 2 {
            return Err(MediaError::Device(format!(
                "camera {path} offers {}×{} pictures",
                picture.width, picture.height
            )));
        }
        // Not every driver takes a rate; it then runs at its own.
        let _ = capture.set_frame_interval(Fract::new(1, settings.fps.max(1)));
        let stream = capture
            .into_stream()
            .map_err(|e| unavailable("cannot start streaming", e))?;
        tracing::info!(camera = %path, ?picture, "camera open");
        Ok(Camera {
            stream,
            picture,
            filled: false,
            decoded: Vec::new(),
            marked: Vec::new(),
        })
    }
}

/// How long the first picture may take before the camera is given up (cameras take a
/// moment to start; one that sends nothing must not hold up the capture thread).
const FIRST_PICTURE_WITHIN_MS: i32 = 3000;
/// Pictures drained at most per capture (the newest wins); bounds the work if a camera
/// delivers faster than we can read.
const DRAIN_AT_MOST: usize = 8;

impl VideoSource for Camera {
    /// Takes the newest picture waiting; with none waiting, keeps the last one (or, before
    /// the first, waits a bounded time for it). Never blocks without a bound.
    fn capture(
        &mut self,
        frame: &mut I420,
        _counter: u32,
        _captured_us: u64,
    ) -> Result<(), MediaError> {
        let lost = |e: io::Error| MediaError::Device(format!("camera stopped: {e}"));
        let Camera {
            stream,
            picture,
            filled,
            decoded,
            marked,
        } = self;
        for _ in 0..DRAIN_AT_MOST {
            if stream.will_block().map_err(lost)? {
                if *filled {
                    return Ok(());
                }
                if !readable(stream, FIRST_PICTURE_WITHIN_MS).map_err(lost)? {
                    return Err(MediaError::Device(format!(
                        "camera sent no picture within {} s",
                        FIRST_PICTURE_WITHIN_MS / 1000
                    )));
                }
            }
            let got = stream
                .dequeue(|buffer| {
                    if buffer.is_error() {
                        // The driver says this one is damaged: skip it.
                        return Ok(false);
                    }
                    let converted = match picture.layout {
                        Layout::Mjpeg => decode_jpeg(&buffer, marked, decoded)
                            .and_then(|ycc| to_i420(decoded, ycc, frame)),
                        _ => to_i420(&buffer, *picture, frame),
                    };
                    match converted {
                        Ok(()) => Ok(true),
                        // A damaged JPEG (cameras send some): skip it, keep the last.
                        Err(e) if picture.layout == Layout::Mjpeg => {
                            tracing::debug!(error = %e, "camera picture skipped");
                            Ok(false)
                        }
                        Err(e) => Err(io::Error::other(e)),
                    }
                })
                .map_err(lost)?;
            *filled |= got;
        }
        Ok(())
    }
}

/// Waits up to `timeout_ms` for the stream to have a picture.
fn readable(stream: &ReadStream, timeout_ms: i32) -> io::Result<bool> {
    let mut fd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the duration of the call.
    let n = unsafe { libc::poll(&mut fd, 1, timeout_ms) };
    match n {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(false),
        _ => Ok(true),
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        tracing::info!("camera closed");
    }
}

fn layout(format: PixelFormat) -> Option<Layout> {
    match &format.as_fourcc() {
        b"YUYV" => Some(Layout::Yuyv),
        b"NV12" => Some(Layout::Nv12),
        b"YU12" => Some(Layout::Yu12),
        b"MJPG" | b"JPEG" => Some(Layout::Mjpeg),
        _ => None,
    }
}

/// Decodes one JPEG picture into `out` as packed `Y Cb Cr`, and says how it is laid out.
/// `scratch` holds the picture with an MJPEG marker added when it needs one.
pub(crate) fn decode_jpeg(
    jpeg: &[u8],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<Picture, String> {
    let jpeg = if lacks_huffman_tables(jpeg) {
        mark_as_mjpeg(jpeg, scratch);
        &scratch[..]
    } else {
        jpeg
    };
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::YCbCr);
    let mut decoder = JpegDecoder::new_with_options(jpeg, options);
    decoder
        .decode_headers()
        .map_err(|e| format!("bad JPEG: {e:?}"))?;
    let (width, height) = decoder.dimensions().ok_or("JPEG without a size")?;
    if decoder.get_output_colorspace() != Some(ColorSpace::YCbCr) {
        return Err(format!(
            "JPEG decodes to {:?}, not YCbCr",
            decoder.get_output_colorspace()
        ));
    }
    let size = decoder.output_buffer_size().ok_or("JPEG too large")?;
    out.resize(size, 0);
    decoder
        .decode_into(out)
        .map_err(|e| format!("bad JPEG: {e:?}"))?;
    Ok(Picture {
        width,
        height,
        stride: width * 3,
        layout: Layout::Ycc,
    })
}

/// Whether a JPEG leaves out its Huffman tables, as MJPEG from UVC cameras does (the
/// standard tables of the JPEG spec, Annex K.3, are meant), without saying so.
fn lacks_huffman_tables(jpeg: &[u8]) -> bool {
    let mut at = 2;
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF {
        let marker = jpeg[at + 1];
        match marker {
            0xC4 => return false,
            0xDA => return true,
            0xE0 if jpeg.get(at + 4..at + 8) == Some(b"AVI1") => return false,
            _ => {}
        }
        at += 2 + u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]) as usize;
    }
    false
}

/// Puts the picture into `marked` with an `AVI1` APP0 segment after its start marker:
/// what tells `zune-jpeg` that it is MJPEG and should use the standard Huffman tables.
fn mark_as_mjpeg(jpeg: &[u8], marked: &mut Vec<u8>) {
    const APP0_AVI1: [u8; 16] = [
        0xFF, 0xE0, 0x00, 0x0E, b'A', b'V', b'I', b'1', 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    marked.clear();
    marked.extend_from_slice(&jpeg[..2.min(jpeg.len())]);
    marked.extend_from_slice(&APP0_AVI1);
    marked.extend_from_slice(jpeg.get(2..).unwrap_or_default());
}

/// Converts one camera picture into `frame`, cropping to `frame`'s shape and scaling to
/// its size.
pub(crate) fn to_i420(data: &[u8], picture: Picture, frame: &mut I420) -> Result<(), String> {
    let Picture {
        width: sw,
        height: sh,
        stride,
        layout,
    } = picture;
    let needed = match layout {
        Layout::Yuyv | Layout::Ycc => stride * sh,
        Layout::Nv12 => stride * sh + stride * sh.div_ceil(2),
        Layout::Yu12 => stride * sh + 2 * (stride / 2) * sh.div_ceil(2),
        Layout::Mjpeg => return Err("an MJPEG picture must be decoded first".into()),
    };
    let min_stride = match layout {
        Layout::Yuyv => sw * 2,
        Layout::Ycc => sw * 3,
        Layout::Nv12 | Layout::Yu12 | Layout::Mjpeg => sw,
    };
    if stride < min_stride || data.len() < needed {
        return Err(format!(
            "short picture: {} bytes for {sw}×{sh} {layout:?} with {stride} bytes per line",
            data.len()
        ));
    }
    let (dw, dh) = (frame.width, frame.height);
    let (luma, chroma) = frame.data.split_at_mut(dw * dh);
    let (u_plane, v_plane) = chroma.split_at_mut((dw / 2) * (dh / 2));
    // The centred part of the camera's picture with the call's shape (a 16:9 camera in a
    // 4:3 call loses its sides rather than being squeezed), on even pixels so YUYV pairs
    // and chroma rows line up.
    let (cx, cy, cw, ch) = if sw * dh > sh * dw {
        let cw = (sh * dw / dh).max(1);
        (((sw - cw) / 2) & !1, 0, cw, sh)
    } else {
        let ch = (sw * dh / dw).max(1);
        (0, ((sh - ch) / 2) & !1, sw, ch)
    };
    // Nearest source pixel for each destination column and row.
    let sx = |x: usize| cx + x * cw / dw;
    let sy = |y: usize| cy + y * ch / dh;
    for y in 0..dh {
        let row = sy(y) * stride;
        let out = &mut luma[y * dw..(y + 1) * dw];
        for (x, px) in out.iter_mut().enumerate() {
            *px = match layout {
                Layout::Yuyv => data[row + sx(x) * 2],
                Layout::Ycc => data[row + sx(x) * 3],
                Layout::Nv12 | Layout::Yu12 | Layout::Mjpeg => data[row + sx(x)],
            };
        }
    }
    let plane = stride * sh;
    for cy in 0..dh / 2 {
        // The chroma row and column covering destination pixel (2cx, 2cy).
        let (y, crow) = (sy(cy * 2), sy(cy * 2) / 2);
        for cx in 0..dw / 2 {
            let x = sx(cx * 2);
            let (u, v) = match layout {
                Layout::Yuyv => {
                    let pair = y * stride + (x / 2) * 4;
                    (data[pair + 1], data[pair + 3])
                }
                Layout::Nv12 => {
                    let at = plane + crow * stride + (x / 2) * 2;
                    (data[at], data[at + 1])
                }
                Layout::Yu12 => {
                    let half = stride / 2;
                    let at = crow * half + x / 2;
                    let v_start = plane + half * sh.div_ceil(2);
                    (data[plane + at], data[v_start + at])
                }
                Layout::Ycc => {
                    let at = y * stride + x * 3;
                    (data[at + 1], data[at + 2])
                }
                Layout::Mjpeg => unreachable!("refused above"),
            };
            u_plane[cy * (dw / 2) + cx] = u;
            v_plane[cy * (dw / 2) + cx] = v;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4×2 YUYV picture: luma counts up by pixel, each pair has its own U and V.
    fn yuyv_4x2() -> (Vec<u8>, Picture) {
        let mut data = Vec::new();
        for y in 0..2u8 {
            for pair in 0..2u8 {
                let base = y * 4 + pair * 2;
                data.extend_from_slice(&[base * 10, 100 + pair, base * 10 + 10, 200 + pair]);
            }
        }
        let picture = Picture {
            width: 4,
            height: 2,
            stride: 8,
            layout: Layout::Yuyv,
        };
        (data, picture)
    }

    #[test]
    fn yuyv_at_the_same_size_keeps_every_sample() {
        let (data, picture) = yuyv_4x2();
        let mut frame = I420::new(4, 2);
        to_i420(&data, picture, &mut frame).unwrap();
        assert_eq!(frame.y(), &[0, 10, 20, 30, 40, 50, 60, 70]);
        // One chroma row of two: the first row's pairs.
        assert_eq!(&frame.data[8..10], &[100, 101], "U");
        assert_eq!(&frame.data[10..12], &[200, 201], "V");
    }

    #[test]
    fn yuyv_is_scaled_to_the_call_size_by_nearest_pixel() {
        let (data, picture) = yuyv_4x2();
        // Twice as large: every source pixel becomes a 2×2 block.
        let mut frame = I420::new(8, 4);
        to_i420(&data, picture, &mut frame).unwrap();
        assert_eq!(&frame.y()[..8], &[0, 0, 10, 10, 20, 20, 30, 30]);
        assert_eq!(&frame.y()[16..24], &[40, 40, 50, 50, 60, 60, 70, 70]);
        let u = &frame.data[32..40];
        assert_eq!(u, &[100, 100, 101, 101, 100, 100, 101, 101]);
    }

    #[test]
    fn a_wider_picture_loses_its_sides_not_its_shape() {
        // 8×2 YUYV whose luma is the column number ×10; the call is 4×2 (2:1, the
        // camera 4:1): the middle four columns are kept, one to one.
        let mut data = Vec::new();
        for _ in 0..2 {
            for pair in 0..4u8 {
                data.extend_from_slice(&[pair * 20, 100 + pair, pair * 20 + 10, 200 + pair]);
            }
        }
        let picture = Picture {
            width: 8,
            height: 2,
            stride: 16,
            layout: Layout::Yuyv,
        };
        let mut frame = I420::new(4, 2);
        to_i420(&data, picture, &mut frame).unwrap();
        assert_eq!(&frame.y()[..4], &[20, 30, 40, 50]);
        assert_eq!(&frame.data[8..10], &[101, 102], "U of the middle pairs");
    }

    #[test]
    fn nv12_and_i420_planes_are_read_with_their_stride() {
        // 2×2 pictures with 4 bytes per line (2 of padding).
        let nv12 = [1, 2, 0, 0, 3, 4, 0, 0, 50, 60, 0, 0];
        let picture = Picture {
            width: 2,
            height: 2,
            stride: 4,
            layout: Layout::Nv12,
        };
        let mut frame = I420::new(2, 2);
        to_i420(&nv12, picture, &mut frame).unwrap();
        assert_eq!(frame.data, vec![1, 2, 3, 4, 50, 60]);

        let yu12 = [1, 2, 0, 0, 3, 4, 0, 0, 50, 0, 60, 0];
        let picture = Picture {
            layout: Layout::Yu12,
            ..picture
        };
        let mut frame = I420::new(2, 2);
        to_i420(&yu12, picture, &mut frame).unwrap();
        assert_eq!(frame.data, vec![1, 2, 3, 4, 50, 60]);
    }

    #[test]
    fn mjpeg_pictures_are_decoded_then_cropped_and_scaled() {
        // 16×8: the left half grey (50, 50, 50), the right half red.
        let jpeg = include_bytes!("../testdata/grey-and-red.jpg");
        let (mut scratch, mut decoded) = (Vec::new(), Vec::new());
        let ycc = decode_jpeg(jpeg, &mut scratch, &mut decoded).unwrap();
        assert_eq!((ycc.width, ycc.height, ycc.layout), (16, 8, Layout::Ycc));
        // Into an 8×4 call picture: same shape, every second pixel.
        let mut frame = I420::new(8, 4);
        to_i420(&decoded, ycc, &mut frame).unwrap();
        let near = |got: u8, want: u8| got.abs_diff(want) <= 3;
        let y = frame.y();
        assert!(near(y[0], 50) && near(y[3], 50), "grey luma: {y:?}");
        assert!(near(y[4], 76) && near(y[7], 76), "red luma (BT.601): {y:?}");
        let (u, v) = (&frame.data[32..40], &frame.data[40..48]);
        assert!(
            near(u[0], 128) && near(v[0], 128),
            "grey is colourless: {u:?} {v:?}"
        );
        assert!(
            near(u[3], 85) && v[3] >= 250,
            "red: Cb {} Cr {}",
            u[3],
            v[3]
        );
    }

    #[test]
    fn mjpeg_without_huffman_tables_decodes_with_the_standard_ones() {
        // What UVC cameras send: the same picture with its DHT segments left out (and no
        // AVI1 marker saying so).
        let full = include_bytes!("../testdata/grey-and-red.jpg");
        let mjpeg = include_bytes!("../testdata/grey-and-red-mjpeg.jpg");
        assert!(mjpeg.len() < full.len());
        let (mut scratch, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
        decode_jpeg(full, &mut scratch, &mut a).unwrap();
        decode_jpeg(mjpeg, &mut scratch, &mut b).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn a_damaged_jpeg_is_an_error_not_a_panic() {
        let jpeg = include_bytes!("../testdata/grey-and-red.jpg");
        let (mut scratch, mut decoded) = (Vec::new(), Vec::new());
        assert!(decode_jpeg(&jpeg[..jpeg.len() / 3], &mut scratch, &mut decoded).is_err());
        assert!(decode_jpeg(b"not a jpeg", &mut scratch, &mut decoded).is_err());
    }

    #[test]
    fn a_short_buffer_is_refused_not_read_past() {
        let (data, picture) = yuyv_4x2();
        let mut frame = I420::new(4, 2);
        let err = to_i420(&data[..10], picture, &mut frame).unwrap_err();
        assert!(err.contains("short picture"), "{err}");
    }

    #[test]
    fn a_node_that_is_not_a_camera_is_refused_with_a_reason() {
        let err = Camera::open(Some("/dev/null"), &VideoSettings::default()).unwrap_err();
        assert!(err.to_string().contains("/dev/null"), "{err}");
    }

    #[test]
    fn listing_cameras_never_fails() {
        // These machines have none; a machine with cameras lists only capture nodes.
        for camera in cameras() {
            assert!(camera.id.starts_with("/dev/"), "{camera:?}");
        }
    }
}
