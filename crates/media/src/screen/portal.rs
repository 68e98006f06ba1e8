//! Wayland screen sharing: the xdg-desktop-portal ScreenCast interface asks the user which
//! screen or window to share (in the system's own dialog), and PipeWire delivers its
//! pictures. The only importer of `ashpd` (the portal, over D-Bus with zbus: pure Rust) and
//! `pipewire` (libpipewire through bindings).
//!
//! The portal hands back a PipeWire node and a file descriptor to the PipeWire instance
//! that serves it. A thread of our own runs PipeWire's main loop on it: its callbacks copy
//! each picture into a [`FrameSlot`] (the newest replaces one not yet taken) in one byte
//! order, BGRx. The capture thread takes the newest picture when it wants one and scales it
//! to the size it sends; pictures it had no time for are never converted.
//!
//! The portal's D-Bus connection and session stay open while sharing: the portal ends the
//! share when the connection closes, which dropping [`PortalScreen`] does.

use std::ffi::OsString;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ashpd::desktop::screencast::{CursorMode, Screencast, SelectSourcesOptions, SourceType};
use ashpd::desktop::{PersistMode, ResponseError, Session};
use ashpd::zbus;
use pipewire as pw;
use pw::spa;

use super::convert;
use crate::error::MediaError;
use crate::pattern::I420;
use crate::source::{VideoSettings, VideoSource};

/// How long [`portal_available`] waits for the session bus and the portal: long enough for
/// a portal that D-Bus starts on demand, short enough for a source list.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the user has to answer the portal's dialog before sharing is given up.
const DIALOG_TIMEOUT: Duration = Duration::from_secs(180);
/// How long PipeWire has to accept the portal's descriptor and the stream.
const PIPEWIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long closing the portal session may take when sharing stops.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// The largest picture side accepted from PipeWire (8K); anything bigger is refused in
/// format negotiation rather than copied.
const MAX_SIDE: u32 = 8192;

/// Whether a screen can be shared through the desktop portal: a D-Bus session bus is there
/// and the portal on it offers ScreenCast with monitors or windows. Shows no dialog; gives
/// up (false) after a few seconds when the bus or the portal does not answer.
pub fn portal_available() -> bool {
    match session_bus_address(
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS"),
        std::env::var_os("XDG_RUNTIME_DIR"),
    ) {
        Some(address) => available_at(&address, PROBE_TIMEOUT),
        None => false,
    }
}

/// Asks the user, in the desktop portal's dialog, for a screen or window to share, and
/// starts receiving its pictures. Blocks until the user answers (at most a few minutes).
/// The pictures are scaled to the size of the frame each [`VideoSource::capture`] gets;
/// `settings.fps` is the highest rate asked of the compositor.
///
/// Errors say what failed: "no desktop portal …" (no session bus, or no portal with
/// ScreenCast on it), "the user declined …", "PipeWire …" (the stream could not start).
pub fn open_portal(settings: &VideoSettings) -> Result<PortalScreen, MediaError> {
    let address = session_bus_address(
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS"),
        std::env::var_os("XDG_RUNTIME_DIR"),
    )
    .ok_or_else(|| {
        MediaError::Device(
            "no desktop portal: there is no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)"
                .into(),
        )
    })?;
    open_at(&address, settings, DIALOG_TIMEOUT)
}

/// A screen or window shared through the portal; see [`open_portal`].
pub struct PortalScreen {
    slot: Arc<FrameSlot>,
    /// The picture last taken from the slot, converted again at each capture.
    current: Option<Picture>,
    /// The portal's stream size, until PipeWire says otherwise.
    portal_size: Option<(usize, usize)>,
    pipewire: Option<PipeWireThread>,
    /// Kept open while sharing: closing it ends the share.
    session: Option<Session<Screencast>>,
    connection: Option<zbus::Connection>,
}

impl std::fmt::Debug for PortalScreen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalScreen")
            .field("portal_size", &self.portal_size)
            .finish_non_exhaustive()
    }
}

impl VideoSource for PortalScreen {
    fn capture(
        &mut self,
        frame: &mut I420,
        _counter: u32,
        _captured_us: u64,
    ) -> Result<(), MediaError> {
        match self.slot.take() {
            Taken::Ended(reason) => return Err(MediaError::Device(reason)),
            Taken::Picture(p) => {
                if let Some(old) = self.current.replace(p) {
                    self.slot.recycle(old.data);
                }
            }
            // No new picture (a still screen sends none): the last one again.
            Taken::Nothing => {}
        }
        match &self.current {
            Some(p) => convert::bgrx_to_i420(&p.data, p.width, p.height, p.width * 4, frame),
            None => fill_black(frame),
        }
        Ok(())
    }

    fn native_size(&self) -> Option<(usize, usize)> {
        self.slot.size().or(self.portal_size)
    }
}

impl Drop for PortalScreen {
    fn drop(&mut self) {
        // PipeWire first, so no callback runs on a stream the portal is tearing down.
        self.pipewire.take();
        if let Some(session) = self.session.take() {
            let _ = async_io::block_on(within(CLOSE_TIMEOUT, async {
                session.close().await.map_err(|e| e.to_string())
            }));
        }
        self.connection.take();
    }
}

/// The session bus's address: `$DBUS_SESSION_BUS_ADDRESS`, else the systemd user bus
/// socket in `$XDG_RUNTIME_DIR` when it exists (where zbus and libdbus look too).
fn session_bus_address(
    env_address: Option<OsString>,
    runtime_dir: Option<OsString>,
) -> Option<String> {
    if let Some(address) = env_address.and_then(|a| a.into_string().ok()) {
        return (!address.trim().is_empty()).then_some(address);
    }
    let socket = PathBuf::from(runtime_dir?).join("bus");
    socket
        .exists()
        .then(|| format!("unix:path={}", socket.display()))
}

/// [`portal_available`] on the bus at `address`, giving up after `timeout`.
fn available_at(address: &str, timeout: Duration) -> bool {
    let probe = async {
        let connection = connect(address).await?;
        let proxy = Screencast::with_connection(connection)
            .await
            .map_err(portal_error)?;
        let types = proxy.available_source_types().await.map_err(portal_error)?;
        Ok::<bool, MediaError>(types.intersects(SourceType::Monitor | SourceType::Window))
    };
    match async_io::block_on(within(timeout, probe)) {
        Ok(Ok(available)) => available,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "no screen sharing through the desktop portal");
            false
        }
        Err(waited) => {
            tracing::debug!(
                ?waited,
                "the session bus or the desktop portal did not answer"
            );
            false
        }
    }
}

/// [`open_portal`] on the bus at `address`, waiting at most `dialog_timeout` for the user.
fn open_at(
    address: &str,
    settings: &VideoSettings,
    dialog_timeout: Duration,
) -> Result<PortalScreen, MediaError> {
    let grant = async_io::block_on(within(dialog_timeout, ask(address))).map_err(|waited| {
        MediaError::Device(format!(
            "the desktop portal's dialog got no answer in {} s",
            waited.as_secs()
        ))
    })??;
    let slot = Arc::new(FrameSlot::default());
    let pipewire = PipeWireThread::start(grant.fd, grant.node_id, settings.fps, slot.clone())?;
    Ok(PortalScreen {
        slot,
        current: None,
        portal_size: grant.size,
        pipewire: Some(pipewire),
        session: Some(grant.session),
        connection: Some(grant.connection),
    })
}

/// What the portal grants once the user has chosen.
struct Grant {
    connection: zbus::Connection,
    session: Session<Screencast>,
    node_id: u32,
    size: Option<(usize, usize)>,
    fd: OwnedFd,
}

/// The portal conversation: a session, one monitor or window, the user's choice (the
/// dialog), and the PipeWire descriptor to read it from.
async fn ask(address: &str) -> Result<Grant, MediaError> {
    let connection = connect(address).await?;
    let proxy = Screencast::with_connection(connection.clone())
        .await
        .map_err(portal_error)?;
    // A portal without ScreenCast answers this with an error; ask before any dialog.
    let types = proxy.available_source_types().await.map_err(portal_error)?;
    let wanted = types & (SourceType::Monitor | SourceType::Window);
    if wanted.is_empty() {
        return Err(MediaError::Device(
            "no desktop portal that shares screens or windows".into(),
        ));
    }
    // The pointer drawn into the picture, when the compositor can: people follow it.
    let cursor = proxy
        .available_cursor_modes()
        .await
        .ok()
        .filter(|modes| modes.contains(CursorMode::Embedded))
        .map(|_| CursorMode::Embedded);
    let session = proxy
        .create_session(Default::default())
        .await
        .map_err(portal_error)?;
    proxy
        .select_sources(
            &session,
            SelectSourcesOptions::default()
                .set_sources(wanted)
                .set_cursor_mode(cursor)
                .set_multiple(false)
                .set_persist_mode(PersistMode::DoNot),
        )
        .await
        .map_err(portal_error)?
        .response()
        .map_err(portal_error)?;
    let streams = proxy
        .start(&session, None, Default::default())
        .await
        .map_err(portal_error)?
        .response()
        .map_err(portal_error)?;
    let stream = streams.streams().first().ok_or_else(|| {
        MediaError::Device("the desktop portal shared nothing (no stream)".into())
    })?;
    let node_id = stream.pipe_wire_node_id();
    let size = stream
        .size()
        .filter(|&(w, h)| w > 0 && h > 0)
        .map(|(w, h)| (w as usize, h as usize));
    let fd = proxy
        .open_pipe_wire_remote(&session, Default::default())
        .await
        .map_err(portal_error)?;
    Ok(Grant {
        connection,
        session,
        node_id,
        size,
        fd,
    })
}

/// A connection of our own to the bus at `address` (not ashpd's shared one, so each
/// share has its own and ends with it).
async fn connect(address: &str) -> Result<zbus::Connection, MediaError> {
    let no_bus = |e: zbus::Error| {
        MediaError::Device(format!(
            "no desktop portal: cannot reach the D-Bus session bus: {e}"
        ))
    };
    zbus::connection::Builder::address(address)
        .map_err(no_bus)?
        .build()
        .await
        .map_err(no_bus)
}

/// `future`, or how long was waited when `timeout` passes first.
async fn within<T>(timeout: Duration, future: impl Future<Output = T>) -> Result<T, Duration> {
    futures_lite::future::or(async { Ok(future.await) }, async {
        async_io::Timer::after(timeout).await;
        Err(timeout)
    })
    .await
}

/// The portal's errors as people read them: no portal, the user said no, or what failed.
fn portal_error(e: ashpd::Error) -> MediaError {
    use ashpd::{Error, PortalError};
    let message = match &e {
        Error::Response(ResponseError::Cancelled) | Error::Portal(PortalError::Cancelled(_)) => {
            "the user declined to share a screen".to_string()
        }
        Error::PortalNotFound(interface) => {
            format!("no desktop portal with {interface} on the session bus")
        }
        _ => match dbus_error_name(&e).as_deref() {
            Some(
                "org.freedesktop.DBus.Error.ServiceUnknown"
                | "org.freedesktop.DBus.Error.NameHasNoOwner"
                | "org.freedesktop.DBus.Error.UnknownObject"
                | "org.freedesktop.DBus.Error.UnknownInterface"
                | "org.freedesktop.DBus.Error.UnknownMethod",
            ) => format!("no desktop portal on the session bus ({e})"),
            _ => format!("the desktop portal failed: {e}"),
        },
    };
    MediaError::Device(message)
}

/// The D-Bus error name inside an ashpd error, when it came from the bus.
fn dbus_error_name(e: &ashpd::Error) -> Option<String> {
    use zbus::DBusError;
    match e {
        ashpd::Error::Zbus(zbus::Error::MethodError(name, _, _)) => Some(name.to_string()),
        ashpd::Error::Zbus(zbus::Error::FDO(fdo)) => Some(fdo.name().to_string()),
        ashpd::Error::Portal(ashpd::PortalError::ZBus(zbus::Error::MethodError(name, _, _))) => {
            Some(name.to_string())
        }
        _ => None,
    }
}

fn fill_black(frame: &mut I420) {
    let luma = frame.width * frame.height;
    frame.data[..luma].fill(16);
    frame.data[luma..].fill(128);
}

// ---------------------------------------------------------------------------------------
// The frame slot: PipeWire's thread puts, the capture thread takes; the newest wins.

/// A picture in BGRx byte order, rows packed (`width * 4` bytes apart).
#[derive(Debug)]
struct Picture {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

/// What [`FrameSlot::take`] found.
#[derive(Debug)]
enum Taken {
    /// A picture newer than the last one taken.
    Picture(Picture),
    /// Nothing since the last take.
    Nothing,
    /// The stream has ended, and why.
    Ended(String),
}

/// One picture waiting for the capture thread, replaced by a newer one if not taken in
/// time: late screen pictures are useless. Buffers go back and forth, not reallocated.
#[derive(Debug, Default)]
struct FrameSlot {
    state: Mutex<SlotState>,
}

#[derive(Debug, Default)]
struct SlotState {
    newest: Option<Picture>,
    /// A buffer the capture side is done with, for the next picture.
    spare: Vec<u8>,
    /// The size of the last picture put.
    size: Option<(usize, usize)>,
    ended: Option<String>,
}

impl FrameSlot {
    /// Puts a `width`×`height` picture that `fill` writes (BGRx, packed) into a buffer of
    /// that size; `fill` returns false for a picture that could not be read, which is
    /// dropped. The copy happens outside the lock, so the capture side never waits for it.
    fn put(&self, width: usize, height: usize, fill: impl FnOnce(&mut [u8]) -> bool) {
        let mut buffer = {
            let mut state = self.lock();
            match state.newest.take() {
                // Not taken in time: its buffer takes the newer picture.
                Some(old) => old.data,
                None => std::mem::take(&mut state.spare),
            }
        };
        buffer.resize(width * height * 4, 0);
        let read = fill(&mut buffer);
        let mut state = self.lock();
        if !read {
            state.spare = buffer;
            return;
        }
        state.size = Some((width, height));
        state.newest = Some(Picture {
            width,
            height,
            data: buffer,
        });
    }

    /// The newest picture, if one came since the last take.
    fn take(&self) -> Taken {
        let mut state = self.lock();
        if let Some(reason) = &state.ended {
            return Taken::Ended(reason.clone());
        }
        match state.newest.take() {
            Some(p) => Taken::Picture(p),
            None => Taken::Nothing,
        }
    }

    /// A buffer the capture side is done with, for a later picture.
    fn recycle(&self, buffer: Vec<u8>) {
        let mut state = self.lock();
        if buffer.capacity() > state.spare.capacity() {
            state.spare = buffer;
        }
    }

    /// Marks the stream ended; the first reason stays.
    fn end(&self, reason: String) {
        self.lock().ended.get_or_insert(reason);
    }

    fn size(&self) -> Option<(usize, usize)> {
        self.lock().size
    }

    /// The state; a panic elsewhere while holding it leaves nothing half-written that
    /// matters here (a picture at worst), so a poisoned lock is used as it is.
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

// ---------------------------------------------------------------------------------------
// Pixel formats PipeWire may send, brought to BGRx.

/// Where blue, green and red sit in a 4-byte pixel: the byte orders of the formats we
/// accept (the 4th byte, padding or alpha, is ignored; a screen is opaque).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PixelOrder {
    /// BGRx and BGRA: what compositors send on little-endian machines.
    Bgrx,
    /// RGBx and RGBA.
    Rgbx,
    /// xRGB and ARGB.
    Xrgb,
    /// xBGR and ABGR.
    Xbgr,
}

impl PixelOrder {
    fn from_spa(format: spa::param::video::VideoFormat) -> Option<PixelOrder> {
        use spa::param::video::VideoFormat as F;
        match format {
            f if f == F::BGRx || f == F::BGRA => Some(PixelOrder::Bgrx),
            f if f == F::RGBx || f == F::RGBA => Some(PixelOrder::Rgbx),
            f if f == F::xRGB || f == F::ARGB => Some(PixelOrder::Xrgb),
            f if f == F::xBGR || f == F::ABGR => Some(PixelOrder::Xbgr),
            _ => None,
        }
    }

    /// Byte offsets of blue, green and red.
    fn offsets(self) -> [usize; 3] {
        match self {
            PixelOrder::Bgrx => [0, 1, 2],
            PixelOrder::Rgbx => [2, 1, 0],
            PixelOrder::Xrgb => [3, 2, 1],
            PixelOrder::Xbgr => [1, 2, 3],
        }
    }
}

/// Copies a `width`×`height` picture in `order` with rows `stride` bytes apart into `dst`
/// (sized `width * height * 4`) as packed BGRx. False, and nothing read past its end, when
/// `src` is too short for that shape.
fn copy_as_bgrx(
    order: PixelOrder,
    src: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    dst: &mut [u8],
) -> bool {
    let row = width * 4;
    if width == 0
        || height == 0
        || stride < row
        || dst.len() != row * height
        || src.len() < stride * (height - 1) + row
    {
        return false;
    }
    for (y, out) in dst.chunks_exact_mut(row).enumerate() {
        let line = &src[y * stride..y * stride + row];
        if order == PixelOrder::Bgrx {
            out.copy_from_slice(line);
            continue;
        }
        let [b, g, r] = order.offsets();
        for (o, p) in out.chunks_exact_mut(4).zip(line.chunks_exact(4)) {
            o[0] = p[b];
            o[1] = p[g];
            o[2] = p[r];
            o[3] = 255;
        }
    }
    true
}

// ---------------------------------------------------------------------------------------
// PipeWire: its main loop on a thread of its own.

/// The thread running PipeWire's main loop for one share; dropping it stops the loop and
/// waits for the thread.
struct PipeWireThread {
    quit: pw::channel::Sender<()>,
    handle: Option<JoinHandle<()>>,
}

impl PipeWireThread {
    /// Connects to the PipeWire instance behind `fd` and streams node `node_id` into
    /// `slot`; returns once PipeWire has accepted the stream (or failed to).
    fn start(
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
                let reason = match result {
                    Ok(()) => "PipeWire stream ended".to_string(),
                    Err(e) => format!("PipeWire stream ended: {e}"),
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
    let on_param = |_: &pw::stream::Stream,
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
        agreed.order = PixelOrder::from_spa(info.format());
        agreed.width = info.size().width as usize;
        agreed.height = info.size().height as usize;
        if agreed.order.is_none() {
            tracing::warn!(format = ?info.format(), "PipeWire sent a pixel format we did not ask for");
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
            slot.put(width, height, |dst| {
                copy_as_bgrx(order, picture, width, height, stride, dst)
            });
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
fn format_param(fps: u32) -> Result<Vec<u8>, String> {
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

#[cfg(test)]
#[path = "portal_tests.rs"]
mod tests;
