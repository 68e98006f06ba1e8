//! The client handle: `connect`, and one async method per API call.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tincan_protocol::{
    AcceptReply, ActionParams, ContactsParams, ContactsReply, CustomSignalParams, Empty,
    GroupParams, HistoryParams, HistoryReply, InviteParams, InviteReply, LoginParams, LoginReply,
    MediaSignalParams, PongReply, PresenceReply, Request, RoomByGroupReply, RoomParams,
    SignalingInfo, StartAppReply, SubscribePresenceParams, UserId, CONTACTS_PAGE_MAX,
    PROTOCOL_VERSION,
};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::call::{CallModel, CallState};
use crate::connection::establish;
use crate::driver::{lock, Command, Driver, View, COMMAND_CAPACITY};
use crate::endpoint::Endpoint;
use crate::error::SdkError;
use crate::event::{ConnectionState, SdkEvent};
use crate::options::{ConnectOptions, DeviceInfo};
use crate::ringing::Ringing;

/// Connects to the server at `url` (`http://host:port` or `ws://host:port`), signs in
/// with `token` as `device`, and returns the client and its event channel.
///
/// Returns once signed in; the login reply is [`Client::session`]. Uses
/// [`ConnectOptions::default`]; see [`connect_with`].
pub async fn connect(
    url: &str,
    token: &str,
    device: DeviceInfo,
) -> Result<(Client, mpsc::Receiver<SdkEvent>), SdkError> {
    connect_with(url, token, device, ConnectOptions::default()).await
}

/// [`connect`] with explicit options.
///
/// Errors: [`SdkError::InvalidArgument`] for a bad URL, [`SdkError::Connect`] when the
/// server cannot be reached, [`SdkError::Server`] when it refuses the login (e.g.
/// `TokenExpired`). The first connection is not retried; reconnects are.
pub async fn connect_with(
    url: &str,
    token: &str,
    device: DeviceInfo,
    options: ConnectOptions,
) -> Result<(Client, mpsc::Receiver<SdkEvent>), SdkError> {
    let endpoint = Endpoint::parse(url)?;
    let login = LoginParams {
        token: token.to_owned(),
        device_id: device.device_id.clone(),
        platform_id: device.platform_id,
        protocol_version: PROTOCOL_VERSION,
    };
    let (conn, reply) = establish(&endpoint, &login, &options).await?;

    // The first resync runs here, not in the task, so that `ringing()` and `session()`
    // are current as soon as this returns.
    let mut ringing = Ringing::default();
    let initial = ringing.resync(&reply.pending_invitations, reply.server_time);
    let user_id = reply.user_id.clone();
    let mut call = CallModel::new(user_id.clone(), &reply);
    // `Connected`, the call this device resumes (if any), and the first login's pending
    // invitations, each followed by the call state it leads to.
    let mut first = vec![SdkEvent::Connection(ConnectionState::Connected)];
    if call.state().is_active() {
        first.push(SdkEvent::CallStateChanged(call.state().clone()));
    }
    for event in initial {
        let changes = call.on_event(&event);
        first.push(SdkEvent::Signaling(event));
        first.extend(changes.into_iter().map(SdkEvent::CallStateChanged));
    }
    let view = Arc::new(Mutex::new(View {
        session: reply,
        state: ConnectionState::Connected,
        ringing,
        call,
    }));

    // The first events are on the channel before this returns (those that fit; the
    // driver sends the rest).
    let (event_tx, event_rx) = mpsc::channel(options.event_capacity.max(1));
    let mut backlog = Vec::new();
    for event in first {
        if backlog.is_empty() {
            if let Err(TrySendError::Full(event)) = event_tx.try_send(event) {
                backlog.push(event);
            }
        } else {
            backlog.push(event);
        }
    }
    let (command_tx, command_rx) = mpsc::channel(COMMAND_CAPACITY);
    let request_timeout = options.request_timeout;
    let ca_file = options.ca_file.clone();
    let driver = Driver::new(
        endpoint.clone(),
        login,
        options,
        command_rx,
        event_tx,
        view.clone(),
    );
    tokio::spawn(driver.run(conn, backlog));

    let client = Client {
        inner: Arc::new(Inner {
            commands: command_tx,
            view,
            user_id,
            device,
            endpoint,
            request_timeout,
            ca_file,
        }),
    };
    Ok((client, event_rx))
}

/// A fresh, unique `operationID` for callers that have none of their own.
pub fn new_operation_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A signed-in connection to a Tincan server. Cheap to clone; every clone talks
/// through the same connection. When the last clone is dropped the connection closes.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::Sender<Command>,
    view: Arc<Mutex<View>>,
    user_id: UserId,
    device: DeviceInfo,
    endpoint: Endpoint,
    request_timeout: Duration,
    /// From the options: TLS elsewhere trusts what the connection trusts.
    ca_file: Option<std::path::PathBuf>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("user_id", &self.inner.user_id)
            .field("device", &self.inner.device)
            .field("endpoint", &self.inner.endpoint)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// The signed-in user.
    pub fn user_id(&self) -> &UserId {
        &self.inner.user_id
    }

    /// This device.
    pub fn device(&self) -> &DeviceInfo {
        &self.inner.device
    }

    /// TLS client settings trusting what this client's own connection trusts: the
    /// system's root certificates and the CA file of its options. For other servers
    /// the same deployment runs, such as `turns:` TURN servers (the media layer).
    pub fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, SdkError> {
        crate::tls::client_config(self.inner.ca_file.as_deref())
    }

    /// The server's addresses.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// The latest login reply (updated on every reconnect): server time at login,
    /// `current_call`, `pending_invitations`.
    pub fn session(&self) -> LoginReply {
        lock(&self.inner.view).session.clone()
    }

    /// The connection's state now (the events on the channel may lag behind it).
    pub fn connection_state(&self) -> ConnectionState {
        lock(&self.inner.view).state.clone()
    }

    /// The invitations ringing on this device now, by roomID, as the SDK's local view
    /// has them (see the crate docs).
    pub fn ringing(&self) -> Vec<SignalingInfo> {
        lock(&self.inner.view).ringing.invitations()
    }

    /// This device's current call now (the events on the channel may lag behind it).
    pub fn call_state(&self) -> CallState {
        lock(&self.inner.view).call.state().clone()
    }

    /// Closes the connection gracefully and stops reconnecting. Returns once the
    /// driver has stopped and `Connection(Closed)` is on the event channel. Requests
    /// still waiting fail with [`SdkError::Closed`]. Closing twice is harmless.
    pub async fn close(&self) {
        let (done, stopped) = oneshot::channel();
        if self
            .inner
            .commands
            .send(Command::Close { done })
            .await
            .is_ok()
        {
            // The driver drops or answers `done` when it stops; either wakes us.
            let _ = stopped.await;
        }
    }

    /// Sends any request but `login` and returns the reply's raw `data`. The typed
    /// methods below use this; so can apps that forward JSON (the Tauri app).
    pub async fn call_raw(
        &self,
        operation_id: &str,
        request: Request,
    ) -> Result<Box<RawValue>, SdkError> {
        if matches!(request, Request::Login(_)) {
            return Err(SdkError::InvalidArgument(
                "login is sent by connect(); a connection signs in once".into(),
            ));
        }
        self.exchange(operation_id, request, false).await
    }

    /// Sends `request` to the driver and waits (at most the request timeout) for its
    /// answer: the server's reply, or for an `unanswered` one, the moment it is written.
    async fn exchange(
        &self,
        operation_id: &str,
        request: Request,
        unanswered: bool,
    ) -> Result<Box<RawValue>, SdkError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Request {
            operation_id: operation_id.to_owned(),
            request: Box::new(request),
            unanswered,
            reply,
        };
        let exchange = async {
            self.inner
                .commands
                .send(command)
                .await
                .map_err(|_| SdkError::Closed)?;
            // A dropped sender means the driver stopped without answering.
            answer.await.map_err(|_| SdkError::Closed)?
        };
        tokio::time::timeout(self.inner.request_timeout, exchange)
            .await
            .map_err(|_| SdkError::Timeout)?
    }

    async fn call<T: DeserializeOwned>(
        &self,
        operation_id: &str,
        request: Request,
    ) -> Result<T, SdkError> {
        let method = request.method();
        let raw = self.call_raw(operation_id, request).await?;
        serde_json::from_str(raw.get())
            .map_err(|e| SdkError::Protocol(format!("{method} reply: {e}: {}", raw.get())))
    }

    /// `signalingInvite`: rings the invitees of a one-to-one call. Leave
    /// `invitation.roomID` empty to have the server make a room.
    pub async fn signaling_invite(
        &self,
        operation_id: &str,
        params: InviteParams,
    ) -> Result<InviteReply, SdkError> {
        self.call(operation_id, Request::Invite(params)).await
    }

    /// `signalingInviteInGroup`: rings members of `invitation.groupID`.
    pub async fn signaling_invite_in_group(
        &self,
        operation_id: &str,
        params: InviteParams,
    ) -> Result<InviteReply, SdkError> {
        self.call(operation_id, Request::InviteInGroup(params))
            .await
    }

    /// `signalingAccept`: answers an invitation ringing on this device.
    pub async fn signaling_accept(
        &self,
        operation_id: &str,
        params: ActionParams,
    ) -> Result<AcceptReply, SdkError> {
        self.call(operation_id, Request::Accept(params)).await
    }

    /// `signalingReject`: declines an invitation ringing on this device.
    pub async fn signaling_reject(
        &self,
        operation_id: &str,
        params: ActionParams,
    ) -> Result<Empty, SdkError> {
        self.call(operation_id, Request::Reject(params)).await
    }

    /// `signalingCancel`: withdraws this user's invitation while someone still rings.
    pub async fn signaling_cancel(
        &self,
        operation_id: &str,
        params: ActionParams,
    ) -> Result<Empty, SdkError> {
        self.call(operation_id, Request::Cancel(params)).await
    }

    /// `signalingHungUp`: leaves the call.
    pub async fn signaling_hung_up(
        &self,
        operation_id: &str,
        params: ActionParams,
    ) -> Result<Empty, SdkError> {
        self.call(operation_id, Request::HungUp(params)).await
    }

    /// `signalingGetRoomByGroupID`: the group's call in progress, if any.
    pub async fn signaling_get_room_by_group_id(
        &self,
        operation_id: &str,
        params: GroupParams,
    ) -> Result<RoomByGroupReply, SdkError> {
        self.call(operation_id, Request::GetRoomByGroupId(params))
            .await
    }

    /// `signalingGetTokenByRoomID`: joins a group call in progress.
    pub async fn signaling_get_token_by_room_id(
        &self,
        operation_id: &str,
        params: RoomParams,
    ) -> Result<AcceptReply, SdkError> {
        self.call(operation_id, Request::GetTokenByRoomId(params))
            .await
    }

    /// `getSignalingInvitationInfoStartApp`: the newest invitation ringing for this
    /// user, for an app that starts up.
    pub async fn get_signaling_invitation_info_start_app(
        &self,
        operation_id: &str,
    ) -> Result<StartAppReply, SdkError> {
        self.call(operation_id, Request::GetInvitationInfoStartApp)
            .await
    }

    /// `signalingSendCustomSignal`: delivers `customInfo` to the room's other
    /// participants (`onReceiveCustomSignal`).
    pub async fn signaling_send_custom_signal(
        &self,
        operation_id: &str,
        params: CustomSignalParams,
    ) -> Result<Empty, SdkError> {
        self.call(operation_id, Request::SendCustomSignal(params))
            .await
    }

    /// `signalingSendMediaSignal`: relays one SDP or ICE message to a participant of
    /// the same room (`onReceiveMediaSignal`).
    pub async fn signaling_send_media_signal(
        &self,
        operation_id: &str,
        params: MediaSignalParams,
    ) -> Result<Empty, SdkError> {
        self.call(operation_id, Request::SendMediaSignal(params))
            .await
    }

    /// [`Client::signaling_send_custom_signal`] without waiting for the server: the
    /// signal is sent with `noReplyOnSuccess` (docs/protocol.md), and this returns once
    /// it is written to the connection. The server answers only a failure, which arrives
    /// as [`crate::SdkEvent::SignalFailed`] with this `operation_id`. For signals sent
    /// often and not worth a round trip each (cursor positions, live reactions): it
    /// saves the server a write and this client a frame per signal. Fails with
    /// `Disconnected` while there is no connection, as any request.
    pub async fn signaling_send_custom_signal_unanswered(
        &self,
        operation_id: &str,
        params: CustomSignalParams,
    ) -> Result<(), SdkError> {
        self.exchange(operation_id, Request::SendCustomSignal(params), true)
            .await
            .map(drop)
    }

    /// [`Client::signaling_send_media_signal`] without waiting for the server, as
    /// [`Client::signaling_send_custom_signal_unanswered`].
    pub async fn signaling_send_media_signal_unanswered(
        &self,
        operation_id: &str,
        params: MediaSignalParams,
    ) -> Result<(), SdkError> {
        self.exchange(operation_id, Request::SendMediaSignal(params), true)
            .await
            .map(drop)
    }

    /// `getCallHistory`: this user's calls, newest first.
    pub async fn get_call_history(
        &self,
        operation_id: &str,
        params: HistoryParams,
    ) -> Result<HistoryReply, SdkError> {
        self.call(operation_id, Request::GetCallHistory(params))
            .await
    }

    /// `getContacts`, every page: the other users and this user's groups. For servers
    /// with many users, [`Client::get_contacts_page`] fetches one page at a time.
    pub async fn get_contacts(&self, operation_id: &str) -> Result<ContactsReply, SdkError> {
        let mut all = self
            .get_contacts_page(operation_id, ContactsParams::default())
            .await?;
        // Bounded: each page must move the cursor forward, so a server that repeats
        // itself cannot keep us here.
        let mut cursor = all.next_cursor.take();
        while let Some(after) = cursor {
            let page = self
                .get_contacts_page(
                    operation_id,
                    ContactsParams {
                        after: Some(after.clone()),
                        count: Some(CONTACTS_PAGE_MAX),
                    },
                )
                .await?;
            all.users.extend(page.users);
            cursor = page.next_cursor.filter(|next| *next > after);
        }
        all.has_more = false;
        Ok(all)
    }

    /// `getContacts`: one page of the other users (sorted by userID; the first page
    /// also carries this user's groups). Ask for the next with `after: nextCursor`.
    pub async fn get_contacts_page(
        &self,
        operation_id: &str,
        params: ContactsParams,
    ) -> Result<ContactsReply, SdkError> {
        self.call(operation_id, Request::GetContacts(params)).await
    }

    /// `subscribePresence`: follow these users' presence on this connection (replacing
    /// the list followed before; empty: follow nobody). Returns their status now; each
    /// change after that arrives as `onPresenceChanged`. The list belongs to the
    /// connection: after `Resynced`, subscribe again. At most
    /// [`tincan_protocol::MAX_PRESENCE_WATCH`] users.
    pub async fn subscribe_presence(
        &self,
        operation_id: &str,
        user_ids: Vec<UserId>,
    ) -> Result<PresenceReply, SdkError> {
        self.call(
            operation_id,
            Request::SubscribePresence(SubscribePresenceParams {
                user_id_list: user_ids,
            }),
        )
        .await
    }

    /// `ping`: a round trip; returns the server's clock.
    pub async fn ping(&self, operation_id: &str) -> Result<PongReply, SdkError> {
        self.call(operation_id, Request::Ping).await
    }
}
