//! The one-picture slot between PipeWire's thread (which puts) and the capture thread
//! (which takes): the newest picture wins. Pictures are kept in one byte order, BGRx,
//! whatever 4-byte RGB order PipeWire sent.

use std::sync::Mutex;

/// A picture in BGRx byte order, rows packed (`width * 4` bytes apart).
#[derive(Debug)]
pub(super) struct Picture {
    pub(super) width: usize,
    pub(super) height: usize,
    pub(super) data: Vec<u8>,
}

/// What [`FrameSlot::take`] found.
#[derive(Debug)]
pub(super) enum Taken {
    /// A picture newer than the last one taken.
    Picture(Picture),
    /// Nothing since the last take.
    Nothing,
    /// The stream has ended, and why.
    Ended(String),
}

/// One picture waiting for the capture thread, replaced by a newer one if not taken in
/// time: late screen pictures are useless. Buffers go back and forth, not reallocated.
#[derive(Debug, Default)]
pub(super) struct FrameSlot {
    state: Mutex<SlotState>,
}

#[derive(Debug, Default)]
struct SlotState {
    newest: Option<Picture>,
    /// A buffer the capture side is done with, for the next picture.
    spare: Vec<u8>,
    /// The size of the last picture put.
    size: Option<(usize, usize)>,
    ended: Option<String>,
}

impl FrameSlot {
    /// Puts a `width`×`height` picture that `fill` writes (BGRx, packed) into a buffer of
    /// that size; `fill` returns false for a picture that could not be read, which is
    /// dropped. The copy happens outside the lock, so the capture side never waits for it.
    pub(super) fn put(&self, width: usize, height: usize, fill: impl FnOnce(&mut [u8]) -> bool) {
        let mut buffer = {
            let mut state = self.lock();
            match state.newest.take() {
                // Not taken in time: its buffer takes the newer picture.
                Some(old) => old.data,
                None => std::mem::take(&mut state.spare),
            }
        };
        buffer.resize(width * height * 4, 0);
        let read = fill(&mut buffer);
        let mut state = self.lock();
        if !read {
            state.spare = buffer;
            return;
        }
        state.size = Some((width, height));
        state.newest = Some(Picture {
            width,
            height,
            data: buffer,
        });
    }

    /// The newest picture, if one came since the last take.
    pub(super) fn take(&self) -> Taken {
        let mut state = self.lock();
        if let Some(reason) = &state.ended {
            return Taken::Ended(reason.clone());
        }
        match state.newest.take() {
            Some(p) => Taken::Picture(p),
            None => Taken::Nothing,
        }
    }

    /// A buffer the capture side is done with, for a later picture.
    pub(super) fn recycle(&self, buffer: Vec<u8>) {
        let mut state = self.lock();
        if buffer.capacity() > state.spare.capacity() {
            state.spare = buffer;
        }
    }

    /// Marks the stream ended; the first reason stays.
    pub(super) fn end(&self, reason: String) {
        self.lock().ended.get_or_insert(reason);
    }

    pub(super) fn size(&self) -> Option<(usize, usize)> {
        self.lock().size
    }

    /// The state; a panic elsewhere while holding it leaves nothing half-written that
    /// matters here (a picture at worst), so a poisoned lock is used as it is.
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

// Pixel formats PipeWire may send, brought to BGRx.

/// Where blue, green and red sit in a 4-byte pixel: the byte orders of the formats we
/// accept (the 4th byte, padding or alpha, is ignored; a screen is opaque).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PixelOrder {
    /// BGRx and BGRA: what compositors send on little-endian machines.
    Bgrx,
    /// RGBx and RGBA.
    Rgbx,
    /// xRGB and ARGB.
    Xrgb,
    /// xBGR and ABGR.
    Xbgr,
}

impl PixelOrder {
    /// Byte offsets of blue, green and red.
    pub(super) fn offsets(self) -> [usize; 3] {
        match self {
            PixelOrder::Bgrx => [0, 1, 2],
            PixelOrder::Rgbx => [2, 1, 0],
            PixelOrder::Xrgb => [3, 2, 1],
            PixelOrder::Xbgr => [1, 2, 3],
        }
    }
}

/// Copies a `width`×`height` picture in `order` with rows `stride` bytes apart into `dst`
/// (sized `width * height * 4`) as packed BGRx. False, and nothing read past its end, when
/// `src` is too short for that shape.
pub(super) fn copy_as_bgrx(
    order: PixelOrder,
    src: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    dst: &mut [u8],
) -> bool {
    let row = width * 4;
    if width == 0
        || height == 0
        || stride < row
        || dst.len() != row * height
        || src.len() < stride * (height - 1) + row
    {
        return false;
    }
    for (y, out) in dst.chunks_exact_mut(row).enumerate() {
        let line = &src[y * stride..y * stride + row];
        if order == PixelOrder::Bgrx {
            out.copy_from_slice(line);
            continue;
        }
        let [b, g, r] = order.offsets();
        for (o, p) in out.chunks_exact_mut(4).zip(line.chunks_exact(4)) {
            o[0] = p[b];
            o[1] = p[g];
            o[2] = p[r];
            o[3] = 255;
        }
    }
    true
}

/// The part of a `width`×`height` picture to share, as (x, y, width, height): the
/// compositor's crop region (a window inside a larger buffer) clipped to the picture, or
/// the whole picture when there is no region or nothing of it is inside.
pub(super) fn crop_area(
    crop: Option<(i32, i32, u32, u32)>,
    width: usize,
    height: usize,
) -> (usize, usize, usize, usize) {
    let whole = (0, 0, width, height);
    let Some((x, y, w, h)) = crop else {
        return whole;
    };
    let (x, y) = (x.max(0) as usize, y.max(0) as usize);
    if x >= width || y >= height {
        return whole;
    }
    let (w, h) = ((w as usize).min(width - x), (h as usize).min(height - y));
    if w == 0 || h == 0 {
        return whole;
    }
    (x, y, w, h)
}
