//! The call screens' layout under pressure: people with the longest names the server
//! allows call us in a 640×480 window (the names are cut with an ellipsis, the full name
//! stays available, no dialog stretches and no button leaves the window), and the
//! self-view is a picture-in-picture the pointer can drag (kept inside the stage, never
//! over the control bar).

use std::path::Path;

use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::Locator;
use serde_json::Value;

use tincan_protocol::limits::MAX_NICKNAME_CHARS;
use tincan_server::store::Store;
use tincan_tests::{uid, TestServer};

use crate::harness::{self, with_password, within, App, Launch};

/// WebDriver key codes.
const ARROW_RIGHT: char = '\u{e014}';
const ARROW_UP: char = '\u{e013}';

/// The longest nickname the server allows, made of `words` repeated (cut to
/// [`MAX_NICKNAME_CHARS`] characters, no trailing space).
fn longest_name(words: &str) -> String {
    let name: String = words.repeat(4).chars().take(MAX_NICKNAME_CHARS).collect();
    let name = name.trim_end().to_owned();
    assert!(name.chars().count() >= MAX_NICKNAME_CHARS - 1, "{name:?}");
    name
}

/// One word, no spaces: it cannot wrap, only be cut.
fn unbroken_name() -> String {
    longest_name("Wolfeschlegelsteinhausenbergerdorff")
}

/// Words with spaces (it could wrap onto many lines instead).
fn spaced_name() -> String {
    longest_name("Hubert Blaine Wolfeschlegelsteinhausenbergerdorff ")
}

/// alice with a password, and two more people with the longest names allowed.
fn long_named_people(server: &TestServer, profile: &Path) -> Launch {
    server
        .store
        .add_user(&uid("wolfe"), &unbroken_name(), None)
        .expect("add wolfe");
    server
        .store
        .add_user(&uid("hubert"), &spaced_name(), None)
        .expect("add hubert");
    with_password("alice")(server, profile)
}

async fn js(app: &App, script: &str, args: Vec<Value>) -> Value {
    app.client()
        .execute(script, args)
        .await
        .unwrap_or_else(|e| panic!("execute script: {e}"))
}

/// An element's rectangle (viewport coordinates) and the viewport's size.
#[derive(Debug, Clone, Copy)]
struct Rect {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

impl Rect {
    fn width(&self) -> f64 {
        self.right - self.left
    }
}

const RECTS_JS: &str = r#"
const out = { viewport: { left: 0, top: 0, right: innerWidth, bottom: innerHeight } };
for (const id of arguments[0]) {
  const e = document.querySelector(`[data-testid="${id}"]`);
  if (!e) continue;
  const r = e.getBoundingClientRect();
  out[id] = { left: r.left, top: r.top, right: r.right, bottom: r.bottom };
}
return out;
"#;

/// The rectangles of the elements with these test ids, and `"viewport"`'s.
async fn rects(app: &App, ids: &[&str]) -> std::collections::HashMap<String, Rect> {
    let v = js(
        app,
        RECTS_JS,
        vec![Value::from(
            ids.iter().map(|s| Value::from(*s)).collect::<Vec<_>>(),
        )],
    )
    .await;
    let obj = v.as_object().cloned().unwrap_or_default();
    obj.into_iter()
        .map(|(k, r)| {
            let f = |n: &str| r[n].as_f64().unwrap_or(f64::NAN);
            let rect = Rect {
                left: f("left"),
                top: f("top"),
                right: f("right"),
                bottom: f("bottom"),
            };
            (k, rect)
        })
        .collect()
}

fn inside(r: &Rect, outer: &Rect) -> bool {
    // Half a pixel for subpixel layout.
    r.left >= outer.left - 0.5
        && r.top >= outer.top - 0.5
        && r.right <= outer.right + 0.5
        && r.bottom <= outer.bottom + 0.5
}

/// How a name is drawn: cut (its text is wider than its box) with an ellipsis or a line
/// clamp, and whether the full name is still there for a tooltip or a screen reader.
const NAME_JS: &str = r#"
const e = document.querySelector(arguments[0]);
const s = getComputedStyle(e);
const range = document.createRange();
range.selectNodeContents(e);
return {
  text: e.textContent,
  title: e.getAttribute('title'),
  label: e.getAttribute('aria-label'),
  scrollWidth: e.scrollWidth,
  clientWidth: e.clientWidth,
  textWidth: range.getBoundingClientRect().width,
  textOverflow: s.textOverflow,
  lineClamp: s.getPropertyValue('-webkit-line-clamp') || 'none',
};
"#;

/// Asserts the element `css` shows `full` (and maybe more after it) cut short with an
/// ellipsis (or a line clamp) and keeps the full name in its `title` or `aria-label`.
async fn assert_ellipsised(app: &App, css: &str, full: &str) {
    let n = js(app, NAME_JS, vec![Value::from(css)]).await;
    assert!(
        n["text"].as_str().is_some_and(|t| t.starts_with(full)),
        "{css} holds the whole name: {n}"
    );
    let (sw, cw) = (
        n["scrollWidth"].as_f64().unwrap_or(0.0),
        n["clientWidth"].as_f64().unwrap_or(0.0),
    );
    assert!(cw > 0.0, "{css} has no width: {n}");
    assert!(
        sw > cw,
        "{css}'s name is not cut (scrollWidth ≤ clientWidth): {n}"
    );
    let clamped = n["lineClamp"]
        .as_str()
        .is_some_and(|c| c != "none" && !c.is_empty());
    assert!(
        n["textOverflow"] == "ellipsis" || clamped,
        "{css} is cut without an ellipsis: {n}"
    );
    let named = |k: &str| n[k].as_str().is_some_and(|v| v.contains(full));
    assert!(
        named("title") || named("label"),
        "{css}'s full name is neither its title nor its aria-label: {n}"
    );
}

/// Whether the page scrolls (it must not, at any size the call screens support).
async fn assert_no_scrolling(app: &App, when: &str) {
    let v = js(
        app,
        "const d = document.scrollingElement; return [d.scrollWidth, d.clientWidth, d.scrollHeight, d.clientHeight];",
        vec![],
    )
    .await;
    let n = |i: usize| v[i].as_f64().unwrap_or(f64::NAN);
    assert!(n(0) <= n(1), "{when}: the page scrolls sideways ({v})");
    assert!(n(2) <= n(3), "{when}: the page scrolls down ({v})");
}

/// The incoming dialog for `caller` fits the window: no wider than it, Accept and
/// Decline wholly inside, the name cut with an ellipsis and kept whole in its title.
async fn assert_incoming_fits(app: &App, caller: &str) {
    app.wait_state("incoming").await;
    let r = rects(
        app,
        &["incoming-dialog", "incoming-accept", "incoming-reject"],
    )
    .await;
    let view = r["viewport"];
    let dialog = r["incoming-dialog"];
    assert!(
        dialog.width() <= view.width() && inside(&dialog, &view),
        "the dialog for {caller:?} is {dialog:?} in a {view:?} window"
    );
    for b in ["incoming-accept", "incoming-reject"] {
        assert!(
            inside(&r[b], &view) && inside(&r[b], &dialog),
            "{b} is at {:?}, off the {view:?} window or its dialog {dialog:?}",
            r[b]
        );
    }
    assert_ellipsised(app, "[data-testid=\"incoming-caller\"]", caller).await;
}

#[test]
fn long_names_are_cut_short_and_every_call_control_stays_in_a_640x480_window() {
    harness::run_with("layout-long-names", long_named_people, |s| async move {
        let (unbroken, spaced) = (unbroken_name(), spaced_name());
        let mut hubert = s.server.peer("hubert", "hubert-sdk").await;
        let mut wolfe = s.server.peer("wolfe", "wolfe-sdk").await;
        s.app.resize(640, 480).await;
        s.sign_in("alice").await;

        // The contact list: a long name never pushes its row's call buttons out.
        s.app.wait_testid("call-video-wolfe").await;
        let r = rects(&s.app, &["call-audio-wolfe", "call-video-wolfe"]).await;
        for b in ["call-audio-wolfe", "call-video-wolfe"] {
            assert!(
                r[b].left >= 0.0 && r[b].right <= r["viewport"].right + 0.5,
                "{b} is at {:?} in a {:?} window",
                r[b],
                r["viewport"]
            );
        }

        assert_ellipsised(&s.app, "[data-testid=\"contact-wolfe\"] .name", &unbroken).await;

        // Calling him: the ringing screen cuts his name too, its Cancel stays in reach.
        s.app.click("call-audio-hubert").await;
        s.app.wait_state("outgoing").await;
        let room = within(hubert.expect_info("onReceiveNewInvitation"))
            .await
            .invitation
            .room_id;
        assert_ellipsised(&s.app, "[data-testid=\"outgoing-callee\"]", &spaced).await;
        let r = rects(&s.app, &["outgoing-cancel"]).await;
        assert!(
            inside(&r["outgoing-cancel"], &r["viewport"]),
            "Cancel is at {:?} in a {:?} window",
            r["outgoing-cancel"],
            r["viewport"]
        );
        assert_no_scrolling(&s.app, "ringing out at 640x480").await;
        s.app.click("outgoing-cancel").await;
        let cancelled = within(hubert.expect_info("onInvitationCancelled")).await;
        assert_eq!(cancelled.invitation.room_id, room);
        s.app.wait_state("contacts").await;

        // A long name made of words: one line, cut, the dialog as wide as it was.
        hubert.invite("alice").await.expect("hubert calls");
        assert_incoming_fits(&s.app, &spaced).await;
        s.app.screenshot("layout-incoming-spaced-640x480").await;
        s.app.click("incoming-reject").await;
        within(hubert.expect("onInviteeRejected")).await;
        s.app.wait_state("contacts").await;

        // One unbroken word.
        wolfe.invite("alice").await.expect("wolfe calls");
        assert_incoming_fits(&s.app, &unbroken).await;
        s.app.screenshot("layout-incoming-unbroken-640x480").await;
        s.app.click("incoming-accept").await;
        within(wolfe.expect("onInviteeAccepted")).await;
        s.app.wait_state("in-call").await;

        // In the call: the title is cut, every control (the control bar's and the
        // header's chips) is inside the window, and nothing scrolls.
        assert_ellipsised(&s.app, "[data-testid=\"in-call-title\"]", &unbroken).await;
        let ids = [
            "toggle-mute",
            "toggle-camera",
            "share-screen",
            "call-devices",
            "hangup",
            "quality-indicator",
            "verify-call",
            "call-controls",
        ];
        for id in ids {
            s.app.wait_testid(id).await;
        }
        let r = rects(&s.app, &ids).await;
        let view = r["viewport"];
        let outside: Vec<_> = ids
            .iter()
            .filter(|id| !inside(&r[**id], &view))
            .map(|id| (id, r[*id]))
            .collect();
        assert!(
            outside.is_empty(),
            "off the {view:?} window in a call with {unbroken:?}: {outside:?}"
        );
        assert_no_scrolling(&s.app, "in a call at 640x480").await;
        // Wolfe's caption on his picture (his name, cut, and his state) ends before our
        // self-view in its corner: a long name does not push his state under it.
        assert_ellipsised(&s.app, "[data-testid=\"video-tile-wolfe\"] .who", &unbroken).await;
        let caption = js(
            &s.app,
            "const r = document.querySelector('[data-testid=\"video-tile-wolfe\"] figcaption').getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom];",
            vec![],
        )
        .await;
        let c = |i: usize| caption[i].as_f64().unwrap_or(f64::NAN);
        let caption = Rect {
            left: c(0),
            top: c(1),
            right: c(2),
            bottom: c(3),
        };
        let r = rects(&s.app, &["self-view", "video-state-wolfe"]).await;
        let pip = r["self-view"];
        let overlap = caption.right > pip.left
            && caption.left < pip.right
            && caption.bottom > pip.top
            && caption.top < pip.bottom;
        assert!(
            !overlap,
            "wolfe's caption {caption:?} lies under the self-view {pip:?}"
        );
        assert!(
            inside(&r["video-state-wolfe"], &caption),
            "wolfe's state {:?} is pushed out of his caption {caption:?}",
            r["video-state-wolfe"]
        );
        s.app.screenshot("layout-in-call-long-name-640x480").await;

        s.app.click("hangup").await;
        within(wolfe.expect("onHangUp")).await;
        s.app.wait_state("contacts").await;
    });
}

/// The self-view's, the stage's and the control bar's rectangles.
async fn pip_rects(app: &App) -> (Rect, Rect, Rect, Rect) {
    let r = rects(app, &["self-view", "call-stage", "call-controls"]).await;
    (
        r["self-view"],
        r["call-stage"],
        r["call-controls"],
        r["viewport"],
    )
}

/// Drags with the mouse (WebDriver actions, which WebKitWebDriver turns into real
/// pointer events in the page): presses on the self-view's centre, moves in steps to
/// (`x`, `y`) in the viewport, releases.
async fn drag_self_view_to(app: &App, x: f64, y: f64) {
    let pip = app
        .client()
        .find(Locator::Css("[data-testid=\"self-view\"]"))
        .await
        .expect("find the self-view");
    let (from, ..) = pip_rects(app).await;
    let (x0, y0) = (
        (from.left + from.right) / 2.0,
        (from.top + from.bottom) / 2.0,
    );
    let step = std::time::Duration::from_millis(50);
    let mut mouse = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: pip,
            duration: None,
            x: 0.0,
            y: 0.0,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        });
    const STEPS: u32 = 5;
    for i in 1..=STEPS {
        let t = f64::from(i) / f64::from(STEPS);
        mouse = mouse.then(PointerAction::MoveTo {
            duration: Some(step),
            x: (x0 + (x - x0) * t).round(),
            y: (y0 + (y - y0) * t).round(),
        });
    }
    mouse = mouse.then(PointerAction::Up {
        button: MOUSE_BUTTON_LEFT,
    });
    app.client()
        .perform_actions(mouse)
        .await
        .unwrap_or_else(|e| panic!("drag the self-view to {x},{y}: {e}"));
    app.client()
        .release_actions()
        .await
        .expect("release the mouse");
}

/// Asserts the self-view is wholly inside the window and the stage, and off the control
/// bar.
fn assert_pip_placed(pip: Rect, stage: Rect, controls: Rect, view: Rect, when: &str) {
    assert!(
        inside(&pip, &view),
        "{when}: the self-view {pip:?} leaves the window {view:?}"
    );
    assert!(
        inside(&pip, &stage),
        "{when}: the self-view {pip:?} leaves the stage {stage:?}"
    );
    assert!(
        pip.bottom <= controls.top + 0.5,
        "{when}: the self-view {pip:?} covers the control bar {controls:?}"
    );
}

#[test]
fn the_self_view_can_be_dragged_into_another_corner_and_stays_off_the_control_bar() {
    harness::run_with("layout-self-view", with_password("alice"), |s| async move {
        let mut bob = s.server.peer("bob", "bob-sdk").await;
        s.app.resize(1280, 800).await;
        s.sign_in("alice").await;
        s.app.click("call-video-bob").await;
        let room = within(bob.expect_info("onReceiveNewInvitation"))
            .await
            .invitation
            .room_id;
        bob.accept(&room).await.expect("bob accepts");
        s.app.wait_state("in-call").await;
        s.app.wait_testid("self-view").await;

        // It starts in the stage's bottom right corner.
        let (start, stage, controls, view) = pip_rects(&s.app).await;
        assert_pip_placed(start, stage, controls, view, "at first");
        assert!(
            start.left > (stage.left + stage.right) / 2.0
                && start.top > (stage.top + stage.bottom) / 2.0,
            "the self-view {start:?} starts in the bottom right of {stage:?}"
        );

        // Dragged 300 px left and 200 px up, it follows the pointer.
        let (cx, cy) = (
            (start.left + start.right) / 2.0,
            (start.top + start.bottom) / 2.0,
        );
        drag_self_view_to(&s.app, cx - 300.0, cy - 200.0).await;
        let (moved, ..) = pip_rects(&s.app).await;
        assert!(
            (moved.left - (start.left - 300.0)).abs() <= 2.0
                && (moved.top - (start.top - 200.0)).abs() <= 2.0,
            "dragged by (-300, -200): {start:?} → {moved:?}"
        );

        // Dragged past the window's top left corner (over the call's title line): it
        // stops in the stage's top left corner.
        drag_self_view_to(&s.app, 1.0, 1.0).await;
        let (corner, stage, controls, view) = pip_rects(&s.app).await;
        assert_pip_placed(corner, stage, controls, view, "dragged to the top left");
        assert!(
            (corner.left - stage.left).abs() <= 1.0 && (corner.top - stage.top).abs() <= 1.0,
            "the self-view {corner:?} is not in the top left corner of {stage:?}"
        );

        // The arrow keys move it too (16 px a press).
        s.app.keys("self-view", &ARROW_RIGHT.to_string()).await;
        let (keyed, ..) = pip_rects(&s.app).await;
        assert!(
            (keyed.left - corner.left - 16.0).abs() <= 1.0,
            "ArrowRight: {corner:?} → {keyed:?}"
        );
        s.app.keys("self-view", &ARROW_UP.to_string()).await;
        let (kept, ..) = pip_rects(&s.app).await;
        assert!(
            (kept.top - corner.top).abs() <= 1.0,
            "ArrowUp at the top moved it out of the stage: {keyed:?} → {kept:?}"
        );

        // Dragged onto the control bar at the window's bottom right: it stops in the
        // stage's bottom right corner, above the bar.
        drag_self_view_to(&s.app, view.right - 2.0, view.bottom - 2.0).await;
        let (low, stage, controls, view) = pip_rects(&s.app).await;
        assert_pip_placed(low, stage, controls, view, "dragged onto the control bar");
        assert!(
            (low.right - stage.right).abs() <= 1.0 && (low.bottom - stage.bottom).abs() <= 1.0,
            "the self-view {low:?} is not in the bottom right corner of {stage:?}"
        );
        s.app.screenshot("layout-self-view-dragged").await;

        // A smaller window keeps it inside, still above the bar.
        s.app.resize(640, 480).await;
        let (small, stage, controls, view) = pip_rects(&s.app).await;
        assert_pip_placed(small, stage, controls, view, "at 640x480");

        // Hang up through the page: the pointer rests on the control bar, and a tooltip
        // there would take WebDriver's next click (docs/e2e.md).
        js(
            &s.app,
            "document.querySelector('[data-testid=\"hangup\"]').click();",
            vec![],
        )
        .await;
        within(bob.expect("onHangUp")).await;
        s.app.wait_state("contacts").await;
    });
}
