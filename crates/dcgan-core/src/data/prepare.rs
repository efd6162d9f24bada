//! From decoded pixels to model input: channel conversion, centre crop to a square, bilinear
//! resize, and scaling to [−1, 1]: torchvision's `Grayscale`, `CenterCrop(min(w, h))`, `Resize`,
//! `ToTensor`, `Normalize(0.5, 0.5)` on PIL images, pixel for pixel (__test__/pipeline.spec.ts).
use super::resample::Resampler;
use super::RawImage;

/// Writes image `img` as `channels`×`size`×`size` floats in [−1, 1] into `out`.
pub fn prepare_into(img: &RawImage, channels: usize, size: u32, out: &mut [f32]) {
    let gray;
    let img = if channels == 1 && img.channels == 3 {
        gray = to_gray(img);
        &gray
    } else {
        img
    };
    let (w, h, c) = (img.width as usize, img.height as usize, img.channels as usize);
    let side = w.min(h);
    // Centre crop: an offset into the interleaved pixels; no copy.
    let offset = (centre_margin(h - side) * w + centre_margin(w - side)) * c;
    let size = size as usize;
    let plane = size * size;
    let resampler = (side != size).then(|| Resampler::get(side, size));
    let mut tmp = Vec::new();
    for ch in 0..channels {
        let src_ch = ch.min(c - 1); // a gray image fills every RGB channel
        let o = &mut out[ch * plane..(ch + 1) * plane];
        match &resampler {
            Some(r) => r.resize_plane(&img.pixels, offset + src_ch, w * c, c, &mut tmp, o),
            None => {
                for y in 0..size {
                    for x in 0..size {
                        o[y * size + x] = img.pixels[offset + src_ch + y * w * c + x * c] as f32;
                    }
                }
            }
        }
        // The values are bytes, as PIL's are before ToTensor; scale to [−1, 1] with ToTensor's
        // and Normalize's float32 operations, so that the result is theirs to the last bit.
        for v in o.iter_mut() {
            *v = (*v / 255.0 - 0.5) / 0.5;
        }
    }
}

/// torchvision's `CenterCrop` margin: `round(d / 2)` with Python's rounding, half to even
/// (a margin of 15 starts the crop at 8, one of 13 at 6).
fn centre_margin(d: usize) -> usize {
    let half = d / 2;
    if d % 2 == 1 && half % 2 == 1 { half + 1 } else { half }
}

/// ITU-R 601-2 luma in PIL's fixed point (`L24` in libImaging/Convert.c), so that every colour
/// converts as PIL's convert('L') converts it; (299R + 587G + 114B) / 1000 differs on 9,040 colours.
fn to_gray(img: &RawImage) -> RawImage {
    let pixels = img
        .pixels
        .chunks_exact(3)
        .map(|p| ((p[0] as u32 * 19595 + p[1] as u32 * 38470 + p[2] as u32 * 7471 + 0x8000) >> 16) as u8)
        .collect();
    RawImage { width: img.width, height: img.height, channels: 1, pixels }
}
