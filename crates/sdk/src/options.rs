//! Connection settings: who this device is and how the SDK behaves on the wire.

use std::time::Duration;

use tincan_protocol::{DeviceId, PlatformId};

/// How long a request waits for its reply before failing with
/// [`crate::SdkError::Timeout`] (OpenIM's SDK waits 10 s as well).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long opening the WebSocket and signing in may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// With nothing received for this long, the SDK sends a WebSocket ping; after two
/// unanswered pings it treats the connection as lost.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// First reconnect delay (before jitter).
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(100);

/// Longest reconnect delay (before jitter).
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Events buffered for the app. Backpressure policy: events are never dropped; when
/// the app falls this far behind, the SDK stops reading the socket until it catches up
/// (replies wait too, and a server may drop a client that reads too slowly). An app
/// that does not want events may drop the receiver; events are then discarded.
pub const EVENT_CAPACITY: usize = 256;

/// One device of the signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// This device's id. Keep it across restarts: a device that reconnects with the same
    /// id within the server's grace period resumes its call.
    pub device_id: DeviceId,
    /// OpenIM platform id.
    pub platform_id: PlatformId,
}

impl DeviceInfo {
    /// A device.
    pub fn new(device_id: DeviceId, platform_id: PlatformId) -> Self {
        DeviceInfo {
            device_id,
            platform_id,
        }
    }

    /// A Linux desktop device with a fresh random id (for tools and tests; an app
    /// should store its id and reuse it).
    pub fn random_linux() -> Self {
        let id = format!("dev-{}", uuid::Uuid::new_v4().simple());
        DeviceInfo::new(
            DeviceId::new(id).expect("a uuid makes a valid deviceID"),
            PlatformId::LINUX,
        )
    }
}

/// How the SDK connects, waits and reconnects. Start from `Default` and set fields:
///
/// ```
/// let mut options = tincan_sdk::ConnectOptions::default();
/// options.reconnect = false;
/// options.request_timeout = std::time::Duration::from_secs(3);
/// ```
///
/// Every wait uses tokio's clock, so tests may run under `tokio::time::pause()`. A
/// paused clock moves whenever the runtime has nothing to do, so run the server in the
/// same runtime, with `TCP_NODELAY` on its sockets (the SDK sets it on its own):
/// otherwise a frame held back in real time (by another process, or by Nagle's
/// algorithm waiting ~40 ms for an ACK) lets the clock run ahead and fire timeouts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// See [`REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// See [`CONNECT_TIMEOUT`]; applies to each reconnect attempt too.
    pub connect_timeout: Duration,
    /// See [`KEEPALIVE_INTERVAL`]; `None` turns keepalive pings off.
    pub keepalive_interval: Option<Duration>,
    /// Whether to reconnect after a drop (never after close, kick or a refused token).
    pub reconnect: bool,
    /// See [`BACKOFF_INITIAL`].
    pub backoff_initial: Duration,
    /// See [`BACKOFF_MAX`].
    pub backoff_max: Duration,
    /// Give up after this many failed attempts in a row (`None`: never give up).
    pub max_reconnect_attempts: Option<u32>,
    /// See [`EVENT_CAPACITY`].
    pub event_capacity: usize,
    /// For `wss://` servers: a PEM file of extra CA certificates to trust besides the
    /// system's (a self-signed test deployment). `None`: the system's roots only.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            request_timeout: REQUEST_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            keepalive_interval: Some(KEEPALIVE_INTERVAL),
            reconnect: true,
            backoff_initial: BACKOFF_INITIAL,
            backoff_max: BACKOFF_MAX,
            max_reconnect_attempts: None,
            event_capacity: EVENT_CAPACITY,
            ca_file: None,
        }
    }
}
