//! Reachable when the window is hidden: the incoming-call notification's Accept and
//! Decline answer the call, and the tray icon is there with a status line that follows
//! the call.
//!
//! The app runs on a private D-Bus session bus whose notification server and tray host
//! are the test's stand-ins ([`DesktopBus`]): the app sends its real notification and
//! registers its real StatusNotifierItem (libayatana-appindicator); the stand-in invokes
//! an action as a click in a notification daemon would (the `ActionInvoked` signal). Not
//! covered: a real daemon's and panel's drawing and pointer handling.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tincan_tests::TestServer;
use zbus::zvariant::OwnedValue;

use crate::harness::desktop_bus::{DesktopBus, Seen, Shown};
use crate::harness::{self, with_password, within, Launch, POLL, WAIT};

/// Launches the app for `alice` on the private bus at `address`.
fn on_bus(address: String) -> impl FnOnce(&TestServer, &Path) -> Launch {
    move |server, profile| {
        let mut launch = with_password("alice")(server, profile);
        launch
            .env
            .push(("DBUS_SESSION_BUS_ADDRESS".into(), address));
        launch
    }
}

async fn notification(bus: &DesktopBus) -> Shown {
    within(bus.wait_for(|seen| match seen {
        Seen::Notified(n) => Some(n),
        _ => None,
    }))
    .await
}

async fn closed(bus: &DesktopBus) -> u32 {
    within(bus.wait_for(|seen| match seen {
        Seen::Closed(id) => Some(id),
        _ => None,
    }))
    .await
}

fn assert_incoming_call_from_bob(shown: &Shown) {
    assert_eq!(shown.summary, "Incoming video call");
    assert_eq!(shown.body, "bob is calling");
    let pairs: Vec<_> = shown.actions.chunks(2).collect();
    for expected in [["accept", "Accept"], ["decline", "Decline"]] {
        assert!(
            pairs.iter().any(|p| p == &expected),
            "no {expected:?} among the notification's actions {:?}",
            shown.actions
        );
    }
}

/// Bob calls alice; a click on `action` in the app's notification must reach bob as
/// `bob_hears`, move the window to `screen`, and take the notification down.
fn answer_from_the_notification(
    name: &'static str,
    action: &'static str,
    bob_hears: &'static str,
    screen: &'static str,
) {
    let bus = Arc::new(DesktopBus::start());
    let b = bus.clone();
    harness::run_with(name, on_bus(bus.address.clone()), move |s| async move {
        let mut bob = s.server.peer("bob", "bob-sdk").await;
        s.sign_in("alice").await;

        bob.invite("alice").await.expect("bob calls");
        s.app.wait_state("incoming").await;
        let shown = notification(&b).await;
        assert_incoming_call_from_bob(&shown);

        // A click on the action in the notification.
        b.invoke_action(shown.id, action).await;
        within(bob.expect(bob_hears)).await;
        s.app.wait_state(screen).await;
        // Ringing stopped, so the notification is taken down.
        assert_eq!(closed(&b).await, shown.id);
    });
}

#[test]
fn accept_on_the_incoming_call_notification_answers_the_call() {
    answer_from_the_notification("notify-accept", "accept", "onInviteeAccepted", "in-call");
}

#[test]
fn decline_on_the_incoming_call_notification_declines_the_call() {
    answer_from_the_notification("notify-decline", "decline", "onInviteeRejected", "contacts");
}

#[test]
fn a_call_cancelled_while_ringing_takes_its_notification_down() {
    let bus = Arc::new(DesktopBus::start());
    let b = bus.clone();
    harness::run_with(
        "notify-cancelled",
        on_bus(bus.address.clone()),
        |s| async move {
            let bob = s.server.peer("bob", "bob-sdk").await;
            s.sign_in("alice").await;

            let room = bob.invite("alice").await.expect("bob calls").room_id;
            let shown = notification(&b).await;
            bob.cancel(room.as_str()).await.expect("bob cancels");
            assert_eq!(closed(&b).await, shown.id);
            s.app.wait_state("contacts").await;
            // The stale notification's Accept answers nothing (the call is over).
            b.invoke_action(shown.id, "accept").await;
            s.app.wait_state("contacts").await;
        },
    );
}

/// The label texts of a com.canonical.dbusmenu menu, from its layout's debug form.
async fn menu_text(bus: &DesktopBus, name: &str, menu: &str) -> String {
    let proxy = zbus::Proxy::new(
        bus.connection(),
        name.to_owned(),
        menu.to_owned(),
        "com.canonical.dbusmenu",
    )
    .await
    .expect("a proxy for the tray menu");
    type Layout = (u32, (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>));
    let (_revision, (_id, _props, children)): Layout = proxy
        .call("GetLayout", &(0i32, -1i32, Vec::<String>::new()))
        .await
        .expect("the tray menu's layout");
    format!("{children:?}")
}

#[test]
fn the_tray_icon_registers_and_its_status_follows_the_call() {
    let bus = Arc::new(DesktopBus::start());
    let b = bus.clone();
    harness::run_with("tray", on_bus(bus.address.clone()), |s| async move {
        let (sender, registered) = within(b.wait_for(|seen| match seen {
            Seen::TrayItem(sender, item) => Some((sender, item)),
            _ => None,
        }))
        .await;
        // An item registers its object path (on its own connection) or its bus name.
        let (name, path) = if registered.starts_with('/') {
            (sender, registered)
        } else {
            (registered, "/StatusNotifierItem".to_owned())
        };
        let status = b.item_property(&name, &path, "Status").await;
        assert_eq!(String::try_from(status).unwrap(), "Active");
        let menu = b.item_property(&name, &path, "Menu").await;
        let menu = zbus::zvariant::OwnedObjectPath::try_from(menu)
            .expect("the item's Menu is an object path")
            .to_string();

        let text = menu_text(&b, &name, &menu).await;
        for label in ["Not signed in", "Open Tincan", "Quit"] {
            assert!(
                text.contains(label),
                "no {label:?} in the tray menu: {text}"
            );
        }

        let bob = s.server.peer("bob", "bob-sdk").await;
        s.sign_in("alice").await;
        bob.invite("alice").await.expect("bob calls");
        s.app.wait_state("incoming").await;
        // The menu follows (libdbusmenu publishes the new label on its own schedule).
        let deadline = Instant::now() + WAIT;
        loop {
            let text = menu_text(&b, &name, &menu).await;
            if text.contains("Incoming call from bob") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the tray's status line did not follow the call: {text}"
            );
            tokio::time::sleep(POLL).await;
        }
    });
}

#[test]
fn start_at_login_is_off_until_turned_on_in_settings() {
    // The app's home (where the autostart entry goes) is the test's own.
    let home = std::env::temp_dir().join(format!(
        "tincan-e2e-home-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&home).expect("a home for the app");
    let entry = home.join(".config/autostart/Tincan.desktop");
    let app_home = home.display().to_string();
    harness::run_with(
        "autostart",
        move |server, profile| {
            let mut launch = with_password("alice")(server, profile);
            launch.env.push(("HOME".into(), app_home));
            launch
        },
        move |s| async move {
            s.sign_in("alice").await;
            s.app.click("tab-settings").await;
            s.app
                .wait_attr("settings-autostart", "data-enabled", "false")
                .await;
            assert!(
                !entry.exists(),
                "an autostart entry before it was asked for"
            );

            s.app.click("settings-autostart").await;
            s.app
                .wait_attr("settings-autostart", "data-enabled", "true")
                .await;
            let text = std::fs::read_to_string(&entry).expect("the autostart entry");
            let exec = text
                .lines()
                .find_map(|l| l.strip_prefix("Exec="))
                .unwrap_or_else(|| panic!("no Exec in {text}"));
            assert!(
                exec.contains("tincan-app") && exec.ends_with(" --minimized"),
                "Exec={exec}"
            );

            s.app.click("settings-autostart").await;
            s.app
                .wait_attr("settings-autostart", "data-enabled", "false")
                .await;
            assert!(!entry.exists(), "the entry stayed after turning it off");
        },
    );
    let _ = std::fs::remove_dir_all(&home);
}
