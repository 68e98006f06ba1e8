//! The real server as a process of its own (tests/bin/file_server.rs,
//! `tincan-test-server`) on a database that outlives it: for what only a separate
//! process shows — kill -9, SIGTERM, a restart on the same data, a PostgreSQL URL as
//! `--database` takes it.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tincan_protocol::{DeviceId, PlatformId};
use tincan_sdk::ConnectOptions;
use tincan_server::TokenSigner;
use tincan_tests::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    pub database: String,
    /// Its log lines (warnings and errors), as they come; they are also passed on to
    /// the test's own output.
    log: mpsc::UnboundedReceiver<String>,
}

impl ServerProcess {
    /// Starts on `database` (a SQLite file or a `postgres://` URL) on a free port, or
    /// on `at` (where a previous process listened).
    pub async fn start(database: &str, at: Option<SocketAddr>) -> ServerProcess {
        Self::start_with(database, at, &[]).await
    }

    /// Starts a cluster node on `database` (PostgreSQL) and `redis`, with a grace of
    /// `grace_secs` for dropped participants.
    pub async fn start_node(database: &str, redis: &str, grace_secs: u64) -> ServerProcess {
        let grace = grace_secs.to_string();
        Self::start_with(
            database,
            None,
            &[
                ("TINCAN_REDIS", redis),
                ("TINCAN_PARTICIPANT_GRACE", &grace),
            ],
        )
        .await
    }

    async fn start_with(
        database: &str,
        at: Option<SocketAddr>,
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tincan-test-server"));
        cmd.envs(env.iter().copied());
        cmd.arg(database);
        if let Some(at) = at {
            cmd.arg(at.to_string());
        }
        let mut child = cmd
            .env("TINCAN_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start tincan-test-server");
        let stdout = child.stdout.take().expect("piped");
        let line = BufReader::new(stdout)
            .lines()
            .next_line()
            .await
            .expect("read its stdout")
            .expect("it prints its address");
        let addr = line
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("an address");
        let (lines, log) = mpsc::unbounded_channel();
        let mut stderr = BufReader::new(child.stderr.take().expect("piped")).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                eprintln!("[server {addr}] {line}");
                let _ = lines.send(line);
            }
        });
        ServerProcess {
            child,
            addr,
            database: database.to_owned(),
            log,
        }
    }

    /// Waits (at most `limit`) for a log line that contains `text`; the lines before it
    /// are passed over.
    pub async fn logs(&mut self, text: &str, limit: Duration) -> String {
        let found = tokio::time::timeout(limit, async {
            while let Some(line) = self.log.recv().await {
                if line.contains(text) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            Ok(None) => panic!("the server ended without logging {text:?}"),
            Err(_) => panic!("the server did not log {text:?} within {limit:?}"),
        }
    }

    /// SIGSTOP: the process stands still, its sockets open, as in a long pause (a VM
    /// migrated, a swap storm); [`ServerProcess::resume`] lets it go on.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`ServerProcess::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = self.child.id().expect("running") as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL: no shutdown code runs, as in a crash or a power cut. Returns where it
    /// was, to start again there.
    pub async fn kill_9(mut self) -> (String, SocketAddr) {
        self.child.start_kill().expect("kill");
        self.child.wait().await.expect("reaped");
        (self.database, self.addr)
    }

    /// SIGTERM: the clean stop of `tincan-server` (systemd, Ctrl-C); waits for its exit,
    /// at most `limit`.
    pub async fn sigterm(mut self, limit: Duration) -> (String, SocketAddr) {
        self.signal(libc::SIGTERM);
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .expect("it stops within the limit")
            .expect("reaped");
        assert!(status.success(), "a clean stop: {status:?}");
        (self.database, self.addr)
    }

    /// Signs `user` in on `device` with a login token of the test secret, without
    /// automatic reconnects.
    pub async fn peer(&self, user: &str, device: &str) -> Peer {
        let token = TokenSigner::new(SECRET.as_bytes()).login_token(&uid(user), i64::MAX);
        self.peer_with(user, device, &token, no_reconnect()).await
    }

    /// Signs `user` in on `device` with `token` and `options`.
    pub async fn peer_with(
        &self,
        user: &str,
        device: &str,
        token: &str,
        options: ConnectOptions,
    ) -> Peer {
        let dev = tincan_sdk::DeviceInfo::new(DeviceId::new(device).unwrap(), PlatformId::LINUX);
        let (client, events) = tincan_sdk::connect_with(&self.url(), token, dev, options)
            .await
            .unwrap_or_else(|e| panic!("{user} signs in: {e}"));
        Peer {
            client,
            events,
            user: user.to_owned(),
        }
    }
}
