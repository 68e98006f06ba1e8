//! Captured screen pixels (BGRX, 4 bytes a pixel, what X servers and PipeWire hand out
//! on little-endian machines) to the encoder's I420, scaled to the share size.

use crate::pattern::I420;

/// Converts a `width`×`height` BGRX picture with rows `stride` bytes apart into `frame`,
/// scaling to the frame's size (nearest pixel for luma, the average of a 2×2 block for
/// chroma). BT.601 video range, what the decoder side assumes.
pub fn bgrx_to_i420(src: &[u8], width: usize, height: usize, stride: usize, frame: &mut I420) {
    let (fw, fh) = (frame.width, frame.height);
    if width == 0
        || height == 0
        || fw == 0
        || fh == 0
        || src.len() < stride * (height - 1) + width * 4
    {
        return;
    }
    // Source column and row of each target column and row, computed once.
    let cols: Vec<usize> = (0..fw).map(|x| x * width / fw).collect();
    let rows: Vec<usize> = (0..fh).map(|y| y * height / fh).collect();
    let (y_plane, chroma) = frame.data.split_at_mut(fw * fh);
    let (u_plane, v_plane) = chroma.split_at_mut((fw / 2) * (fh / 2));
    for (ty, &sy) in rows.iter().enumerate() {
        let line = &src[sy * stride..];
        let out = &mut y_plane[ty * fw..(ty + 1) * fw];
        for (px, &sx) in out.iter_mut().zip(&cols) {
            let p = &line[sx * 4..sx * 4 + 3];
            *px = luma(p[2], p[1], p[0]);
        }
    }
    let cw = fw / 2;
    for cy in 0..fh / 2 {
        let (r0, r1) = (rows[cy * 2], rows[(cy * 2 + 1).min(fh - 1)]);
        for cx in 0..cw {
            let (c0, c1) = (cols[cx * 2], cols[(cx * 2 + 1).min(fw - 1)]);
            let (mut r, mut g, mut b) = (0i32, 0i32, 0i32);
            for (sy, sx) in [(r0, c0), (r0, c1), (r1, c0), (r1, c1)] {
                let p = &src[sy * stride + sx * 4..][..3];
                b += i32::from(p[0]);
                g += i32::from(p[1]);
                r += i32::from(p[2]);
            }
            let (r, g, b) = (r / 4, g / 4, b / 4);
            u_plane[cy * cw + cx] = (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128) as u8;
            v_plane[cy * cw + cx] = (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128) as u8;
        }
    }
}

fn luma(r: u8, g: u8, b: u8) -> u8 {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::scaled_rgba;
    use openh264::formats::YUVBuffer;

    /// A BGRX picture with four coloured quadrants.
    fn quadrants(w: usize, h: usize, colours: [[u8; 3]; 4]) -> Vec<u8> {
        let mut out = vec![0u8; w * h * 4];
        for y in 0..h {
            for x in 0..w {
                let q = usize::from(y >= h / 2) * 2 + usize::from(x >= w / 2);
                let [r, g, b] = colours[q];
                out[(y * w + x) * 4..][..4].copy_from_slice(&[b, g, r, 0]);
            }
        }
        out
    }

    #[test]
    fn colours_survive_conversion_and_scaling() {
        let colours = [[220, 30, 30], [30, 200, 30], [30, 30, 220], [240, 240, 240]];
        let src = quadrants(200, 100, colours);
        let mut frame = I420::new(100, 50);
        bgrx_to_i420(&src, 200, 100, 800, &mut frame);
        // Back to RGB the way the receiving side does it.
        let yuv = YUVBuffer::from_vec(frame.data.clone(), 100, 50);
        let rgba = scaled_rgba(&yuv, 100);
        for (q, (x, y)) in [(25, 12), (75, 12), (25, 37), (75, 37)]
            .into_iter()
            .enumerate()
        {
            let px = &rgba[(y * 100 + x) * 4..][..3];
            for c in 0..3 {
                let diff = (i32::from(px[c]) - i32::from(colours[q][c])).abs();
                assert!(
                    diff <= 6,
                    "quadrant {q} channel {c}: {px:?} vs {:?}",
                    colours[q]
                );
            }
        }
    }

    #[test]
    fn a_short_buffer_leaves_the_frame_alone() {
        let mut frame = I420::new(4, 4);
        let before = frame.data.clone();
        bgrx_to_i420(&[0; 10], 4, 4, 16, &mut frame);
        assert_eq!(frame.data, before);
    }
}
