// The part of Tauri's global API (`window.__TAURI__`, tauri.conf.json's withGlobalTauri)
// that the page uses. Absent when the page is opened outside the app.

export interface TauriEvent<T> {
  event: string;
  payload: T;
}

export interface TauriChannel<T> {
  onmessage: (message: T) => void;
}

export interface TauriGlobal {
  core: {
    invoke<T = any>(command: string, args?: Record<string, unknown>): Promise<T>;
    Channel: new <T = any>() => TauriChannel<T>;
  };
  event: {
    listen<T = unknown>(name: string, handler: (event: TauriEvent<T>) => void): Promise<() => void>;
  };
  window?: {
    getCurrentWindow(): {
      onCloseRequested(handler: () => unknown): Promise<() => void>;
    };
  };
}

declare global {
  interface Window {
    __TAURI__?: TauriGlobal;
    /** Safari's and old WebKitGTK's name for AudioContext. */
    webkitAudioContext?: typeof AudioContext;
  }
}
