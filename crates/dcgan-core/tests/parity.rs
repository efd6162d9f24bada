//! The core against PyTorch 2.11 running the seed's code, without Node: the fixtures of
//! __test__/fixtures (benchmark/reference/make_fixtures.py) replayed through `Gan` as
//! __test__/parity.spec.ts and __test__/parity-options.spec.ts replay them through the addon, so
//! that `cargo test` (and cargo-mutants, which runs it) sees every numeric path: forward passes in
//! the three BatchNorm modes, one and three training steps (Adam's bias correction per step), the
//! training options generatorLoss 'minimax', dSteps 2 and init 'pytorch-example'.
mod support;

use dcgan_core::model::Network;
use dcgan_core::{Gan, GeneratorLoss, Init, ModelConfig, NormMode, TrainOptions};
use serde_json::Value;
use support::{fixture, fixtures_dir, forward_matches, max_abs_diff, three_steps_match, TOL};
use tch::{Device, Kind, Tensor};

#[test]
fn seed64_forward_equals_pytorch() {
    forward_matches("seed64");
}

#[test]
fn rgb32_forward_equals_pytorch() {
    forward_matches("rgb32");
}

#[test]
fn seed64_three_steps_equal_pytorch() {
    // On the CPU the networks run channels-last unless DCGAN_CHANNELS_LAST=0
    // (parity_channels_first.rs runs the other layout).
    assert!(fixture("seed64").gan().channels_last);
    three_steps_match("seed64");
}

#[test]
fn rgb32_three_steps_equal_pytorch() {
    three_steps_match("rgb32");
}

#[test]
fn minimax_three_steps_equal_pytorch() {
    let f = fixture("minimax32");
    assert_eq!(f.train.generator_loss, GeneratorLoss::Minimax);
    // mean log(1 − D(G(z))) is negative: the case tests what it names.
    assert!(f.io("stats.1").double_value(&[1]) < 0.0);
    three_steps_match("minimax32");
}

#[test]
fn dsteps2_three_steps_equal_pytorch() {
    assert_eq!(fixture("dsteps2").train.d_steps, 2);
    three_steps_match("dsteps2");
}

#[test]
fn pytorch_example_init_three_steps_equal_pytorch() {
    assert_eq!(fixture("example-init32").model.init, Init::PytorchExample);
    three_steps_match("example-init32");
}

#[test]
fn a_generator_trained_in_pytorch_samples_what_pytorch_samples() {
    for name in ["seed64", "rgb32"] {
        let f = fixture(name);
        let mut gan = f.gan();
        f.load_into(&mut gan, "after3.safetensors");
        let images = gan.generate_from(f.io("noise.1"), NormMode::Eval).unwrap();
        let d = max_abs_diff(&images, f.io("trained.gen_eval"));
        assert!(d <= TOL, "{name}: max |diff| {d}");
        // num_batches_tracked comes from the file too (PyTorch counts 3 per D update, 1 per G update).
        let expected = f.file("after3.safetensors");
        for (key, tracked, _) in gan.generator.state().into_iter().chain(gan.discriminator.state()) {
            if key.ends_with("num_batches_tracked") {
                assert_eq!(tracked.int64_value(&[]), expected.tensors[&key].int64_value(&[]), "{name} {key}");
            }
        }
    }
}

/// Parameter counts of torch's modules built by the reference (param-counts.json): every layer's
/// shape and whether it has a bias.
#[test]
fn parameter_counts_equal_pytorchs() {
    let path = fixtures_dir().join("param-counts.json");
    let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(cases.len() >= 4);
    for c in cases {
        let int = |k: &str| c[k].as_i64().unwrap();
        let model = ModelConfig {
            image_size: int("imageSize"),
            z_dim: int("zDim"),
            channels: int("channels"),
            features_g: int("features"),
            features_d: int("features"),
            ..Default::default()
        };
        let gan = Gan::new(model, TrainOptions::default(), Device::Cpu, Some(0)).unwrap();
        let count = |state: Vec<(String, Tensor, bool)>| state.iter().filter(|s| !s.2).map(|s| s.1.numel() as i64).sum::<i64>();
        assert_eq!(count(gan.generator.state()), int("generator"), "{c}");
        assert_eq!(count(gan.discriminator.state()), int("discriminator"), "{c}");
        // Adam holds exactly the parameters, and its moments start at zero.
        let adam_g: i64 = gan.opt_g.params.iter().map(|p| p.numel() as i64).sum();
        assert_eq!(adam_g, int("generator"));
        let adam_d: i64 = gan.opt_d.exp_avg.iter().map(|p| p.numel() as i64).sum();
        assert_eq!(adam_d, int("discriminator"));
    }
}

/// Mean and standard deviation of every BatchNorm weight, every conv weight, and every BatchNorm bias
/// of a freshly built model.
fn init_statistics(init: Init) -> [(f64, f64); 3] {
    let model = ModelConfig { image_size: 32, features_g: 16, features_d: 16, z_dim: 32, init, ..Default::default() };
    let gan = Gan::new(model, TrainOptions::default(), Device::Cpu, Some(3)).unwrap();
    let state: Vec<_> = gan.generator.state().into_iter().chain(gan.discriminator.state()).collect();
    let pick = |pred: &dyn Fn(&str, &Tensor) -> bool| {
        let parts: Vec<Tensor> = state.iter().filter(|(n, t, _)| pred(n, t)).map(|(_, t, _)| t.flatten(0, -1)).collect();
        let all = Tensor::cat(&parts, 0).to_kind(Kind::Double);
        (all.mean(Kind::Double).double_value(&[]), all.std(true).double_value(&[]))
    };
    [
        pick(&|n, t| n.ends_with(".weight") && t.dim() == 1),
        pick(&|n, t| n.ends_with(".weight") && t.dim() == 4),
        pick(&|n, t| n.ends_with(".bias") && t.dim() == 1 && n.contains(".1.")),
    ]
}

#[test]
fn initial_weights_follow_the_seed_and_pytorch_example_schemes() {
    // The seed: every Conv, ConvTranspose and BatchNorm weight ~ N(0, 0.02); BatchNorm biases 0.
    let [bn, conv, bias] = init_statistics(Init::Seed);
    assert!(bn.0.abs() < 0.01 && (bn.1 - 0.02).abs() < 0.005, "seed BatchNorm weights {bn:?}");
    assert!(conv.0.abs() < 0.001 && (conv.1 - 0.02).abs() < 0.001, "seed conv weights {conv:?}");
    assert_eq!(bias, (0.0, 0.0));
    // pytorch/examples: BatchNorm weights ~ N(1, 0.02).
    let [bn, conv, bias] = init_statistics(Init::PytorchExample);
    assert!((bn.0 - 1.0).abs() < 0.01 && (bn.1 - 0.02).abs() < 0.005, "pytorch-example BatchNorm weights {bn:?}");
    assert!(conv.0.abs() < 0.001 && (conv.1 - 0.02).abs() < 0.001, "pytorch-example conv weights {conv:?}");
    assert_eq!(bias, (0.0, 0.0));
}

/// The output layers' biases: PyTorch's default U(−1/√fan_in, 1/√fan_in), fan_in = C_in·4·4 of
/// the weight's second dimension.
#[test]
fn conv_biases_follow_pytorchs_default_bound() {
    let model = ModelConfig { image_size: 16, features_g: 4, features_d: 4, z_dim: 8, channels: 3, ..Default::default() };
    let gan = Gan::new(model, TrainOptions::default(), Device::Cpu, Some(5)).unwrap();
    let state: Vec<_> = gan.generator.state().into_iter().chain(gan.discriminator.state()).collect();
    let mut seen = 0;
    for (name, bias, _) in state.iter().filter(|(n, t, _)| n.ends_with(".bias") && !n.contains(".1.") && t.dim() == 1) {
        let weight = &state.iter().find(|(n, _, _)| *n == name.replace(".bias", ".weight")).unwrap().1;
        let bound = 1.0 / ((weight.size()[1] * 16) as f64).sqrt();
        let max = bias.abs().max().double_value(&[]);
        assert!(max <= bound && max > 0.0, "{name}: max |bias| {max}, bound {bound}");
        seen += 1;
    }
    assert_eq!(seen, 3, "the generator's output conv and the discriminator's input and output convs");
}

/// `Discriminator::features` (what evaluation measures) is the input of D's last convolution: that
/// convolution (stride 2, no padding) and a sigmoid turn it into D's output.
#[test]
fn discriminator_features_feed_its_last_convolution() {
    let f = fixture("seed64");
    let mut gan = f.gan();
    let real = f.io("real.1");
    let features = tch::no_grad(|| gan.discriminator.features(real, NormMode::Eval)).unwrap();
    // 4×4 maps of 8·featuresD channels for the seed's 64×64 network.
    assert_eq!(features.size(), [real.size()[0], 8 * f.model.features_d, 4, 4]);
    let state = gan.discriminator.state();
    let last = |suffix: &str| state.iter().rev().find(|s| s.0.ends_with(suffix)).unwrap().1.shallow_clone();
    let (w, b) = (last(".weight"), last(".bias"));
    let out = features.conv2d(&w, Some(&b), [2, 2], [0, 0], [1, 1], 1).sigmoid().reshape([-1]);
    let d = max_abs_diff(&out, f.io("forward.disc_eval"));
    assert!(d <= TOL, "max |diff| {d}");
}
