// @ts-check
// Tincan's screens. ES modules, no bundler: openim.js exports `tincan` (the OpenIM-shaped
// API with object `data`; `openIM`, also on window for pages written against OpenIM, is
// the same with the seed's string `data`) and `globalEvent`; the Tauri API comes from
// window.__TAURI__ (withGlobalTauri; typed in tauri.d.ts). call.js and media.js hold the
// call screens and the media; the three import each other's functions. Type-checked with
// ui/tsconfig.json against openim.d.ts and page.d.ts.
//
// The root element's data-state names what is on screen (signin, contacts, group-pick,
// outgoing, incoming, in-call) so tests can wait on it; docs/ui-testids.md lists the
// data-testid attributes.
import { tincan, globalEvent } from './openim.js';
import { acceptIncoming, cancelOutgoing, clock, endCallLocally, endedRooms, enterCall, groupPickCall, hangUp, heldForAccept, joinGroupCall, onCallState, onHangUp, onInviteeAnswer, onKey, openAddPeople, openGroupPick, rejectIncoming, setParticipants, showIncoming, showServerLink, startOutgoing } from './call.js';
import { MEDIA_EVENTS, startSharing, toggleCamera, toggleMute, togglePanel, toggleSharing, toggleVerify, wireMedia } from './media.js';

/**
 * The element with this data-testid. Typed as present (index.html holds every id the
 * page looks up; the e2e suite shows every screen) and as a form control, the widest of
 * what the page uses it as (`value` and `disabled` on inputs, selects and buttons).
 * @type {(id: string) => HTMLInputElement}
 */
export const $ = (id) => /** @type {HTMLInputElement} */ (document.querySelector(`[data-testid="${id}"]`));
/** The canvas with this data-testid. @type {(id: string) => HTMLCanvasElement} */
export const canvasOf = (id) => /** @type {HTMLCanvasElement} */ (document.querySelector(`[data-testid="${id}"]`));
/** Every element matching `selector`, as HTML elements. @type {(selector: string, from?: ParentNode) => HTMLInputElement[]} */
export const all = (selector, from = document) => Array.from(from.querySelectorAll(selector));
const root = $('app');

// ---------------------------------------------------------------- state

/** @type {import('./page').UiState} */
export const ui = {
  me: null, // {userID, server, deviceID}
  users: new Map(), // userID -> PublicUserInfo
  groups: new Map(), // groupID -> GroupInfo
  screen: 'starting', // the screen under the incoming dialog
  call: null, // see startOutgoing / showIncoming / enterCall
  incoming: null, // SignalingInfo ringing here
  timer: null,
  signingOut: false,
  codes: new Map(), // userID -> the connection's verification code (mediaVerification)
  presence: new Map(), // userID -> 'online' | 'inCall' | 'offline' (followed contacts only)
  recent: new Map(), // userID -> when we last called each other (Unix ms), from the history
  search: '', // the contact search box's text
};

// ---------------------------------------------------------------- words

/** @param {string} userID */
export const nameOf = (userID) => {
  const u = ui.users.get(userID);
  return u && u.nickname ? u.nickname : userID;
};
/** @param {string} groupID */
export const groupName = (groupID) => {
  const g = ui.groups.get(groupID);
  return g && g.groupName ? g.groupName : groupID;
};
/** @param {string} m */
export const mediaWord = (m) => (m === 'audio' ? 'Audio call' : 'Video call');
/** @param {string[]} ids */
export const list = (ids) => {
  const names = ids.map(nameOf);
  if (names.length <= 1) return names.join('');
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
};

// An API result's error in words a person understands.
/**
 * @param {{ errCode: number; errMsg: string }} res
 * @param {string} [context]
 */
export function explain(res, context) {
  const msg = res.errMsg || '';
  switch (res.errCode) {
    case 10000:
      if (context === 'signin')
        return "Can't reach the server. Check the server address and that the server is running.";
      return 'No connection to the server. Check your network; Tincan keeps trying to reconnect.';
    case 10001:
      return 'The server did not answer in time. Try again.';
    case 10002:
      return /url|address|scheme|host/i.test(msg)
        ? 'That server address is not valid. It looks like http://host:port.'
        : `Something in the request was not accepted: ${msg}`;
    case 10101:
      return 'You are signed out. Sign in again.';
    case 1001:
      if (/taken/i.test(msg)) return 'That user ID is already taken. Choose another.';
      if (/^password/i.test(msg)) return 'The password must be 6 to 256 characters long.';
      if (/userID/i.test(msg) && (context === 'register' || context === 'signin'))
        return 'That user ID is not valid: use letters, digits, and - _ . @ only.';
      return `The server refused the request: ${msg}`;
    case 1002:
      // The embedded server of another window whose secret this one cannot read.
      if (/local server/i.test(msg))
        return 'That local server belongs to another Tincan window and does not accept sign-ins from this one. Use the window that started it, or start a local server here.';
      if (context === 'register') return msg ? msg.charAt(0).toUpperCase() + msg.slice(1) + '.' : 'Registration is closed on this server.';
      return context === 'signin' ? 'Wrong user ID or password.' : "You're not allowed to do that.";
    case 1004:
      return context === 'signin' ? 'Wrong user ID or password.' : `Not found: ${msg}`;
    case 1013:
      return `The server refused this request as coming from a web page or an unknown address: ${msg}`;
    case 1006:
      return 'Too many requests. Wait a moment and try again.';
    case 1011: {
      // The server says how long in its message ("… retry after 8 s").
      const wait = /retry after (\d+) s/.exec(msg);
      const when = wait ? `in ${wait[1]} second${wait[1] === '1' ? '' : 's'}` : 'in a little while';
      return /address/i.test(msg)
        ? `Too many failed sign-ins from this network. Try again ${when}.`
        : `Too many failed sign-ins for this account. Try again ${when}.`;
    }
    case 1012:
      return 'The server is busy checking other sign-ins. Try again in a moment.';
    case 1008:
      return 'You are signed in on too many devices. Sign out on one of them first.';
    case 1501:
    case 1502:
      return 'Your session expired. Sign in again.';
    case 1601:
      return 'This call was already answered on another device.';
    case 1602:
      return 'This call is no longer ringing — it was cancelled, timed out or already ended.';
    case 1603:
      return "You're already in a call. Hang up first.";
    case 1606:
      return 'This group already has a call in progress. Join it instead.';
    case 1607:
      return 'This call is full.';
    case 1605:
      return 'The server is shutting down. Try again in a moment.';
    case 500:
      return 'The server had a problem. Try again.';
    default:
      if (context === 'register' && /exist|taken/i.test(msg)) return 'That user ID is already taken.';
      return msg || `Something went wrong (error ${res.errCode}).`;
  }
}

// ---------------------------------------------------------------- screens

/**
 * @param {string} id
 * @param {string} [text]
 */
export function showError(id, text) {
  const el = $(id);
  if (!el) return;
  el.textContent = text || '';
  el.hidden = !text;
}

/** @param {string} name */
export function setScreen(name) {
  // Banners are about the screen they were shown on: they do not follow the user.
  if (name !== ui.screen) notice('');
  ui.screen = name;
  for (const s of all('section[data-screen]')) s.hidden = s.dataset.screen !== name;
  updateRootState();
}

export function updateRootState() {
  root.dataset.state = ui.incoming && ui.screen !== 'in-call' ? 'incoming' : ui.screen;
  root.dataset.base = ui.screen;
}

/**
 * @param {string} state
 * @param {string} text
 */
function setStatus(state, text) {
  const status = $('app-status');
  status.dataset.state = state;
  status.textContent = text;
  status.hidden = !text;
}

// The notice banner (a polite live region, dismissable): why the last call ended, and
// the like. Cleared when the screen changes (setScreen).
/** @param {string} text */
export function notice(text) {
  const el = $('call-ended-reason');
  el.textContent = text || '';
  el.hidden = !text;
  $('notice-banner').hidden = !text;
  $('notice-call-back').hidden = true; // offerCallBack shows it again for a missed call
}

// ---------------------------------------------------------------- ringtone

export const ring = {
  /** @type {AudioContext | null} */
  ctx: null,
  /** @type {ReturnType<typeof setInterval> | null} */
  interval: null,
  /** @param {'incoming' | 'outgoing'} kind */
  start(kind) {
    this.stop();
    try {
      this.ctx = this.ctx || new (window.AudioContext || window.webkitAudioContext)();
    } catch (_) {
      return;
    }
    const beep = () => {
      const ctx = this.ctx;
      const freqs = kind === 'incoming' ? [480, 620] : [425];
      for (const f of freqs) {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.frequency.value = f;
        gain.gain.value = 0.05;
        osc.connect(gain).connect(ctx.destination);
        osc.start();
        osc.stop(ctx.currentTime + (kind === 'incoming' ? 0.8 : 1.0));
      }
    };
    try {
      beep();
      this.interval = setInterval(beep, kind === 'incoming' ? 2000 : 4000);
    } catch (_) {
      /* no audio device: the visual indicator remains */
    }
  },
  stop() {
    if (this.interval) clearInterval(this.interval);
    this.interval = null;
  },
};

// ---------------------------------------------------------------- sign in

function signinForm() {
  return {
    server: $('login-server').value.trim(),
    user: $('login-user').value.trim(),
    password: $('login-password').value,
    nickname: $('login-nickname').value.trim(),
  };
}

/** How a server address is reached: 'tls' (https/wss), 'loopback' (plain, but it never
 * leaves this computer) or 'plain' (plain over a network: not encrypted). */
/** @param {string} url */
function transportOf(url) {
  const m = /^\s*([a-z]+):\/\//i.exec(url || '');
  const scheme = m ? m[1].toLowerCase() : 'http';
  if (scheme === 'https' || scheme === 'wss') return 'tls';
  const rest = (url || '').trim().replace(/^[a-z]+:\/\//i, '');
  const authority = rest.split('/')[0];
  const host = authority.startsWith('[')
    ? authority.slice(1, authority.indexOf(']'))
    : authority.split(':')[0];
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h)) return 'loopback';
  return 'plain';
}

/** Shows the sign-in note when the address typed would not be encrypted. */
function updateEncryptionNote() {
  const url = $('login-server').value.trim();
  $('login-unencrypted').hidden = !url || transportOf(url) !== 'plain';
}

/** @param {boolean} register */
async function submitSignin(register) {
  const f = signinForm();
  showError('login-error', '');
  if (!f.server) return showError('login-error', 'Enter the server address, or use a local server on this computer.');
  if (!f.user) return showError('login-error', 'Enter your user ID.');
  if (!f.password) return showError('login-error', 'Enter your password.');
  const buttons = [$('login-submit'), $('register-submit')];
  buttons.forEach((b) => (b.disabled = true));
  setStatus('busy', register ? 'Creating your account…' : 'Signing in…');
  const res = register
    ? await tincan.register(f.server, f.user, f.password, f.nickname)
    : await tincan.login(f.server, f.user, f.password);
  buttons.forEach((b) => (b.disabled = false));
  setStatus('', '');
  if (res.errCode !== 0) {
    showError('login-error', explain(res, register ? 'register' : 'signin'));
    return;
  }
  $('login-password').value = '';
  await signedIn(res.data);
}

async function useLocalServer() {
  showError('login-error', '');
  setStatus('busy', 'Starting a local server…');
  $('use-local-server').disabled = true;
  const res = await tincan.startEmbeddedServer();
  $('use-local-server').disabled = false;
  setStatus('', '');
  if (res.errCode !== 0) {
    showError('login-error', `Could not start a local server: ${res.errMsg}`);
    return;
  }
  $('login-server').value = res.data.url;
  updateEncryptionNote();
  showError('login-error', '');
  $('login-server').dataset.local = 'true';
}

/** @param {import('./openim').SignedIn} me */
async function signedIn(me) {
  ui.me = me;
  ui.signingOut = false;
  $('signed-in-user').textContent = me.userID;
  $('signed-in-user').hidden = false;
  $('sign-out').hidden = false;
  $('settings-server').textContent = me.server;
  const transport = transportOf(me.server);
  $('settings-encryption').textContent =
    transport === 'tls'
      ? 'Encrypted (TLS)'
      : transport === 'loopback'
        ? 'Not encrypted (this computer only)'
        : 'Not encrypted: use an https:// or wss:// address';
  $('settings-encryption').dataset.transport = transport;
  $('settings-user').textContent = me.userID;
  $('settings-device').textContent = me.deviceID || '';
  $('reconnecting-banner').hidden = true;
  notice('');
  setScreen('contacts');
  await loadContacts();
  loadHistory();
  // This device was in a call when it last disconnected, and the server kept it: resume.
  const current = me.currentCall;
  if (current && !ui.call) {
    const others = (current.participant || []).map((p) => p.userInfo.userID).filter((u) => u !== me.userID);
    enterCall({ ...current.invitation, roomID: current.roomID }, others);
    notice('');
  }
  // An invitation that rang before the window listened arrives as an event too (the
  // SDK's first resync); this covers a page reload.
  if (!ui.incoming) {
    const res = await tincan.getSignalingInvitationInfoStartApp(tincan.newOperationID());
    const stale = res.data && res.data.invitation && endedRooms.has(res.data.invitation.roomID);
    if (res.errCode === 0 && res.data && res.data.invitation && !ui.incoming && !ui.call && !stale) {
      const inv = res.data.invitation;
      showIncoming({ invitation: inv, opUserID: inv.inviterUserID, userID: inv.inviterUserID });
    }
  }
}

// Leaves a call properly (hang up, cancel, or decline what rings), so the others are not
// kept waiting for this device to come back (the server waits up to 30 s for a dropped one).
async function leaveCallOnServer() {
  const call = ui.call;
  if (!ui.me) return;
  if (call && call.roomID) {
    const options = { opUserID: ui.me.userID, invitation: { ...(call.invitation || {}), roomID: call.roomID } };
    if (call.kind === 'in-call') await tincan.signalingHungUp(tincan.newOperationID(), options);
    else await tincan.signalingCancel(tincan.newOperationID(), options);
  } else if (ui.incoming) {
    await tincan.signalingReject(tincan.newOperationID(), { opUserID: ui.me.userID, invitation: ui.incoming.invitation });
  }
}

async function signOut() {
  ui.signingOut = true;
  await leaveCallOnServer();
  endCallLocally();
  await tincan.logout();
  toSignin('');
}

/** @param {string} [error] */
function toSignin(error) {
  ui.me = null;
  ui.incoming = null;
  ring.stop();
  $('incoming-call').hidden = true;
  $('signed-in-user').hidden = true;
  $('sign-out').hidden = true;
  $('reconnecting-banner').hidden = true;
  showError('login-error', error);
  setScreen('signin');
}

// ---------------------------------------------------------------- contacts

async function loadContacts() {
  const res = await tincan.getContacts(tincan.newOperationID());
  if (res.errCode !== 0) {
    showError('contacts-error', `Could not load your contacts. ${explain(res)}`);
    return;
  }
  showError('contacts-error', '');
  ui.users = new Map(res.data.users.map((u) => [u.userID, u]));
  ui.groups = new Map(res.data.groups.map((g) => [g.groupID, g]));
  renderContacts();
  followPresence();
}

// ---------------------------------------------------------------- presence, search, recents

// The most users the server lets one connection follow (docs/protocol.md §3.15).
const MAX_FOLLOWED = 500;
const PRESENCE_WORDS = { online: 'Online', inCall: 'In a call', offline: 'Offline' };

// Follows the presence of the contact list (recent first, as far as the server allows).
// The server keeps the list per connection: called again after a reconnect.
async function followPresence() {
  const ids = contactOrder().map((u) => u.userID).slice(0, MAX_FOLLOWED);
  const res = await tincan.subscribePresence(undefined, ids);
  if (res.errCode !== 0) return; // the list works without presence dots
  ui.presence = new Map(res.data.presence.map((p) => [p.userID, p.status]));
  for (const id of ui.users.keys()) showPresence(id);
}

/** @param {import('./openim').UserPresence} p */
function onPresenceChanged(p) {
  ui.presence.set(p.userID, p.status);
  showPresence(p.userID);
}

// Updates one contact's dot and label in place (a re-render would take keyboard focus away).
/** @param {string} userID */
function showPresence(userID) {
  const status = ui.presence.get(userID);
  const row = $(`contact-${userID}`);
  const badge = $(`presence-${userID}`);
  if (!row || !badge) return;
  row.dataset.presence = status || 'unknown';
  badge.dataset.status = status || 'unknown';
  badge.hidden = !status;
  badge.querySelector('.label').textContent = PRESENCE_WORDS[status] || '';
}

// People to show, recent calls first (newest first), then everyone else by name.
function contactOrder() {
  const name = (/** @type {import('./openim').PublicUserInfo} */ u) => (u.nickname || u.userID).toLocaleLowerCase();
  return [...ui.users.values()].sort((a, b) => {
    const ra = ui.recent.get(a.userID) || 0;
    const rb = ui.recent.get(b.userID) || 0;
    if (ra !== rb) return rb - ra;
    return name(a).localeCompare(name(b));
  });
}

// Whether a person or group matches the search box (name or id, any case).
/** @param {...string} texts */
function matchesSearch(...texts) {
  const q = ui.search.trim().toLocaleLowerCase();
  return !q || texts.some((t) => t && t.toLocaleLowerCase().includes(q));
}

// Remembers whom we called or were called by, for "recent first".
/** @param {import('./openim').CallRecord[]} records */
function noteRecents(records) {
  const me = ui.me && ui.me.userID;
  ui.recent = new Map();
  for (const r of records) {
    if (r.groupID) continue;
    const people = [r.inviterUserID, ...r.invitees.map((i) => i.userID)];
    for (const u of people) {
      if (u !== me && !ui.recent.has(u)) ui.recent.set(u, r.initiateTime);
    }
  }
}

// Calls the other side of a past call again: the same person and media; for a group, the
// member picker.
/** @param {import('./openim').CallRecord} r */
function callBack(r) {
  if (ui.call) return;
  if (r.groupID) return openGroupPick(r.groupID);
  const me = ui.me && ui.me.userID;
  const other = r.inviterUserID === me ? r.invitees.map((i) => i.userID)[0] : r.inviterUserID;
  if (other) startOutgoing([other], r.mediaType === 'audio' ? 'audio' : 'video', '');
}

// The notice after a missed call offers to call back (notice() hides the button again).
/** @param {import('./openim').RtcInvite} invitation */
export function offerCallBack(invitation) {
  const button = $('notice-call-back');
  const from = invitation.inviterUserID;
  button.hidden = false;
  button.setAttribute('aria-label', `Call back ${nameOf(from)}`);
  button.onclick = () => {
    notice('');
    if (invitation.groupID) openGroupPick(invitation.groupID);
    else startOutgoing([from], invitation.mediaType === 'audio' ? 'audio' : 'video', '');
  };
}

/**
 * A new element: `attrs` are attributes, but for `testid` (data-testid), `onclick` (a
 * listener) and `class`.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, any>} [attrs]
 * @param {...(Node | string | null | undefined)} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'testid') e.dataset.testid = v;
    else if (k === 'onclick') e.addEventListener('click', v);
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function renderContacts() {
  const people = $('contact-list');
  people.replaceChildren();
  if (ui.users.size === 0) people.append(el('li', { class: 'muted' }, 'Nobody else has an account on this server yet.'));
  const shown = contactOrder().filter((u) => matchesSearch(u.nickname, u.userID));
  if (ui.users.size > 0 && shown.length === 0) {
    people.append(el('li', { class: 'muted', testid: 'contacts-no-match' }, `Nobody matches “${ui.search.trim()}”.`));
  }
  for (const u of shown) {
    people.append(
      el('li', { testid: `contact-${u.userID}`, 'data-recent': String(ui.recent.has(u.userID)) },
        el('span', { class: 'presence', testid: `presence-${u.userID}`, hidden: '' },
          el('span', { class: 'dot', 'aria-hidden': 'true' }), el('span', { class: 'label' })),
        el('span', { class: 'name', title: u.nickname ? `${u.nickname} (${u.userID})` : u.userID }, u.nickname || u.userID, u.nickname ? el('small', {}, ` ${u.userID}`) : null),
        el('button', { type: 'button', testid: `call-audio-${u.userID}`, 'aria-label': `Audio call ${u.nickname || u.userID}`, title: `Audio call ${u.nickname || u.userID}`, onclick: () => startOutgoing([u.userID], 'audio', '') }, 'Audio'),
        el('button', { type: 'button', testid: `call-video-${u.userID}`, 'aria-label': `Video call ${u.nickname || u.userID}`, title: `Video call ${u.nickname || u.userID}`, onclick: () => startOutgoing([u.userID], 'video', '') }, 'Video'),
      ),
    );
  }
  for (const u of shown) showPresence(u.userID);
  const groups = $('group-list');
  groups.replaceChildren();
  if (ui.groups.size === 0) groups.append(el('li', { class: 'muted' }, 'You are not in any group.'));
  for (const g of ui.groups.values()) {
    if (!matchesSearch(g.groupName, g.groupID)) continue;
    groups.append(
      el('li', { testid: `group-${g.groupID}` },
        el('span', { class: 'name' }, g.groupName || g.groupID, el('small', {}, ` ${(g.memberUserIDList || []).length} members`)),
        el('button', { type: 'button', testid: `group-call-${g.groupID}`, 'aria-label': `Call ${g.groupName || g.groupID}…`, onclick: () => openGroupPick(g.groupID) }, 'Call…'),
        el('button', { type: 'button', testid: `group-join-${g.groupID}`, 'aria-label': `Join ${g.groupName || g.groupID}'s call`, onclick: () => joinGroupCall(g.groupID) }, 'Join call'),
      ),
    );
  }
}

// ---------------------------------------------------------------- history

export async function loadHistory() {
  const res = await tincan.getCallHistory(undefined, { limit: 50 });
  const box = $('history-list');
  if (res.errCode !== 0) {
    box.replaceChildren(el('li', { class: 'error' }, `Could not load the history. ${explain(res)}`));
    return;
  }
  box.replaceChildren();
  noteRecents(res.data.records);
  renderContacts();
  if (res.data.records.length === 0) box.append(el('li', { class: 'muted' }, 'No calls yet.'));
  for (const r of res.data.records) {
    const me = ui.me && ui.me.userID;
    const outgoing = r.inviterUserID === me;
    const mine = r.invitees.find((i) => i.userID === me);
    const missed = !outgoing && mine && ['timedOut', 'cancelled'].includes(mine.outcome);
    const who = r.groupID
      ? groupName(r.groupID)
      : outgoing
        ? list(r.invitees.map((i) => i.userID))
        : nameOf(r.inviterUserID);
    let what;
    if (missed) what = 'Missed call';
    else if (outgoing) what = r.answerTime ? 'Outgoing call' : `Outgoing call, ${outcomeWord(r)}`;
    else what = mine && mine.outcome === 'rejected' ? 'Declined' : mine && mine.outcome === 'answeredElsewhere' ? 'Answered elsewhere' : 'Incoming call';
    const duration = r.answerTime ? ` · ${clock(r.endTime - r.answerTime)}` : '';
    const when = new Date(r.initiateTime).toLocaleString();
    box.append(
      el('li', { testid: `history-${r.roomID}`, class: missed ? 'missed' : '', 'data-missed': String(!!missed) },
        el('span', { class: `kind ${r.mediaType}` }, r.mediaType === 'audio' ? 'Audio' : 'Video'),
        el('span', { class: 'name' }, who),
        el('span', { class: 'muted' }, `${what}${duration} · ${when}`),
        el('button', { type: 'button', class: 'secondary', testid: `call-back-${r.roomID}`, 'aria-label': `Call back ${who}`, title: `Call back ${who}`, onclick: () => callBack(r) }, 'Call back'),
      ),
    );
  }
}

/** @param {import('./openim').CallRecord} r */
function outcomeWord(r) {
  switch (r.endReason) {
    case 'busy': return 'busy';
    case 'rejected': return 'declined';
    case 'timeout': return 'no answer';
    case 'cancelled': return 'cancelled';
    default: return 'not answered';
  }
}


// ---------------------------------------------------------------- events

/** @param {import('./openim').ConnectionState} s */
function onConnection(s) {
  const banner = $('reconnecting-banner');
  showServerLink(s); // the banner's words (call.js)
  switch (s.state) {
    case 'reconnecting':
      banner.hidden = false;
      banner.dataset.attempt = String(s.attempt);
      break;
    case 'connected':
      banner.hidden = true;
      break;
    case 'resynced':
      // Whether our call survived the drop is the call model's to say (onCallState).
      banner.hidden = true;
      followPresence(); // the server's follow list died with the old connection
      break;
    case 'closed':
      banner.hidden = true;
      if (ui.signingOut || (s.reason && s.reason.kind === 'signedOut')) return;
      endCallLocally();
      toSignin(
        s.reason && s.reason.kind === 'kickedOffline'
          ? 'You were signed out because this device signed in again elsewhere.'
          : s.reason && s.reason.kind === 'loginRefused'
            ? 'Your session expired. Sign in again.'
            : 'The connection to the server was lost. Sign in again.',
      );
      break;
  }
}

function wireEvents() {
  // When a call starts and ends is the call model's to say (callStateChanged); the events
  // below only fill in the screens.
  globalEvent.on('callStateChanged', onCallState);
  globalEvent.on('onReceiveNewInvitation', showIncoming);
  globalEvent.on('onInvitationTimeout', (info) => onInviteeAnswer('timeout', info));
  globalEvent.on('onInviteeAccepted', (info) => onInviteeAnswer('accepted', info));
  globalEvent.on('onInviteeRejected', (info) => onInviteeAnswer('rejected', info));
  globalEvent.on('onHangUp', onHangUp);
  /** @param {import('./openim').RoomParticipantInfo} p */
  const onParticipants = (p) => {
    if (heldForAccept(onParticipants, p)) return;
    if (ui.call && ui.call.roomID === p.invitation.roomID) setParticipants(p.participant);
  };
  globalEvent.on('onRoomParticipantConnected', onParticipants);
  globalEvent.on('onRoomParticipantDisconnected', onParticipants);
  globalEvent.on('onKickedOffline', () => {
    endCallLocally();
    toSignin('You were signed out because this device signed in again elsewhere.');
  });
  globalEvent.on('connectionStateChanged', onConnection);
  globalEvent.on('onPresenceChanged', onPresenceChanged);
  wireMedia();
  return globalEvent.ready([...tincan.EVENTS, ...MEDIA_EVENTS]);
}

function wireControls() {
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    submitSignin(false);
  });
  $('register-submit').addEventListener('click', () => submitSignin(true));
  $('use-local-server').addEventListener('click', useLocalServer);
  $('login-server').addEventListener('input', updateEncryptionNote);
  $('sign-out').addEventListener('click', signOut);
  $('refresh-contacts').addEventListener('click', loadContacts);
  $('refresh-history').addEventListener('click', loadHistory);
  $('contact-search').addEventListener('input', (e) => {
    ui.search = /** @type {HTMLInputElement} */ (e.target).value;
    renderContacts();
  });
  for (const tab of all('[data-tab]')) {
    tab.addEventListener('click', () => {
      for (const t of document.querySelectorAll('[data-tab]')) t.classList.toggle('active', t === tab);
      notice('');
      for (const p of all('[data-panel]')) p.hidden = p.dataset.panel !== tab.dataset.tab;
      if (tab.dataset.tab === 'history') loadHistory();
    });
  }
  $('outgoing-cancel').addEventListener('click', cancelOutgoing);
  $('incoming-accept').addEventListener('click', acceptIncoming);
  $('incoming-reject').addEventListener('click', rejectIncoming);
  $('hangup').addEventListener('click', hangUp);
  $('toggle-mute').addEventListener('click', toggleMute);
  $('toggle-camera').addEventListener('click', toggleCamera);
  $('share-screen').addEventListener('click', toggleSharing);
  $('share-start').addEventListener('click', startSharing);
  $('share-cancel').addEventListener('click', () => ($('share-chooser').hidden = true));
  $('verify-call').addEventListener('click', toggleVerify);
  $('quality-indicator').addEventListener('click', () => togglePanel('quality-indicator', 'quality-panel'));
  $('call-devices').addEventListener('click', () => togglePanel('call-devices', 'devices-panel'));
  $('notice-dismiss').addEventListener('click', () => notice(''));
  document.addEventListener('keydown', onKey);
  $('add-people').addEventListener('click', openAddPeople);
  $('group-pick-audio').addEventListener('click', () => groupPickCall('audio'));
  $('group-pick-video').addEventListener('click', () => groupPickCall('video'));
  $('group-pick-cancel').addEventListener('click', () => setScreen(ui.call ? 'in-call' : 'contacts'));
}

// ---------------------------------------------------------------- start

async function start() {
  if (!window.__TAURI__) {
    setStatus('error', 'Not running inside the Tincan app.');
    root.dataset.state = 'error';
    return;
  }
  wireControls();
  // Closing the window during a call hangs up first (for at most 1.5 s), then closes.
  const tauriWindow = window.__TAURI__.window && window.__TAURI__.window.getCurrentWindow();
  if (tauriWindow) {
    tauriWindow.onCloseRequested(() =>
      Promise.race([leaveCallOnServer().catch(() => {}), new Promise((r) => setTimeout(r, 1500))]),
    );
  }
  try {
    await wireEvents();
    const info = await tincan.appInfo();
    $('app-title').textContent = info.name;
    $('app-version').textContent = `v${info.version}`;
    $('settings-profile').textContent = info.profileDir;
    document.title = info.name;
    if (info.defaultServer) $('login-server').value = info.defaultServer;
    updateEncryptionNote();
    setStatus('', '');
    const session = await tincan.session();
    if (session) await signedIn(session);
    else setScreen('signin');
  } catch (err) {
    setStatus('error', `Could not reach the app core: ${err}`);
    root.dataset.state = 'error';
  }
}

start();
