//! The call screens as a person sees them: the far end's picture fills the window and
//! follows its size (and at 640×480 every control is still on screen); a four-person
//! group call is a 2×2 grid; the keyboard shortcuts mute and hang up; the incoming call
//! is a modal dialog that Escape declines. And the screenshots of every screen, light
//! and dark (`TINCAN_SCREENSHOTS=docs` writes them to docs/screenshots).

use std::path::PathBuf;

use serde_json::Value;

use crate::harness::{self, with_password, within, App, Session};
use crate::media::FarEnd;

/// WebDriver key codes (modifiers stay pressed to the end of the string).
const CONTROL: char = '\u{e009}';
const SHIFT: char = '\u{e008}';
const ESCAPE: char = '\u{e00c}';
const TAB: char = '\u{e004}';

/// The size the far end's picture is drawn at: the canvas's box, less the bars that
/// `object-fit: contain` leaves around a picture of another shape; and the viewport.
const DRAWN_JS: &str = r#"
const c = document.querySelector(arguments[0]);
const r = c.getBoundingClientRect();
const ratio = c.width / c.height;
let w = r.width, h = r.height;
if (w / h > ratio) w = h * ratio; else h = w / ratio;
return { w, h, vw: innerWidth, vh: innerHeight };
"#;

/// Every control of the call screen that is shown, and whether it lies inside the
/// viewport; and whether the page scrolls.
const REACHABLE_JS: &str = r#"
const out = [];
for (const b of document.querySelectorAll('[data-testid="in-call"] button')) {
  if (b.closest('[hidden]')) continue;
  const r = b.getBoundingClientRect();
  const inside = r.width > 0 && r.left >= 0 && r.top >= 0 && r.right <= innerWidth && r.bottom <= innerHeight;
  out.push([b.dataset.testid || b.textContent.trim(), inside]);
}
const scrolls = document.documentElement.scrollHeight > innerHeight || document.documentElement.scrollWidth > innerWidth;
return { controls: out, scrolls };
"#;

/// The rectangles of the grid's tiles (the others' and our own), rounded.
const TILES_JS: &str = r#"
const grid = document.querySelector('[data-testid="video-grid"]');
return Array.from(grid.children).map((t) => {
  const r = t.getBoundingClientRect();
  return [t.dataset.testid, Math.round(r.left), Math.round(r.top), Math.round(r.width), Math.round(r.height)];
});
"#;

async fn js(app: &App, script: &str, args: Vec<Value>) -> Value {
    app.client()
        .execute(script, args)
        .await
        .unwrap_or_else(|e| panic!("execute script: {e}"))
}

/// `tincan listen --auto accept --media` as bob, sending 640×480 pictures.
async fn video_far_end(s: &Session) -> FarEnd {
    let token = s.server.token("bob");
    FarEnd::start(
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
            "640x480@15",
        ],
    )
    .await
}

/// Waits until bob's pictures are drawn in the window.
async fn wait_pictures(app: &App) {
    app.wait_attr_where("video-counter-bob", "data-frames", |v| {
        v.parse::<u64>().unwrap_or(0) >= 3
    })
    .await;
}

/// Clicks through the page (`element.click()`), not the pointer.
async fn js_click(app: &App, id: &str) {
    app.wait_testid(id).await;
    js(
        app,
        "document.querySelector(`[data-testid=\"${arguments[0]}\"]`).click();",
        vec![Value::from(id)],
    )
    .await;
}

async fn drawn(app: &App) -> (f64, f64, f64, f64) {
    let v = js(
        app,
        DRAWN_JS,
        vec![Value::from("[data-testid=\"video-canvas-bob\"]")],
    )
    .await;
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    (f("w"), f("h"), f("vw"), f("vh"))
}

#[test]
fn the_far_ends_picture_fills_the_window_and_follows_its_size() {
    harness::run_with(
        "screens-video-size",
        with_password("alice"),
        |s| async move {
            let _bob = video_far_end(&s).await;
            s.app.resize(1280, 800).await;
            s.sign_in("alice").await;
            s.app.click("call-video-bob").await;
            s.app.wait_state("in-call").await;
            wait_pictures(&s.app).await;

            // Bob's test tone reaches us: his tile is highlighted as speaking
            // (mediaAudioLevel, louder than -45 dBFS).
            s.app
                .wait_attr("video-tile-bob", "data-speaking", "true")
                .await;
            let dbfs = s.app.attr_of("video-tile-bob", "data-dbfs").await;
            eprintln!("bob's level: {dbfs:?} dBFS");

            let (w1, h1, vw1, vh1) = drawn(&s.app).await;
            // Filling: the picture takes most of the window in one direction at least
            // (bars, the call's title line and the control bar take the rest).
            assert!(
                w1 / vw1 > 0.6 || h1 / vh1 > 0.7,
                "at {vw1}x{vh1} the picture is drawn {w1:.0}x{h1:.0}"
            );

            s.app.resize(800, 600).await;
            let (w2, h2, vw2, vh2) = drawn(&s.app).await;
            assert!(
                w2 / vw2 > 0.6 || h2 / vh2 > 0.7,
                "at {vw2}x{vh2} the picture is drawn {w2:.0}x{h2:.0}"
            );
            assert!(
                w2 < w1 && h2 < h1,
                "smaller window, smaller picture: {w1:.0}x{h1:.0} → {w2:.0}x{h2:.0}"
            );
            eprintln!("drawn size: {w1:.0}x{h1:.0} in {vw1}x{vh1}; {w2:.0}x{h2:.0} in {vw2}x{vh2}");

            // At 640×480 every control is on screen without scrolling.
            s.app.resize(640, 480).await;
            let seen = js(&s.app, REACHABLE_JS, vec![]).await;
            let controls = seen["controls"].as_array().cloned().unwrap_or_default();
            assert!(controls.len() >= 5, "{seen}");
            let outside: Vec<&Value> = controls.iter().filter(|c| c[1] != true).collect();
            assert!(
                outside.is_empty(),
                "controls off-screen at 640x480: {outside:?}"
            );
            assert_eq!(seen["scrolls"], false, "the call screen scrolls at 640x480");
            // The self-view stays inside the window it shrank with.
            let pip = js(
            &s.app,
            "const r = document.querySelector('[data-testid=\"self-view\"]').getBoundingClientRect(); return r.right <= innerWidth && r.bottom <= innerHeight && r.left >= 0 && r.top >= 0;",
            vec![],
        )
        .await;
            assert_eq!(pip, true, "self-view inside the window");

            s.app.click("hangup").await;
            s.app.wait_state("contacts").await;
        },
    );
}

#[test]
fn a_four_person_group_call_is_a_two_by_two_grid() {
    harness::run_with("screens-grid", with_password("alice"), |s| async move {
        let mut bob = s.server.peer("bob", "bob-sdk").await;
        let mut carol = s.server.peer("carol", "carol-sdk").await;
        let mut dave = s.server.peer("dave", "dave-sdk").await;
        s.app.resize(1280, 800).await;
        s.sign_in("alice").await;

        s.app.click("group-call-team").await;
        s.app.wait_state("group-pick").await;
        s.app.click("group-pick-video").await;
        s.app.wait_state("outgoing").await;
        let room = within(bob.expect_info("onReceiveNewInvitation"))
            .await
            .invitation
            .room_id;
        within(carol.expect_info("onReceiveNewInvitation")).await;
        within(dave.expect_info("onReceiveNewInvitation")).await;
        bob.accept(&room).await.expect("bob accepts");
        s.app.wait_state("in-call").await;
        carol.accept(&room).await.expect("carol accepts");
        dave.accept(&room).await.expect("dave accepts");
        for who in ["bob", "carol", "dave"] {
            s.app.wait_testid(&format!("participant-{who}")).await;
        }
        s.app.wait_attr("video-grid", "data-count", "4").await;
        assert_eq!(
            s.app.attr_of("video-grid", "data-cols").await.as_deref(),
            Some("2")
        );

        // Four tiles of one size on two rows and two columns; we are one of them.
        let tiles = js(&s.app, TILES_JS, vec![]).await;
        let tiles = tiles.as_array().cloned().unwrap_or_default();
        let mut ids: Vec<&str> = tiles.iter().filter_map(|t| t[0].as_str()).collect();
        ids.sort_unstable();
        assert_eq!(
            ids,
            [
                "self-view",
                "video-tile-bob",
                "video-tile-carol",
                "video-tile-dave"
            ],
            "{tiles:?}"
        );
        let col = |i: usize| {
            let mut v: Vec<i64> = tiles.iter().filter_map(|t| t[i].as_i64()).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        assert_eq!(col(1).len(), 2, "two columns: {tiles:?}");
        assert_eq!(col(2).len(), 2, "two rows: {tiles:?}");
        assert_eq!(col(3).len(), 1, "one width: {tiles:?}");
        assert_eq!(col(4).len(), 1, "one height: {tiles:?}");
        assert!(
            tiles[0][3].as_i64() > Some(400),
            "tiles share the window: {tiles:?}"
        );
        // Nobody sends pictures (SDK far ends): each tile shows the person's initials.
        assert_eq!(s.app.text_of("avatar-carol").await, "C");
        s.app.screenshot("screens-grid").await;

        // One leaves: three tiles, still two columns.
        dave.hang_up(&room).await.expect("dave leaves");
        s.app.wait_attr("video-grid", "data-count", "3").await;
        s.app.click("hangup").await;
        s.app.wait_state("contacts").await;
    });
}

#[test]
fn keyboard_shortcuts_mute_turn_the_camera_off_and_hang_up() {
    harness::run_with("screens-keys", with_password("alice"), |s| async move {
        let mut bob = video_far_end(&s).await;
        s.sign_in("alice").await;
        s.app.click("call-video-bob").await;
        s.app.wait_state("in-call").await;
        within(bob.wait_line("alice's sound", |v| {
            v["media"] == "received" && v["user"] == "alice"
        }))
        .await;

        // Ctrl+D mutes: the button is pressed and the far end is told.
        s.app.keys("self-view", &format!("{CONTROL}d")).await;
        s.app.wait_attr("toggle-mute", "aria-pressed", "true").await;
        within(bob.wait_line("alice muted", |v| {
            v["media"] == "remoteState" && v["user"] == "alice" && v["mic"] == false
        }))
        .await;
        // Ctrl+E turns the camera off: the self-view says so.
        s.app.keys("self-view", &format!("{CONTROL}e")).await;
        s.app
            .wait_attr("toggle-camera", "aria-pressed", "true")
            .await;
        s.app.wait_testid("self-view-off").await;
        within(bob.wait_line("alice's camera off", |v| {
            v["media"] == "remoteState" && v["user"] == "alice" && v["camera"] == false
        }))
        .await;

        // Ctrl+Shift+H hangs up.
        s.app.keys("self-view", &format!("{CONTROL}{SHIFT}h")).await;
        within(bob.wait_line("media ended", |v| v["media"] == "ended")).await;
        s.app.wait_state("contacts").await;
        s.app
            .wait_attr("call-ended-reason", "data-kind", "hung-up")
            .await;
    });
}

#[test]
fn the_incoming_call_is_a_modal_dialog_that_escape_declines() {
    harness::run_with("screens-dialog", with_password("alice"), |s| async move {
        let mut bob = s.server.peer("bob", "bob-sdk").await;
        s.sign_in("alice").await;

        bob.invite("alice").await.expect("bob calls");
        s.app.wait_state("incoming").await;
        let role = s.app.attr_of("incoming-dialog", "role").await;
        assert_eq!(role.as_deref(), Some("alertdialog"));
        assert_eq!(
            s.app
                .attr_of("incoming-dialog", "aria-modal")
                .await
                .as_deref(),
            Some("true")
        );
        // The buttons name the caller.
        assert_eq!(
            s.app
                .attr_of("incoming-accept", "aria-label")
                .await
                .as_deref(),
            Some("Accept the video call from bob")
        );
        // Focus moved in; Tab from the last button comes back to the first.
        assert_eq!(s.app.focused().await.as_deref(), Some("incoming-accept"));
        s.app.keys("incoming-reject", &TAB.to_string()).await;
        assert_eq!(s.app.focused().await.as_deref(), Some("incoming-accept"));

        s.app.keys("incoming-accept", &ESCAPE.to_string()).await;
        within(bob.expect("onInviteeRejected")).await;
        s.app.wait_gone("incoming-call").await;
        s.app.wait_state("contacts").await;
        // The banner says so, is dismissable, and does not follow onto another screen.
        s.app.wait_testid("notice-banner").await;
        s.app.click("notice-dismiss").await;
        s.app.wait_gone("notice-banner").await;

        // Escape cancels an outgoing call.
        s.app.click("call-audio-bob").await;
        s.app.wait_state("outgoing").await;
        let room = within(bob.expect_info("onReceiveNewInvitation"))
            .await
            .invitation
            .room_id;
        s.app
            .wait_attr("outgoing-status", "data-state", "ringing")
            .await;
        s.app.keys("outgoing-cancel", &ESCAPE.to_string()).await;
        let cancelled = within(bob.expect_info("onInvitationCancelled")).await;
        assert_eq!(cancelled.invitation.room_id, room);
        s.app.wait_state("contacts").await;
        // Every call button names its person.
        s.app
            .wait_attr("call-video-bob", "aria-label", "Video call bob")
            .await;
    });
}

// ---------------------------------------------------------------- screenshots

/// Where the screenshots go: docs/screenshots with `TINCAN_SCREENSHOTS=docs`, else
/// tests/artifacts.
fn shots_dir() -> PathBuf {
    if std::env::var("TINCAN_SCREENSHOTS").is_ok_and(|v| v == "docs") {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("docs")
            .join("screenshots");
        std::fs::create_dir_all(&dir).expect("create docs/screenshots");
        dir
    } else {
        harness::artifacts()
    }
}

/// Screenshots of what the window shows now, as `<name>-light.png` and `<name>-dark.png`
/// (the page honours `data-theme` on <html>, as it would the system's preference).
async fn shoot(app: &App, name: &str) {
    for theme in ["light", "dark"] {
        js(
            app,
            "document.documentElement.dataset.theme = arguments[0];",
            vec![Value::from(theme)],
        )
        .await;
        // The compositor may lag behind a restyle (seen with the ringing animation).
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        app.screenshot_to(&shots_dir().join(format!("{name}-{theme}.png")))
            .await;
    }
    js(
        app,
        "delete document.documentElement.dataset.theme;",
        vec![],
    )
    .await;
}

#[test]
fn screenshots_outside_a_call() {
    harness::run_with("shots-screens", with_password("alice"), |s| async move {
        let mut bob = s.server.peer("bob", "bob-sdk").await;
        s.app.resize(1280, 800).await;
        s.app.wait_state("signin").await;
        shoot(&s.app, "signin").await;
        s.sign_in("alice").await;
        shoot(&s.app, "contacts").await;

        // Incoming (over the contacts), declined: the banner says so.
        bob.invite("alice").await.expect("bob calls");
        s.app.wait_state("incoming").await;
        shoot(&s.app, "incoming").await;
        s.app.click("incoming-reject").await;
        within(bob.expect("onInviteeRejected")).await;
        s.app.wait_state("contacts").await;
        s.app.wait_testid("notice-banner").await;
        shoot(&s.app, "call-declined").await;

        // Outgoing, ringing.
        s.app.click("call-video-bob").await;
        let room = within(bob.expect_info("onReceiveNewInvitation"))
            .await
            .invitation
            .room_id;
        s.app
            .wait_attr("outgoing-status", "data-state", "ringing")
            .await;
        shoot(&s.app, "outgoing").await;
        bob.reject(&room).await.expect("bob declines");
        s.app.wait_state("contacts").await;

        s.app.click("group-call-team").await;
        s.app.wait_state("group-pick").await;
        shoot(&s.app, "group-pick").await;
        s.app.click("group-pick-cancel").await;

        s.app.click("tab-history").await;
        s.app.wait_testid(&format!("history-{room}")).await;
        shoot(&s.app, "history").await;
        s.app.click("tab-settings").await;
        s.app.wait_testid("settings-user").await;
        shoot(&s.app, "settings").await;
    });
}

#[test]
fn screenshots_of_a_video_call() {
    harness::run_with("shots-video", with_password("alice"), |s| async move {
        let _bob = video_far_end(&s).await;
        s.app.resize(1280, 800).await;
        s.sign_in("alice").await;
        s.app.click("call-video-bob").await;
        s.app.wait_state("in-call").await;
        wait_pictures(&s.app).await;
        s.app
            .wait_attr_where("quality-indicator", "data-level", |v| v != "unknown")
            .await;
        shoot(&s.app, "in-call-video").await;
        s.app.click("verify-call").await;
        s.app.wait_testid("verify-code-bob").await;
        shoot(&s.app, "in-call-verify").await;
        // Closed first. These clicks go through the page: a pointer left on a button
        // shows its tooltip (a GTK window under Xvfb), which takes WebDriver's next
        // click there.
        js_click(&s.app, "verify-call").await;
        s.app.wait_gone("verify-panel").await;
        js_click(&s.app, "quality-indicator").await;
        s.app.wait_testid("quality-panel").await;
        shoot(&s.app, "in-call-quality").await;
        js_click(&s.app, "quality-indicator").await;
        s.app.wait_gone("quality-panel").await;
        js_click(&s.app, "call-devices").await;
        s.app.wait_testid("devices-panel").await;
        shoot(&s.app, "in-call-devices").await;
        js_click(&s.app, "call-devices").await;
        js_click(&s.app, "toggle-mute").await;
        js_click(&s.app, "toggle-camera").await;
        s.app.wait_testid("self-view-off").await;
        shoot(&s.app, "in-call-muted-camera-off").await;
        s.app.click("hangup").await;
        s.app.wait_state("contacts").await;

        // An audio call: the far end's avatar fills the stage.
        s.app.click("call-audio-bob").await;
        s.app.wait_state("in-call").await;
        s.app.wait_testid("avatar-bob").await;
        shoot(&s.app, "in-call-audio").await;
        s.app.click("hangup").await;
        s.app.wait_state("contacts").await;
    });
}

#[test]
fn screenshots_of_a_group_call() {
    harness::run_with("shots-group", with_password("alice"), |s| async move {
        let _bob = video_far_end(&s).await;
        let mut carol = s.server.peer("carol", "carol-sdk").await;
        let mut dave = s.server.peer("dave", "dave-sdk").await;
        s.app.resize(1280, 800).await;
        s.sign_in("alice").await;
        s.app.click("group-call-team").await;
        s.app.wait_state("group-pick").await;
        s.app.click("group-pick-video").await;
        let room = within(carol.expect_info("onReceiveNewInvitation"))
            .await
            .invitation
            .room_id;
        within(dave.expect_info("onReceiveNewInvitation")).await;
        s.app.wait_state("in-call").await; // bob answers at once
        carol.accept(&room).await.expect("carol accepts");
        dave.accept(&room).await.expect("dave accepts");
        s.app.wait_attr("video-grid", "data-count", "4").await;
        wait_pictures(&s.app).await;
        shoot(&s.app, "in-call-group").await;
        s.app.resize(640, 480).await;
        shoot(&s.app, "in-call-group-640x480").await;
        for theme in ["light", "dark"] {
            let png = shots_dir().join(format!("in-call-group-640x480-{theme}.png"));
            let status = std::process::Command::new("mogrify")
                .args(["-crop", "640x480+0+0", "+repage"])
                .arg(&png)
                .status()
                .expect("run mogrify (imagemagick)");
            assert!(status.success(), "mogrify {}: {status}", png.display());
        }
        s.app.click("hangup").await;
        s.app.wait_state("contacts").await;
    });
}
