//! `tincan-bench idle`: the server's memory per idle signed-in connection. The server
//! binary runs as a process of its own (its RSS is the figure); this process opens the
//! connections, from several loopback source addresses when one address's ports do
//! not suffice, signs them in, and optionally floods a few pairs to see how much of the
//! memory a burst leaves behind.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::MaybeTlsStream;

use tincan_protocol::UserId;
use tincan_server::store::{SqliteStore, Store};

use crate::{
    call_between, custom_frame, report_flood, req, spawn_server, throughput, ws_config, CpuOf, Raw,
    PAYLOAD,
};

/// Measures `n` idle connections to `server_bin`; then floods `flood_pairs` pairs for
/// `flood_secs` and measures again. `sources` loopback addresses connect.
pub async fn run(n: usize, server_bin: &str, (flood_pairs, flood_secs): (usize, u64), sources: u8) {
    raise_fd_limit(n as u64 + 1024);
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
    let (mut child, addr) = spawn_server(
        server_bin,
        &[
            "--db".into(),
            db.to_str().unwrap().into(),
            "--max-connections".into(),
            (n + 100).to_string(),
        ],
        &[],
    );
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
            let (url, addr) = (url.clone(), addr.clone());
            let token = tokens[i].clone();
            let from = std::net::Ipv4Addr::new(127, 0, 0, 1 + (i % sources.max(1) as usize) as u8);
            set.push(tokio::spawn(async move {
                let mut c = connect_from(&url, &addr, from).await;
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
    if flood_pairs > 0 && 2 * flood_pairs <= clients.len() {
        PAYLOAD.get_or_init(|| "x".repeat(2500 - 150));
        let mut pairs = Vec::new();
        let mut it = clients.drain(..2 * flood_pairs);
        for i in 0..flood_pairs {
            let (a, b) = (it.next().unwrap(), it.next().unwrap());
            pairs.push(call_between(a, b, &format!("u{}", 2 * i + 1)).await);
        }
        drop(it);
        let f = throughput(
            pairs,
            flood_secs,
            16,
            custom_frame,
            |v| v.contains("\"onReceiveCustomSignal\""),
            CpuOf::Process(child.id()),
        )
        .await;
        let after = rss_kb(child.id());
        tokio::time::sleep(Duration::from_secs(3)).await;
        let settled = rss_kb(child.id());
        println!("# then {flood_pairs} pairs in calls, 2.5 KB signals for {flood_secs} s");
        report_flood("tincan (own process)", &f);
        println!(
            "server RSS: {base} KiB idle, {loaded} KiB before the flood → {after} KiB after → {settled} KiB 3 s later ({:.2}x of before the flood, {:.2}x of idle)",
            settled as f64 / loaded as f64,
            settled as f64 / base as f64
        );
    }
    drop(clients);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
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

/// Lets this process and the server it starts keep `n` sockets open.
fn raise_fd_limit(n: u64) {
    let want = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    let mut have = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain struct pointers to the process's own limits.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut have);
        if have.rlim_cur >= n {
            return;
        }
        if libc::setrlimit(libc::RLIMIT_NOFILE, &want) != 0 {
            let soft = libc::rlimit {
                rlim_cur: have.rlim_max,
                rlim_max: have.rlim_max,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
            eprintln!(
                "could not raise the open-file limit to {n} (hard limit {}; raising it needs CAP_SYS_RESOURCE)",
                have.rlim_max
            );
        }
    }
}

/// Connects from a given loopback address.
async fn connect_from(url: &str, addr: &str, from: std::net::Ipv4Addr) -> Raw {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind((from, 0).into()).expect("bind");
    let stream = sock.connect(addr.parse().unwrap()).await.expect("connect");
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        url,
        MaybeTlsStream::Plain(stream),
        Some(ws_config()),
    )
    .await
    .expect("handshake");
    let (tx, rx) = ws.split();
    Raw { tx, rx }
}
