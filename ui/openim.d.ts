// Types for ui/openim.js: OpenIM's signaling API as Tincan's desktop app offers it.
// Wire names are OpenIM's (docs/protocol.md is the contract).

export declare const SessionType: { readonly Single: 1; readonly Group: 2; readonly SuperGroup: 3 };
/** OpenIM's platform IDs (the app says Linux, 7). */
export declare const Platform: {
  readonly iOS: 1; readonly Android: 2; readonly Windows: 3; readonly OSX: 4; readonly Web: 5;
  readonly MiniWeb: 6; readonly Linux: 7; readonly AndroidPad: 8; readonly iPad: 9;
};
export type SessionTypeValue = 1 | 2 | 3;
export type MediaType = 'audio' | 'video';

/** Every API call's result. errCode 0 is success. */
export interface WsResponse<T = unknown> {
  errCode: number;
  errMsg: string;
  data: T;
}
export type Callback<T> = (result: WsResponse<T>) => void;

/** OpenIM's RtcInvite / InvitationInfo. */
export interface RtcInvite {
  inviterUserID: string;
  inviteeUserIDList: string[];
  groupID: string;
  roomID: string;
  timeout: number;
  mediaType: MediaType;
  sessionType: SessionTypeValue;
  platformID: number;
  customData?: string;
  initiateTime?: number;
  busyLineUserIDList?: string[];
}

export interface OfflinePushInfo {
  title?: string;
  desc?: string;
  ex?: string;
  iOSPushSound?: string;
  iOSBadgeCount?: boolean;
}

/** signalingInvite / signalingInviteInGroup options: wrapped, or a bare RtcInvite. */
export type InviteOptions = { invitation: Partial<RtcInvite>; offlinePushInfo?: OfflinePushInfo } | Partial<RtcInvite>;

/** signalingAccept / Reject / Cancel / HungUp options (RtcActionParams). */
export interface RtcActionParams {
  opUserID: string;
  invitation: Partial<RtcInvite> & { roomID: string };
}

export interface IceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

/** signalingInvite reply ("AV service connection config"). */
export interface InviteReply {
  roomID: string;
  token: string;
  liveURL: string;
  busyLineUserIDList: string[];
  iceServers: IceServer[];
}

/** signalingAccept / signalingGetTokenByRoomID reply. */
export interface AcceptReply {
  roomID: string;
  token: string;
  liveURL: string;
  iceServers: IceServer[];
}

export interface PublicUserInfo {
  userID: string;
  nickname: string;
  faceURL?: string;
}

export interface GroupInfo {
  groupID: string;
  groupName: string;
  memberUserIDList?: string[];
}

export interface ParticipantMetaData {
  userInfo: PublicUserInfo;
  groupInfo?: GroupInfo;
}

export interface RoomByGroupReply {
  invitation?: RtcInvite;
  participant: ParticipantMetaData[];
  roomID: string;
}

export interface StartAppReply {
  invitation?: RtcInvite;
  offlinePushInfo?: OfflinePushInfo;
}

export type InviteeOutcome = 'ringing' | 'accepted' | 'rejected' | 'timedOut' | 'cancelled' | 'busy' | 'answeredElsewhere';
export type EndReason = 'hungUp' | 'cancelled' | 'rejected' | 'timeout' | 'busy' | 'disconnected' | 'serverShutdown';

export interface CallRecord {
  roomID: string;
  inviterUserID: string;
  groupID: string;
  mediaType: MediaType;
  sessionType: SessionTypeValue;
  invitees: { userID: string; outcome: InviteeOutcome; answerTime?: number }[];
  participantUserIDList: string[];
  initiateTime: number;
  answerTime?: number;
  endTime: number;
  endReason: EndReason;
}

export interface HistoryReply {
  records: CallRecord[];
}

/** Tincan: a user's presence, as `subscribePresence` and `onPresenceChanged` give it. */
export type PresenceStatus = 'online' | 'inCall' | 'offline';
export interface UserPresence {
  userID: string;
  status: PresenceStatus;
}
export interface PresenceReply {
  presence: UserPresence[];
}

export interface ContactsReply {
  users: PublicUserInfo[];
  groups: GroupInfo[];
}

/** Payload of every invitation callback. */
export interface SignalingInfo {
  invitation: RtcInvite;
  opUserID: string;
  userID: string;
  opUserPlatformID: number;
  participant?: ParticipantMetaData;
  offlinePushInfo?: OfflinePushInfo;
  eventTime: number;
}

export interface RoomParticipantInfo {
  invitation: RtcInvite;
  groupID: string;
  participant: ParticipantMetaData[];
  opUserID: string;
  userID: string;
  eventTime: number;
}

export interface CustomSignalInfo {
  roomID: string;
  customInfo: string;
  opUserID: string;
  userID: string;
  eventTime: number;
}

export type ConnectionState =
  | { state: 'connected' }
  /** The server said it is restarting (close 1012); `reconnecting` follows. Calls go on. */
  | { state: 'serverRestarting' }
  | { state: 'reconnecting'; attempt: number; reason: string }
  | { state: 'resynced'; login: unknown }
  | { state: 'closed'; reason: { kind: 'clientClosed' | 'kickedOffline' | 'loginRefused' | 'connectionLost' | 'signedOut'; message: string } };

/** Tincan: the SDK's model of this device's current call (one judge of "is my call over"). */
export type CallPhase = 'idle' | 'ringingOut' | 'ringingIn' | 'connecting' | 'inCall' | 'ended';
export type CallEndReason =
  | 'hungUp' | 'remoteHungUp' | 'cancelled' | 'remoteCancelled' | 'declined' | 'remoteDeclined'
  | 'noAnswer' | 'missed' | 'answeredElsewhere' | 'declinedElsewhere' | 'busy' | 'refused'
  | 'connectionLost' | 'signedInElsewhere' | 'clientClosed';
export interface CallState {
  phase: CallPhase;
  direction?: 'outgoing' | 'incoming';
  roomID: string;
  invitation?: RtcInvite;
  /** The other participants connected, as far as this device has been told. */
  peerUserIDs: string[];
  /** Our call: invitees still ringing. */
  ringingUserIDs: string[];
  end?: { reason: CallEndReason; byUserID?: string; error?: { errCode: number; errMsg: string } };
}

export interface EventPayloads {
  onReceiveNewInvitation: SignalingInfo;
  onInviteeAccepted: SignalingInfo;
  onInviteeAcceptedByOtherDevice: SignalingInfo;
  onInviteeRejected: SignalingInfo;
  onInviteeRejectedByOtherDevice: SignalingInfo;
  onInvitationCancelled: SignalingInfo;
  onInvitationTimeout: SignalingInfo;
  onHangUp: SignalingInfo;
  onRoomParticipantConnected: RoomParticipantInfo;
  onRoomParticipantDisconnected: RoomParticipantInfo;
  onReceiveCustomSignal: CustomSignalInfo;
  onKickedOffline: { reason: string };
  onPresenceChanged: UserPresence;
  connectionStateChanged: ConnectionState;
  callStateChanged: CallState;
}

/** Tincan's media quality figures of one connection (crates/media/src/event.rs). */
export interface MediaQuality {
  rttMs: number;
  loss: number;
  kbpsIn: number;
  kbpsOut: number;
  fpsIn: number;
  /** 'direct' or 'relay'. */
  path: string;
  targetKbps: number;
  freezes: number;
  frozenMs: number;
}

/** Tincan's media events (src-tauri/src/events.rs), through the same globalEvent. */
export interface MediaEventPayloads {
  mediaPeerState: { userID: string; state: 'connecting' | 'connected' | 'disconnected' | 'failed' | 'closed' };
  mediaRemoteState: { userID: string; mic: boolean; camera: boolean; screen?: boolean };
  mediaQuality: { userID: string; quality: MediaQuality };
  mediaFailed: { userID: string; reason: string };
  mediaEnded: unknown;
  mediaDeviceUnavailable: { device: 'microphone' | 'speakers' | 'camera' | 'screen'; reason: string };
  mediaAudioOnly: { on: boolean; targetKbps: number };
  mediaVerification: { userID: string; code: string };
  mediaAudioLevel: { userID: string; dbfs: number };
}

/** Every event globalEvent delivers: OpenIM's, Tincan's state events and the media events. */
export type AllEventPayloads = EventPayloads & MediaEventPayloads;
export type EventName = keyof AllEventPayloads;

export interface GlobalEvent {
  on<K extends EventName>(name: K, fn: (data: AllEventPayloads[K]) => void): GlobalEvent;
  off<K extends EventName>(name: K, fn?: (data: AllEventPayloads[K]) => void): GlobalEvent;
  once<K extends EventName>(name: K, fn: (data: AllEventPayloads[K]) => void): GlobalEvent;
  /** OpenIM's aliases of on / off. */
  addListener: GlobalEvent['on'];
  removeListener: GlobalEvent['off'];
  /** Resolves when the listeners are registered with Tauri. */
  ready(names?: readonly EventName[]): Promise<unknown>;
}

/** Tincan's app calls: sound devices and the camera (`media_devices`). */
export interface MediaDeviceList {
  microphones: { id: string; name: string }[];
  speakers: { id: string; name: string }[];
  cameras?: { id: string; name: string }[];
}
/** The devices for the next call: an id from MediaDeviceList, or 'default', 'tone' / 'none' / 'pattern'. */
export interface DeviceChoice {
  microphone: string;
  speakers: string;
  camera: string;
}
export interface AudioProcessing {
  echoCancellation: boolean;
  noiseSuppression: boolean;
}
/** What can be shared (`media_screens`). */
export interface ScreenSource {
  id: string;
  name: string;
  kind: string;
}
export interface AppInfo {
  name: string;
  version: string;
  profileDir: string;
  defaultServer?: string | null;
}

export interface CurrentCall {
  invitation: RtcInvite;
  roomID: string;
  token: string;
  liveURL: string;
  iceServers: IceServer[];
  participant: ParticipantMetaData[];
}

export interface SignedIn {
  userID: string;
  server: string;
  deviceID: string;
  /** The call this device was in when it last dropped, if the server kept it. */
  currentCall: CurrentCall | null;
}

/** The API with `data` as objects (window.tincan; the window's own code uses it). */
export interface TincanApi {
  signalingInvite(operationID: string, options: InviteOptions, callback?: Callback<InviteReply>): Promise<WsResponse<InviteReply>>;
  signalingInviteInGroup(operationID: string, options: InviteOptions, callback?: Callback<InviteReply>): Promise<WsResponse<InviteReply>>;
  signalingAccept(operationID: string, options: RtcActionParams, callback?: Callback<AcceptReply>): Promise<WsResponse<AcceptReply>>;
  signalingReject(operationID: string, options: RtcActionParams, callback?: Callback<{}>): Promise<WsResponse<{}>>;
  signalingCancel(operationID: string, options: RtcActionParams, callback?: Callback<{}>): Promise<WsResponse<{}>>;
  signalingHungUp(operationID: string, options: RtcActionParams, callback?: Callback<{}>): Promise<WsResponse<{}>>;
  /** `groupID` as OpenIM passes it, or `{groupID}`. */
  signalingGetRoomByGroupID(operationID: string, groupID: string | { groupID: string }, callback?: Callback<RoomByGroupReply>): Promise<WsResponse<RoomByGroupReply>>;
  /** `roomID` as OpenIM passes it, or `{roomID}`. */
  signalingGetTokenByRoomID(operationID: string, roomID: string | { roomID: string }, callback?: Callback<AcceptReply>): Promise<WsResponse<AcceptReply>>;
  getSignalingInvitationInfoStartApp(operationID: string, callback?: Callback<StartAppReply>): Promise<WsResponse<StartAppReply>>;
  signalingSendCustomSignal(operationID: string, options: { roomID: string; customInfo: string }, callback?: Callback<{}>): Promise<WsResponse<{}>>;
  getCallHistory(operationID: string, options?: { limit?: number; beforeTime?: number }, callback?: Callback<HistoryReply>): Promise<WsResponse<HistoryReply>>;
  getContacts(operationID: string, callback?: Callback<ContactsReply>): Promise<WsResponse<ContactsReply>>;
  /** Tincan: follow these users' presence on this connection (replaces the list; at most 500). */
  subscribePresence(operationID: string, userIDs: string[], callback?: Callback<PresenceReply>): Promise<WsResponse<PresenceReply>>;
  register(server: string, userID: string, password: string, nickname?: string, callback?: Callback<SignedIn>): Promise<WsResponse<SignedIn>>;
  login(server: string, userID: string, password: string, callback?: Callback<SignedIn>): Promise<WsResponse<SignedIn>>;
  logout(callback?: Callback<{}>): Promise<WsResponse<{}>>;
  startEmbeddedServer(callback?: Callback<{ url: string }>): Promise<WsResponse<{ url: string }>>;
  session(): Promise<(SignedIn & { connection: ConnectionState }) | null>;
  newOperationID(): string;
  globalEvent: GlobalEvent;
  SessionType: typeof SessionType;
  Platform: typeof Platform;
  EVENTS: readonly (keyof EventPayloads)[];

  // Tincan's own calls (the window's): the media of the call in progress, devices,
  // screen sharing, decoded pictures, the app's name and version.
  setMicrophone(on: boolean, callback?: Callback<unknown>): Promise<WsResponse<unknown>>;
  setCamera(on: boolean, callback?: Callback<unknown>): Promise<WsResponse<unknown>>;
  endMedia(roomID: string, callback?: Callback<unknown>): Promise<WsResponse<unknown>>;
  getMediaDevices(callback?: Callback<MediaDeviceList>): Promise<WsResponse<MediaDeviceList>>;
  setMediaDevices(options: DeviceChoice, callback?: Callback<unknown>): Promise<WsResponse<unknown>>;
  setAudioProcessing(options: AudioProcessing, callback?: Callback<unknown>): Promise<WsResponse<unknown>>;
  getScreens(callback?: Callback<ScreenSource[]>): Promise<WsResponse<ScreenSource[]>>;
  shareScreen(id: string | null, callback?: Callback<unknown>): Promise<WsResponse<unknown>>;
  /** `onFrame` gets each decoded picture (layout in src-tauri/src/media.rs). */
  subscribeFrames(onFrame: (frame: ArrayBuffer) => void, callback?: Callback<unknown>): Promise<WsResponse<unknown>>;
  appInfo(): Promise<AppInfo | null>;
}

type SeedCalls = 'signalingInvite' | 'signalingInviteInGroup' | 'signalingAccept' | 'signalingReject' | 'signalingCancel' | 'signalingHungUp';

/**
 * The seed's API (window.openIM): as the OpenIM page types it, the six signaling calls'
 * `data` is a string — JSON of the AV config (InviteReply / AcceptReply) for invite and
 * accept, `"{}"` for the others. Everything else as in TincanApi.
 */
export interface OpenIM extends Omit<TincanApi, SeedCalls> {
  signalingInvite(operationID: string, options: InviteOptions, callback?: Callback<string>): Promise<WsResponse<string>>;
  signalingInviteInGroup(operationID: string, options: InviteOptions, callback?: Callback<string>): Promise<WsResponse<string>>;
  signalingAccept(operationID: string, options: RtcActionParams, callback?: Callback<string>): Promise<WsResponse<string>>;
  signalingReject(operationID: string, options: RtcActionParams, callback?: Callback<string>): Promise<WsResponse<string>>;
  signalingCancel(operationID: string, options: RtcActionParams, callback?: Callback<string>): Promise<WsResponse<string>>;
  signalingHungUp(operationID: string, options: RtcActionParams, callback?: Callback<string>): Promise<WsResponse<string>>;
}

/** What the module ui/openim.js exports (the window's own modules import these). */
export declare const openIM: OpenIM;
export declare const tincan: TincanApi;
export declare const globalEvent: GlobalEvent;

type SessionTypes = typeof SessionType;
type Platforms = typeof Platform;

/**
 * Globals on purpose: openim.js also puts the facade on `window`, for pages and scripts
 * written against OpenIM's SDK, which use `openIM`, `globalEvent`, `SessionType` and
 * `CbEvents` without importing anything (the seed's examples do). The window's own
 * modules import them instead.
 */
declare global {
  var openIM: OpenIM;
  var tincan: TincanApi;
  var globalEvent: GlobalEvent;
  var SessionType: SessionTypes;
  var Platform: Platforms;
  /** OpenIM's callback names: `CbEvents.OnReceiveNewInvitation` is 'onReceiveNewInvitation'. */
  var CbEvents: Readonly<Record<string, keyof EventPayloads>>;
}
