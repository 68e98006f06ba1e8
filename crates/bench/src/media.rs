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

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use tincan_media::{census, CallMedia, Census, MediaConfig, MediaEvent, PeerSettings, PeerState};
use tincan_media::{pattern, udp_sockets, VideoSettings};
use tincan_protocol::{
    ActionParams, DeviceId, Event, Invitation, InviteParams, MediaType, PlatformId, RoomId, UserId,
};
use tincan_sdk::{ConnectOptions, ConnectionState, DeviceInfo, SdkEvent};
use tincan_server::store::{SqliteStore, Store};

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
}

// ---------------------------------------------------------------------------------------
// Server and clients

async fn start_server() -> String {
    let store = Arc::new(SqliteStore::open_in_memory().expect("store"));
    for u in [INVITER, INVITEE] {
        store.add_user(&uid(u), u, None).expect("user");
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let mut config = tincan_server::ServerConfig {
        secret: Some(SECRET.into()),
        ..Default::default()
    };
    // Back-to-back calls send more than the per-connection default (20/s) of invites,
    // accepts, hang-ups and media signals; this bench measures media, not the limiter.
    config.limits.rate_per_sec = 1e9;
    config.limits.rate_burst = 1e9;
    tokio::spawn(async move {
        tincan_server::run(listener, config, store, std::future::pending())
            .await
            .expect("server runs");
    });
    format!("http://{addr}")
}

fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

/// One signed-in device; `events` is lent to the media pump during a call.
struct Client {
    user: String,
    client: tincan_sdk::Client,
    events: Option<mpsc::Receiver<SdkEvent>>,
}

async fn sign_in(url: &str, user: &str) -> Client {
    let signer = tincan_server::TokenSigner::new(SECRET.as_bytes());
    let token = signer.login_token(&uid(user), i64::MAX);
    let device = DeviceInfo::new(
        DeviceId::new(format!("{user}-bench")).unwrap(),
        PlatformId::LINUX,
    );
    let mut options = ConnectOptions::default();
    options.reconnect = false;
    let (client, events) = tincan_sdk::connect_with(url, &token, device, options)
        .await
        .unwrap_or_else(|e| panic!("{user} signs in: {e}"));
    Client {
        user: user.to_owned(),
        client,
        events: Some(events),
    }
}

impl Client {
    /// Waits for the invitation to `room` (other events, e.g. the last call's hang-up, are
    /// skipped).
    async fn invitation(&mut self, room: &RoomId) -> Result<(), String> {
        let events = self.events.as_mut().expect("events not lent out");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => return Err(format!("{}: no invitation within {WAIT:?}", self.user)),
                Ok(None) => return Err(format!("{}: signaling closed", self.user)),
                Ok(Some(SdkEvent::Signaling(Event::ReceiveNewInvitation(info))))
                    if info.invitation.room_id == room.as_str() =>
                {
                    return Ok(())
                }
                Ok(Some(_)) => continue,
            }
        }
    }
}

fn invite_params(to: &str) -> InviteParams {
    InviteParams {
        invitation: Invitation {
            invitee_user_id_list: vec![uid(to)],
            timeout: 30,
            media_type: MediaType::Video,
            session_type: 1,
            platform_id: 7,
            ..Invitation::default()
        },
        offline_push_info: None,
    }
}

fn action(room: &RoomId) -> ActionParams {
    ActionParams {
        op_user_id: String::new(),
        invitation: Invitation {
            room_id: room.to_string(),
            ..Invitation::default()
        },
    }
}

// ---------------------------------------------------------------------------------------
// One side's media during a call

/// What one side's media reported about the other side.
#[derive(Clone)]
struct Record {
    connected_at: Option<Instant>,
    first_frame_at: Option<Instant>,
    /// Path lost (`Disconnected`/`Failed` peer states) during the call.
    path_lost: u32,
    failed: Option<String>,
    ended: bool,
    /// Counting only while set (the steady-state window).
    recording: bool,
    frames: u64,
    unstamped: u64,
    audio_packets: u64,
    latency_us: Histogram<u64>,
    kbps_in: Vec<f64>,
    fps_in: Vec<u32>,
    rtt_ms: Vec<f64>,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            connected_at: None,
            first_frame_at: None,
            path_lost: 0,
            failed: None,
            ended: false,
            recording: false,
            frames: 0,
            unstamped: 0,
            audio_packets: 0,
            latency_us: Histogram::new(3).unwrap(),
            kbps_in: Vec::new(),
            fps_in: Vec::new(),
            rtt_ms: Vec::new(),
        }
    }
}

/// Applies one media event; true when a waiter may care (not for every picture).
fn apply(r: &mut Record, event: MediaEvent) -> bool {
    match event {
        MediaEvent::PeerState { state, at, .. } => match state {
            PeerState::Connected if r.connected_at.is_none() => {
                r.connected_at = Some(at);
                true
            }
            PeerState::Disconnected | PeerState::Failed => {
                r.path_lost += 1;
                false
            }
            _ => false,
        },
        MediaEvent::Frame { frame, at, .. } => {
            let first = r.first_frame_at.is_none();
            if first {
                r.first_frame_at = Some(at);
            }
            if r.recording {
                r.frames += 1;
                match frame.stamp {
                    Some(stamp) => {
                        let _ = r.latency_us.record(stamp.age_us(pattern::now_us()) as u64);
                    }
                    None => r.unstamped += 1,
                }
            }
            first
        }
        MediaEvent::Audio { .. } => {
            if r.recording {
                r.audio_packets += 1;
            }
            false
        }
        MediaEvent::Quality { quality, .. } => {
            if r.recording {
                r.kbps_in.push(quality.kbps_in);
                r.fps_in.push(quality.fps_in);
                r.rtt_ms.push(quality.rtt_ms);
            }
            false
        }
        MediaEvent::Failed { reason, .. } => {
            r.failed = Some(reason);
            true
        }
        MediaEvent::Ended => {
            r.ended = true;
            true
        }
        // Remote state, and whatever else a newer media crate reports (local preview).
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// One side's [`CallMedia`] and the task that feeds it the client's events and records
/// what it reports.
struct Live {
    user: String,
    media: Arc<CallMedia>,
    record: Arc<watch::Sender<Record>>,
    stop: Option<oneshot::Sender<()>>,
    pump: JoinHandle<mpsc::Receiver<SdkEvent>>,
}

impl Live {
    fn start(client: &mut Client, room: RoomId, token: String, config: MediaConfig) -> Live {
        let mut events = client.events.take().expect("events not lent out");
        let (media, mut media_events) =
            CallMedia::start(client.client.clone(), room, token, config);
        let media = Arc::new(media);
        let record = Arc::new(watch::Sender::new(Record::default()));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let (pump_media, pump_record) = (media.clone(), record.clone());
        let pump = tokio::spawn(async move {
            let mut media_open = true;
            loop {
                tokio::select! {
                    _ = &mut stopped => return events,
                    event = events.recv() => match event {
                        Some(SdkEvent::Signaling(e)) => pump_media.on_event(&e),
                        Some(SdkEvent::Connection(ConnectionState::Connected)) => {}
                        Some(SdkEvent::Connection(state)) => {
                            pump_record.send_modify(|r| {
                                r.failed = Some(format!("signaling connection: {state:?}"))
                            });
                        }
                        Some(_) => {}
                        None => {
                            pump_record.send_modify(|r| r.failed = Some("signaling closed".into()));
                            let _ = (&mut stopped).await;
                            return events;
                        }
                    },
                    event = media_events.recv(), if media_open => match event {
                        Some(event) => {
                            pump_record.send_if_modified(|r| apply(r, event));
                        }
                        None => media_open = false,
                    },
                }
            }
        });
        Live {
            user: client.user.clone(),
            media,
            record,
            stop: Some(stop),
            pump,
        }
    }

    /// Waits until `done` holds for the record; fails on media failure or timeout.
    async fn wait(&self, what: &str, done: impl Fn(&Record) -> bool) -> Result<(), String> {
        let mut rx = self.record.subscribe();
        let outcome = tokio::time::timeout(
            WAIT,
            rx.wait_for(|r| done(r) || r.failed.is_some() || r.ended),
        )
        .await;
        match outcome {
            Err(_) => Err(format!("{}: no {what} within {WAIT:?}", self.user)),
            Ok(Err(_)) => Err(format!("{}: media pump gone waiting for {what}", self.user)),
            Ok(Ok(r)) if done(&r) => Ok(()),
            Ok(Ok(r)) => Err(format!(
                "{}: media {} while waiting for {what}",
                self.user,
                r.failed.clone().unwrap_or_else(|| "ended".into())
            )),
        }
    }

    fn snapshot(&self) -> Record {
        self.record.borrow().clone()
    }

    /// Closes media (waiting for all of it), stops the pump and lends the events back.
    async fn close(mut self, client: &mut Client) {
        self.media.close().await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        client.events = Some(self.pump.await.expect("media pump"));
    }
}

// ---------------------------------------------------------------------------------------
// One call

fn media_config(me: &str, ice_check: Duration, video: VideoSettings) -> MediaConfig {
    let peer = PeerSettings {
        ice_servers: vec![],
        relay_only: false,
        bind: vec!["127.0.0.1:0".to_owned()],
        ice_check_interval: ice_check,
    };
    let mut config = MediaConfig::new(me, peer);
    config.video = video;
    config
}

struct Call {
    room: RoomId,
    inviter: Live,
    invitee: Live,
    /// Just before `signalingAccept`.
    t0: Instant,
    accept_reply: Duration,
}

/// Setup times of one call, from just before `signalingAccept`.
#[derive(Debug, Clone, Copy)]
struct Setup {
    accept_reply: Duration,
    invitee_connected: Duration,
    inviter_connected: Duration,
    /// First picture decoded by the invitee (inviter → invitee).
    invitee_first_frame: Duration,
    /// First picture decoded by the inviter (invitee → inviter).
    inviter_first_frame: Duration,
}

async fn place_call(
    a: &mut Client,
    b: &mut Client,
    ice_check: Duration,
    video: VideoSettings,
) -> Result<Call, String> {
    let op = tincan_sdk::new_operation_id();
    let invite = a
        .client
        .signaling_invite(&op, invite_params(&b.user))
        .await
        .map_err(|e| format!("invite: {e}"))?;
    let room = invite.room_id.clone();
    let inviter = Live::start(
        a,
        room.clone(),
        invite.token,
        media_config(&a.user, ice_check, video),
    );
    if let Err(e) = b.invitation(&room).await {
        inviter.close(a).await;
        return Err(e);
    }
    let t0 = Instant::now();
    let accept = match b.client.signaling_accept(&op, action(&room)).await {
        Ok(r) => r,
        Err(e) => {
            inviter.close(a).await;
            return Err(format!("accept: {e}"));
        }
    };
    let accept_reply = t0.elapsed();
    let invitee = Live::start(
        b,
        room.clone(),
        accept.token,
        media_config(&b.user, ice_check, video),
    );
    invitee.media.add_peer(&a.user);
    Ok(Call {
        room,
        inviter,
        invitee,
        t0,
        accept_reply,
    })
}

impl Call {
    /// Waits for both sides to connect and to decode a first picture.
    async fn established(&self) -> Result<Setup, String> {
        for side in [&self.invitee, &self.inviter] {
            side.wait("media connected", |r| r.connected_at.is_some())
                .await?;
        }
        for side in [&self.invitee, &self.inviter] {
            side.wait("first picture", |r| r.first_frame_at.is_some())
                .await?;
        }
        let (i, o) = (self.invitee.snapshot(), self.inviter.snapshot());
        let since = |at: Option<Instant>| at.unwrap().saturating_duration_since(self.t0);
        Ok(Setup {
            accept_reply: self.accept_reply,
            invitee_connected: since(i.connected_at),
            inviter_connected: since(o.connected_at),
            invitee_first_frame: since(i.first_frame_at),
            inviter_first_frame: since(o.first_frame_at),
        })
    }

    /// The inviter hangs up, then both close their media.
    async fn end(self, a: &mut Client, b: &mut Client) -> Result<(), String> {
        let hung_up = a
            .client
            .signaling_hung_up(&tincan_sdk::new_operation_id(), action(&self.room))
            .await;
        self.inviter.close(a).await;
        self.invitee.close(b).await;
        hung_up.map(drop).map_err(|e| format!("hang up: {e}"))
    }
}

/// A whole call up to the first pictures, then hung up and closed.
async fn one_call(
    a: &mut Client,
    b: &mut Client,
    ice_check: Duration,
    video: VideoSettings,
) -> Result<Setup, String> {
    let call = place_call(a, b, ice_check, video).await?;
    let setup = call.established().await;
    let ended = call.end(a, b).await;
    let setup = setup?;
    ended?;
    Ok(setup)
}

// ---------------------------------------------------------------------------------------
// Figures

#[derive(Debug, Clone, Copy)]
struct Dist {
    n: usize,
    p50: f64,
    p90: f64,
    max: f64,
}

/// Nearest-rank percentiles of durations, in ms.
fn dist(samples: impl IntoIterator<Item = Duration>) -> Dist {
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
    fn json(&self) -> Value {
        json!({"n": self.n, "p50": round(self.p50), "p90": round(self.p90), "max": round(self.max)})
    }
    fn row(&self, name: &str) {
        println!(
            "  {name:<44} {:>4} {:>8.1} {:>8.1} {:>8.1}",
            self.n, self.p50, self.p90, self.max
        );
    }
}

fn round(x: f64) -> f64 {
    round_to(x, 1)
}

/// `x` with `digits` decimals, for JSON that reads cleanly (NaN stays NaN: `null`).
fn round_to(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// Process CPU time (user, system) so far.
fn cpu_time() -> (Duration, Duration) {
    // SAFETY: getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (tv(usage.ru_utime), tv(usage.ru_stime))
}

fn status_field(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors (not counting the one that lists them).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count().saturating_sub(1))
        .unwrap_or(0)
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// What the process holds after `cycle` cycles.
#[derive(Debug, Clone)]
struct Resources {
    cycle: usize,
    rss_kib: u64,
    census: Census,
    tokio_tasks: usize,
    udp_sockets: usize,
    fds: usize,
    threads: u64,
    /// How long the UDP sockets of the last closed call took to go (they are dropped on
    /// the runtime's next turn after `close`), or `None` if they had not within 2 s.
    settle_ms: Option<f64>,
}

impl Resources {
    /// Waits (yielding, bounded) for the last call's sockets to go, then takes stock.
    async fn take(cycle: usize, udp_baseline: usize) -> Resources {
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

    fn header() {
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

    fn row(&self) {
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

    fn json(&self) -> Value {
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

fn small_video() -> VideoSettings {
    VideoSettings {
        width: 320,
        height: 240,
        fps: 15,
        bitrate_bps: 300_000,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
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
) -> Result<Value, String> {
    let video = VideoSettings::default();
    let call = place_call(a, b, ice_check, video).await?;
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
    let steady = steady_phase(a, b, ice, args.secs).await?;

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
