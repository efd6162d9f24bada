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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::HashSet;

    const N: usize = 10_000;

    /// The four columns of one call's draws for N images of side `side`, from a generator seeded `seed`.
    fn columns(seed: u64, policy: Augment, side: i64) -> Vec<Vec<i64>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let d = draw(&mut rng, policy, &[N as i64, 3, side, side], Device::Cpu).unwrap();
        assert_eq!((d.size(), d.kind()), (vec![N as i64, 4], Kind::Int64));
        (0..4).map(|c| Vec::<i64>::try_from(d.select(1, c).contiguous()).unwrap()).collect()
    }

    /// Every value within [lo, hi], each of them drawn, each about equally often (within 25 % of
    /// N / (hi − lo + 1): more than 4 standard deviations of a uniform draw at these counts).
    fn assert_uniform_over(values: &[i64], lo: i64, hi: i64, what: &str) {
        let mut counts = vec![0usize; (hi - lo + 1) as usize];
        for &v in values {
            assert!((lo..=hi).contains(&v), "{what}: {v} is outside [{lo}, {hi}]");
            counts[(v - lo) as usize] += 1;
        }
        let expected = values.len() as f64 / counts.len() as f64;
        for (i, &c) in counts.iter().enumerate() {
            assert!((c as f64 - expected).abs() < 0.25 * expected, "{what}: {} drawn {c} times of {}, expected about {expected}", lo + i as i64, values.len());
        }
    }

    /// The ranges of DiffAugment_pytorch.py (benchmark/reference/stabilisers.py, draw_augment):
    /// translation randint(−shift, shift + 1) with shift = int(S·0.125 + 0.5), cutout offsets
    /// randint(0, S + (1 − c % 2)) with c = int(S·0.5 + 0.5). At S = 32: shift 4, c 16, offsets
    /// 0…32; at S = 16: shift 2, c 8, offsets 0…16 (worked out by hand from those expressions).
    #[test]
    fn draws_cover_diffaugments_ranges_exactly_and_uniformly() {
        for (side, shift, last_offset) in [(32, 4, 32), (16, 2, 16)] {
            let c = columns(7, Augment::TranslationCutout, side);
            assert_uniform_over(&c[0], -shift, shift, &format!("S={side} translation x"));
            assert_uniform_over(&c[1], -shift, shift, &format!("S={side} translation y"));
            assert_uniform_over(&c[2], 0, last_offset, &format!("S={side} cutout offset x"));
            assert_uniform_over(&c[3], 0, last_offset, &format!("S={side} cutout offset y"));
        }
    }

    /// One draw per image (not one for the whole batch), the four columns drawn separately, the
    /// next call from the same generator drawing anew, and the same seed giving the same draws.
    #[test]
    fn draws_vary_by_image_and_repeat_with_the_seed() {
        let c = columns(7, Augment::TranslationCutout, 32);
        // 9·9·33·33 = 88,209 possible rows: 10,000 independent draws give about 9,450 distinct ones.
        let rows: HashSet<[i64; 4]> = (0..N).map(|i| [c[0][i], c[1][i], c[2][i], c[3][i]]).collect();
        assert!(rows.len() > 9_000, "only {} distinct rows of {N}", rows.len());
        // x and y independent: equal in about 1/9 (shifts) and 1/33 (offsets) of the rows.
        let equal = |a: &[i64], b: &[i64]| a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / N as f64;
        let (shifts, offsets) = (equal(&c[0], &c[1]), equal(&c[2], &c[3]));
        assert!((shifts - 1.0 / 9.0).abs() < 0.02, "tx = ty in {shifts} of the rows");
        assert!((offsets - 1.0 / 33.0).abs() < 0.01, "ox = oy in {offsets} of the rows");

        assert_eq!(columns(7, Augment::TranslationCutout, 32), c, "the same seed drew other values");
        assert_ne!(columns(8, Augment::TranslationCutout, 32), c, "another seed drew the same values");
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let shape = [N as i64, 3, 32, 32];
        let first = draw(&mut rng, Augment::TranslationCutout, &shape, Device::Cpu).unwrap();
        let second = draw(&mut rng, Augment::TranslationCutout, &shape, Device::Cpu).unwrap();
        assert!(!first.equal(&second), "the next call drew the same values again");
    }

    /// The single policies draw the same stream as 'translation,cutout' (every column, as the
    /// reference's draw_augment: the stream does not depend on the policy), and each applies only
    /// its own columns: 'translation' x and y (0, 1), 'cutout' the offsets (2, 3).
    #[test]
    fn single_policies_draw_every_column_and_apply_only_their_own() {
        let both = columns(7, Augment::TranslationCutout, 32);
        for policy in [Augment::Translation, Augment::Cutout] {
            assert_eq!(columns(7, policy, 32), both, "{policy:?} drew another stream");
        }
        let x = Tensor::arange(2 * 16 * 16, (Kind::Float, Device::Cpu)).view([2, 1, 16, 16]) + 1.0;
        let draws = |v: [i64; 8]| Tensor::from_slice(&v).view([2, 4]);
        let d = draws([1, -2, 3, 12, 0, 0, 8, 8]);
        let other_offsets = draws([1, -2, 9, 1, 0, 0, 0, 16]);
        let other_shifts = draws([3, 1, 3, 12, -2, 2, 8, 8]);
        let t = apply(&x, Augment::Translation, &d).unwrap();
        assert!(t.equal(&apply(&x, Augment::Translation, &other_offsets).unwrap()), "translation read the cutout offsets");
        assert!(!t.equal(&apply(&x, Augment::Translation, &other_shifts).unwrap()));
        // Translation alone: out[b, :, i, j] = x[b, :, i + tx, j + ty], 0 outside; image 1 unmoved.
        for (i, j) in [(0, 0), (0, 2), (5, 7), (14, 15), (15, 3)] {
            let (si, sj) = (i + 1, j - 2);
            let want = if (0..16).contains(&si) && (0..16).contains(&sj) { x.double_value(&[0, 0, si, sj]) } else { 0.0 };
            assert_eq!(t.double_value(&[0, 0, i, j]), want, "translated ({i}, {j})");
        }
        assert!(t.get(1).equal(&x.get(1)));
        let c = apply(&x, Augment::Cutout, &d).unwrap();
        assert!(c.equal(&apply(&x, Augment::Cutout, &other_shifts).unwrap()), "cutout read the translation");
        assert!(!c.equal(&apply(&x, Augment::Cutout, &other_offsets).unwrap()));
        // Cutout alone: an 8×8 square from offset − 4, clipped: rows 0…6 × columns 8…15 of image 0
        // (56 zeros), rows 4…11 × columns 4…11 of image 1 (64); nothing else changed.
        let zeros = |b: i64| c.get(b).eq(0.0).sum(Kind::Int64).int64_value(&[]);
        assert_eq!((zeros(0), zeros(1)), (56, 64));
        assert_eq!(c.double_value(&[0, 0, 6, 8]), 0.0);
        assert_eq!(c.double_value(&[0, 0, 7, 8]), x.double_value(&[0, 0, 7, 8]));
        assert_eq!(c.double_value(&[1, 0, 4, 4]), 0.0);
        assert_eq!(c.double_value(&[1, 0, 3, 4]), x.double_value(&[1, 0, 3, 4]));
    }
}
