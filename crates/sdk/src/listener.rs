//! OpenIM's listener shape (`OnSignalingListener`): one method per callback, as a thin
//! adapter over the event channel.

use tincan_protocol::{
    CustomSignalInfo, Event, KickedInfo, MediaSignalInfo, RoomParticipantInfo, SignalingInfo,
    UserPresence, WireError,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::event::{ConnectionState, SdkEvent};

/// OpenIM's signaling callbacks. Every method has an empty default; implement those you
/// need. Methods run one at a time, in event order, on the listener task: keep them
/// short, and spawn work that waits.
#[allow(unused_variables)]
pub trait SignalingListener: Send + Sync + 'static {
    /// `onReceiveNewInvitation`
    fn on_receive_new_invitation(&self, info: SignalingInfo) {}
    /// `onInviteeAccepted`
    fn on_invitee_accepted(&self, info: SignalingInfo) {}
    /// `onInviteeAcceptedByOtherDevice`
    fn on_invitee_accepted_by_other_device(&self, info: SignalingInfo) {}
    /// `onInviteeRejected`
    fn on_invitee_rejected(&self, info: SignalingInfo) {}
    /// `onInviteeRejectedByOtherDevice`
    fn on_invitee_rejected_by_other_device(&self, info: SignalingInfo) {}
    /// `onInvitationCancelled`
    fn on_invitation_cancelled(&self, info: SignalingInfo) {}
    /// `onInvitationTimeout`
    fn on_invitation_timeout(&self, info: SignalingInfo) {}
    /// `onHangUp`
    fn on_hang_up(&self, info: SignalingInfo) {}
    /// `onRoomParticipantConnected`
    fn on_room_participant_connected(&self, info: RoomParticipantInfo) {}
    /// `onRoomParticipantDisconnected`
    fn on_room_participant_disconnected(&self, info: RoomParticipantInfo) {}
    /// `onReceiveCustomSignal`
    fn on_receive_custom_signal(&self, info: CustomSignalInfo) {}
    /// `onReceiveMediaSignal` (Tincan)
    fn on_receive_media_signal(&self, info: MediaSignalInfo) {}
    /// `onKickedOffline` (OpenIM's connection listener); `on_connection_state` follows
    /// with `Closed`.
    fn on_kicked_offline(&self, info: KickedInfo) {}
    /// `onPresenceChanged` (Tincan): a user followed with
    /// [`crate::Client::subscribe_presence`] went online, into a call or offline.
    fn on_presence_changed(&self, presence: UserPresence) {}
    /// The connection changed state (connected, reconnecting, resynced, closed).
    fn on_connection_state(&self, state: ConnectionState) {}
    /// This device's current call changed (Tincan; see [`crate::CallModel`]).
    fn on_call_state_changed(&self, state: crate::CallState) {}
    /// A signal sent without waiting for its answer failed at the server (Tincan; see
    /// [`crate::SdkEvent::SignalFailed`]).
    fn on_signal_failed(&self, operation_id: String, error: WireError) {}
}

/// Calls the listener method for one event.
pub fn dispatch(listener: &dyn SignalingListener, event: SdkEvent) {
    match event {
        SdkEvent::Connection(state) => listener.on_connection_state(state),
        SdkEvent::CallStateChanged(state) => listener.on_call_state_changed(state),
        SdkEvent::SignalFailed {
            operation_id,
            error,
        } => listener.on_signal_failed(operation_id, error),
        SdkEvent::Signaling(event) => match event {
            Event::ReceiveNewInvitation(i) => listener.on_receive_new_invitation(i),
            Event::InviteeAccepted(i) => listener.on_invitee_accepted(i),
            Event::InviteeAcceptedByOtherDevice(i) => {
                listener.on_invitee_accepted_by_other_device(i)
            }
            Event::InviteeRejected(i) => listener.on_invitee_rejected(i),
            Event::InviteeRejectedByOtherDevice(i) => {
                listener.on_invitee_rejected_by_other_device(i)
            }
            Event::InvitationCancelled(i) => listener.on_invitation_cancelled(i),
            Event::InvitationTimeout(i) => listener.on_invitation_timeout(i),
            Event::HangUp(i) => listener.on_hang_up(i),
            Event::RoomParticipantConnected(i) => listener.on_room_participant_connected(i),
            Event::RoomParticipantDisconnected(i) => listener.on_room_participant_disconnected(i),
            Event::ReceiveCustomSignal(i) => listener.on_receive_custom_signal(i),
            Event::ReceiveMediaSignal(i) => listener.on_receive_media_signal(i),
            Event::KickedOffline(i) => listener.on_kicked_offline(i),
            Event::PresenceChanged(p) => listener.on_presence_changed(p),
            other => tracing::debug!(event = other.name(), "no listener method for event"),
        },
    }
}

/// Feeds every event from `events` to `listener` until the channel ends (after
/// `Connection(Closed)`).
pub fn spawn_listener(
    mut events: mpsc::Receiver<SdkEvent>,
    listener: impl SignalingListener,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            dispatch(&listener, event);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tincan_protocol::{Invitation, RoomId, UserId};

    #[derive(Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl SignalingListener for Recorder {
        fn on_receive_new_invitation(&self, info: SignalingInfo) {
            self.0
                .lock()
                .unwrap()
                .push(format!("invited:{}", info.invitation.room_id));
        }
        fn on_hang_up(&self, info: SignalingInfo) {
            self.0
                .lock()
                .unwrap()
                .push(format!("hangup:{}", info.op_user_id));
        }
        fn on_receive_custom_signal(&self, info: CustomSignalInfo) {
            self.0
                .lock()
                .unwrap()
                .push(format!("custom:{}", info.custom_info));
        }
        fn on_connection_state(&self, state: ConnectionState) {
            self.0.lock().unwrap().push(format!("{state:?}"));
        }
    }

    fn info(room: &str) -> SignalingInfo {
        let bob = UserId::new("bob").unwrap();
        SignalingInfo {
            invitation: Invitation {
                room_id: room.into(),
                ..Invitation::default()
            },
            op_user_id: bob.clone(),
            user_id: bob,
            op_user_platform_id: 7,
            participant: None,
            offline_push_info: None,
            event_time: 1,
        }
    }

    #[test]
    fn dispatch_calls_the_matching_method_and_ignores_the_rest() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = Recorder(log.clone());
        dispatch(&l, SdkEvent::Connection(ConnectionState::Connected));
        dispatch(
            &l,
            SdkEvent::Signaling(Event::ReceiveNewInvitation(info("r1"))),
        );
        dispatch(&l, SdkEvent::Signaling(Event::InviteeAccepted(info("r1"))));
        dispatch(&l, SdkEvent::Signaling(Event::HangUp(info("r1"))));
        dispatch(
            &l,
            SdkEvent::Signaling(Event::ReceiveCustomSignal(CustomSignalInfo {
                room_id: RoomId::new("r1").unwrap(),
                custom_info: "hi".into(),
                op_user_id: UserId::new("bob").unwrap(),
                user_id: UserId::new("bob").unwrap(),
                event_time: 1,
            })),
        );
        assert_eq!(
            *log.lock().unwrap(),
            ["Connected", "invited:r1", "hangup:bob", "custom:hi"]
        );
    }

    #[test]
    fn spawn_listener_delivers_in_order_until_the_channel_ends() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        rt.block_on(async {
            let (tx, rx) = mpsc::channel(4);
            let task = spawn_listener(rx, Recorder(log.clone()));
            tx.send(SdkEvent::Signaling(Event::ReceiveNewInvitation(info("a"))))
                .await
                .unwrap();
            tx.send(SdkEvent::Signaling(Event::ReceiveNewInvitation(info("b"))))
                .await
                .unwrap();
            drop(tx);
            task.await.unwrap();
        });
        assert_eq!(*log.lock().unwrap(), ["invited:a", "invited:b"]);
    }
}
