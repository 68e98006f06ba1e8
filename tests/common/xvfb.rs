//! A private X server (Xvfb) for screen-sharing tests, and a known picture drawn on it.
//!
//! Xvfb picks a free display itself (`-displayfd`), so tests never guess a number; the
//! server is killed when the [`Xvfb`] is dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ChangeGCAux, ConnectionExt as _, CreateGCAux, CreateWindowAux, PropMode, Rectangle,
    WindowClass,
};
use x11rb::wrapper::ConnectionExt as _;

/// How long Xvfb may take to say it is ready.
const START_WITHIN: Duration = Duration::from_secs(20);

/// The four colours of [`Xvfb::draw_quadrants`], RGB: top left, top right, bottom left,
/// bottom right.
pub const QUADRANTS: [[u8; 3]; 4] = [[220, 30, 30], [30, 200, 30], [30, 30, 220], [240, 240, 240]];

/// A running Xvfb.
pub struct Xvfb {
    child: Child,
    /// Its display name, `:N`.
    pub display: String,
    pub width: u16,
    pub height: u16,
}

impl Xvfb {
    /// Starts one at `width`×`height`, 24-bit; `None` (with the reason printed) when Xvfb
    /// is not installed, so the caller can skip.
    pub fn start(width: u16, height: u16) -> Option<Xvfb> {
        let spawned = Command::new("Xvfb")
            .args(["-displayfd", "1", "-nolisten", "tcp", "-screen", "0"])
            .arg(format!("{width}x{height}x24"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                eprintln!("SKIPPED: Xvfb cannot be started ({e}); install the xvfb package");
                return None;
            }
        };
        // Xvfb writes the display number to the fd once it accepts connections.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let number = match rx.recv_timeout(START_WITHIN) {
            Ok(line) if !line.trim().is_empty() => line.trim().to_owned(),
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("Xvfb did not report its display within {START_WITHIN:?}: {other:?}");
            }
        };
        Some(Xvfb {
            child,
            display: format!(":{number}"),
            width,
            height,
        })
    }

    /// Fills the root window with four coloured quadrants ([`QUADRANTS`]) and maps a
    /// small named window (`title`) in the top-left corner, so that window listing has
    /// something to find. The root's picture stays (nothing else draws on this server);
    /// the window lives as long as the returned [`Drawn`].
    pub fn draw_quadrants(&self, title: &str) -> Drawn {
        let (conn, screen) = x11rb::connect(Some(&self.display)).expect("connect to Xvfb");
        let root = conn.setup().roots[screen].root;
        let gc = conn.generate_id().expect("id");
        conn.create_gc(gc, root, &CreateGCAux::new()).expect("gc");
        let (w, h) = (self.width / 2, self.height / 2);
        for (q, [r, g, b]) in QUADRANTS.iter().enumerate() {
            let pixel = u32::from(*r) << 16 | u32::from(*g) << 8 | u32::from(*b);
            conn.change_gc(gc, &ChangeGCAux::new().foreground(pixel))
                .expect("colour");
            let rect = Rectangle {
                x: (q % 2) as i16 * w as i16,
                y: (q / 2) as i16 * h as i16,
                width: w,
                height: h,
            };
            conn.poly_fill_rectangle(root, gc, &[rect]).expect("fill");
        }
        let window = conn.generate_id().expect("id");
        conn.create_window(
            x11rb::COPY_DEPTH_FROM_PARENT,
            window,
            root,
            0,
            0,
            64,
            48,
            0,
            WindowClass::INPUT_OUTPUT,
            x11rb::COPY_FROM_PARENT,
            &CreateWindowAux::new().background_pixel(0x808080),
        )
        .expect("window");
        conn.change_property8(
            PropMode::REPLACE,
            window,
            AtomEnum::WM_NAME,
            AtomEnum::STRING,
            title.as_bytes(),
        )
        .expect("title");
        conn.map_window(window).expect("map");
        // A round trip: everything above is done when it returns.
        conn.get_input_focus().expect("sync").reply().expect("sync");
        Drawn { _conn: conn }
    }
}

/// The drawing client's connection: its window goes when this is dropped.
pub struct Drawn {
    _conn: x11rb::rust_connection::RustConnection,
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
