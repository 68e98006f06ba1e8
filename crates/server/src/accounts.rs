//! Accounts removed from the store while signed in are signed out.
//!
//! Operators remove accounts with `tincan-server user delete`, a separate process that
//! edits the same database, so the server cannot be told; it looks instead. Every
//! [`crate::ServerConfig::account_check_interval`] this task asks the store whether each
//! signed-in user still exists (off the hub lock, on the blocking pool) and hands the
//! hub an [`Input::AccountRemoved`] for each one that does not. A removed user's token
//! no longer signs in either: `login` checks the store.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::hub::Input;
use crate::store::Store;
use crate::switchboard::Switchboard;

/// Checks the signed-in users every `every` until the server stops.
pub(crate) async fn watch_removed(board: Arc<Switchboard>, store: Arc<dyn Store>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let users = board.signed_in_users();
        if users.is_empty() {
            continue;
        }
        let store = store.clone();
        let gone = tokio::task::spawn_blocking(move || {
            users
                .into_iter()
                .filter(|u| matches!(store.user(u), Ok(None)))
                .collect::<Vec<_>>()
        })
        .await;
        let gone = match gone {
            Ok(gone) => gone,
            Err(e) => {
                warn!(error = %e, "checking accounts failed");
                continue;
            }
        };
        for user in gone {
            info!(user = %user, "account no longer in the store");
            if board.input(Input::AccountRemoved { user }).is_err() {
                return;
            }
        }
    }
}
