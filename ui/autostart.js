// @ts-check
// Settings → "Start Tincan when I log in": tauri-plugin-autostart's desktop entry
// (~/.config/autostart on Linux), off unless the person turns it on; the entry starts
// the app minimised (--minimized). Self-contained (an ES module that imports nothing): it
// only needs the checkbox.
(function () {
  const box = /** @type {HTMLInputElement | null} */ (
    document.querySelector('[data-testid="settings-autostart"]')
  );
  const tauri = window.__TAURI__;
  if (!box || !tauri) return;
  const invoke = (/** @type {string} */ cmd) => tauri.core.invoke(`plugin:autostart|${cmd}`);
  const show = () =>
    invoke('is_enabled')
      .then((/** @type {boolean} */ on) => {
        box.checked = Boolean(on);
        box.dataset.enabled = String(Boolean(on));
      })
      .catch((/** @type {unknown} */ e) => console.warn('autostart state', e));
  box.addEventListener('change', () => {
    box.disabled = true;
    invoke(box.checked ? 'enable' : 'disable')
      .catch((/** @type {unknown} */ e) => console.warn('autostart', e))
      .then(show)
      .finally(() => (box.disabled = false));
  });
  show();
})();
