//! `tincan-bench`: measures tincan-server against a bare tokio-tungstenite relay in the
//! same run (SPEC section 6 states targets as ratios to that relay).
//!
//! - `signaling`: invite → onReceiveNewInvitation latency, and delivered messages per
//!   second with ~2.5 KB messages; the same load against the bare relay.
//! - `idle`: server memory per idle signed-in connection (separate server process).
//! - `media`: 1:1 video calls with real media between two in-process clients: setup
//!   time, glass-to-glass latency, CPU per peer, and resources over many call cycles.
//!
//! Results and the commands are in docs/benchmarks.md.

mod media;
mod relay;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use tincan_protocol::UserId;
use tincan_server::store::{SqliteStore, Store};

#[derive(Parser)]
#[command(about = "Benchmarks for tincan-server")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Latency and throughput, tincan-server vs a bare relay (both in this process).
    Signaling {
        /// Concurrent caller/callee pairs.
        #[arg(long, default_value_t = 100)]
        pairs: usize,
        /// Invitations per pair for the latency figure.
        #[arg(long, default_value_t = 100)]
        rounds: usize,
        /// Size of each throughput message, bytes.
        #[arg(long, default_value_t = 2500)]
        msg_bytes: usize,
        /// Seconds of throughput measurement per server.
        #[arg(long, default_value_t = 5)]
        secs: u64,
        /// Messages in flight per pair during the throughput run.
        #[arg(long, default_value_t = 16)]
        window: u64,
    },
    /// Server memory per idle connection (spawns the server binary).
    Idle {
        /// Connections to open.
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Path to the tincan-server binary (build it with --release first).
        #[arg(long, default_value = "target/release/tincan-server")]
        server_bin: String,
    },
    /// 1:1 video calls (webrtc-rs media, in-process server and clients on 127.0.0.1).
    Media(media::MediaArgs),
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
}

/// A raw client: the bench measures the servers, so it skips the SDK's extra tasks.
struct Raw {
    tx: SplitSink<Ws, Message>,
    rx: SplitStream<Ws>,
}

impl Raw {
    async fn connect(url: &str) -> Raw {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true)
            .await
            .expect("connect");
        let (tx, rx) = ws.split();
        Raw { tx, rx }
    }

    async fn send(&mut self, text: String) {
        self.tx.send(Message::text(text)).await.expect("send");
    }

    async fn next_json(&mut self) -> Value {
        loop {
            match self.rx.next().await.expect("open").expect("frame") {
                Message::Text(t) => return serde_json::from_str(&t).expect("json"),
                _ => continue,
            }
        }
    }

    /// Reads until a frame satisfies `f`.
    async fn until(&mut self, f: impl Fn(&Value) -> bool) -> Value {
        loop {
            let v = self.next_json().await;
            if f(&v) {
                return v;
            }
        }
    }
}

fn req(id: u64, method: &str, data: Value) -> String {
    json!({"requestID": id, "operationID": format!("bench-{id}"), "method": method, "data": data})
        .to_string()
}

fn invite_frame(id: u64, to: &str) -> String {
    req(
        id,
        "signalingInvite",
        json!({"invitation": {"inviteeUserIDList": [to], "groupID": "", "roomID": "", "timeout": 30,
            "mediaType": "video", "sessionType": 1, "platformID": 7,
            "customData": "{\"app\":\"bench\",\"note\":\"a realistic invitation carries some custom data\"}"}}),
    )
}

struct Tincan {
    url: String,
    tokens: Vec<String>,
}

fn start_runtime_thread<F>(f: impl FnOnce() -> F + Send + 'static)
where
    F: std::future::Future<Output = ()> + 'static,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("server runtime");
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, f());
    });
}

async fn start_tincan(users: usize) -> Tincan {
    let store = Arc::new(SqliteStore::open_in_memory().expect("store"));
    for i in 0..users {
        store
            .add_user(
                &UserId::new(format!("u{i}")).unwrap(),
                &format!("User {i}"),
                None,
            )
            .unwrap();
    }
    let signer = tincan_server::signer_for(store.as_ref(), Some("bench-secret")).unwrap();
    let tokens = (0..users)
        .map(|i| signer.login_token(&UserId::new(format!("u{i}")).unwrap(), i64::MAX))
        .collect();
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let mut config = tincan_server::ServerConfig {
        secret: Some("bench-secret".into()),
        ..Default::default()
    };
    config.limits.rate_per_sec = 1e9;
    config.limits.rate_burst = 1e9;
    config.hub.max_devices_per_user = 5;
    // All bench clients come from 127.0.0.1.
    config.transport.max_unauthenticated_per_address = 10_000;
    start_runtime_thread(move || async move {
        let listener = TcpListener::from_std(std_listener).unwrap();
        let _ = tincan_server::run(listener, config, store, std::future::pending()).await;
    });
    Tincan {
        url: format!("ws://{addr}/ws"),
        tokens,
    }
}

fn start_relay() -> String {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    start_runtime_thread(move || async move {
        relay::serve(TcpListener::from_std(std_listener).unwrap()).await;
    });
    format!("ws://{addr}")
}

async fn tincan_client(t: &Tincan, user: usize) -> Raw {
    let mut c = Raw::connect(&t.url).await;
    c.send(req(
        0,
        "login",
        json!({"token": t.tokens[user], "deviceID": format!("bench-{user}"), "platformID": 7}),
    ))
    .await;
    let r = c.until(|v| v["type"] == "response").await;
    assert_eq!(r["errCode"], 0, "login: {r}");
    c
}

async fn relay_pair(url: &str, i: usize) -> (Raw, Raw) {
    let mut a = Raw::connect(url).await;
    let mut b = Raw::connect(url).await;
    a.send(format!("a{i} b{i}")).await;
    b.send(format!("b{i} a{i}")).await;
    for c in [&mut a, &mut b] {
        while !matches!(c.rx.next().await, Some(Ok(Message::Text(t))) if t.as_str() == "ready") {}
    }
    (a, b)
}

fn report(name: &str, h: &Histogram<u64>) -> (f64, f64) {
    let us = |q: f64| h.value_at_quantile(q) as f64;
    println!(
        "{name:<28} n={:<7} p50={:>8.1}µs p90={:>8.1}µs p99={:>8.1}µs p99.9={:>8.1}µs max={:>8.1}µs",
        h.len(),
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        h.max() as f64
    );
    (us(0.5), us(0.99))
}

async fn latency_tincan(t: &Tincan, pairs: usize, rounds: usize) -> Histogram<u64> {
    let mut tasks = Vec::new();
    for i in 0..pairs {
        let mut a = tincan_client(t, 2 * i).await;
        let mut b = tincan_client(t, 2 * i + 1).await;
        let callee = format!("u{}", 2 * i + 1);
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).unwrap();
            for r in 0..rounds as u64 {
                let t0 = Instant::now();
                a.send(invite_frame(r + 1, &callee)).await;
                let ev = b.until(|v| v["event"] == "onReceiveNewInvitation").await;
                h.record(t0.elapsed().as_micros() as u64).unwrap();
                let room = ev["data"]["invitation"]["roomID"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                b.send(req(
                    r + 1,
                    "signalingReject",
                    json!({"invitation": {"roomID": room}}),
                ))
                .await;
                b.until(|v| v["type"] == "response").await;
                a.until(|v| v["event"] == "onInviteeRejected").await;
            }
            h
        }));
    }
    let mut all = Histogram::<u64>::new(3).unwrap();
    for task in tasks {
        all.add(task.await.unwrap()).unwrap();
    }
    all
}

async fn latency_relay(url: &str, pairs: usize, rounds: usize) -> Histogram<u64> {
    let mut tasks = Vec::new();
    for i in 0..pairs {
        let (mut a, mut b) = relay_pair(url, i).await;
        let callee = format!("b{i}");
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).unwrap();
            for r in 0..rounds as u64 {
                let t0 = Instant::now();
                a.send(invite_frame(r + 1, &callee)).await;
                let _ = b.next_json().await;
                h.record(t0.elapsed().as_micros() as u64).unwrap();
                b.send(req(
                    r + 1,
                    "signalingReject",
                    json!({"invitation": {"roomID": "x"}}),
                ))
                .await;
                let _ = a.next_json().await;
            }
            h
        }));
    }
    let mut all = Histogram::<u64>::new(3).unwrap();
    for task in tasks {
        all.add(task.await.unwrap()).unwrap();
    }
    all
}

/// Runs `pairs` senders for `secs`, each keeping `window` messages in flight; returns
/// messages delivered per second.
async fn throughput(
    pairs: Vec<(Raw, Raw, String)>,
    secs: u64,
    window: u64,
    make: fn(u64, &str) -> String,
    is_delivery: fn(&Value) -> bool,
) -> f64 {
    let delivered = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for (a, mut b, room) in pairs {
        let got = Arc::new(AtomicU64::new(0));
        let (got_b, total) = (got.clone(), delivered.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < stop {
                let v = tokio::time::timeout(Duration::from_millis(200), b.next_json()).await;
                if let Ok(v) = v {
                    if is_delivery(&v) {
                        got_b.fetch_add(1, Ordering::Relaxed);
                        total.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
        tasks.push(tokio::spawn(async move {
            let (mut atx, mut arx) = (a.tx, a.rx);
            // Drain the sender's replies so its socket never backs up.
            let drain = tokio::spawn(async move { while let Some(Ok(_)) = arx.next().await {} });
            let mut sent = 0u64;
            while Instant::now() < stop {
                if sent - got.load(Ordering::Relaxed) >= window {
                    tokio::task::yield_now().await;
                    continue;
                }
                sent += 1;
                if atx.send(Message::text(make(sent, &room))).await.is_err() {
                    break;
                }
            }
            drain.abort();
        }));
    }
    let t0 = Instant::now();
    let start = delivered.load(Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    (delivered.load(Ordering::Relaxed) - start) as f64 / t0.elapsed().as_secs_f64()
}

static PAYLOAD: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn custom_frame(id: u64, room: &str) -> String {
    req(
        id,
        "signalingSendCustomSignal",
        json!({"roomID": room, "customInfo": PAYLOAD.get().unwrap()}),
    )
}

async fn signaling(pairs: usize, rounds: usize, msg_bytes: usize, secs: u64, window: u64) {
    PAYLOAD
        .set("x".repeat(msg_bytes.saturating_sub(150)))
        .unwrap();
    println!("# {pairs} pairs, {rounds} invitations per pair, throughput {msg_bytes} B messages for {secs} s, window {window}");
    let relay_url = start_relay();
    let tincan = start_tincan(2 * pairs).await;

    let relay_lat = latency_relay(&relay_url, pairs, rounds).await;
    let ours_lat = latency_tincan(&tincan, pairs, rounds).await;
    let (r50, r99) = report("bare relay one-way", &relay_lat);
    let (o50, o99) = report("invite→onReceiveNewInvitation", &ours_lat);
    println!(
        "ratio p50 {:.2}x  p99 {:.2}x  (SPEC: p50 ≤ 1.5x relay, p99 ≤ 1000µs)",
        o50 / r50,
        o99 / r99
    );

    let mut relay_pairs = Vec::new();
    for i in 0..pairs {
        let (a, b) = relay_pair(&relay_url, 10_000 + i).await;
        relay_pairs.push((a, b, String::new()));
    }
    let relay_rate = throughput(relay_pairs, secs, window, custom_frame, |_| true).await;

    let mut ours = Vec::new();
    for i in 0..pairs {
        let mut a = tincan_client(&tincan, 2 * i).await;
        let mut b = tincan_client(&tincan, 2 * i + 1).await;
        a.send(invite_frame(1, &format!("u{}", 2 * i + 1))).await;
        let ev = b.until(|v| v["event"] == "onReceiveNewInvitation").await;
        let room = ev["data"]["invitation"]["roomID"]
            .as_str()
            .unwrap()
            .to_owned();
        b.send(req(
            1,
            "signalingAccept",
            json!({"invitation": {"roomID": room}}),
        ))
        .await;
        b.until(|v| v["type"] == "response").await;
        a.until(|v| v["event"] == "onInviteeAccepted").await;
        ours.push((a, b, room));
    }
    let ours_rate = throughput(ours, secs, window, custom_frame, |v| {
        v["event"] == "onReceiveCustomSignal"
    })
    .await;
    println!("{:<28} {relay_rate:>10.0} msgs/s", "bare relay delivered");
    println!("{:<28} {ours_rate:>10.0} msgs/s", "tincan delivered");
    println!("ratio {:.2}x  (SPEC: ≥ 0.5x relay)", ours_rate / relay_rate);
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn idle(n: usize, server_bin: &str) {
    use std::io::BufRead;
    let dir = std::env::temp_dir().join(format!("tincan-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("bench.db");
    let store = SqliteStore::open(&db).unwrap();
    for i in 0..n {
        store
            .add_user(&UserId::new(format!("u{i}")).unwrap(), "", None)
            .unwrap();
    }
    let signer = tincan_server::signer_for(&store, Some("bench-secret")).unwrap();
    drop(store);
    let mut child = std::process::Command::new(server_bin)
        .args([
            "--db",
            db.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--secret",
            "bench-secret",
        ])
        .args(["--max-connections", &(n + 100).to_string()])
        // The ramp opens 200 connections at a time from one address before they sign
        // in; the default cap on those (16 per address) is for the public internet.
        .args(["--max-unauthenticated-per-address", "1000"])
        .args(["--max-unauthenticated", "1000"])
        .env("RUST_LOG", "warn,tincan_server=info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the server binary (build it with cargo build --release -p tincan-server)");
    let stderr = child.stderr.take().unwrap();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(i) = line.find("addr=") {
                let addr: String = line[i + 5..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let _ = addr_tx.send(addr);
            }
        }
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("server printed its address");
    let url = format!("ws://{addr}/ws");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = rss_kb(child.id());
    let t0 = Instant::now();
    let mut clients = Vec::with_capacity(n);
    let tokens: Vec<String> = (0..n)
        .map(|i| signer.login_token(&UserId::new(format!("u{i}")).unwrap(), i64::MAX))
        .collect();
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let mut set = Vec::new();
        for &i in chunk {
            let url = url.clone();
            let token = tokens[i].clone();
            set.push(tokio::spawn(async move {
                let mut c = Raw::connect(&url).await;
                c.send(req(
                    0,
                    "login",
                    json!({"token": token, "deviceID": format!("d{i}"), "platformID": 7}),
                ))
                .await;
                let r = c.until(|v| v["type"] == "response").await;
                assert_eq!(r["errCode"], 0, "{r}");
                c
            }));
        }
        for s in set {
            clients.push(s.await.unwrap());
        }
    }
    let ramp = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let loaded = rss_kb(child.id());
    println!("# {n} signed-in idle connections, server {server_bin}");
    println!(
        "connect+login ramp: {:.0} conn/s",
        n as f64 / ramp.as_secs_f64()
    );
    println!("server RSS: {base} KiB idle → {loaded} KiB with {n} connections");
    println!(
        "per connection: {:.2} KiB  (SPEC: ≤ 6 KB; 10k ≤ 100 MB total RSS)",
        (loaded.saturating_sub(base)) as f64 / n as f64
    );
    drop(clients);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let cli = Cli::parse();
    if matches!(cli.cmd, Cmd::Media(_))
        && std::env::var_os("TINCAN_MALLOC_DEFAULT").is_none_or(|v| v != "1")
    {
        // As the app and the CLI do (crates/media/src/allocator.rs); TINCAN_MALLOC_DEFAULT=1
        // measures glibc's default instead.
        tincan_media::use_one_malloc_arena();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        match cli.cmd {
            Cmd::Signaling {
                pairs,
                rounds,
                msg_bytes,
                secs,
                window,
            } => signaling(pairs, rounds, msg_bytes, secs, window).await,
            Cmd::Idle {
                connections,
                server_bin,
            } => idle(connections, &server_bin).await,
            Cmd::Media(args) => media::run(args).await,
        }
    });
}
