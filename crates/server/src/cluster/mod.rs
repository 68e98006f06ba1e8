//! Cluster mode: several nodes on one Redis and one PostgreSQL database (docs/deploy.md).
//!
//! One node at a time leads: it holds a lease in Redis and runs the hub for every room,
//! so each decision about a call is still made in one place and the rules that span
//! devices — first answer wins, busy, glare, one call per group — hold exactly as on one
//! node. Every node accepts clients; a node that does not lead carries its clients'
//! requests to the leader and the leader's frames back, over Redis pub/sub (`wire.rs`).
//! What a node decides alone stays on the node: TLS, parsing, sizes and rates, and
//! refusing bad frames.
//!
//! When the leader goes (killed, cut off from Redis, stopped), another node takes the
//! lease a lease's lifetime later, restores the answered calls from the database (the
//! same saved calls a restarted single server resumes: `hub/saved.rs`) and cancels what
//! rang; every node then closes its clients' connections with 1012, and the clients sign
//! in again (to any node) and find their call going on. A node that dies while leading
//! takes nothing with it but the lease; a node that dies while following is noticed by
//! the leader (its liveness key lapses) and its clients' connections get the grace period
//! any dropped connection gets.
//!
//! Parts: `role.rs` decides the role from what Redis shows (pure); `wire.rs` is the bus's
//! message format (pure); this file is the driver: three tasks (lease and liveness,
//! publisher, subscriber) around a [`Bus`] handle the switchboard holds.

pub mod role;
#[cfg(any(test, feature = "test-redis"))]
pub mod test_redis;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use prometheus_client::metrics::counter::Counter;
use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::hub::Hub;
use crate::switchboard::Switchboard;
use role::{Attempt, Change, Deaths, NodeNo, Roles, Seen, Timing};
use wire::{node_channel, ToLeader, ToNode, HUB_CHANNEL};

/// The lease's key: the number of the node that leads.
const LEASE_KEY: &str = "tincan:lease";
/// Handed out with `INCR`, one per node start.
const NODE_SEQ_KEY: &str = "tincan:node-seq";

fn alive_key(n: NodeNo) -> String {
    format!("tincan:alive:{n}")
}

/// Messages waiting to be published. Past this the bus is far behind (Redis slow or
/// gone): a message that does not fit is dropped and counted, and its client sees its
/// request time out, rather than the hub waiting on Redis.
pub const BUS_QUEUE: usize = 16_384;

/// Messages published in one round trip, at most.
const PUBLISH_BATCH: usize = 256;

/// Longest wait between attempts to reach Redis again.
const RECONNECT_MAX: Duration = Duration::from_secs(1);

/// How long one command to Redis may take before it counts as unanswered.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(800);

/// Cluster mode's settings.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `redis://[user:password@]host:port[/db]`. May hold a password: never logged
    /// whole ([`redacted`]).
    pub redis_url: String,
    /// This node's name, for people (logs).
    pub node_name: String,
    /// Lease and liveness timing.
    pub timing: Timing,
}

/// Why a node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis refused or did not answer.
    #[error("Redis at {at}: {source}")]
    Redis {
        /// The URL without its password.
        at: String,
        /// What went wrong.
        source: redis::RedisError,
    },
}

/// `url` without the password, for logs and errors.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

pub(crate) enum Channel {
    Hub,
    Node(NodeNo),
}

/// The switchboard's way to the other nodes: queues messages for the publisher task.
#[derive(Clone)]
pub struct Bus {
    node: NodeNo,
    outbox: mpsc::Sender<(Channel, String)>,
    /// The metrics' counter once the switchboard has the bus ([`Bus::count_drops_in`]).
    dropped: Counter,
}

impl Bus {
    /// This node's number.
    pub fn node(&self) -> NodeNo {
        self.node
    }

    /// Queues `msg` for the leader.
    pub fn to_leader(&self, msg: ToLeader) {
        self.queue(Channel::Hub, msg.encode());
    }

    /// Queues `msg` for node `n`.
    pub fn to_node(&self, n: NodeNo, msg: ToNode) {
        self.queue(Channel::Node(n), msg.encode(self.node));
    }

    /// A bus for node `node` whose messages go to the returned receiver instead of
    /// Redis (tests of what the switchboard sends and takes).
    #[cfg(test)]
    pub(crate) fn detached(node: NodeNo) -> (Bus, mpsc::Receiver<(Channel, String)>) {
        let (outbox, rx) = mpsc::channel(BUS_QUEUE);
        let bus = Bus {
            node,
            outbox,
            dropped: Counter::default(),
        };
        (bus, rx)
    }

    /// Counts dropped messages in `counter` (the server's metrics).
    pub fn count_drops_in(&mut self, counter: Counter) {
        self.dropped = counter;
    }

    fn queue(&self, to: Channel, text: String) {
        if self.outbox.try_send((to, text)).is_err() {
            let n = self.dropped.inc() + 1;
            if n.is_power_of_two() {
                warn!(
                    dropped = n,
                    "the cluster bus is behind; messages to other nodes dropped"
                );
            }
        }
    }
}

/// A node that joined its cluster, not yet running.
pub struct Joined {
    /// This node's number.
    pub node: NodeNo,
    bus: Bus,
    outbox: mpsc::Receiver<(Channel, String)>,
    client: redis::Client,
    commands: ConnectionManager,
    timing: Timing,
}

/// Connects to Redis and takes a node number.
pub async fn join(config: &ClusterConfig) -> Result<Joined, ClusterError> {
    let at = redacted(&config.redis_url);
    let fail = |source| ClusterError::Redis {
        at: at.clone(),
        source,
    };
    let client = redis::Client::open(config.redis_url.as_str()).map_err(fail)?;
    let manager = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_max_delay(RECONNECT_MAX)
        .set_number_of_retries(2);
    let mut commands = client
        .get_connection_manager_with_config(manager)
        .await
        .map_err(fail)?;
    let node: NodeNo = redis::cmd("INCR")
        .arg(NODE_SEQ_KEY)
        .query_async(&mut commands)
        .await
        .map_err(fail)?;
    let (tx, outbox) = mpsc::channel(BUS_QUEUE);
    info!(node, name = %config.node_name, redis = %at, "joined the cluster");
    Ok(Joined {
        node,
        bus: Bus {
            node,
            outbox: tx,
            dropped: Counter::default(),
        },
        outbox,
        client,
        commands,
        timing: config.timing,
    })
}

/// Builds the hub a new leader runs: the calls restored from the store, numbering
/// records after the given floor.
pub type HubMaker = Box<dyn Fn(u64) -> Result<Hub, crate::ServerError> + Send + Sync>;

/// The running driver's tasks.
pub struct Running {
    node: NodeNo,
    commands: ConnectionManager,
    tasks: Vec<JoinHandle<()>>,
}

impl Joined {
    /// The handle the switchboard sends through.
    pub fn bus(&self) -> Bus {
        self.bus.clone()
    }

    /// Starts the driver: takes or follows the lease at once (before the caller serves
    /// anyone), then keeps looking every tick.
    pub async fn start(self, board: Arc<Switchboard>, make_hub: HubMaker) -> Running {
        let Joined {
            node,
            bus: _,
            outbox,
            client,
            commands,
            timing,
        } = self;
        let (want_hub, hub_wanted) = watch::channel(false);
        let mut lease = Lease {
            node,
            commands: commands.clone(),
            roles: Roles::new(timing, Instant::now()),
            deaths: Deaths::default(),
            timing,
            board: board.clone(),
            make_hub,
            want_hub,
        };
        lease.look().await;
        // Subscribed before anyone is served: a reply published to a channel nobody reads
        // yet would be lost.
        let first = Subscription::open(&client, &node_channel(node), &hub_wanted)
            .await
            .map_err(|e| warn!(error = %e, "could not subscribe yet; trying again"))
            .ok();
        let metrics = board.metrics_handle();
        let publisher = tokio::spawn(publish(commands.clone(), outbox, metrics));
        let subscriber = tokio::spawn(subscribe(client, node, board, hub_wanted, first));
        let looker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(timing.tick);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                lease.look().await;
            }
        });
        Running {
            node,
            commands,
            tasks: vec![publisher, subscriber, looker],
        }
    }
}

impl Running {
    /// Stops the tasks and gives the lease up if this node holds it, so another node
    /// takes over at its next look instead of a lease's lifetime later.
    pub async fn stop(mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let released: Result<i64, _> = redis::Script::new(RELEASE)
            .key(LEASE_KEY)
            .key(alive_key(self.node))
            .arg(self.node)
            .invoke_async(&mut self.commands)
            .await;
        match released {
            Ok(1) => info!(node = self.node, "lease given up"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "could not give the lease up; it lapses by itself"),
        }
    }
}

/// Renews or takes the lease (ARGV[3] = "1": take it when free) and returns who holds it.
const LOOK: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return cur
end
if not cur and ARGV[3] == '1' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return cur
"#;

/// Deletes the lease if this node holds it, and this node's liveness key.
const RELEASE: &str = r#"
redis.call('DEL', KEYS[2])
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#;

struct Lease {
    node: NodeNo,
    commands: ConnectionManager,
    roles: Roles,
    deaths: Deaths,
    timing: Timing,
    board: Arc<Switchboard>,
    make_hub: HubMaker,
    want_hub: watch::Sender<bool>,
}

impl Lease {
    /// One look: renews this node's liveness, renews or reads (or takes) the lease,
    /// carries out a change of role, and while leading, notices nodes that are gone.
    async fn look(&mut self) {
        let seen = self.read().await;
        if let Some(change) = self.roles.observe(seen, Instant::now()) {
            self.change(change);
        }
        if self.roles.role() == role::Role::Leading {
            self.bury().await;
        }
    }

    async fn read(&mut self) -> Seen {
        let ttl = self.timing.lease.as_millis() as u64;
        let take = self.roles.attempt() == Attempt::Take;
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(alive_key(self.node))
            .arg(1)
            .arg("PX")
            .arg(ttl)
            .ignore();
        pipe.cmd("EVAL")
            .arg(LOOK)
            .arg(1)
            .arg(LEASE_KEY)
            .arg(self.node)
            .arg(ttl)
            .arg(if take { "1" } else { "0" });
        match pipe
            .query_async::<(Option<NodeNo>,)>(&mut self.commands)
            .await
        {
            Ok((Some(n),)) if n == self.node => Seen::Mine,
            Ok((Some(n),)) => Seen::Theirs(n),
            Ok((None,)) => Seen::Nobody,
            Err(e) => {
                debug!(error = %e, "Redis did not answer the lease look");
                Seen::Unreachable
            }
        }
    }

    fn change(&mut self, change: Change) {
        match change {
            Change::Lead => match (self.make_hub)(self.board.record_floor()) {
                Ok(hub) => {
                    warn!(node = self.node, "leading: this node now runs the calls");
                    self.board.lead(hub);
                    let _ = self.want_hub.send(true);
                }
                Err(e) => {
                    // Without its calls the hub must not run. The lease stays with
                    // this node, which tries again at its next look; meanwhile requests
                    // from other nodes go unanswered (their clients retry).
                    error!(error = %e, "could not restore the calls to lead; not leading");
                    self.roles.resign(Instant::now());
                    self.board.follow(None);
                    let _ = self.want_hub.send(false);
                }
            },
            Change::Follow(n) => {
                info!(node = self.node, leader = n, "following");
                self.board.follow(Some(n));
                let _ = self.want_hub.send(false);
            }
            Change::Lose => {
                warn!(
                    node = self.node,
                    "no leader known (Redis unreachable or the lease lapsed); refusing requests until there is one"
                );
                self.board.follow(None);
                let _ = self.want_hub.send(false);
            }
        }
    }

    /// Closes in the hub the connections of nodes whose liveness key lapsed.
    async fn bury(&mut self) {
        let nodes = self.board.remote_nodes();
        if nodes.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for n in &nodes {
            pipe.cmd("EXISTS").arg(alive_key(*n));
        }
        let Ok(alive) = pipe.query_async::<Vec<bool>>(&mut self.commands).await else {
            return;
        };
        let looked: Vec<(NodeNo, bool)> = nodes.into_iter().zip(alive).collect();
        for (gone, silent) in self
            .deaths
            .observe(&looked, Instant::now(), self.timing.lease)
        {
            self.board.node_gone(gone, silent);
        }
    }
}

/// Publishes what the switchboard queues, in order, a batch per round trip.
async fn publish(
    mut commands: ConnectionManager,
    mut outbox: mpsc::Receiver<(Channel, String)>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while outbox.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let (n, started) = (batch.len(), Instant::now());
        let mut pipe = redis::pipe();
        for (to, text) in batch.drain(..) {
            let channel = match to {
                Channel::Hub => HUB_CHANNEL.to_owned(),
                Channel::Node(n) => node_channel(n),
            };
            pipe.cmd("PUBLISH").arg(channel).arg(text).ignore();
        }
        match pipe.query_async::<()>(&mut commands).await {
            Ok(()) => metrics.bus_published(n, started.elapsed()),
            Err(e) => warn!(error = %e, "messages to other nodes lost: Redis did not take them"),
        }
    }
}

/// A live subscription to this node's channel, and to the leader's while leading.
struct Subscription {
    sink: redis::aio::PubSubSink,
    stream: redis::aio::PubSubStream,
    reading_hub: bool,
}

impl Subscription {
    async fn open(
        client: &redis::Client,
        mine: &str,
        hub_wanted: &watch::Receiver<bool>,
    ) -> redis::RedisResult<Subscription> {
        let (mut sink, stream) = client.get_async_pubsub().await?.split();
        sink.subscribe(mine).await?;
        let mut sub = Subscription {
            sink,
            stream,
            reading_hub: false,
        };
        let want_hub = *hub_wanted.borrow();
        sub.follow_role(want_hub).await?;
        Ok(sub)
    }

    /// Reads the leader's channel while this node leads, and only then.
    async fn follow_role(&mut self, want_hub: bool) -> redis::RedisResult<()> {
        if want_hub != self.reading_hub {
            if want_hub {
                self.sink.subscribe(HUB_CHANNEL).await?;
            } else {
                self.sink.unsubscribe(HUB_CHANNEL).await?;
            }
            self.reading_hub = want_hub;
        }
        Ok(())
    }
}

/// Reads this node's channel (and the leader's while leading) and hands each message to
/// the switchboard; subscribes again whenever Redis drops the subscription.
async fn subscribe(
    client: redis::Client,
    node: NodeNo,
    board: Arc<Switchboard>,
    mut hub_wanted: watch::Receiver<bool>,
    mut first: Option<Subscription>,
) {
    let mine = node_channel(node);
    let mut delay = Duration::from_millis(50);
    loop {
        let sub = match first.take() {
            Some(sub) => Ok(sub),
            None => Subscription::open(&client, &mine, &hub_wanted).await,
        };
        match sub {
            Ok(sub) => {
                delay = Duration::from_millis(50);
                match read_channels(sub, &board, &mut hub_wanted).await {
                    Ok(()) => info!("the cluster subscription ended; subscribing again"),
                    Err(e) => {
                        debug!(error = %e, "the cluster subscription failed; subscribing again")
                    }
                }
            }
            Err(e) => debug!(error = %e, "could not subscribe; trying again"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}

async fn read_channels(
    mut sub: Subscription,
    board: &Arc<Switchboard>,
    hub_wanted: &mut watch::Receiver<bool>,
) -> redis::RedisResult<()> {
    loop {
        let want = *hub_wanted.borrow_and_update();
        sub.follow_role(want).await?;
        tokio::select! {
            msg = sub.stream.next() => {
                let Some(msg) = msg else { return Ok(()) };
                board.metrics().bus_received();
                let Ok(text) = std::str::from_utf8(msg.get_payload_bytes()) else {
                    warn!("a cluster message that is not UTF-8; dropped");
                    continue;
                };
                if msg.get_channel_name() == HUB_CHANNEL {
                    match ToLeader::decode(text) {
                        Ok(m) => board.from_follower(m),
                        Err(e) => warn!(error = %e, "dropped"),
                    }
                } else {
                    match ToNode::decode(text) {
                        Ok((leader, m)) => board.from_leader(leader, m),
                        Err(e) => warn!(error = %e, "dropped"),
                    }
                }
            }
            changed = hub_wanted.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_password_never_reaches_a_log() {
        assert_eq!(
            redacted("redis://tincan:s3cret@10.0.0.5:6379/2"),
            "redis://…@10.0.0.5:6379/2"
        );
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
