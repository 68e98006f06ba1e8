//! Screen sharing: which screens and windows can be shared, and opening one as a
//! [`VideoSource`].
//!
//! Two ways to capture, chosen by what the desktop offers:
//! - X11 ([`x11`]): the X server's screens, its monitors and its top-level windows, read
//!   with `GetImage` (through MIT-SHM when the server offers it). Works under Xvfb, so it
//!   is what the tests share.
//! - Wayland: the xdg-desktop-portal ScreenCast interface and PipeWire (`portal`); the
//!   user picks the screen or window in the system's own dialog, so it is one entry.
//!
//! A source's id says where it lives: `screen:N` (a whole X screen), `monitor:NAME` (one
//! monitor of it, RandR), `window:0xID` (one top-level window), `portal` (the system's
//! dialog). An X id may start with the display it is on and a slash (`:5/screen:0`);
//! without one, `$DISPLAY` is used. `default` is the first screen there is.
//!
//! Shared pictures are sent at their own size up to 1920×1080 (aspect kept), at
//! [`SHARE_FPS`], with the encoder tuned for screen content ([`share_settings`]).

mod convert;
mod pending;
mod portal;
pub mod x11;

pub use portal::{open_portal, portal_available, PortalScreen};

use serde::Serialize;

use crate::error::MediaError;
use crate::source::{VideoSettings, VideoSource};

/// Frames per second of a shared screen: text and slides change a few times a second,
/// and a lower rate leaves bits for sharp text.
pub const SHARE_FPS: u32 = 10;
/// The largest picture shared; bigger screens are scaled down, keeping their aspect.
pub const SHARE_MAX: (usize, usize) = (1920, 1080);
/// Bitrate of a full 1920×1080 share; smaller shares get proportionally less, down to
/// [`SHARE_MIN_BPS`]. Screen content is mostly still, so this buys sharp text.
pub const SHARE_BPS_1080P: u32 = 2_500_000;
pub const SHARE_MIN_BPS: u32 = 400_000;

/// What kind of thing a [`ScreenSource`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ScreenKind {
    /// A whole X screen (every monitor of it).
    Screen,
    /// One monitor.
    Monitor,
    /// One top-level window.
    Window,
    /// Whatever the user picks in the desktop portal's dialog (Wayland).
    Portal,
}

/// Something that can be shared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScreenSource {
    /// What [`crate::VideoInput::Screen`] takes.
    pub id: String,
    /// For people: "Screen 0 (1920×1080)", a window's title.
    pub name: String,
    pub kind: ScreenKind,
}

/// Why nothing can be shared, for people.
pub const NO_SCREEN_CAPTURE: &str =
    "screen sharing needs an X11 session or the desktop portal (Wayland)";

/// What can be shared here: the X display's screens, monitors and windows (`$DISPLAY`),
/// and the portal's entry when the desktop has one. Empty when there is neither; this
/// talks to the X server, so call it off async threads.
pub fn screens() -> Vec<ScreenSource> {
    let mut list = if x_display_set() {
        x11::sources(None).unwrap_or_else(|e| {
            tracing::debug!(error = %e, "no X11 screens to share");
            Vec::new()
        })
    } else {
        Vec::new()
    };
    list.extend(portal_entry());
    list
}

/// The sources of one X display (`:5`), with ids that name it: for tests and for a
/// display other than `$DISPLAY`.
pub fn screens_on(display: &str) -> Result<Vec<ScreenSource>, MediaError> {
    x11::sources(Some(display))
}

/// The portal's entry, when the desktop offers one.
fn portal_entry() -> Option<ScreenSource> {
    portal_available().then(|| ScreenSource {
        id: PORTAL_ID.to_owned(),
        name: "Screen or window (chosen in the system's dialog)".to_owned(),
        kind: ScreenKind::Portal,
    })
}

/// The id of the portal's entry.
pub const PORTAL_ID: &str = "portal";

/// Whether an X display is named in `$DISPLAY`.
fn x_display_set() -> bool {
    std::env::var("DISPLAY").is_ok_and(|d| !d.is_empty())
}

/// Opens the source `id` names (see the module doc), capturing at the size of `frame`
/// that the caller passes to each [`VideoSource::capture`]; see [`native_size`].
/// `default` is the X display's first screen, or the portal where there is no X display.
pub fn open(id: &str, settings: &VideoSettings) -> Result<Box<dyn VideoSource>, MediaError> {
    let id = match id {
        "default" | "" if x_display_set() => "screen:0",
        "default" | "" => PORTAL_ID,
        id => id,
    };
    if id == PORTAL_ID {
        // The portal's dialog waits for the user: ask on a thread of its own, so the
        // capture thread (and hanging up, which joins it) never waits for the dialog.
        let settings = *settings;
        let x_display = x_display_set();
        let pending =
            pending::Pending::start("tincan-portal", move || match open_portal(&settings) {
                Ok(p) => Ok(Box::new(p) as Box<dyn VideoSource>),
                Err(e) if !x_display => {
                    Err(MediaError::Device(format!("{e} ({NO_SCREEN_CAPTURE})")))
                }
                Err(e) => Err(e),
            })?;
        return Ok(Box::new(pending));
    }
    let (display, target) = split_display(id);
    if display.is_none() && !x_display_set() {
        return Err(MediaError::Device(format!(
            "no X display (DISPLAY is not set): {NO_SCREEN_CAPTURE}"
        )));
    }
    Ok(Box::new(x11::X11Screen::open(display, target)?))
}

/// `:5/screen:0` → (`Some(":5")`, `screen:0`); `screen:0` → (`None`, `screen:0`).
pub(crate) fn split_display(id: &str) -> (Option<&str>, &str) {
    match id.rsplit_once('/') {
        Some((display, target)) if !display.is_empty() => (Some(display), target),
        _ => (None, id),
    }
}

/// The size, rate and bitrate to share a `width`×`height` picture at: its own size up
/// to [`SHARE_MAX`] (aspect kept, even sides for I420), [`SHARE_FPS`], and a bitrate
/// by area.
pub fn share_settings(width: usize, height: usize) -> VideoSettings {
    let (max_w, max_h) = SHARE_MAX;
    let (w, h) = (width.max(2), height.max(2));
    // Scale by the tighter of the two limits, never up.
    let (mut tw, mut th) = if w * max_h > h * max_w {
        (w.min(max_w), h * w.min(max_w) / w)
    } else {
        (w * h.min(max_h) / h, h.min(max_h))
    };
    tw = (tw & !1).max(2);
    th = (th & !1).max(2);
    let area = (tw * th) as u64;
    let full = (max_w * max_h) as u64;
    let bps = (u64::from(SHARE_BPS_1080P) * area / full).max(u64::from(SHARE_MIN_BPS)) as u32;
    VideoSettings {
        width: tw,
        height: th,
        fps: SHARE_FPS,
        bitrate_bps: bps,
        grain: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_settings_keep_the_aspect_and_cap_at_1080p() {
        let s = share_settings(1920, 1080);
        assert_eq!((s.width, s.height, s.fps), (1920, 1080, SHARE_FPS));
        assert_eq!(s.bitrate_bps, SHARE_BPS_1080P);
        let s = share_settings(3840, 2160);
        assert_eq!((s.width, s.height), (1920, 1080));
        // Ultra-wide: the width limits.
        let s = share_settings(5120, 1440);
        assert_eq!((s.width, s.height), (1920, 540));
        // Portrait: the height limits.
        let s = share_settings(1080, 1920);
        assert_eq!((s.width, s.height), (606, 1080));
        // Small and odd: kept, made even, with the minimum bitrate.
        let s = share_settings(641, 481);
        assert_eq!((s.width, s.height), (640, 480));
        assert_eq!(s.bitrate_bps, SHARE_MIN_BPS);
    }

    #[test]
    fn a_display_prefix_is_split_from_the_id() {
        assert_eq!(split_display(":5/screen:0"), (Some(":5"), "screen:0"));
        assert_eq!(split_display("window:0x400001"), (None, "window:0x400001"));
        assert_eq!(split_display("/screen:0"), (None, "/screen:0"));
    }
}
