//! A video stream's packets put back in sequence order, waiting a little for the ones
//! that are missing: without IO (time is passed in).
//!
//! Without it the receiver assembled pictures in arrival order and called a picture
//! broken at the first gap, so a lost packet's resend, which arrives a round trip later
//! behind newer packets, could repair nothing. Worse, it came with an older timestamp, so
//! it cut the picture then being assembled in two and broke that one too: on a lossy link
//! every resend cost a picture (the network lab's case (e): bob saw no picture for the
//! whole minute under a 500 kbit/s cap). Here a packet after a gap is held until the
//! missing ones arrive (the far end's NACK brings them a round trip later) or
//! [`MAX_WAIT`] has passed; then the gap is given up and reported, and what was held
//! goes on. Packets that come after their place was given up, and copies of packets
//! already passed on, are dropped. A stream with no loss is not delayed at all.
//!
//! A packet that starts a key frame ends every wait before it: nothing before a key
//! frame is needed to decode what follows, and the sender resends nothing from before
//! its latest key frame ([`crate::peer::resends`]). Without this the key frame asked
//! for after a burst of loss waited behind the burst's gaps, each given up in turn.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long packets after a gap wait for the missing ones: a NACK goes out within
/// 100 ms of the gap and its answer comes a round trip later, behind the bottleneck's
/// queue (the network lab's thin links: up to ~250 ms).
pub const MAX_WAIT: Duration = Duration::from_millis(400);
/// The most packets held behind a gap (a second of 2 Mbit/s video). A stream that jumps
/// further ahead than this restarts there: waiting would not bring those packets back.
pub const MAX_HELD: usize = 256;

/// What comes out, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released<P> {
    /// The next packet.
    Packet(P),
    /// Packets were lost for good here: the picture they belonged to cannot be decoded.
    Gap,
}

/// One stream's reordering.
#[derive(Debug)]
pub struct Reorder<P> {
    /// The position expected next: its sequence number extended past 16 bits, so that
    /// positions order as the stream does across wraps; `None` before the first packet.
    next: Option<u64>,
    /// Packets after a gap, by position.
    held: BTreeMap<u64, P>,
    /// Since when the oldest gap has been waited for.
    waiting_since: Option<Instant>,
}

impl<P> Default for Reorder<P> {
    fn default() -> Self {
        Reorder {
            next: None,
            held: BTreeMap::new(),
            waiting_since: None,
        }
    }
}

impl<P> Reorder<P> {
    /// Takes packet `seq` arriving at `now`, which starts a key frame when `restart`;
    /// returns what can go on, in order.
    pub fn push(&mut self, seq: u16, packet: P, restart: bool, now: Instant) -> Vec<Released<P>> {
        let mut out = Vec::new();
        let next = *self.next.get_or_insert(u64::from(seq));
        let ahead = seq.wrapping_sub(next as u16);
        if ahead >= 0x8000 {
            // Behind `next`: a copy of a packet passed on, or one given up on.
            self.expire(now, &mut out);
            return out;
        }
        let position = next + u64::from(ahead);
        if usize::from(ahead) > MAX_HELD {
            // Far ahead: the stream moved on; what was held is from before the jump.
            self.skip_to(next, position, true, now, &mut out);
        } else if restart && position > next {
            // Whatever is missing before a key frame is given up at once. No gap is
            // marked right before the key frame: it is whole, and a picture whose end
            // went missing is dropped when the key frame begins.
            self.skip_to(next, position, false, now, &mut out);
        }
        if self.next == Some(position) {
            out.push(Released::Packet(packet));
            self.release_from(position + 1, &mut out);
        } else {
            self.held.entry(position).or_insert(packet);
            self.waiting_since.get_or_insert(now);
            self.expire(now, &mut out);
        }
        out
    }

    /// Stops waiting for what is missing before `position` (`next` being the first
    /// position missing): what was held before it goes on, a gap marking each hole (and
    /// one after them when `gap`); what was held after it waits on, from `now`.
    fn skip_to(
        &mut self,
        next: u64,
        position: u64,
        gap: bool,
        now: Instant,
        out: &mut Vec<Released<P>>,
    ) {
        let after = self.held.split_off(&position);
        self.release_held(next, out);
        if gap {
            out.push(Released::Gap);
        }
        self.held = after;
        self.next = Some(position);
        self.waiting_since = (!self.held.is_empty()).then_some(now);
    }

    /// `position` is the next one: pass on the held packets that follow on from it.
    fn release_from(&mut self, mut position: u64, out: &mut Vec<Released<P>>) {
        while let Some(p) = self.held.remove(&position) {
            out.push(Released::Packet(p));
            position += 1;
        }
        self.next = Some(position);
        if self.held.is_empty() {
            self.waiting_since = None;
        }
    }

    /// Gives up the oldest gap if it has been waited for long enough.
    fn expire(&mut self, now: Instant, out: &mut Vec<Released<P>>) {
        let Some(since) = self.waiting_since else {
            return;
        };
        if now.saturating_duration_since(since) < MAX_WAIT {
            return;
        }
        let Some(&first) = self.held.keys().next() else {
            return;
        };
        out.push(Released::Gap);
        self.release_from(first, out);
        if !self.held.is_empty() {
            // The next gap gets its own wait, from now.
            self.waiting_since = Some(now);
        }
    }

    /// Passes on everything held, in order, marking each gap (`next` is the first
    /// position still missing).
    fn release_held(&mut self, next: u64, out: &mut Vec<Released<P>>) {
        let mut expected = next;
        for (position, p) in std::mem::take(&mut self.held) {
            if position != expected {
                out.push(Released::Gap);
            }
            out.push(Released::Packet(p));
            expected = position + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn packets(out: &[Released<u16>]) -> Vec<Option<u16>> {
        out.iter()
            .map(|r| match r {
                Released::Packet(p) => Some(*p),
                Released::Gap => None,
            })
            .collect()
    }

    #[test]
    fn a_key_frame_after_a_gap_goes_on_at_once() {
        let t0 = Instant::now();
        let mut r = Reorder::default();
        r.push(1, 1, false, t0);
        // 2 and 4 lost; 3 held; 5 starts a key frame: 3 goes on after a gap (its picture
        // is broken), then 5, with no gap before it.
        assert!(r.push(3, 3, false, t0).is_empty());
        assert_eq!(packets(&r.push(5, 5, true, t0)), [None, Some(3), Some(5)]);
        // Later packets wait for gaps after the key frame as usual.
        assert!(r.push(7, 7, false, t0 + ms(10)).is_empty());
        assert_eq!(
            packets(&r.push(6, 6, false, t0 + ms(20))),
            [Some(6), Some(7)]
        );
        // Nothing held: the key frame after a gap goes on alone.
        assert_eq!(packets(&r.push(9, 9, true, t0 + ms(30))), [Some(9)]);
        // A late copy of 4 or 8 is dropped.
        assert!(r.push(4, 4, false, t0 + ms(40)).is_empty());
        assert!(r.push(8, 8, false, t0 + ms(40)).is_empty());
    }

    #[test]
    fn packets_in_order_go_on_at_once() {
        let t0 = Instant::now();
        let mut r = Reorder::default();
        for seq in [65534u16, 65535, 0, 1] {
            assert_eq!(packets(&r.push(seq, seq, false, t0)), [Some(seq)]);
        }
    }

    #[test]
    fn a_resend_fills_its_gap_and_what_waited_behind_it_follows_in_order() {
        let t0 = Instant::now();
        let mut r = Reorder::default();
        assert_eq!(packets(&r.push(10, 10, false, t0)), [Some(10)]);
        // 11 is lost; 12 and 13 wait for it.
        assert!(r.push(12, 12, false, t0 + ms(10)).is_empty());
        assert!(r.push(13, 13, false, t0 + ms(20)).is_empty());
        // Its resend, a round trip later.
        assert_eq!(
            packets(&r.push(11, 11, false, t0 + ms(250))),
            [Some(11), Some(12), Some(13)]
        );
        // A second copy of it is dropped, not mistaken for a new picture's start.
        assert!(r.push(11, 11, false, t0 + ms(300)).is_empty());
        assert_eq!(packets(&r.push(14, 14, false, t0 + ms(310))), [Some(14)]);
    }

    #[test]
    fn a_gap_nobody_fills_is_given_up_after_the_wait_and_reported() {
        let t0 = Instant::now();
        let mut r = Reorder::default();
        r.push(1, 1, false, t0);
        assert!(r.push(3, 3, false, t0 + ms(10)).is_empty());
        assert!(
            r.push(4, 4, false, t0 + MAX_WAIT).is_empty(),
            "waited from 3's arrival"
        );
        let out = r.push(5, 5, false, t0 + ms(10) + MAX_WAIT);
        assert_eq!(packets(&out), [None, Some(3), Some(4), Some(5)]);
        // The lost one, far too late: dropped.
        assert!(r.push(2, 2, false, t0 + ms(900)).is_empty());
        assert_eq!(packets(&r.push(6, 6, false, t0 + ms(910))), [Some(6)]);
    }

    #[test]
    fn two_gaps_are_waited_for_one_after_the_other() {
        let t0 = Instant::now();
        let mut r = Reorder::default();
        r.push(1, 1, false, t0);
        r.push(3, 3, false, t0);
        r.push(5, 5, false, t0);
        // The first gap is given up; the second, whose packet may still come, waits on.
        let out = r.push(6, 6, false, t0 + MAX_WAIT);
        assert_eq!(packets(&out), [None, Some(3)]);
        assert_eq!(
            packets(&r.push(4, 4, false, t0 + MAX_WAIT + ms(50))),
            [Some(4), Some(5), Some(6)]
        );
    }

    #[test]
    fn a_stream_that_jumps_far_ahead_restarts_there() {
        let t0 = Instant::now();
        let mut r = Reorder::default();
        r.push(100, 100, false, t0);
        r.push(102, 102, false, t0);
        let far = 100u16.wrapping_add(MAX_HELD as u16 + 10);
        let out = r.push(far, far, false, t0 + ms(5));
        assert_eq!(packets(&out), [None, Some(102), None, Some(far)]);
        assert_eq!(
            packets(&r.push(far + 1, far + 1, false, t0 + ms(6))),
            [Some(far + 1)]
        );
    }
}
