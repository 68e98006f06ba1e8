//! `tincan-bench media`: 1:1 video calls between two in-process SDK clients with
//! [`CallMedia`], through an in-process tincan-server, on 127.0.0.1.
//!
//! 1. setup: from just before the invitee's `signalingAccept` to the first
//!    `PeerState::Connected` on each side, and to the first decoded picture each way,
//!    over `--calls` calls, at `--ice-check-ms` and (interleaved, for comparison) at
//!    `--compare-ice-check-ms` (the stack's default, 200 ms);
//! 2. steady state of one call for `--secs`: glass-to-glass latency from the stamp in
//!    each picture, received fps and kbit/s, and process CPU per peer;
//! 3. `--cycles` calls back to back (invite → accept → connected → first picture →
//!    hang up → close both), with RSS, media census, tokio tasks, UDP sockets, fds and
//!    threads at the start, after `--warmup-cycles` and at the end.
//!
//! Every wait is on an event (media events through a `watch` channel, SDK events on
//! their channel), bounded by a timeout that aborts the run with what was missing.

use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use tincan_media::{udp_sockets, VideoSettings};

mod call;
mod figures;

use call::{one_call, place_call, sign_in, start_server, Client, Record, Setup};
use figures::{cpu_time, dist, ms, round, round_to, small_video, Dist, Resources};

/// Longest wait for any one event before the run is abandoned.
const WAIT: Duration = Duration::from_secs(30);
const SECRET: &str = "bench-media-secret";
const INVITER: &str = "alice";
const INVITEE: &str = "bob";

#[derive(Args, Debug, Clone)]
pub struct MediaArgs {
    /// Calls for the setup figures (accept → connected, accept → first picture).
    #[arg(long, default_value_t = 20)]
    calls: usize,
    /// Seconds of the steady-state window (latency, fps, kbit/s, CPU).
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Call cycles for the resource-growth figures.
    #[arg(long, default_value_t = 1000)]
    cycles: usize,
    /// Cycles after which the "warmed up" resource snapshot is taken.
    #[arg(long, default_value_t = 10)]
    warmup_cycles: usize,
    /// ICE connectivity-check interval, ms, for every phase.
    #[arg(long, default_value_t = 10)]
    ice_check_ms: u64,
    /// A second interval whose setup figures are measured too, interleaved call by
    /// call with the first (200 is the stack's default); 0 to skip.
    #[arg(long, default_value_t = 200)]
    compare_ice_check_ms: u64,
    /// Only the steady state, with the inviter sharing this screen (an id of `tincan
    /// devices`, e.g. `:5/screen:0`) instead of its camera: the CPU of a call with
    /// screen sharing.
    #[arg(long, value_name = "ID")]
    screen: Option<String>,
}

// ---------------------------------------------------------------------------------------
// The phases

async fn setup_phase(
    a: &mut Client,
    b: &mut Client,
    calls: usize,
    intervals: &[Duration],
) -> Result<Vec<Vec<Setup>>, String> {
    let mut all = vec![Vec::with_capacity(calls); intervals.len()];
    // Interleaved, so that load from elsewhere on the machine hits both alike.
    for _ in 0..calls {
        for (i, &interval) in intervals.iter().enumerate() {
            all[i].push(one_call(a, b, interval, VideoSettings::default()).await?);
        }
    }
    Ok(all)
}

fn setup_report(label: &str, setups: &[Setup]) -> Value {
    let rows: [(&str, &str, Dist); 5] = [
        (
            "acceptReplyMs",
            "signalingAccept reply",
            dist(setups.iter().map(|s| s.accept_reply)),
        ),
        (
            "inviteeConnectedMs",
            "invitee media connected",
            dist(setups.iter().map(|s| s.invitee_connected)),
        ),
        (
            "inviterConnectedMs",
            "inviter media connected",
            dist(setups.iter().map(|s| s.inviter_connected)),
        ),
        (
            "firstFrameAtInviteeMs",
            "first picture inviter→invitee",
            dist(setups.iter().map(|s| s.invitee_first_frame)),
        ),
        (
            "firstFrameAtInviterMs",
            "first picture invitee→inviter",
            dist(setups.iter().map(|s| s.inviter_first_frame)),
        ),
    ];
    println!("  [{label}]");
    let mut out = serde_json::Map::new();
    for (key, name, d) in rows {
        d.row(name);
        out.insert(key.into(), d.json());
    }
    Value::Object(out)
}

struct Direction {
    name: &'static str,
    record: Record,
}

async fn steady_phase(
    a: &mut Client,
    b: &mut Client,
    ice_check: Duration,
    secs: u64,
    sharing: Option<&str>,
) -> Result<Value, String> {
    let video = VideoSettings::default();
    let call = place_call(a, b, ice_check, video, sharing).await?;
    if let Err(e) = call.established().await {
        let _ = call.end(a, b).await;
        return Err(e);
    }
    // Let the encoders and the congestion controller settle before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for side in [&call.inviter, &call.invitee] {
        side.record.send_modify(|r| {
            let (connected_at, first_frame_at) = (r.connected_at, r.first_frame_at);
            *r = Record {
                connected_at,
                first_frame_at,
                recording: true,
                ..Record::default()
            };
        });
    }
    let (wall0, (user0, sys0)) = (Instant::now(), cpu_time());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (user1, sys1) = cpu_time();
    let wall = wall0.elapsed();
    for side in [&call.inviter, &call.invitee] {
        side.record.send_modify(|r| r.recording = false);
    }
    let directions = [
        Direction {
            name: "inviter→invitee",
            record: call.invitee.snapshot(),
        },
        Direction {
            name: "invitee→inviter",
            record: call.inviter.snapshot(),
        },
    ];
    let failed = [&call.inviter, &call.invitee]
        .iter()
        .find_map(|s| s.snapshot().failed.map(|f| format!("{}: {f}", s.user)));
    call.end(a, b).await?;
    if let Some(f) = failed {
        return Err(format!("steady state: media failed: {f}"));
    }

    let (user, sys) = (user1 - user0, sys1 - sys0);
    let cpu = (user + sys).as_secs_f64() / wall.as_secs_f64();
    let mut both = Histogram::<u64>::new(3).unwrap();
    let mut dirs = serde_json::Map::new();
    println!(
        "  {:<20} {:>7} {:>8} {:>8} {:>8} {:>7} {:>8} {:>7} {:>9} {:>5}",
        "direction",
        "frames",
        "g2g_p50",
        "g2g_p99",
        "g2g_max",
        "fps",
        "kbit/s",
        "rtt_ms",
        "unstamped",
        "lost"
    );
    for d in &directions {
        let r = &d.record;
        both.add(&r.latency_us).unwrap();
        let q = |v: u64| v as f64 / 1000.0;
        let fps = r.frames as f64 / wall.as_secs_f64();
        let kbps = mean(&r.kbps_in);
        let rtt = mean(&r.rtt_ms);
        println!(
            "  {:<20} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>7.1} {:>8.0} {:>7.1} {:>9} {:>5}",
            d.name,
            r.frames,
            q(r.latency_us.value_at_quantile(0.5)),
            q(r.latency_us.value_at_quantile(0.99)),
            q(r.latency_us.max()),
            fps,
            kbps,
            rtt,
            r.unstamped,
            r.path_lost
        );
        dirs.insert(
            d.name.into(),
            json!({
                "frames": r.frames,
                "unstamped": r.unstamped,
                "glassToGlassMs": {
                    "p50": round(q(r.latency_us.value_at_quantile(0.5))),
                    "p99": round(q(r.latency_us.value_at_quantile(0.99))),
                    "max": round(q(r.latency_us.max())),
                },
                "fps": round(fps),
                "kbpsIn": round(kbps),
                "qualityFpsIn": round(mean(&r.fps_in.iter().map(|&f| f as f64).collect::<Vec<_>>())),
                "rttMs": round(rtt),
                "audioPacketsPerSec": round(r.audio_packets as f64 / wall.as_secs_f64()),
                "pathLost": r.path_lost,
            }),
        );
    }
    let g50 = both.value_at_quantile(0.5) as f64 / 1000.0;
    let g99 = both.value_at_quantile(0.99) as f64 / 1000.0;
    println!(
        "  glass-to-glass, both directions: p50 {g50:.1} ms  p99 {g99:.1} ms  (n={})",
        both.len()
    );
    println!(
        "  process CPU: {:.1}% of one core over {:.1} s (user {:.2} s, sys {:.2} s) → {:.1}% per peer",
        cpu * 100.0,
        wall.as_secs_f64(),
        user.as_secs_f64(),
        sys.as_secs_f64(),
        cpu * 100.0 / 2.0
    );
    Ok(json!({
        "video": "640x480@30",
        "inviterShares": sharing,
        "windowSecs": round(wall.as_secs_f64()),
        "glassToGlassMs": {"n": both.len(), "p50": round(g50), "p99": round(g99)},
        "directions": Value::Object(dirs),
        "cpu": {
            "processCoreShare": round_to(cpu, 3),
            "perPeerCoreShare": round_to(cpu / 2.0, 3),
            "userSecs": round_to(user.as_secs_f64(), 2),
            "sysSecs": round_to(sys.as_secs_f64(), 2),
        },
    }))
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

async fn cycles_phase(
    a: &mut Client,
    b: &mut Client,
    ice_check: Duration,
    cycles: usize,
    warmup: usize,
    udp_baseline: usize,
) -> Result<Value, String> {
    let video = small_video();
    let start = Resources::take(0, udp_baseline).await;
    let mut snapshots = vec![start];
    let mut progress = Vec::new();
    let mut setups = Vec::with_capacity(cycles);
    let mut cycle_times = Vec::with_capacity(cycles);
    let t_start = Instant::now();
    for n in 1..=cycles {
        let t0 = Instant::now();
        let setup = one_call(a, b, ice_check, video)
            .await
            .map_err(|e| format!("cycle {n}: {e}"))?;
        cycle_times.push(t0.elapsed());
        setups.push(setup);
        if n == warmup.min(cycles) && n != cycles {
            snapshots.push(Resources::take(n, udp_baseline).await);
        }
        if n % 100 == 0 || n == cycles {
            let r = Resources::take(n, udp_baseline).await;
            eprintln!(
                "# cycle {n}/{cycles} after {:.0} s: rss {} KiB, census {}/{}/{}, tokio tasks {}, udp {}, fds {}, threads {}",
                t_start.elapsed().as_secs_f64(),
                r.rss_kib,
                r.census.peer_connections,
                r.census.tasks,
                r.census.threads,
                r.tokio_tasks,
                r.udp_sockets,
                r.fds,
                r.threads
            );
            progress.push(r.json());
            if n == cycles {
                snapshots.push(r);
            }
        }
    }
    let elapsed = t_start.elapsed();
    Resources::header();
    for s in &snapshots {
        s.row();
    }
    let cycle = dist(cycle_times.iter().copied());
    let connected = dist(setups.iter().map(|s| s.invitee_connected));
    let frame = dist(
        setups
            .iter()
            .map(|s| s.invitee_first_frame.max(s.inviter_first_frame)),
    );
    println!(
        "  {:<44} {:>4} {:>8} {:>8} {:>8}",
        "per cycle (ms)", "n", "p50", "p90", "max"
    );
    cycle.row("whole cycle (invite … both closed)");
    connected.row("accept → invitee media connected");
    frame.row("accept → first picture both ways");
    let growth = |f: fn(&Resources) -> i64| {
        let warm = snapshots.get(snapshots.len().saturating_sub(2)).unwrap();
        f(snapshots.last().unwrap()) - f(warm)
    };
    let rss_growth = growth(|r| r.rss_kib as i64);
    let per_cycle = if cycles > warmup {
        rss_growth as f64 / (cycles - warmup) as f64
    } else {
        f64::NAN
    };
    println!(
        "  after warm-up: RSS {rss_growth:+} KiB ({per_cycle:+.2} KiB/cycle), tokio tasks {:+}, udp {:+}, fds {:+}, threads {:+}; {:.1} cycles/s",
        growth(|r| r.tokio_tasks as i64),
        growth(|r| r.udp_sockets as i64),
        growth(|r| r.fds as i64),
        growth(|r| r.threads as i64),
        cycles as f64 / elapsed.as_secs_f64()
    );
    Ok(json!({
        "video": "320x240@15",
        "cycles": cycles,
        "warmupCycles": warmup,
        "secs": round(elapsed.as_secs_f64()),
        "snapshots": snapshots.iter().map(Resources::json).collect::<Vec<_>>(),
        "progress": progress,
        "rssGrowthAfterWarmupKiB": rss_growth,
        "rssGrowthPerCycleKiB": round_to(per_cycle, 2),
        "cycleMs": cycle.json(),
        "inviteeConnectedMs": connected.json(),
        "firstFrameBothWaysMs": frame.json(),
    }))
}

pub async fn run(args: MediaArgs) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let udp_baseline = udp_sockets();
    let url = start_server().await;
    let mut a = sign_in(&url, INVITER).await;
    let mut b = sign_in(&url, INVITEE).await;
    let ice = Duration::from_millis(args.ice_check_ms);
    let mut intervals = vec![ice];
    if args.compare_ice_check_ms > 0 && args.compare_ice_check_ms != args.ice_check_ms {
        intervals.push(Duration::from_millis(args.compare_ice_check_ms));
    }
    println!(
        "# tincan-bench media: 1:1 video calls through an in-process server on 127.0.0.1, \
         two SDK clients + CallMedia in this process ({} tokio workers), no ICE servers",
        tokio::runtime::Handle::current().metrics().num_workers()
    );

    if let Some(screen) = &args.screen {
        println!(
            "\n## steady state: the inviter shares {screen}, the invitee sends 640x480@30; {} s window after 1 s warm-up",
            args.secs
        );
        match steady_phase(&mut a, &mut b, ice, args.secs, Some(screen)).await {
            Ok(steady) => println!("{}", json!({"bench": "media-screen", "steady": steady})),
            Err(e) => {
                eprintln!("tincan-bench media: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    match main_phases(&args, &mut a, &mut b, &intervals, udp_baseline).await {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("tincan-bench media: {e}");
            std::process::exit(1);
        }
    }
}

async fn main_phases(
    args: &MediaArgs,
    a: &mut Client,
    b: &mut Client,
    intervals: &[Duration],
    udp_baseline: usize,
) -> Result<Value, String> {
    let ice = intervals[0];
    // The first call in the process loads codecs and warms allocators; reported apart.
    let cold = one_call(a, b, ice, VideoSettings::default()).await?;
    println!(
        "\n## setup, 640x480@30, {} calls per interval (interleaved); ms from just before signalingAccept",
        args.calls
    );
    println!(
        "  cold first call (ICE {} ms): invitee connected {:.1}, inviter connected {:.1}, first pictures {:.1} / {:.1}",
        ice.as_millis(),
        ms(cold.invitee_connected),
        ms(cold.inviter_connected),
        ms(cold.invitee_first_frame),
        ms(cold.inviter_first_frame)
    );
    println!(
        "  {:<44} {:>4} {:>8} {:>8} {:>8}",
        "", "n", "p50", "p90", "max"
    );
    let all = setup_phase(a, b, args.calls, intervals).await?;
    let mut setup = serde_json::Map::new();
    for (interval, setups) in intervals.iter().zip(&all) {
        let label = format!("ICE check {} ms", interval.as_millis());
        setup.insert(
            format!("iceCheck{}ms", interval.as_millis()),
            setup_report(&label, setups),
        );
    }

    println!(
        "\n## steady state: one 640x480@30 call, {} s window after 1 s warm-up (ICE {} ms)",
        args.secs,
        ice.as_millis()
    );
    let steady = steady_phase(a, b, ice, args.secs, None).await?;

    println!(
        "\n## {} call cycles, 320x240@15 (ICE {} ms): resources at start, after {} cycles, at end",
        args.cycles,
        ice.as_millis(),
        args.warmup_cycles.min(args.cycles)
    );
    let cycles = cycles_phase(a, b, ice, args.cycles, args.warmup_cycles, udp_baseline).await?;

    Ok(json!({
        "bench": "media",
        "config": {
            "calls": args.calls,
            "secs": args.secs,
            "cycles": args.cycles,
            "warmupCycles": args.warmup_cycles,
            "iceCheckMs": args.ice_check_ms,
            "compareIceCheckMs": args.compare_ice_check_ms,
            "tokioWorkers": tokio::runtime::Handle::current().metrics().num_workers(),
            "udpBaseline": udp_baseline,
        },
        "coldCall": {
            "inviteeConnectedMs": round(ms(cold.invitee_connected)),
            "inviterConnectedMs": round(ms(cold.inviter_connected)),
            "firstFrameAtInviteeMs": round(ms(cold.invitee_first_frame)),
            "firstFrameAtInviterMs": round(ms(cold.inviter_first_frame)),
        },
        "setup": Value::Object(setup),
        "steady": steady,
        "cycles": cycles,
    }))
}
