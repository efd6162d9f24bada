//! Checkpoints (gan.rs `save`/`load`, weights.rs): what is saved comes back identical — weights,
//! buffers, Adam's moments and step, the random generator, the counters — so that training
//! continues exactly; files that are not dcgan checkpoints are refused with messages that say why.
use dcgan_core::model::Network;
use dcgan_core::{gan::Header, weights, Gan, GeneratorLoss, Init, ModelConfig, NormMode, TrainOptions};
use std::collections::HashMap;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dcgan-checkpoint-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn small_gan(seed: u64) -> Gan {
    let model = ModelConfig { image_size: 16, features_g: 2, features_d: 3, z_dim: 8, channels: 3, init: Init::PytorchExample, spectral_norm: false };
    let train = TrainOptions { lr: 1e-3, beta1: 0.6, beta2: 0.99, eps: 1e-7, d_steps: 2, generator_loss: GeneratorLoss::Minimax, ..Default::default() };
    Gan::new(model, train, Device::Cpu, Some(seed)).unwrap()
}

fn real_batch(seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::rand([4, 3, 16, 16], (Kind::Float, Device::Cpu)) * 2.0 - 1.0
}

/// Every tensor a checkpoint holds, by name: both networks and both optimisers' moments.
fn everything(gan: &Gan) -> Vec<(String, Tensor)> {
    let mut out: Vec<(String, Tensor)> = Vec::new();
    for (net, state, opt) in [("gen", gan.generator.state(), &gan.opt_g), ("disc", gan.discriminator.state(), &gan.opt_d)] {
        out.extend(state.into_iter().map(|(n, t, _)| (n, t)));
        for (i, (m, v)) in opt.exp_avg.iter().zip(&opt.exp_avg_sq).enumerate() {
            out.push((format!("{net}.m{i}"), m.shallow_clone()));
            out.push((format!("{net}.v{i}"), v.shallow_clone()));
        }
    }
    out
}

fn assert_identical(a: &Gan, b: &Gan) {
    let (ta, tb) = (everything(a), everything(b));
    assert_eq!(ta.len(), tb.len());
    for ((na, xa), (nb, xb)) in ta.iter().zip(&tb) {
        assert_eq!(na, nb);
        assert!(xa.equal(xb), "{na} differs after the round trip");
    }
    assert_eq!((a.steps_done, a.opt_g.step, a.opt_d.step), (b.steps_done, b.opt_g.step, b.opt_d.step));
    assert_eq!(a.model, b.model);
    assert_eq!(a.train, b.train);
}

#[test]
fn save_then_load_gives_back_the_same_gan_and_training_continues_identically() {
    let mut gan = small_gan(11);
    for i in 0..2 {
        gan.train_step(&real_batch(i), None).unwrap();
    }
    // Adam moments are not zero any more, and the two optimisers have counted different steps.
    assert!(gan.opt_d.exp_avg_sq[0].abs().sum(Kind::Double).double_value(&[]) > 0.0);
    assert_eq!((gan.steps_done, gan.opt_g.step, gan.opt_d.step), (2, 2, 4));
    let path = temp_dir("roundtrip").join("sub/model.safetensors");
    let extra = HashMap::from([("trainer".to_string(), r#"{"epoch":3}"#.to_string())]);
    gan.save(&path, extra).unwrap();
    let mut back = Gan::load(&path, Device::Cpu).unwrap();
    assert_identical(&gan, &back);

    let header = Header::read(&path).unwrap();
    assert_eq!((header.model, header.train, header.steps), (gan.model.clone(), gan.train.clone(), 2));
    assert_eq!(header.trainer, Some(serde_json::json!({ "epoch": 3 })));
    let json: serde_json::Value = serde_json::from_str(&header_json(&path)).unwrap();
    assert_eq!(json["format"], "dcgan/1");
    assert_eq!(json["steps"], 2);
    assert_eq!(json["model"]["zDim"], 8);
    assert_eq!(json["optimizer"]["generatorLoss"], "minimax");
    assert_eq!(json["trainer"]["epoch"], 3);

    // The random generator was restored where it was: the same noise, the same next steps.
    let (a, b) = (gan.generate(3, None, NormMode::Eval).unwrap(), back.generate(3, None, NormMode::Eval).unwrap());
    assert!(a.equal(&b), "the restored random generator draws other noise");
    let (sa, sb) = (gan.train_step(&real_batch(9), None).unwrap(), back.train_step(&real_batch(9), None).unwrap());
    assert_eq!(sa, sb);
    assert_identical(&gan, &back);
    // …and it had moved on from the seed: a fresh model with the same seed draws other noise.
    let mut again = Gan::load(&path, Device::Cpu).unwrap();
    assert!(!again.generate(3, None, NormMode::Eval).unwrap().equal(&small_gan(11).generate(3, None, NormMode::Eval).unwrap()));
}

fn header_json(path: &std::path::Path) -> String {
    Header::read(path).unwrap().to_json().unwrap()
}

#[test]
fn generate_with_a_seed_is_reproducible_and_leaves_the_models_generator_alone() {
    let mut gan = small_gan(4);
    let a = gan.generate(2, Some(77), NormMode::Eval).unwrap();
    let b = gan.generate(2, Some(77), NormMode::Eval).unwrap();
    assert!(a.equal(&b));
    let c = gan.generate(2, None, NormMode::Eval).unwrap();
    let d = gan.generate(2, None, NormMode::Eval).unwrap();
    assert!(!c.equal(&d), "the model's own generator must advance");
    assert_eq!(a.size(), [2, 3, 16, 16]);
    assert!(a.abs().max().double_value(&[]) <= 1.0, "tanh output");
    for n in [0, dcgan_core::gan::MAX_COUNT + 1] {
        let e = gan.generate(n, None, NormMode::Eval).unwrap_err().to_string();
        assert!(e.contains("invalid n"), "{e}");
    }
}

#[test]
fn reserved_metadata_keys_are_refused() {
    let gan = small_gan(1);
    let path = temp_dir("reserved").join("m.safetensors");
    let e = gan.save(&path, HashMap::from([("steps".to_string(), "9".to_string())])).unwrap_err().to_string();
    assert_eq!(e, "metadata key 'steps' is reserved by dcgan");
    assert!(!path.exists());
}

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A safetensors file with `meta` as its metadata and one small tensor.
fn safetensors_with(dir: &std::path::Path, name: &str, meta: HashMap<String, String>) -> PathBuf {
    let p = dir.join(name);
    weights::save(&p, &[("x".to_string(), Tensor::from_slice(&[1.0f32, 2.0]))], meta).unwrap();
    p
}

#[test]
fn files_that_are_not_checkpoints_are_refused_with_the_reason() {
    let dir = temp_dir("corrupt");
    let load_err = |p: &PathBuf| Gan::load(p, Device::Cpu).err().expect("must be refused").to_string();
    let header_err = |p: &PathBuf| Header::read(p).err().expect("must be refused").to_string();

    let short = write(&dir, "short", &[1, 2, 3]);
    assert!(header_err(&short).contains("not a valid safetensors file (shorter than its 8-byte header length)"));
    assert!(load_err(&short).contains("not a valid safetensors file"));
    let huge = write(&dir, "huge", &u64::MAX.to_le_bytes());
    assert!(header_err(&huge).contains(&format!("not a valid safetensors file (header length {} in a file of 8 bytes)", u64::MAX)));
    let mut cut = 100u64.to_le_bytes().to_vec();
    cut.extend(b"{\"a\":");
    // A header longer than the file is refused before it is read (nothing is allocated for it).
    assert!(header_err(&write(&dir, "cut", &cut)).contains("(header length 100 in a file of 13 bytes)"));
    let mut not_json = 4u64.to_le_bytes().to_vec();
    not_json.extend(b"abcd");
    let not_json = write(&dir, "notjson", &not_json);
    assert!(header_err(&not_json).contains("(header is not JSON"));
    assert!(load_err(&not_json).contains("not a valid safetensors file"));
    assert!(header_err(&dir.join("missing")).contains("cannot open"));
    assert!(load_err(&dir.join("missing")).contains("cannot open"));

    // Valid safetensors, but not (or not this version of) a dcgan checkpoint.
    let plain = safetensors_with(&dir, "plain", HashMap::new());
    assert!(header_err(&plain).contains("has no 'format' metadata: it was not written by dcgan's save()"));
    let other = safetensors_with(&dir, "other", HashMap::from([("format".into(), "dcgan/0".into())]));
    assert!(header_err(&other).contains("has format 'dcgan/0', this version reads 'dcgan/1'"));

    // A real checkpoint with one metadata entry broken at a time.
    let gan = small_gan(2);
    let good = dir.join("good.safetensors");
    gan.save(&good, HashMap::new()).unwrap();
    let meta = weights::read_metadata(&good).unwrap();
    let tensors: Vec<(String, Tensor)> = weights::load(&good).unwrap().tensors.into_iter().collect();
    let broken = |key: &str, value: Option<&str>, drop_tensor: Option<&str>| {
        let mut m = meta.clone();
        match value {
            Some(v) => m.insert(key.to_string(), v.to_string()),
            None => m.remove(key),
        };
        let ts: Vec<(String, Tensor)> = tensors.iter().filter(|(n, _)| Some(n.as_str()) != drop_tensor).map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
        let p = dir.join(format!("broken-{key}.safetensors"));
        weights::save(&p, &ts, m).unwrap();
        load_err(&p)
    };
    assert!(broken("model", Some("{"), None).contains("bad 'model' metadata"));
    assert!(broken("model", Some(r#"{"zDim":"x"}"#), None).contains("bad 'model' metadata"));
    assert!(broken("train", Some(r#"{"lr":"fast"}"#), None).contains("bad 'train' metadata"));
    assert!(broken("steps", Some("two"), None).contains("bad 'steps' metadata"));
    assert!(broken("trainer", Some("{"), None).contains("bad 'trainer' metadata"));
    assert!(broken("optim.gen.step", Some("x"), None).contains("bad 'optim.gen.step' metadata"));
    assert!(broken("optim.disc.step", None, None).contains("has no 'optim.disc.step' metadata"));
    assert!(broken("rng", Some("{}"), None).contains("bad 'rng' metadata"));
    let rng: serde_json::Value = serde_json::from_str(&meta["rng"]).unwrap();
    let mut short_seed = rng.clone();
    short_seed["seed"] = serde_json::json!([1, 2, 3]);
    assert!(broken("rng", Some(&short_seed.to_string()), None).contains("seed is not 32 bytes"));
    let mut bad_pos = rng.clone();
    bad_pos["word_pos"] = serde_json::json!("not a number");
    assert!(broken("rng", Some(&bad_pos.to_string()), None).contains("bad 'rng' metadata: word_pos"));
    let e = broken("steps", Some("0"), Some("optim.disc.exp_avg_sq.disc.0.weight"));
    assert!(e.contains("lacks tensor 'optim.disc.exp_avg_sq.disc.0.weight'"), "{e}");
    let e = broken("steps", Some("0"), Some("gen.0.1.running_var"));
    assert!(e.contains("lacks tensor 'gen.0.1.running_var'"), "{e}");
    // Another model's weights: the shapes differ.
    let bigger = Gan::new(ModelConfig { features_g: 4, ..gan.model.clone() }, gan.train.clone(), Device::Cpu, Some(0)).unwrap();
    let e = gan_load_state_err(&bigger, &tensors);
    assert!(e.contains("'gen.0.0.weight' has shape [8, 8, 4, 4] in the weights but [8, 16, 4, 4] in this model"), "{e}");
}

fn gan_load_state_err(gan: &Gan, tensors: &[(String, Tensor)]) -> String {
    let map: HashMap<String, Tensor> = tensors.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
    let mut g = Gan::new(gan.model.clone(), gan.train.clone(), Device::Cpu, Some(0)).unwrap();
    g.generator.load_state(&map).unwrap_err().to_string()
}

#[test]
fn weights_round_trip_every_supported_kind_and_refuse_the_others() {
    let dir = temp_dir("kinds");
    let path = dir.join("kinds.safetensors");
    let base = Tensor::from_slice(&[0.0f64, 1.5, -2.25, 3.0, 4.0, -5.5]).view([2, 3]);
    let kinds = [Kind::Float, Kind::Double, Kind::Int64, Kind::Int, Kind::Uint8, Kind::Half, Kind::BFloat16];
    let tensors: Vec<(String, Tensor)> = kinds.iter().map(|k| (format!("{k:?}"), base.abs().to_kind(*k))).collect();
    // A non-contiguous tensor is written in row-major order.
    let transposed = ("transposed".to_string(), base.tr());
    let all: Vec<(String, Tensor)> = tensors.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).chain([transposed]).collect();
    let meta = HashMap::from([("k".to_string(), "v".to_string())]);
    weights::save(&path, &all, meta.clone()).unwrap();
    let back = weights::load(&path).unwrap();
    // The metadata given, and the checksum of the tensors beside it.
    let mut stored = back.metadata.clone();
    assert!(stored.remove(weights::CHECKSUM_KEY).is_some_and(|c| c.starts_with("crc32:")));
    assert_eq!(stored, meta);
    assert_eq!(weights::read_metadata(&path).unwrap(), back.metadata);
    for (name, t) in &all {
        let b = &back.tensors[name];
        assert_eq!((b.kind(), b.size()), (t.kind(), t.size()), "{name}");
        assert!(b.equal(&t.contiguous()), "{name}");
    }
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("kinds.safetensors")]);

    let e = weights::save(&dir.join("bool"), &[("b".into(), Tensor::from_slice(&[true]))], HashMap::new()).unwrap_err();
    assert!(e.to_string().contains("cannot store tensors of kind Bool in safetensors"), "{e}");
    // A dtype the loader does not take (bool, written by safetensors itself).
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::BOOL, vec![1], &[1u8]).unwrap();
    let bytes = safetensors::serialize(vec![("b", view)], None).unwrap();
    std::fs::write(dir.join("bool.safetensors"), bytes).unwrap();
    let e = weights::load(&dir.join("bool.safetensors")).err().unwrap().to_string();
    assert!(e.contains("tensor 'b' has unsupported dtype BOOL"), "{e}");
    // A file without metadata has none.
    let bare = safetensors::serialize(vec![("x", safetensors::tensor::TensorView::new(safetensors::Dtype::U8, vec![1], &[7u8]).unwrap())], None).unwrap();
    std::fs::write(dir.join("bare.safetensors"), bare).unwrap();
    assert!(weights::read_metadata(&dir.join("bare.safetensors")).unwrap().is_empty());
    assert!(weights::load(&dir.join("bare.safetensors")).unwrap().metadata.is_empty());
}

#[test]
fn all_finite_sees_a_nan_weight_and_the_step_says_training_diverged() {
    let mut gan = small_gan(3);
    assert!(gan.all_finite().unwrap());
    let _ = gan.train_step(&real_batch(1), None).unwrap();
    let _ = tch::no_grad(|| gan.discriminator.state()[0].1.get(0).fill_(f64::NAN));
    assert!(!gan.all_finite().unwrap());
    let e = gan.train_step(&real_batch(2), None).unwrap_err().to_string();
    assert!(e.contains("the weights hold NaN or Infinity at step 2: training diverged"), "{e}");
}
