//! Stand-ins for the tests: a private D-Bus session bus, a fake xdg-desktop-portal on it,
//! a PipeWire daemon of our own and a test stream playing the compositor.

use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ::pipewire::spa;
use ashpd::zbus;

use super::slot::PixelOrder;

/// A `width`×`height` picture of four coloured quadrants (RGB triples) in `order`, rows
/// `stride` bytes apart (padding filled with junk that must not be read as pixels).
pub(super) fn quadrants(
    order: PixelOrder,
    w: usize,
    h: usize,
    stride: usize,
    rgb: [[u8; 3]; 4],
) -> Vec<u8> {
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

pub(super) const COLOURS: [[u8; 3]; 4] =
    [[220, 30, 30], [30, 200, 30], [30, 30, 220], [240, 240, 240]];
/// A private session bus with nothing on it (no services to start either).
pub(super) struct PrivateBus {
    child: Child,
    pub(super) address: String,
    _dir: TempDir,
}

impl PrivateBus {
    pub(super) fn start() -> PrivateBus {
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

/// What the fake portal answers the user's choice with.
#[derive(Debug, Clone, Copy)]
pub(super) enum Choice {
    /// The user closes the dialog: SelectSources answers "cancelled".
    Decline,
    /// The user picks a screen: node 42, 1280×720, and a PipeWire descriptor.
    Share,
}

/// A stand-in for xdg-desktop-portal on a private bus, answering the ScreenCast calls the
/// way the real one does (a Request object per call, its answer in a Response signal).
/// Runs until its connection closes; `remote` is the descriptor it hands out as the
/// PipeWire remote. Each call it gets is reported on `FakePortal::calls` as
/// `Interface.Member`.
pub(super) fn fake_portal(address: &str, choice: Choice, remote: Option<OwnedFd>) -> FakePortal {
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
    let (calls, calls_rx) = std::sync::mpsc::channel();
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
                let _ = calls.send(format!("{interface}.{member}"));
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
    FakePortal {
        _connection: connection,
        calls: calls_rx,
    }
}

/// The fake portal: on the bus while this lives.
pub(super) struct FakePortal {
    _connection: zbus::Connection,
    pub(super) calls: std::sync::mpsc::Receiver<String>,
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

/// A temporary directory removed when dropped (no tempfile crate in the media crate).
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn tempdir() -> TempDir {
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
pub(super) struct PipeWireDaemon {
    child: Child,
    socket: PathBuf,
    _dir: TempDir,
}

impl PipeWireDaemon {
    pub(super) fn start() -> PipeWireDaemon {
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

    pub(super) fn connect(&self) -> OwnedFd {
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
pub(super) const PRODUCED: (u32, u32) = (64, 32);

/// A screen for PipeWire to carry: a stream of our own sending RGBx quadrants ten times a
/// second, linked by hand to the consumer named `tincan-screen` once both exist (there is
/// no session manager to do it). Runs until `quit`.
pub(super) fn produce_screen(remote: OwnedFd, quit: ::pipewire::channel::Receiver<()>) {
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
