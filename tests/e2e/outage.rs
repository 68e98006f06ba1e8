//! Server outages seen in the window: the server becomes unreachable mid-call while the
//! media still flows peer to peer. The call screen stays, the banner says the call
//! continues, and it goes once the app is signed in again (the server kept the call in
//! its grace period).

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::harness::{self, default_launch, within, PASSWORD};
use tincan_server::store::Store;

/// A TCP relay in front of the server, on plain threads (the harness's setup runs outside
/// the runtime), that can go down: every connection through it is cut, and new ones are
/// closed at once, until it is up again — the server unreachable, as the app sees it.
#[derive(Clone)]
struct Relay {
    url: String,
    down: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let relay = Relay {
            url: format!("http://{}", listener.local_addr().unwrap()),
            down: Arc::new(AtomicBool::new(false)),
            live: Arc::new(Mutex::new(Vec::new())),
        };
        let r = relay.clone();
        // Ends with the test process (it blocks in accept).
        std::thread::spawn(move || {
            for inbound in listener.incoming().flatten() {
                if r.down.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(target) else {
                    let _ = inbound.shutdown(Shutdown::Both);
                    continue;
                };
                let (Ok(i2), Ok(o2), Ok(i3), Ok(o3)) = (
                    inbound.try_clone(),
                    outbound.try_clone(),
                    inbound.try_clone(),
                    outbound.try_clone(),
                ) else {
                    continue;
                };
                r.live.lock().unwrap().extend([i3, o3]);
                pipe(inbound, o2);
                pipe(outbound, i2);
            }
        });
        relay
    }

    fn go_down(&self) {
        self.down.store(true, Ordering::SeqCst);
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn come_up(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
    });
}

#[test]
fn the_window_says_the_call_continues_while_the_server_is_unreachable() {
    let slot: Arc<OnceLock<Relay>> = Arc::new(OnceLock::new());
    let set = slot.clone();
    let setup = move |server: &tincan_tests::TestServer, profile: &std::path::Path| {
        let hash = tincan_server::auth::hash_password(PASSWORD);
        server
            .store
            .set_password(&tincan_tests::uid("alice"), &hash)
            .expect("set the password");
        let relay = Relay::start(server.addr);
        let mut launch = default_launch(server, profile);
        let at = launch
            .args
            .iter()
            .position(|a| a == "--server")
            .expect("the default launch names the server");
        launch.args[at + 1] = relay.url.clone();
        let _ = set.set(relay);
        launch
    };
    harness::run_with("outage", setup, move |s| async move {
        let relay = slot.get().expect("set up").clone();
        let mut bob = s.server.peer("bob", "bob-sdk").await;
        s.sign_in("alice").await;
        bob.invite("alice").await.expect("bob calls");
        s.app.wait_state("incoming").await;
        s.app.click("incoming-accept").await;
        within(bob.expect("onInviteeAccepted")).await;
        s.app.wait_state("in-call").await;

        relay.go_down();
        s.app
            .wait_attr("reconnecting-banner", "data-link", "lost")
            .await;
        assert_eq!(
            s.app
                .attr_of("reconnecting-banner", "data-in-call")
                .await
                .as_deref(),
            Some("true")
        );
        let words = s.app.text_of("reconnecting-banner").await;
        assert!(words.contains("your call continues"), "{words:?}");
        assert_eq!(s.app.state().await.unwrap().as_deref(), Some("in-call"));
        s.app.screenshot("outage-in-call").await;

        relay.come_up();
        s.app.wait_gone("reconnecting-banner").await;
        assert_eq!(s.app.state().await.unwrap().as_deref(), Some("in-call"));
        bob.hang_up(&bob_room(&bob)).await.expect("bob hangs up");
        s.app.wait_state("contacts").await;
    });
}

/// The room of the call bob is in.
fn bob_room(bob: &tincan_tests::Peer) -> String {
    bob.client.call_state().room_id
}

/// The real server as a process of its own (tests/bin/file_server.rs) on a database
/// file, stopped with SIGTERM and started again on the same file and port. Killed when
/// dropped.
struct ServerProcess {
    child: std::process::Child,
    addr: SocketAddr,
}

impl ServerProcess {
    fn start(db: &std::path::Path, at: Option<SocketAddr>) -> ServerProcess {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tincan-test-server"));
        cmd.arg(db);
        if let Some(at) = at {
            cmd.arg(at.to_string());
        }
        let mut child = cmd
            .env("TINCAN_SECRET", tincan_tests::SECRET)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start tincan-test-server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("read its stdout");
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("an address");
        ServerProcess { child, addr }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGTERM, the clean stop of `tincan-server`; returns once it has exited.
    fn sigterm(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = self.child.wait().expect("reaped");
        assert!(status.success(), "a clean stop: {status:?}");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_call_in_the_window_survives_a_server_restart_and_says_so_meanwhile() {
    let dir = tincan_tests::TempDir::new("e2e-restart");
    let db = dir.path().join("tincan.db");
    {
        let store = tincan_server::store::SqliteStore::open(&db).expect("the database");
        tincan_tests::seed(&store);
        let hash = tincan_server::auth::hash_password(PASSWORD);
        store
            .set_password(&tincan_tests::uid("alice"), &hash)
            .expect("set the password");
    }
    let server = Arc::new(Mutex::new(Some(ServerProcess::start(&db, None))));
    let url = server.lock().unwrap().as_ref().unwrap().url();
    let setup = {
        let url = url.clone();
        move |s: &tincan_tests::TestServer, profile: &std::path::Path| {
            let mut launch = default_launch(s, profile);
            let at = launch
                .args
                .iter()
                .position(|a| a == "--server")
                .expect("the default launch names the server");
            launch.args[at + 1] = url;
            launch
        }
    };
    harness::run_with("restart", setup, move |s| async move {
        let mut options = tincan_sdk::ConnectOptions::default();
        options.backoff_initial = std::time::Duration::from_millis(50);
        options.backoff_max = std::time::Duration::from_millis(500);
        let token = tincan_server::TokenSigner::new(tincan_tests::SECRET.as_bytes())
            .login_token(&tincan_tests::uid("bob"), i64::MAX);
        let dev = tincan_sdk::DeviceInfo::new(
            tincan_protocol::DeviceId::new("bob-sdk").unwrap(),
            tincan_protocol::PlatformId::LINUX,
        );
        let (client, events) = tincan_sdk::connect_with(&url, &token, dev, options)
            .await
            .expect("bob signs in");
        let mut bob = tincan_tests::Peer {
            client,
            events,
            user: "bob".into(),
        };
        s.sign_in("alice").await;
        let room = bob.invite("alice").await.expect("bob calls").room_id;
        s.app.wait_state("incoming").await;
        s.app.click("incoming-accept").await;
        within(bob.expect("onInviteeAccepted")).await;
        s.app.wait_state("in-call").await;

        let (addr, mut old) = {
            let mut g = server.lock().unwrap();
            let p = g.take().expect("running");
            (p.addr, p)
        };
        tokio::task::spawn_blocking(move || {
            old.sigterm();
            old
        })
        .await
        .expect("stopped");
        s.app
            .wait_attr("reconnecting-banner", "data-link", "restarting")
            .await;
        let words = s.app.text_of("reconnecting-banner").await;
        assert!(words.contains("The server is restarting"), "{words:?}");
        assert!(words.contains("your call continues"), "{words:?}");
        assert_eq!(s.app.state().await.unwrap().as_deref(), Some("in-call"));
        s.app.screenshot("outage-restarting").await;

        let db2 = db.clone();
        let again = tokio::task::spawn_blocking(move || ServerProcess::start(&db2, Some(addr)))
            .await
            .expect("started again");
        *server.lock().unwrap() = Some(again);
        s.app.wait_gone("reconnecting-banner").await;
        assert_eq!(s.app.state().await.unwrap().as_deref(), Some("in-call"));
        within(async {
            loop {
                if let (tincan_sdk::ConnectionState::Resynced { login }, _) = bob.next_state().await
                {
                    assert!(login.current_call.is_some(), "bob is still in the call");
                    break;
                }
            }
        })
        .await;
        bob.hang_up(room.as_str()).await.expect("bob hangs up");
        s.app.wait_state("contacts").await;
        let reason = s.app.text_of("call-ended-reason").await;
        assert!(reason.contains("bob hung up"), "reason shown: {reason:?}");
        drop(dir);
    });
}
