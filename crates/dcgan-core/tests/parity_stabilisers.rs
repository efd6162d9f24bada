//! The stabilisers (training options beyond the seed's algorithm) against PyTorch 2.11: fixtures
//! from benchmark/reference/make_fixtures.py running StabilisedLoop (stabilisers.py), each option
//! alone on a small 32×32 network, three steps compared to TOL (stats of every step, every
//! parameter and buffer after steps 1 and 3, the moving average's too). DiffAugment's random draws
//! are PyTorch's, replayed through `Gan::fed_augment_draws` (support::three_steps_match). `combo16`
//! turns the options on together; `sn32` also holds D's forward in training then evaluation mode.
mod support;

use dcgan_core::model::Network;
use dcgan_core::{AdversarialLoss, Augment, Gan, GeneratorLoss, NormMode, TrainOptions};
use support::{fixture, max_abs_diff, state_differences, three_steps_match, TOL};
use tch::{Device, Tensor};

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

/// D in Train mode then in Eval mode on `real.1`, from PyTorch's initial weights, as the reference
/// runs it (make_fixtures.py: `d(real)`, then `d.eval()`, `d(real)`): the Train forward runs one
/// power iteration (u and v move) and moves BatchNorm's running statistics; the Eval forward uses
/// both as they are and changes neither.
#[test]
fn spectral_norm_train_then_eval_forward_equals_pytorch() {
    let f = fixture("sn32");
    assert!(f.model.spectral_norm);
    let mut gan = f.gan();
    let uv = |gan: &Gan| -> Vec<(String, Tensor)> {
        let state = gan.discriminator.state().into_iter();
        state.filter(|(n, _, _)| n.ends_with(".weight_u") || n.ends_with(".weight_v")).map(|(n, t, _)| (n, t.copy())).collect()
    };
    let initial = uv(&gan);
    // u and v of D's four convolutions at 32×32.
    assert_eq!(initial.len(), 8);
    let real = f.io("real.1");

    let train = gan.discriminate(real, NormMode::Train).unwrap();
    let d = max_abs_diff(&train, f.io("forward.disc_train"));
    assert!(d <= TOL, "Train-mode forward: max |diff| {d}");
    let after_train = uv(&gan);
    // (The last convolution's u has one element, ±1, which an iteration leaves as it is.)
    for ((name, before), (_, after)) in initial.iter().zip(&after_train).filter(|(u, _)| u.1.numel() > 1) {
        assert!(max_abs_diff(before, after) > 1e-6, "{name}: the Train-mode forward ran no power iteration");
    }

    let eval = gan.discriminate(real, NormMode::Eval).unwrap();
    let d = max_abs_diff(&eval, f.io("forward.disc_eval"));
    assert!(d <= TOL, "Eval-mode forward after the Train-mode one: max |diff| {d}");
    for ((name, before), (_, after)) in after_train.iter().zip(&uv(&gan)) {
        assert!(before.equal(after), "{name}: the Eval-mode forward changed it");
    }
    // The two outputs differ (running statistics and u, v after one iteration vs the batch's): the
    // comparison tells the modes apart.
    assert!(max_abs_diff(f.io("forward.disc_train"), f.io("forward.disc_eval")) > 1e-4);
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

/// The options together, against StabilisedLoop with all of them on: dSteps 2 (so the lazy R1
/// penalty, counted in D updates, falls on the first D update of every step, not on every other
/// step), generatorLoss 'minimax' on D's logits (R1 needs them: the stabilised generator loss),
/// DiffAugment with PyTorch's draws, realLabel 0.9, a moving average whose decay
/// min(0.2, (1 + t)/(10 + t)) is capped from G update 2, TTUR and Adam's beta1 0.9, beta2 0.99,
/// eps 1e-6 for both optimisers.
#[test]
fn options_together_three_steps_equal_pytorch() {
    let f = fixture("combo16");
    let t = &f.train;
    assert_eq!((t.d_steps, t.generator_loss, t.loss), (2, GeneratorLoss::Minimax, AdversarialLoss::Bce));
    assert_eq!((t.r1_gamma, t.r1_every, t.augment, t.real_label, t.ema_decay), (10.0, 2, Augment::TranslationCutout, 0.9, 0.2));
    assert_eq!((t.lr_of_d(), t.lr_of_g(), t.beta1, t.beta2, t.eps), (4e-4, 1e-4, 0.9, 0.99, 1e-6));
    assert!(t.needs_logits());
    // mean log(1 − D(G(z))) is negative: the generator's loss is the minimax one.
    assert!(f.io("stats.1").double_value(&[1]) < 0.0);
    // Five DiffAugment calls a step (real and fake of each D update, the G update's fake), each on
    // half of the batch of 8.
    assert_eq!(f.io("augment.1").size(), [5, 4, 4]);
    three_steps_match("combo16");
    option_changes_the_result("combo16");
}
