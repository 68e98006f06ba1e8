//! Tincan desktop app: the Tauri shell around the Tincan SDK.
//!
//! This crate is deliberately thin. The page in `ui/` talks to Rust only through the
//! commands in [`commands`]; call and signaling logic lives in `tincan-sdk`, and the
//! commands only forward to it. The IO boundary is the webview: everything crossing it
//! is serialized with serde.
//!
//! The binary `tincan-app` calls [`run`]:
//!
//! ```no_run
//! tincan_app::run();
//! ```

pub mod commands;

/// Builds the Tauri app from `tauri.conf.json` and runs it until the last window closes.
pub fn run() {
    tauri::Builder::default()
        .invoke_handler(tauri::generate_handler![commands::app_info])
        .run(tauri::generate_context!())
        .expect("the Tauri runtime failed to start (is a display available?)");
}
