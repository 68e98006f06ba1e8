//! The network lab: Linux network namespaces that a test builds and tears down itself
//! (docs/network-lab.md has the picture and the same steps as shell commands).
//!
//! ```text
//!                 pub (100.64.0.1: tincan-server, coturn STUN/TURN :3478)
//!                  │ bridge br0, 100.64.0.0/24
//!        ┌─────────┴──────────┐
//!   r0 wan 100.64.0.10   r1 wan 100.64.0.11      routers: nft masquerade (NAT),
//!   r0 lan 10.0.0.1      r1 lan 10.1.0.1         optional firewall (UDP blocked)
//!        │ [w0: wire]         │
//!   h0 eth0 10.0.0.2     h1 eth0 10.1.0.2        hosts: the media clients
//! ```
//!
//! The media clients run in this process on a tokio runtime of their own whose threads
//! enter the host's namespace as they start ([`NsRuntime`], in `clients.rs` with the
//! calls between them and their figures): every socket they open (signaling, ICE, TURN)
//! is the host's. The server listens on a socket opened in `pub`;
//! coturn is started in `pub` with `ip netns exec`.

mod clients;
mod wire;

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub use clients::{call, frame_figures, media_config, report, FrameFigures, NsRuntime};
pub use wire::{Impairment, Wire, WireCounts};

use crate::turn::{Coturn, Placement};
use crate::TestServer;

/// The public segment's address: server and coturn.
pub const PUBLIC_IP: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);
/// Namespaces of every lab start with this (stale ones are found by it).
const PREFIX: &str = "tincan-lab-";
/// Set (CI sets `TINCAN_E2E=1`) so a machine that cannot build the lab fails the tests
/// instead of skipping them.
const STRICT_ENV: &str = "TINCAN_E2E";

/// How a home router maps its hosts' flows to its public address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// `masquerade`: Linux keeps the source port when it is free, so one local socket
    /// gets one public address and port for every destination (endpoint-independent
    /// mapping); only replies to flows the host started get in.
    Cone,
    /// `masquerade fully-random`: a new random public port for every new flow, so the
    /// address STUN saw is useless to any other peer (endpoint-dependent mapping).
    Symmetric,
}

/// One home: a host behind a router.
#[derive(Debug, Clone, Copy)]
pub struct HomeSpec {
    pub nat: Nat,
    /// The router forwards no UDP at all (TCP only, like some corporate networks).
    pub block_udp: bool,
    /// The host's link to its router is a userspace wire with these impairments.
    pub link: Option<Impairment>,
}

impl HomeSpec {
    pub fn new(nat: Nat) -> HomeSpec {
        HomeSpec {
            nat,
            block_udp: false,
            link: None,
        }
    }
}

/// One home's names and addresses.
#[derive(Debug, Clone)]
pub struct Home {
    pub host_ns: String,
    pub router_ns: String,
    /// The wire's namespace, when the link is impaired.
    pub wire_ns: Option<String>,
    /// The host's private address.
    pub host_ip: Ipv4Addr,
    /// The router's public address (what STUN reports).
    pub public_ip: Ipv4Addr,
}

/// A built lab; its namespaces are deleted on drop.
pub struct Lab {
    pub public_ns: String,
    pub homes: Vec<Home>,
    pub wires: Vec<Wire>,
    namespaces: Vec<String>,
}

/// Builds the lab, or says why this machine cannot: skips (returns `None` with a printed
/// reason) unless `TINCAN_E2E=1`, where the test fails instead.
pub fn lab_or_skip(test: &str, homes: &[HomeSpec]) -> Option<Lab> {
    match Lab::new(homes) {
        Ok(lab) => Some(lab),
        Err(why) if std::env::var(STRICT_ENV).as_deref() == Ok("1") => {
            panic!("{test}: the network lab cannot be built here ({STRICT_ENV}=1): {why}")
        }
        Err(why) => {
            eprintln!("skipping {test}: the network lab cannot be built here: {why}");
            None
        }
    }
}

impl Lab {
    /// Builds `pub` and one home per spec.
    pub fn new(specs: &[HomeSpec]) -> Result<Lab, String> {
        prerequisites()?;
        clean_stale();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut lab = Lab {
            public_ns: format!("{name}-pub"),
            homes: Vec::new(),
            wires: Vec::new(),
            namespaces: Vec::new(),
        };
        lab.add_ns(&lab.public_ns.clone())?;
        let p = lab.public_ns.clone();
        run(&["ip", "-n", &p, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", &p, "addr", "add", "100.64.0.1/24", "dev", "br0"])?;
        run(&["ip", "-n", &p, "link", "set", "dev", "br0", "up"])?;
        // The internet routes everything somewhere. Without a default route, coturn's
        // relay sending to a private address (a far end's host candidate, which ICE
        // tries too) fails with ENETUNREACH and coturn closes the whole allocation; a
        // gateway that does not exist drops such packets silently, as upstream does.
        run(&[
            "ip", "-n", &p, "route", "add", "default", "via", UPSTREAM, "dev", "br0",
        ])?;
        for (i, spec) in specs.iter().enumerate() {
            lab.add_home(&name, i, spec)?;
        }
        Ok(lab)
    }

    fn add_ns(&mut self, ns: &str) -> Result<(), String> {
        run(&["ip", "netns", "add", ns])?;
        self.namespaces.push(ns.to_owned());
        run(&["ip", "-n", ns, "link", "set", "dev", "lo", "up"])?;
        // No IPv6: the lab is IPv4, and link-local chatter would only add noise.
        let _ = run(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
        ]);
        Ok(())
    }

    fn add_home(&mut self, name: &str, i: usize, spec: &HomeSpec) -> Result<(), String> {
        let (r, h) = (format!("{name}-r{i}"), format!("{name}-h{i}"));
        let public_ip = Ipv4Addr::new(100, 64, 0, 10 + i as u8);
        let host_ip = Ipv4Addr::new(10, i as u8, 0, 2);
        let router_lan = Ipv4Addr::new(10, i as u8, 0, 1);
        self.add_ns(&r)?;
        self.add_ns(&h)?;
        let (p, up) = (self.public_ns.clone(), format!("up{i}"));
        // Router ↔ pub's bridge.
        run(&[
            "ip", "link", "add", "wan", "netns", &r, "type", "veth", "peer", "name", &up, "netns",
            &p,
        ])?;
        run(&[
            "ip", "-n", &p, "link", "set", "dev", &up, "master", "br0", "up",
        ])?;
        run(&[
            "ip",
            "-n",
            &r,
            "addr",
            "add",
            &format!("{public_ip}/24"),
            "dev",
            "wan",
        ])?;
        run(&["ip", "-n", &r, "link", "set", "dev", "wan", "up"])?;
        // Host ↔ router, directly or through a wire.
        let wire_ns = match spec.link {
            None => {
                run(&[
                    "ip", "link", "add", "lan", "netns", &r, "type", "veth", "peer", "name",
                    "eth0", "netns", &h,
                ])?;
                None
            }
            Some(_) => {
                let w = format!("{name}-w{i}");
                self.add_ns(&w)?;
                run(&[
                    "ip", "link", "add", "eth0", "netns", &h, "type", "veth", "peer", "name", "a",
                    "netns", &w,
                ])?;
                run(&[
                    "ip", "link", "add", "lan", "netns", &r, "type", "veth", "peer", "name", "b",
                    "netns", &w,
                ])?;
                for (ns, dev) in [(&h, "eth0"), (&r, "lan"), (&w, "a"), (&w, "b")] {
                    // Whole, checksummed frames on the wire (see wire.rs).
                    run(&[
                        "ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "tso", "off",
                        "gso", "off", "gro", "off",
                    ])?;
                    run(&["ip", "-n", ns, "link", "set", "dev", dev, "up"])?;
                }
                Some(w)
            }
        };
        run(&[
            "ip",
            "-n",
            &r,
            "addr",
            "add",
            &format!("{router_lan}/24"),
            "dev",
            "lan",
        ])?;
        run(&["ip", "-n", &r, "link", "set", "dev", "lan", "up"])?;
        run(&[
            "ip",
            "-n",
            &h,
            "addr",
            "add",
            &format!("{host_ip}/24"),
            "dev",
            "eth0",
        ])?;
        run(&["ip", "-n", &h, "link", "set", "dev", "eth0", "up"])?;
        run(&[
            "ip",
            "-n",
            &h,
            "route",
            "add",
            "default",
            "via",
            &router_lan.to_string(),
        ])?;
        run(&[
            "ip",
            "netns",
            "exec",
            &r,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ])?;
        nft(&r, &router_rules(spec))?;
        if let (Some(w), Some(imp)) = (&wire_ns, spec.link) {
            self.wires
                .push(Wire::start(w, imp, 0x7469_6e63_616e + i as u64)?);
        }
        self.homes.push(Home {
            host_ns: h,
            router_ns: r,
            wire_ns,
            host_ip,
            public_ip,
        });
        Ok(())
    }

    /// coturn in `pub` on [`PUBLIC_IP`]:3478 (STUN and TURN; TURN over TCP too if `tcp`).
    pub fn coturn(&self, tcp: bool) -> Coturn {
        Coturn::start_at(Placement {
            netns: Some(self.public_ns.clone()),
            ip: PUBLIC_IP,
            tcp,
            tls: None,
        })
    }

    /// coturn as [`Lab::coturn`] with TCP, and TURN over TLS with `tls`'s certificate
    /// on [`crate::turn::TLS_PORT`].
    pub fn coturn_tls(&self, tls: crate::turn::TurnTls) -> Coturn {
        Coturn::start_at(Placement {
            netns: Some(self.public_ns.clone()),
            ip: PUBLIC_IP,
            tcp: true,
            tls: Some(tls),
        })
    }

    /// The real server, listening on [`PUBLIC_IP`] in `pub`, handing out `ice`.
    pub async fn server(&self, ice: tincan_server::IceConfig) -> TestServer {
        let listener = in_netns(&self.public_ns, || {
            std::net::TcpListener::bind((PUBLIC_IP, 0)).expect("listen in pub")
        });
        let mut config = tincan_server::ServerConfig::default();
        config.hub.ice = ice;
        TestServer::start_listening(listener, config).await
    }

    /// A runtime whose threads live in home `i`'s host namespace.
    pub fn runtime(&self, i: usize) -> NsRuntime {
        NsRuntime::new(&self.homes[i].host_ns)
    }

    /// Caps home `i`'s uplink (its host's egress) at `kbit` kbit/s with a token bucket
    /// (`tbf`: a 100 ms queue, then tail drop — a thin DSL or mobile uplink), or lifts
    /// the cap with `None`.
    pub fn cap_uplink(&self, i: usize, kbit: Option<u32>) {
        let host = &self.homes[i].host_ns;
        match kbit {
            Some(kbit) => self.exec(
                host,
                &[
                    "tc",
                    "qdisc",
                    "replace",
                    "dev",
                    "eth0",
                    "root",
                    "tbf",
                    "rate",
                    &format!("{kbit}kbit"),
                    "burst",
                    "4kb",
                    "latency",
                    "100ms",
                ],
            ),
            None => self.exec(host, &["tc", "qdisc", "del", "dev", "eth0", "root"]),
        }
    }

    /// Gives home `i`'s router a new public address, as when an ISP renumbers a line or
    /// a phone moves to another network: every mapping through the old address is gone
    /// (masquerade forgets them when the address goes), so every flow from the home,
    /// signaling and media, reaches the far end from somewhere new. Returns the address.
    pub fn renumber(&mut self, i: usize) -> Ipv4Addr {
        let home = &self.homes[i];
        let (old, new) = (home.public_ip, Ipv4Addr::new(100, 64, 0, 20 + i as u8));
        let router = home.router_ns.clone();
        // Old first: removing a primary address also removes the secondaries of its subnet.
        self.exec(
            &router,
            &["ip", "addr", "del", &format!("{old}/24"), "dev", "wan"],
        );
        self.exec(
            &router,
            &["ip", "addr", "add", &format!("{new}/24"), "dev", "wan"],
        );
        self.homes[i].public_ip = new;
        new
    }

    /// Runs a command in namespace `ns`; panics with its output when it fails.
    pub fn exec(&self, ns: &str, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", ns];
        all.extend_from_slice(args);
        run(&all).unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.wires.clear();
        for ns in self.namespaces.iter().rev() {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

/// pub's default gateway: an address on the bridge that nothing answers for.
const UPSTREAM: &str = "100.64.0.254";

/// The routers' nftables ruleset: NAT on `wan`, and the firewall.
fn router_rules(spec: &HomeSpec) -> String {
    let masquerade = match spec.nat {
        Nat::Cone => "masquerade",
        Nat::Symmetric => "masquerade fully-random",
    };
    // The input chain is every home router's: nothing new from the internet reaches
    // the router itself. It matters for NAT traversal, not only for realism: a packet
    // that is dropped there never confirms a conntrack entry, while one that reaches a
    // closed port does, and that entry (far end → our public address and port) then
    // collides with the mapping our own host needs towards the same far end, so
    // masquerade gives the host another port and the far end's hole punch misses it.
    // Without this chain two cone NATs could not reach each other whenever one side's
    // first check arrived before the other side had sent its own.
    let mut rules = format!(
        "table ip lab {{\n chain post {{\n  type nat hook postrouting priority srcnat; policy accept;\n  oifname \"wan\" {masquerade}\n }}\n chain from_wan {{\n  type filter hook input priority filter; policy accept;\n  iifname \"wan\" ct state new drop\n }}\n"
    );
    if spec.block_udp {
        rules.push_str(
            " chain no_udp {\n  type filter hook forward priority filter; policy accept;\n  meta l4proto udp drop\n }\n",
        );
    }
    rules.push_str("}\n");
    rules
}

fn nft(ns: &str, rules: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: {e}"))?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(rules.as_bytes())
        .map_err(|e| format!("nft stdin: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft in {ns} refused\n{rules}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs a command; its stderr becomes the error.
fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Root, and the tools the lab uses.
fn prerequisites() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)".into());
    }
    for tool in ["ip", "nft", "ethtool", "tc", "turnserver"] {
        let found = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            return Err(format!(
                "`{tool}` is not installed (scripts/deps installs it)"
            ));
        }
    }
    Ok(())
}

/// Deletes the namespaces of labs whose process is gone (a test run that was killed).
fn clean_stale() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(dir) = std::fs::read_dir("/run/netns") else {
            return;
        };
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = run(&["ip", "netns", "del", &name]);
            }
        }
    });
}

/// Moves the calling thread into network namespace `ns`.
pub(crate) fn enter_netns(ns: &str) -> Result<(), String> {
    let file = std::fs::File::open(format!("/run/netns/{ns}"))
        .map_err(|e| format!("namespace {ns}: {e}"))?;
    // SAFETY: setns on an fd we hold open; it only changes this thread's namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "setns into {ns}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Runs `f` on a thread of its own inside namespace `ns`; sockets it opens belong to
/// `ns` and stay there wherever they are used afterwards.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        enter_netns(&ns).unwrap_or_else(|e| panic!("{e}"));
        f()
    })
    .join()
    .expect("thread in a lab namespace")
}
