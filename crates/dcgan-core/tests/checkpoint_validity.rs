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
