//! Wayland screen sharing: the xdg-desktop-portal ScreenCast interface asks the user which
//! screen or window to share (in the system's own dialog), and PipeWire delivers its
//! pictures. This file is the only importer of `ashpd` (the portal, over D-Bus with zbus:
//! pure Rust); `stream.rs` of `pipewire` (libpipewire through bindings); `slot.rs`
//! holds the picture between them.
//!
//! The portal hands back a PipeWire node and a file descriptor to the PipeWire instance
//! that serves it. A thread of our own runs PipeWire's main loop on it: its callbacks copy
//! each picture into a [`FrameSlot`] (the newest replaces one not yet taken) in one byte
//! order, BGRx. The capture thread takes the newest picture when it wants one and scales it
//! to the size it sends; pictures it had no time for are never converted.
//!
//! The portal's D-Bus connection and session stay open while sharing: the portal ends the
//! share when the connection closes, which dropping [`PortalScreen`] does.

mod slot;
mod stream;

use std::ffi::OsString;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ashpd::desktop::screencast::{CursorMode, Screencast, SelectSourcesOptions, SourceType};
use ashpd::desktop::{PersistMode, ResponseError, Session};
use ashpd::zbus;

use self::slot::{FrameSlot, Picture, Taken};
use self::stream::PipeWireThread;
use super::convert;
use crate::error::MediaError;
use crate::pattern::I420;
use crate::source::{VideoSettings, VideoSource};

/// How long [`portal_available`] waits for the session bus and the portal: long enough for
/// a portal that D-Bus starts on demand, short enough for a source list.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the user has to answer the portal's dialog before sharing is given up.
const DIALOG_TIMEOUT: Duration = Duration::from_secs(180);
/// How long closing the portal session may take when sharing stops.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

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
            None => frame.fill_black(),
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

#[cfg(test)]
mod fakes;
#[cfg(test)]
mod tests;
