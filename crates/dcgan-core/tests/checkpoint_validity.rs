//! A checkpoint whose tensors training could not have produced is refused on load, naming the
//! tensor, instead of loading and then generating NaN images.
use dcgan_core::model::Network;
use dcgan_core::{Gan, ModelConfig, TrainOptions};
use std::path::PathBuf;
use tch::Device;

fn small() -> Gan {
    let model = ModelConfig { image_size: 16, features_g: 2, features_d: 2, z_dim: 8, ..Default::default() };
    Gan::new(model, TrainOptions::default(), Device::Cpu, Some(1)).unwrap()
}

fn saved(gan: &Gan, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dcgan-checkpoint-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    gan.save(&path, Default::default()).unwrap();
    path
}

fn load_error(gan: &Gan, name: &str) -> String {
    match Gan::load(&saved(gan, name), Device::Cpu) {
        Ok(_) => panic!("{name}: a corrupt checkpoint loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_sound_checkpoint_loads() {
    let gan = small();
    assert!(Gan::load(&saved(&gan, "sound"), Device::Cpu).is_ok());
}

#[test]
fn nan_weights_are_refused_by_name() {
    let gan = small();
    let w = &gan.generator.state()[0].1;
    let _ = tch::no_grad(|| w.shallow_clone().fill_(f64::NAN));
    let e = load_error(&gan, "nan");
    assert!(e.contains("tensor 'gen.0.0.weight' holds NaN or infinite values"), "{e}");
}

#[test]
fn negative_running_variances_and_second_moments_are_refused() {
    let gan = small();
    let var = gan.discriminator.state().into_iter().find(|(n, _, _)| n.ends_with(".running_var")).unwrap();
    let _ = var.1.shallow_clone().fill_(-1.0);
    let e = load_error(&gan, "var");
    assert!(e.contains(&format!("tensor '{}' holds negative values", var.0)), "{e}");

    let gan = small();
    let _ = gan.opt_d.exp_avg_sq[0].shallow_clone().fill_(-0.5);
    let e = load_error(&gan, "moment");
    assert!(e.contains("tensor 'optim.disc.exp_avg_sq.disc.0.weight' holds negative values"), "{e}");
}

#[test]
fn step_counts_that_would_wrap_are_refused() {
    let mut gan = small();
    gan.opt_g.step = i64::MAX;
    let e = load_error(&gan, "wrap");
    assert!(e.contains("optim.gen.step is 9223372036854775807 and steps 0: step counts beyond 2^53 − 1"), "{e}");
    let mut gan = small();
    gan.opt_g.step = (1 << 53) - 1;
    assert!(Gan::load(&saved(&gan, "safe-max"), Device::Cpu).is_ok());
}

/// `load_weights` (loadWeights in Node) checks both networks before copying either: a file
/// with one bad tensor changes nothing.
#[test]
fn loading_weights_in_place_checks_every_tensor_first() {
    let before = small();
    let state_of = |g: &Gan| g.generator.state().into_iter().chain(g.discriminator.state()).map(|s| (s.0, s.1.copy())).collect::<Vec<_>>();
    let unchanged = |g: &Gan, what: &str| {
        for ((name, a), (_, b)) in state_of(g).iter().zip(state_of(&before)) {
            assert!(a.equal(&b), "{what}: '{name}' changed although the file was refused");
        }
    };
    let other = |tweak: &dyn Fn(&Gan)| {
        let model = ModelConfig { image_size: 16, features_g: 2, features_d: 2, z_dim: 8, ..Default::default() };
        let g = Gan::new(model, TrainOptions::default(), Device::Cpu, Some(2)).unwrap();
        tch::no_grad(|| tweak(&g));
        g
    };
    let cases: [(&str, &dyn Fn(&Gan), &str); 3] = [
        ("nan-disc", &|g| drop(g.discriminator.state()[0].1.shallow_clone().fill_(f64::NAN)), "tensor 'disc.0.weight' holds NaN or infinite values"),
        ("negative-var", &|g| {
            let var = g.generator.state().into_iter().find(|(n, _, _)| n.ends_with(".running_var")).unwrap();
            drop(var.1.shallow_clone().fill_(-1.0));
        }, "running_var' holds negative values"),
        ("inf-gen", &|g| drop(g.generator.state().last().unwrap().1.shallow_clone().fill_(f64::INFINITY)), "holds NaN or infinite values"),
    ];
    for (name, tweak, says) in cases {
        let mut target = small();
        let e = target.load_weights(&saved(&other(tweak), name)).unwrap_err().to_string();
        assert!(e.contains(says), "{name}: {e}");
        unchanged(&target, name);
    }
    // A sound file loads both networks.
    let mut target = small();
    assert_eq!(target.load_weights(&saved(&other(&|_| ()), "sound-weights")).unwrap(), ["generator", "discriminator"]);
    assert!(target.generator.state()[0].1.equal(&other(&|_| ()).generator.state()[0].1));
}

/// A byte of a tensor changed after saving (a disk or copy error) is refused at load, naming
/// the cause; files without a checksum (older ones, other writers) still load.
#[test]
fn a_damaged_tensor_is_caught_by_the_checksum() {
    let gan = small();
    let path = saved(&gan, "damaged");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 3; // inside the last tensor's data
    bytes[last] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let e = match Gan::load(&path, Device::Cpu) {
        Ok(_) => panic!("a damaged checkpoint loaded"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("the tensors do not match the checksum they were saved with (crc32:"), "{e}");
    assert!(e.contains("use an older checkpoint"), "{e}");
    let e = gan.save(&path, [("dcgan.checksum".to_string(), "crc32:0".to_string())].into()).unwrap_err().to_string();
    assert!(e.contains("metadata key 'dcgan.checksum' is reserved by dcgan"), "{e}");
    // The same damaged file with the key renamed (as a file without a checksum): it loads.
    let at = bytes.windows(14).position(|w| w == b"dcgan.checksum").unwrap();
    bytes[at + 13] = b'X';
    std::fs::write(&path, &bytes).unwrap();
    assert!(Gan::load(&path, Device::Cpu).is_ok());
}
