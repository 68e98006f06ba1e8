//! How TURN messages are framed on a stream (RFC 8656 §12.4–12.5), without IO: what a
//! datagram from the stack becomes on the stream ([`to_stream`]), and how the server's
//! stream splits back into the datagrams the stack expects ([`Framer`]).

use std::borrow::Cow;

use bytes::{Buf, BytesMut};

/// Largest message either framing can carry: a STUN header (20 bytes) or a ChannelData
/// header (4) and a 16-bit length.
pub(super) const MAX_MESSAGE: usize = 20 + u16::MAX as usize;

/// What cannot be framed. On the stream it means the two ends disagree about where a
/// message starts, so the connection is closed; from the stack, the datagram is
/// dropped. Neither is retried by the bridge.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("neither STUN nor ChannelData (first byte {0:#04x})")]
    Unknown(u8),
    #[error("a STUN message whose length ({0}) is not a multiple of 4")]
    Misaligned(usize),
    #[error("a datagram of {got} bytes whose header says {said}")]
    Length { got: usize, said: usize },
}

/// How a message is framed, read from its first bytes (RFC 8656 §12.4: the two top
/// bits are 00 for STUN, 01 for ChannelData).
enum Kind {
    Stun,
    ChannelData,
}

/// The kind of the message starting with `head` and the length of its body.
fn header(head: &[u8; 4]) -> Result<(Kind, usize), FrameError> {
    let body = u16::from_be_bytes([head[2], head[3]]) as usize;
    match head[0] >> 6 {
        0b00 if !body.is_multiple_of(4) => Err(FrameError::Misaligned(body)),
        0b00 => Ok((Kind::Stun, body)),
        0b01 => Ok((Kind::ChannelData, body)),
        _ => Err(FrameError::Unknown(head[0])),
    }
}

/// The message's length without padding, and its length on a stream, where
/// ChannelData is padded to a multiple of 4 bytes (RFC 8656 §12.5).
fn lengths(kind: &Kind, body: usize) -> (usize, usize) {
    match kind {
        Kind::Stun => (20 + body, 20 + body),
        Kind::ChannelData => (4 + body, (4 + body).next_multiple_of(4)),
    }
}

/// A datagram from the stack as it goes on the stream: as is, except ChannelData,
/// which UDP need not pad and a stream must.
pub(crate) fn to_stream(datagram: &[u8]) -> Result<Cow<'_, [u8]>, FrameError> {
    let head: &[u8; 4] =
        datagram
            .get(..4)
            .and_then(|h| h.try_into().ok())
            .ok_or(FrameError::Length {
                got: datagram.len(),
                said: 4,
            })?;
    let (kind, body) = header(head)?;
    let (message, on_stream) = lengths(&kind, body);
    // UDP may carry ChannelData's padding; STUN has none.
    let fits = match kind {
        Kind::Stun => datagram.len() == message,
        Kind::ChannelData => datagram.len() >= message && datagram.len() <= on_stream,
    };
    if !fits {
        return Err(FrameError::Length {
            got: datagram.len(),
            said: message,
        });
    }
    if datagram.len() == on_stream {
        return Ok(Cow::Borrowed(datagram));
    }
    let mut padded = datagram[..message].to_vec();
    padded.resize(on_stream, 0);
    Ok(Cow::Owned(padded))
}

/// Splits the byte stream from a TURN server into its messages, each without the
/// stream's padding: what the stack would have received as datagrams over UDP.
#[derive(Default)]
pub(crate) struct Framer {
    buf: BytesMut,
}

impl Framer {
    /// Bytes as they came off the stream.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, if one has arrived.
    pub(crate) fn next_message(&mut self) -> Result<Option<BytesMut>, FrameError> {
        let Some(head) = self.buf.get(..4) else {
            return Ok(None);
        };
        let (kind, body) = header(head.try_into().expect("four bytes"))?;
        let (message, on_stream) = lengths(&kind, body);
        if self.buf.len() < on_stream {
            // At most one message and a read's worth of bytes are ever held.
            self.buf.reserve(on_stream - self.buf.len());
            return Ok(None);
        }
        let out = self.buf.split_to(message);
        self.buf.advance(on_stream - message);
        Ok(Some(out))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn stun(body: usize) -> Vec<u8> {
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(body as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend(std::iter::repeat_n(0xAB, body));
        m
    }

    pub(crate) fn channel_data(body: usize) -> Vec<u8> {
        let mut m = vec![0x40, 0x00];
        m.extend_from_slice(&(body as u16).to_be_bytes());
        m.extend(std::iter::repeat_n(0xCD, body));
        m
    }

    #[test]
    fn stun_goes_on_the_stream_as_it_is() {
        let m = stun(8);
        assert_eq!(to_stream(&m).unwrap().as_ref(), m.as_slice());
    }

    #[test]
    fn channel_data_is_padded_to_four_bytes_on_the_stream() {
        let m = channel_data(5);
        let framed = to_stream(&m).unwrap();
        assert_eq!(framed.len(), 12);
        assert_eq!(&framed[..9], m.as_slice());
        assert_eq!(&framed[9..], &[0, 0, 0]);
        // Already padded (UDP may carry the padding): as it is.
        let mut padded = m.clone();
        padded.extend_from_slice(&[0, 0, 0]);
        assert_eq!(to_stream(&padded).unwrap().as_ref(), padded.as_slice());
    }

    #[test]
    fn datagrams_that_are_not_turn_are_refused() {
        assert_eq!(to_stream(&[0x80, 0, 0, 0]), Err(FrameError::Unknown(0x80)));
        assert!(matches!(to_stream(&[0, 1]), Err(FrameError::Length { .. })));
        let mut short = stun(8);
        short.pop();
        assert!(matches!(to_stream(&short), Err(FrameError::Length { .. })));
        let mut misaligned = stun(8);
        misaligned[3] = 6;
        assert_eq!(to_stream(&misaligned), Err(FrameError::Misaligned(6)));
    }

    #[test]
    fn the_stream_is_split_into_messages_however_it_arrives() {
        let (a, b, c) = (stun(12), channel_data(3), channel_data(8));
        let mut stream = Vec::new();
        for m in [&a, &b, &c] {
            stream.extend_from_slice(&to_stream(m).unwrap());
        }
        // One byte at a time, and all at once: the same messages, padding removed.
        for chunk in [1, stream.len()] {
            let mut framer = Framer::default();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                framer.push(piece);
                while let Some(m) = framer.next_message().unwrap() {
                    got.push(m.to_vec());
                }
            }
            assert_eq!(
                got,
                vec![a.clone(), b.clone(), c.clone()],
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn a_stream_out_of_step_is_an_error() {
        let mut framer = Framer::default();
        framer.push(&[0xC0, 0, 0, 4, 1, 2, 3, 4]);
        assert_eq!(framer.next_message(), Err(FrameError::Unknown(0xC0)));
    }
}
