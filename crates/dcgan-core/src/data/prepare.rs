//! From decoded pixels to model input: channel conversion, centre crop to a square, bilinear
//! resize, and scaling to [−1, 1] (what the seed's `Resize`, `ToTensor`, `Normalize(0.5, 0.5)` do).
use super::RawImage;
use image::{imageops, imageops::FilterType, GrayImage, ImageBuffer, Luma, Rgb, RgbImage};

/// Writes image `img` as `channels`×`size`×`size` floats in [−1, 1] into `out`.
pub fn prepare_into(img: &RawImage, channels: usize, size: u32, out: &mut [f32]) {
    let plane = (size * size) as usize;
    match channels {
        1 => {
            let resized = fit(to_gray(img), size);
            for (o, p) in out[..plane].iter_mut().zip(resized.pixels()) {
                *o = scale(p.0[0]);
            }
        }
        _ => {
            let resized = fit(to_rgb(img), size);
            for (i, p) in resized.pixels().enumerate() {
                for c in 0..3 {
                    out[c * plane + i] = scale(p.0[c]);
                }
            }
        }
    }
}

fn scale(v: u8) -> f32 {
    v as f32 / 127.5 - 1.0
}

fn to_gray(img: &RawImage) -> GrayImage {
    let px = if img.channels == 1 {
        img.pixels.clone()
    } else {
        // ITU-R 601-2 luma, as PIL's convert('L').
        img.pixels
            .chunks_exact(3)
            .map(|p| ((p[0] as u32 * 299 + p[1] as u32 * 587 + p[2] as u32 * 114 + 500) / 1000) as u8)
            .collect()
    };
    ImageBuffer::<Luma<u8>, _>::from_raw(img.width, img.height, px).expect("pixel count matches the size")
}

fn to_rgb(img: &RawImage) -> RgbImage {
    let px = if img.channels == 3 { img.pixels.clone() } else { img.pixels.iter().flat_map(|&v| [v, v, v]).collect() };
    ImageBuffer::<Rgb<u8>, _>::from_raw(img.width, img.height, px).expect("pixel count matches the size")
}

/// Centre crop to the largest square, then bilinear resize to `size`×`size`.
fn fit<P: image::Pixel<Subpixel = u8> + 'static>(img: ImageBuffer<P, Vec<u8>>, size: u32) -> ImageBuffer<P, Vec<u8>> {
    let (w, h) = img.dimensions();
    let side = w.min(h);
    let img = if w != h { imageops::crop_imm(&img, (w - side) / 2, (h - side) / 2, side, side).to_image() } else { img };
    if side == size {
        return img;
    }
    imageops::resize(&img, size, size, FilterType::Triangle)
}
