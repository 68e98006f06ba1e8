// Tincan page. No bundler: the Tauri API comes from window.__TAURI__ (withGlobalTauri).
'use strict';

const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

function setStatus(state, text) {
  const status = byTestId('app-status');
  status.dataset.state = state;
  status.textContent = text;
}

async function start() {
  if (!window.__TAURI__) {
    setStatus('error', 'Not running inside the Tincan app.');
    return;
  }
  const { invoke } = window.__TAURI__.core;
  try {
    const info = await invoke('app_info');
    byTestId('app-title').textContent = info.name;
    byTestId('app-version').textContent = `v${info.version}`;
    document.title = info.name;
    setStatus('ready', 'Ready.');
  } catch (err) {
    setStatus('error', `Could not reach the app core: ${err}`);
  }
}

start();
