//! Fixture loading and comparison shared by the parity test binaries (parity.rs,
//! parity_channels_first.rs): the protocol of __test__/helpers.ts and gpu_check.rs's `parity`.
#![allow(dead_code)]
use dcgan_core::model::Network;
use dcgan_core::{weights, Gan, GeneratorLoss, Init, ModelConfig, NormMode, StepStats, TrainOptions};
use serde_json::Value;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

/// As in the ava tests: measured differences are 1e-7 or less.
pub const TOL: f64 = 1e-5;

pub struct Fixture {
    pub dir: PathBuf,
    pub io: weights::Loaded,
    pub model: ModelConfig,
    pub train: TrainOptions,
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures")
}

/// The model and training options that make_fixtures.py stores in the 'config' metadata: the
/// shape fields, then any option under its dcgan name (read by the core's own schema).
pub fn options_of(config: &Value) -> (ModelConfig, TrainOptions) {
    let mut fields = config.as_object().expect("'config' metadata is an object").clone();
    fields.remove("batch");
    let o = dcgan_core::options::GanOptions::from_json(&Value::Object(fields).to_string()).expect("the fixture's options");
    let (model, train) = legacy_options_of(config);
    // The hand-read fields agree with the schema's reading (a guard on the schema's names).
    assert_eq!((model.z_dim, model.init, train.d_steps, train.generator_loss), (o.model.z_dim, o.model.init, o.train.d_steps, o.train.generator_loss));
    (o.model, o.train)
}

fn legacy_options_of(config: &Value) -> (ModelConfig, TrainOptions) {
    let int = |k: &str| config[k].as_i64().unwrap_or_else(|| panic!("'config' metadata lacks {k}"));
    let init = match config["init"].as_str() {
        None | Some("seed") => Init::Seed,
        Some("pytorch-example") => Init::PytorchExample,
        Some(other) => panic!("unknown init '{other}'"),
    };
    let model = ModelConfig {
        z_dim: int("zDim"),
        channels: int("channels"),
        features_g: int("featuresG"),
        features_d: int("featuresD"),
        image_size: int("imageSize"),
        init,
        ..Default::default()
    };
    let generator_loss = match config["generatorLoss"].as_str() {
        None | Some("non-saturating") => GeneratorLoss::NonSaturating,
        Some("minimax") => GeneratorLoss::Minimax,
        Some(other) => panic!("unknown generatorLoss '{other}'"),
    };
    let d_steps = config["dSteps"].as_i64().unwrap_or(1);
    (model, TrainOptions { d_steps, generator_loss, ..Default::default() })
}

pub fn fixture(name: &str) -> Fixture {
    let dir = fixtures_dir().join(name);
    let io = weights::load(&dir.join("io.safetensors")).unwrap();
    let config: Value = serde_json::from_str(&io.metadata["config"]).unwrap();
    let (model, train) = options_of(&config);
    Fixture { dir, io, model, train }
}

impl Fixture {
    pub fn io(&self, key: &str) -> &Tensor {
        self.io.tensors.get(key).unwrap_or_else(|| panic!("io.safetensors has no '{key}'"))
    }

    pub fn file(&self, name: &str) -> weights::Loaded {
        weights::load(&self.dir.join(name)).unwrap()
    }

    /// A CPU model with the fixture's shape and options and PyTorch's initial weights.
    pub fn gan(&self) -> Gan {
        let mut gan = Gan::new(self.model.clone(), self.train.clone(), Device::Cpu, Some(0)).unwrap();
        self.load_into(&mut gan, "init.safetensors");
        gan
    }

    pub fn load_into(&self, gan: &mut Gan, file: &str) {
        let w = self.file(file);
        gan.generator.load_state(&w.tensors).unwrap();
        gan.discriminator.load_state(&w.tensors).unwrap();
        // The moving average starts from the loaded generator, as the reference's deep copy.
        gan.reset_ema().unwrap();
    }
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shapes differ");
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double)).abs().max().double_value(&[])
}

pub fn stats_vec(s: &StepStats) -> Tensor {
    Tensor::from_slice(&[s.loss_d, s.loss_g, s.d_real, s.d_fake, s.d_fake_after])
}

/// Every parameter and buffer of both networks (and of the moving average) that differs from
/// `expected` by more than TOL.
pub fn state_differences(gan: &Gan, expected: &weights::Loaded) -> Vec<String> {
    let state = gan.state();
    assert_eq!(state.len(), expected.tensors.len(), "the model's state and PyTorch's have different keys");
    let mut out = Vec::new();
    for (name, actual, _) in state {
        let e = expected.tensors.get(&name).unwrap_or_else(|| panic!("PyTorch's state lacks '{name}'"));
        let d = max_abs_diff(&actual, e);
        if !(d <= TOL) {
            out.push(format!("{name}: max |diff| {d}"));
        }
    }
    out
}

pub fn forward_matches(name: &str) {
    let f = fixture(name);
    let mut gan = f.gan();
    let (noise, real) = (f.io("noise.1"), f.io("real.1"));
    // BatchStats does not touch the running statistics, so the Eval passes after it still see
    // PyTorch's initial ones.
    let cases = [
        ("forward.gen_train", gan.generate_from(noise, NormMode::BatchStats).unwrap()),
        ("forward.gen_eval", gan.generate_from(noise, NormMode::Eval).unwrap()),
        ("forward.disc_train", gan.discriminate(real, NormMode::BatchStats).unwrap()),
        ("forward.disc_eval", gan.discriminate(real, NormMode::Eval).unwrap()),
    ];
    for (key, actual) in cases {
        let d = max_abs_diff(&actual, f.io(key));
        assert!(d <= TOL, "{name} {key}: max |diff| {d}");
    }
    // Train mode normalises with the batch's statistics, as BatchStats does, and also moves the
    // running ones by momentum 0.1.
    let train = gan.generate_from(noise, NormMode::Train).unwrap();
    assert!(max_abs_diff(&train, f.io("forward.gen_train")) <= TOL, "{name}: Train-mode forward");
    let init = f.file("init.safetensors");
    for (key, t, _) in gan.generator.state() {
        let before = &init.tensors[&key];
        if key.ends_with("num_batches_tracked") {
            assert_eq!(t.int64_value(&[]), before.int64_value(&[]) + 1, "{name} {key}");
        } else if key.contains("running_") {
            assert!(max_abs_diff(&t, before) > 1e-6, "{name} {key}: Train mode left the running statistics alone");
        } else {
            assert!(t.equal(&before.to_kind(Kind::Float)), "{name} {key}: a forward pass changed a parameter");
        }
    }
}

/// Three steps on the fixture's batches and noise: the statistics of each step, the state after
/// steps 1 and 3, the step counters.
pub fn three_steps_match(name: &str) {
    let f = fixture(name);
    let mut gan = f.gan();
    let mut failures = Vec::new();
    for step in 1..=3 {
        // DiffAugment: PyTorch's draws of this step, in the order they were made.
        if let Some(draws) = f.io.tensors.get(&format!("augment.{step}")) {
            gan.fed_augment_draws.extend(draws.unbind(0));
        }
        let s = gan.train_step(f.io(&format!("real.{step}")), Some(f.io(&format!("noise.{step}")))).unwrap();
        let d = max_abs_diff(&stats_vec(&s), f.io(&format!("stats.{step}")));
        if !(d <= TOL) {
            failures.push(format!("step {step} stats {s:?} vs PyTorch {:?}", Vec::<f64>::try_from(f.io(&format!("stats.{step}"))).unwrap()));
        }
        if step == 1 || step == 3 {
            let diffs = state_differences(&gan, &f.file(&format!("after{step}.safetensors")));
            failures.extend(diffs.into_iter().map(|x| format!("after step {step}: {x}")));
        }
    }
    assert_eq!(failures, Vec::<String>::new(), "{name}");
    assert!(gan.fed_augment_draws.is_empty(), "{name}: fed DiffAugment draws left unused");
    assert_eq!(gan.steps_done, 3);
    assert_eq!((gan.opt_g.step, gan.opt_d.step), (3, 3 * f.train.d_steps));
}

