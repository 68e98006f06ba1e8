//! A video call between the window and the command-line client (`tincan listen --auto
//! accept --media`), the far end with the synthetic camera: the window must draw the far
//! end's pictures with an advancing frame counter, and the far end must see our mute and
//! camera-off.

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::harness::{self, with_password, within, App};

/// The command-line client as a far end: its JSON lines, one at a time.
pub(crate) struct FarEnd {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    seen: Vec<Value>,
}

impl FarEnd {
    pub(crate) async fn start(server: &str, token: &str, user: &str, args: &[&str]) -> FarEnd {
        let mut child = Command::new(cli_binary())
            .args([
                "--server",
                server,
                "--token",
                token,
                "--device",
                &format!("{user}-cli"),
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the tincan command-line client");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut far = FarEnd {
            child,
            lines,
            seen: Vec::new(),
        };
        far.wait_line("signed in", |v| v["event"] == "connection")
            .await;
        far
    }

    /// A line already read that satisfies `ok`, or else the next one that does.
    pub(crate) async fn seen_or_next(&mut self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        match self.seen.iter().find(|v| ok(v)) {
            Some(v) => v.clone(),
            None => self.wait_line(what, ok).await,
        }
    }

    /// Reads lines until one satisfies `ok` (bounded by the harness's wait).
    pub(crate) async fn wait_line(&mut self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let found = tokio::time::timeout(harness::WAIT, async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                self.seen.push(v.clone());
                if ok(&v) {
                    return Some(v);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(v)) => v,
            _ => panic!(
                "far end: no {what}; its last lines: {:#?}",
                self.seen.iter().rev().take(8).collect::<Vec<_>>()
            ),
        }
    }
}

impl Drop for FarEnd {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// `tincan` beside the app binary (`target/debug/`).
fn cli_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|p| p.parent())
        .expect("target/debug")
        .join("tincan")
}

/// The option values of the select with test id `arguments[0]`.
pub(crate) const SELECT_OPTIONS_JS: &str = r#"
const s = document.querySelector(`[data-testid="${arguments[0]}"]`);
return s ? Array.from(s.options).map((o) => o.value) : [];
"#;

/// Chooses `value` in the select with test id `id` and tells the page, as a person's
/// choice would (WebDriver's select support differs between drivers).
pub(crate) async fn choose(app: &App, id: &str, value: &str) {
    const SELECT_JS: &str = r#"
const s = document.querySelector(`[data-testid="${arguments[0]}"]`);
s.value = arguments[1];
s.dispatchEvent(new Event('change'));
"#;
    app.client()
        .execute(SELECT_JS, vec![Value::from(id), Value::from(value)])
        .await
        .unwrap_or_else(|e| panic!("choose {value} in {id}: {e}"));
}

/// Whether the canvas shows a picture: many distinct pixel values, not a blank fill.
const CANVAS_COLOURS_JS: &str = r#"
const c = document.querySelector(arguments[0]);
if (!c) return 0;
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
const seen = new Set();
for (let i = 0; i < d.length; i += 4 * 97) seen.add(d[i] << 16 | d[i + 1] << 8 | d[i + 2]);
return seen.size;
"#;

#[test]
fn a_video_call_with_the_command_line_client_draws_its_pictures_and_our_mute_reaches_it() {
    harness::run_with("media-video", with_password("alice"), |s| async move {
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

        // Bob's pictures are drawn, and the counter stamped into them advances.
        s.app.wait_testid("video-canvas-bob").await;
        let number = |v: &str| v.parse::<u64>().unwrap_or(0);
        let first = number(
            &s.app
                .wait_attr_where("video-counter-bob", "data-counter", |_| true)
                .await,
        );
        let later = number(
            &s.app
                .wait_attr_where("video-counter-bob", "data-counter", |v| {
                    number(v) >= first + 15
                })
                .await,
        );
        assert!(later > first, "frame counter advanced: {first} → {later}");
        let colours = s
            .app
            .client()
            .execute(
                CANVAS_COLOURS_JS,
                vec![Value::from("[data-testid=\"video-canvas-bob\"]")],
            )
            .await
            .expect("read the canvas");
        assert!(
            colours.as_u64().unwrap_or(0) > 20,
            "the canvas shows a picture ({colours} colours)"
        );
        s.app.screenshot("in-call-video").await;

        // The verification code, on demand: what the window shows for Bob is what Bob's
        // side derived for us.
        let line = within(bob.seen_or_next("bob's verification code", |v| {
            v["media"] == "verification" && v["user"] == "alice"
        }))
        .await;
        let code = line["code"].as_str().expect("a code").to_owned();
        s.app.click("verify-call").await;
        s.app
            .wait_text("verify-code-bob", |t| t.contains(&code))
            .await;
        s.app.screenshot("in-call-verify").await;
        s.app.click("verify-call").await;

        // Bob receives our pictures and sound.
        let received = within(bob.wait_line("alice's pictures and sound", |v| {
            v["media"] == "received"
                && v["user"] == "alice"
                && v["frames"].as_u64() > Some(10)
                && v["audioPackets"].as_u64() > Some(10)
        }))
        .await;

        // The call screen offers the cameras (none on these machines) and the test
        // pattern; switching during the call keeps pictures going to Bob.
        let cameras = s
            .app
            .client()
            .execute(SELECT_OPTIONS_JS, vec![Value::from("in-call-camera")])
            .await
            .expect("read the camera choice");
        let cameras: Vec<&str> = cameras
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            cameras.get(..2),
            Some(&["default", "pattern"][..]),
            "{cameras:?}"
        );
        choose(&s.app, "in-call-camera", "pattern").await;
        assert_eq!(s.app.value_of("settings-camera").await, "pattern");
        let counter = received["lastCounter"].as_u64().unwrap_or(0);
        within(bob.wait_line("alice's test pattern after the switch", |v| {
            v["media"] == "received"
                && v["user"] == "alice"
                && v["lastCounter"].as_u64() > Some(counter + 15)
        }))
        .await;
        // The choice is remembered in the webview's storage, which outlives this test.
        choose(&s.app, "in-call-camera", "default").await;

        // Mute and camera-off reach the far end.
        s.app.click("toggle-mute").await;
        within(bob.wait_line("alice muted", |v| {
            v["media"] == "remoteState" && v["user"] == "alice" && v["mic"] == false
        }))
        .await;
        s.app.click("toggle-camera").await;
        within(bob.wait_line("alice's camera off", |v| {
            v["media"] == "remoteState" && v["user"] == "alice" && v["camera"] == false
        }))
        .await;

        s.app.click("hangup").await;
        within(bob.wait_line("media ended", |v| v["media"] == "ended")).await;
        s.app.wait_state("contacts").await;
    });
}
