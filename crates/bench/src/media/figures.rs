//! Percentiles, CPU time and what the process holds.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use tincan_media::{census, udp_sockets, Census, VideoSettings};

// ---------------------------------------------------------------------------------------
// Figures

#[derive(Debug, Clone, Copy)]
pub(super) struct Dist {
    pub(super) n: usize,
    pub(super) p50: f64,
    pub(super) p90: f64,
    pub(super) max: f64,
}

/// Nearest-rank percentiles of durations, in ms.
pub(super) fn dist(samples: impl IntoIterator<Item = Duration>) -> Dist {
    let mut ms: Vec<f64> = samples
        .into_iter()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    ms.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let at = |q: f64| {
        if ms.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len());
        ms[rank - 1]
    };
    Dist {
        n: ms.len(),
        p50: at(0.5),
        p90: at(0.9),
        max: at(1.0),
    }
}

impl Dist {
    pub(super) fn json(&self) -> Value {
        json!({"n": self.n, "p50": round(self.p50), "p90": round(self.p90), "max": round(self.max)})
    }
    pub(super) fn row(&self, name: &str) {
        println!(
            "  {name:<44} {:>4} {:>8.1} {:>8.1} {:>8.1}",
            self.n, self.p50, self.p90, self.max
        );
    }
}

pub(super) fn round(x: f64) -> f64 {
    round_to(x, 1)
}

/// `x` with `digits` decimals, for JSON that reads cleanly (NaN stays NaN: `null`).
pub(super) fn round_to(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// Process CPU time (user, system) so far.
pub(super) fn cpu_time() -> (Duration, Duration) {
    // SAFETY: getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (tv(usage.ru_utime), tv(usage.ru_stime))
}

pub(super) fn status_field(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors (not counting the one that lists them).
pub(super) fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count().saturating_sub(1))
        .unwrap_or(0)
}

pub(super) fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// What the process holds after `cycle` cycles.
#[derive(Debug, Clone)]
pub(super) struct Resources {
    pub(super) cycle: usize,
    pub(super) rss_kib: u64,
    pub(super) census: Census,
    pub(super) tokio_tasks: usize,
    pub(super) udp_sockets: usize,
    pub(super) fds: usize,
    pub(super) threads: u64,
    /// How long the UDP sockets of the last closed call took to go (they are dropped on
    /// the runtime's next turn after `close`), or `None` if they had not within 2 s.
    pub(super) settle_ms: Option<f64>,
}

impl Resources {
    /// Waits (yielding, bounded) for the last call's sockets to go, then takes stock.
    pub(super) async fn take(cycle: usize, udp_baseline: usize) -> Resources {
        let t0 = Instant::now();
        let mut settled = None;
        while t0.elapsed() < Duration::from_secs(2) {
            if census() == Census::default() && udp_sockets() <= udp_baseline {
                settled = Some(t0.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            tokio::task::yield_now().await;
        }
        Resources {
            cycle,
            rss_kib: status_field("VmRSS:"),
            census: census(),
            tokio_tasks: alive_tasks(),
            udp_sockets: udp_sockets(),
            fds: open_fds(),
            threads: status_field("Threads:"),
            settle_ms: settled,
        }
    }

    pub(super) fn header() {
        println!(
            "  {:>6} {:>9} {:>5} {:>11} {:>13} {:>11} {:>4} {:>4} {:>7} {:>9}",
            "cycle",
            "rss_KiB",
            "peers",
            "media_tasks",
            "media_threads",
            "tokio_tasks",
            "udp",
            "fds",
            "threads",
            "settle_ms"
        );
    }

    pub(super) fn row(&self) {
        println!(
            "  {:>6} {:>9} {:>5} {:>11} {:>13} {:>11} {:>4} {:>4} {:>7} {:>9}",
            self.cycle,
            self.rss_kib,
            self.census.peer_connections,
            self.census.tasks,
            self.census.threads,
            self.tokio_tasks,
            self.udp_sockets,
            self.fds,
            self.threads,
            self.settle_ms
                .map(|m| format!("{m:.1}"))
                .unwrap_or_else(|| ">2000".into())
        );
    }

    pub(super) fn json(&self) -> Value {
        json!({
            "cycle": self.cycle,
            "rssKiB": self.rss_kib,
            "peerConnections": self.census.peer_connections,
            "mediaTasks": self.census.tasks,
            "mediaThreads": self.census.threads,
            "tokioTasks": self.tokio_tasks,
            "udpSockets": self.udp_sockets,
            "fds": self.fds,
            "threads": self.threads,
            "settleMs": self.settle_ms.map(round),
        })
    }
}

pub(super) fn small_video() -> VideoSettings {
    VideoSettings {
        width: 320,
        height: 240,
        fps: 15,
        bitrate_bps: 300_000,
        grain: 0,
    }
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
