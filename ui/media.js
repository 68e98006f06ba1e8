// @ts-check
// Tincan's in-call media: the pictures, tiles, quality line and sound-device choice.
// An ES module; like call.js it only declares functions (and a few constants), which
// run when app.js's events and clicks call them.
import { tincan, globalEvent } from './openim.js';
import { $, all, canvasOf, el, explain, nameOf, notice, ui } from './app.js';
import { flash, localState, renderToggles } from './call.js';

/** @typedef {import('./openim').AudioProcessing} AudioProcessing */

// Sound and pictures run in the app's Rust core (WebKitGTK has no usable WebRTC); the
// page draws the decoded pictures it is sent and shows the media events. One tile per
// other participant: its canvas, its name, its state (connecting, muted, camera off)
// and the frame counter stamped into the picture it shows.

/** @type {(keyof import('./openim').MediaEventPayloads)[]} */
export const MEDIA_EVENTS = ['mediaPeerState', 'mediaRemoteState', 'mediaQuality', 'mediaFailed', 'mediaEnded', 'mediaDeviceUnavailable', 'mediaAudioOnly', 'mediaVerification', 'mediaAudioLevel'];

// Louder than this (RMS, dBFS, ~4 a second per person) counts as speaking: speech sits
// around -30..-15 dBFS, a quiet room's decoded sound below -55.
const SPEAKING_DBFS = -45;

const PEER_WORDS = {
  connecting: 'connecting…',
  connected: '',
  disconnected: 'reconnecting…',
  failed: 'connection lost',
  closed: 'left',
};

export function wireMedia() {
  globalEvent.on('mediaPeerState', ({ userID, state }) => {
    if (state === 'closed') return removeTile(userID);
    const t = tile(userID);
    if (!t) return;
    t.peer = state;
    renderTile(userID);
  });
  globalEvent.on('mediaRemoteState', ({ userID, mic, camera, screen }) => {
    const t = tile(userID);
    if (!t) return;
    t.mic = mic;
    t.camera = camera;
    t.screen = Boolean(screen);
    renderTile(userID);
  });
  globalEvent.on('mediaQuality', ({ userID, quality }) => {
    if (!inCall()) return;
    const q = quality;
    const loss = Math.round(q.loss * 100);
    const path = q.path === 'relay' ? ', relayed' : '';
    // What the congestion controller lets us send, and whether it left room for video.
    const target = q.targetKbps ? `, sending up to ${Math.round(q.targetKbps)} kbit/s` : '';
    const audioOnly = ui.audioOnly ? ' — audio only: the link is too slow for video' : '';
    // Freezes of their picture since the call began (WebRTC's rule), and how long in all.
    const freezes = q.freezes
      ? `, ${q.freezes} freeze${q.freezes === 1 ? '' : 's'} (${(q.frozenMs / 1000).toFixed(1)} s)`
      : '';
    $('media-quality').textContent =
      `${nameOf(userID)}: ${q.rttMs < 10 ? q.rttMs.toFixed(1) : Math.round(q.rttMs)} ms round trip, ${loss}% loss, ` +
      `${Math.round(q.kbpsIn)} kbit/s in, ${q.fpsIn} fps${freezes}${path}${target}${audioOnly}`;
    $('media-quality').dataset.freezes = String(q.freezes || 0);
    $('media-quality').dataset.fps = String(q.fpsIn);
    $('media-quality').dataset.targetKbps = String(Math.round(q.targetKbps || 0));
    $('media-quality').dataset.audioOnly = String(Boolean(ui.audioOnly));
    showQuality(qualityLevel(q, ui.audioOnly));
  });
  globalEvent.on('mediaAudioLevel', ({ userID, dbfs }) => {
    const t = inCall() && ui.call.tiles && ui.call.tiles.get(userID);
    if (!t) return;
    const speaking = dbfs > SPEAKING_DBFS && t.mic !== false;
    t.node.dataset.dbfs = String(Math.round(dbfs));
    if (speaking === Boolean(t.speaking)) return;
    t.speaking = speaking;
    t.node.classList.toggle('speaking', speaking);
    t.node.dataset.speaking = String(speaking);
    const li = $(`participant-${userID}`);
    if (li) li.classList.toggle('speaking', speaking);
  });
  globalEvent.on('mediaVerification', ({ userID, code }) => {
    ui.codes.set(userID, code);
    renderCodes();
  });
  globalEvent.on('mediaAudioOnly', ({ on }) => {
    ui.audioOnly = on;
    if (!inCall()) return;
    flash(on
      ? 'Your connection is too slow for video: the others hear you but no longer see you.'
      : 'Your connection has recovered: the others see you again.');
  });
  globalEvent.on('mediaFailed', ({ userID, reason }) => {
    if (!inCall()) return;
    removeTile(userID);
    flash(`The connection with ${nameOf(userID)} was lost: ${reason}`);
  });
  globalEvent.on('mediaDeviceUnavailable', ({ device, reason }) => {
    // Media starts before the call screen shows (with the invite or the accept): keep
    // the note for it.
    const text = {
      microphone: `No microphone could be opened (${reason}): the others hear a test tone.`,
      speakers: `No speakers could be opened (${reason}): you will not hear the call.`,
      camera: `No camera could be used (${reason}): the others see a test pattern.`,
      screen: `The screen could not be shared (${reason}): the others see a test pattern.`,
    }[device] || `A device could not be opened (${device}: ${reason}).`;
    // Several can fail as a call starts (microphone and camera): say all of them.
    ui.deviceNotice = ui.deviceNotice ? `${ui.deviceNotice} ${text}` : text;
    if (inCall()) flash(ui.deviceNotice);
  });
  globalEvent.on('mediaEnded', () => {
    ui.deviceNotice = '';
    ui.audioOnly = false;
  });
  tincan.subscribeFrames(onFrame);
  wireSelfView();
  loadDevices();
  loadProcessing();
}

// Settings: the sound devices and the camera, remembered in this window's storage and
// handed to the core.
const DEVICE_KEY = 'tincan.devices';

async function loadDevices() {
  const saved = JSON.parse(localStorage.getItem(DEVICE_KEY) || '{}');
  const choice = {
    microphone: saved.microphone || 'default',
    speakers: saved.speakers || 'default',
    camera: saved.camera || 'default',
  };
  const res = await tincan.getMediaDevices();
  const list = res.errCode === 0 ? res.data : { microphones: [], speakers: [], cameras: [] };
  const options = {
    microphone: [[['default', 'Default microphone'], ['tone', 'Test tone']], list.microphones],
    speakers: [[['default', 'Default speakers'], ['none', 'No sound']], list.speakers],
    camera: [[['default', 'Default camera'], ['pattern', 'Test pattern']], list.cameras || []],
  };
  // The same choice in Settings and on the call screen.
  for (const select of /** @type {HTMLSelectElement[]} */ (Array.from(document.querySelectorAll('select[data-device]')))) {
    const device = /** @type {keyof typeof choice} */ (select.dataset.device);
    const [fixed, devices] = /** @type {[string[][], { id: string; name: string }[]]} */ (options[device]);
    fillDevices(select, fixed, devices, choice[device]);
    select.addEventListener('change', () => saveDevices(select));
  }
  await tincan.setMediaDevices(choice);
}

/**
 * @param {HTMLSelectElement} select
 * @param {string[][]} fixed
 * @param {{ id: string; name: string }[]} devices
 * @param {string} chosen
 */
function fillDevices(select, fixed, devices, chosen) {
  select.replaceChildren();
  for (const [id, name] of fixed) select.append(el('option', { value: id }, name));
  for (const d of devices) select.append(el('option', { value: d.id }, d.name));
  select.value = Array.from(select.options).some((o) => o.value === chosen) ? chosen : fixed[0][0];
}

// Applies at once, to the call in progress too.
/** @param {HTMLSelectElement} changed */
async function saveDevices(changed) {
  for (const other of all(`select[data-device="${changed.dataset.device}"]`)) other.value = changed.value;
  const choice = {
    microphone: $('settings-microphone').value,
    speakers: $('settings-speakers').value,
    camera: $('settings-camera').value,
  };
  localStorage.setItem(DEVICE_KEY, JSON.stringify(choice));
  const res = await tincan.setMediaDevices(choice);
  if (res.errCode !== 0) notice(`Could not change the devices: ${explain(res)}`);
}

// Settings: echo cancellation and noise suppression (on unless turned off), remembered
// in this window's storage; the same checkboxes in Settings and on the call screen, and
// a change reaches the call in progress at once.
const PROCESSING_KEY = 'tincan.processing';

function processingChoice() {
  const saved = JSON.parse(localStorage.getItem(PROCESSING_KEY) || '{}');
  return {
    echoCancellation: saved.echoCancellation !== false,
    noiseSuppression: saved.noiseSuppression !== false,
  };
}

async function loadProcessing() {
  const choice = processingChoice();
  for (const box of all('input[data-processing]')) {
    box.checked = choice[/** @type {keyof AudioProcessing} */ (box.dataset.processing)];
    box.addEventListener('change', () => saveProcessing(box));
  }
  await tincan.setAudioProcessing(choice);
}

/** @param {HTMLInputElement} changed */
async function saveProcessing(changed) {
  const choice = processingChoice();
  choice[/** @type {keyof AudioProcessing} */ (changed.dataset.processing)] = changed.checked;
  for (const box of all(`input[data-processing="${changed.dataset.processing}"]`)) box.checked = changed.checked;
  localStorage.setItem(PROCESSING_KEY, JSON.stringify(choice));
  const res = await tincan.setAudioProcessing(choice);
  if (res.errCode !== 0) notice(`Could not change the sound processing: ${explain(res)}`);
}

export function inCall() {
  return ui.call && ui.call.kind === 'in-call';
}

// The tile of `userID` in the call in progress, created on first use.
/**
 * @param {string} userID
 * @returns {import('./page').Tile | null}
 */
export function tile(userID) {
  if (!inCall() || userID === ui.me.userID) return null;
  const call = ui.call;
  call.tiles = call.tiles || new Map();
  if (!call.tiles.has(userID)) {
    const canvas = el('canvas', { testid: `video-canvas-${userID}`, width: '320', height: '240' });
    canvas.hidden = call.media === 'audio';
    const state = el('span', { class: 'small', testid: `video-state-${userID}` });
    const counter = el('span', { class: 'small counter', testid: `video-counter-${userID}` });
    const avatar = el('div', { class: 'avatar', testid: `avatar-${userID}`, 'data-hue': String(hueOf(userID)), 'aria-hidden': 'true' }, initials(nameOf(userID)));
    const who = el('span', { class: 'who', title: nameOf(userID) }, nameOf(userID));
    const node = el('figure', { class: 'tile no-video', testid: `video-tile-${userID}` }, canvas, avatar, el('figcaption', {}, who, state, counter));
    $('video-grid').append(node);
    call.tiles.set(userID, { node, canvas, state, counter, peer: 'connecting', mic: true, camera: call.media === 'video', screen: false, frames: 0, speaking: false });
    renderTile(userID);
    layoutGrid();
  }
  return call.tiles.get(userID);
}

/** @param {string} userID */
export function removeTile(userID) {
  const tiles = inCall() && ui.call.tiles;
  if (!tiles || !tiles.has(userID)) return;
  tiles.get(userID).node.remove();
  tiles.delete(userID);
  layoutGrid();
}

// The grid's columns for the number of tiles (1, 2, 3–4, 5–9, 10–16, more), as Element
// Call and Zoom's gallery do. In a group call our own picture is one of the tiles; in a
// one-to-one call the far end fills the stage and we float over it (placeSelfView).
export function layoutGrid() {
  if (!inCall()) return;
  const grid = $('video-grid');
  const self = $('self-view');
  const inGrid = Boolean(ui.call.groupID) && !self.hidden;
  if (inGrid) grid.append(self); // last, after the others
  else if (self.parentElement === grid) grid.after(self);
  self.classList.toggle('in-grid', inGrid);
  const n = grid.children.length;
  const cols = n <= 1 ? 1 : n <= 4 ? 2 : n <= 9 ? 3 : n <= 16 ? 4 : 5;
  grid.dataset.count = String(n);
  grid.dataset.cols = String(cols);
  if (inGrid) self.style.left = self.style.top = '';
  else placeSelfView();
}

// A person's initials for their avatar: the first letters of up to two words.
/** @param {string} name */
function initials(name) {
  const words = String(name).split(/[\s._@-]+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[1]] : [words[0] || '?'];
  return letters.map((w) => Array.from(w)[0]).join('').toUpperCase();
}

// A stable colour (one of 8, style.css) per person.
/** @param {string} userID */
function hueOf(userID) {
  let h = 0;
  for (const c of String(userID)) h = (h * 31 + c.codePointAt(0)) >>> 0;
  return h % 8;
}

/** @param {string} userID */
function renderTile(userID) {
  const t = ui.call.tiles.get(userID);
  const words = [PEER_WORDS[/** @type {keyof typeof PEER_WORDS} */ (t.peer)] ?? t.peer];
  if (!t.mic) words.push('muted');
  if (!t.camera && ui.call.media === 'video') words.push('camera off');
  else if (t.screen) words.push('sharing a screen');
  t.state.textContent = words.filter(Boolean).join(', ');
  t.state.dataset.mic = String(t.mic);
  t.state.dataset.camera = String(t.camera);
  t.state.dataset.screen = String(t.screen);
  t.node.classList.toggle('screen', t.screen);
  t.canvas.setAttribute('aria-label', t.screen ? `${nameOf(userID)}'s screen` : `${nameOf(userID)}'s camera`);
  t.state.dataset.peer = t.peer;
  // The avatar stands in until pictures arrive, and while the camera is off.
  const video = ui.call.media === 'video' && t.frames > 0 && (t.camera || t.screen);
  t.node.classList.toggle('no-video', !video);
}

// One picture from the core: a small header, then RGBA pixels.
/** @param {ArrayBuffer} buffer */
function onFrame(buffer) {
  if (!inCall() || !(buffer instanceof ArrayBuffer)) return;
  const view = new DataView(buffer);
  const kind = view.getUint8(0);
  const n = view.getUint8(1);
  const userID = new TextDecoder().decode(new Uint8Array(buffer, 2, n));
  let at = 2 + n;
  const width = view.getUint16(at, true);
  const height = view.getUint16(at + 2, true);
  const counter = view.getUint32(at + 4, true);
  const latency = view.getUint32(at + 8, true);
  at += 12;
  const pixels = new Uint8ClampedArray(buffer, at, width * height * 4);
  const canvas = kind === 1 ? canvasOf('local-preview') : tile(userID)?.canvas;
  if (!canvas) return;
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  canvas.getContext('2d').putImageData(new ImageData(pixels, width, height), 0, 0);
  if (kind === 1) return;
  const t = tile(userID);
  t.frames += 1;
  if (t.frames === 1) renderTile(userID);
  if (t.peer !== 'connected') {
    // Pictures arrive, so the connection is up (its event may have come before this screen).
    t.peer = 'connected';
    renderTile(userID);
  }
  t.counter.dataset.frames = String(t.frames);
  if (counter !== 0xffffffff) {
    t.counter.textContent = `#${counter}`;
    t.counter.dataset.counter = String(counter);
    t.counter.dataset.latencyMs = (latency / 1000).toFixed(1);
  }
}

// The verification code of each connection (docs/security.md), shown on demand.
function renderCodes() {
  const box = $('verify-codes');
  box.replaceChildren();
  for (const [userID, code] of ui.codes) {
    box.append(el('li', { testid: `verify-code-${userID}` }, `${nameOf(userID)}: `, el('strong', {}, code)));
  }
  if (ui.codes.size === 0) box.append(el('li', {}, 'Not connected yet.'));
}

export function toggleVerify() {
  togglePanel('verify-call', 'verify-panel');
  renderCodes();
}

// The call screen's panels (verification code, connection details, devices, the share
// chooser): one open at a time, over the stage; Escape closes it (onKey).
const PANELS = [['verify-call', 'verify-panel'], ['quality-indicator', 'quality-panel'], ['call-devices', 'devices-panel'], [null, 'share-chooser']];

/**
 * @param {string | null} button
 * @param {string} panel
 */
export function togglePanel(button, panel) {
  const open = $(panel).hidden;
  closePanels();
  $(panel).hidden = !open;
  if (button) $(button).setAttribute('aria-expanded', String(open));
}

/** Closes the open panel; whether one was open. */
export function closePanels() {
  let closed = false;
  for (const [button, panel] of PANELS) {
    closed = closed || !$(panel).hidden;
    $(panel).hidden = true;
    if (button) $(button).setAttribute('aria-expanded', 'false');
  }
  return closed;
}

// Quality as an indicator: good / fair / poor from the figures of the worst link.
/**
 * @param {import('./openim').MediaQuality} q
 * @param {boolean | undefined} audioOnly
 * @returns {keyof typeof QUALITY_WORDS}
 */
function qualityLevel(q, audioOnly) {
  const loss = q.loss || 0;
  const rtt = q.rttMs || 0;
  if (audioOnly || loss > 0.05 || rtt > 400) return 'poor';
  if (loss > 0.01 || rtt > 150) return 'fair';
  return 'good';
}

const QUALITY_WORDS = { good: 'Good', fair: 'Fair', poor: 'Poor', unknown: 'Connecting' };

/** @param {keyof typeof QUALITY_WORDS} level */
function showQuality(level) {
  const b = $('quality-indicator');
  b.dataset.level = level;
  $('quality-word').textContent = QUALITY_WORDS[level];
  b.setAttribute('aria-label', `Connection ${QUALITY_WORDS[level].toLowerCase()}: show the details`);
}

export function resetQuality() {
  showQuality('unknown');
  $('media-quality').textContent = 'No figures yet.';
}

// Self-view: where it floats in a one-to-one call, kept inside the stage; dragged with
// the pointer or moved with the arrow keys.
/**
 * @param {number} [left]
 * @param {number} [top]
 */
export function placeSelfView(left, top) {
  const self = $('self-view');
  const stage = $('call-stage');
  if (self.hidden || self.classList.contains('in-grid') || stage.offsetParent === null) return;
  if (left === undefined) {
    if (!self.style.left) return; // still in its corner (style.css)
    left = parseFloat(self.style.left);
    top = parseFloat(self.style.top);
  }
  const maxX = Math.max(0, stage.clientWidth - self.offsetWidth);
  const maxY = Math.max(0, stage.clientHeight - self.offsetHeight);
  self.style.left = `${Math.min(Math.max(0, left), maxX)}px`;
  self.style.top = `${Math.min(Math.max(0, top), maxY)}px`;
  self.style.right = self.style.bottom = 'auto';
}

function wireSelfView() {
  const self = $('self-view');
  /** @type {{ x: number; y: number } | null} */
  let grab = null;
  self.addEventListener('pointerdown', (e) => {
    if (self.classList.contains('in-grid') || e.button !== 0) return;
    grab = { x: e.clientX - self.offsetLeft, y: e.clientY - self.offsetTop };
    self.setPointerCapture(e.pointerId);
    self.classList.add('dragging');
  });
  self.addEventListener('pointermove', (e) => {
    if (grab) placeSelfView(e.clientX - grab.x, e.clientY - grab.y);
  });
  const drop = () => {
    grab = null;
    self.classList.remove('dragging');
  };
  self.addEventListener('pointerup', drop);
  self.addEventListener('pointercancel', drop);
  self.addEventListener('keydown', (e) => {
    const step = e.shiftKey ? 64 : 16;
    const d = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[e.key];
    if (!d || self.classList.contains('in-grid')) return;
    e.preventDefault();
    placeSelfView(self.offsetLeft + d[0], self.offsetTop + d[1]);
  });
  // A smaller window never leaves it outside.
  window.addEventListener('resize', () => placeSelfView());
  // Notes over the stage go away by themselves, or at a click.
  const toast = $('in-call-error');
  toast.title = 'Click to dismiss';
  toast.addEventListener('click', () => (toast.hidden = true));
}

export function clearMedia() {
  ui.codes.clear();
  closePanels();
  // Our picture lives in the grid during group calls: out of it before the grid empties.
  const self = $('self-view');
  if (self.parentElement === $('video-grid')) $('video-grid').after(self);
  self.classList.remove('in-grid');
  self.style.left = self.style.top = self.style.right = self.style.bottom = '';
  $('video-grid').replaceChildren();
  $('video-grid').dataset.count = '0';
  $('media-quality').textContent = '';
  const preview = canvasOf('local-preview');
  preview.getContext('2d').clearRect(0, 0, preview.width, preview.height);
}

export async function toggleMute() {
  const call = ui.call;
  if (!call) return;
  call.muted = !call.muted;
  renderToggles();
  const res = await tincan.setMicrophone(!call.muted);
  if (res.errCode !== 0 && ui.call === call) flash(`Could not change the microphone: ${explain(res)}`);
}

export async function toggleCamera() {
  const call = ui.call;
  if (!call) return;
  call.cameraOff = !call.cameraOff;
  renderToggles();
  $('local-state').textContent = localState(call);
  const res = await tincan.setCamera(!call.cameraOff);
  if (res.errCode !== 0 && ui.call === call) flash(`Could not change the camera: ${explain(res)}`);
}

// Screen sharing: the button opens the chooser (what screens() lists), or stops sharing.
export async function toggleSharing() {
  const call = ui.call;
  if (!call) return;
  if (call.sharing) return stopSharing(call);
  const res = await tincan.getScreens();
  if (ui.call !== call) return;
  const list = res.errCode === 0 ? res.data : [];
  if (!list.length) {
    flash(res.errCode === 0
      ? 'Nothing can be shared here: screen sharing needs an X11 session or the desktop portal (Wayland).'
      : `Could not list the screens: ${explain(res)}`);
    return;
  }
  const select = $('share-source');
  select.replaceChildren();
  for (const s of list) select.append(el('option', { value: s.id, 'data-kind': s.kind }, s.name));
  togglePanel(null, 'share-chooser');
}

export async function startSharing() {
  const call = ui.call;
  const id = $('share-source').value;
  if (!call || !id) return;
  $('share-chooser').hidden = true;
  call.sharing = id;
  renderToggles();
  $('local-state').textContent = localState(call);
  const res = await tincan.shareScreen(id);
  if (res.errCode !== 0 && ui.call === call) {
    call.sharing = null;
    renderToggles();
    $('local-state').textContent = localState(call);
    flash(`Could not share the screen: ${explain(res)}`);
  }
}

/** @param {import('./page').Call} call */
async function stopSharing(call) {
  call.sharing = null;
  renderToggles();
  $('local-state').textContent = localState(call);
  const res = await tincan.shareScreen(null);
  // Back to the camera, on or off as its button says.
  if (res.errCode === 0) await tincan.setCamera(!call.cameraOff);
  else if (ui.call === call) flash(`Could not stop sharing: ${explain(res)}`);
}
