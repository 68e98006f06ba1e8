//! The tray icon (a StatusNotifierItem through libayatana-appindicator on Linux): a
//! status line that follows the SDK's call model, Open (shows and focuses the window) and
//! Quit. [`status`] is the pure part; the rest only builds the icon and sets the text.

use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager};
use tincan_sdk::{CallPhase, CallState};

/// The tray icon's id.
pub const TRAY_ID: &str = "main";
/// Menu item ids.
pub const STATUS: &str = "status";
pub const OPEN: &str = "open";
pub const QUIT: &str = "quit";

/// The status line while signed in and not in a call.
const AVAILABLE: &str = "Available";

/// The status line's text: `None` while signed out.
pub fn status(call: Option<&CallState>) -> String {
    let Some(call) = call else {
        return "Not signed in".into();
    };
    let other = call
        .invitation
        .as_ref()
        .map(|i| i.inviter_user_id.as_str())
        .unwrap_or("");
    match call.phase {
        CallPhase::Idle | CallPhase::Ended => AVAILABLE.into(),
        CallPhase::RingingIn => format!("Incoming call from {other}"),
        CallPhase::RingingOut => "Calling…".into(),
        CallPhase::Connecting => "Connecting…".into(),
        CallPhase::InCall => "In a call".into(),
    }
}

/// The status line, to update it (managed state).
struct Tray {
    status: MenuItem<tauri::Wry>,
}

/// Builds the tray icon and its menu. A desktop without a tray (no StatusNotifier host)
/// still gets the icon registered; failing to build it is logged, not fatal: the window
/// works without. (tray-icon loads libayatana-appindicator3 at run time and panics when
/// neither it nor libappindicator3 is installed; the .deb depends on it, but a binary
/// run elsewhere must still start.)
pub fn build(app: &AppHandle) {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| try_build(app))) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "no tray icon"),
        Err(_) => tracing::warn!("no tray icon: libayatana-appindicator3 could not be loaded"),
    }
}

fn try_build(app: &AppHandle) -> tauri::Result<()> {
    let status_item = MenuItem::with_id(app, STATUS, status(None), false, None::<&str>)?;
    let open = MenuItem::with_id(app, OPEN, "Open Tincan", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, QUIT, "Quit", true, None::<&str>)?;
    let separator = PredefinedMenuItem::separator(app)?;
    let menu = Menu::with_items(app, &[&status_item, &separator, &open, &quit])?;
    let mut tray = TrayIconBuilder::with_id(TRAY_ID)
        .tooltip("Tincan")
        .title("Tincan")
        .menu(&menu)
        .on_menu_event(|app, event| match event.id().as_ref() {
            OPEN => crate::alerting::raise(app),
            QUIT => app.exit(0),
            _ => {}
        });
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.build(app)?;
    app.manage(Tray {
        status: status_item,
    });
    Ok(())
}

/// Sets the status line (`None`: signed out).
pub fn show_status(app: &AppHandle, call: Option<&CallState>) {
    show(app, status(call));
}

/// Signed in, before the call model's first snapshot.
pub fn show_signed_in(app: &AppHandle) {
    show(app, AVAILABLE.into());
}

fn show(app: &AppHandle, text: String) {
    if let Some(tray) = app.try_state::<Tray>() {
        if let Err(e) = tray.status.set_text(text) {
            tracing::debug!(error = %e, "tray status");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(phase: CallPhase) -> CallState {
        CallState {
            phase,
            direction: None,
            room_id: "r1".into(),
            invitation: Some(tincan_sdk::protocol::Invitation {
                inviter_user_id: "bob".into(),
                ..Default::default()
            }),
            peers: Vec::new(),
            ringing: Vec::new(),
            end: None,
        }
    }

    #[test]
    fn the_status_line_follows_the_call() {
        assert_eq!(status(None), "Not signed in");
        assert_eq!(status(Some(&call(CallPhase::Idle))), "Available");
        assert_eq!(
            status(Some(&call(CallPhase::RingingIn))),
            "Incoming call from bob"
        );
        assert_eq!(status(Some(&call(CallPhase::InCall))), "In a call");
        assert_eq!(status(Some(&call(CallPhase::Ended))), "Available");
    }
}
