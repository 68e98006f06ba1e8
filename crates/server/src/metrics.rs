//! Prometheus metrics at `/metrics` (when `--metrics` is on): what an operator watches.
//!
//! Every number is counted where it happens, outside the hub's decision: the switchboard
//! counts requests (with the time from arrival to the hub's answer), the hub's error
//! replies and the call records it queues (ended calls by reason, rung invitees by
//! outcome); connection tasks count their own refusals (bad frames, rate limits); the
//! record writer times each write to the store. Gauges of calls by state are read from
//! the hub when scraped. One `Metrics` per server: no global registry, so servers in one
//! test process count apart.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tincan_protocol::{CallRecord, ErrCode};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Method {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Code {
    code: u32,
    name: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct State {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Direction {
    direction: &'static str,
}

/// See the module docs.
pub struct Metrics {
    registry: Registry,
    connections: Gauge,
    requests: Family<Method, Histogram>,
    errors: Family<Code, Counter>,
    calls_ended: Family<Reason, Counter>,
    ring_outcomes: Family<Outcome, Counter>,
    calls: Family<State, Gauge>,
    leading: Gauge,
    bus_messages: Family<Direction, Counter>,
    /// Messages the cluster bus dropped (its queue full): the bus increments it.
    pub(crate) bus_dropped: Counter,
    bus_publish: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Request latency buckets: 50 µs to ~1.6 s, doubling.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_05, 2.0, 16)
}

impl Metrics {
    /// Fresh metrics; `store_writes` is the record writer's write-time histogram.
    pub fn new(store_writes: Histogram) -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("tincan");
        let connections = Gauge::default();
        registry.register(
            "connections",
            "Open WebSocket connections",
            connections.clone(),
        );
        let requests =
            Family::<Method, Histogram>::new_with_constructor(|| Histogram::new(latency_buckets()));
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival at the switchboard to the hub's answer, by method",
            requests.clone(),
        );
        let errors = Family::<Code, Counter>::default();
        registry.register("errors", "Error replies by errCode", errors.clone());
        let calls_ended = Family::<Reason, Counter>::default();
        registry.register(
            "calls_ended",
            "Calls ended, by end reason (as in the call records)",
            calls_ended.clone(),
        );
        let ring_outcomes = Family::<Outcome, Counter>::default();
        registry.register(
            "invitees",
            "Invitees of ended calls, by outcome (accepted, rejected, timedOut, cancelled, busy, answeredElsewhere)",
            ring_outcomes.clone(),
        );
        let calls = Family::<State, Gauge>::default();
        registry.register(
            "calls",
            "Calls now, by state (ringing: nobody has answered yet; connected: people are talking)",
            calls.clone(),
        );
        registry.register(
            "store_write_seconds",
            "Time to write one call record to the store, retries included",
            store_writes,
        );
        let leading = Gauge::default();
        registry.register(
            "cluster_leading",
            "1 while this node runs the calls of its cluster (or is a single server's only node), 0 while it follows",
            leading.clone(),
        );
        let bus_messages = Family::<Direction, Counter>::default();
        registry.register(
            "bus_messages",
            "Messages to and from other cluster nodes through Redis, by direction (sent, received)",
            bus_messages.clone(),
        );
        let bus_dropped = Counter::default();
        registry.register(
            "bus_dropped",
            "Messages to other cluster nodes dropped because the bus was too far behind",
            bus_dropped.clone(),
        );
        let bus_publish = Histogram::new(latency_buckets());
        registry.register(
            "bus_publish_seconds",
            "Time for one batch of messages to be taken by Redis",
            bus_publish.clone(),
        );
        Arc::new(Metrics {
            registry,
            connections,
            requests,
            errors,
            calls_ended,
            ring_outcomes,
            calls,
            leading,
            bus_messages,
            bus_dropped,
            bus_publish,
        })
    }

    /// A histogram for the record writer's store writes: 100 µs to ~6.5 s.
    pub fn store_write_histogram() -> Histogram {
        Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
    }

    pub(crate) fn set_leading(&self, leading: bool) {
        self.leading.set(leading as i64);
    }

    /// A batch of `n` messages Redis took in `took`.
    pub(crate) fn bus_published(&self, n: usize, took: Duration) {
        self.bus_messages
            .get_or_create(&Direction { direction: "sent" })
            .inc_by(n as u64);
        self.bus_publish.observe(took.as_secs_f64());
    }

    pub(crate) fn bus_received(&self) {
        self.bus_messages
            .get_or_create(&Direction {
                direction: "received",
            })
            .inc();
    }

    pub(crate) fn set_connections(&self, n: usize) {
        self.connections.set(n as i64);
    }

    pub(crate) fn request(&self, method: &'static str, took: Duration) {
        self.requests
            .get_or_create(&Method { method })
            .observe(took.as_secs_f64());
    }

    pub(crate) fn error(&self, code: ErrCode) {
        self.errors
            .get_or_create(&Code {
                code: code.code(),
                name: code.name(),
            })
            .inc();
    }

    /// A call record the hub queued: counted once, when it closes.
    pub(crate) fn record(&self, record: &CallRecord, open: bool) {
        if open {
            return;
        }
        self.calls_ended
            .get_or_create(&Reason {
                reason: wire_name(&record.end_reason),
            })
            .inc();
        for invitee in &record.invitees {
            self.ring_outcomes
                .get_or_create(&Outcome {
                    outcome: wire_name(&invitee.outcome),
                })
                .inc();
        }
    }

    /// The text exposition, with the calls gauges set from `ringing` and `connected`.
    pub fn render(&self, ringing: usize, connected: usize) -> String {
        self.calls
            .get_or_create(&State { state: "ringing" })
            .set(ringing as i64);
        self.calls
            .get_or_create(&State { state: "connected" })
            .set(connected as i64);
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// An enum's name on the wire (`hungUp`, `timedOut`), as the records and docs spell it.
fn wire_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_family_with_its_labels() {
        let m = Metrics::new(Metrics::store_write_histogram());
        m.set_connections(3);
        m.request("signalingInvite", Duration::from_micros(120));
        m.error(ErrCode::Busy);
        let text = m.render(1, 2);
        for line in [
            "tincan_connections 3",
            "tincan_errors_total{code=\"1603\",name=\"Busy\"} 1",
            "tincan_calls{state=\"ringing\"} 1",
            "tincan_calls{state=\"connected\"} 2",
            "tincan_request_duration_seconds_count{method=\"signalingInvite\"} 1",
            "# TYPE tincan_store_write_seconds histogram",
            "# TYPE tincan_bus_publish_seconds histogram",
            "tincan_cluster_leading 0",
            "tincan_bus_dropped_total 0",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
