//! Echo cancellation and noise suppression: the same two checkboxes in Settings and on the
//! call screen, remembered, and a change during a call reaches its media at once (the far
//! end keeps receiving sound; the window reports no failure).

use serde_json::Value;

use crate::harness::{self, with_password, within, App};
use crate::media::FarEnd;

const STORED_JS: &str = "return localStorage.getItem('tincan.processing');";

async fn checked(app: &App, id: &str) -> bool {
    app.client()
        .execute(
            "return document.querySelector(arguments[0]).checked;",
            vec![Value::from(format!("[data-testid=\"{id}\"]"))],
        )
        .await
        .unwrap_or_else(|e| panic!("read {id}: {e}"))
        .as_bool()
        .unwrap_or_else(|| panic!("{id} is not a checkbox"))
}

async fn stored(app: &App) -> Value {
    let raw = app
        .client()
        .execute(STORED_JS, vec![])
        .await
        .expect("read the window's storage");
    raw.as_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null)
}

#[test]
fn sound_processing_toggles_are_remembered_and_switch_the_call_in_progress() {
    harness::run_with("processing", with_password("alice"), |s| async move {
        let token = s.server.token("bob");
        let mut bob = FarEnd::start(
            &s.server.url,
            &token,
            "bob",
            &[
                "listen",
                "--auto",
                "accept",
                "--media",
                "--media-bind",
                "127.0.0.1:0",
                "--video",
                "320x240@15",
            ],
        )
        .await;
        s.sign_in("alice").await;

        // Settings: both switches, on unless a person turned them off (the window's
        // storage outlives a test, so start from on).
        s.app.click("tab-settings").await;
        for id in ["settings-echo-cancellation", "settings-noise-suppression"] {
            if !checked(&s.app, id).await {
                s.app.click(id).await;
            }
            assert!(checked(&s.app, id).await, "{id} on");
        }
        s.app.click("tab-contacts").await;

        s.app.click("call-video-bob").await;
        s.app.wait_state("in-call").await;
        let received = within(bob.wait_line("alice's sound", |v| {
            v["media"] == "received"
                && v["user"] == "alice"
                && v["audioPackets"].as_u64() > Some(10)
        }))
        .await;
        // The call screen's device panel (Devices in the control bar).
        s.app.click("call-devices").await;
        assert!(checked(&s.app, "in-call-echo-cancellation").await);

        // Off on the call screen: Settings follows, the choice is stored, and the call's
        // sound goes on.
        s.app.click("in-call-echo-cancellation").await;
        assert!(!checked(&s.app, "in-call-echo-cancellation").await);
        assert!(!checked(&s.app, "settings-echo-cancellation").await);
        assert!(checked(&s.app, "in-call-noise-suppression").await);
        let choice = stored(&s.app).await;
        assert_eq!(choice["echoCancellation"], false, "{choice}");
        assert_eq!(choice["noiseSuppression"], true, "{choice}");
        let before = received["audioPackets"].as_u64().unwrap_or(0);
        within(bob.wait_line("alice's sound after the switch", |v| {
            v["media"] == "received"
                && v["user"] == "alice"
                && v["audioPackets"].as_u64() > Some(before.max(10))
        }))
        .await;

        // Back on, for the tests that follow.
        s.app.click("in-call-echo-cancellation").await;
        assert!(checked(&s.app, "settings-echo-cancellation").await);
        assert_eq!(stored(&s.app).await["echoCancellation"], true);

        s.app.click("hangup").await;
        within(bob.wait_line("media ended", |v| v["media"] == "ended")).await;
        s.app.wait_state("contacts").await;
    });
}
