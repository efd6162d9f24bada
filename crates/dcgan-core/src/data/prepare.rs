//! From decoded pixels to model input: channel conversion, centre crop to a square, bilinear
//! resize, and scaling to [−1, 1] (what the seed's `Resize`, `ToTensor`, `Normalize(0.5, 0.5)` do).
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
    let offset = ((h - side) / 2 * w + (w - side) / 2) * c;
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
        // PIL rounds resized pixels to bytes before ToTensor; do the same, then scale to [−1, 1].
        for v in o.iter_mut() {
            *v = v.round().clamp(0.0, 255.0) / 127.5 - 1.0;
        }
    }
}

/// ITU-R 601-2 luma, as PIL's convert('L').
fn to_gray(img: &RawImage) -> RawImage {
    let pixels = img
        .pixels
        .chunks_exact(3)
        .map(|p| ((p[0] as u32 * 299 + p[1] as u32 * 587 + p[2] as u32 * 114 + 500) / 1000) as u8)
        .collect();
    RawImage { width: img.width, height: img.height, channels: 1, pixels }
}
