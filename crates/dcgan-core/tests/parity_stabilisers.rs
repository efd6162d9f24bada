//! The stabilisers (training options beyond the seed's algorithm) against PyTorch 2.11: fixtures
//! from benchmark/reference/make_fixtures.py running StabilisedLoop (stabilisers.py), each option
//! alone on a small 32×32 network, three steps compared to TOL (stats of every step, every
//! parameter and buffer after steps 1 and 3, the moving average's too). DiffAugment's random draws
//! are PyTorch's, replayed through `Gan::fed_augment_draws` (support::three_steps_match).
mod support;

use dcgan_core::{AdversarialLoss, Augment, Gan, TrainOptions};
use support::{fixture, state_differences, three_steps_match};
use tch::Device;

/// The same three steps with the seed's training options end elsewhere: the option was applied.
fn option_changes_the_result(name: &str) {
    let f = fixture(name);
    let mut gan = Gan::new(f.model.clone(), TrainOptions::default(), Device::Cpu, Some(0)).unwrap();
    f.load_into(&mut gan, "init.safetensors");
    for step in 1..=3 {
        gan.train_step(f.io(&format!("real.{step}")), Some(f.io(&format!("noise.{step}")))).unwrap();
    }
    let mut expected = f.file("after3.safetensors");
    expected.tensors.retain(|k, _| !k.starts_with("ema."));
    assert!(!state_differences(&gan, &expected).is_empty(), "{name}: the seed's options give the fixture's weights");
}

#[test]
fn ttur_three_steps_equal_pytorch() {
    let t = fixture("ttur32").train;
    assert_eq!((t.lr_of_d(), t.lr_of_g()), (4e-4, 1e-4));
    three_steps_match("ttur32");
    option_changes_the_result("ttur32");
}

#[test]
fn one_sided_label_smoothing_three_steps_equal_pytorch() {
    assert_eq!(fixture("smooth32").train.real_label, 0.9);
    three_steps_match("smooth32");
    option_changes_the_result("smooth32");
}

#[test]
fn hinge_loss_three_steps_equal_pytorch() {
    let f = fixture("hinge32");
    assert_eq!(f.train.loss, AdversarialLoss::Hinge);
    // The generator's hinge loss −E[D(G(z))] is near 0 at the start, not BCE's ≈ 0.69.
    assert!(f.io("stats.1").double_value(&[1]).abs() < 0.5);
    three_steps_match("hinge32");
    option_changes_the_result("hinge32");
}

#[test]
fn spectral_norm_three_steps_equal_pytorch() {
    let f = fixture("sn32");
    assert!(f.model.spectral_norm);
    // u and v are buffers of the state, compared after each step: the power iteration ran.
    assert!(f.file("after1.safetensors").tensors.contains_key("disc.0.weight_u"));
    three_steps_match("sn32");
}

#[test]
fn r1_penalty_three_steps_equal_pytorch() {
    assert_eq!(fixture("r1-32").train.r1_gamma, 10.0);
    three_steps_match("r1-32");
    option_changes_the_result("r1-32");
}

#[test]
fn lazy_r1_penalty_three_steps_equal_pytorch() {
    let t = fixture("r1lazy32").train;
    assert_eq!((t.r1_gamma, t.r1_every), (10.0, 2));
    three_steps_match("r1lazy32");
    // Penalised on D updates 1 and 3, not 2: the lazy fixture is not the every-step one.
    let every = fixture("r1-32").file("after3.safetensors");
    let lazy = fixture("r1lazy32").file("after3.safetensors");
    let d = support::max_abs_diff(&every.tensors["disc.0.weight"], &lazy.tensors["disc.0.weight"]);
    assert!(d > 1e-5, "lazy and every-step R1 agree: {d}");
}

#[test]
fn diffaugment_three_steps_equal_pytorch() {
    let f = fixture("augment32");
    assert_eq!(f.train.augment, Augment::TranslationCutout);
    // Three calls a step: the real and the fake batch of the D update, the fake of the G update.
    assert_eq!(f.io("augment.1").size(), [3, 6, 4]);
    three_steps_match("augment32");
}

#[test]
fn generator_ema_three_steps_equal_pytorch() {
    let f = fixture("ema32");
    assert_eq!(f.train.ema_decay, 0.999);
    three_steps_match("ema32");
    // After 3 updates the warm-up decay is 4/13: the average is neither G's start nor G.
    let after = f.file("after3.safetensors");
    let (ema, live) = (&after.tensors["ema.gen.0.0.weight"], &after.tensors["gen.0.0.weight"]);
    assert!(support::max_abs_diff(ema, live) > 1e-6);
}
