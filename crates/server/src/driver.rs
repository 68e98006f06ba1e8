//! The hub's task: the only code that gives the hub inputs, reads the clock for it and
//! carries out its outputs.

use std::collections::HashMap;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tracing::{info, warn};

use crate::hub::{ConnId, Hub, Input, Now, Output};

/// Frames queued for one connection's socket. A connection whose queue is full is too
/// slow to keep up: the driver drops its sender, which closes it, and the hub treats it
/// like any other disconnect (grace period, then hang-up). The hub never waits on a
/// connection.
pub const OUTBOUND_CAPACITY: usize = 256;

/// Inputs waiting for the hub. Connection readers wait when it is full, which stops
/// them reading their sockets: backpressure reaches the clients through TCP.
pub const HUB_INPUT_CAPACITY: usize = 4096;

/// What a connection's task is asked to write.
#[derive(Debug)]
pub enum Outbound {
    /// One text frame.
    Text(Utf8Bytes),
    /// Close the socket with this code and reason.
    Close(u16, &'static str),
}

/// Messages to the driver.
#[derive(Debug)]
pub enum DriverMsg {
    /// A new connection and where to write to it.
    Open {
        /// Its id.
        conn: ConnId,
        /// Its outbound queue.
        tx: mpsc::Sender<Outbound>,
    },
    /// An input for the hub.
    Hub(Input),
}

/// The wall clock in Unix ms.
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn now() -> Now {
    Now {
        mono: Instant::now(),
        wall_ms: wall_ms(),
    }
}

/// Runs the hub until a `Shutdown` input has been handled, or every sender is gone.
pub async fn run(mut hub: Hub, mut rx: mpsc::Receiver<DriverMsg>) {
    let mut conns: HashMap<ConnId, mpsc::Sender<Outbound>> = HashMap::new();
    loop {
        let deadline = hub.next_deadline();
        let msg = tokio::select! {
            msg = rx.recv() => msg,
            _ = sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => {
                hub.handle_timeout(now());
                apply(&mut hub, &mut conns);
                continue;
            }
        };
        match msg {
            Some(DriverMsg::Open { conn, tx }) => {
                conns.insert(conn, tx);
            }
            Some(DriverMsg::Hub(Input::Shutdown)) | None => {
                info!(calls = hub.call_count(), "hub stopping: ending every call");
                hub.handle(now(), Input::Shutdown);
                apply(&mut hub, &mut conns);
                for (_, tx) in conns.drain() {
                    let _ = tx.try_send(Outbound::Close(1001, "the server is shutting down"));
                }
                return;
            }
            Some(DriverMsg::Hub(input)) => {
                if let Input::Closed { conn } = &input {
                    conns.remove(conn);
                }
                hub.handle(now(), input);
                apply(&mut hub, &mut conns);
            }
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(86_400)
}

fn apply(hub: &mut Hub, conns: &mut HashMap<ConnId, mpsc::Sender<Outbound>>) {
    for out in hub.take_outputs() {
        match out {
            Output::Send { to, text } => {
                let text = Utf8Bytes::from(text);
                for conn in to {
                    deliver(conns, conn, Outbound::Text(text.clone()));
                }
            }
            Output::Close { conn, text, reason } => {
                deliver(conns, conn, Outbound::Text(text.into()));
                deliver(conns, conn, Outbound::Close(1008, reason));
                conns.remove(&conn);
            }
        }
    }
}

fn deliver(conns: &mut HashMap<ConnId, mpsc::Sender<Outbound>>, conn: ConnId, msg: Outbound) {
    let Some(tx) = conns.get(&conn) else { return };
    if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(msg) {
        warn!(
            conn,
            "connection is not reading its frames; disconnecting it"
        );
        conns.remove(&conn);
    }
}
