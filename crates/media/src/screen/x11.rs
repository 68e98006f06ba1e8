//! X11 capture: the only importer of x11rb.
//!
//! Lists the display's screens, monitors (RandR) and named top-level windows, and reads
//! one's pixels each frame: through a shared-memory segment (MIT-SHM) when the server
//! offers it (a local server), which saves copying every picture through the X socket,
//! else with plain `GetImage`. A window's pixels are what the X server has for it: parts
//! covered by other windows may show those windows (no compositing).

use x11rb::connection::Connection;
use x11rb::connection::RequestConnection as _;
use x11rb::protocol::randr::ConnectionExt as _;
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ConnectionExt as _, ImageFormat, ImageOrder, MapState, Window,
};
use x11rb::rust_connection::RustConnection;

use super::convert::bgrx_to_i420;
use super::{ScreenKind, ScreenSource, NO_SCREEN_CAPTURE};
use crate::error::MediaError;
use crate::pattern::I420;
use crate::source::VideoSource;

/// Windows listed at most: a desktop with more is unusual, and the chooser must stay short.
const MAX_WINDOWS: usize = 64;

fn err(what: &str, e: impl std::fmt::Display) -> MediaError {
    MediaError::Device(format!("X11 {what}: {e}"))
}

/// The highest display number: X listens on TCP port 6000 + N, and x11rb overflows
/// (panics in debug builds) past this, so larger numbers are refused here.
const MAX_DISPLAY: u32 = u16::MAX as u32 - 6000;

fn connect(display: Option<&str>) -> Result<(RustConnection, usize), MediaError> {
    if let Some(d) = display {
        let number = d.rsplit_once(':').map_or("", |(_, n)| n);
        let number = number.split('.').next().unwrap_or("");
        if number.parse::<u32>().map_or(true, |n| n > MAX_DISPLAY) {
            return Err(MediaError::Device(format!(
                "{d:?} is not an X display name (:N with N up to {MAX_DISPLAY}; {NO_SCREEN_CAPTURE})"
            )));
        }
    }
    x11rb::connect(display).map_err(|e| {
        MediaError::Device(format!(
            "cannot connect to the X display {}: {e} ({NO_SCREEN_CAPTURE})",
            display.unwrap_or("$DISPLAY")
        ))
    })
}

/// Everything on `display` (or `$DISPLAY`) that can be shared; ids carry the display
/// when one was named.
pub fn sources(display: Option<&str>) -> Result<Vec<ScreenSource>, MediaError> {
    let (conn, _) = connect(display)?;
    let prefix = display.map(|d| format!("{d}/")).unwrap_or_default();
    let mut out = Vec::new();
    let roots: Vec<_> = conn
        .setup()
        .roots
        .iter()
        .map(|s| (s.root, s.width_in_pixels, s.height_in_pixels))
        .collect();
    for (n, (root, w, h)) in roots.iter().enumerate() {
        out.push(ScreenSource {
            id: format!("{prefix}screen:{n}"),
            name: format!("Screen {n} ({w}×{h})"),
            kind: ScreenKind::Screen,
        });
        // One monitor is the screen itself: list monitors only when there are several.
        let monitors = conn
            .randr_get_monitors(*root, true)
            .ok()
            .and_then(|c| c.reply().ok())
            .map(|r| r.monitors)
            .unwrap_or_default();
        if monitors.len() > 1 {
            for m in monitors {
                let name = atom_name(&conn, m.name).unwrap_or_else(|| format!("{}", m.name));
                out.push(ScreenSource {
                    id: format!("{prefix}monitor:{name}"),
                    name: format!("Monitor {name} ({}×{})", m.width, m.height),
                    kind: ScreenKind::Monitor,
                });
            }
        }
        for (window, title) in windows(&conn, *root)? {
            out.push(ScreenSource {
                id: format!("{prefix}window:{window:#x}"),
                name: title,
                kind: ScreenKind::Window,
            });
        }
    }
    Ok(out)
}

fn atom(conn: &RustConnection, name: &str) -> Option<Atom> {
    Some(
        conn.intern_atom(false, name.as_bytes())
            .ok()?
            .reply()
            .ok()?
            .atom,
    )
}

fn atom_name(conn: &RustConnection, atom: Atom) -> Option<String> {
    let reply = conn.get_atom_name(atom).ok()?.reply().ok()?;
    Some(String::from_utf8_lossy(&reply.name).into_owned())
}

/// A window's title: `_NET_WM_NAME` (UTF-8), else `WM_NAME`.
fn title(conn: &RustConnection, window: Window, net_wm_name: Option<Atom>) -> Option<String> {
    let read = |property: Atom| -> Option<String> {
        let reply = conn
            .get_property(false, window, property, AtomEnum::ANY, 0, 256)
            .ok()?
            .reply()
            .ok()?;
        (!reply.value.is_empty()).then(|| String::from_utf8_lossy(&reply.value).into_owned())
    };
    net_wm_name
        .and_then(read)
        .or_else(|| read(AtomEnum::WM_NAME.into()))
}

/// The named, mapped top-level windows: the window manager's client list when there is
/// one, else the root's mapped children (no window manager, as under Xvfb).
fn windows(conn: &RustConnection, root: Window) -> Result<Vec<(Window, String)>, MediaError> {
    let net_wm_name = atom(conn, "_NET_WM_NAME");
    let client_list = atom(conn, "_NET_CLIENT_LIST")
        .and_then(|a| {
            conn.get_property(false, root, a, AtomEnum::WINDOW, 0, 4096)
                .ok()
        })
        .and_then(|c| c.reply().ok())
        .and_then(|r| r.value32().map(|v| v.collect::<Vec<_>>()))
        .filter(|v| !v.is_empty());
    let candidates = match client_list {
        Some(list) => list,
        None => {
            conn.query_tree(root)
                .map_err(|e| err("query_tree", e))?
                .reply()
                .map_err(|e| err("query_tree", e))?
                .children
        }
    };
    let mut out = Vec::new();
    for window in candidates {
        if out.len() >= MAX_WINDOWS {
            break;
        }
        let Some(attrs) = conn
            .get_window_attributes(window)
            .ok()
            .and_then(|c| c.reply().ok())
        else {
            continue;
        };
        if attrs.map_state != MapState::VIEWABLE || attrs.override_redirect {
            continue;
        }
        if let Some(name) = title(conn, window, net_wm_name) {
            out.push((window, name));
        }
    }
    Ok(out)
}

/// What is read each frame.
#[derive(Debug, Clone, Copy)]
enum Area {
    /// A rectangle of a root window (a screen or a monitor).
    Rect {
        root: Window,
        x: i16,
        y: i16,
        width: u16,
        height: u16,
    },
    /// A window, at whatever size it has now.
    Window(Window),
}

/// One screen, monitor or window being captured.
pub struct X11Screen {
    conn: RustConnection,
    area: Area,
    /// Where the server writes pictures, when it does shared memory.
    shm: Option<ShmSegment>,
}

/// A System V shared-memory segment attached both here and in the X server.
struct ShmSegment {
    seg: shm::Seg,
    addr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone and only read through `&self`
// after the server's reply says the picture is written.
unsafe impl Send for ShmSegment {}

impl ShmSegment {
    /// A segment of `len` bytes attached to the server, or `None` (no MIT-SHM: a remote
    /// server, or it refused), in which case capture goes through the socket.
    fn attach(conn: &RustConnection, len: usize) -> Option<ShmSegment> {
        conn.extension_information(shm::X11_EXTENSION_NAME).ok()??;
        conn.shm_query_version().ok()?.reply().ok()?;
        let seg = conn.generate_id().ok()?;
        // SAFETY: plain System V calls; the address is checked before use and the
        // segment is detached in every path that does not keep it.
        unsafe {
            let id = libc::shmget(libc::IPC_PRIVATE, len, libc::IPC_CREAT | 0o600);
            if id < 0 {
                return None;
            }
            let addr = libc::shmat(id, std::ptr::null(), 0);
            if addr as isize == -1 {
                libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
                return None;
            }
            let attached = conn
                .shm_attach(seg, id as u32, false)
                .ok()
                .and_then(|c| c.check().ok());
            // Removed once both sides detach (also if this process dies).
            libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
            if attached.is_none() {
                libc::shmdt(addr);
                return None;
            }
            Some(ShmSegment {
                seg,
                addr: addr.cast(),
                len,
            })
        }
    }

    /// The first `len` bytes, as the server last wrote them.
    fn bytes(&self, len: usize) -> &[u8] {
        // SAFETY: `addr` maps `self.len` bytes for the life of `self`; callers ask for no
        // more, and read only after the server's reply to the request that wrote them.
        unsafe { std::slice::from_raw_parts(self.addr, len.min(self.len)) }
    }

    fn detach(self, conn: &RustConnection) {
        let _ = conn.shm_detach(self.seg).map(|c| c.ignore_error());
        // SAFETY: attached in `attach`, detached once here.
        unsafe { libc::shmdt(self.addr.cast()) };
    }
}

impl Drop for X11Screen {
    fn drop(&mut self) {
        if let Some(shm) = self.shm.take() {
            shm.detach(&self.conn);
        }
    }
}

impl X11Screen {
    /// Opens `target` (`screen:N`, `monitor:NAME`, `window:0xID`) on `display`.
    pub fn open(display: Option<&str>, target: &str) -> Result<X11Screen, MediaError> {
        let (conn, default_screen) = connect(display)?;
        check_pixel_format(&conn)?;
        let unknown =
            || MediaError::Device(format!("no screen or window {target:?} on this display"));
        let area = match target.split_once(':') {
            Some(("screen", n)) => {
                let n: usize = n.parse().map_err(|_| unknown())?;
                let s = conn.setup().roots.get(n).ok_or_else(unknown)?;
                Area::Rect {
                    root: s.root,
                    x: 0,
                    y: 0,
                    width: s.width_in_pixels,
                    height: s.height_in_pixels,
                }
            }
            Some(("monitor", name)) => {
                let root = conn.setup().roots[default_screen].root;
                let monitors = conn
                    .randr_get_monitors(root, true)
                    .map_err(|e| err("RandR", e))?
                    .reply()
                    .map_err(|e| err("RandR", e))?
                    .monitors;
                let m = monitors
                    .into_iter()
                    .find(|m| atom_name(&conn, m.name).as_deref() == Some(name))
                    .ok_or_else(unknown)?;
                Area::Rect {
                    root,
                    x: m.x,
                    y: m.y,
                    width: m.width,
                    height: m.height,
                }
            }
            Some(("window", id)) => {
                let id =
                    u32::from_str_radix(id.trim_start_matches("0x"), 16).map_err(|_| unknown())?;
                conn.get_geometry(id)
                    .map_err(|e| err("get_geometry", e))?
                    .reply()
                    .map_err(|_| unknown())?;
                Area::Window(id)
            }
            _ => return Err(unknown()),
        };
        // Room for the whole root window: a screen, a monitor, or a window on it.
        let root = conn.setup().roots[default_screen].clone();
        let len = usize::from(root.width_in_pixels) * usize::from(root.height_in_pixels) * 4;
        let shm = ShmSegment::attach(&conn, len);
        tracing::debug!(shm = shm.is_some(), "X11 capture opened");
        Ok(X11Screen { conn, area, shm })
    }

    /// Whether pictures come through shared memory (MIT-SHM) rather than the socket.
    pub fn shared_memory(&self) -> bool {
        self.shm.is_some()
    }

    /// Where to read now: the drawable and its rectangle.
    fn rect(&self) -> Result<(Window, i16, i16, u16, u16), MediaError> {
        match self.area {
            Area::Rect {
                root,
                x,
                y,
                width,
                height,
            } => Ok((root, x, y, width, height)),
            Area::Window(w) => {
                let g = self
                    .conn
                    .get_geometry(w)
                    .map_err(|e| err("get_geometry", e))?
                    .reply()
                    .map_err(|e| MediaError::Device(format!("the shared window is gone: {e}")))?;
                Ok((w, 0, 0, g.width, g.height))
            }
        }
    }
}

/// Only the layout every current X server uses is read: 32 bits a pixel, least
/// significant byte first (BGRX in memory).
fn check_pixel_format(conn: &RustConnection) -> Result<(), MediaError> {
    let setup = conn.setup();
    let depth = setup.roots.first().map_or(0, |s| s.root_depth);
    let bpp = setup
        .pixmap_formats
        .iter()
        .find(|f| f.depth == depth)
        .map_or(0, |f| f.bits_per_pixel);
    if bpp != 32 || setup.image_byte_order != ImageOrder::LSB_FIRST || depth < 24 {
        return Err(MediaError::Device(format!(
            "X11 pixel format not supported for sharing (depth {depth}, {bpp} bits a pixel)"
        )));
    }
    Ok(())
}

impl VideoSource for X11Screen {
    fn capture(
        &mut self,
        frame: &mut I420,
        _counter: u32,
        _captured_us: u64,
    ) -> Result<(), MediaError> {
        let (drawable, x, y, width, height) = self.rect()?;
        let (w, h) = (usize::from(width), usize::from(height));
        if let Some(shm) = self.shm.as_ref().filter(|s| w * h * 4 <= s.len) {
            let format = u8::from(ImageFormat::Z_PIXMAP);
            self.conn
                .shm_get_image(drawable, x, y, width, height, !0, format, shm.seg, 0)
                .map_err(|e| err("shm_get_image", e))?
                .reply()
                .map_err(|e| err("shm_get_image", e))?;
            bgrx_to_i420(shm.bytes(w * h * 4), w, h, w * 4, frame);
            return Ok(());
        }
        let image = self
            .conn
            .get_image(ImageFormat::Z_PIXMAP, drawable, x, y, width, height, !0)
            .map_err(|e| err("get_image", e))?
            .reply()
            .map_err(|e| err("get_image", e))?;
        bgrx_to_i420(&image.data, w, h, w * 4, frame);
        Ok(())
    }

    fn native_size(&self) -> Option<(usize, usize)> {
        let (_, _, _, w, h) = self.rect().ok()?;
        Some((usize::from(w), usize::from(h)))
    }
}
