//! Image batches to pixels: a grid of images as one PNG, as torchvision's `save_image` lays it out.
use crate::error::{Error, Result};
use std::path::Path;

/// Which values become black and white in a grid, as torchvision's `make_grid` options say it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRange {
    /// [−1, 1], the generator's range (the default; no `normalize`).
    Signed,
    /// `normalize=True, value_range=(low, high)`: clamped to it, then scaled to [0, 1].
    Given(f32, f32),
    /// `normalize=True` alone: the batch's own minimum and maximum.
    MinMax,
}

/// How a grid turns values into bytes: torchvision's `make_grid` + `save_image`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GridStyle {
    pub range: ValueRange,
    /// The value of the padding between images, in [0, 1] like the images after scaling (`pad_value`).
    pub pad_value: f32,
}

impl Default for GridStyle {
    fn default() -> Self {
        GridStyle { range: ValueRange::Signed, pad_value: 0.0 }
    }
}

/// A value in [0, 1] as save_image writes it: × 255, + 0.5, clamped, truncated.
fn to_byte(unit: f32) -> u8 {
    (unit * 255.0 + 0.5).clamp(0.0, 255.0) as u8
}

/// `v` → byte under `range`, with torchvision's order of operations (`norm_ip`: clamp, subtract,
/// divide by max(high − low, 1e-5)).
fn byte_of(v: f32, range: (f32, f32)) -> u8 {
    let (low, high) = range;
    // Python computes max(high - low, 1e-5) in double; the tensor op then divides in float.
    let span = (f64::from(high) - f64::from(low)).max(1e-5) as f32;
    // max then min, as torch.clamp does (and no panic on NaN, unlike f32::clamp).
    to_byte((v.max(low).min(high) - low) / span)
}

/// PNG's largest width or height (2³¹ − 1).
const MAX_PNG_SIDE: usize = (1 << 31) - 1;

/// Lays out `shape` = [n, c, h, w] images (values in [−1, 1]) in rows of `nrow` with `padding`
/// pixels between them; returns (width, height, channels, bytes).
pub fn grid(data: &[f32], shape: &[usize], nrow: usize, padding: usize) -> Result<(u32, u32, usize, Vec<u8>)> {
    grid_styled(data, shape, nrow, padding, GridStyle::default())
}

/// [`grid`] with torchvision's `normalize`/`value_range`/`pad_value`.
pub fn grid_styled(data: &[f32], shape: &[usize], nrow: usize, padding: usize, style: GridStyle) -> Result<(u32, u32, usize, Vec<u8>)> {
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
    // torchvision's make_grid returns a lone image as it is, unpadded.
    let padding = if n == 1 { 0 } else { padding };
    let side = |count: usize, size: usize| count.checked_mul(size.checked_add(padding)?)?.checked_add(padding).filter(|&s| s <= MAX_PNG_SIDE);
    let too_large = || Error::Input(format!("a grid of {n} images of {h}×{w} in rows of {nrow} with padding {padding} is larger than a PNG may be ({MAX_PNG_SIDE} pixels a side)"));
    let (gw, gh) = (side(nrow, w).ok_or_else(too_large)?, side(rows, h).ok_or_else(too_large)?);
    let bytes = crate::limits::product(&[gw as u64, gh as u64, c as u64]).ok_or_else(too_large)?;
    crate::limits::within_memory(bytes, &format!("a grid of {gw}×{gh} pixels"), Error::Input)?;
    let range = match style.range {
        ValueRange::Signed => None,
        ValueRange::Given(low, high) => Some((low, high)),
        ValueRange::MinMax => Some(data.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))),
    };
    let mut out = Vec::new();
    out.try_reserve_exact(bytes as usize).map_err(|_| Error::Input(format!("cannot allocate {} for a grid of {gw}×{gh} pixels", crate::limits::human(bytes))))?;
    out.resize(bytes as usize, to_byte(style.pad_value));
    for (i, img) in data.chunks(c * h * w).enumerate() {
        let (x0, y0) = (padding + (i % nrow) * (w + padding), padding + (i / nrow) * (h + padding));
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let v = img[ch * h * w + y * w + x];
                    let byte = match range {
                        Some(range) => byte_of(v, range),
                        // [−1, 1] → [0, 255], rounded and clamped as save_image does.
                        None => ((v + 1.0) * 127.5 + 0.5).clamp(0.0, 255.0) as u8,
                    };
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
    save_grid_styled(path, data, shape, nrow, padding, GridStyle::default())
}

/// [`save_grid`] with torchvision's `normalize`/`value_range`/`pad_value`.
pub fn save_grid_styled(path: &Path, data: &[f32], shape: &[usize], nrow: usize, padding: usize, style: GridStyle) -> Result<()> {
    let (w, h, c, pixels) = grid_styled(data, shape, nrow, padding, style)?;
    crate::weights::write_atomically(path, &encode_png(w, h, c, &pixels)?)
}
