//! The app's window through WebDriver: find by `data-testid`, click, type, read, wait.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, Locator};
use serde_json::json;

use super::{artifacts, POLL, WAIT};

/// The app's window. Elements are found by `data-testid` (docs/ui-testids.md).
/// Every wait is bounded by [`WAIT`] and fails the test with what it saw last.
pub struct App {
    pub(super) c: Client,
    pub(super) display: String,
}

fn by_testid(id: &str) -> String {
    format!("[data-testid=\"{id}\"]")
}

impl App {
    /// The WebDriver client, for what the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.c
    }

    /// Waits until the element is in the DOM and displayed.
    pub async fn wait_testid(&self, id: &str) -> Element {
        let css = by_testid(id);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(e) = self.c.find(Locator::Css(&css)).await {
                if e.is_displayed().await.unwrap_or(false) {
                    return e;
                }
            }
            if Instant::now() > deadline {
                let state = self.state().await.ok().flatten();
                let why = self
                    .c
                    .execute(WHY_HIDDEN_JS, vec![json!(css)])
                    .await
                    .unwrap_or_default();
                panic!("no visible {css} after {WAIT:?} (screen {state:?}; {why})");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the element is gone from the DOM or hidden.
    pub async fn wait_gone(&self, id: &str) {
        let css = by_testid(id);
        let deadline = Instant::now() + WAIT;
        loop {
            match self.c.find(Locator::Css(&css)).await {
                Err(_) => return,
                Ok(e) if !e.is_displayed().await.unwrap_or(false) => return,
                Ok(_) => {}
            }
            assert!(
                Instant::now() < deadline,
                "{css} still visible after {WAIT:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Clicks the element once it is visible. If the page re-rendered it between
    /// finding and clicking (a list redrawn on a presence change), finds it again.
    pub async fn click(&self, id: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let e = self.wait_testid(id).await;
            match e.click().await {
                Ok(()) => return,
                // WebKitWebDriver says "Node … was not found", or nothing at all.
                Err(err) if Instant::now() < deadline && is_stale(&err) => {
                    tokio::time::sleep(POLL).await
                }
                Err(err) => panic!("click {id}: {err}"),
            }
        }
    }

    /// Replaces the field's content with `text`.
    pub async fn type_into(&self, id: &str, text: &str) {
        let e = self.wait_testid(id).await;
        e.clear()
            .await
            .unwrap_or_else(|err| panic!("clear {id}: {err}"));
        e.send_keys(text)
            .await
            .unwrap_or_else(|err| panic!("type into {id}: {err}"));
    }

    /// The element's rendered text, once it is visible.
    pub async fn text_of(&self, id: &str) -> String {
        let e = self.wait_testid(id).await;
        e.text()
            .await
            .unwrap_or_else(|err| panic!("text of {id}: {err}"))
    }

    /// The `value` of an input field (present in the DOM, visible or not).
    pub async fn value_of(&self, id: &str) -> String {
        let e = self
            .c
            .find(Locator::Css(&by_testid(id)))
            .await
            .unwrap_or_else(|err| panic!("find {id}: {err}"));
        e.prop("value")
            .await
            .unwrap_or_else(|err| panic!("value of {id}: {err}"))
            .unwrap_or_default()
    }

    /// Waits until the element's text satisfies `ok`; returns it.
    pub async fn wait_text(&self, id: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.text_of(id).await;
            if ok(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "text of {id} still {text:?} after {WAIT:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// An attribute of the element (present in the DOM, visible or not).
    pub async fn attr_of(&self, id: &str, attr: &str) -> Option<String> {
        let e = self
            .c
            .find(Locator::Css(&by_testid(id)))
            .await
            .unwrap_or_else(|err| panic!("find {id}: {err}"));
        e.attr(attr)
            .await
            .unwrap_or_else(|err| panic!("{attr} of {id}: {err}"))
    }

    /// Waits until the element has `attr` and its value satisfies `ok`; returns it.
    pub async fn wait_attr_where(&self, id: &str, attr: &str, ok: impl Fn(&str) -> bool) -> String {
        let css = by_testid(id);
        let deadline = Instant::now() + WAIT;
        let mut last = None;
        loop {
            if let Ok(e) = self.c.find(Locator::Css(&css)).await {
                last = e.attr(attr).await.ok().flatten();
                if let Some(v) = last.as_deref().filter(|v| ok(v)) {
                    return v.to_owned();
                }
            }
            assert!(
                Instant::now() < deadline,
                "{css} {attr} is {last:?} after {WAIT:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the element's `attr` equals `value`.
    pub async fn wait_attr(&self, id: &str, attr: &str, value: &str) {
        self.wait_attr_where(id, attr, |v| v == value).await;
    }

    /// The screen the app shows: the root element's `data-state`.
    pub async fn state(&self) -> Result<Option<String>, fantoccini::error::CmdError> {
        let v = self.c.execute(ROOT_STATE_JS, vec![]).await?;
        Ok(v.as_str().map(str::to_owned))
    }

    /// Waits until the app shows screen `name` (root `data-state`).
    pub async fn wait_state(&self, name: &str) {
        let deadline = Instant::now() + WAIT;
        let mut last = None;
        loop {
            if let Ok(s) = self.state().await {
                last = s;
                if last.as_deref() == Some(name) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "screen is {last:?}, not {name:?}, after {WAIT:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Saves an X-level screenshot of the whole display to `tests/artifacts/<name>.png`.
    /// (WebDriver's own screenshot can show a stale first paint.)
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let path = artifacts().join(format!("{name}.png"));
        // The whole display, trimmed to the window (Xvfb's background is black).
        self.import(&path, &["-trim", "+repage"]).await;
        path
    }

    /// Saves the whole display (untrimmed) to `path`: the window fills it once it was
    /// sized to the display with [`App::resize`].
    pub async fn screenshot_to(&self, path: &std::path::Path) {
        self.import(path, &[]).await;
    }

    /// `import -window root` (imagemagick) of the display, with `options`, to `path`.
    async fn import(&self, path: &std::path::Path, options: &[&str]) {
        // Let the compositor paint what the DOM already says.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let status = Command::new("import")
            .args(["-window", "root"])
            .args(options)
            .arg(path)
            .env("DISPLAY", &self.display)
            .stdin(Stdio::null())
            .status()
            .expect("run import (imagemagick)");
        assert!(status.success(), "import -window root failed: {status}");
    }

    /// Moves the window to the display's corner and sizes it to `width`×`height`, then
    /// waits until the page has laid itself out at that size (`innerWidth`/`innerHeight`).
    pub async fn resize(&self, width: u32, height: u32) {
        self.c
            .set_window_rect(0, 0, width, height)
            .await
            .unwrap_or_else(|e| panic!("resize the window to {width}x{height}: {e}"));
        let deadline = Instant::now() + WAIT;
        let mut last = serde_json::Value::Null;
        loop {
            if let Ok(v) = self
                .c
                .execute("return [innerWidth, innerHeight];", vec![])
                .await
            {
                // Window decorations (if a window manager draws any) take a little.
                let near = |i: usize, want: u32| {
                    v[i].as_u64()
                        .is_some_and(|got| got <= u64::from(want) && got + 40 >= u64::from(want))
                };
                if near(0, width) && near(1, height) {
                    return;
                }
                last = v;
            }
            assert!(
                Instant::now() < deadline,
                "the page is {last} after asking for {width}x{height}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sends keys to the element (WebDriver key codes: `\u{e009}` Control, `\u{e008}`
    /// Shift, `\u{e00c}` Escape, `\u{e004}` Tab; modifiers stay down to the end).
    pub async fn keys(&self, id: &str, keys: &str) {
        let e = self.wait_testid(id).await;
        e.send_keys(keys)
            .await
            .unwrap_or_else(|err| panic!("send keys to {id}: {err}"));
    }

    /// The `data-testid` of the focused element, if it has one.
    pub async fn focused(&self) -> Option<String> {
        let v = self
            .c
            .execute(
                "const a = document.activeElement; return a && a.dataset ? a.dataset.testid || null : null;",
                vec![],
            )
            .await
            .expect("read the focused element");
        v.as_str().map(str::to_owned)
    }

    pub(super) fn try_screenshot(&self, name: &str) {
        let path = artifacts().join(format!("{name}.png"));
        let _ = Command::new("import")
            .args(["-window", "root"])
            .arg(&path)
            .env("DISPLAY", &self.display)
            .stdin(Stdio::null())
            .status();
    }
}

/// Whether WebDriver refused an element because it left the DOM after it was found.
fn is_stale(err: &fantoccini::error::CmdError) -> bool {
    let text = err.to_string();
    text.contains("was not found") || text.contains("stale") || text.trim_end().ends_with("error:")
}

/// The root element's `data-state`: `[data-testid="app"]` (docs/ui-testids.md), or
/// `<body>`/`<html>` if one of them carries the attribute instead.
const ROOT_STATE_JS: &str = r#"
const root = document.querySelector('[data-testid="app"][data-state]')
  || [document.body, document.documentElement].find((e) => e && e.hasAttribute('data-state'));
return root ? root.getAttribute('data-state') : null;
"#;

/// Says why an element may count as not displayed (for failure messages).
const WHY_HIDDEN_JS: &str = r#"
const el = document.querySelector(arguments[0]);
const view = `window ${innerWidth}x${innerHeight}, ${document.visibilityState}`;
if (!el) return `${view}; not in the DOM`;
const r = el.getBoundingClientRect();
let hidden = [];
for (let e = el; e; e = e.parentElement) if (e.hidden) hidden.push(e.dataset.testid || e.tagName);
return `${view}; rect ${r.width}x${r.height} at ${r.x},${r.y}; hidden: [${hidden}]`;
"#;
