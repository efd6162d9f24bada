//! Median time of one training step, without Node, as one line of JSON:
//!
//!     node scripts/with-torch.mjs cargo run --release -p dcgan-core --example step_bench -- \
//!         --image-size 32 --features 8 --batch 32 --precision bf16 --steps 20 --warmup 3 --threads 2
use dcgan_core::{set_threads, Gan, ModelConfig, Precision, TrainOptions};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

struct Args {
    image_size: i64,
    features: i64,
    batch: i64,
    precision: Precision,
    steps: usize,
    warmup: usize,
    threads: i32,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args { image_size: 32, features: 8, batch: 32, precision: Precision::Fp32, steps: 20, warmup: 3, threads: 2 };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let [flag, value] = pair else { return Err(format!("{} has no value", pair[0])) };
        let int = || value.parse::<i64>().map_err(|_| format!("{flag} takes an integer, got '{value}'"));
        match flag.as_str() {
            "--image-size" => a.image_size = int()?,
            "--features" => a.features = int()?,
            "--batch" => a.batch = int()?,
            "--steps" => a.steps = int()? as usize,
            "--warmup" => a.warmup = int()? as usize,
            "--threads" => a.threads = int()? as i32,
            "--precision" => {
                a.precision = serde_json::from_value(serde_json::Value::String(value.clone()))
                    .map_err(|_| format!("--precision takes 'fp32' or 'bf16', got '{value}'"))?
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(a)
}

/// CPU time of this process (all threads) in ms: robust to other processes sharing the cores.
fn cpu_ms() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 / 1e6
}

fn main() {
    let a = parse_args().unwrap_or_else(|e| {
        eprintln!("step_bench: {e}");
        std::process::exit(2)
    });
    // The heap kept as the library keeps it (its libtorch thread does this on start).
    dcgan_core::executor::tune_malloc();
    set_threads(a.threads).unwrap();
    let model = ModelConfig { image_size: a.image_size, features_g: a.features, features_d: a.features, ..Default::default() };
    let train = TrainOptions { precision: a.precision, ..Default::default() };
    let mut gan = Gan::new(model, train, Device::Cpu, Some(0)).unwrap();
    let real = Tensor::rand([a.batch, 1, a.image_size, a.image_size], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let mut times = Vec::new();
    let mut cpu_start = cpu_ms();
    for i in 0..a.warmup + a.steps {
        if i == a.warmup {
            cpu_start = cpu_ms();
        }
        let t = Instant::now();
        gan.train_step(&real, None).unwrap();
        if i >= a.warmup {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let cpu_per_step = (cpu_ms() - cpu_start) / a.steps as f64;
    times.sort_by(|x, y| x.total_cmp(y));
    let median = times[times.len() / 2];
    let precision = serde_json::to_string(&a.precision).unwrap();
    println!(
        r#"{{"imageSize":{},"features":{},"batch":{},"precision":{precision},"threads":{},"steps":{},"medianMs":{median:.3},"minMs":{:.3},"cpuMsPerStep":{cpu_per_step:.3}}}"#,
        a.image_size, a.features, a.batch, a.threads, times.len(), times[0]
    );
}
