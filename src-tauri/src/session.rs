//! The signed-in session: opening it (SDK client and the task that forwards its events),
//! closing it, and where each event goes — the call's media, the window, or both. The one
//! module that ties the SDK, the media ([`crate::media`]) and the window
//! ([`crate::events`]) together, so those two need not know each other.

use tauri::{AppHandle, Manager};
use tincan_sdk::protocol::{Event, UserId};
use tincan_sdk::{SdkError, SdkEvent};
use tokio::sync::mpsc;

use crate::state::{AppState, Session};
use crate::{alerting, events, media, tray};

/// What a new session tells the window.
#[derive(Debug)]
pub struct Opened {
    pub user_id: UserId,
    pub device_id: String,
    /// The call this device was in when it last dropped, if the server kept it.
    pub current_call: Option<tincan_sdk::protocol::CurrentCall>,
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot store the device id: {0}")]
    Device(std::io::Error),
    #[error(transparent)]
    Sdk(#[from] SdkError),
}

/// Connects to `server` with `token` and this installation's deviceID, replacing any
/// session (whose events stop reaching the window at once) and its call's media.
pub async fn open(app: &AppHandle, server: &str, token: &str) -> Result<Opened, OpenError> {
    let state = app.state::<AppState>();
    let device = state.device().map_err(OpenError::Device)?;
    // Events of the session being replaced (its `Closed`) must not reach the window.
    let generation = state.next_generation();
    // The same device may not be connected twice: close the old session first.
    media::end(app, None);
    alerting::on_signed_out(app);
    close_current(&state).await;
    let mut options = tincan_sdk::ConnectOptions::default();
    options.ca_file = state.ca_file.clone();
    let (client, rx) = tincan_sdk::connect_with(server, token, device.clone(), options).await?;
    let user_id = client.user_id().clone();
    let current_call = client.session().current_call;
    let forwarder = spawn_forwarder(app.clone(), generation, rx);
    if let Some(old) = state.set_session(Session {
        client,
        user_id: user_id.clone(),
        server: server.to_owned(),
        forwarder,
    }) {
        // A concurrent sign-in raced this one; keep the newest.
        old.client.close().await;
    }
    tray::show_signed_in(app);
    Ok(Opened {
        user_id,
        device_id: device.device_id.to_string(),
        current_call,
    })
}

/// Signs out: the call's media stops, the connection closes, and the window is told.
pub async fn close(app: &AppHandle) {
    let state = app.state::<AppState>();
    state.next_generation();
    media::end(app, None);
    alerting::on_signed_out(app);
    tray::show_status(app, None);
    if close_current(&state).await {
        events::emit_signed_out(app);
    }
}

async fn close_current(state: &AppState) -> bool {
    match state.take_session() {
        Some(session) => {
            session.client.close().await;
            true
        }
        None => false,
    }
}

/// Forwards every event of one session until the SDK closes the channel: the call
/// model's snapshots and the signaling events to the media, everything but media
/// negotiation to the window. Events of a session that has been replaced (`generation`
/// no longer current) are dropped.
fn spawn_forwarder(
    app: AppHandle,
    generation: u64,
    mut events: mpsc::Receiver<SdkEvent>,
) -> tauri::async_runtime::JoinHandle<()> {
    tauri::async_runtime::spawn(async move {
        while let Some(event) = events.recv().await {
            if !app.state::<AppState>().is_current(generation) {
                continue;
            }
            match &event {
                // The SDK's call model is the one judge of whether our call is over.
                SdkEvent::CallStateChanged(state) => {
                    media::on_call_state(&app, state);
                    alerting::on_call_state(&app, state);
                    tray::show_status(&app, Some(state));
                }
                SdkEvent::Signaling(e) => {
                    media::on_event(&app, e);
                    if let Event::ReceiveMediaSignal(_) = e {
                        // Negotiation is between the media engines; the page has no use for it.
                        continue;
                    }
                }
                _ => {}
            }
            events::emit_to_window(&app, &event);
        }
    })
}
