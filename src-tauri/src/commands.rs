//! Commands the page can `invoke`. Each one is an adapter: it reads its arguments,
//! forwards to the SDK or app state, and returns a serializable value.

use serde::Serialize;

/// What the page shows in its header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppInfo {
    /// Product name from `tauri.conf.json`.
    pub name: String,
    /// App version (the package version unless the config overrides it).
    pub version: String,
}

/// Returns the app's name and version.
#[tauri::command]
pub fn app_info(app: tauri::AppHandle) -> AppInfo {
    let package = app.package_info();
    AppInfo {
        name: package.name.clone(),
        version: package.version.to_string(),
    }
}
