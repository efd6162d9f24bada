//! Image batches to pixels: a grid of images as one PNG, as torchvision's `save_image` lays it out.
use crate::error::{Error, Result};
use std::path::Path;

/// Lays out `shape` = [n, c, h, w] images (values in [−1, 1]) in rows of `nrow` with `padding`
/// pixels between them; returns (width, height, channels, bytes).
pub fn grid(data: &[f32], shape: &[usize], nrow: usize, padding: usize) -> Result<(u32, u32, usize, Vec<u8>)> {
    let [n, c, h, w] = <[usize; 4]>::try_from(shape)
        .map_err(|_| Error::Input(format!("an image batch needs 4 dimensions [n, channels, height, width], got {shape:?}")))?;
    if c != 1 && c != 3 {
        return Err(Error::Input(format!("images must have 1 or 3 channels, got {c}")));
    }
    if [n, h, w].contains(&0) {
        return Err(Error::Input(format!("an image batch needs every dimension ≥ 1, got {shape:?}")));
    }
    let needed = [n, c, h, w].iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if needed != Some(data.len()) {
        return Err(Error::Input(format!("shape {shape:?} needs {} values, got {}", needed.map_or("too many".into(), |v| v.to_string()), data.len())));
    }
    let nrow = nrow.clamp(1, n);
    let rows = n.div_ceil(nrow);
    let (gw, gh) = (nrow * (w + padding) + padding, rows * (h + padding) + padding);
    let mut out = vec![0u8; gw * gh * c];
    for (i, img) in data.chunks(c * h * w).enumerate() {
        let (x0, y0) = (padding + (i % nrow) * (w + padding), padding + (i / nrow) * (h + padding));
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let v = img[ch * h * w + y * w + x];
                    // [−1, 1] → [0, 255], rounded and clamped as save_image does.
                    let byte = ((v + 1.0) * 127.5 + 0.5).clamp(0.0, 255.0) as u8;
                    out[((y0 + y) * gw + x0 + x) * c + ch] = byte;
                }
            }
        }
    }
    Ok((gw as u32, gh as u32, c, out))
}

/// Encodes 8-bit grayscale or RGB pixels as PNG.
pub fn encode_png(width: u32, height: u32, channels: usize, pixels: &[u8]) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut enc = png::Encoder::new(&mut bytes, width, height);
    enc.set_color(if channels == 1 { png::ColorType::Grayscale } else { png::ColorType::Rgb });
    enc.set_depth(png::BitDepth::Eight);
    let fail = |e: png::EncodingError| Error::Input(format!("PNG encoding failed: {e}"));
    let mut writer = enc.write_header().map_err(fail)?;
    writer.write_image_data(pixels).map_err(fail)?;
    writer.finish().map_err(fail)?;
    Ok(bytes)
}

/// Writes a grid of images to `path` as PNG (atomically).
pub fn save_grid(path: &Path, data: &[f32], shape: &[usize], nrow: usize, padding: usize) -> Result<()> {
    let (w, h, c, pixels) = grid(data, shape, nrow, padding)?;
    crate::weights::write_atomically(path, &encode_png(w, h, c, &pixels)?)
}
