//! Tests of the portal path that need no desktop: pixel orders, the frame slot, the
//! capture side, error wording, and the answers without a bus or without a portal (a
//! private `dbus-daemon` with nothing on it).

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use super::slot::{copy_as_bgrx, PixelOrder};
use super::stream::{format_param, pixel_order};
use super::*;
use ::pipewire::spa;

/// A `width`×`height` picture of four coloured quadrants (RGB triples) in `order`, rows
/// `stride` bytes apart (padding filled with junk that must not be read as pixels).
fn quadrants(order: PixelOrder, w: usize, h: usize, stride: usize, rgb: [[u8; 3]; 4]) -> Vec<u8> {
    let mut out = vec![0xAB; stride * h];
    let [bo, go, ro] = order.offsets();
    for y in 0..h {
        for x in 0..w {
            let [r, g, b] = rgb[usize::from(y >= h / 2) * 2 + usize::from(x >= w / 2)];
            let p = &mut out[y * stride + x * 4..][..4];
            p.fill(0x11);
            p[bo] = b;
            p[go] = g;
            p[ro] = r;
        }
    }
    out
}

const COLOURS: [[u8; 3]; 4] = [[220, 30, 30], [30, 200, 30], [30, 30, 220], [240, 240, 240]];
const ORDERS: [PixelOrder; 4] = [
    PixelOrder::Bgrx,
    PixelOrder::Rgbx,
    PixelOrder::Xrgb,
    PixelOrder::Xbgr,
];

#[test]
fn every_accepted_byte_order_becomes_the_same_bgrx() {
    let (w, h) = (8, 4);
    let reference = quadrants(PixelOrder::Bgrx, w, h, w * 4, COLOURS);
    for order in ORDERS {
        // Rows padded to 40 bytes, as a compositor may align them.
        let src = quadrants(order, w, h, 40, COLOURS);
        let mut dst = vec![0; w * h * 4];
        assert!(copy_as_bgrx(order, &src, w, h, 40, &mut dst), "{order:?}");
        for (i, (got, want)) in dst.chunks(4).zip(reference.chunks(4)).enumerate() {
            assert_eq!(got[..3], want[..3], "{order:?}, pixel {i}");
        }
    }
}

#[test]
fn spa_formats_map_to_their_byte_order_and_others_are_refused() {
    use spa::param::video::VideoFormat as F;
    assert_eq!(pixel_order(F::BGRx), Some(PixelOrder::Bgrx));
    assert_eq!(pixel_order(F::BGRA), Some(PixelOrder::Bgrx));
    assert_eq!(pixel_order(F::RGBx), Some(PixelOrder::Rgbx));
    assert_eq!(pixel_order(F::RGBA), Some(PixelOrder::Rgbx));
    assert_eq!(pixel_order(F::xRGB), Some(PixelOrder::Xrgb));
    assert_eq!(pixel_order(F::ABGR), Some(PixelOrder::Xbgr));
    assert_eq!(pixel_order(F::I420), None);
    assert_eq!(pixel_order(F::RGB), None);
}

#[test]
fn a_short_or_misshapen_buffer_is_refused_not_read_past() {
    let mut dst = vec![0; 4 * 2 * 4];
    let src = vec![0; 4 * 4 + 15]; // one byte short of two rows
    assert!(!copy_as_bgrx(PixelOrder::Rgbx, &src, 4, 2, 16, &mut dst));
    let src = vec![0; 64];
    assert!(
        !copy_as_bgrx(PixelOrder::Bgrx, &src, 4, 2, 8, &mut dst),
        "stride < row"
    );
    assert!(
        !copy_as_bgrx(PixelOrder::Bgrx, &src, 0, 2, 16, &mut dst),
        "no width"
    );
    let mut wrong = vec![0; 10];
    assert!(
        !copy_as_bgrx(PixelOrder::Bgrx, &src, 4, 2, 16, &mut wrong),
        "dst size"
    );
}

/// BT.601 video-range luma of an RGB colour, as the converter computes it.
fn luma(rgb: [u8; 3]) -> i32 {
    let [r, g, b] = rgb.map(i32::from);
    ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
}

#[test]
fn the_newest_picture_wins_and_a_taken_one_is_not_taken_again() {
    let slot = FrameSlot::default();
    assert!(matches!(slot.take(), Taken::Nothing));
    for value in 1..=3u8 {
        slot.put(2, 1, |dst| {
            dst.fill(value);
            true
        });
    }
    match slot.take() {
        Taken::Picture(p) => {
            assert_eq!((p.width, p.height), (2, 1));
            assert_eq!(p.data, vec![3; 8], "the newest of three pictures");
        }
        other => panic!("expected a picture, got {other:?}"),
    }
    assert!(matches!(slot.take(), Taken::Nothing));
    assert_eq!(slot.size(), Some((2, 1)));
}

#[test]
fn an_unreadable_picture_is_dropped_and_the_slot_keeps_working() {
    let slot = FrameSlot::default();
    slot.put(2, 2, |_| false);
    assert!(matches!(slot.take(), Taken::Nothing));
    assert_eq!(slot.size(), None);
    slot.put(1, 1, |dst| {
        dst.copy_from_slice(&[1, 2, 3, 4]);
        true
    });
    assert!(matches!(slot.take(), Taken::Picture(p) if p.data == [1, 2, 3, 4]));
}

#[test]
fn buffers_are_recycled_not_reallocated() {
    let slot = FrameSlot::default();
    slot.put(16, 16, |_| true);
    let Taken::Picture(first) = slot.take() else {
        panic!("no picture")
    };
    let address = first.data.as_ptr();
    slot.recycle(first.data);
    slot.put(16, 16, |_| true);
    let Taken::Picture(second) = slot.take() else {
        panic!("no picture")
    };
    assert_eq!(
        second.data.as_ptr(),
        address,
        "the recycled buffer took the picture"
    );
}

#[test]
fn an_ended_stream_is_reported_with_its_first_reason() {
    let slot = FrameSlot::default();
    slot.put(1, 1, |_| true);
    slot.end("PipeWire stream ended: node gone".into());
    slot.end("PipeWire stream ended".into());
    assert!(matches!(slot.take(), Taken::Ended(r) if r == "PipeWire stream ended: node gone"));
}

/// A portal share with no portal behind it: the capture side on its own slot.
fn screen_on(slot: Arc<FrameSlot>) -> PortalScreen {
    PortalScreen {
        slot,
        current: None,
        portal_size: Some((1280, 720)),
        pipewire: None,
        session: None,
        connection: None,
    }
}

#[test]
fn capture_is_black_until_the_first_picture_then_converts_the_newest_at_the_frame_size() {
    let slot = Arc::new(FrameSlot::default());
    let mut screen = screen_on(slot.clone());
    assert_eq!(
        screen.native_size(),
        Some((1280, 720)),
        "the portal's size first"
    );
    let mut frame = I420::new(8, 4);
    screen.capture(&mut frame, 0, 0).unwrap();
    assert!(
        frame.y().iter().all(|&y| y == 16),
        "black before any picture"
    );

    // An RGBx picture twice the frame's size, as PipeWire might send it.
    let (w, h) = (16, 8);
    let src = quadrants(PixelOrder::Rgbx, w, h, w * 4, COLOURS);
    slot.put(w, h, |dst| {
        copy_as_bgrx(PixelOrder::Rgbx, &src, w, h, w * 4, dst)
    });
    assert_eq!(
        screen.native_size(),
        Some((16, 8)),
        "then what PipeWire sends"
    );
    screen.capture(&mut frame, 1, 0).unwrap();
    let y = |x: usize, row: usize| i32::from(frame.y()[row * 8 + x]);
    for (q, (x, row)) in [(1, 0), (6, 0), (1, 3), (6, 3)].into_iter().enumerate() {
        assert!(
            (y(x, row) - luma(COLOURS[q])).abs() <= 1,
            "quadrant {q}: luma {} for {:?}",
            y(x, row),
            COLOURS[q]
        );
    }
    // Nothing new: the same picture again, not black.
    let before = frame.data.clone();
    frame.data.fill(0);
    screen.capture(&mut frame, 2, 0).unwrap();
    assert_eq!(frame.data, before);

    slot.end("PipeWire stream ended".into());
    let e = screen.capture(&mut frame, 3, 0).unwrap_err();
    assert!(e.to_string().contains("PipeWire stream ended"), "{e}");
}

#[test]
fn portal_errors_say_what_failed() {
    let declined = portal_error(ashpd::Error::Response(ResponseError::Cancelled));
    assert!(
        declined.to_string().contains("the user declined"),
        "{declined}"
    );
    let declined = portal_error(ashpd::Error::Portal(ashpd::PortalError::Cancelled(
        "no".into(),
    )));
    assert!(
        declined.to_string().contains("the user declined"),
        "{declined}"
    );
    let missing = portal_error(ashpd::Error::PortalNotFound(
        zbus::names::OwnedInterfaceName::try_from("org.freedesktop.portal.ScreenCast").unwrap(),
    ));
    assert!(
        missing.to_string().contains("no desktop portal"),
        "{missing}"
    );
    let other = portal_error(ashpd::Error::Response(ResponseError::Other));
    assert!(
        other.to_string().contains("the desktop portal failed"),
        "{other}"
    );
}

#[test]
fn the_session_bus_is_found_from_the_environment_or_the_runtime_dir() {
    assert_eq!(session_bus_address(None, None), None);
    assert_eq!(session_bus_address(Some("".into()), None), None);
    assert_eq!(
        session_bus_address(Some("unix:path=/x".into()), Some("/nonexistent".into())),
        Some("unix:path=/x".into())
    );
    let dir = tempdir();
    assert_eq!(session_bus_address(None, Some(dir.path().into())), None);
    let socket = dir.path().join("bus");
    let _listener = UnixListener::bind(&socket).unwrap();
    assert_eq!(
        session_bus_address(None, Some(dir.path().into())),
        Some(format!("unix:path={}", socket.display()))
    );
}

#[test]
fn no_portal_without_a_session_bus() {
    let dir = tempdir();
    let missing = format!("unix:path={}", dir.path().join("no-such-bus").display());
    assert!(!available_at(&missing, PROBE_TIMEOUT));
    let e = open_at(&missing, &VideoSettings::default(), PROBE_TIMEOUT).unwrap_err();
    assert!(
        e.to_string().starts_with("device: no desktop portal"),
        "{e}"
    );
}

#[test]
fn a_bus_that_never_answers_is_given_up_on_not_waited_for() {
    let dir = tempdir();
    let socket = dir.path().join("silent-bus");
    // Accepts connections (the kernel's backlog) and never says a word.
    let _listener = UnixListener::bind(&socket).unwrap();
    let address = format!("unix:path={}", socket.display());
    let started = Instant::now();
    assert!(!available_at(&address, Duration::from_millis(300)));
    // A bound, not a speed goal: the probe must not wait on the bus for ever.
    assert!(started.elapsed() < Duration::from_secs(30));
    let e = open_at(
        &address,
        &VideoSettings::default(),
        Duration::from_millis(300),
    )
    .unwrap_err();
    assert!(e.to_string().contains("no answer"), "{e}");
}

/// A private session bus with nothing on it (no services to start either).
struct PrivateBus {
    child: Child,
    address: String,
    _dir: TempDir,
}

impl PrivateBus {
    fn start() -> PrivateBus {
        let dir = tempdir();
        let config = dir.path().join("session.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                dir.path().join("bus").display()
            ),
        )
        .unwrap();
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("dbus-daemon (Debian: dbus-daemon, installed by scripts/deps)");
        // The daemon prints its address once it listens, then nothing: one line.
        let mut address = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon printed {address:?}"
        );
        PrivateBus {
            child,
            address: address.trim().to_string(),
            _dir: dir,
        }
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_session_bus_without_a_portal_is_no_portal_and_open_says_so_plainly() {
    let bus = PrivateBus::start();
    assert!(!available_at(&bus.address, PROBE_TIMEOUT));
    let e = open_at(&bus.address, &VideoSettings::default(), PROBE_TIMEOUT).unwrap_err();
    assert!(
        e.to_string().starts_with("device: no desktop portal"),
        "{e}"
    );
}

/// What the fake portal answers the user's choice with.
#[derive(Debug, Clone, Copy)]
enum Choice {
    /// The user closes the dialog: SelectSources answers "cancelled".
    Decline,
    /// The user picks a screen: node 42, 1280×720, and a PipeWire descriptor.
    Share,
}

/// A stand-in for xdg-desktop-portal on a private bus, answering the ScreenCast calls the
/// way the real one does (a Request object per call, its answer in a Response signal).
/// Runs until its connection closes; `remote` is the descriptor it hands out as the
/// PipeWire remote.
fn fake_portal(address: &str, choice: Choice, remote: Option<OwnedFd>) -> zbus::Connection {
    use ashpd::zvariant::{OwnedObjectPath, OwnedValue, Value};
    use futures_lite::StreamExt;
    use std::collections::HashMap;

    let connection = async_io::block_on(async {
        zbus::connection::Builder::address(address)
            .unwrap()
            .name("org.freedesktop.portal.Desktop")
            .unwrap()
            .build()
            .await
            .unwrap()
    });
    let serving = connection.clone();
    std::thread::spawn(move || {
        async_io::block_on(async move {
            let conn = serving;
            let mut messages = zbus::MessageStream::from(&conn);
            while let Some(Ok(msg)) = messages.next().await {
                let header = msg.header();
                if header.message_type() != zbus::message::Type::MethodCall {
                    continue;
                }
                let interface = header
                    .interface()
                    .map(|i| i.to_string())
                    .unwrap_or_default();
                let member = header.member().map(|m| m.to_string()).unwrap_or_default();
                let path = header.path().map(|p| p.to_string()).unwrap_or_default();
                let sender = header
                    .sender()
                    .map(|s| s.trim_start_matches(':').replace('.', "_"))
                    .unwrap_or_default();
                // The Request object of a call: where ashpd waits for the Response signal.
                let option = |options: &HashMap<String, OwnedValue>, key: &str| {
                    options
                        .get(key)
                        .and_then(|v| String::try_from(v.try_clone().ok()?).ok())
                        .unwrap_or_else(|| "t".into())
                };
                let request = |options: &HashMap<String, OwnedValue>| {
                    let token = option(options, "handle_token");
                    OwnedObjectPath::try_from(format!(
                        "/org/freedesktop/portal/desktop/request/{sender}/{token}"
                    ))
                    .unwrap()
                };
                match (interface.as_str(), member.as_str()) {
                    ("org.freedesktop.DBus.Properties", "GetAll")
                        if path == "/org/freedesktop/portal/desktop" =>
                    {
                        let props: HashMap<&str, Value> = HashMap::from([
                            ("version", Value::U32(5)),
                            ("AvailableSourceTypes", Value::U32(3)),
                            ("AvailableCursorModes", Value::U32(7)),
                        ]);
                        conn.reply(&header, &props).await.unwrap();
                    }
                    ("org.freedesktop.DBus.Properties", "Get")
                        if path == "/org/freedesktop/portal/desktop" =>
                    {
                        let (_, name): (String, String) = msg.body().deserialize().unwrap();
                        let value = match name.as_str() {
                            "version" => 5u32,
                            "AvailableSourceTypes" => 3,
                            _ => 7,
                        };
                        conn.reply(&header, &Value::U32(value)).await.unwrap();
                    }
                    ("org.freedesktop.portal.ScreenCast", "CreateSession") => {
                        let (options,): (HashMap<String, OwnedValue>,) =
                            msg.body().deserialize().unwrap();
                        let token = option(&options, "session_handle_token");
                        let session =
                            format!("/org/freedesktop/portal/desktop/session/{sender}/{token}");
                        let req = request(&options);
                        conn.reply(&header, &req).await.unwrap();
                        let results = HashMap::from([("session_handle", Value::from(session))]);
                        respond(&conn, &req, 0, results).await;
                    }
                    ("org.freedesktop.portal.ScreenCast", "SelectSources") => {
                        let (_, options): (OwnedObjectPath, HashMap<String, OwnedValue>) =
                            msg.body().deserialize().unwrap();
                        let req = request(&options);
                        conn.reply(&header, &req).await.unwrap();
                        let code = match choice {
                            Choice::Decline => 1,
                            Choice::Share => 0,
                        };
                        respond(&conn, &req, code, HashMap::new()).await;
                    }
                    ("org.freedesktop.portal.ScreenCast", "Start") => {
                        let (_, _, options): (
                            OwnedObjectPath,
                            String,
                            HashMap<String, OwnedValue>,
                        ) = msg.body().deserialize().unwrap();
                        let req = request(&options);
                        conn.reply(&header, &req).await.unwrap();
                        let stream: (u32, HashMap<&str, Value>) = (
                            42,
                            HashMap::from([("size", Value::from((1280i32, 720i32)))]),
                        );
                        let results = HashMap::from([("streams", Value::from(vec![stream]))]);
                        respond(&conn, &req, 0, results).await;
                    }
                    ("org.freedesktop.portal.ScreenCast", "OpenPipeWireRemote") => {
                        let fd = remote.as_ref().expect("a PipeWire remote to hand out");
                        conn.reply(&header, &ashpd::zvariant::Fd::from(fd))
                            .await
                            .unwrap();
                    }
                    ("org.freedesktop.portal.Session", "Close") => {
                        conn.reply(&header, &()).await.unwrap();
                    }
                    _ => {
                        conn.reply_error(
                            &header,
                            "org.freedesktop.DBus.Error.UnknownInterface",
                            &format!("the fake portal has no {interface}.{member} at {path}"),
                        )
                        .await
                        .unwrap();
                    }
                }
            }
        })
    });
    connection
}

/// Answers a portal Request: `code` 0 for done, 1 for cancelled by the user.
async fn respond(
    conn: &zbus::Connection,
    request: &ashpd::zvariant::OwnedObjectPath,
    code: u32,
    results: std::collections::HashMap<&str, ashpd::zvariant::Value<'_>>,
) {
    conn.emit_signal(
        None::<&str>,
        request.as_ref(),
        "org.freedesktop.portal.Request",
        "Response",
        &(code, results),
    )
    .await
    .unwrap();
}

#[test]
fn closing_the_portals_dialog_is_the_user_declining() {
    let bus = PrivateBus::start();
    let _portal = fake_portal(&bus.address, Choice::Decline, None);
    assert!(
        available_at(&bus.address, PROBE_TIMEOUT),
        "the fake portal offers ScreenCast"
    );
    let e = open_at(&bus.address, &VideoSettings::default(), PROBE_TIMEOUT).unwrap_err();
    assert!(e.to_string().contains("the user declined"), "{e}");
}

#[test]
fn a_granted_share_streams_through_pipewire_and_its_end_reaches_the_capture_side() {
    let bus = PrivateBus::start();
    // The PipeWire remote the portal hands out: a socket whose far end we hold and
    // close, as a PipeWire daemon going away would.
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let _portal = fake_portal(&bus.address, Choice::Share, Some(OwnedFd::from(theirs)));
    let mut screen =
        open_at(&bus.address, &VideoSettings::default(), PROBE_TIMEOUT).expect("the share starts");
    assert_eq!(
        screen.native_size(),
        Some((1280, 720)),
        "the portal's stream size"
    );
    let mut frame = I420::new(16, 8);
    screen
        .capture(&mut frame, 0, 0)
        .expect("no picture yet is not an error");
    assert!(
        frame.y().iter().all(|&y| y == 16),
        "black until PipeWire sends a picture"
    );

    drop(ours);
    // PipeWire's thread sees the remote hang up, ends the stream and stops its loop.
    let thread = screen.pipewire.as_mut().unwrap().handle.take().unwrap();
    let (joined, stopped) = sync_channel(1);
    std::thread::spawn(move || {
        let _ = thread.join();
        let _ = joined.send(());
    });
    stopped
        .recv_timeout(Duration::from_secs(20))
        .expect("PipeWire's thread stops when its remote hangs up");
    let e = screen.capture(&mut frame, 1, 0).unwrap_err();
    assert!(e.to_string().contains("PipeWire stream ended"), "{e}");
}

#[test]
fn the_format_we_offer_pipewire_is_a_valid_pod() {
    let bytes = format_param(10).unwrap();
    let pod = spa::pod::Pod::from_bytes(&bytes).expect("a pod");
    assert!(pod.is_object());
}

/// A temporary directory removed when dropped (no tempfile crate in the media crate).
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tincan-portal-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// A PipeWire daemon of our own, with no session manager: its socket is what a portal
/// would hand out.
struct PipeWireDaemon {
    child: Child,
    socket: PathBuf,
    _dir: TempDir,
}

impl PipeWireDaemon {
    fn start() -> PipeWireDaemon {
        let dir = tempdir();
        let child = Command::new("pipewire")
            .env("XDG_RUNTIME_DIR", dir.path())
            .env("PIPEWIRE_RUNTIME_DIR", dir.path())
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pipewire (Debian: pipewire, installed by scripts/deps)");
        let socket = dir.path().join("pipewire-0");
        let daemon = PipeWireDaemon {
            child,
            socket,
            _dir: dir,
        };
        // PipeWire has no readiness signal: try its socket, a bounded number of times.
        for _ in 0..200 {
            if std::os::unix::net::UnixStream::connect(&daemon.socket).is_ok() {
                return daemon;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "pipewire did not open {} within 5 s",
            daemon.socket.display()
        );
    }

    fn connect(&self) -> OwnedFd {
        OwnedFd::from(std::os::unix::net::UnixStream::connect(&self.socket).unwrap())
    }
}

impl Drop for PipeWireDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Size and byte order of the test screen PipeWire carries.
const PRODUCED: (u32, u32) = (64, 32);

/// A screen for PipeWire to carry: a stream of our own sending RGBx quadrants ten times a
/// second, linked by hand to the consumer named `tincan-screen` once both exist (there is
/// no session manager to do it). Runs until `quit`.
fn produce_screen(remote: OwnedFd, quit: ::pipewire::channel::Receiver<()>) {
    use ::pipewire as pw;
    use spa::pod::{Object, Property, PropertyFlags, Value};
    use std::cell::RefCell;
    use std::rc::Rc;

    let (w, h) = PRODUCED;
    let stride = w * 4;
    pw::init();
    let mainloop = pw::main_loop::MainLoopRc::new(None).unwrap();
    let context = pw::context::ContextRc::new(&mainloop, None).unwrap();
    let core = context.connect_fd_rc(remote, None).unwrap();
    let stream = pw::stream::StreamRc::new(
        core.clone(),
        "test-screen",
        pw::properties::properties! {
            *pw::keys::MEDIA_TYPE => "Video",
            *pw::keys::MEDIA_CATEGORY => "Source",
            *pw::keys::MEDIA_ROLE => "Screen",
            *pw::keys::MEDIA_CLASS => "Video/Source",
            *pw::keys::NODE_NAME => "test-screen",
        },
    )
    .unwrap();
    let picture = quadrants(
        PixelOrder::Rgbx,
        w as usize,
        h as usize,
        stride as usize,
        COLOURS,
    );
    let _listener = stream
        .add_local_listener_with_user_data(())
        .param_changed(move |stream, _, id, param| {
            if param.is_none() || id != spa::param::ParamType::Format.as_raw() {
                return;
            }
            let int = |key: u32, v: i32| Property {
                key,
                flags: PropertyFlags::empty(),
                value: Value::Int(v),
            };
            let buffers = Value::Object(Object {
                type_: spa::utils::SpaTypes::ObjectParamBuffers.as_raw(),
                id: spa::param::ParamType::Buffers.as_raw(),
                properties: vec![
                    int(spa::sys::SPA_PARAM_BUFFERS_buffers, 4),
                    int(spa::sys::SPA_PARAM_BUFFERS_blocks, 1),
                    int(spa::sys::SPA_PARAM_BUFFERS_size, (stride * h) as i32),
                    int(spa::sys::SPA_PARAM_BUFFERS_stride, stride as i32),
                ],
            });
            let bytes = spa::pod::serialize::PodSerializer::serialize(
                std::io::Cursor::new(Vec::new()),
                &buffers,
            )
            .unwrap()
            .0
            .into_inner();
            let mut params = [spa::pod::Pod::from_bytes(&bytes).unwrap()];
            stream.update_params(&mut params).unwrap();
        })
        .process(move |stream, _| {
            let Some(mut buffer) = stream.dequeue_buffer() else {
                return;
            };
            let data = &mut buffer.datas_mut()[0];
            if let Some(bytes) = data.data() {
                let n = picture.len().min(bytes.len());
                bytes[..n].copy_from_slice(&picture[..n]);
            }
            let chunk = data.chunk_mut();
            *chunk.offset_mut() = 0;
            *chunk.size_mut() = stride * h;
            *chunk.stride_mut() = stride as i32;
        })
        .register()
        .unwrap();

    let format = {
        use spa::param::format::{FormatProperties, MediaSubtype, MediaType};
        use spa::param::video::VideoFormat;
        use spa::pod::property;
        use spa::utils::{Fraction, Rectangle, SpaTypes};
        let object = Object {
            type_: SpaTypes::ObjectParamFormat.as_raw(),
            id: spa::param::ParamType::EnumFormat.as_raw(),
            properties: vec![
                property!(FormatProperties::MediaType, Id, MediaType::Video),
                property!(FormatProperties::MediaSubtype, Id, MediaSubtype::Raw),
                property!(FormatProperties::VideoFormat, Id, VideoFormat::RGBx),
                property!(
                    FormatProperties::VideoSize,
                    Rectangle,
                    Rectangle {
                        width: w,
                        height: h
                    }
                ),
                property!(
                    FormatProperties::VideoFramerate,
                    Fraction,
                    Fraction { num: 10, denom: 1 }
                ),
            ],
        };
        spa::pod::serialize::PodSerializer::serialize(
            std::io::Cursor::new(Vec::new()),
            &Value::Object(object),
        )
        .unwrap()
        .0
        .into_inner()
    };
    let mut params = [spa::pod::Pod::from_bytes(&format).unwrap()];
    stream
        .connect(
            spa::utils::Direction::Output,
            None,
            pw::stream::StreamFlags::DRIVER | pw::stream::StreamFlags::MAP_BUFFERS,
            &mut params,
        )
        .unwrap();

    // Link producer → consumer once both nodes are known.
    let registry = core.get_registry_rc().unwrap();
    let nodes: Rc<RefCell<(Option<u32>, Option<u32>)>> = Rc::default();
    let links: Rc<RefCell<Vec<pw::link::Link>>> = Rc::default();
    let _registry_listener = registry
        .add_listener_local()
        .global({
            let core = core.clone();
            let nodes = nodes.clone();
            let links = links.clone();
            move |global| {
                let Some(name) = global.props.and_then(|p| p.get("node.name")) else {
                    return;
                };
                let mut known = nodes.borrow_mut();
                match name {
                    "test-screen" => known.0 = Some(global.id),
                    "tincan-screen" => known.1 = Some(global.id),
                    _ => return,
                }
                if let (Some(out), Some(input)) = *known {
                    let link = core
                        .create_object::<pw::link::Link>(
                            "link-factory",
                            &pw::properties::properties! {
                                "link.output.node" => out.to_string(),
                                "link.input.node" => input.to_string(),
                                "object.linger" => "true",
                            },
                        )
                        .unwrap();
                    links.borrow_mut().push(link);
                }
            }
        })
        .register();

    let timer = mainloop.loop_().add_timer({
        let stream = stream.clone();
        move |_| {
            // The safe wrapper needs the crate's v0_3_34 feature, which the app does not
            // need; the call is the same. SAFETY: the stream is alive (held by this closure).
            unsafe { pw::sys::pw_stream_trigger_process(stream.as_raw_ptr()) };
        }
    });
    timer
        .update_timer(
            Some(Duration::from_millis(100)),
            Some(Duration::from_millis(100)),
        )
        .into_result()
        .unwrap();
    let _quit = quit.attach(mainloop.loop_(), {
        let mainloop = mainloop.downgrade();
        move |()| {
            if let Some(mainloop) = mainloop.upgrade() {
                mainloop.quit();
            }
        }
    });
    mainloop.run();
}

#[test]
fn pictures_from_pipewire_reach_the_capture_side_in_their_colours() {
    let bus = PrivateBus::start();
    let daemon = PipeWireDaemon::start();
    let (quit, quit_rx) = ::pipewire::channel::channel::<()>();
    let producer_remote = daemon.connect();
    let producer = std::thread::spawn(move || produce_screen(producer_remote, quit_rx));
    let _portal = fake_portal(&bus.address, Choice::Share, Some(daemon.connect()));
    let mut screen =
        open_at(&bus.address, &VideoSettings::default(), PROBE_TIMEOUT).expect("the share starts");

    // The capture thread asks at its own pace; ask the same way, a bounded number of times.
    let mut frame = I420::new(32, 16);
    let mut seen = false;
    for counter in 0..200 {
        screen.capture(&mut frame, counter, 0).unwrap();
        if screen.native_size() == Some((PRODUCED.0 as usize, PRODUCED.1 as usize))
            && frame.y()[0] != 16
        {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = quit.send(());
    producer.join().unwrap();
    assert!(seen, "no picture from PipeWire within 10 s");
    let y = |x: usize, row: usize| i32::from(frame.y()[row * 32 + x]);
    for (q, (x, row)) in [(4, 2), (28, 2), (4, 13), (28, 13)].into_iter().enumerate() {
        assert!(
            (y(x, row) - luma(COLOURS[q])).abs() <= 1,
            "quadrant {q}: luma {} for {:?}",
            y(x, row),
            COLOURS[q]
        );
    }
}
