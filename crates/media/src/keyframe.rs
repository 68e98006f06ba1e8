//! Key-frame requests both ways, without IO: when a receiver asks for a key frame (RTCP
//! PLI), and how often a sender gives one. Time is passed in.
//!
//! Receiving: a stream starts out waiting for a key frame; until one comes, pictures are
//! not decoded (a decoder cannot start from anything else) and a request goes out. After
//! a loss (a gap in a picture, or the decoder losing its reference) a request goes out
//! too, but the pictures that follow are still decoded: the decoder conceals what it
//! can, and on a lossy link the picture keeps moving instead of freezing until each
//! key frame. Requests go out at most one per [`FIRST_RETRY`], backing off to
//! [`MAX_RETRY`] while no key frame comes: a lossy link or a far end that ignores
//! requests cannot start a storm.
//!
//! Sending: requests from every receiver mark a key frame as due; one is made at most
//! every [`MIN_KEY_FRAME_GAP`], counting the encoder's own periodic ones, and never more
//! often than the bitrate pays for ([`KEY_FRAME_SHARE`]). A request that comes within the
//! gap is served when it ends, never dropped. While the path is congested (the bandwidth
//! estimator reads a growing queue) a request waits up to [`CONGESTED_WAIT`]: a key frame
//! sent into a full queue is lost there, and it still costs its gap.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The shortest time between two requests for one stream.
pub const FIRST_RETRY: Duration = Duration::from_millis(500);
/// The longest a stream still waiting for its key frame goes between requests.
pub const MAX_RETRY: Duration = Duration::from_secs(4);
/// The shortest time between two key frames made on request.
pub const MIN_KEY_FRAME_GAP: Duration = Duration::from_millis(500);
/// The most of the video bitrate key frames made on request may take: after a key frame
/// of `b` bits at `r` bit/s the next waits `b / (r × share)`. A key frame of a grainy
/// camera at 320×240 is 18–28 KB, which at the ~250 kbit/s a 500 kbit/s link leaves for
/// video is most of a second of the whole budget: served every 500 ms, requested key
/// frames alone overran the link, were lost, and were asked for again (the network
/// lab's case (e)). libwebrtc's encoder pays for a key frame by dropping the pictures
/// after it; this keeps the requests from outrunning that.
pub const KEY_FRAME_SHARE: f64 = 0.5;
/// How long a request may wait for the path to stop being congested. In the network
/// lab's case (e) the receiver asked ~0.5 s after the cap, while the queue the cap had
/// filled was still full: the key frame was lost, and the next one waited its gap (1.3 s
/// at that bitrate), so the picture froze ~2 s. The estimator reads the queue as
/// draining some 0.5-0.8 s after the cap.
pub const CONGESTED_WAIT: Duration = Duration::from_secs(1);

/// The H.264 NAL unit type of an IDR slice.
const NAL_IDR: u8 = 5;

/// Whether an Annex-B access unit holds an IDR picture: one a decoder can start from.
pub fn is_key_frame(unit: &[u8]) -> bool {
    let mut i = 0;
    while i + 3 < unit.len() {
        if unit[i] == 0 && unit[i + 1] == 0 && unit[i + 2] == 1 {
            if unit[i + 3] & 0x1F == NAL_IDR {
                return true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

/// Whether an H.264 RTP payload (RFC 6184) carries the start of a key frame: a sequence
/// parameter set or an IDR slice, alone, first in an aggregate (STAP-A), or as the
/// first fragment (FU-A) of one.
pub fn starts_key_frame(payload: &[u8]) -> bool {
    const SPS: u8 = 7;
    const STAP_A: u8 = 24;
    const FU_A: u8 = 28;
    let key = |nal: u8| nal == NAL_IDR || nal == SPS;
    match payload.first().map(|b| b & 0x1F) {
        Some(STAP_A) => payload.get(3).is_some_and(|b| key(b & 0x1F)),
        Some(FU_A) => payload
            .get(1)
            .is_some_and(|b| b & 0x80 != 0 && key(b & 0x1F)),
        Some(nal) => key(nal),
        None => false,
    }
}

/// What to do with a complete picture that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Give it to the decoder.
    pub decode: bool,
    /// Send a key-frame request now.
    pub ask: bool,
}

/// One incoming video stream's side.
#[derive(Debug, Clone)]
pub struct Receiving {
    waiting: bool,
    last_request: Option<Instant>,
    retry: Duration,
}

impl Default for Receiving {
    fn default() -> Self {
        Receiving::new()
    }
}

impl Receiving {
    /// A new stream: nothing can be decoded before its first key frame.
    pub fn new() -> Receiving {
        Receiving {
            waiting: true,
            last_request: None,
            retry: FIRST_RETRY,
        }
    }

    /// Whether the stream waits for a key frame.
    pub fn waiting(&self) -> bool {
        self.waiting
    }

    /// A complete, unbroken picture arrived at `now`.
    pub fn on_picture(&mut self, key: bool, now: Instant) -> Verdict {
        if key {
            self.waiting = false;
            self.retry = FIRST_RETRY;
            return Verdict {
                decode: true,
                ask: false,
            };
        }
        if self.waiting {
            return Verdict {
                decode: false,
                ask: self.may_ask(now),
            };
        }
        Verdict {
            decode: true,
            ask: false,
        }
    }

    /// A picture was lost or broken, or the decoder lost its reference, at `now`.
    /// Returns whether to send a request now.
    pub fn on_loss(&mut self, now: Instant) -> bool {
        self.may_ask(now)
    }

    fn may_ask(&mut self, now: Instant) -> bool {
        let due = match self.last_request {
            None => true,
            Some(last) => now.saturating_duration_since(last) >= self.retry,
        };
        if !due {
            return false;
        }
        if self.last_request.is_some() {
            // The last request went unanswered: ask less often.
            self.retry = (self.retry * 2).min(MAX_RETRY);
        }
        self.last_request = Some(now);
        true
    }
}

/// The encoder's side: requests from every receiver, served at a bounded rate.
#[derive(Debug, Clone, Default)]
pub struct Sending {
    /// Since when a request waits.
    due: Option<Instant>,
    /// When the next key frame may be made on request.
    next_key: Option<Instant>,
    congested: bool,
}

impl Sending {
    /// A receiver asked for a key frame at `now`.
    pub fn request(&mut self, now: Instant) {
        self.due.get_or_insert(now);
    }

    /// Whether the path is congested now (see [`CONGESTED_WAIT`]).
    pub fn set_congested(&mut self, congested: bool) {
        self.congested = congested;
    }

    /// Before encoding a picture at `now`: whether to make it a key frame.
    pub fn force_now(&self, now: Instant) -> bool {
        let Some(since) = self.due else {
            return false;
        };
        self.next_key.is_none_or(|next| now >= next)
            && (!self.congested || now.saturating_duration_since(since) >= CONGESTED_WAIT)
    }

    /// A key frame of `bytes` went out at `now` (asked for or the encoder's own) from an
    /// encoder aiming at `bitrate_bps`: it serves every request so far, and the next
    /// waits at least [`MIN_KEY_FRAME_GAP`], longer if this one cost more than
    /// [`KEY_FRAME_SHARE`] of the bitrate would pay for in that time.
    pub fn key_frame_sent(&mut self, now: Instant, bytes: usize, bitrate_bps: u32) {
        self.due = None;
        let paid = f64::from(bitrate_bps.max(1)) * KEY_FRAME_SHARE;
        let gap = Duration::from_secs_f64((bytes as f64 * 8.0 / paid).min(3600.0));
        self.next_key = Some(now + gap.max(MIN_KEY_FRAME_GAP));
    }
}

/// Raised by a decoder that lost its reference (or could not start), taken by the task
/// that can send the request; shared between the two threads.
#[derive(Debug, Default)]
pub struct DecoderLoss(AtomicBool);

impl DecoderLoss {
    pub fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether it was raised since the last call.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const IDR: &[u8] = &[
        0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 9,
    ];
    const P: &[u8] = &[0, 0, 0, 1, 0x41, 9, 9, 0, 0, 1, 0x41, 8];

    #[test]
    fn an_idr_slice_makes_a_key_frame() {
        assert!(is_key_frame(IDR));
        assert!(!is_key_frame(P));
        assert!(!is_key_frame(&[]));
        assert!(!is_key_frame(&[0, 0, 1]));
    }

    #[test]
    fn a_stream_waits_for_its_first_key_frame_and_asks_at_once() {
        let t0 = Instant::now();
        let mut r = Receiving::new();
        assert_eq!(
            r.on_picture(false, t0),
            Verdict {
                decode: false,
                ask: true
            }
        );
        // Within the retry time: dropped, no second request.
        assert_eq!(
            r.on_picture(false, t0 + ms(100)),
            Verdict {
                decode: false,
                ask: false
            }
        );
        assert_eq!(
            r.on_picture(true, t0 + ms(150)),
            Verdict {
                decode: true,
                ask: false
            }
        );
        assert!(!r.waiting());
        assert!(r.on_picture(false, t0 + ms(180)).decode);
    }

    #[test]
    fn unanswered_requests_back_off_to_the_maximum() {
        let t0 = Instant::now();
        let mut r = Receiving::new();
        // A picture every 10 ms for 20 s, and no key frame ever: requests at 0, 0.5,
        // 1.5, 3.5, 7.5, 11.5, 15.5, 19.5 s.
        let asked: Vec<u64> = (0..2000)
            .map(|i| i * 10)
            .filter(|&t| r.on_picture(false, t0 + ms(t)).ask)
            .collect();
        assert_eq!(
            asked,
            [0, 500, 1500, 3500, 7500, 11500, 15500, 19500],
            "backoff"
        );
    }

    #[test]
    fn a_key_frame_resets_the_backoff_but_not_the_minimum_gap() {
        let t0 = Instant::now();
        let mut r = Receiving::new();
        assert!(r.on_loss(t0));
        assert!(r.on_loss(t0 + ms(500)));
        r.on_picture(true, t0 + ms(600));
        // A loss right after the key frame still respects the 500 ms floor.
        assert!(!r.on_loss(t0 + ms(700)));
        assert!(r.on_loss(t0 + ms(1000)));
    }

    #[test]
    fn after_a_loss_pictures_are_still_decoded_while_a_key_frame_is_asked_for() {
        let t0 = Instant::now();
        let mut r = Receiving::new();
        r.on_picture(true, t0);
        assert!(r.on_loss(t0 + ms(10)));
        assert!(!r.waiting());
        assert_eq!(
            r.on_picture(false, t0 + ms(40)),
            Verdict {
                decode: true,
                ask: false
            }
        );
    }

    #[test]
    fn a_flood_of_requests_gives_one_key_frame_per_gap() {
        let t0 = Instant::now();
        let mut s = Sending::default();
        let mut keys = Vec::new();
        // 30 pictures a second for 3 s, a request before every one.
        for i in 0..90u64 {
            let now = t0 + ms(i * 1000 / 30);
            s.request(now);
            if s.force_now(now) {
                s.key_frame_sent(now, 2_000, 1_000_000);
                keys.push(i);
            }
        }
        assert_eq!(keys.len(), 6, "{keys:?}");
        assert!(keys.windows(2).all(|w| w[1] - w[0] >= 15), "{keys:?}");
    }

    #[test]
    fn a_request_within_the_gap_is_served_when_it_ends() {
        let t0 = Instant::now();
        let mut s = Sending::default();
        assert!(!s.force_now(t0), "nothing asked");
        // The encoder's own key frame, then a request 100 ms later.
        s.key_frame_sent(t0, 2_000, 1_000_000);
        s.request(t0 + ms(100));
        assert!(!s.force_now(t0 + ms(100)));
        assert!(s.force_now(t0 + ms(500)));
        s.key_frame_sent(t0 + ms(500), 2_000, 1_000_000);
        assert!(!s.force_now(t0 + ms(2000)), "served");
    }

    #[test]
    fn a_key_frame_starts_with_its_parameter_sets_or_its_first_idr_fragment() {
        assert!(starts_key_frame(&[0x67, 1, 2]), "SPS alone");
        assert!(starts_key_frame(&[0x65, 1]), "IDR alone");
        // STAP-A: header, 2-byte size, then the first NAL unit (an SPS).
        assert!(starts_key_frame(&[0x78, 0, 3, 0x67, 1, 2]));
        // FU-A: the first fragment of an IDR slice, not a later one.
        assert!(starts_key_frame(&[0x7C, 0x85, 9]));
        assert!(!starts_key_frame(&[0x7C, 0x05, 9]));
        // A P slice, alone and fragmented; nothing.
        assert!(!starts_key_frame(&[0x41, 9]));
        assert!(!starts_key_frame(&[0x7C, 0x81, 9]));
        assert!(!starts_key_frame(&[]));
    }

    #[test]
    fn a_request_waits_while_the_path_is_congested_but_not_for_long() {
        let t0 = Instant::now();
        let mut s = Sending::default();
        s.set_congested(true);
        s.request(t0);
        assert!(
            !s.force_now(t0 + ms(300)),
            "a key frame now would be lost in the queue"
        );
        s.set_congested(false);
        assert!(s.force_now(t0 + ms(400)), "served once the queue drains");
        s.set_congested(true);
        assert!(
            s.force_now(t0 + CONGESTED_WAIT),
            "or after the wait, whatever the path"
        );
    }

    #[test]
    fn a_key_frame_the_bitrate_cannot_pay_for_spaces_the_next_one() {
        let t0 = Instant::now();
        let mut s = Sending::default();
        // 24 KB at 250 kbit/s: 192 kbit, half of 250 kbit/s pays for it in 1.5 s.
        s.key_frame_sent(t0, 24_000, 250_000);
        s.request(t0);
        assert!(!s.force_now(t0 + ms(500)), "not at the usual gap");
        assert!(!s.force_now(t0 + ms(1500)));
        assert!(s.force_now(t0 + ms(1540)), "once it is paid for");
        // At a rate that pays for it at once, the usual gap holds.
        s.key_frame_sent(t0, 24_000, 10_000_000);
        s.request(t0);
        assert!(!s.force_now(t0 + ms(400)));
        assert!(s.force_now(t0 + ms(500)));
    }

    /// The capture thread, asked for a key frame before every picture it sends, makes
    /// one only every [`MIN_KEY_FRAME_GAP`].
    #[test]
    fn the_capture_thread_rate_limits_a_flood_of_requests() {
        use crate::config::VideoInput;
        use crate::source::{capture_loop, CaptureCommand, VideoSettings};

        let (commands, command_rx) = std::sync::mpsc::channel();
        let (out_tx, mut out) = tokio::sync::mpsc::channel(2);
        let (events_tx, _events) = tokio::sync::mpsc::channel(64);
        let settings = VideoSettings {
            width: 160,
            height: 120,
            fps: 30,
            bitrate_bps: 300_000,
            grain: 0,
        };
        let capture = std::thread::spawn(move || {
            capture_loop(
                VideoInput::TestPattern,
                settings,
                true,
                command_rx,
                out_tx,
                events_tx,
                0,
            )
        });
        commands.send(CaptureCommand::Audience(true)).unwrap();
        let started = Instant::now();
        let mut keys = 0;
        // 60 pictures: 2 s at 30 a second (the encoder's own period is 2 s too).
        for _ in 0..60 {
            commands.send(CaptureCommand::KeyFrame).unwrap();
            let picture = out.blocking_recv().expect("a picture");
            keys += usize::from(is_key_frame(&picture.data));
        }
        let elapsed = started.elapsed();
        drop(commands);
        capture.join().unwrap();
        // One per 500 ms at most, the first picture's included, plus one for rounding.
        let most = (elapsed.as_millis() / MIN_KEY_FRAME_GAP.as_millis()) as usize + 2;
        assert!(
            (2..=most).contains(&keys),
            "{keys} key frames in {elapsed:?} of requests before every picture"
        );
    }
}
