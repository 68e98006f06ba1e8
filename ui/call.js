// @ts-check
// Tincan's call screens: placing a call, the incoming dialog, the call itself and group
// calls. An ES module; app.js holds the shared state (`ui`), the helpers (`$`, `el`,
// `explain`, …), sign-in, contacts, history and start-up. app.js, call.js and media.js
// import each other: this file only declares functions and a few variables, which run
// when app.js's events and clicks call them, by which time every module has run.
import { tincan, SessionType, Platform } from './openim.js';
import { $, all, el, explain, groupName, list, loadHistory, mediaWord, nameOf, notice, offerCallBack, ring, setScreen, showError, ui, updateRootState } from './app.js';
import { clearMedia, closePanels, inCall, layoutGrid, placeSelfView, removeTile, resetQuality, tile, toggleCamera, toggleMute, toggleSharing } from './media.js';

// A name in a heading or line that a long name would overflow: cut with an ellipsis
// (style.css `.ellipsis`), the whole of it in the tooltip.
/**
 * @param {string} id
 * @param {string} name
 */
function showName(id, name) {
  const e = $(id);
  e.textContent = name;
  e.title = name;
}

// ---------------------------------------------------------------- outgoing

/**
 * @param {import('./page').Call} call
 * @returns {import('./openim').RtcInvite}
 */
function invitationFor(call) {
  return {
    inviterUserID: ui.me.userID,
    inviteeUserIDList: call.invitees,
    groupID: call.groupID,
    roomID: call.roomID || '',
    timeout: ringTimeout(),
    mediaType: call.media,
    sessionType: call.groupID ? SessionType.Group : SessionType.Single,
    platformID: Platform.Linux,
  };
}

// Seconds an outgoing invitation rings (Settings; 30 like OpenIM's examples).
function ringTimeout() {
  const n = parseInt($('settings-ring-timeout').value, 10);
  return Number.isFinite(n) && n > 0 ? Math.min(n, 600) : 30;
}

/**
 * @param {string[]} invitees
 * @param {import('./openim').MediaType} media
 * @param {string} groupID
 */
export async function startOutgoing(invitees, media, groupID) {
  if (ui.call) return;
  notice('');
  /** @type {import('./page').Call} */
  const call = {
    kind: 'outgoing',
    invitees,
    pending: new Set(invitees),
    media,
    groupID,
    roomID: '',
    participants: new Set([ui.me.userID]),
    cancelRequested: false,
    early: /** @type {import('./page').EarlyAnswer[]} */ ([]), // answers that arrived before the invite's reply named the room
  };
  ui.call = call;
  showName('outgoing-callee', groupID ? `${groupName(groupID)}: ${list(invitees)}` : nameOf(invitees[0]));
  $('outgoing-media').textContent = mediaWord(media);
  $('outgoing-status').textContent = 'Calling…';
  $('outgoing-status').dataset.state = 'calling';
  $('outgoing-cancel').disabled = false;
  setScreen('outgoing');
  $('outgoing-cancel').focus();
  const invite = groupID ? tincan.signalingInviteInGroup : tincan.signalingInvite;
  const res = await invite(tincan.newOperationID(), invitationFor(call));
  // A refusal, everyone busy, or glare (our invite answered their invitation ringing
  // here) is the call model's to decide (onCallState); it may already have.
  if (ui.call !== call || res.errCode !== 0) return;
  call.roomID = res.data.roomID;
  call.invitation = { ...invitationFor(call), roomID: res.data.roomID };
  const busy = res.data.busyLineUserIDList || [];
  busy.forEach((u) => call.pending.delete(u));
  if (call.pending.size === 0) return;
  $('outgoing-status').textContent = busy.length ? `Ringing… (${list(busy)} busy)` : 'Ringing…';
  $('outgoing-status').dataset.state = 'ringing';
  ring.start('outgoing');
  // Answers that overtook the invite's reply (a far end that answers at once).
  for (const [kind, info] of call.early.splice(0)) onInviteeAnswer(kind, info);
  if (ui.call === call && call.cancelRequested) cancelOutgoing();
}

export async function cancelOutgoing() {
  const call = ui.call;
  if (!call || call.kind !== 'outgoing') return;
  if (!call.roomID) {
    call.cancelRequested = true; // the invite has not answered yet
    return;
  }
  $('outgoing-cancel').disabled = true;
  // The call model ends the call as the request leaves (onCallState).
  const res = await tincan.signalingCancel(tincan.newOperationID(), { opUserID: ui.me.userID, invitation: call.invitation });
  if (ui.call !== call) return;
  $('outgoing-cancel').disabled = false;
  if (res.errCode !== 0) $('outgoing-status').textContent = explain(res);
}

// An answer to the call this window placed (or added people to).
/**
 * @param {string} kind
 * @param {import('./openim').SignalingInfo} info
 */
export function onInviteeAnswer(kind, info) {
  const call = ui.call;
  if (call && call.kind === 'outgoing' && !call.roomID) {
    // Events and command replies travel separately: keep it until the reply names the room.
    call.early.push([kind, info]);
    return;
  }
  if (!call || info.invitation.roomID !== call.roomID) return;
  const who = info.opUserID;
  if (call.pending) call.pending.delete(who);
  if (kind === 'accepted') {
    if (call.kind === 'outgoing') enterCall(info.invitation, [who]);
    else addParticipant(who);
    return;
  }
  // When nobody is left to answer, the call model ends the call (onCallState).
  const text = kind === 'rejected' ? `${nameOf(who)} declined the call.` : `${nameOf(who)} did not answer.`;
  if (call.kind === 'outgoing') {
    if (call.pending.size > 0) $('outgoing-status').textContent = `Ringing… ${text}`;
  } else {
    showRinging();
    flash(text);
  }
}

// ---------------------------------------------------------------- incoming

/** @param {import('./page').Incoming} info */
export function showIncoming(info) {
  // One at a time, as the call model has it: another invitation waits, and its
  // callStateChanged (ringingIn) shows it when this one ends.
  if (ui.incoming) return;
  if (ui.call) return; // the server does not ring a busy user; ignore stale duplicates
  ui.incoming = info;
  const inv = info.invitation;
  const caller = info.opUserID || inv.inviterUserID;
  showName('incoming-caller', nameOf(caller));
  $('incoming-caller').dataset.userId = caller;
  $('incoming-media').textContent = mediaWord(inv.mediaType);
  $('incoming-media').dataset.media = inv.mediaType;
  const group = $('incoming-group');
  group.hidden = !inv.groupID;
  // The invitation names its group (participant.groupInfo); the contacts may not have
  // loaded yet when it rings right after sign-in.
  const named = info.participant && info.participant.groupInfo && info.participant.groupInfo.groupName;
  showName('incoming-group', inv.groupID ? `Group call in ${named || groupName(inv.groupID)}` : '');
  showError('incoming-error', '');
  $('incoming-accept').disabled = false;
  $('incoming-reject').disabled = false;
  // Every call button names its person.
  $('incoming-accept').setAttribute('aria-label', `Accept the ${mediaWord(inv.mediaType).toLowerCase()} from ${nameOf(caller)}`);
  $('incoming-reject').setAttribute('aria-label', `Decline the call from ${nameOf(caller)}`);
  $('incoming-call').hidden = false;
  notice('');
  // A modal dialog: focus moves into it (back where it was when it closes), Tab stays
  // in it and Escape declines (onKey).
  ui.focusBeforeDialog = document.activeElement;
  $('incoming-accept').focus();
  // The ringtone and the notification with Accept and Decline come from the app's Rust
  // side (src-tauri/src/alerting.rs): a hidden page's audio and timers are throttled.
  titleNotice(`${nameOf(caller)} is calling`);
  updateRootState();
}

/** @param {string} [reason] */
function closeIncoming(reason) {
  ui.incoming = null;
  ring.stop();
  const wasOpen = !$('incoming-call').hidden;
  $('incoming-call').hidden = true;
  if (reason) notice(reason);
  updateRootState();
  const back = ui.focusBeforeDialog;
  ui.focusBeforeDialog = null;
  if (wasOpen && back && back.isConnected && !back.closest('[hidden]')) /** @type {HTMLElement} */ (back).focus();
}

export async function acceptIncoming() {
  const info = ui.incoming;
  if (!info) return;
  $('incoming-accept').disabled = true;
  $('incoming-reject').disabled = true;
  info.early = []; // room events that overtake the accept's reply
  const res = await tincan.signalingAccept(tincan.newOperationID(), { opUserID: ui.me.userID, invitation: info.invitation });
  if (ui.incoming !== info) return; // the call model got there first (onCallState)
  if (res.errCode === 0) enterAccepted(info);
  else if (ui.incoming === info) {
    // A passing failure (the call model rings again): the buttons work again.
    showError('incoming-error', explain(res));
    $('incoming-accept').disabled = false;
    $('incoming-reject').disabled = false;
  }
}

// The call `info` rang for is answered (here, or through the openIM facade): the call.
/** @param {import('./page').Incoming} info */
function enterAccepted(info) {
  closeIncoming();
  const inv = info.invitation;
  enterCall(inv, [inv.inviterUserID]);
  if (inv.groupID) refreshGroupParticipants(inv.groupID, inv.roomID);
  for (const [handler, data] of (info.early || []).splice(0)) handler(data);
}

// Whether a room event arrived while this window's accept is on its way; keeps it for then.
/**
 * @template {{ invitation: import('./openim').RtcInvite }} D
 * @param {(data: D) => void} handler
 * @param {D} data
 */
export function heldForAccept(handler, data) {
  const info = ui.incoming;
  if (!info || !info.early || info.invitation.roomID !== data.invitation.roomID) return false;
  info.early.push([handler, data]);
  return true;
}

// Who is already in a group call this window just joined.
/**
 * @param {string} groupID
 * @param {string} roomID
 */
async function refreshGroupParticipants(groupID, roomID) {
  const res = await tincan.signalingGetRoomByGroupID(tincan.newOperationID(), groupID);
  if (res.errCode === 0 && res.data.roomID === roomID && ui.call && ui.call.roomID === roomID) {
    setParticipants(res.data.participant || []);
  }
}

export async function rejectIncoming() {
  const info = ui.incoming;
  if (!info) return;
  $('incoming-accept').disabled = true;
  $('incoming-reject').disabled = true;
  // The call model ends the call as the request leaves (onCallState).
  await tincan.signalingReject(tincan.newOperationID(), { opUserID: ui.me.userID, invitation: info.invitation });
}

// The window title says who calls while the window is not focused (a task bar shows it
// where no notification service runs).
/** @param {string} title */
function titleNotice(title) {
  if (document.hasFocus()) return;
  document.title = `Incoming call: ${title}`;
  setTimeout(() => (document.title = 'Tincan'), 30000);
}

// ---------------------------------------------------------------- in call

/**
 * @param {import('./openim').RtcInvite} invitation
 * @param {string[]} others
 */
export function enterCall(invitation, others) {
  const prev = ui.call;
  ring.stop();
  ui.call = {
    kind: 'in-call',
    invitation,
    roomID: invitation.roomID,
    groupID: invitation.groupID || '',
    media: invitation.mediaType,
    participants: new Set([ui.me.userID, ...others]),
    pending: prev && prev.pending ? prev.pending : new Set(),
    started: Date.now(),
    muted: false,
    cameraOff: invitation.mediaType === 'audio',
  };
  const call = ui.call;
  showName('in-call-title', call.groupID ? groupName(call.groupID) : nameOf(others[0]));
  $('hangup').setAttribute('aria-label', `Hang up the call with ${$('in-call-title').textContent}`);
  $('in-call-media').textContent = mediaWord(call.media);
  $('add-people').hidden = !call.groupID;
  $('toggle-camera').hidden = call.media === 'audio';
  // Sharing sends pictures: video calls only.
  $('share-screen').hidden = call.media === 'audio';
  $('share-chooser').hidden = true;
  call.sharing = prev && prev.sharing ? prev.sharing : null;
  // Audio calls have no pictures: no self-view, tiles with avatars, nothing sent.
  $('self-view').hidden = call.media === 'audio';
  if (call.media === 'audio') tincan.setCamera(false);
  showError('in-call-error', '');
  clearMedia();
  closePanels();
  resetQuality();
  $('local-state').textContent = localState(call);
  renderToggles();
  renderParticipants();
  showRinging();
  tick();
  clearInterval(ui.timer);
  ui.timer = setInterval(tick, 1000);
  setScreen('in-call');
  placeSelfView();
  if (ui.deviceNotice) flash(ui.deviceNotice);
}

/** @param {number} ms */
export function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const mm = String(Math.floor(s / 60) % 60).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${mm}:${ss}`;
}

function tick() {
  if (ui.call && ui.call.kind === 'in-call') $('in-call-duration').textContent = clock(Date.now() - ui.call.started);
}

// The people line under the title, and one tile per other participant: an avatar until
// their pictures arrive (SDK far ends and audio calls never send any).
function renderParticipants() {
  const call = ui.call;
  const box = $('in-call-participants');
  box.replaceChildren();
  for (const u of call.participants) {
    const mine = u === ui.me.userID;
    const li = el('li', { testid: `participant-${u}`, title: nameOf(u) }, mine ? `${nameOf(u)} (you)` : nameOf(u));
    if (!mine && call.tiles && call.tiles.get(u) && call.tiles.get(u).speaking) li.classList.add('speaking');
    box.append(li);
    if (!mine) tile(u);
  }
  for (const u of Array.from((call.tiles || new Map()).keys())) {
    if (!call.participants.has(u)) removeTile(u);
  }
  layoutGrid();
}

function showRinging() {
  const call = ui.call;
  const box = $('in-call-ringing');
  if (!call || call.kind !== 'in-call') return;
  const pending = Array.from(call.pending || []).filter((u) => !call.participants.has(u));
  box.textContent = pending.length ? `Ringing ${list(pending)}…` : '';
}

/** @param {string} userID */
function addParticipant(userID) {
  if (!ui.call || ui.call.kind !== 'in-call') return;
  ui.call.participants.add(userID);
  ui.call.pending.delete(userID);
  renderParticipants();
  showRinging();
}

/** @param {import('./openim').ParticipantMetaData[]} infos */
export function setParticipants(infos) {
  if (!ui.call || ui.call.kind !== 'in-call') return;
  ui.call.participants = new Set([ui.me.userID, ...infos.map((p) => p.userInfo.userID)]);
  renderParticipants();
  showRinging();
}

// The control bar's buttons: label, pressed state (the icon follows it, style.css) and
// tooltip with the shortcut (docs/decisions.md, "Keyboard shortcuts in a call").
export function renderToggles() {
  const call = ui.call;
  /**
   * @param {HTMLElement} b
   * @param {string} text
   * @param {string} tip
   */
  const label = (b, text, tip) => {
    b.querySelector('.label').textContent = text;
    b.title = tip;
  };
  const mute = $('toggle-mute');
  label(mute, call.muted ? 'Unmute' : 'Mute', call.muted ? 'Unmute (Ctrl+D)' : 'Mute (Ctrl+D)');
  mute.setAttribute('aria-pressed', String(call.muted));
  mute.dataset.on = String(call.muted);
  const cam = $('toggle-camera');
  label(cam, call.cameraOff ? 'Camera on' : 'Camera off', call.cameraOff ? 'Turn the camera on (Ctrl+E)' : 'Turn the camera off (Ctrl+E)');
  cam.setAttribute('aria-pressed', String(call.cameraOff));
  cam.dataset.on = String(!call.cameraOff);
  const share = $('share-screen');
  label(share, call.sharing ? 'Stop sharing' : 'Share screen', call.sharing ? 'Stop sharing (Ctrl+Shift+S)' : 'Share your screen (Ctrl+Shift+S)');
  share.setAttribute('aria-pressed', String(Boolean(call.sharing)));
  share.dataset.sharing = String(Boolean(call.sharing));
  // With the camera off (and no screen shared) the self-view says so.
  $('self-view').dataset.camera = call.cameraOff && !call.sharing ? 'off' : 'on';
}

// What the line under our preview says we send.
/** @param {import('./page').Call} call */
export function localState(call) {
  if (call.sharing) return 'You (sharing your screen)';
  return call.cameraOff ? 'You (camera off)' : 'You';
}

export async function hangUp() {
  const call = ui.call;
  if (!call) return;
  $('hangup').disabled = true;
  // The call model ends the call as the request leaves (onCallState).
  await tincan.signalingHungUp(tincan.newOperationID(), { opUserID: ui.me.userID, invitation: { ...call.invitation, roomID: call.roomID } });
  $('hangup').disabled = false;
}

/** @param {import('./openim').SignalingInfo} info */
export function onHangUp(info) {
  if (heldForAccept(onHangUp, info)) return;
  const call = ui.call;
  if (!call || call.kind !== 'in-call' || info.invitation.roomID !== call.roomID) return;
  // Whether this ends the call is the call model's to say (onCallState).
  const who = info.opUserID;
  call.participants.delete(who);
  if (call.groupID && call.participants.size > 1) {
    renderParticipants();
    flash(`${nameOf(who)} left the call.`);
  }
}

/** @param {string} text */
export function flash(text) {
  const box = $('in-call-error');
  box.textContent = text;
  box.hidden = false;
  setTimeout(() => {
    if (box.textContent === text) box.hidden = true;
  }, 5000);
}

// Leaves the call state without telling the server (it already knows, or we sign out).
export function endCallLocally() {
  ring.stop();
  clearMedia();
  // The server knows the call is over (or will, from a request already sent); the core's
  // media must stop too, whatever happened on the way here.
  const call = ui.call;
  if (call && call.roomID) tincan.endMedia(call.roomID);
  clearInterval(ui.timer);
  ui.call = null;
}

/**
 * @param {string} reason
 * @param {string} [kind]
 */
function finishCall(reason, kind) {
  endCallLocally();
  setScreen(ui.me ? 'contacts' : 'signin');
  // After the screen changed: banners do not follow the user, but this one is about why.
  notice(reason);
  $('call-ended-reason').dataset.kind = kind || '';
  loadHistory();
}

// ---------------------------------------------------------------- the call model

// The SDK's model of this device's call (callStateChanged) decides when a call begins and
// ends, whether it was placed or answered from these screens, through the openIM facade,
// or resumed after a reconnect. The OpenIM events only fill in what the screens show.
/** @param {import('./openim').CallState} s */
export function onCallState(s) {
  switch (s.phase) {
    case 'ringingIn':
      if (!ui.incoming && !ui.call && s.invitation) {
        const inviter = s.invitation.inviterUserID;
        showIncoming({ invitation: s.invitation, opUserID: inviter, userID: inviter });
      }
      break;
    case 'inCall':
      if (ui.call && ui.call.kind === 'in-call' && ui.call.roomID === s.roomID) break;
      if (ui.incoming && ui.incoming.invitation.roomID === s.roomID) enterAccepted(ui.incoming);
      else if (s.invitation) {
        enterCall({ ...s.invitation, roomID: s.roomID }, s.peerUserIDs);
        ui.call.pending = new Set(s.ringingUserIDs);
        showRinging();
      }
      break;
    case 'ended':
      callEnded(s);
      break;
  }
}

// Rooms whose call the call model ended here (the last few), for replies that set out
// before the end (sign-in's pending-invitation query): they must not ring it again.
export const endedRooms = new Set();
const ENDED_ROOMS_KEPT = 32;

/** @param {import('./openim').CallState} s */
function callEnded(s) {
  if (s.roomID) {
    endedRooms.add(s.roomID);
    if (endedRooms.size > ENDED_ROOMS_KEPT) endedRooms.delete(endedRooms.values().next().value);
  }
  /** @type {Partial<NonNullable<import('./openim').CallState['end']>>} */
  const end = s.end || {};
  if (end.reason === 'clientClosed' || end.reason === 'signedInElsewhere') return; // see onConnection
  const refused = end.error ? explain(end.error) : '';
  if (ui.incoming && ui.incoming.invitation.roomID === s.roomID) {
    const from = nameOf(ui.incoming.invitation.inviterUserID);
    const text = /** @type {Record<string, string>} */ ({
      remoteCancelled: refused || `Missed call from ${from}.`,
      missed: 'Missed call.',
      declined: 'Call declined.',
      answeredElsewhere: 'Answered on another device.',
      declinedElsewhere: 'Declined on another device.',
    })[end.reason];
    const missed = !refused && ['remoteCancelled', 'missed'].includes(end.reason) ? ui.incoming.invitation : null;
    closeIncoming(text || refused || 'The call ended.');
    if (missed) offerCallBack(missed);
    loadHistory();
    return;
  }
  const call = ui.call;
  // Our invite ends before its reply named the room when it is refused.
  const ours = call && (call.roomID === s.roomID || (call.kind === 'outgoing' && !call.roomID && s.direction === 'outgoing'));
  if (!ours) return;
  const [text, kind] = endOfCall(s, end, refused);
  finishCall(text, kind);
}

// What the screen says when our call ends, and the kind (data-kind) it is.
/**
 * @param {import('./openim').CallState} s
 * @param {Partial<NonNullable<import('./openim').CallState['end']>>} end
 * @param {string} refused
 * @returns {[string, string]}
 */
function endOfCall(s, end, refused) {
  const by = end.byUserID ? nameOf(end.byUserID) : '';
  const single = !(s.invitation && s.invitation.groupID);
  switch (end.reason) {
    case 'hungUp':
      return ['Call ended.', 'hung-up'];
    case 'remoteHungUp':
      return [`${by} hung up. Call ended.`, 'remote-hung-up'];
    case 'cancelled':
      return ['Call cancelled.', 'cancelled'];
    case 'remoteDeclined':
      return [single ? `${by} declined the call.` : 'Nobody joined: the call was declined.', 'rejected'];
    case 'noAnswer':
      return [single ? `${by} did not answer.` : 'Nobody answered.', 'timeout'];
    case 'busy': {
      const busy = (s.invitation && s.invitation.busyLineUserIDList) || [];
      return [busy.length === 1 ? `${nameOf(busy[0])} is busy on another call.` : 'Everyone is busy on another call.', 'busy'];
    }
    case 'refused':
      return [refused, 'error'];
    case 'answeredElsewhere':
      return ['Answered on another device.', 'other-device'];
    case 'connectionLost':
      return ['The call ended while you were disconnected.', 'disconnected'];
    default:
      return ['Call ended.', 'ended'];
  }
}

// ---------------------------------------------------------------- groups

/** @type {string | null} */
let pickGroup = null;

/** @param {string} groupID */
export function openGroupPick(groupID) {
  if (ui.call) return;
  pickGroup = groupID;
  const g = ui.groups.get(groupID);
  $('group-pick-title').textContent = `Call ${groupName(groupID)}`;
  $('group-pick-audio').setAttribute('aria-label', `Audio call ${groupName(groupID)}`);
  $('group-pick-video').setAttribute('aria-label', `Video call ${groupName(groupID)}`);
  const box = $('group-pick-members');
  box.replaceChildren();
  for (const u of (g.memberUserIDList || []).filter((m) => m !== ui.me.userID)) {
    const cb = el('input', { type: 'checkbox', testid: `pick-${u}`, value: u });
    cb.checked = true;
    box.append(el('li', {}, el('label', {}, cb, ` ${nameOf(u)}`)));
  }
  showError('group-pick-error', '');
  setScreen('group-pick');
}

function pickedMembers() {
  return all('input:checked', $('group-pick-members')).map((i) => i.value);
}

/** @param {import('./openim').MediaType} media */
export async function groupPickCall(media) {
  const members = pickedMembers();
  if (members.length === 0) return showError('group-pick-error', 'Pick at least one person to call.');
  if (ui.call && ui.call.kind === 'in-call') {
    // Adding people to the call in progress.
    const call = ui.call;
    setScreen('in-call');
    const res = await tincan.signalingInviteInGroup(tincan.newOperationID(), {
      ...call.invitation, inviterUserID: '', inviteeUserIDList: members, roomID: call.roomID, groupID: call.groupID, sessionType: SessionType.Group,
    });
    if (res.errCode !== 0) return flash(explain(res));
    const busy = res.data.busyLineUserIDList || [];
    members.filter((m) => !busy.includes(m)).forEach((m) => call.pending.add(m));
    showRinging();
    if (busy.length) flash(`${list(busy)} ${busy.length === 1 ? 'is' : 'are'} busy on another call.`);
    return;
  }
  startOutgoing(members, media, pickGroup);
}

export function openAddPeople() {
  const call = ui.call;
  if (!call || !call.groupID) return;
  pickGroup = call.groupID;
  const g = ui.groups.get(call.groupID);
  const box = $('group-pick-members');
  box.replaceChildren();
  $('group-pick-title').textContent = `Add people to the call`;
  $('group-pick-audio').setAttribute('aria-label', `Audio call: add them to ${groupName(call.groupID)}'s call`);
  $('group-pick-video').setAttribute('aria-label', `Video call: add them to ${groupName(call.groupID)}'s call`);
  for (const u of ((g && g.memberUserIDList) || []).filter((m) => !call.participants.has(m))) {
    const cb = el('input', { type: 'checkbox', testid: `pick-${u}`, value: u });
    box.append(el('li', {}, el('label', {}, cb, ` ${nameOf(u)}`)));
  }
  showError('group-pick-error', '');
  setScreen('group-pick');
}

/** @param {string} groupID */
export async function joinGroupCall(groupID) {
  if (ui.call) return;
  notice('');
  const room = await tincan.signalingGetRoomByGroupID(tincan.newOperationID(), groupID);
  if (room.errCode !== 0) return notice(explain(room));
  if (!room.data.roomID) return notice(`${groupName(groupID)} has no call in progress.`);
  const res = await tincan.signalingGetTokenByRoomID(tincan.newOperationID(), room.data.roomID);
  if (res.errCode !== 0) return notice(explain(res));
  if (ui.incoming && ui.incoming.invitation.roomID === room.data.roomID) closeIncoming();
  enterCall(room.data.invitation, []);
  setParticipants(room.data.participant || []);
  ui.call.participants.add(ui.me.userID);
  renderParticipants();
}

// ---------------------------------------------------------------- keyboard

// Shortcuts (docs/decisions.md, "Keyboard shortcuts in a call"): Ctrl+D mute, Ctrl+E
// camera, Ctrl+Shift+S share, Ctrl+Shift+H hang up, as in Element and Teams. Escape
// closes an open panel, declines the incoming call, or cancels the outgoing one. Tab
// stays inside the incoming dialog while it is open.
/** @param {KeyboardEvent} e */
export function onKey(e) {
  const dialog = $('incoming-call');
  if (!dialog.hidden) {
    if (e.key === 'Escape') {
      e.preventDefault();
      rejectIncoming();
    } else if (e.key === 'Tab') {
      trapFocus(e, dialog);
    }
    return; // the dialog is modal: the call's shortcuts wait
  }
  if (e.key === 'Escape') {
    if (closePanels()) return e.preventDefault();
    if (ui.call && ui.call.kind === 'outgoing') {
      e.preventDefault();
      cancelOutgoing();
    }
    return;
  }
  if (!inCall() || !e.ctrlKey || e.altKey || e.metaKey) return;
  const key = e.key.toLowerCase();
  const action = e.shiftKey
    ? { h: hangUp, s: toggleSharing }[key]
    : { d: toggleMute, e: () => !$('toggle-camera').hidden && toggleCamera() }[key];
  if (!action) return;
  e.preventDefault();
  if (e.repeat) return;
  action();
}

/**
 * @param {KeyboardEvent} e
 * @param {HTMLElement} container
 */
function trapFocus(e, container) {
  const focusable = all('button, [href], input, select, [tabindex]:not([tabindex="-1"])', container)
    .filter((n) => !n.disabled && !n.closest('[hidden]'));
  if (focusable.length === 0) return e.preventDefault();
  const first = focusable[0];
  const last = focusable[focusable.length - 1];
  const inside = container.contains(document.activeElement);
  if (e.shiftKey && (document.activeElement === first || !inside)) {
    e.preventDefault();
    last.focus();
  } else if (!e.shiftKey && (document.activeElement === last || !inside)) {
    e.preventDefault();
    first.focus();
  }
}

// ---------------------------------------------------------------- server outages

// The banner while the server is away (connectionStateChanged). Media runs peer to peer,
// so a call goes on without the server: say so plainly, and say "restarting" when the
// server said it is (a clean stop, `serverRestarting`), not "reconnecting". The SDK keeps
// the call; the login reply after the reconnect says whether it is still on.
let serverRestarting = false;

/** @param {import('./openim').ConnectionState} s */
export function showServerLink(s) {
  const banner = $('reconnecting-banner');
  if (s.state === 'serverRestarting') serverRestarting = true;
  if (s.state !== 'serverRestarting' && s.state !== 'reconnecting') {
    serverRestarting = false;
    banner.hidden = true;
    delete banner.dataset.link;
    return;
  }
  const inCall = !!(ui.call && ui.call.kind === 'in-call');
  banner.dataset.link = serverRestarting ? 'restarting' : 'lost';
  banner.dataset.inCall = String(inCall);
  banner.textContent = serverRestarting
    ? inCall
      ? 'The server is restarting… your call continues'
      : 'The server is restarting…'
    : inCall
      ? 'Connection to the server lost — your call continues'
      : 'Connection lost — reconnecting…';
  banner.hidden = false;
}
