//! Checkpoints of a model trained with the stabilisers: the moving average, spectral
//! normalisation's u and v and the random generator that DiffAugment draws from come back
//! identical, so that training resumes exactly; a checkpoint without a moving average still loads;
//! a checkpoint's Adam state is torch.optim.Adam's after the same steps, by name.
mod support;

use dcgan_core::model::Network;
use dcgan_core::{weights, AdversarialLoss, Augment, Gan, Init, ModelConfig, NormMode, TrainOptions};
use std::collections::HashMap;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

fn temp_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dcgan-stabilisers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn model() -> ModelConfig {
    ModelConfig { image_size: 16, features_g: 2, features_d: 3, z_dim: 8, channels: 1, init: Init::PytorchExample, spectral_norm: true }
}

/// Every stabiliser at once.
fn stabilised() -> TrainOptions {
    TrainOptions {
        lr_d: Some(4e-4),
        lr_g: Some(1e-4),
        loss: AdversarialLoss::Hinge,
        r1_gamma: 1.0,
        r1_every: 2,
        augment: Augment::TranslationCutout,
        ema_decay: 0.99,
        ..Default::default()
    }
}

fn real_batch(seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::rand([4, 1, 16, 16], (Kind::Float, Device::Cpu)) * 2.0 - 1.0
}

/// Every tensor of the model (networks, moving average, u and v) and of both Adams, by name.
fn assert_identical(a: &Gan, b: &Gan) {
    let (sa, sb) = (a.state(), b.state());
    assert_eq!(sa.len(), sb.len());
    for ((na, xa, _), (nb, xb, _)) in sa.iter().zip(&sb) {
        assert_eq!(na, nb);
        if xa.kind() == Kind::Int64 {
            assert_eq!(xa.int64_value(&[]), xb.int64_value(&[]), "{na}");
        } else {
            assert!(xa.equal(xb), "{na} differs");
        }
    }
    for (x, y) in a.opt_d.exp_avg_sq.iter().zip(&b.opt_d.exp_avg_sq).chain(a.opt_g.exp_avg.iter().zip(&b.opt_g.exp_avg)) {
        assert!(x.equal(y), "an Adam moment differs");
    }
    assert_eq!((a.steps_done, a.opt_g.step, a.opt_d.step), (b.steps_done, b.opt_g.step, b.opt_d.step));
    assert_eq!((&a.model, &a.train), (&b.model, &b.train));
}

#[test]
fn a_stabilised_run_resumes_exactly() {
    let mut gan = Gan::new(model(), stabilised(), Device::Cpu, Some(3)).unwrap();
    for i in 0..3 {
        gan.train_step(&real_batch(i), None).unwrap();
    }
    let names: Vec<String> = gan.state().into_iter().map(|s| s.0).collect();
    assert!(names.contains(&"ema.gen.0.0.weight".to_string()) && names.contains(&"disc.0.weight_u".to_string()), "{names:?}");
    let path = temp_file("stabilised.safetensors");
    gan.save(&path, HashMap::new()).unwrap();
    let mut back = Gan::load(&path, Device::Cpu).unwrap();
    assert_identical(&gan, &back);
    // The moving average is what samples: not the generator.
    let z = gan.latent(&mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1), 4).unwrap();
    let from_ema = gan.generate_from(&z, NormMode::Eval).unwrap();
    let from_live = tch::no_grad(|| gan.generator.forward(&z, NormMode::Eval)).unwrap();
    assert!(!from_ema.equal(&from_live));
    assert!(from_ema.equal(&back.generate_from(&z, NormMode::Eval).unwrap()));
    // Two more steps (one with the lazy R1 penalty, new DiffAugment draws) on both: still identical.
    for i in 3..5 {
        let (a, b) = (gan.train_step(&real_batch(i), None).unwrap(), back.train_step(&real_batch(i), None).unwrap());
        assert_eq!(a, b);
    }
    assert_identical(&gan, &back);
}

#[test]
fn a_checkpoint_without_a_moving_average_loads_and_the_average_starts_from_its_generator() {
    let mut gan = Gan::new(ModelConfig { spectral_norm: false, ..model() }, stabilised(), Device::Cpu, Some(4)).unwrap();
    gan.train_step(&real_batch(0), None).unwrap();
    let path = temp_file("no-ema.safetensors");
    gan.save(&path, HashMap::new()).unwrap();
    // The same file without its `ema.*` tensors, as a checkpoint written before the option existed.
    let mut loaded = weights::load(&path).unwrap();
    loaded.tensors.retain(|k, _| !k.starts_with("ema."));
    let tensors: Vec<(String, Tensor)> = loaded.tensors.into_iter().collect();
    weights::save(&path, &tensors, loaded.metadata).unwrap();
    let mut back = Gan::load(&path, Device::Cpu).unwrap();
    let ema = back.ema.as_ref().expect("emaDecay is set: the model has a moving average").state();
    for ((name, average, _), (_, live, _)) in ema.into_iter().zip(back.generator.state()) {
        if average.kind() == Kind::Float {
            assert!(average.equal(&live), "{name}: the average does not start from the loaded generator");
        }
    }
    // Turning the average off and on again: off drops it, on restarts it from the generator.
    back.set_train_options(TrainOptions { ema_decay: 0.0, ..stabilised() }).unwrap();
    assert!(back.ema.is_none());
    back.train_step(&real_batch(1), None).unwrap();
    back.set_train_options(stabilised()).unwrap();
    let z = back.latent(&mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(2), 3).unwrap();
    let live = tch::no_grad(|| back.generator.forward(&z, NormMode::Eval)).unwrap();
    assert!(back.generate_from(&z, NormMode::Eval).unwrap().equal(&live));
}

#[test]
fn option_rules_name_the_field() {
    let bad = |json: &str| dcgan_core::options::GanOptions::from_json(json).unwrap_err().to_string();
    assert_eq!(bad(r#"{"realLabel": 1.5}"#), "invalid realLabel: got 1.5; allowed: a number in (0, 1] (1: the seed; 0.9: one-sided label smoothing)");
    assert!(bad(r#"{"loss": "hinge", "realLabel": 0.9}"#).starts_with("invalid realLabel: got 0.9 with loss 'hinge'"));
    assert!(bad(r#"{"loss": "hinge", "generatorLoss": "minimax"}"#).starts_with("invalid generatorLoss: got 'minimax' with loss 'hinge'"));
    assert_eq!(bad(r#"{"emaDecay": 1}"#), "invalid emaDecay: got 1; allowed: a number in [0, 1) (0: no moving average)");
    assert_eq!(bad(r#"{"r1Every": 0}"#), "invalid r1Every: got 0; allowed: an integer from 1 to 1000");
    assert_eq!(bad(r#"{"lrD": 0}"#), "invalid lrD: got 0; allowed: a finite number > 0 (unset: lr)");
    assert_eq!(bad(r#"{"augment": "flip"}"#), "invalid augment: got 'flip'; allowed: 'none', 'translation', 'cutout', 'translation,cutout'");
    assert_eq!(bad(r#"{"loss": "wasserstein"}"#), "invalid loss: got 'wasserstein'; allowed: 'bce', 'hinge'");
}

/// How `actual` differs from `expected` beyond float32 rounding, if it does. Adam's moments lie far
/// below the parameters' TOL (the generator's second moments near 1e-13), so each tensor is
/// compared relative to its largest value: within 1e-4 of it (measured: 9e-7 or less).
fn moment_difference(actual: &Tensor, expected: &Tensor) -> Option<String> {
    let scale = expected.abs().max().double_value(&[]);
    let d = support::max_abs_diff(actual, expected);
    (!(d <= 1e-4 * scale) || scale == 0.0).then(|| format!("max |diff| {d:e}, largest |value| {scale:e}"))
}

/// The `combo16` fixture's three steps (dSteps 2, so D's Adam counts 6; Adam's beta1 0.9, beta2
/// 0.99, eps 1e-6), saved: every `optim.*` tensor of the file is torch.optim.Adam's `exp_avg` or
/// `exp_avg_sq` of the parameter it names (make_fixtures.py writes PyTorch's under the same names,
/// adam3.safetensors), the step counts are PyTorch's `state['step']`, and loading the file puts
/// PyTorch's moments back in the optimisers. A save and a load that swapped the moments (or the
/// parameters) the same way would pass the round trip of checkpoint.rs, not this.
#[test]
fn a_checkpoints_adam_state_is_pytorchs_by_name() {
    let f = support::fixture("combo16");
    let mut gan = f.gan();
    for step in 1..=3 {
        gan.fed_augment_draws.extend(f.io(&format!("augment.{step}")).unbind(0));
        gan.train_step(f.io(&format!("real.{step}")), Some(f.io(&format!("noise.{step}")))).unwrap();
    }
    let path = temp_file("adam-vs-pytorch.safetensors");
    gan.save(&path, HashMap::new()).unwrap();
    let saved = weights::load(&path).unwrap();
    let pytorch = f.file("adam3.safetensors");

    let mut ours: Vec<&String> = saved.tensors.keys().filter(|k| k.starts_with("optim.")).collect();
    let mut theirs: Vec<&String> = pytorch.tensors.keys().collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs, "the checkpoint's Adam tensors and PyTorch's have different names");
    // Two moments of G's 8 and of D's 7 parameters at 16×16.
    assert_eq!(theirs.len(), 30);
    let mut failures: Vec<String> = Vec::new();
    for (name, expected) in &pytorch.tensors {
        if let Some(diff) = moment_difference(&saved.tensors[name], expected) {
            failures.push(format!("{name} in the file: {diff}"));
        }
    }
    for net in ["gen", "disc"] {
        let key = format!("optim.{net}.step");
        assert_eq!(saved.metadata[&key], pytorch.metadata[&key], "{key}");
    }
    assert_eq!(pytorch.metadata["optim.disc.step"], "6");

    let back = Gan::load(&path, Device::Cpu).unwrap();
    for (net, state, opt) in [("gen", back.generator.state(), &back.opt_g), ("disc", back.discriminator.state(), &back.opt_d)] {
        let params: Vec<String> = state.into_iter().filter(|s| !s.2).map(|s| s.0).collect();
        assert_eq!(params.len(), opt.exp_avg.len());
        for (name, (m, v)) in params.iter().zip(opt.exp_avg.iter().zip(&opt.exp_avg_sq)) {
            for (kind, t) in [("exp_avg", m), ("exp_avg_sq", v)] {
                let key = format!("optim.{net}.{kind}.{name}");
                if let Some(diff) = moment_difference(t, &pytorch.tensors[&key]) {
                    failures.push(format!("{key} loaded: {diff}"));
                }
            }
        }
    }
    std::fs::remove_file(&path).unwrap();
    assert_eq!(failures, Vec::<String>::new());
}
