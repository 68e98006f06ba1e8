//! End-to-end tests: the real desktop app under X (Xvfb in CI), driven through
//! tauri-driver and WebKitWebDriver, against a real server on a free port, with
//! headless SDK clients as the far ends. One binary, so the suite links once.
//!
//! Without a display, tauri-driver, WebKitWebDriver or the app binary, every test says
//! "skipping e2e: <reason>" and passes — unless `TINCAN_E2E=1` (CI), where that fails.
//! How to run it locally: docs/e2e.md.

// Helpers are shared; not every scenario file uses every one.
#[allow(dead_code)]
mod harness;

mod calls;
mod contacts;
mod group;
mod layout;
mod local_server;
mod media;
mod outage;
mod processing;
mod reachable;
mod ringing;
mod screen;
mod screens;
mod seed;
mod signin;
mod tls;
mod window;
