//! Carries out what [`crate::incoming`] decides: raises the window, plays the ringtone
//! from Rust ([`tincan_media::Ringtone`], through the speakers chosen in settings) and
//! shows the incoming-call notification with Accept and Decline
//! (tauri-plugin-notification, which reports a Linux notification server's
//! `ActionInvoked`); an action answers through the same code as the page's
//! `signalingAccept` / `signalingReject` ([`crate::commands::accept`], [`reject`]).
//!
//! [`reject`]: crate::commands::reject

use std::sync::{Mutex, MutexGuard};

use tauri::{AppHandle, Manager};
use tauri_plugin_notification::{Action, ActionType, NotificationExt};
use tincan_media::Ringtone;
use tincan_sdk::{new_operation_id, CallState};

use crate::incoming::{Alert, Answer, Incoming, ACCEPT, DECLINE};
use crate::media::MediaState;
use crate::state::AppState;

/// The notification action type of an incoming call.
pub const INCOMING_CALL: &str = "incoming-call";

/// Managed state: the machine and the ringtone playing, if any.
#[derive(Default)]
pub struct Alerting {
    machine: Mutex<Incoming>,
    /// `(ring generation, ringtone)`: a ringtone that took long to open is dropped if
    /// ringing stopped meanwhile (the generation moved on).
    ringtone: Mutex<(u64, Option<Ringtone>)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers the notification's actions and who handles them. Called once at start-up.
pub fn init(app: &AppHandle) {
    app.manage(Alerting::default());
    let notification = app.notification();
    let actions = ActionType::builder(INCOMING_CALL)
        .actions(vec![
            Action::builder(ACCEPT, "Accept").build(),
            Action::builder(DECLINE, "Decline").build(),
        ])
        .build();
    if let Err(e) = notification.register_action_types(vec![actions]) {
        tracing::warn!(error = %e, "notification actions");
    }
    let handle = app.clone();
    let registered = notification.on_action(move |performed| {
        let id = performed.notification().map(|n| n.id());
        on_action(&handle, id, performed.action_id());
    });
    if let Err(e) = registered {
        tracing::warn!(error = %e, "notification actions");
    }
}

/// Follows the SDK's call model.
pub fn on_call_state(app: &AppHandle, state: &CallState) {
    let alerts = lock(&app.state::<Alerting>().machine).on_call_state(state);
    run(app, alerts);
}

/// The session closed: nothing rings.
pub fn on_signed_out(app: &AppHandle) {
    let alerts = lock(&app.state::<Alerting>().machine).reset();
    run(app, alerts);
}

/// An action on notification `id` (the plugin calls this on its own thread).
pub fn on_action(app: &AppHandle, id: Option<i32>, action: &str) {
    let Some(me) = app
        .state::<AppState>()
        .client()
        .map(|c| c.user_id().to_string())
    else {
        return raise(app);
    };
    let (alerts, answer) = lock(&app.state::<Alerting>().machine).on_action(id, action, &me);
    run(app, alerts);
    let Some(answer) = answer else {
        return;
    };
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let (what, result) = match answer {
            Answer::Accept(params) => (
                "accept",
                crate::commands::accept(app.clone(), new_operation_id(), params).await,
            ),
            Answer::Decline(params) => (
                "decline",
                crate::commands::reject(app.clone(), new_operation_id(), params).await,
            ),
        };
        if result.err_code != 0 {
            // The call model says what became of the call; the window shows it.
            tracing::warn!(code = result.err_code, error = %result.err_msg, "{what} from the notification");
        }
    });
}

/// Shows, unminimises and focuses the main window.
pub fn raise(app: &AppHandle) {
    let Some(window) = app.get_webview_window("main") else {
        return;
    };
    for (what, result) in [
        ("show", window.show()),
        ("unminimize", window.unminimize()),
        ("focus", window.set_focus()),
    ] {
        if let Err(e) = result {
            tracing::debug!(error = %e, "window {what}");
        }
    }
}

fn run(app: &AppHandle, alerts: Vec<Alert>) {
    for alert in alerts {
        match alert {
            Alert::Raise => raise(app),
            Alert::Ring => ring(app),
            Alert::Silence => silence(app),
            Alert::Notify { id, title, body } => {
                let shown = app
                    .notification()
                    .builder()
                    .id(id)
                    .title(title)
                    .body(body)
                    .action_type_id(INCOMING_CALL)
                    .show();
                if let Err(e) = shown {
                    tracing::warn!(error = %e, "incoming call notification");
                }
            }
            Alert::CloseNotification(id) => {
                if let Err(e) = app.notification().remove_active(vec![id]) {
                    tracing::debug!(error = %e, "closing the notification");
                }
            }
        }
    }
}

/// Starts the ringtone on a thread of its own (opening a sound device can take a while).
fn ring(app: &AppHandle) {
    let alerting = app.state::<Alerting>();
    let generation = {
        let mut slot = lock(&alerting.ringtone);
        slot.0 += 1;
        slot.1 = None;
        slot.0
    };
    let output = app.state::<MediaState>().speakers();
    let app = app.clone();
    std::thread::spawn(move || match Ringtone::start(&output) {
        Ok(ringtone) => {
            let alerting = app.state::<Alerting>();
            let mut slot = lock(&alerting.ringtone);
            if slot.0 == generation {
                slot.1 = ringtone;
            }
        }
        Err(e) => tracing::warn!(error = %e, "ringtone"),
    });
}

fn silence(app: &AppHandle) {
    let alerting = app.state::<Alerting>();
    let ringtone = {
        let mut slot = lock(&alerting.ringtone);
        slot.0 += 1;
        slot.1.take()
    };
    // Dropping it joins its thread (at most one 20 ms tick) and closes the sound device:
    // not on the task that forwards the session's events.
    if let Some(ringtone) = ringtone {
        std::thread::spawn(move || drop(ringtone));
    }
}
