//! Screen sharing from the window: in a video call with the command-line client, the
//! window shares its own X display (the one it runs on, Xvfb in CI), the far end gets the
//! screen's pictures at the screen's size and the "screen" flag; stopping goes back to
//! the camera (the test pattern's stamped pictures, the flag cleared).

use serde_json::Value;
use tincan_media::screen::share_settings;
use x11rb::connection::Connection;

use crate::harness::{self, with_password, within};
use crate::media::{choose, FarEnd, SELECT_OPTIONS_JS};

/// The size the window's display is shared at.
fn shared_size() -> (u64, u64) {
    let (conn, n) = x11rb::connect(None).expect("the display the app runs on");
    let s = &conn.setup().roots[n];
    let settings = share_settings(
        usize::from(s.width_in_pixels),
        usize::from(s.height_in_pixels),
    );
    (settings.width as u64, settings.height as u64)
}

fn size_is(v: &Value, (w, h): (u64, u64)) -> bool {
    v["size"][0].as_u64() == Some(w) && v["size"][1].as_u64() == Some(h)
}

#[test]
fn sharing_the_screen_from_the_window_reaches_the_far_end_and_stops() {
    harness::run_with("media-screen", with_password("alice"), |s| async move {
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
        s.app.click("call-video-bob").await;
        s.app.wait_state("in-call").await;
        let camera = within(bob.wait_line("alice's camera", |v| {
            v["media"] == "received" && v["user"] == "alice" && v["frames"].as_u64() > Some(10)
        }))
        .await;
        assert!(
            size_is(&camera, (640, 480)),
            "the app's camera size: {camera}"
        );

        // Share: the chooser lists the display the window is on; pick its screen.
        assert_eq!(s.app.text_of("share-screen").await, "Share screen");
        s.app.click("share-screen").await;
        s.app.wait_testid("share-chooser").await;
        let options = s
            .app
            .client()
            .execute(SELECT_OPTIONS_JS, vec![Value::from("share-source")])
            .await
            .expect("read the share choice");
        let options: Vec<&str> = options
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(options.first(), Some(&"screen:0"), "{options:?}");
        choose(&s.app, "share-source", "screen:0").await;
        s.app.click("share-start").await;
        s.app
            .wait_attr_where("share-screen", "data-sharing", |v| v == "true")
            .await;
        assert_eq!(s.app.text_of("share-screen").await, "Stop sharing");
        assert_eq!(
            s.app.text_of("local-state").await,
            "You (sharing your screen)"
        );

        // Bob is told it is a screen, and gets unstamped pictures at the screen's size.
        within(bob.wait_line("alice's screen flag", |v| {
            v["media"] == "remoteState" && v["user"] == "alice" && v["screen"] == true
        }))
        .await;
        let size = shared_size();
        let before = camera["unstamped"].as_u64().unwrap_or(0);
        let shared = within(bob.wait_line("alice's screen pictures", |v| {
            v["media"] == "received"
                && v["user"] == "alice"
                && size_is(v, size)
                && v["unstamped"].as_u64() > Some(before + 5)
        }))
        .await;
        s.app.screenshot("in-call-sharing").await;

        // Stop: back to the camera, the flag cleared, stamped pictures at 640×480 again.
        s.app.click("share-screen").await;
        s.app
            .wait_attr_where("share-screen", "data-sharing", |v| v == "false")
            .await;
        within(bob.wait_line("alice's screen flag cleared", |v| {
            v["media"] == "remoteState" && v["user"] == "alice" && v["screen"] == false
        }))
        .await;
        let counter = shared["lastCounter"].as_u64().unwrap_or(0);
        within(bob.wait_line("alice's camera again", |v| {
            v["media"] == "received"
                && v["user"] == "alice"
                && size_is(v, (640, 480))
                && v["lastCounter"].as_u64() > Some(counter + 15)
        }))
        .await;

        s.app.click("hangup").await;
        within(bob.wait_line("media ended", |v| v["media"] == "ended")).await;
        s.app.wait_state("contacts").await;
    });
}

#[test]
fn a_far_end_sharing_its_screen_is_labelled_a_screen_in_the_window() {
    harness::run_with(
        "media-screen-remote",
        with_password("alice"),
        |s| async move {
            let token = s.server.token("bob");
            // Bob shares the display the window is on (the CLI inherits $DISPLAY).
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
                    "--screen",
                    "default",
                ],
            )
            .await;
            s.sign_in("alice").await;
            s.app.click("call-video-bob").await;
            s.app.wait_state("in-call").await;

            // Bob's tile says it is a screen, and draws it at the screen's shape.
            s.app
                .wait_attr_where("video-state-bob", "data-screen", |v| v == "true")
                .await;
            let state = s.app.text_of("video-state-bob").await;
            assert!(state.contains("sharing a screen"), "{state:?}");
            let (w, h) = shared_size();
            let height = (320 * h / w).to_string();
            s.app
                .wait_attr_where("video-canvas-bob", "height", |v| v == height)
                .await;
            assert_eq!(
                s.app.attr_of("video-canvas-bob", "width").await.as_deref(),
                Some("320")
            );
            let label = s.app.attr_of("video-canvas-bob", "aria-label").await;
            assert_eq!(label.as_deref(), Some("bob's screen"));
            s.app.screenshot("in-call-remote-screen").await;

            s.app.click("hangup").await;
            within(bob.wait_line("media ended", |v| v["media"] == "ended")).await;
            s.app.wait_state("contacts").await;
        },
    );
}
