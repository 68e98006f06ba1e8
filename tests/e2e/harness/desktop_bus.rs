//! A private D-Bus session bus for one app, with stand-ins for what a desktop provides on
//! it: a notification server (`org.freedesktop.Notifications`, which records what the app
//! shows and can invoke an action on it as a click would) and a tray host's
//! `org.kde.StatusNotifierWatcher` (which records the StatusNotifierItems that register).
//!
//! The stand-ins speak the real protocols: the app sends its notification and registers
//! its tray icon exactly as on a desktop; what is not exercised is a real notification
//! daemon's and panel's drawing and clicking.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use zbus::message::Header;
use zbus::zvariant::OwnedValue;

const NOTIFICATIONS: &str = "org.freedesktop.Notifications";
const NOTIFICATIONS_PATH: &str = "/org/freedesktop/Notifications";
const WATCHER: &str = "org.kde.StatusNotifierWatcher";
const WATCHER_PATH: &str = "/StatusNotifierWatcher";

/// A notification the app showed.
#[derive(Debug, Clone)]
pub struct Shown {
    /// The server's id for it.
    pub id: u32,
    pub summary: String,
    pub body: String,
    /// `[id, label, id, label, …]` as the protocol sends them.
    pub actions: Vec<String>,
}

/// What the stand-ins saw.
#[derive(Debug)]
pub enum Seen {
    Notified(Shown),
    Closed(u32),
    /// A StatusNotifierItem registered: `(its bus name, what it registered)` (an object
    /// path or a bus name, as the implementation chooses).
    TrayItem(String, String),
}

/// A running private bus with the stand-ins; dropping it stops the bus.
pub struct DesktopBus {
    /// `DBUS_SESSION_BUS_ADDRESS` for the app.
    pub address: String,
    daemon: Child,
    connection: zbus::Connection,
    seen: tokio::sync::Mutex<mpsc::UnboundedReceiver<Seen>>,
}

struct Notifications {
    seen: mpsc::UnboundedSender<Seen>,
    last_id: u32,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Notifications {
    fn get_capabilities(&self) -> Vec<String> {
        vec!["actions".into(), "body".into()]
    }

    #[allow(clippy::too_many_arguments)]
    fn notify(
        &mut self,
        _app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        actions: Vec<String>,
        _hints: HashMap<String, OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        self.last_id += 1;
        let _ = self.seen.send(Seen::Notified(Shown {
            id: self.last_id,
            summary,
            body,
            actions,
        }));
        self.last_id
    }

    fn close_notification(&self, id: u32) {
        let _ = self.seen.send(Seen::Closed(id));
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        (
            "tincan-test".into(),
            "tincan".into(),
            "1".into(),
            "1.2".into(),
        )
    }
}

struct Watcher {
    seen: mpsc::UnboundedSender<Seen>,
    items: Arc<Mutex<Vec<String>>>,
}

#[zbus::interface(name = "org.kde.StatusNotifierWatcher")]
impl Watcher {
    fn register_status_notifier_item(&self, service: String, #[zbus(header)] header: Header<'_>) {
        let sender = header.sender().map(|s| s.to_string()).unwrap_or_default();
        self.items
            .lock()
            .unwrap()
            .push(format!("{sender}{service}"));
        let _ = self.seen.send(Seen::TrayItem(sender, service));
    }

    fn register_status_notifier_host(&self, _service: String) {}

    #[zbus(property)]
    fn registered_status_notifier_items(&self) -> Vec<String> {
        self.items.lock().unwrap().clone()
    }

    #[zbus(property)]
    fn is_status_notifier_host_registered(&self) -> bool {
        true
    }

    #[zbus(property)]
    fn protocol_version(&self) -> i32 {
        0
    }
}

impl DesktopBus {
    /// Starts `dbus-daemon --session` and the stand-ins on it.
    pub fn start() -> DesktopBus {
        let mut daemon = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // Its complaints (fd limits, a11y bus activation) are not the test's business.
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon (package dbus)");
        let mut address = String::new();
        BufReader::new(daemon.stdout.take().expect("dbus-daemon's stdout"))
            .read_line(&mut address)
            .expect("dbus-daemon's address");
        let address = address.trim().to_owned();
        assert!(!address.is_empty(), "dbus-daemon printed no address");
        let (tx, rx) = mpsc::unbounded_channel();
        let connection = zbus::block_on(async {
            zbus::connection::Builder::address(address.as_str())?
                .serve_at(
                    NOTIFICATIONS_PATH,
                    Notifications {
                        seen: tx.clone(),
                        last_id: 0,
                    },
                )?
                .serve_at(
                    WATCHER_PATH,
                    Watcher {
                        seen: tx,
                        items: Arc::default(),
                    },
                )?
                .name(NOTIFICATIONS)?
                .name(WATCHER)?
                .build()
                .await
        })
        .expect("the stand-ins on the private bus");
        DesktopBus {
            address,
            daemon,
            connection,
            seen: tokio::sync::Mutex::new(rx),
        }
    }

    /// The next thing the stand-ins saw (wrap in `within`).
    pub async fn next(&self) -> Seen {
        self.seen
            .lock()
            .await
            .recv()
            .await
            .expect("the stand-ins stopped")
    }

    /// Waits for a seen thing `pick` accepts, skipping others (bounded by the caller).
    pub async fn wait_for<T>(&self, mut pick: impl FnMut(Seen) -> Option<T>) -> T {
        loop {
            if let Some(t) = pick(self.next().await) {
                return t;
            }
        }
    }

    /// The stand-ins' connection to the bus (to call the app's objects).
    pub fn connection(&self) -> &zbus::Connection {
        &self.connection
    }

    /// Does what a click on the action `action` of notification `id` does.
    pub async fn invoke_action(&self, id: u32, action: &str) {
        self.connection
            .emit_signal(
                None::<&str>,
                NOTIFICATIONS_PATH,
                NOTIFICATIONS,
                "ActionInvoked",
                &(id, action),
            )
            .await
            .expect("emit ActionInvoked");
    }

    /// A property of a registered StatusNotifierItem.
    pub async fn item_property(&self, bus_name: &str, path: &str, property: &str) -> OwnedValue {
        let proxy = zbus::Proxy::new(
            &self.connection,
            bus_name.to_owned(),
            path.to_owned(),
            "org.kde.StatusNotifierItem",
        )
        .await
        .expect("a proxy for the tray item");
        proxy
            .get_property::<OwnedValue>(property)
            .await
            .unwrap_or_else(|e| panic!("tray item property {property}: {e}"))
    }
}

impl Drop for DesktopBus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}
