//! PipeWire: the portal's stream received on a thread of our own that runs PipeWire's main
//! loop; each picture is copied into the [`FrameSlot`]. The only importer of `pipewire`.

use std::os::fd::OwnedFd;
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use pipewire as pw;
use pw::spa;

use super::slot::{copy_as_bgrx, crop_area, FrameSlot, PixelOrder};
use crate::error::MediaError;

/// How long PipeWire has to accept the portal's descriptor and the stream.
const PIPEWIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest picture side accepted from PipeWire (8K); anything bigger is refused in
/// format negotiation rather than copied.
const MAX_SIDE: u32 = 8192;

/// The thread running PipeWire's main loop for one share; dropping it stops the loop and
/// waits for the thread.
pub(super) struct PipeWireThread {
    quit: pw::channel::Sender<()>,
    pub(super) handle: Option<JoinHandle<()>>,
}

impl PipeWireThread {
    /// Connects to the PipeWire instance behind `fd` and streams node `node_id` into
    /// `slot`; returns once PipeWire has accepted the stream (or failed to).
    pub(super) fn start(
        fd: OwnedFd,
        node_id: u32,
        fps: u32,
        slot: Arc<FrameSlot>,
    ) -> Result<PipeWireThread, MediaError> {
        let (quit, quit_rx) = pw::channel::channel::<()>();
        // One message: connected, or why not.
        let (ready_tx, ready_rx) = sync_channel::<Result<(), String>>(1);
        let handle = std::thread::Builder::new()
            .name("tincan-pipewire".into())
            .spawn(move || {
                let ended = slot.clone();
                let result = run_stream(fd, node_id, fps, slot, quit_rx, &ready_tx);
                // run_stream fails only before its loop runs: a stream that never started.
                let reason = match result {
                    Ok(()) => "PipeWire stream ended".to_string(),
                    Err(e) => format!("PipeWire could not start the shared screen's stream: {e}"),
                };
                ended.end(reason.clone());
                let _ = ready_tx.try_send(Err(reason));
            })
            .map_err(|e| MediaError::Device(format!("PipeWire: cannot start its thread: {e}")))?;
        let thread = PipeWireThread {
            quit,
            handle: Some(handle),
        };
        match ready_rx.recv_timeout(PIPEWIRE_TIMEOUT) {
            Ok(Ok(())) => Ok(thread),
            Ok(Err(reason)) => Err(MediaError::Device(reason)),
            Err(RecvTimeoutError::Timeout) => Err(MediaError::Device(format!(
                "PipeWire did not accept the shared screen's stream in {} s",
                PIPEWIRE_TIMEOUT.as_secs()
            ))),
            Err(RecvTimeoutError::Disconnected) => {
                Err(MediaError::Device("PipeWire stream ended at once".into()))
            }
        }
    }
}

impl Drop for PipeWireThread {
    fn drop(&mut self) {
        // A send fails only when the loop has already stopped; the join is then quick.
        let _ = self.quit.send(());
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// The format PipeWire and we agreed on.
#[derive(Debug, Default)]
struct Negotiated {
    order: Option<PixelOrder>,
    width: usize,
    height: usize,
}

/// PipeWire's side: connects, streams into `slot` until told to quit or the stream ends.
/// Reports on `ready` once the stream is connecting.
fn run_stream(
    fd: OwnedFd,
    node_id: u32,
    fps: u32,
    slot: Arc<FrameSlot>,
    quit: pw::channel::Receiver<()>,
    ready: &std::sync::mpsc::SyncSender<Result<(), String>>,
) -> Result<(), String> {
    pw::init();
    let mainloop = pw::main_loop::MainLoopRc::new(None)
        .map_err(|e| format!("cannot make PipeWire's main loop: {e}"))?;
    let context = pw::context::ContextRc::new(&mainloop, None)
        .map_err(|e| format!("cannot make a PipeWire context: {e}"))?;
    let core = context
        .connect_fd_rc(fd, None)
        .map_err(|e| format!("cannot connect to the portal's PipeWire: {e}"))?;
    let stream = pw::stream::StreamRc::new(
        core.clone(),
        "tincan-screen",
        pw::properties::properties! {
            *pw::keys::MEDIA_TYPE => "Video",
            *pw::keys::MEDIA_CATEGORY => "Capture",
            *pw::keys::MEDIA_ROLE => "Screen",
            // How the stream shows in the desktop's PipeWire tools (pw-top, graphs).
            *pw::keys::NODE_NAME => "tincan-screen",
        },
    )
    .map_err(|e| e.to_string())?;

    let on_state = {
        let slot = slot.clone();
        let mainloop = mainloop.downgrade();
        move |_: &pw::stream::Stream, _: &mut Negotiated, _old, new| {
            let reason = match new {
                pw::stream::StreamState::Error(message) => {
                    format!("PipeWire stream ended: {message}")
                }
                // The share was stopped (the user, the compositor, the portal).
                pw::stream::StreamState::Unconnected => "PipeWire stream ended".to_string(),
                _ => return,
            };
            slot.end(reason);
            if let Some(mainloop) = mainloop.upgrade() {
                mainloop.quit();
            }
        }
    };
    // Asked for once the format is known: where in each buffer the shared window is.
    let crop_meta = crop_meta_param()?;
    let on_param = move |stream: &pw::stream::Stream,
                         agreed: &mut Negotiated,
                         id: u32,
                         param: Option<&spa::pod::Pod>| {
        let Some(param) = param else { return };
        if id != spa::param::ParamType::Format.as_raw() {
            return;
        }
        let mut info = spa::param::video::VideoInfoRaw::default();
        if info.parse(param).is_err() {
            return;
        }
        agreed.order = pixel_order(info.format());
        agreed.width = info.size().width as usize;
        agreed.height = info.size().height as usize;
        if agreed.order.is_none() {
            tracing::warn!(format = ?info.format(), "PipeWire sent a pixel format we did not ask for");
        }
        if let Some(meta) = spa::pod::Pod::from_bytes(&crop_meta) {
            if let Err(e) = stream.update_params(&mut [meta]) {
                tracing::debug!(error = %e, "PipeWire refused the crop metadata request");
            }
        }
    };
    let on_process = {
        let slot = slot.clone();
        move |stream: &pw::stream::Stream, agreed: &mut Negotiated| {
            let Some(mut buffer) = stream.dequeue_buffer() else {
                return;
            };
            let Some(order) = agreed.order else { return };
            let (width, height) = (agreed.width, agreed.height);
            // A shared window may fill only part of its buffer; the compositor says which.
            let crop = buffer
                .find_meta::<spa::buffer::meta::MetaVideoCrop>()
                .map(|c| c.meta_region())
                .filter(|r| r.is_valid())
                .map(|r| {
                    (
                        r.position().x,
                        r.position().y,
                        r.size().width,
                        r.size().height,
                    )
                });
            let datas = buffer.datas_mut();
            let Some(data) = datas.first_mut() else {
                return;
            };
            let (offset, size, stride) = {
                let chunk = data.chunk();
                (
                    chunk.offset() as usize,
                    chunk.size() as usize,
                    chunk.stride().unsigned_abs() as usize,
                )
            };
            // A buffer without data (a cursor-only update) carries no picture.
            if size == 0 {
                return;
            }
            let Some(bytes) = data.data() else { return };
            let Some(picture) = bytes.get(offset..offset.saturating_add(size)) else {
                return;
            };
            let stride = if stride == 0 { width * 4 } else { stride };
            let (x, y, w, h) = crop_area(crop, width, height);
            let Some(region) = picture.get(y * stride + x * 4..) else {
                return;
            };
            slot.put(w, h, |dst| copy_as_bgrx(order, region, w, h, stride, dst));
        }
    };
    let _listener = stream
        .add_local_listener_with_user_data(Negotiated::default())
        .state_changed(on_state)
        .param_changed(on_param)
        .process(on_process)
        .register()
        .map_err(|e| e.to_string())?;

    let format = format_param(fps)?;
    let mut params = [spa::pod::Pod::from_bytes(&format)
        .ok_or_else(|| "cannot build the format parameter".to_string())?];
    stream
        .connect(
            spa::utils::Direction::Input,
            Some(node_id),
            pw::stream::StreamFlags::AUTOCONNECT | pw::stream::StreamFlags::MAP_BUFFERS,
            &mut params,
        )
        .map_err(|e| format!("cannot connect the stream to node {node_id}: {e}"))?;

    let _quit = quit.attach(mainloop.loop_(), {
        let mainloop = mainloop.downgrade();
        move |()| {
            if let Some(mainloop) = mainloop.upgrade() {
                mainloop.quit();
            }
        }
    });
    let _ = ready.try_send(Ok(()));
    mainloop.run();
    let _ = stream.disconnect();
    Ok(())
}

/// The formats we take: raw video in one of the 4-byte RGB orders (no DMA-BUF modifiers
/// offered, so compositors send memory we can map), any size up to [`MAX_SIDE`], at most
/// `fps` pictures a second.
pub(super) fn format_param(fps: u32) -> Result<Vec<u8>, String> {
    use spa::param::format::{FormatProperties, MediaSubtype, MediaType};
    use spa::param::video::VideoFormat;
    use spa::pod::{property, Object, Property, PropertyFlags, Value};
    use spa::utils::{Choice, ChoiceEnum, ChoiceFlags, Fraction, Id, Rectangle, SpaTypes};
    let fps = fps.max(1);
    let ids = |formats: &[VideoFormat]| {
        Value::Choice(spa::pod::ChoiceValue::Id(Choice(
            ChoiceFlags::empty(),
            ChoiceEnum::Enum {
                default: Id(formats[0].as_raw()),
                alternatives: formats.iter().map(|f| Id(f.as_raw())).collect(),
            },
        )))
    };
    let object = Object {
        type_: SpaTypes::ObjectParamFormat.as_raw(),
        id: spa::param::ParamType::EnumFormat.as_raw(),
        properties: vec![
            property!(FormatProperties::MediaType, Id, MediaType::Video),
            property!(FormatProperties::MediaSubtype, Id, MediaSubtype::Raw),
            Property {
                key: FormatProperties::VideoFormat.as_raw(),
                flags: PropertyFlags::empty(),
                value: ids(&[
                    VideoFormat::BGRx,
                    VideoFormat::BGRA,
                    VideoFormat::RGBx,
                    VideoFormat::RGBA,
                    VideoFormat::xRGB,
                    VideoFormat::ARGB,
                    VideoFormat::xBGR,
                    VideoFormat::ABGR,
                ]),
            },
            property!(
                FormatProperties::VideoSize,
                Choice,
                Range,
                Rectangle,
                Rectangle {
                    width: 1920,
                    height: 1080
                },
                Rectangle {
                    width: 1,
                    height: 1
                },
                Rectangle {
                    width: MAX_SIDE,
                    height: MAX_SIDE
                }
            ),
            property!(
                FormatProperties::VideoFramerate,
                Choice,
                Range,
                Fraction,
                Fraction { num: fps, denom: 1 },
                Fraction { num: 0, denom: 1 },
                Fraction { num: fps, denom: 1 }
            ),
        ],
    };
    spa::pod::serialize::PodSerializer::serialize(
        std::io::Cursor::new(Vec::new()),
        &Value::Object(object),
    )
    .map(|(cursor, _)| cursor.into_inner())
    .map_err(|e| format!("cannot build the format parameter: {e:?}"))
}

/// The metadata we ask for on each buffer: the crop region (a window inside a larger
/// buffer). Compositors that have none send none.
fn crop_meta_param() -> Result<Vec<u8>, String> {
    use spa::pod::{Object, Property, PropertyFlags, Value};
    use spa::utils::{Id, SpaTypes};
    let object = Object {
        type_: SpaTypes::ObjectParamMeta.as_raw(),
        id: spa::param::ParamType::Meta.as_raw(),
        properties: vec![
            Property {
                key: spa::sys::SPA_PARAM_META_type,
                flags: PropertyFlags::empty(),
                value: Value::Id(Id(spa::sys::SPA_META_VideoCrop)),
            },
            Property {
                key: spa::sys::SPA_PARAM_META_size,
                flags: PropertyFlags::empty(),
                value: Value::Int(std::mem::size_of::<spa::sys::spa_meta_region>() as i32),
            },
        ],
    };
    spa::pod::serialize::PodSerializer::serialize(
        std::io::Cursor::new(Vec::new()),
        &Value::Object(object),
    )
    .map(|(cursor, _)| cursor.into_inner())
    .map_err(|e| format!("cannot build the metadata parameter: {e:?}"))
}

/// The byte order of a PipeWire video format, for the formats we take.
pub(super) fn pixel_order(format: spa::param::video::VideoFormat) -> Option<PixelOrder> {
    use spa::param::video::VideoFormat as F;
    match format {
        f if f == F::BGRx || f == F::BGRA => Some(PixelOrder::Bgrx),
        f if f == F::RGBx || f == F::RGBA => Some(PixelOrder::Rgbx),
        f if f == F::xRGB || f == F::ARGB => Some(PixelOrder::Xrgb),
        f if f == F::xBGR || f == F::ABGR => Some(PixelOrder::Xbgr),
        _ => None,
    }
}
