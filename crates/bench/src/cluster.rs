//! `tincan-bench cluster`: the 2.5 KB custom-signal flood of `signaling`, with caller and
//! callee on different nodes of a cluster (docs/deploy.md): server processes on one
//! redis-server and one PostgreSQL started here, on free loopback ports. One node (no
//! Redis), two and three are measured in one run, against the bare relay.
//!
//! On two cores every process shares the same two cores, so this is a simulation: the
//! figures that carry over to real machines are the CPU spent per delivered message (all
//! nodes and Redis together) and the latency a cross-node hop adds, not the rate.
//!
//! Placement: with one node, both ends on it. With two, callers on the follower and
//! callees on the leader (a request crosses Redis once, its reply once). With three,
//! callers and callees on the two followers (a request crosses Redis to the leader, the
//! event to the callee's node, the reply back to the caller's node).

use std::time::Duration;

use clap::Args;
use serde_json::json;

use tincan_protocol::UserId;
use tincan_server::cluster::test_redis::TestRedis;
use tincan_server::store::test_postgres::TestPostgres;
use tincan_server::store::Database;
use tincan_server::TokenSigner;

use crate::{
    call_between, custom_frame, quiet_custom_frame, relay_pair, report_flood, req, spawn_server,
    start_relay, throughput, CpuOf, Flood, Raw, PAYLOAD, RELAY_THREADS,
};

/// What `tincan-bench cluster` takes.
#[derive(Args)]
pub struct ClusterArgs {
    /// Caller/callee pairs.
    #[arg(long, default_value_t = 100)]
    pairs: usize,
    /// Seconds of flood per configuration.
    #[arg(long, default_value_t = 5)]
    secs: u64,
    /// Messages in flight per pair.
    #[arg(long, default_value_t = 16)]
    window: u64,
    /// Send the signals with `noReplyOnSuccess` (no response when delivered).
    #[arg(long)]
    no_reply_on_success: bool,
    /// Path to the tincan-server binary (build it with --release first).
    #[arg(long, default_value = "target/release/tincan-server")]
    server_bin: String,
}

/// Node processes (and their Redis), killed when dropped.
struct Nodes {
    children: Vec<std::process::Child>,
    urls: Vec<String>,
    redis: Option<TestRedis>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Nodes {
    /// `n` nodes on database `db`; more than one on a fresh Redis. Started one after
    /// another, so the first leads.
    fn start(server_bin: &str, db: &str, n: usize) -> Nodes {
        let redis = (n > 1).then(TestRedis::start);
        let mut children = Vec::new();
        let mut urls = Vec::new();
        for _ in 0..n {
            let mut args = vec!["--database".to_owned(), db.to_owned()];
            if let Some(r) = &redis {
                args.extend(["--redis".to_owned(), r.url()]);
            }
            let (child, addr) = spawn_server(server_bin, &args, &[]);
            children.push(child);
            urls.push(format!("ws://{addr}/ws"));
        }
        Nodes {
            children,
            urls,
            redis,
        }
    }

    fn cpu(&self) -> CpuOf {
        let mut pids: Vec<u32> = self.children.iter().map(|c| c.id()).collect();
        pids.extend(self.redis.as_ref().map(|r| r.pid()));
        CpuOf::Processes(pids)
    }

    /// Where callers and callees sign in (see the module docs).
    fn placement(&self) -> (&str, &str) {
        match self.urls.len() {
            1 => (&self.urls[0], &self.urls[0]),
            2 => (&self.urls[1], &self.urls[0]),
            _ => (&self.urls[2], &self.urls[1]),
        }
    }
}

async fn client(url: &str, token: &str, user: usize) -> Raw {
    let mut c = Raw::connect(url).await;
    c.send(req(
        0,
        "login",
        json!({"token": token, "deviceID": format!("bench-{user}"), "platformID": 7}),
    ))
    .await;
    let r = c.until(|v| v["type"] == "response").await;
    assert_eq!(r["errCode"], 0, "login: {r}");
    c
}

async fn flood(nodes: &Nodes, signer: &TokenSigner, args: &ClusterArgs) -> Flood {
    let (callers, callees) = nodes.placement();
    let token = |i: usize| signer.login_token(&UserId::new(format!("u{i}")).unwrap(), i64::MAX);
    let mut pairs = Vec::new();
    for i in 0..args.pairs {
        let (a, b) = (2 * i, 2 * i + 1);
        let caller = client(callers, &token(a), a).await;
        let callee = client(callees, &token(b), b).await;
        pairs.push(call_between(caller, callee, &format!("u{b}")).await);
    }
    throughput(
        pairs,
        args.secs,
        args.window,
        if args.no_reply_on_success {
            quiet_custom_frame
        } else {
            custom_frame
        },
        |v| v.contains("\"onReceiveCustomSignal\""),
        nodes.cpu(),
    )
    .await
}

/// Runs the comparison (see the module docs).
pub async fn run(args: ClusterArgs) {
    PAYLOAD.get_or_init(|| "x".repeat(2500 - 150));
    println!(
        "# {} pairs, 2.5 KB custom signals{} for {} s each, window {}; server {}",
        args.pairs,
        if args.no_reply_on_success {
            " (noReplyOnSuccess)"
        } else {
            ""
        },
        args.secs,
        args.window,
        args.server_bin
    );
    let relay_url = start_relay();
    let mut relay_pairs = Vec::new();
    for i in 0..args.pairs {
        let (a, b) = relay_pair(&relay_url, i).await;
        relay_pairs.push((a, b, String::new()));
    }
    let relay = throughput(
        relay_pairs,
        args.secs,
        args.window,
        custom_frame,
        |_| true,
        CpuOf::Threads(RELAY_THREADS),
    )
    .await;
    report_flood("bare relay", &relay);

    let pg = TestPostgres::start();
    let signer = TokenSigner::new(b"bench-secret");
    for n in [1usize, 2, 3] {
        let db = pg.create_database(&format!("bench{n}"));
        let store = Database::parse(&db).open().expect("open the database");
        for i in 0..2 * args.pairs {
            store
                .add_user(&UserId::new(format!("u{i}")).unwrap(), "", None)
                .unwrap();
        }
        drop(store);
        let nodes = Nodes::start(&args.server_bin, &db, n);
        // The followers look at the lease once a second; let them all have.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let f = flood(&nodes, &signer, &args).await;
        let name = format!("{n} node{}", if n == 1 { "" } else { "s" });
        report_flood(&name, &f);
        println!(
            "{name}: {:.1} µs of server CPU per delivered message (relay {:.1} µs); delivered {:.2}x the relay; p50 {:.2}x",
            1e6 / f.per_cpu_sec,
            1e6 / relay.per_cpu_sec,
            f.rate / relay.rate,
            f.latency.value_at_quantile(0.5) as f64 / relay.latency.value_at_quantile(0.5) as f64
        );
    }
}
