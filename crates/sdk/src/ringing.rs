//! Which invitations ring on this device: the SDK's small local view of the server's
//! state, used to keep the app's view right across reconnects. No IO.
//!
//! The rules (the crate docs explain why):
//! - `onReceiveNewInvitation` adds its room; if the room already rings, the event is a
//!   repeat (the server re-sends pending invitations after every login) and is dropped.
//! - `onInvitationCancelled`, `onInvitationTimeout`, `onInviteeAcceptedByOtherDevice`
//!   and `onInviteeRejectedByOtherDevice` remove the room; they are always delivered
//!   (the inviter's device gets some of them for rooms that never rang there).
//! - A reply to this device's own accept or reject removes the room, when it says the
//!   invitation is settled.
//! - After each login, the reply's `pendingInvitations` is the truth: rooms that are new
//!   are delivered as `onReceiveNewInvitation`, rooms that stopped ringing while the
//!   device was away are delivered as `onInvitationCancelled`.

use std::collections::BTreeMap;

use tincan_protocol::{ErrCode, Event, SignalingInfo};

/// The invitations ringing on this device, by roomID, with the last payload seen.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ringing {
    // BTreeMap: resync emits in a stable order, which keeps tests and logs readable.
    rooms: BTreeMap<String, SignalingInfo>,
}

impl Ringing {
    /// Applies a server event; returns whether the app should see it.
    pub(crate) fn on_event(&mut self, event: &Event) -> bool {
        match event {
            Event::ReceiveNewInvitation(info) => {
                let room = info.invitation.room_id.clone();
                self.rooms.insert(room, info.clone()).is_none()
            }
            Event::InvitationCancelled(info)
            | Event::InvitationTimeout(info)
            | Event::InviteeAcceptedByOtherDevice(info)
            | Event::InviteeRejectedByOtherDevice(info) => {
                self.rooms.remove(&info.invitation.room_id);
                true
            }
            _ => true,
        }
    }

    /// Applies the reply to this device's own `signalingAccept` / `signalingReject`
    /// for `room_id`: `Ok` or the server's error code.
    pub(crate) fn on_answer_reply(&mut self, room_id: &str, reply: Result<(), ErrCode>) {
        // Success settles it; so do the errors that say it no longer rings (answered
        // elsewhere, over, unknown). Other errors (bad args, rate limit, internal)
        // leave it ringing: the app may try again.
        let settled = match reply {
            Ok(()) => true,
            Err(code) => matches!(
                code,
                ErrCode::AlreadyAnswered | ErrCode::NotRinging | ErrCode::NotFound
            ),
        };
        if settled {
            self.rooms.remove(room_id);
        }
    }

    /// Replaces the view with a login reply's `pendingInvitations` and returns the
    /// events that bring the app up to date, in order: every invitation that stopped
    /// ringing while away (as `onInvitationCancelled`, last known payload, stamped with
    /// `server_time`), then every new one (as `onReceiveNewInvitation`).
    pub(crate) fn resync(&mut self, pending: &[SignalingInfo], server_time: i64) -> Vec<Event> {
        let mut now: BTreeMap<String, SignalingInfo> = BTreeMap::new();
        for info in pending {
            now.insert(info.invitation.room_id.clone(), info.clone());
        }
        let mut out = Vec::new();
        for (room, info) in &self.rooms {
            if !now.contains_key(room) {
                let mut info = info.clone();
                info.event_time = server_time;
                out.push(Event::InvitationCancelled(info));
            }
        }
        for (room, info) in &now {
            if !self.rooms.contains_key(room) {
                out.push(Event::ReceiveNewInvitation(info.clone()));
            }
        }
        self.rooms = now;
        out
    }

    /// The invitations ringing now, ordered by roomID.
    pub(crate) fn invitations(&self) -> Vec<SignalingInfo> {
        self.rooms.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tincan_protocol::{Invitation, UserId};

    fn info(room: &str) -> SignalingInfo {
        let alice = UserId::new("alice").unwrap();
        SignalingInfo {
            invitation: Invitation {
                inviter_user_id: "alice".into(),
                invitee_user_id_list: vec![UserId::new("bob").unwrap()],
                room_id: room.into(),
                session_type: 1,
                ..Invitation::default()
            },
            op_user_id: alice.clone(),
            user_id: alice,
            op_user_platform_id: 7,
            participant: None,
            offline_push_info: None,
            event_time: 1000,
        }
    }

    fn rooms(r: &Ringing) -> Vec<String> {
        r.invitations()
            .into_iter()
            .map(|i| i.invitation.room_id)
            .collect()
    }

    fn names(events: &[Event]) -> Vec<(String, &'static str)> {
        events
            .iter()
            .map(|e| match e {
                Event::ReceiveNewInvitation(i) | Event::InvitationCancelled(i) => {
                    (i.invitation.room_id.clone(), e.name())
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_repeated_invitation_is_delivered_once() {
        let mut r = Ringing::default();
        assert!(r.on_event(&Event::ReceiveNewInvitation(info("r1"))));
        assert!(!r.on_event(&Event::ReceiveNewInvitation(info("r1"))));
        assert!(r.on_event(&Event::ReceiveNewInvitation(info("r2"))));
        assert_eq!(rooms(&r), ["r1", "r2"]);
    }

    #[test]
    fn ending_events_stop_ringing_and_are_always_delivered() {
        for end in [
            Event::InvitationCancelled as fn(SignalingInfo) -> Event,
            Event::InvitationTimeout,
            Event::InviteeAcceptedByOtherDevice,
            Event::InviteeRejectedByOtherDevice,
        ] {
            let mut r = Ringing::default();
            r.on_event(&Event::ReceiveNewInvitation(info("r1")));
            assert!(r.on_event(&end(info("r1"))));
            assert!(rooms(&r).is_empty());
            // For a room that never rang here (the inviter's timeout): still delivered.
            assert!(r.on_event(&end(info("other"))));
        }
    }

    #[test]
    fn an_invitation_may_ring_again_after_it_ended() {
        let mut r = Ringing::default();
        r.on_event(&Event::ReceiveNewInvitation(info("r1")));
        r.on_event(&Event::InvitationTimeout(info("r1")));
        assert!(r.on_event(&Event::ReceiveNewInvitation(info("r1"))));
    }

    #[test]
    fn other_events_pass_through_untouched() {
        let mut r = Ringing::default();
        r.on_event(&Event::ReceiveNewInvitation(info("r1")));
        assert!(r.on_event(&Event::HangUp(info("r1"))));
        assert!(r.on_event(&Event::InviteeAccepted(info("r1"))));
        assert_eq!(rooms(&r), ["r1"]);
    }

    #[test]
    fn own_answer_settles_on_success_or_when_no_longer_ringing() {
        let mut r = Ringing::default();
        for room in ["a", "b", "c", "d", "e"] {
            r.on_event(&Event::ReceiveNewInvitation(info(room)));
        }
        r.on_answer_reply("a", Ok(()));
        r.on_answer_reply("b", Err(ErrCode::AlreadyAnswered));
        r.on_answer_reply("c", Err(ErrCode::NotRinging));
        r.on_answer_reply("d", Err(ErrCode::RateLimited));
        r.on_answer_reply("e", Err(ErrCode::Internal));
        assert_eq!(rooms(&r), ["d", "e"]);
    }

    #[test]
    fn first_login_delivers_every_pending_invitation() {
        let mut r = Ringing::default();
        let out = r.resync(&[info("r2"), info("r1")], 5000);
        assert_eq!(
            names(&out),
            [
                ("r1".to_owned(), "onReceiveNewInvitation"),
                ("r2".to_owned(), "onReceiveNewInvitation")
            ]
        );
        // The server's own re-sent events for them are then dropped.
        assert!(!r.on_event(&Event::ReceiveNewInvitation(info("r1"))));
        assert!(!r.on_event(&Event::ReceiveNewInvitation(info("r2"))));
    }

    #[test]
    fn resync_keeps_still_pending_and_drops_their_repeats() {
        let mut r = Ringing::default();
        r.on_event(&Event::ReceiveNewInvitation(info("r1")));
        let out = r.resync(&[info("r1")], 5000);
        assert!(out.is_empty(), "{out:?}");
        assert!(!r.on_event(&Event::ReceiveNewInvitation(info("r1"))));
    }

    #[test]
    fn resync_cancels_invitations_that_ended_while_away() {
        let mut r = Ringing::default();
        r.on_event(&Event::ReceiveNewInvitation(info("gone")));
        r.on_event(&Event::ReceiveNewInvitation(info("kept")));
        let out = r.resync(&[info("kept"), info("new")], 5000);
        assert_eq!(
            names(&out),
            [
                ("gone".to_owned(), "onInvitationCancelled"),
                ("new".to_owned(), "onReceiveNewInvitation")
            ]
        );
        let Event::InvitationCancelled(cancelled) = &out[0] else {
            unreachable!()
        };
        assert_eq!(cancelled.event_time, 5000, "stamped with the server's time");
        assert_eq!(
            cancelled.invitation.inviter_user_id, "alice",
            "last known payload"
        );
        assert_eq!(rooms(&r), ["kept", "new"]);
    }

    #[test]
    fn an_invitation_answered_before_the_drop_is_not_cancelled_on_resync() {
        let mut r = Ringing::default();
        r.on_event(&Event::ReceiveNewInvitation(info("r1")));
        r.on_answer_reply("r1", Ok(()));
        assert!(r.resync(&[], 5000).is_empty());
    }
}
