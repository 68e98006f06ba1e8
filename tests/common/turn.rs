//! A real TURN server for tests: Debian's coturn, started on a free loopback port with
//! the TURN REST shared secret, so the Tincan server hands out time-limited credentials
//! it accepts.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `turnserver`; killed on drop.
pub struct Coturn {
    child: Child,
    dir: PathBuf,
    pub port: u16,
    pub secret: String,
}

impl Coturn {
    /// Starts coturn and returns once it answers a STUN binding request.
    ///
    /// The port is one the kernel just handed out, so another process can take it
    /// before coturn binds it. When coturn does not answer, it is started again on a
    /// fresh port, a few times, before the test fails with coturn's log.
    pub fn start() -> Coturn {
        const ATTEMPTS: usize = 3;
        let mut logs = Vec::new();
        for _ in 0..ATTEMPTS {
            let port = {
                let probe = UdpSocket::bind("127.0.0.1:0").expect("free UDP port");
                probe.local_addr().expect("addr").port()
            };
            let dir =
                std::env::temp_dir().join(format!("tincan-coturn-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("coturn dir");
            let secret = format!("turn-secret-{port}");
            let child = spawn(port, &secret, &dir);
            let coturn = Coturn {
                child,
                dir,
                port,
                secret,
            };
            if coturn.answers() {
                return coturn;
            }
            logs.push(format!("port {port}:\n{}", coturn.log()));
        }
        panic!(
            "coturn did not answer within 10 s, {ATTEMPTS} times; logs:\n{}",
            logs.join("\n")
        );
    }

    /// Kills coturn: every relayed path through it breaks at once.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts coturn again on the same port with the same secret; the old allocations
    /// are gone, so relayed paths must be set up anew.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(self.port, &self.secret, &self.dir);
        assert!(
            self.answers(),
            "coturn did not answer again on 127.0.0.1:{} within 10 s; log:\n{}",
            self.port,
            self.log()
        );
    }

    /// The URL the Tincan server hands to clients.
    pub fn url(&self) -> String {
        format!("turn:127.0.0.1:{}", self.port)
    }

    /// coturn's log so far.
    pub fn log(&self) -> String {
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("turn"))
            .filter(|e| !e.file_name().to_string_lossy().starts_with("turndb"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect()
    }

    /// Probes with STUN binding requests until coturn answers, for at most 10 s.
    fn answers(&self) -> bool {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("probe socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        // Binding request: type 0x0001, length 0, magic cookie, transaction id.
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
        request.extend_from_slice(b"tincan-probe");
        let mut buf = [0u8; 512];
        for _ in 0..100 {
            let _ = socket.send_to(&request, ("127.0.0.1", self.port));
            if let Ok((n, _)) = socket.recv_from(&mut buf) {
                if n >= 20 && buf[0..2] == [0x01, 0x01] {
                    return true;
                }
            }
        }
        false
    }
}

fn spawn(port: u16, secret: &str, dir: &std::path::Path) -> Child {
    Command::new("turnserver")
        .args([
            "-n",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--simple-log",
            "--fingerprint",
            // UDP only: the tests speak TURN over UDP, and a TCP listener on the same
            // port number can collide with some other connection's ephemeral port —
            // coturn then retries that bind forever and never answers (seen in CI).
            "--no-tcp",
            "--no-tcp-relay",
        ])
        .args([
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            "--realm=tincan",
        ])
        // The test's peers are on loopback, which coturn refuses as a relay target
        // unless told otherwise.
        .arg("--allow-loopback-peers")
        .arg(format!("--listening-port={port}"))
        .arg("--use-auth-secret")
        .arg(format!("--static-auth-secret={secret}"))
        .arg(format!("--userdb={}", dir.join("turndb").display()))
        .arg(format!("--pidfile={}", dir.join("pid").display()))
        .arg(format!("--log-file={}", dir.join("turn.log").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("turnserver runs (apt package coturn; scripts/deps installs it)")
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
