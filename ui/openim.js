// @ts-check
// OpenIM's JS call shape on top of Tincan's Tauri commands and events, so code written
// for OpenIM's SDK runs as is:
//
//   openIM.signalingInvite(operationID, options, ({ errCode, errMsg, data }) => { … });
//   const res = await openIM.signalingInvite(operationID, options); // same object
//   globalEvent.on('onReceiveNewInvitation', (data) => { … });
//
// Every API resolves (never rejects) with {errCode, errMsg, data}; errCode 0 is success.
// As in the seed, the six signaling calls' `data` is a string (JSON: the AV config for
// invite and accept, `{}` for the others); `tincan.signalingInvite(…)` and the rest are the
// same API with `data` as objects.
// Event listeners receive the OpenIM payload. Besides OpenIM's callbacks there is
// 'connectionStateChanged' ({state: 'connected'|'serverRestarting'|'reconnecting'|'resynced'|'closed', …}) and
// 'callStateChanged' (this device's call: {phase, roomID, peerUserIDs, end?, …}; the one
// judge of when a call starts and ends, however it was placed or answered).
// Types: openim.d.ts (what this module exports and puts on `window`).
//
// An ES module: the window's own code imports `tincan` and `globalEvent`. The facade is
// also global on purpose (the end of this file), for pages and scripts written against
// OpenIM's SDK, which use `openIM`, `globalEvent`, `SessionType` and `CbEvents` without
// importing anything (the seed's examples do).

/** @typedef {import('./openim').TincanApi} TincanApi */
/** @typedef {import('./openim').OpenIM} OpenIM */
/** @typedef {import('./openim').GlobalEvent} GlobalEvent */
/** @typedef {import('./openim').EventName} EventName */
/** @typedef {import('./openim').WsResponse<any>} AnyResponse */

const tauri = window.__TAURI__;

const SessionType = Object.freeze({ Single: 1, Group: 2, SuperGroup: 3 });
const Platform = Object.freeze({
  iOS: 1, Android: 2, Windows: 3, OSX: 4, Web: 5, MiniWeb: 6, Linux: 7, AndroidPad: 8, iPad: 9,
});

/** @type {readonly (keyof import('./openim').EventPayloads)[]} */
const EVENTS = Object.freeze([
  'onReceiveNewInvitation',
  'onInviteeAccepted',
  'onInviteeAcceptedByOtherDevice',
  'onInviteeRejected',
  'onInviteeRejectedByOtherDevice',
  'onInvitationCancelled',
  'onInvitationTimeout',
  'onHangUp',
  'onRoomParticipantConnected',
  'onRoomParticipantDisconnected',
  'onReceiveCustomSignal',
  'onKickedOffline',
  'onPresenceChanged',
  'connectionStateChanged',
  'callStateChanged',
]);

// A local error in the OpenIM shape (never reached the backend): 10002 (ArgsError) when
// the arguments did not fit the command, else 10006 (SdkInternal).
/** @param {string} errMsg @returns {AnyResponse} */
function localError(errMsg) {
  const args = /invalid args|missing required key|invalid type/i.test(errMsg);
  return { errCode: args ? 10002 : 10006, errMsg, data: null };
}

function newOperationID() {
  if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
  return `op-${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

// The six signaling calls of the seed (the OpenIM API page this app implements) type
// their callback's `data` as a string: the AV config as JSON for invite and accept, and
// OpenIM's web SDK passes a JSON string for the others too. `openIM` does the same;
// `tincan` (the same calls) hands the objects, for code that wants them (the window's own).
const SEED_STRING_DATA = new Set([
  'signaling_invite',
  'signaling_invite_in_group',
  'signaling_accept',
  'signaling_reject',
  'signaling_cancel',
  'signaling_hung_up',
]);

// Invokes a command and hands its {errCode, errMsg, data} to `callback` and the promise;
// `stringData`: a seed call's successful `data` as a JSON string.
/**
 * @param {string} command
 * @param {Record<string, unknown>} args
 * @param {((result: AnyResponse) => void) | undefined} callback
 * @param {boolean} stringData
 * @returns {Promise<AnyResponse>}
 */
function invoke(command, args, callback, stringData) {
  /** @param {AnyResponse} r */
  const asSeed = (r) =>
    stringData && r.errCode === 0 && SEED_STRING_DATA.has(command) && typeof r.data !== 'string'
      ? { ...r, data: JSON.stringify(r.data === undefined || r.data === null ? {} : r.data) }
      : r;
  /** @param {AnyResponse} result */
  const done = (result) => {
    if (typeof callback === 'function') {
      try {
        callback(result);
      } catch (e) {
        console.error(`callback of ${command} threw`, e);
      }
    }
    return result;
  };
  if (!tauri) return Promise.resolve(done(localError('not running inside the Tincan app')));
  return tauri.core
    .invoke(command, args)
    .then((r) => (r && typeof r.errCode === 'number' ? r : { errCode: 0, errMsg: '', data: r }))
    .catch((e) => localError(String(e)))
    .then(asSeed)
    .then(done);
}

// OpenIM passes the RtcInvite's fields at the top level for invites; the backend
// wants {invitation: {…}}. Accept both.
/** @param {import('./openim').InviteOptions | undefined} options */
function inviteOptions(options) {
  options = options || {};
  if (/** @type {{ invitation?: unknown }} */ (options).invitation) return options;
  const { offlinePushInfo, ...invitation } = /** @type {Partial<import('./openim').RtcInvite> & { offlinePushInfo?: import('./openim').OfflinePushInfo }} */ (options);
  return offlinePushInfo ? { invitation, offlinePushInfo } : { invitation };
}

/** @param {string | undefined} operationID */
const op = (operationID) => operationID || newOperationID();

/**
 * The API, with the seed's string `data` (`stringData`) or objects. Typed as TincanApi;
 * with `stringData` the six signaling calls hand strings instead (OpenIM, openim.d.ts).
 * @param {boolean} stringData
 * @returns {TincanApi}
 */
const facade = (stringData) => {
  /**
   * @param {string} command
   * @param {Record<string, unknown>} args
   * @param {((result: any) => void) | undefined} callback
   */
  const call = (command, args, callback) => invoke(command, args, callback, stringData);
  return {
    signalingInvite: (operationID, options, callback) =>
      call('signaling_invite', { operationId: op(operationID), options: inviteOptions(options) }, callback),
    signalingInviteInGroup: (operationID, options, callback) =>
      call('signaling_invite_in_group', { operationId: op(operationID), options: inviteOptions(options) }, callback),
    signalingAccept: (operationID, options, callback) =>
      call('signaling_accept', { operationId: op(operationID), options }, callback),
    signalingReject: (operationID, options, callback) =>
      call('signaling_reject', { operationId: op(operationID), options }, callback),
    signalingCancel: (operationID, options, callback) =>
      call('signaling_cancel', { operationId: op(operationID), options }, callback),
    signalingHungUp: (operationID, options, callback) =>
      call('signaling_hung_up', { operationId: op(operationID), options }, callback),
    // OpenIM passes a bare groupID / roomID string; {groupID} / {roomID} objects work too.
    signalingGetRoomByGroupID: (operationID, groupID, callback) =>
      call('signaling_get_room_by_group_id', {
        operationId: op(operationID),
        groupId: typeof groupID === 'object' && groupID ? groupID.groupID : groupID,
      }, callback),
    signalingGetTokenByRoomID: (operationID, roomID, callback) =>
      call('signaling_get_token_by_room_id', {
        operationId: op(operationID),
        roomId: typeof roomID === 'object' && roomID ? roomID.roomID : roomID,
      }, callback),
    getSignalingInvitationInfoStartApp: (operationID, callback) =>
      call('get_signaling_invitation_info_start_app', { operationId: op(operationID) }, callback),
    signalingSendCustomSignal: (operationID, options, callback) =>
      call('signaling_send_custom_signal', {
        operationId: op(operationID),
        roomId: options && options.roomID,
        customInfo: options && options.customInfo,
      }, callback),
    getCallHistory: (operationID, options, callback) => {
      if (typeof options === 'function') [options, callback] = [undefined, options];
      return call('get_call_history', { operationId: op(operationID), options: options || null }, callback);
    },
    getContacts: (operationID, callback) =>
      call('get_contacts', { operationId: op(operationID) }, callback),
    // Tincan: follow these users' presence (replaces the list; changes arrive as
    // 'onPresenceChanged'). Subscribe again after a 'resynced' connection state.
    subscribePresence: (operationID, userIDs, callback) =>
      call('subscribe_presence', { operationId: op(operationID), userIds: userIDs || [] }, callback),

    // Account and app calls (Tincan's, same result shape).
    register: (server, userID, password, nickname, callback) =>
      call('register', { server, userId: userID, password, nickname: nickname || null }, callback),
    login: (server, userID, password, callback) =>
      call('sign_in', { server, userId: userID, password }, callback),
    logout: (callback) => call('sign_out', {}, callback),
    startEmbeddedServer: (callback) => call('start_embedded_server', {}, callback),
    // Media of the call in progress (Tincan's): microphone and camera on or off.
    setMicrophone: (on, callback) => call('media_set_mic', { on }, callback),
    setCamera: (on, callback) => call('media_set_camera', { on }, callback),
    // Stops the media of a call the window left without telling the server.
    endMedia: (roomID, callback) => call('media_end', { roomId: roomID }, callback),
    // Sound devices: list them, and choose for the next call ({microphone, speakers}).
    getMediaDevices: (callback) => call('media_devices', {}, callback),
    setMediaDevices: (options, callback) => call('media_set_devices', { options }, callback),
    // Echo cancellation and noise suppression ({echoCancellation, noiseSuppression}), for
    // the call in progress at once and the next ones.
    setAudioProcessing: (options, callback) => call('media_set_processing', { options }, callback),
    // Screen sharing: what can be shared ([{id, name, kind}]), and share one in the call
    // in progress instead of the camera (`id` null: stop, back to the camera).
    getScreens: (callback) => call('media_screens', {}, callback),
    shareScreen: (id, callback) => call('media_share_screen', { id: id || null }, callback),
    // Decoded pictures: `onFrame(ArrayBuffer)` per picture (layout in src-tauri/src/media.rs).
    subscribeFrames: (onFrame, callback) => {
      if (!tauri) return call('media_frames', {}, callback);
      const channel = new tauri.core.Channel();
      channel.onmessage = onFrame;
      return call('media_frames', { channel }, callback);
    },
    session: () => (tauri ? tauri.core.invoke('session') : Promise.resolve(null)),
    appInfo: () => (tauri ? tauri.core.invoke('app_info') : Promise.resolve(null)),
    newOperationID,
    globalEvent,
    SessionType,
    Platform,
    EVENTS,
  };
};

// globalEvent: on / off / once over Tauri's event system, one Tauri listener per name.
/** @type {Map<string, Set<(payload: any) => void>>} */
const handlers = new Map(); // name -> Set<fn>
/** @type {Map<string, Promise<() => void>>} */
const unlisteners = new Map(); // name -> Promise<unlisten>

/** @param {string} name */
function ensureListening(name) {
  if (unlisteners.has(name) || !tauri) return;
  unlisteners.set(
    name,
    tauri.event.listen(name, (event) => {
      for (const fn of Array.from(handlers.get(name) || [])) {
        try {
          fn(event.payload);
        } catch (e) {
          console.error(`listener of ${name} threw`, e);
        }
      }
    }),
  );
}

// Typed as GlobalEvent once addListener / removeListener are set below.
const globalEvent = /** @type {GlobalEvent} */ ({
  on(name, fn) {
    if (!handlers.has(name)) handlers.set(name, new Set());
    handlers.get(name).add(fn);
    ensureListening(name);
    return globalEvent;
  },
  off(name, fn) {
    const set = handlers.get(name);
    if (set) {
      if (fn) set.delete(fn);
      else set.clear();
    }
    return globalEvent;
  },
  once(name, fn) {
    /** @param {any} payload */
    const wrapper = (payload) => {
      globalEvent.off(name, wrapper);
      fn(payload);
    };
    return globalEvent.on(name, wrapper);
  },
  // Resolves when the Tauri listeners for `names` are registered (so no event is missed).
  ready(names = EVENTS) {
    names.forEach(ensureListening);
    return Promise.all(names.map((n) => unlisteners.get(n)).filter(Boolean));
  },
});
globalEvent.addListener = globalEvent.on;
globalEvent.removeListener = globalEvent.off;

// The seed's calls differ from TincanApi only in handing `data` as a string (invoke's
// `stringData`), which openim.d.ts's OpenIM says.
const openIM = /** @type {OpenIM} */ (/** @type {unknown} */ (facade(true)));
const tincan = facade(false);

export { openIM, tincan, globalEvent, SessionType, Platform, EVENTS };

// Globals on purpose (openim.d.ts's `declare global`): the OpenIM facade for pages and
// scripts that do not import it.

window.openIM = openIM;
window.tincan = tincan;
window.globalEvent = globalEvent;
window.SessionType = SessionType;
window.Platform = Platform;
window.CbEvents = Object.freeze(Object.fromEntries(EVENTS.map((n) => [n.replace(/^on/, 'On'), n])));
