//! The lab's media clients: runtimes inside a home's namespace, a call between two of
//! them through the lab's server, and the figures a test reports.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use tincan_media::MediaConfig;
use tincan_protocol::{DeviceId, IceServer as WireIceServer, PlatformId};
use tincan_sdk::DeviceInfo;

use super::{enter_netns, Lab};
use crate::media::{MediaSide, Received};
use crate::{Peer, TestServer};

/// A tokio runtime whose worker and blocking threads enter a namespace as they start,
/// so all a media client does on it (signaling, ICE gathering, TURN) happens there.
pub struct NsRuntime {
    rt: Option<tokio::runtime::Runtime>,
    pub ns: String,
}

impl NsRuntime {
    pub fn new(ns: &str) -> NsRuntime {
        let name = ns.to_owned();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("netlab-home")
            .on_thread_start(move || {
                if let Err(e) = enter_netns(&name) {
                    // A thread outside the namespace would open its sockets in the wrong
                    // network and make every figure a lie: stop here, loudly.
                    eprintln!("netlab: {e}");
                    std::process::abort();
                }
            })
            .build()
            .expect("a runtime for a lab home");
        NsRuntime {
            rt: Some(rt),
            ns: ns.to_owned(),
        }
    }

    /// Runs `f` on this runtime.
    pub fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.rt.as_ref().expect("runtime").spawn(f)
    }

    /// Signs `user` in to `server` from this namespace, reconnecting after a drop as the
    /// app does (a network change breaks the signaling connection too).
    pub async fn peer(&self, server: &TestServer, user: &str) -> Peer {
        self.peer_with(server, user, tincan_sdk::ConnectOptions::default())
            .await
    }

    /// [`NsRuntime::peer`] with `options` (a CA file to trust, say).
    pub async fn peer_with(
        &self,
        server: &TestServer,
        user: &str,
        options: tincan_sdk::ConnectOptions,
    ) -> Peer {
        let (url, token, user) = (server.url.clone(), server.token(user), user.to_owned());
        self.spawn(async move {
            let dev = DeviceInfo::new(
                DeviceId::new(format!("{user}-lab")).unwrap(),
                PlatformId::LINUX,
            );
            let (client, events) = tincan_sdk::connect_with(&url, &token, dev, options)
                .await
                .unwrap_or_else(|e| panic!("{user} signs in from the lab: {e}"));
            Peer {
                client,
                events,
                user,
            }
        })
        .await
        .expect("sign-in task")
    }

    /// Starts media for `peer` on this runtime.
    pub async fn media(
        &self,
        peer: Peer,
        room: &str,
        token: &str,
        config: MediaConfig,
    ) -> MediaSide {
        let (room, token) = (room.to_owned(), token.to_owned());
        self.spawn(async move { MediaSide::start(peer, &room, &token, config) })
            .await
            .expect("media start task")
    }

    /// Closes `side`'s media on this runtime.
    pub async fn close(&self, side: MediaSide) -> Peer {
        self.spawn(side.close()).await.expect("media close task")
    }
}

impl Drop for NsRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            // Not `shutdown_timeout`: tests drop this inside their own runtime, where
            // blocking is not allowed.
            rt.shutdown_background();
        }
    }
}

/// Media settings for a lab host: a small picture (two encoders and decoders share two
/// cores), bound to the host's address.
pub fn media_config(
    me: &str,
    ice: &[WireIceServer],
    host: Ipv4Addr,
    relay_only: bool,
) -> MediaConfig {
    let mut config = crate::media::small(me, ice, relay_only);
    config.peer.bind = vec![format!("{host}:0")];
    config
}

/// Alice (home `a`) calls Bob (home `b`) and Bob accepts; both run media from their
/// homes, with media settings changed by `configure`. Returns both sides, the room, and
/// when the call was placed.
pub async fn call(
    lab: &Lab,
    (a_rt, alice): (&NsRuntime, Peer),
    (b_rt, mut bob): (&NsRuntime, Peer),
    homes: (usize, usize),
    relay_only: bool,
    configure: fn(&mut MediaConfig),
) -> (MediaSide, MediaSide, String, Instant) {
    let placed = Instant::now();
    let invite = alice.invite(&bob.user).await.expect("invite");
    let room = invite.room_id.to_string();
    bob.expect_info("onReceiveNewInvitation").await;
    let (inviter, invitee) = (alice.user.clone(), bob.user.clone());
    let mut a_config = media_config(
        &inviter,
        &invite.ice_servers,
        lab.homes[homes.0].host_ip,
        relay_only,
    );
    configure(&mut a_config);
    let a = a_rt.media(alice, &room, &invite.token, a_config).await;
    let accept = bob.accept(&room).await.expect("accept");
    let mut b_config = media_config(
        &invitee,
        &accept.ice_servers,
        lab.homes[homes.1].host_ip,
        relay_only,
    );
    configure(&mut b_config);
    let b = b_rt.media(bob, &room, &accept.token, b_config).await;
    let media = b.media.clone();
    b_rt.spawn(async move { media.add_peer(&inviter) })
        .await
        .expect("add peer");
    (a, b, room, placed)
}

/// Frame rate and freezes of pictures that arrived at `times`, within `[from, to]`.
#[derive(Debug, Clone, Copy)]
pub struct FrameFigures {
    pub frames: usize,
    pub fps: f64,
    /// Gaps longer than max(3 × the mean interval, mean + 150 ms) — WebRTC's freeze rule.
    pub freezes: usize,
    pub frozen: Duration,
    pub longest_gap: Duration,
}

pub fn frame_figures(times: &[Instant], from: Instant, to: Instant) -> FrameFigures {
    let within: Vec<Instant> = times
        .iter()
        .copied()
        .filter(|t| *t >= from && *t <= to)
        .collect();
    let span = to.saturating_duration_since(from);
    let fps = within.len() as f64 / span.as_secs_f64().max(1e-3);
    let mean = span.checked_div(within.len().max(1) as u32).unwrap_or(span);
    let threshold = (mean * 3).max(mean + Duration::from_millis(150));
    let mut edges = vec![from];
    edges.extend(within.iter().copied());
    edges.push(to);
    let gaps: Vec<Duration> = edges.windows(2).map(|w| w[1] - w[0]).collect();
    let frozen: Vec<Duration> = gaps.iter().copied().filter(|g| *g > threshold).collect();
    FrameFigures {
        frames: within.len(),
        fps,
        freezes: frozen.len(),
        frozen: frozen.iter().sum(),
        longest_gap: gaps.iter().copied().max().unwrap_or_default(),
    }
}

/// One line of figures for a side, for the test's output and docs/network-lab.md.
pub fn report(
    case: &str,
    who: &str,
    r: &Received,
    other: &str,
    placed: Instant,
    from: Instant,
    to: Instant,
) -> FrameFigures {
    let f = r.of(other);
    let figures = frame_figures(&f.frames_at, from, to);
    eprintln!(
        "netlab {case}: {who} ← {other}: connected after {:?}, first picture after {:?}, path {}, \
         {} pictures ({:.1} fps) in {:?}, {} freezes ({:?} frozen, longest gap {:?}), {} audio packets",
        f.connected_at.map(|t| t - placed),
        f.first_frame_at.map(|t| t - placed),
        f.path,
        figures.frames,
        figures.fps,
        to - from,
        figures.freezes,
        figures.frozen,
        figures.longest_gap,
        f.audio_packets,
    );
    figures
}
