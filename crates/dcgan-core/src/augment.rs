//! DiffAugment (Zhao et al. 2020, github.com/mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py):
//! translation and cutout as differentiable functions of the images and of explicit random draws,
//! so that a test can replay the draws PyTorch made (benchmark/reference/stabilisers.py).
//!
//! The draws of one call are an N×4 int64 tensor, one row per image: translation (x, y) in
//! [−⌊S/8 + ½⌋, ⌊S/8 + ½⌋], then cutout offsets (x, y) in [0, S + 1 − c mod 2) with c = ⌊S/2 + ½⌋,
//! drawn in that order, image by image, from the model's random generator. Columns a policy does
//! not use are drawn all the same, so that the stream does not depend on the policy.
use crate::config::Augment;
use crate::error::Result;
use rand::Rng;
use tch::{Device, Kind, Tensor};

/// The largest shift: `int(S * 0.125 + 0.5)` in the reference.
pub fn max_shift(side: i64) -> i64 {
    (side as f64 * 0.125 + 0.5) as i64
}

/// The cutout square's side: `int(S * 0.5 + 0.5)`.
pub fn cutout_side(side: i64) -> i64 {
    (side as f64 * 0.5 + 0.5) as i64
}

/// The draws for one batch of `shape` (N×C×H×W, square), from `rng`.
pub fn draw(rng: &mut impl Rng, _policy: Augment, shape: &[i64], device: Device) -> Result<Tensor> {
    let (n, side) = (shape[0], shape[2]);
    let (shift, cut) = (max_shift(side), cutout_side(side));
    let offsets = side + (1 - cut % 2);
    let mut values = Vec::with_capacity(4 * n as usize);
    for _ in 0..n {
        values.push(rng.random_range(-shift..=shift));
        values.push(rng.random_range(-shift..=shift));
        values.push(rng.random_range(0..offsets));
        values.push(rng.random_range(0..offsets));
    }
    crate::device::upload(&Tensor::f_from_slice(&values)?.f_view([n, 4])?, device)
}

/// `x` augmented by `policy` with `draws` (N×4 int64): translation, then cutout.
pub fn apply(x: &Tensor, policy: Augment, draws: &Tensor) -> Result<Tensor> {
    let mut y = x.shallow_clone();
    if policy.translation() {
        y = translate(&y, &draws.f_select(1, 0)?, &draws.f_select(1, 1)?)?;
    }
    if policy.cutout() {
        y = cutout(&y, &draws.f_select(1, 2)?, &draws.f_select(1, 3)?)?;
    }
    Ok(y)
}

/// rand_translation: out[b, :, i, j] = x[b, :, i + tx, j + ty], 0 outside the image.
fn translate(x: &Tensor, tx: &Tensor, ty: &Tensor) -> Result<Tensor> {
    let size = x.size();
    let (n, h, w) = (size[0], size[2], size[3]);
    let opts = (Kind::Int64, x.device());
    let batch = Tensor::f_arange(n, opts)?.f_view([n, 1, 1])?;
    let rows = Tensor::f_arange(h, opts)?.f_view([1, h, 1])?.f_add(&tx.f_view([n, 1, 1])?)?.f_add_scalar(1)?.f_clamp(0, h + 1)?;
    let cols = Tensor::f_arange(w, opts)?.f_view([1, 1, w])?.f_add(&ty.f_view([n, 1, 1])?)?.f_add_scalar(1)?.f_clamp(0, w + 1)?;
    let padded = x.f_constant_pad_nd([1i64, 1, 1, 1])?.f_permute([0, 2, 3, 1])?.f_contiguous()?;
    Ok(padded.f_index(&[Some(batch), Some(rows), Some(cols)])?.f_permute([0, 3, 1, 2])?)
}

/// rand_cutout: zeroes the c×c square centred (⌊c/2⌋ before) at the offsets, clipped to the image.
fn cutout(x: &Tensor, ox: &Tensor, oy: &Tensor) -> Result<Tensor> {
    let size = x.size();
    let (n, h, w) = (size[0], size[2], size[3]);
    let (ch, cw) = (cutout_side(h), cutout_side(w));
    let opts = (Kind::Int64, x.device());
    let batch = Tensor::f_arange(n, opts)?.f_view([n, 1, 1])?;
    let rows = Tensor::f_arange(ch, opts)?.f_view([1, ch, 1])?.f_add(&ox.f_view([n, 1, 1])?)?.f_sub_scalar(ch / 2)?.f_clamp(0, h - 1)?;
    let cols = Tensor::f_arange(cw, opts)?.f_view([1, 1, cw])?.f_add(&oy.f_view([n, 1, 1])?)?.f_sub_scalar(cw / 2)?.f_clamp(0, w - 1)?;
    let mut mask = Tensor::f_ones([n, h, w], (x.kind(), x.device()))?;
    let zero = Tensor::f_zeros([], (x.kind(), x.device()))?;
    let _ = mask.f_index_put_(&[Some(batch), Some(rows), Some(cols)], &zero, false)?;
    Ok(x.f_mul(&mask.f_unsqueeze(1)?)?)
}
