//! Times the training step without Node: `cargo run --release --example step_time -- 32 8 32 20`
//! (image size, features, batch, steps).
use dcgan_core::{Gan, ModelConfig, TrainOptions};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn main() {
    if std::env::var("ON_THREAD").is_ok() {
        return std::thread::spawn(run).join().unwrap();
    }
    run()
}

fn run() {
    let a: Vec<i64> = std::env::args().skip(1).map(|s| s.parse().expect("integer arguments")).collect();
    let (size, features, batch, steps) = (a[0], a[1], a[2], a[3]);
    let model = ModelConfig { image_size: size, features_g: features, features_d: features, ..Default::default() };
    let mut gan = Gan::new(model, TrainOptions::default(), Device::Cpu, Some(0)).unwrap();
    let real = Tensor::rand([batch, 1, size, size], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let mut times = Vec::new();
    for _ in 0..steps + 2 {
        let t = Instant::now();
        gan.train_step(&real, None).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut t = times[2..].to_vec();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("median {:.2} ms/step over {} steps (threads {})", t[t.len() / 2], t.len(), tch::get_num_threads());
}
