//! An incoming call while the window may be hidden: what to do when the SDK's call model
//! starts and stops ringing this device, and what an action on the incoming-call
//! notification answers. Pure (no IO, no clock): [`crate::alerting`] carries out the
//! [`Alert`]s and sends the [`Answer`]s.
//!
//! The call model alone decides when ringing stops (answered here or elsewhere, declined,
//! cancelled, timed out, signed out): any snapshot that is not `ringingIn` for the ringing
//! room silences it.

use tincan_sdk::protocol::{ActionParams, Invitation, MediaType};
use tincan_sdk::{CallPhase, CallState};

/// The notification action that accepts the call.
pub const ACCEPT: &str = "accept";
/// The notification action that declines the call.
pub const DECLINE: &str = "decline";
/// What the notification plugin reports for a click on the notification itself.
pub const TAP: &str = "tap";

/// Something the driver does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// Show, unminimise and focus the window.
    Raise,
    /// Start the ringtone.
    Ring,
    /// Stop the ringtone.
    Silence,
    /// Show notification `id` with Accept and Decline.
    Notify {
        id: i32,
        title: String,
        body: String,
    },
    /// Close notification `id`.
    CloseNotification(i32),
}

/// A request an action on the notification makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Accept(ActionParams),
    Decline(ActionParams),
}

/// The invitation ringing now.
#[derive(Debug)]
struct Ringing {
    room: String,
    notification: i32,
    invitation: Invitation,
    /// An action answered it; later actions on the notification are ignored.
    answered: bool,
}

/// The incoming-call state machine.
#[derive(Debug, Default)]
pub struct Incoming {
    ringing: Option<Ringing>,
    /// The last notification id handed out (ids start at 1; one per ringing call).
    last_id: i32,
}

impl Incoming {
    /// Follows a snapshot of the call model.
    pub fn on_call_state(&mut self, state: &CallState) -> Vec<Alert> {
        let rings = match (&state.phase, &state.invitation) {
            (CallPhase::RingingIn, Some(invitation)) if !state.room_id.is_empty() => {
                Some(invitation)
            }
            _ => None,
        };
        let Some(invitation) = rings else {
            return self.stop();
        };
        if self
            .ringing
            .as_ref()
            .is_some_and(|r| r.room == state.room_id)
        {
            // The same call again (the snapshot changed elsewhere): it goes on ringing.
            return Vec::new();
        }
        let mut alerts = self.stop();
        self.last_id = self.last_id.wrapping_add(1).max(1);
        let id = self.last_id;
        let (title, body) = describe(invitation);
        self.ringing = Some(Ringing {
            room: state.room_id.clone(),
            notification: id,
            invitation: Invitation {
                room_id: state.room_id.clone(),
                ..invitation.clone()
            },
            answered: false,
        });
        alerts.extend([Alert::Raise, Alert::Ring, Alert::Notify { id, title, body }]);
        alerts
    }

    /// Signed out (or the session replaced): nothing rings any more.
    pub fn reset(&mut self) -> Vec<Alert> {
        self.stop()
    }

    /// An action on notification `notification` (`None` when the notification server did
    /// not say which), by `me`.
    pub fn on_action(
        &mut self,
        notification: Option<i32>,
        action: &str,
        me: &str,
    ) -> (Vec<Alert>, Option<Answer>) {
        let Some(ringing) = self
            .ringing
            .as_mut()
            .filter(|r| Some(r.notification) == notification && !r.answered)
        else {
            // A notification of a call that no longer rings: just show the window.
            return (vec![Alert::Raise], None);
        };
        let params = ActionParams {
            op_user_id: me.to_owned(),
            invitation: ringing.invitation.clone(),
        };
        let answer = match action {
            ACCEPT => Answer::Accept(params),
            DECLINE => Answer::Decline(params),
            // A click on the notification itself: the window, still ringing.
            _ => return (vec![Alert::Raise], None),
        };
        ringing.answered = true;
        let id = ringing.notification;
        let mut alerts = vec![Alert::Silence, Alert::CloseNotification(id)];
        if let Answer::Accept(_) = answer {
            // The call screen.
            alerts.push(Alert::Raise);
        }
        (alerts, Some(answer))
    }

    /// Whether something rings now.
    pub fn is_ringing(&self) -> bool {
        self.ringing.as_ref().is_some_and(|r| !r.answered)
    }

    fn stop(&mut self) -> Vec<Alert> {
        match self.ringing.take() {
            // An answer already silenced it and closed its notification.
            Some(r) if r.answered => Vec::new(),
            Some(r) => vec![Alert::Silence, Alert::CloseNotification(r.notification)],
            None => Vec::new(),
        }
    }
}

/// The notification's title and body for `invitation`.
fn describe(invitation: &Invitation) -> (String, String) {
    let kind = match invitation.media_type {
        MediaType::Video => "video",
        _ => "audio",
    };
    let title = format!("Incoming {kind} call");
    let body = if invitation.group_id.is_empty() {
        format!("{} is calling", invitation.inviter_user_id)
    } else {
        format!("{} is calling the group", invitation.inviter_user_id)
    };
    (title, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tincan_sdk::protocol::UserId;

    fn invitation(room: &str) -> Invitation {
        serde_json::from_value(serde_json::json!({
            "inviterUserID": "bob",
            "inviteeUserIDList": ["alice"],
            "groupID": "",
            "roomID": room,
            "timeout": 30,
            "mediaType": "video",
            "sessionType": 1,
            "platformID": 5,
        }))
        .expect("an invitation")
    }

    fn state(phase: CallPhase, room: &str) -> CallState {
        CallState {
            phase,
            direction: None,
            room_id: room.to_owned(),
            invitation: (phase != CallPhase::Idle).then(|| invitation(room)),
            peers: Vec::<UserId>::new(),
            ringing: Vec::new(),
            end: None,
        }
    }

    fn rings(m: &mut Incoming, room: &str) -> i32 {
        let alerts = m.on_call_state(&state(CallPhase::RingingIn, room));
        assert_eq!(alerts[..2], [Alert::Raise, Alert::Ring], "{alerts:?}");
        match &alerts[2] {
            Alert::Notify { id, title, body } => {
                assert_eq!(title, "Incoming video call");
                assert_eq!(body, "bob is calling");
                *id
            }
            other => panic!("no notification: {other:?}"),
        }
    }

    #[test]
    fn ringing_in_raises_the_window_rings_and_notifies_once() {
        let mut m = Incoming::default();
        rings(&mut m, "r1");
        assert!(m.is_ringing());
        // The same call's next snapshot changes nothing.
        assert_eq!(m.on_call_state(&state(CallPhase::RingingIn, "r1")), []);
    }

    #[test]
    fn every_way_out_of_ringing_in_silences_and_closes_the_notification() {
        for next in [
            CallPhase::Connecting,
            CallPhase::InCall,
            CallPhase::Ended,
            CallPhase::Idle,
        ] {
            let mut m = Incoming::default();
            let id = rings(&mut m, "r1");
            assert_eq!(
                m.on_call_state(&state(next, "r1")),
                [Alert::Silence, Alert::CloseNotification(id)],
                "{next:?}"
            );
            assert!(!m.is_ringing());
            // Nothing rings, nothing more to stop.
            assert_eq!(m.on_call_state(&state(CallPhase::Ended, "r1")), []);
        }
    }

    #[test]
    fn other_phases_never_ring() {
        let mut m = Incoming::default();
        for phase in [
            CallPhase::RingingOut,
            CallPhase::Connecting,
            CallPhase::InCall,
        ] {
            assert_eq!(m.on_call_state(&state(phase, "r1")), []);
        }
        // Ringing in without a room or an invitation cannot be answered: no ring.
        assert_eq!(m.on_call_state(&state(CallPhase::RingingIn, "")), []);
        let mut s = state(CallPhase::RingingIn, "r2");
        s.invitation = None;
        assert_eq!(m.on_call_state(&s), []);
    }

    #[test]
    fn a_new_call_ringing_replaces_the_old_notification() {
        let mut m = Incoming::default();
        let first = rings(&mut m, "r1");
        let alerts = m.on_call_state(&state(CallPhase::RingingIn, "r2"));
        assert_eq!(
            alerts[..2],
            [Alert::Silence, Alert::CloseNotification(first)]
        );
        assert!(matches!(&alerts[4], Alert::Notify { id, .. } if *id != first));
    }

    #[test]
    fn accept_on_the_notification_accepts_that_call_as_me() {
        let mut m = Incoming::default();
        let id = rings(&mut m, "r1");
        let (alerts, answer) = m.on_action(Some(id), ACCEPT, "alice");
        assert_eq!(
            alerts,
            [Alert::Silence, Alert::CloseNotification(id), Alert::Raise]
        );
        let Some(Answer::Accept(params)) = answer else {
            panic!("{answer:?}")
        };
        assert_eq!(params.op_user_id, "alice");
        assert_eq!(params.invitation.room_id, "r1");
        assert_eq!(params.invitation.inviter_user_id, "bob");
        // A second click while the accept is on its way does not accept twice.
        assert_eq!(m.on_action(Some(id), ACCEPT, "alice").1, None);
        // The call model then leaves ringingIn: already silenced.
        assert_eq!(m.on_call_state(&state(CallPhase::Connecting, "r1")), []);
    }

    #[test]
    fn decline_on_the_notification_declines_without_raising() {
        let mut m = Incoming::default();
        let id = rings(&mut m, "r1");
        let (alerts, answer) = m.on_action(Some(id), DECLINE, "alice");
        assert_eq!(alerts, [Alert::Silence, Alert::CloseNotification(id)]);
        assert!(matches!(answer, Some(Answer::Decline(p)) if p.invitation.room_id == "r1"));
    }

    #[test]
    fn a_click_or_a_stale_notification_only_shows_the_window() {
        let mut m = Incoming::default();
        let old = rings(&mut m, "r1");
        let id = rings_after(&mut m, "r2");
        assert_eq!(
            m.on_action(Some(id), TAP, "alice"),
            (vec![Alert::Raise], None)
        );
        assert!(m.is_ringing());
        // The first call's notification, or one the server did not name, answers nothing.
        assert_eq!(
            m.on_action(Some(old), ACCEPT, "alice"),
            (vec![Alert::Raise], None)
        );
        assert_eq!(
            m.on_action(None, ACCEPT, "alice"),
            (vec![Alert::Raise], None)
        );
        assert!(m.is_ringing());
    }

    fn rings_after(m: &mut Incoming, room: &str) -> i32 {
        match m.on_call_state(&state(CallPhase::RingingIn, room)).pop() {
            Some(Alert::Notify { id, .. }) => id,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn signing_out_silences() {
        let mut m = Incoming::default();
        let id = rings(&mut m, "r1");
        assert_eq!(m.reset(), [Alert::Silence, Alert::CloseNotification(id)]);
        assert_eq!(m.reset(), []);
    }
}
