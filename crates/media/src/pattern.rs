//! The synthetic camera's picture: a moving test pattern with a frame counter and a
//! capture timestamp stamped into it as large black and white blocks.
//!
//! The stamp survives lossy video coding because each bit is a block of many pixels
//! read back as an average, so the receiver can check order (the counter advances) and
//! measure glass-to-glass latency (the timestamp) from the decoded picture alone. Three
//! rows of 32 blocks: the counter, the low 32 bits of the capture time in microseconds
//! since the Unix epoch, and a check word that tells a stamp from an ordinary picture.

/// Blocks per row: one per bit of a 32-bit word.
const BITS: usize = 32;
/// Rows of blocks: counter, timestamp, check.
const ROWS: usize = 3;
/// Height of one row of blocks, pixels.
const ROW_HEIGHT: usize = 16;
/// Mixed into the check word so that a blank or uniform frame never reads as a stamp.
const CHECK_SALT: u32 = 0xA5C3_5A3C;
/// Luma of a 1 bit and of a 0 bit (video range).
const ONE: u8 = 235;
const ZERO: u8 = 16;

/// What a decoded frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Frames since the source started, from 0.
    pub counter: u32,
    /// Capture time: low 32 bits of microseconds since the Unix epoch.
    pub captured_us: u32,
}

impl Stamp {
    /// Microseconds from capture to `now_us` (same clock, wrapping every ~71 minutes).
    pub fn age_us(&self, now_us: u64) -> u32 {
        (now_us as u32).wrapping_sub(self.captured_us)
    }
}

/// The low 32 bits of now, in microseconds since the Unix epoch: the stamp's clock.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// One I420 picture (Y plane, then U and V at half resolution).
#[derive(Debug, Clone)]
pub struct I420 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl I420 {
    pub fn new(width: usize, height: usize) -> I420 {
        let luma = width * height;
        I420 {
            width,
            height,
            data: vec![128; luma + luma / 2],
        }
    }

    /// Paints the picture black (video range: luma 16, no colour).
    pub fn fill_black(&mut self) {
        let luma = self.width * self.height;
        self.data[..luma].fill(16);
        self.data[luma..].fill(128);
    }

    pub fn y(&self) -> &[u8] {
        &self.data[..self.width * self.height]
    }
}

/// Draws frame `counter` of the moving pattern into `frame`, stamped with `stamp`.
///
/// The pattern is diagonal luma bands that move two pixels per frame and a square that
/// crosses the picture, so motion is visible on screen and the encoder has real work.
pub fn draw(frame: &mut I420, stamp: Stamp) {
    draw_grainy(frame, stamp, 0);
}

/// [`draw`], with sensor noise of ±`grain` added to the luma under the stamp (see
/// `VideoSettings::grain`). The noise is a cheap hash of the pixel and the counter,
/// different in every picture, as a sensor's is.
pub fn draw_grainy(frame: &mut I420, stamp: Stamp, grain: u8) {
    let (w, h) = (frame.width, frame.height);
    let shift = (stamp.counter as usize * 2) % 256;
    let (y_plane, chroma) = frame.data.split_at_mut(w * h);
    for row in 0..h {
        let line = &mut y_plane[row * w..(row + 1) * w];
        for (col, px) in line.iter_mut().enumerate() {
            *px = (48 + ((col + row + shift) % 256) / 2) as u8;
        }
    }
    let side = (h / 4).max(8);
    let span = w.saturating_sub(side).max(1);
    let x0 = (stamp.counter as usize * 4) % span;
    let y0 = h / 2;
    for row in y0..(y0 + side).min(h) {
        y_plane[row * w + x0..row * w + x0 + side].fill(220);
    }
    // Chroma: two colour fields that swap every second, so colour is visibly carried too.
    let (u, v) = chroma.split_at_mut(w * h / 4);
    let phase = (stamp.counter / 30).is_multiple_of(2);
    u.fill(if phase { 90 } else { 160 });
    v.fill(if phase { 160 } else { 90 });
    if grain > 0 {
        let span = 2 * grain as u32 + 1;
        let mut x = 0x9E37_79B9u32 ^ stamp.counter.wrapping_mul(0x85EB_CA6B);
        for px in frame.data[..w * h].iter_mut() {
            // xorshift32: fast, and random enough for an encoder.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let noise = (x % span) as i32 - grain as i32;
            *px = (*px as i32 + noise).clamp(16, 235) as u8;
        }
    }
    write_stamp(frame, stamp);
}

fn write_stamp(frame: &mut I420, stamp: Stamp) {
    let words = [stamp.counter, stamp.captured_us, check(stamp)];
    let w = frame.width;
    let block = w / BITS;
    for (r, word) in words.iter().enumerate() {
        for bit in 0..BITS {
            let on = word >> (BITS - 1 - bit) & 1 == 1;
            let value = if on { ONE } else { ZERO };
            for row in r * ROW_HEIGHT..(r + 1) * ROW_HEIGHT {
                let start = row * w + bit * block;
                frame.data[start..start + block].fill(value);
            }
        }
    }
}

fn check(stamp: Stamp) -> u32 {
    stamp.counter ^ stamp.captured_us.rotate_left(7) ^ CHECK_SALT
}

/// Reads the stamp back from a decoded picture's luma plane, or `None` when the picture
/// carries none (another source, or a frame too damaged to trust).
pub fn read_stamp(y: &[u8], width: usize, height: usize, stride: usize) -> Option<Stamp> {
    let block = width / BITS;
    if block < 4 || height < ROWS * ROW_HEIGHT || y.len() < stride * ROWS * ROW_HEIGHT {
        return None;
    }
    let mut words = [0u32; ROWS];
    for (r, word) in words.iter_mut().enumerate() {
        for bit in 0..BITS {
            // The middle of the block, away from edges the codec blurs.
            let mut sum = 0u32;
            let mut n = 0u32;
            for row in r * ROW_HEIGHT + 4..(r + 1) * ROW_HEIGHT - 4 {
                let start = row * stride + bit * block + block / 4;
                for px in &y[start..start + block / 2] {
                    sum += u32::from(*px);
                    n += 1;
                }
            }
            let on = sum / n > u32::from(ONE / 2 + ZERO / 2);
            *word = *word << 1 | u32::from(on);
        }
    }
    let stamp = Stamp {
        counter: words[0],
        captured_us: words[1],
    };
    (check(stamp) == words[2]).then_some(stamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_from_the_picture_it_was_drawn_into() {
        let mut frame = I420::new(640, 480);
        let stamp = Stamp {
            counter: 123_456,
            captured_us: 0xDEAD_BEEF,
        };
        draw(&mut frame, stamp);
        assert_eq!(read_stamp(frame.y(), 640, 480, 640), Some(stamp));
    }

    #[test]
    fn a_grainy_picture_keeps_its_stamp_and_changes_every_time() {
        let (mut one, mut two) = (I420::new(320, 240), I420::new(320, 240));
        let stamp = |counter| Stamp {
            counter,
            captured_us: 42,
        };
        draw_grainy(&mut one, stamp(1), 20);
        draw_grainy(&mut two, stamp(2), 20);
        assert_eq!(read_stamp(one.y(), 320, 240, 320), Some(stamp(1)));
        let mut smooth = I420::new(320, 240);
        draw(&mut smooth, stamp(1));
        let differing =
            |a: &I420, b: &I420| a.y().iter().zip(b.y()).filter(|(x, y)| x != y).count();
        assert!(differing(&one, &smooth) > 320 * 240 / 2, "grain is added");
        assert!(
            differing(&one, &two) > 320 * 240 / 2,
            "and is new in every picture"
        );
    }

    #[test]
    fn a_picture_without_a_stamp_reads_as_none() {
        let frame = I420::new(320, 240);
        assert_eq!(read_stamp(frame.y(), 320, 240, 320), None);
    }

    #[test]
    fn small_pictures_still_carry_the_stamp() {
        let mut frame = I420::new(320, 240);
        let stamp = Stamp {
            counter: 7,
            captured_us: 99,
        };
        draw(&mut frame, stamp);
        assert_eq!(read_stamp(frame.y(), 320, 240, 320), Some(stamp));
    }

    #[test]
    fn age_wraps_with_the_32_bit_clock() {
        let stamp = Stamp {
            counter: 0,
            captured_us: u32::MAX - 9,
        };
        assert_eq!(stamp.age_us((1u64 << 32) + 10), 20);
    }
}
