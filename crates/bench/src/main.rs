//! `tincan-bench`: measures tincan-server against a bare tokio-tungstenite relay in the
//! same run (SPEC section 6 states targets as ratios to that relay).
//!
//! - `signaling`: invite → onReceiveNewInvitation latency, and delivered messages per
//!   second with ~2.5 KB messages; the same load against the bare relay.
//! - `idle`: server memory per idle signed-in connection (separate server process).
//! - `cluster`: the 2.5 KB flood with caller and callee on different nodes of a cluster
//!   (server processes on Redis and PostgreSQL), per delivered message's CPU.
//! - `media`: 1:1 video calls with real media between two in-process clients: setup
//!   time, glass-to-glass latency, CPU per peer, and resources over many call cycles.
//!
//! Results and the commands are in docs/benchmarks.md.

mod cluster;
mod idle;
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
        /// Then put this many pairs of the idle clients in calls and flood them (as
        /// `signaling` does), and report the server's RSS after the flood (0: skip).
        #[arg(long, default_value_t = 100)]
        flood_pairs: usize,
        /// Seconds of that flood.
        #[arg(long, default_value_t = 5)]
        flood_secs: u64,
        /// Connect from this many loopback addresses (127.0.0.1, .2, …): one address
        /// has about 28,000 ephemeral ports, so 100,000 connections need four.
        #[arg(long, default_value_t = 1)]
        source_addresses: u8,
    },
    /// 1:1 video calls (webrtc-rs media, in-process server and clients on 127.0.0.1).
    Media(media::MediaArgs),
    /// The flood across cluster nodes (server processes on a real Redis and PostgreSQL):
    /// one node, two and three, against the bare relay.
    Cluster(cluster::ClusterArgs),
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

/// A request frame with its keys in the documented order (docs/protocol.md §1), as the
/// SDK writes them: `method` before `data`, which lets the server read a relayed signal
/// in one pass. (`json!` would sort the keys, putting `data` first.)
fn req(id: u64, method: &str, data: Value) -> String {
    format!(
        r#"{{"requestID":{id},"operationID":"bench-{id}","method":{},"data":{data}}}"#,
        Value::from(method)
    )
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

/// Thread names of the in-process servers: their CPU time is read per thread from
/// `/proc/self/task`, so each server's CPU is separable from the load generator's.
/// (Linux keeps 15 bytes of a thread's name.)
const TINCAN_THREADS: &[&str] = &["srv-tincan", "tincan-records", "tincan-hash"];
const RELAY_THREADS: &[&str] = &["srv-relay"];

fn start_runtime_thread<F>(name: &'static str, f: impl FnOnce() -> F + Send + 'static)
where
    F: std::future::Future<Output = ()> + 'static,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
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
    start_runtime_thread(TINCAN_THREADS[0], move || async move {
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
    start_runtime_thread(RELAY_THREADS[0], move || async move {
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

/// CPU seconds (user + system) used so far by this process's threads whose names start
/// with one of `names`.
fn threads_cpu_secs(names: &[&str]) -> f64 {
    let mut ticks = 0u64;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for task in dir.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let comm = &stat[open + 1..close];
            if names.iter().any(|n| comm.starts_with(n)) {
                ticks += stat_ticks(&stat[close + 1..]);
            }
        }
    }
    ticks as f64 / clock_ticks()
}

/// CPU seconds (user + system) used so far by process `pid`.
fn process_cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    stat_ticks(after) as f64 / clock_ticks()
}

/// utime + stime from the part of a `stat` line after the command name.
fn stat_ticks(after_comm: &str) -> u64 {
    // After ")": state(3) ppid(4) … utime(14) stime(15): indices 11 and 12 here.
    let f: Vec<&str> = after_comm.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// Where a server's CPU time is read from.
#[derive(Clone)]
enum CpuOf {
    Threads(&'static [&'static str]),
    Process(u32),
    /// Several processes together (a cluster's nodes and its Redis).
    Processes(Vec<u32>),
}

impl CpuOf {
    fn secs(&self) -> f64 {
        match self {
            CpuOf::Threads(names) => threads_cpu_secs(names),
            CpuOf::Process(pid) => process_cpu_secs(*pid),
            CpuOf::Processes(pids) => pids.iter().map(|p| process_cpu_secs(*p)).sum(),
        }
    }
}

/// What one flood measured.
struct Flood {
    /// Messages delivered per second.
    rate: f64,
    /// Messages delivered per CPU-second of the server.
    per_cpu_sec: f64,
    /// Server CPU over the flood, in cores.
    cores: f64,
    /// Send → delivery, µs.
    latency: Histogram<u64>,
}

/// Runs `pairs` senders for `secs`, each keeping `window` messages in flight; measures
/// delivered messages per second, per server CPU-second, and each message's time from
/// send to delivery (both servers deliver a pair's messages in order).
async fn throughput(
    pairs: Vec<(Raw, Raw, String)>,
    secs: u64,
    window: u64,
    make: fn(u64, &str) -> String,
    is_delivery: fn(&str) -> bool,
    cpu: CpuOf,
) -> Flood {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    let delivered = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(secs);
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for (a, mut b, room) in pairs {
        let got = Arc::new(AtomicU64::new(0));
        let sent_at = Arc::new(Mutex::new(VecDeque::<Instant>::new()));
        let (got_b, total, sent_at_b) = (got.clone(), delivered.clone(), sent_at.clone());
        receivers.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).unwrap();
            while Instant::now() < stop {
                let v = tokio::time::timeout(Duration::from_millis(200), b.rx.next()).await;
                // Not parsed: the load generator shares the cores with the servers, so
                // it does as little as it can per message.
                if let Ok(Some(Ok(Message::Text(v)))) = v {
                    if is_delivery(&v) {
                        if let Some(t) = sent_at_b.lock().unwrap().pop_front() {
                            let _ = h.record(t.elapsed().as_micros() as u64);
                        }
                        got_b.fetch_add(1, Ordering::Relaxed);
                        total.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            h
        }));
        senders.push(tokio::spawn(async move {
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
                sent_at.lock().unwrap().push_back(Instant::now());
                if atx.send(Message::text(make(sent, &room))).await.is_err() {
                    break;
                }
            }
            drain.abort();
        }));
    }
    let t0 = Instant::now();
    let cpu0 = cpu.secs();
    let start = delivered.load(Ordering::Relaxed);
    let mut latency = Histogram::<u64>::new(3).unwrap();
    for t in senders {
        let _ = t.await;
    }
    for t in receivers {
        if let Ok(h) = t.await {
            latency.add(h).unwrap();
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu_secs = cpu.secs() - cpu0;
    let n = (delivered.load(Ordering::Relaxed) - start) as f64;
    Flood {
        rate: n / wall,
        per_cpu_sec: n / cpu_secs.max(1e-9),
        cores: cpu_secs / wall,
        latency,
    }
}

fn report_flood(name: &str, f: &Flood) {
    println!(
        "{name:<28} {:>9.0} msgs/s  {:>9.0} msgs per server CPU-s  (server {:.2} cores)",
        f.rate, f.per_cpu_sec, f.cores
    );
    report(&format!("{name} send→delivery"), &f.latency);
}

/// Signs in two clients and puts them in a call; returns them with the room.
async fn tincan_call_pair(t: &Tincan, caller: usize, callee: usize) -> (Raw, Raw, String) {
    let a = tincan_client(t, caller).await;
    let b = tincan_client(t, callee).await;
    call_between(a, b, &format!("u{callee}")).await
}

async fn call_between(mut a: Raw, mut b: Raw, callee: &str) -> (Raw, Raw, String) {
    a.send(invite_frame(1, callee)).await;
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
    (a, b, room)
}

/// Full call cycles (invite → invitation → accept → accepted → hang up → hung up) run
/// back to back by `pairs` pairs for `secs`; returns cycles per second, the server's
/// CPU over the run and each cycle's time.
async fn call_cycles(
    t: &Tincan,
    first_user: usize,
    pairs: usize,
    secs: u64,
) -> (f64, f64, Histogram<u64>) {
    let mut clients = Vec::new();
    for i in 0..pairs {
        let a = tincan_client(t, first_user + 2 * i).await;
        let b = tincan_client(t, first_user + 2 * i + 1).await;
        clients.push((a, b, format!("u{}", first_user + 2 * i + 1)));
    }
    // Counted from here: signing the clients in is not part of the figure.
    let stop = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for (mut a, mut b, callee) in clients {
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).unwrap();
            let mut id = 0u64;
            while Instant::now() < stop {
                id += 1;
                let t0 = Instant::now();
                a.send(invite_frame(id, &callee)).await;
                let ev = b.until(|v| v["event"] == "onReceiveNewInvitation").await;
                let room = ev["data"]["invitation"]["roomID"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                b.send(req(
                    id,
                    "signalingAccept",
                    json!({"invitation": {"roomID": room}}),
                ))
                .await;
                let r = b.until(|v| v["type"] == "response").await;
                assert_eq!(r["errCode"], 0, "accept: {r}");
                a.until(|v| v["event"] == "onInviteeAccepted").await;
                a.send(req(
                    id,
                    "signalingHungUp",
                    json!({"invitation": {"roomID": room}}),
                ))
                .await;
                let r = a.until(|v| v["type"] == "response").await;
                assert_eq!(r["errCode"], 0, "hang up: {r}");
                b.until(|v| v["event"] == "onHangUp").await;
                h.record(t0.elapsed().as_micros() as u64).unwrap();
            }
            h
        }));
    }
    let t0 = Instant::now();
    let cpu0 = threads_cpu_secs(TINCAN_THREADS);
    let mut all = Histogram::<u64>::new(3).unwrap();
    for task in tasks {
        all.add(task.await.unwrap()).unwrap();
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = threads_cpu_secs(TINCAN_THREADS) - cpu0;
    (all.len() as f64 / wall, cpu, all)
}

static PAYLOAD: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn custom_frame(id: u64, room: &str) -> String {
    req(
        id,
        "signalingSendCustomSignal",
        json!({"roomID": room, "customInfo": PAYLOAD.get().unwrap()}),
    )
}

/// The same signal with `noReplyOnSuccess` (docs/protocol.md §1.2): no response when it
/// is delivered.
fn quiet_custom_frame(id: u64, room: &str) -> String {
    let data = json!({"roomID": room, "customInfo": PAYLOAD.get().unwrap()});
    format!(
        r#"{{"requestID":{id},"operationID":"bench-{id}","method":"signalingSendCustomSignal","noReplyOnSuccess":true,"data":{data}}}"#
    )
}

async fn signaling(pairs: usize, rounds: usize, msg_bytes: usize, secs: u64, window: u64) {
    PAYLOAD
        .set("x".repeat(msg_bytes.saturating_sub(150)))
        .unwrap();
    println!("# {pairs} pairs, {rounds} invitations per pair, throughput {msg_bytes} B messages for {secs} s, window {window}");
    let relay_url = start_relay();
    let tincan = start_tincan(8 * pairs).await;

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
    let relay = throughput(
        relay_pairs,
        secs,
        window,
        custom_frame,
        |_| true,
        CpuOf::Threads(RELAY_THREADS),
    )
    .await;

    report_flood("bare relay", &relay);
    // The same flood twice: every signal answered (OpenIM's way, the default), then with
    // noReplyOnSuccess. Each on calls of its own users.
    for (k, (name, make)) in [
        ("tincan", custom_frame as fn(u64, &str) -> String),
        ("tincan noReplyOnSuccess", quiet_custom_frame),
    ]
    .into_iter()
    .enumerate()
    {
        let mut ours = Vec::new();
        for i in 0..pairs {
            let first = 2 * pairs * (k + 1);
            ours.push(tincan_call_pair(&tincan, first + 2 * i, first + 2 * i + 1).await);
        }
        let flood = throughput(
            ours,
            secs,
            window,
            make,
            |v| v.contains("\"onReceiveCustomSignal\""),
            CpuOf::Threads(TINCAN_THREADS),
        )
        .await;
        report_flood(name, &flood);
        println!(
            "{name}: ratio delivered {:.2}x (≥ 0.6x)  per CPU-s {:.2}x (≥ 0.5x)  p50 {:.2}x (≤ 1.5x)",
            flood.rate / relay.rate,
            flood.per_cpu_sec / relay.per_cpu_sec,
            flood.latency.value_at_quantile(0.5) as f64
                / relay.latency.value_at_quantile(0.5) as f64
        );
    }

    // Fresh users: the flood's calls are still in their grace period.
    let (rate, cpu, h) = call_cycles(&tincan, 6 * pairs, pairs, secs).await;
    println!(
        "call cycles (invite, accept, hang up), {pairs} pairs: {rate:.0}/s, server {:.0} µs CPU per cycle",
        cpu * 1e6 / h.len().max(1) as f64
    );
    report("call cycle", &h);
}

/// Starts the server binary on `127.0.0.1:0` with the bench's secret and limits fit for
/// a load generator, plus `args` and `env`; returns it with the address it listens on.
fn spawn_server(
    server_bin: &str,
    args: &[String],
    env: &[(&str, &str)],
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(server_bin)
        .args(["--listen", "127.0.0.1:0", "--secret", "bench-secret"])
        .args(args)
        // The ramp opens 200 connections at a time from one address before they sign
        // in; the default cap on those (16 per address) is for the public internet.
        .args(["--max-unauthenticated-per-address", "1000"])
        .args(["--max-unauthenticated", "1000"])
        // The flood sends far more than a person's client would (20 a second).
        .args(["--rate", "1000000000", "--burst", "1000000000"])
        // These clients read nothing while idle, so they would not answer the server's
        // pings and would be dropped 10 s after they go quiet; a real idle client answers
        // one ping every 5 s, which costs the server no memory.
        .args(["--ping-after", "3600"])
        .env("RUST_LOG", "warn,tincan_server=info")
        .envs(env.iter().copied())
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
            } else if line.contains("ERROR") || line.contains("WARN") {
                // The server's own complaints, e.g. why it would not start.
                eprintln!("server: {line}");
            }
        }
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("server printed its address");
    (child, addr)
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
                flood_pairs,
                flood_secs,
                source_addresses,
            } => {
                idle::run(
                    connections,
                    &server_bin,
                    (flood_pairs, flood_secs),
                    source_addresses,
                )
                .await
            }
            Cmd::Media(args) => media::run(args).await,
            Cmd::Cluster(args) => cluster::run(args).await,
        }
    });
}
