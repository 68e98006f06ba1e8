// Types of the window's own state (app.js, call.js, media.js); not an API.
import type { MediaType, PresenceStatus, PublicUserInfo, GroupInfo, RtcInvite, SignalingInfo, SignedIn } from './openim';

/** A far end's tile in the call screen's grid (media.js). */
export interface Tile {
  node: HTMLElement;
  canvas: HTMLCanvasElement;
  state: HTMLElement;
  counter: HTMLElement;
  peer: string;
  mic: boolean;
  camera: boolean;
  screen: boolean;
  frames: number;
  speaking: boolean;
}

/** An answer (kind, payload) that arrived before the invite's reply named the room. */
export type EarlyAnswer = [string, SignalingInfo];

/** The call on screen: ringing out (`outgoing`) or in progress (`in-call`). */
export interface Call {
  kind: 'outgoing' | 'in-call';
  invitees?: string[];
  /** Invitees still ringing. */
  pending: Set<string>;
  media: MediaType;
  groupID: string;
  roomID: string;
  participants: Set<string>;
  invitation?: RtcInvite;
  cancelRequested?: boolean;
  early?: EarlyAnswer[];
  started?: number;
  muted?: boolean;
  cameraOff?: boolean;
  /** The screen shared instead of the camera. */
  sharing?: string | null;
  tiles?: Map<string, Tile>;
}

/** An invitation ringing here, with the room events that overtook the accept's reply. */
export type Incoming = Pick<SignalingInfo, 'invitation' | 'opUserID' | 'userID'> &
  Partial<SignalingInfo> & { early?: [(data: any) => void, any][] };

/** The window's state (app.js's `ui`). */
export interface UiState {
  me: SignedIn | null;
  users: Map<string, PublicUserInfo>;
  groups: Map<string, GroupInfo>;
  /** The screen under the incoming dialog. */
  screen: string;
  call: Call | null;
  incoming: Incoming | null;
  timer: ReturnType<typeof setInterval> | undefined;
  signingOut: boolean;
  codes: Map<string, string>;
  presence: Map<string, PresenceStatus>;
  recent: Map<string, number>;
  search: string;
  focusBeforeDialog?: Element | null;
  deviceNotice?: string;
  audioOnly?: boolean;
}
