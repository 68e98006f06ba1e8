//! One incoming H.264 stream's pictures from its RTP packets, without IO: packets are
//! put back in order ([`crate::reorder`]: a lost packet's resend is waited for) and
//! reassembled into access units, a picture ending on the marker bit. Pictures go to the
//! decoder from the first key frame on, except one broken by a gap given up on; when a
//! key frame is to be asked for is [`Receiving`]'s decision (before the first one, after
//! a gap, when the decoder reports a loss).

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::packetizer::Depacketizer;
use rtc::rtp::Packet;

use crate::keyframe::{self, DecoderLoss, Receiving};
use crate::reorder::{Released, Reorder};

/// The largest H.264 picture accepted from a peer (a 1080p key frame is well under this).
const MAX_ACCESS_UNIT: usize = 2 << 20;

/// What the end of one picture gives.
#[derive(Debug)]
pub(super) struct PictureEnd {
    /// The access unit, when it is to be decoded.
    pub(super) decode: Option<Bytes>,
    /// Ask the far end for a key frame now.
    pub(super) ask: bool,
}

/// The assembly state of one stream.
pub(super) struct Assembly {
    reorder: Reorder<Packet>,
    depacketizer: H264Packet,
    unit: BytesMut,
    timestamp: Option<u32>,
    /// Packets were given up on just before the next one passed on.
    gap: bool,
    broken: bool,
    keys: Receiving,
}

impl Default for Assembly {
    fn default() -> Self {
        Assembly {
            reorder: Reorder::default(),
            depacketizer: H264Packet::default(),
            unit: BytesMut::new(),
            timestamp: None,
            gap: false,
            broken: false,
            keys: Receiving::new(),
        }
    }
}

impl Assembly {
    /// Takes one packet arriving at `now`; returns what each picture it completes gives.
    /// `loss` is the decoder's report of a lost reference, taken at each picture's end.
    pub(super) fn push(
        &mut self,
        packet: Packet,
        now: Instant,
        loss: &DecoderLoss,
    ) -> Vec<PictureEnd> {
        let mut ends = Vec::new();
        let restart = keyframe::starts_key_frame(&packet.payload);
        for released in self
            .reorder
            .push(packet.header.sequence_number, packet, restart, now)
        {
            match released {
                Released::Gap => self.gap = true,
                Released::Packet(packet) => ends.extend(self.assemble(&packet, now, loss)),
            }
        }
        ends
    }

    /// One packet in order; the picture's end when it carries the marker bit.
    fn assemble(
        &mut self,
        packet: &Packet,
        now: Instant,
        loss: &DecoderLoss,
    ) -> Option<PictureEnd> {
        if self.timestamp != Some(packet.header.timestamp) {
            // A new picture: whatever the last one left half-assembled is dropped.
            self.timestamp = Some(packet.header.timestamp);
            self.unit.clear();
            self.depacketizer = H264Packet::default();
            self.broken = false;
        }
        if std::mem::take(&mut self.gap) {
            // Lost for good just before this packet: this picture, or the one before
            // it (whose end never came), cannot be decoded.
            self.broken = true;
            self.depacketizer = H264Packet::default();
        }
        match self.depacketizer.depacketize(&packet.payload) {
            Ok(bytes) => self.unit.extend_from_slice(&bytes),
            Err(_) => self.broken = true,
        }
        if self.unit.len() > MAX_ACCESS_UNIT {
            // No real picture is this big: a broken or hostile sender. Drop it rather
            // than grow without end while waiting for a marker that may never come.
            self.unit.clear();
            self.depacketizer = H264Packet::default();
            self.broken = true;
        }
        if !packet.header.marker {
            return None;
        }
        let mut ask = loss.take() && self.keys.on_loss(now);
        let mut decode = None;
        if self.broken {
            ask |= self.keys.on_loss(now);
            self.unit.clear();
        } else if !self.unit.is_empty() {
            let verdict = self
                .keys
                .on_picture(keyframe::is_key_frame(&self.unit), now);
            ask |= verdict.ask;
            if verdict.decode {
                decode = Some(self.unit.split().freeze());
            } else {
                self.unit.clear();
            }
        }
        Some(PictureEnd { decode, ask })
    }
}
