//! Cluster mode (crates/server/src/cluster/, docs/deploy.md): three server processes on
//! one real Redis (`cluster::test_redis`) and one real PostgreSQL, clients on different
//! nodes. The first node started takes the lease and runs the calls; the others carry
//! their clients' frames to it. Nodes are killed with SIGKILL and Redis is restarted
//! empty mid-call.
//!
//! Clients that must survive a node's death connect through a [`Route`]: a proxy of
//! their own that prefers one node and, when that node is gone, takes the next one —
//! what a load balancer in front of the nodes does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tincan_protocol::{CustomSignalParams, EndReason, HistoryParams, InviteeOutcome, RoomId};
use tincan_sdk::{CallPhase, ConnectOptions};
use tincan_server::cluster::test_redis::TestRedis;
use tincan_server::store::test_postgres::TestPostgres;
use tincan_server::store::Database;
use tincan_server::TokenSigner;
use tincan_tests::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::metrics::{sample, scrape_at};
use crate::server_process::ServerProcess;

/// The grace a dropped participant gets in these tests (the default is 30 s).
const GRACE_SECS: u64 = 8;

/// Three nodes on one Redis and one PostgreSQL database. Node 0 leads (started first).
struct Cluster {
    _pg: TestPostgres,
    /// The database's URL.
    db: String,
    redis: TestRedis,
    nodes: Vec<Option<ServerProcess>>,
    addrs: Vec<SocketAddr>,
}

impl Cluster {
    async fn start() -> Cluster {
        let pg = TestPostgres::start();
        let db = pg.create_database("tincan");
        seed(Database::parse(&db).open().expect("open").as_ref());
        let redis = TestRedis::start();
        let mut nodes = Vec::new();
        // One after another: the first takes the lease before the others look.
        for _ in 0..3 {
            nodes.push(Some(
                ServerProcess::start_node(&db, &redis.url(), GRACE_SECS).await,
            ));
        }
        let addrs = nodes.iter().map(|n| n.as_ref().unwrap().addr).collect();
        Cluster {
            _pg: pg,
            db,
            redis,
            nodes,
            addrs,
        }
    }

    fn node(&self, i: usize) -> &ServerProcess {
        self.nodes[i].as_ref().expect("a live node")
    }

    /// `user` on node `i`, without reconnects.
    async fn peer(&self, i: usize, user: &str, device: &str) -> Peer {
        self.node(i).peer(user, device).await
    }

    /// `user` through a route that prefers node `i`, reconnecting by itself.
    async fn roaming(&self, i: usize, user: &str, device: &str) -> (Peer, Route) {
        let route = Route::start(self.addrs.clone(), i).await;
        let mut options = ConnectOptions::default();
        options.backoff_initial = Duration::from_millis(50);
        options.backoff_max = Duration::from_millis(500);
        options.max_reconnect_attempts = Some(200);
        let token = TokenSigner::new(SECRET.as_bytes()).login_token(&uid(user), i64::MAX);
        let dev = tincan_sdk::DeviceInfo::new(
            tincan_protocol::DeviceId::new(device).unwrap(),
            tincan_protocol::PlatformId::LINUX,
        );
        let (client, events) = tincan_sdk::connect_with(&route.url, &token, dev, options)
            .await
            .unwrap_or_else(|e| panic!("{user} signs in: {e}"));
        let peer = Peer {
            client,
            events,
            user: user.to_owned(),
        };
        (peer, route)
    }

    /// SIGKILL of node `i`.
    async fn kill_9(&mut self, i: usize) {
        let node = self.nodes[i].take().expect("a live node");
        node.kill_9().await;
    }
}

/// One client's way into the cluster: a TCP proxy that connects each new connection to
/// its preferred node, or when that refuses, to the next one in order.
struct Route {
    url: String,
    task: JoinHandle<()>,
}

impl Route {
    async fn start(nodes: Vec<SocketAddr>, preferred: usize) -> Route {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let nodes = Arc::new(nodes);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let nodes = nodes.clone();
                tokio::spawn(async move {
                    for k in 0..nodes.len() {
                        let at = nodes[(preferred + k) % nodes.len()];
                        if let Ok(mut outbound) = TcpStream::connect(at).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            return;
                        }
                    }
                });
            }
        });
        Route { url, task }
    }
}

impl Drop for Route {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A custom signal from `from` reaches `to`: the call goes on. Retried a bounded number
/// of times, since a request sent while the cluster changes hands may go unanswered.
async fn signal_reaches(from: &Peer, to: &mut Peer, room: &RoomId, text: &str) {
    let mut last = None;
    for _ in 0..5 {
        let sent = from
            .client
            .signaling_send_custom_signal(
                &op("custom"),
                CustomSignalParams {
                    room_id: room.clone(),
                    custom_info: text.into(),
                },
            )
            .await;
        match sent {
            Ok(_) => {
                let got = to.expect("onReceiveCustomSignal").await;
                assert_eq!(got["customInfo"], text);
                return;
            }
            Err(e) => last = Some(e),
        }
    }
    panic!("{} could not signal in {room}: {last:?}", from.user);
}

#[tokio::test]
async fn a_call_between_two_nodes_runs_end_to_end_and_is_recorded_once() {
    let c = Cluster::start().await;
    // Neither is on the leader: every frame crosses Redis twice.
    let mut alice = c.peer(1, "alice", "a1").await;
    let mut bob = c.peer(2, "bob", "b1").await;
    let room = answered_call(&mut alice, &mut bob).await;
    signal_reaches(&alice, &mut bob, &room, "{\"hello\":\"from node 1\"}").await;
    bob.hang_up(room.as_str()).await.unwrap();
    alice.expect("onHangUp").await;
    assert_eq!(alice.client.call_state().phase, CallPhase::Ended);
    // Carol on the third node reads the same database.
    let mut carol = c.peer(0, "carol", "c1").await;
    carol.quiet().await;
    let records = records_of(&bob, &room).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].end_reason, EndReason::HungUp);
    assert_eq!(records[0].invitees[0].outcome, InviteeOutcome::Accepted);
}

#[tokio::test]
async fn each_nodes_metrics_show_its_role_and_the_bus_and_the_leader_counts_the_calls() {
    let c = Cluster::start().await;
    let mut alice = c.peer(1, "alice", "a1").await;
    let mut bob = c.peer(2, "bob", "b1").await;
    let room = answered_call(&mut alice, &mut bob).await;
    alice.hang_up(room.as_str()).await.unwrap();
    bob.expect("onHangUp").await;
    let mut texts = Vec::new();
    for i in 0..3 {
        let (status, text) = scrape_at(c.node(i).addr).await;
        assert_eq!(status, 200, "{text}");
        texts.push(text);
    }
    let leading: Vec<f64> = texts
        .iter()
        .map(|t| sample(t, "tincan_cluster_leading").expect("tincan_cluster_leading"))
        .collect();
    assert_eq!(leading, vec![1.0, 0.0, 0.0], "node 0 leads");
    for (i, t) in texts.iter().enumerate().skip(1) {
        let sent = sample(t, "tincan_bus_messages_total{direction=\"sent\"}").unwrap_or(0.0);
        let got = sample(t, "tincan_bus_messages_total{direction=\"received\"}").unwrap_or(0.0);
        assert!(
            sent > 0.0 && got > 0.0,
            "node {i} forwarded and delivered: {t}"
        );
        assert_eq!(
            sample(t, "tincan_calls_ended_total{reason=\"hungUp\"}"),
            None,
            "followers decide no call"
        );
    }
    assert_eq!(
        sample(&texts[0], "tincan_calls_ended_total{reason=\"hungUp\"}"),
        Some(1.0),
        "{}",
        texts[0]
    );
    assert_eq!(sample(&texts[0], "tincan_bus_dropped_total"), Some(0.0));
}

#[tokio::test]
async fn the_first_answer_wins_across_devices_on_different_nodes() {
    let c = Cluster::start().await;
    let mut alice = c.peer(0, "alice", "a1").await;
    let mut bob1 = c.peer(1, "bob", "b-laptop").await;
    let mut bob2 = c.peer(2, "bob", "b-desktop").await;
    let room = alice.invite("bob").await.unwrap().room_id.to_string();
    bob1.expect("onReceiveNewInvitation").await;
    bob2.expect("onReceiveNewInvitation").await;
    // Both answer at once; one wins.
    let (a1, a2) = tokio::join!(bob1.accept(&room), bob2.accept(&room));
    assert!(
        a1.is_ok() != a2.is_ok(),
        "exactly one answer wins: {a1:?} {a2:?}"
    );
    let (winner, loser, lost) = if a1.is_ok() {
        (&mut bob1, &mut bob2, a2)
    } else {
        (&mut bob2, &mut bob1, a1)
    };
    assert_eq!(code(lost), 1601);
    let e = loser.expect_info("onInviteeAcceptedByOtherDevice").await;
    assert_eq!(e.op_user_id, "bob");
    assert!(loser.client.ringing().is_empty());
    alice.expect("onInviteeAccepted").await;
    winner.hang_up(&room).await.unwrap();
    alice.expect("onHangUp").await;
}

#[tokio::test]
async fn accept_reject_and_cancel_between_nodes_tell_each_side_and_record_the_call() {
    let c = Cluster::start().await;
    for flow in 0..3 {
        // Each flow with alice and bob on the two followers, signed in afresh.
        let alice = c.peer(1, "alice", &format!("a{flow}")).await;
        let bob = c.peer(2, "bob", &format!("b{flow}")).await;
        match flow {
            0 => crate::calls::accept_and_hang_up([alice, bob]).await,
            1 => crate::calls::rejected([alice, bob]).await,
            _ => crate::calls::cancelled([alice, bob]).await,
        }
    }
}

#[tokio::test]
async fn a_group_call_with_everyone_on_another_node_than_the_caller() {
    let c = Cluster::start().await;
    let alice = c.peer(1, "alice", "a1").await;
    let bob = c.peer(2, "bob", "b1").await;
    let carol = c.peer(0, "carol", "c1").await;
    let dave = c.peer(2, "dave", "d1").await;
    crate::group::mixed_answers_and_a_late_joiner([alice, bob, carol, dave]).await;
}

#[tokio::test]
async fn busy_glare_and_one_call_per_group_hold_across_nodes() {
    let c = Cluster::start().await;
    let mut alice = c.peer(1, "alice", "a1").await;
    let mut bob = c.peer(2, "bob", "b1").await;
    let carol = c.peer(0, "carol", "c1").await;
    let mut dave = c.peer(2, "dave", "d1").await;
    let erin = c.peer(1, "erin", "e1").await;

    // Glare: dave (node 2) rings erin (node 1) and erin calls dave back: one call.
    let room = erin.invite("dave").await.unwrap().room_id;
    dave.expect("onReceiveNewInvitation").await;
    let back = dave.invite("erin").await.unwrap();
    assert_eq!(back.room_id, room, "crossing invitations merge");
    dave.hang_up(room.as_str()).await.unwrap();

    // Busy: bob is in a call with alice; carol's call finds him busy and does not ring.
    let call = answered_call(&mut alice, &mut bob).await;
    let r = carol.invite("bob").await.unwrap();
    assert_eq!(r.busy_line_user_id_list, vec![uid("bob")]);
    bob.quiet().await;
    assert_eq!(code(alice.invite("carol").await), 1603);
    bob.hang_up(call.as_str()).await.unwrap();
    alice.expect("onHangUp").await;

    // One call per group: carol (node 0) calls the team; a second call from node 2 is
    // refused.
    let _team_call = carol.invite_group("team", &["alice"]).await.unwrap();
    alice.expect("onReceiveNewInvitation").await;
    assert_eq!(code(dave.invite_group("team", &["bob"]).await), 1606);
}

#[tokio::test]
async fn killing_the_leader_resumes_answered_calls_and_cancels_what_rang() {
    let mut c = Cluster::start().await;
    // Alice is on the leader itself; the others on followers.
    let (mut alice, _ra) = c.roaming(0, "alice", "a1").await;
    let (mut bob, _rb) = c.roaming(1, "bob", "b1").await;
    let (carol, _rc) = c.roaming(2, "carol", "c1").await;
    let (mut dave, _rd) = c.roaming(1, "dave", "d1").await;
    let room = answered_call(&mut alice, &mut bob).await;
    let rung = carol.invite("dave").await.unwrap().room_id;
    dave.expect("onReceiveNewInvitation").await;
    // The ringing call's record is written (history is answered after it).
    carol
        .client
        .get_call_history(&op("sync"), HistoryParams::default())
        .await
        .unwrap();

    let killed = Instant::now();
    c.kill_9(0).await;
    let (alice_login, _, _) = resynced(&mut alice).await;
    let (bob_login, _, _) = resynced(&mut bob).await;
    let (dave_login, _, _) = resynced(&mut dave).await;
    println!(
        "leader killed: alice and bob signed in again after {:.1} s",
        killed.elapsed().as_secs_f64()
    );
    for login in [&alice_login, &bob_login] {
        let call = login.current_call.as_ref().expect("still in the call");
        assert_eq!(call.room_id, room);
    }
    assert_eq!(bob.client.call_state().phase, CallPhase::InCall);
    // Nobody rings for an invitation the new leader does not know.
    assert!(dave_login.pending_invitations.is_empty(), "{dave_login:?}");
    assert!(dave.client.ringing().is_empty());
    signal_reaches(&alice, &mut bob, &room, "after the leader died").await;
    alice.hang_up(room.as_str()).await.unwrap();
    bob.expect("onHangUp").await;

    let records = records_of(&bob, &room).await;
    assert_eq!(records.len(), 1, "one record for the call: {records:?}");
    assert_eq!(records[0].end_reason, EndReason::HungUp);
    let rang = records_of(&dave, &rung).await;
    assert_eq!(rang.len(), 1, "{rang:?}");
    assert_eq!(rang[0].end_reason, EndReason::ServerRestart);
}

/// A leader that stands still (SIGSTOP) past its lease is replaced; when it goes on, it
/// still holds the calls as they were and, stepping down, saves them — but the store
/// refuses every write from its passed term, so a call the new leader ended is not
/// reopened (the next leader would have resumed it: a call back from the dead).
#[tokio::test]
async fn a_leader_paused_past_its_lease_cannot_overwrite_the_calls_when_it_wakes() {
    let mut c = Cluster::start().await;
    let (mut alice, _ra) = c.roaming(1, "alice", "a1").await;
    let (mut bob, _rb) = c.roaming(2, "bob", "b1").await;
    let room = answered_call(&mut alice, &mut bob).await;
    c.node(0).pause();
    let (login, _, _) = resynced(&mut alice).await;
    resynced(&mut bob).await;
    assert_eq!(login.current_call.expect("still in the call").room_id, room);
    alice.hang_up(room.as_str()).await.unwrap();
    bob.expect("onHangUp").await;
    let records = records_of(&bob, &room).await;
    assert_eq!(records.len(), 1, "{records:?}");

    c.node(0).resume();
    let stale = c.nodes[0].as_mut().expect("the old leader");
    stale.logs("no longer leading", RESYNC_LIMIT).await;
    stale.logs("no longer written", RESYNC_LIMIT).await;
    let store = Database::parse(&c.db).open().expect("open");
    assert!(
        store.live_calls().unwrap().is_empty(),
        "no call is left for a next leader to resume"
    );
    let records = records_of(&bob, &room).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        records[0].end_reason,
        EndReason::HungUp,
        "as the new leader wrote it"
    );
}

#[tokio::test]
async fn a_leader_stopped_cleanly_hands_over_and_the_call_resumes() {
    let mut c = Cluster::start().await;
    let (mut alice, _ra) = c.roaming(1, "alice", "a1").await;
    let (mut bob, _rb) = c.roaming(2, "bob", "b1").await;
    let room = answered_call(&mut alice, &mut bob).await;
    let stopped = Instant::now();
    let leader = c.nodes[0].take().expect("the leader");
    leader.sigterm(RESYNC_LIMIT).await;
    let (login, _, _) = resynced(&mut alice).await;
    resynced(&mut bob).await;
    println!(
        "leader stopped: alice signed in again after {:.1} s",
        stopped.elapsed().as_secs_f64()
    );
    assert_eq!(login.current_call.expect("still in the call").room_id, room);
    signal_reaches(&bob, &mut alice, &room, "after the leader stopped").await;
    bob.hang_up(room.as_str()).await.unwrap();
    alice.expect("onHangUp").await;
}

#[tokio::test]
async fn a_node_killed_mid_call_ends_the_call_after_the_grace_unless_its_client_returns() {
    let mut c = Cluster::start().await;
    // Bob's node dies and bob comes back through another node: the call goes on.
    let (mut alice, _ra) = c.roaming(1, "alice", "a1").await;
    let (mut bob, _rb) = c.roaming(2, "bob", "b1").await;
    let room = answered_call(&mut alice, &mut bob).await;
    c.kill_9(2).await;
    let (login, _, _) = resynced(&mut bob).await;
    assert_eq!(login.current_call.expect("still in the call").room_id, room);
    signal_reaches(&bob, &mut alice, &room, "back through node 0").await;
    alice.hang_up(room.as_str()).await.unwrap();
    bob.expect("onHangUp").await;

    // Erin's node dies and she does not come back: carol hears the call end once the
    // grace is over, counted from when the node was last alive.
    let mut carol = c.peer(0, "carol", "c1").await;
    let mut erin = c.peer(1, "erin", "e1").await;
    let call = carol.invite("erin").await.unwrap().room_id;
    erin.expect("onReceiveNewInvitation").await;
    erin.accept(call.as_str()).await.unwrap();
    carol.expect("onInviteeAccepted").await;
    let killed = Instant::now();
    c.kill_9(1).await;
    drop(erin);
    carol.expect("onHangUp").await;
    let after = killed.elapsed();
    println!(
        "node killed: the other side heard the call end after {:.1} s (grace {GRACE_SECS} s)",
        after.as_secs_f64()
    );
    assert!(
        after >= Duration::from_secs(GRACE_SECS) - Duration::from_secs(5),
        "not before the grace (less the lease) is over: {after:?}"
    );
    let records = records_of(&carol, &call).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].answer_time.is_some());
}

#[tokio::test]
async fn a_redis_restart_mid_call_keeps_the_call_and_leaves_nobody_ringing() {
    let mut c = Cluster::start().await;
    let (mut alice, _ra) = c.roaming(1, "alice", "a1").await;
    let (mut bob, _rb) = c.roaming(2, "bob", "b1").await;
    let (carol, _rc) = c.roaming(1, "carol", "c1").await;
    let (mut dave, _rd) = c.roaming(2, "dave", "d1").await;
    let room = answered_call(&mut alice, &mut bob).await;
    let rung = carol.invite("dave").await.unwrap().room_id;
    dave.expect("onReceiveNewInvitation").await;

    c.redis.restart();
    // The leader puts its lease back at its next look and keeps its calls; requests
    // sent while the subscriptions come back may be lost, so the signal is retried.
    signal_reaches(&alice, &mut bob, &room, "after Redis restarted").await;
    assert_eq!(alice.client.call_state().phase, CallPhase::InCall);
    assert_eq!(bob.client.call_state().phase, CallPhase::InCall);
    // The invitation either still rings and can be answered, or was cancelled; it never
    // rings for nothing.
    match dave.accept(rung.as_str()).await {
        Ok(_) => {
            carol.hang_up(rung.as_str()).await.unwrap();
        }
        Err(e) => {
            assert!(dave.client.ringing().is_empty(), "{e:?}");
        }
    }
    alice.hang_up(room.as_str()).await.unwrap();
    bob.expect("onHangUp").await;
    let records = records_of(&bob, &room).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].end_reason, EndReason::HungUp);
}
