//! A real TURN server for tests: Debian's coturn, started on a free loopback port with
//! the TURN REST shared secret, so the Tincan server hands out time-limited credentials
//! it accepts.

use std::net::{Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where coturn runs: loopback of this namespace (the media tests), or one address of
/// a network namespace (the network lab, common/netlab).
#[derive(Debug, Clone)]
pub struct Placement {
    /// The namespace (`ip netns exec`); `None`: this process's.
    pub netns: Option<String>,
    /// The address it listens on and relays from.
    pub ip: Ipv4Addr,
    /// Whether it also takes TURN over TCP (same port).
    pub tcp: bool,
    /// TURN over TLS too, on [`TLS_PORT`], with this certificate (lab only).
    pub tls: Option<TurnTls>,
}

/// coturn's certificate and key files (PEM).
#[derive(Debug, Clone)]
pub struct TurnTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// TURN over TLS's standard port, free in a lab namespace of its own.
pub const TLS_PORT: u16 = 5349;

impl Placement {
    fn loopback() -> Placement {
        Placement {
            netns: None,
            ip: Ipv4Addr::LOCALHOST,
            tcp: false,
            tls: None,
        }
    }
}

/// A running `turnserver`; killed on drop.
pub struct Coturn {
    child: Child,
    dir: PathBuf,
    placement: Placement,
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
        Self::start_at(Placement::loopback())
    }

    /// Starts coturn as `placement` says. In a namespace of its own (the lab's) the
    /// standard port 3478 is free; on loopback a free port is picked.
    pub fn start_at(placement: Placement) -> Coturn {
        assert!(
            placement.tls.is_none() || placement.netns.is_some(),
            "TURN over TLS takes a fixed port: only in a lab namespace"
        );
        const ATTEMPTS: usize = 3;
        let mut logs = Vec::new();
        for _ in 0..ATTEMPTS {
            let port = if placement.netns.is_some() {
                3478
            } else {
                let probe = UdpSocket::bind("127.0.0.1:0").expect("free UDP port");
                probe.local_addr().expect("addr").port()
            };
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Lab coturns share port 3478 (each in its namespace): the counter keeps
            // their directories apart.
            let dir = std::env::temp_dir()
                .join(format!("tincan-coturn-{}-{port}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("coturn dir");
            let secret = format!("turn-secret-{port}");
            let child = spawn(&placement, port, &secret, &dir);
            let coturn = Coturn {
                child,
                dir,
                placement: placement.clone(),
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
        self.child = spawn(&self.placement, self.port, &self.secret, &self.dir);
        assert!(
            self.answers(),
            "coturn did not answer again on {}:{} within 10 s; log:\n{}",
            self.placement.ip,
            self.port,
            self.log()
        );
    }

    /// The URL the Tincan server hands to clients.
    pub fn url(&self) -> String {
        format!("turn:{}:{}", self.placement.ip, self.port)
    }

    /// The URL of its TURN over TLS service, if it has one.
    pub fn turns_url(&self) -> Option<String> {
        self.placement
            .tls
            .as_ref()
            .map(|_| format!("turns:{}:{TLS_PORT}", self.placement.ip))
    }

    /// The URL of its STUN service (the same port).
    pub fn stun_url(&self) -> String {
        format!("stun:{}:{}", self.placement.ip, self.port)
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
        let (ip, port) = (self.placement.ip, self.port);
        match &self.placement.netns {
            None => answers(ip, port),
            Some(ns) => crate::netlab::in_netns(ns, move || answers(ip, port)),
        }
    }
}

/// Probes `ip:port` from a socket of the calling thread's namespace.
fn answers(ip: Ipv4Addr, port: u16) -> bool {
    {
        let socket = UdpSocket::bind((ip, 0)).expect("probe socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        // Binding request: type 0x0001, length 0, magic cookie, transaction id.
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
        request.extend_from_slice(b"tincan-probe");
        let mut buf = [0u8; 512];
        for _ in 0..100 {
            let _ = socket.send_to(&request, (ip, port));
            if let Ok((n, _)) = socket.recv_from(&mut buf) {
                if n >= 20 && buf[0..2] == [0x01, 0x01] {
                    return true;
                }
            }
        }
        false
    }
}

fn spawn(placement: &Placement, port: u16, secret: &str, dir: &std::path::Path) -> Child {
    let mut command = match &placement.netns {
        None => Command::new("turnserver"),
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "turnserver"]);
            c
        }
    };
    command
        .args(["-n", "--no-cli", "--no-dtls", "--simple-log"])
        .arg("--fingerprint");
    match &placement.tls {
        None => {
            command.arg("--no-tls");
        }
        Some(tls) => {
            command
                .arg(format!("--tls-listening-port={TLS_PORT}"))
                .arg(format!("--cert={}", tls.cert.display()))
                .arg(format!("--pkey={}", tls.key.display()));
        }
    }
    if !placement.tcp {
        // UDP only: the tests speak TURN over UDP, and a TCP listener on the same
        // port number can collide with some other connection's ephemeral port —
        // coturn then retries that bind forever and never answers (seen in CI). In a
        // lab namespace nothing else binds, so TCP is safe there.
        command.args(["--no-tcp", "--no-tcp-relay"]);
    }
    command
        .arg(format!("--listening-ip={}", placement.ip))
        .arg(format!("--relay-ip={}", placement.ip))
        .arg("--realm=tincan")
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
