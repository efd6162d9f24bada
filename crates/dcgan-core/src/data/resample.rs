//! Bilinear resizing as PIL does it for torchvision's `Resize` (a triangle filter widened by the
//! scale when shrinking, so that it also antialiases), with the filter weights computed once per
//! (input size, output size) instead of once per image.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The taps of one output coordinate: the first input index and one weight per input pixel.
struct Taps {
    start: usize,
    weights: Vec<f32>,
}

/// Weights for resizing a `src`×`src` square to `dst`×`dst` (the same table serves both axes).
pub struct Resampler {
    taps: Vec<Taps>,
    src: usize,
    dst: usize,
}

fn triangle(x: f64) -> f64 {
    (1.0 - x.abs()).max(0.0)
}

impl Resampler {
    /// PIL's `precompute_coeffs` for the bilinear filter (support 1).
    fn new(src: usize, dst: usize) -> Resampler {
        let scale = src as f64 / dst as f64;
        let filter_scale = scale.max(1.0);
        let support = filter_scale;
        let taps = (0..dst)
            .map(|i| {
                let center = (i as f64 + 0.5) * scale;
                let lo = ((center - support + 0.5).floor().max(0.0)) as usize;
                let hi = ((center + support + 0.5).floor() as usize).min(src);
                let mut w: Vec<f64> = (lo..hi).map(|x| triangle((x as f64 - center + 0.5) / filter_scale)).collect();
                let total: f64 = w.iter().sum();
                if total > 0.0 {
                    w.iter_mut().for_each(|v| *v /= total);
                }
                Taps { start: lo, weights: w.into_iter().map(|v| v as f32).collect() }
            })
            .collect();
        Resampler { taps, src, dst }
    }

    /// The shared resampler for this pair of sizes.
    pub fn get(src: usize, dst: usize) -> Arc<Resampler> {
        static CACHE: OnceLock<Mutex<HashMap<(usize, usize), Arc<Resampler>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((src, dst)).or_insert_with(|| Arc::new(Resampler::new(src, dst))).clone()
    }

    /// Resizes one channel: `input` is `src`×`src` values with row stride `stride` (in elements)
    /// and element step `step`; writes `dst`×`dst` values to `out`. Horizontal pass, then vertical.
    pub fn resize_plane(&self, input: &[u8], offset: usize, stride: usize, step: usize, tmp: &mut Vec<f32>, out: &mut [f32]) {
        let (src, dst) = (self.src, self.dst);
        tmp.clear();
        tmp.resize(src * dst, 0.0);
        for y in 0..src {
            let row = offset + y * stride;
            for (x, t) in self.taps.iter().enumerate() {
                let mut acc = 0.0f32;
                for (k, w) in t.weights.iter().enumerate() {
                    acc += w * input[row + (t.start + k) * step] as f32;
                }
                tmp[y * dst + x] = acc;
            }
        }
        for (y, t) in self.taps.iter().enumerate() {
            let o = &mut out[y * dst..(y + 1) * dst];
            o.fill(0.0);
            for (k, w) in t.weights.iter().enumerate() {
                let r = &tmp[(t.start + k) * dst..(t.start + k + 1) * dst];
                for (a, b) in o.iter_mut().zip(r) {
                    *a += w * b;
                }
            }
        }
    }
}
