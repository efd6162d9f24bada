//! This library's side of benchmark/gpu/check.sh: a binary built on a machine with Rust and run on
//! one that may have only Python's torch (its libraries found through LD_LIBRARY_PATH).
//!
//!   gpu_check bench  --device cuda --image-size 64 --features 64 --batch 128 --steps 50 --warmup 10
//!   gpu_check parity --device cuda --fixture __test__/fixtures/seed64
//!   gpu_check roundtrip --device cuda --fixture __test__/fixtures/seed64
//!   gpu_check parity-bf16 --device cuda --precision bf16 --fixture DIR   (DIR: make_bf16_fixtures.py --out)
//!   gpu_check dist   --device cuda --fixture __test__/fixtures/ddp32 --sync-bn 1
//!
//! `bench` prints one JSON line: per-step times of `Gan::train_step` (each timed until its numbers
//! are on the host), their median and images/s. `parity` loads the fixture's initial weights, runs
//! the three steps of the fixture on its real batches and noise, compares every parameter and
//! buffer with PyTorch's after3.safetensors and the per-step statistics with its `stats.N`, prints
//! the largest differences as JSON and exits 1 when one exceeds the tolerance (1e-4 on CUDA, 1e-5 on
//! the CPU, or --tol). `roundtrip` checks what enters and leaves a model on the device (see its
//! function). `dist` starts two Gloo ranks of this binary (`dist-rank`) on the same device
//! (a CUDA tensor travels through a host copy), runs the ddp32 fixture's three steps with each rank
//! on its half of every batch, and compares each rank's state with PyTorch's: DDP's ranks
//! (after3[.rank1]) without synchronised BatchNorm, one process on the global batches
//! (after3.global) with `--sync-bn 1`.
use dcgan_core::device::{device_name, parse_device};
use dcgan_core::model::Network;
use dcgan_core::{weights, Gan, ModelConfig, StepStats, TrainOptions};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

type Res<T> = Result<T, String>;

/// `--key value` pairs after the mode.
struct Args(HashMap<String, String>);

impl Args {
    fn parse(raw: &[String]) -> Res<Args> {
        if raw.len() % 2 != 0 {
            return Err(format!("expected --key value pairs, got {raw:?}"));
        }
        let mut map = HashMap::new();
        for pair in raw.chunks(2) {
            let key = pair[0].strip_prefix("--").ok_or_else(|| format!("expected --key, got '{}'", pair[0]))?;
            map.insert(key.to_string(), pair[1].clone());
        }
        Ok(Args(map))
    }

    fn str(&self, key: &str, default: &str) -> String {
        self.0.get(key).cloned().unwrap_or_else(|| default.to_string())
    }

    fn int(&self, key: &str, default: i64) -> Res<i64> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{key}: '{v}' is not an integer")),
        }
    }
}

/// libtorch registers its CUDA backend when libtorch_cuda.so is loaded; this binary does not link
/// it (nothing of it is called by name), so load it before the first CUDA query.
fn load_cuda_backend() -> Res<()> {
    let name = c"libtorch_cuda.so";
    // SAFETY: dlopen with a valid C string; the handle is kept for the life of the process.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns a C string owned by libc, or null.
        let why = unsafe { libc::dlerror() };
        let why = if why.is_null() { "unknown error".into() } else { unsafe { std::ffi::CStr::from_ptr(why) }.to_string_lossy().into_owned() };
        return Err(format!("cannot load libtorch_cuda.so (is torch/lib on LD_LIBRARY_PATH?): {why}"));
    }
    Ok(())
}

/// The device named by --device, with CUDA's backend loaded first when it is asked for.
fn device(args: &Args) -> Res<Device> {
    let spec = args.str("device", "cpu");
    if spec != "cpu" {
        load_cuda_backend()?;
    }
    let device = parse_device(&spec).map_err(|e| e.to_string())?;
    if let Device::Cuda(_) = device {
        tch::Cuda::cudnn_set_benchmark(args.int("cudnn-benchmark", 0)? != 0);
    }
    Ok(device)
}

/// The training options with `--precision` ('fp32' or 'bf16'), parsed by the core's schema.
fn train_options(args: &Args) -> Res<TrainOptions> {
    let precision = args.str("precision", "fp32");
    TrainOptions::from_json(&json!({ "precision": precision }).to_string()).map_err(|e| e.to_string())
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = (sorted.len() - 1) as f64 * q;
    let (lo, hi) = (i.floor() as usize, i.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (i - lo as f64)
}

fn bench(args: &Args) -> Res<Value> {
    let device = device(args)?;
    let train = train_options(args)?;
    let precision = args.str("precision", "fp32");
    let threads = args.int("threads", 0)?;
    if threads > 0 {
        dcgan_core::set_threads(threads as i32).map_err(|e| e.to_string())?;
    }
    let (size, features, batch) = (args.int("image-size", 64)?, args.int("features", 64)?, args.int("batch", 128)?);
    let (steps, warmup) = (args.int("steps", 50)?, args.int("warmup", 10)?);
    if steps < 1 || warmup < 0 {
        return Err("--steps must be at least 1 and --warmup at least 0".into());
    }
    let (defer, host_batch) = (args.int("defer-stats", 0)? != 0, args.int("host-batch", 0)? != 0);
    let graphed = args.int("cuda-graph", 0)? != 0;
    let model = ModelConfig { image_size: size, features_g: features, features_d: features, channels: 1, ..Default::default() };
    let mut gan = Gan::new(model, train.clone(), device, Some(0)).map_err(|e| e.to_string())?;
    if graphed {
        // 3 eager steps on the graph's stream, as PyTorch's recipe warms up, inside the warm-up.
        gan.use_cuda_graph(3).map_err(|e| e.to_string())?;
    }
    // Resident on the device, as the Python worker keeps its batch: the step is timed, not the copy.
    // With --host-batch 1 it stays on the host and each step uploads it, as training from Node does.
    let host = Tensor::rand([batch, 1, size, size], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let real = if host_batch { host } else { host.to_device(device) };
    let mut times = Vec::new();
    let mut first_ms = 0.0;
    let mut last = None;
    // Steps after which the device still had work queued: what a call that does not wait for its
    // own step leaves. Near 0 with deferred numbers means something in the step waits for the GPU.
    let mut busy_at_return = 0usize;
    for i in 0..warmup + steps {
        let t = Instant::now();
        // Returns after one host read of the step's statistics: the step is complete on the device.
        // Deferred, it returns once the previous step is complete, with that step's statistics: in a
        // steady state one call lasts one step of the device, without the device waiting for the host.
        let stats = match (defer, graphed) {
            (true, true) => gan.train_step_graphed_deferred(&real, None).map_err(|e| e.to_string())?.map(|(_, s)| s),
            (true, false) => gan.train_step_deferred(&real, None).map_err(|e| e.to_string())?.map(|(_, s)| s),
            (false, true) => Some(gan.train_step_graphed(&real, None).map_err(|e| e.to_string())?),
            (false, false) => Some(gan.train_step(&real, None).map_err(|e| e.to_string())?),
        };
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if i == 0 {
            first_ms = ms;
        }
        if i >= warmup {
            times.push(ms);
            if let Some(now) = dcgan_core::ffi::DeviceEvent::record(device).map_err(|e| e.to_string())? {
                busy_at_return += usize::from(!now.done().map_err(|e| e.to_string())?);
            }
        }
        last = stats.or(last);
    }
    if defer {
        last = gan.take_pending_stats().map_err(|e| e.to_string())?.map(|(_, s)| s).or(last);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let median = quantile(&times, 0.5);
    let last = last.expect("at least one step");
    Ok(json!({
        "mode": "bench", "side": "ours", "device": device_name(device), "precision": precision,
        "channelsLast": gan.channels_last, "imageSize": size, "features": features, "batch": batch,
        "steps": steps, "warmup": warmup, "threads": tch::get_num_threads(),
        "cudnnBenchmark": args.int("cudnn-benchmark", 0)? != 0, "deferStats": defer, "hostBatch": host_batch, "cudaGraph": graphed,
        "copyStream": std::env::var("DCGAN_COPY_STREAM").is_ok_and(|v| v != "0"),
        "medianStepMs": median, "p10StepMs": quantile(&times, 0.1), "p90StepMs": quantile(&times, 0.9),
        "imagesPerSec": batch as f64 * 1000.0 / median, "firstStepMs": first_ms,
        "lossesLastStep": [last.loss_d, last.loss_g],
        "deviceBusyAtReturn": if device.is_cuda() { json!(busy_at_return as f64 / steps as f64) } else { Value::Null },
    }))
}

fn load(path: &Path) -> Res<weights::Loaded> {
    weights::load(path).map_err(|e| e.to_string())
}

fn tensor<'a>(file: &'a weights::Loaded, name: &str, path: &Path) -> Res<&'a Tensor> {
    file.tensors.get(name).ok_or_else(|| format!("{} has no tensor '{name}'", path.display()))
}

/// The model configuration that make_fixtures.py stores in the fixture's metadata.
fn fixture_model(io: &weights::Loaded, path: &Path) -> Res<ModelConfig> {
    let c = fixture_config(io, path)?;
    let field = |k: &str| c[k].as_i64().ok_or_else(|| format!("'config' metadata lacks {k}"));
    Ok(ModelConfig {
        z_dim: field("zDim")?,
        channels: field("channels")?,
        features_g: field("featuresG")?,
        features_d: field("featuresD")?,
        image_size: field("imageSize")?,
        spectral_norm: c["spectralNorm"].as_bool().unwrap_or(false),
        ..Default::default()
    })
}

fn fixture_config(io: &weights::Loaded, path: &Path) -> Res<Value> {
    let text = io.metadata.get("config").ok_or_else(|| format!("{} has no 'config' metadata", path.display()))?;
    serde_json::from_str(text).map_err(|e| format!("bad 'config' metadata: {e}"))
}

/// `--precision` with the training options the fixture was made with (dSteps, loss), when given.
fn fixture_train(args: &Args, io: &weights::Loaded, path: &Path) -> Res<TrainOptions> {
    let c = fixture_config(io, path)?;
    let mut options = json!({ "precision": args.str("precision", "fp32") });
    for key in ["dSteps", "loss"] {
        if !c[key].is_null() {
            options[key] = c[key].clone();
        }
    }
    TrainOptions::from_json(&options.to_string()).map_err(|e| e.to_string())
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Res<f64> {
    if a.size() != b.size() {
        return Err(format!("shape {:?} against {:?}", a.size(), b.size()));
    }
    let a = a.to_device(Device::Cpu).to_kind(Kind::Double);
    let b = b.to_kind(Kind::Double);
    Ok((a - b).abs().max().double_value(&[]))
}

fn stats_diff(stats: &StepStats, expected: &Tensor) -> Res<f64> {
    let got = Tensor::from_slice(&[stats.loss_d, stats.loss_g, stats.d_real, stats.d_fake, stats.d_fake_after]);
    max_abs_diff(&got, expected)
}

fn parity(args: &Args) -> Res<(Value, bool)> {
    let device = device(args)?;
    let dir = PathBuf::from(args.str("fixture", "__test__/fixtures/seed64"));
    let (io_path, init_path, after_path) = (dir.join("io.safetensors"), dir.join("init.safetensors"), dir.join("after3.safetensors"));
    let (io, init, after) = (load(&io_path)?, load(&init_path)?, load(&after_path)?);
    let mut gan = fixture_gan(args, device, &io, &io_path, &init)?;
    let train = gan.train.clone();

    // With --defer-stats 1 the steps do not wait for their numbers (train_step_deferred: a
    // non-blocking copy into pinned memory and an event), which must still be the same numbers.
    let defer = args.int("defer-stats", 0)? != 0;
    // With --cuda-graph 1: step 1 eager on the graph's stream, step 2 captured and replayed, step 3
    // replayed with the fixture's batch and noise copied into the captured inputs.
    let graphed = args.int("cuda-graph", 0)? != 0;
    if graphed {
        gan.use_cuda_graph(1).map_err(|e| e.to_string())?;
    }
    let mut stats_max = 0.0f64;
    let mut reported = Vec::new();
    for step in 1..=3 {
        let real = tensor(&io, &format!("real.{step}"), &io_path)?;
        let noise = tensor(&io, &format!("noise.{step}"), &io_path)?;
        // After use_cuda_graph, train_step and train_step_deferred go through the graph (the path
        // the Node option takes); the replay count below proves they did.
        if defer {
            reported.extend(gan.train_step_deferred(real, Some(noise)).map_err(|e| e.to_string())?);
        } else {
            reported.push((step, gan.train_step(real, Some(noise)).map_err(|e| e.to_string())?));
        }
    }
    let replays = gan.cuda_graph_replays();
    reported.extend(gan.take_pending_stats().map_err(|e| e.to_string())?);
    if reported.iter().map(|r| r.0).collect::<Vec<_>>() != [1, 2, 3] {
        return Err(format!("the steps' numbers came for steps {:?}, not 1, 2, 3", reported.iter().map(|r| r.0).collect::<Vec<_>>()));
    }
    for (step, stats) in &reported {
        stats_max = stats_max.max(stats_diff(stats, tensor(&io, &format!("stats.{step}"), &io_path)?)?);
    }
    let (state_max, worst, compared) = state_diff(&gan, &after, &after_path, |_| false)?;
    // The host's counters, which replays do not run (num_batches_tracked is in the state above).
    // Read before the refused batches below: on a GPU a batch already there is checked with the
    // deferred numbers, after its step was taken, so those steps count.
    let counters_ok = gan.steps_done == 3 && gan.opt_g.step == 3 && gan.opt_d.step == 3 * train.d_steps;
    let tol = tolerance(args, device)?;
    // A batch on the device with bytes (0…255) instead of [−1, 1], or with a NaN, must still be
    // refused when the numbers are deferred: on a GPU it is checked with them, so the error comes
    // with them.
    let range_refused = if defer {
        let bad = tensor(&io, "real.1", &io_path)?.to_device(device) * 255.0;
        let noise = tensor(&io, "noise.1", &io_path)?;
        let mut refused = |batch: &Tensor, says: &str| match gan.train_step_deferred(batch, Some(noise)) {
            Err(e) => e.to_string().contains(says),
            Ok(_) => gan.take_pending_stats().err().is_some_and(|e| e.to_string().contains(says)),
        };
        let bytes = refused(&bad, "scaled to [−1, 1]");
        // One NaN: on a GPU it must come back as an error with the numbers, not as the device-side
        // assert of CUDA's BCE kernel (which ends the process's CUDA context).
        let nan = tensor(&io, "real.1", &io_path)?.to_device(device).copy();
        let _ = nan.view([-1]).narrow(0, 0, 1).fill_(f64::NAN);
        Some(bytes && refused(&nan, "NaN"))
    } else {
        None
    };
    // Steps 2 (the capture's) and 3 ran as replays.
    let replays_ok = replays == graphed.then_some(2);
    // Weights that diverged to NaN, with the seed's BCE: the step must say so (an error, or a NaN
    // loss that the trainer reports), not fail CUDA's BCE assert, after which the process's CUDA
    // context answers nothing more. Last, since it spoils the weights.
    let diverged_said = if train.loss == dcgan_core::config::AdversarialLoss::Bce {
        let real = tensor(&io, "real.1", &io_path)?;
        let noise = tensor(&io, "noise.1", &io_path)?;
        let _ = tch::no_grad(|| gan.opt_d.params[0].narrow(0, 0, 1).fill_(f64::NAN));
        let said = match gan.train_step(real, Some(noise)) {
            Err(e) => e.to_string().contains("NaN"),
            Ok(s) => !s.loss_d.is_finite(),
        };
        // Fallible calls: a dead context must fail the check, not end it.
        let alive = Tensor::f_ones([2], (Kind::Float, device))
            .and_then(|t| t.f_sum(Kind::Float))
            .and_then(|t| t.f_double_value(&[]))
            .is_ok_and(|v| v == 2.0);
        Some(said && alive)
    } else {
        None
    };
    let pass = state_max <= tol && stats_max <= tol && range_refused != Some(false) && counters_ok && replays_ok && diverged_said != Some(false);
    let report = json!({
        "mode": "parity", "side": "ours", "device": device_name(device), "fixture": dir.display().to_string(), "deferStats": defer,
        "deviceBatchOutOfRangeRefused": range_refused, "cudaGraph": graphed, "graphReplays": replays, "countersOk": counters_ok, "divergedSaid": diverged_said,
        "channelsLast": gan.channels_last, "tensorsCompared": compared, "maxStateDiff": state_max,
        "worstTensor": worst, "maxStatsDiff": stats_max, "tolerance": tol, "pass": pass,
    });
    Ok((report, pass))
}

/// The largest difference between `gan`'s parameters and buffers and `reference`'s, skipping the
/// names `skip` accepts: (difference, tensor, tensors compared).
fn state_diff(gan: &Gan, reference: &weights::Loaded, path: &Path, skip: impl Fn(&str) -> bool) -> Res<(f64, String, usize)> {
    let (mut max, mut worst, mut compared) = (0.0f64, String::new(), 0);
    for (name, actual, _) in gan.generator.state().into_iter().chain(gan.discriminator.state()) {
        if skip(&name) {
            continue;
        }
        let d = max_abs_diff(&actual, tensor(reference, &name, path)?).map_err(|e| format!("'{name}': {e}"))?;
        compared += 1;
        if worst.is_empty() || d > max {
            (max, worst) = (d, name);
        }
    }
    Ok((max, worst, compared))
}

/// The seed64 fixture's model, its initial weights loaded, with the fixture's training options.
fn fixture_gan(args: &Args, device: Device, io: &weights::Loaded, io_path: &Path, init: &weights::Loaded) -> Res<Gan> {
    let (model, train) = (fixture_model(io, io_path)?, fixture_train(args, io, io_path)?);
    let mut gan = Gan::new(model, train, device, Some(0)).map_err(|e| e.to_string())?;
    gan.generator.load_state(&init.tensors).map_err(|e| e.to_string())?;
    gan.discriminator.load_state(&init.tensors).map_err(|e| e.to_string())?;
    Ok(gan)
}

/// The fixture's steps `steps` on `gan`, each on the fixture's batch and noise.
fn fixture_steps(gan: &mut Gan, io: &weights::Loaded, io_path: &Path, steps: std::ops::RangeInclusive<i64>) -> Res<()> {
    for step in steps {
        let (real, noise) = (tensor(io, &format!("real.{step}"), io_path)?, tensor(io, &format!("noise.{step}"), io_path)?);
        gan.train_step(real, Some(noise)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Whether two safetensors files hold the same tensors (names, dtypes, shapes, bytes) and the
/// same metadata. Not a byte comparison of the files: the metadata's order is a hash map's.
fn same_contents(a: &Path, b: &Path) -> Res<bool> {
    let (a, b) = (load(a)?, load(b)?);
    let same_tensor = |name: &String, t: &Tensor| b.tensors.get(name).is_some_and(|u| t.kind() == u.kind() && t.size() == u.size() && t.equal(u));
    Ok(a.metadata == b.metadata && a.tensors.len() == b.tensors.len() && a.tensors.iter().all(|(n, t)| same_tensor(n, t)))
}

/// `gan`'s parameters and buffers on the host, by name, as a file of them would be loaded: for
/// `state_diff` against another model.
fn host_state(gan: &Gan) -> weights::Loaded {
    let tensors = gan.generator.state().into_iter().chain(gan.discriminator.state()).map(|(n, t, _)| (n, t.to_device(Device::Cpu))).collect();
    weights::Loaded { tensors, metadata: HashMap::new() }
}

/// The tolerance of a comparison with PyTorch on `device` (--tol overrides it): cuDNN's sums run
/// in other orders than the CPU's.
fn tolerance(args: &Args, device: Device) -> Res<f64> {
    let default = if device == Device::Cpu { 1e-5 } else { 1e-4 };
    args.str("tol", &default.to_string()).parse().map_err(|_| "--tol: not a number".to_string())
}

/// `roundtrip`: what goes in and out of a model on the device, beside the step. After the
/// fixture's first two steps the model is saved; loaded back onto the device and onto the host
/// and saved again, each file must hold what the first does; the model loaded on the device
/// must take step 3 to PyTorch's after3 (Adam's moments, step counts and BatchNorm buffers came
/// back); its ONNX export must be the host copy's, byte for byte, and its samples the host copy's. On a GPU, weights loaded into a
/// model that replays a CUDA graph (in place, as `loadWeights` does) must be the ones its next
/// replay trains: it must take the same step as an eager model that loaded them too; and a step
/// too large for the GPU's memory is refused by the memory guard.
fn roundtrip(args: &Args) -> Res<(Value, bool)> {
    let device = device(args)?;
    let dir = PathBuf::from(args.str("fixture", "__test__/fixtures/seed64"));
    let (io_path, init_path, after_path) = (dir.join("io.safetensors"), dir.join("init.safetensors"), dir.join("after3.safetensors"));
    let (io, init, after) = (load(&io_path)?, load(&init_path)?, load(&after_path)?);
    let tmp = std::env::temp_dir().join(format!("dcgan-gpu-check-roundtrip-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let result = roundtrip_in(args, device, &tmp, (&io, &io_path), &init, (&after, &after_path));
    let _ = std::fs::remove_dir_all(&tmp);
    let (report, pass) = result?;
    Ok((json!({ "mode": "roundtrip", "side": "ours", "device": device_name(device), "fixture": dir.display().to_string(), "pass": pass, "checks": report }), pass))
}

fn roundtrip_in(args: &Args, device: Device, tmp: &Path, (io, io_path): (&weights::Loaded, &Path), init: &weights::Loaded, (after, after_path): (&weights::Loaded, &Path)) -> Res<(Value, bool)> {
    let err = |e: dcgan_core::Error| e.to_string();
    let mut gan = fixture_gan(args, device, io, io_path, init)?;
    fixture_steps(&mut gan, io, io_path, 1..=2)?;
    let [first, again, host] = ["saved.safetensors", "saved-again.safetensors", "saved-from-host.safetensors"].map(|f| tmp.join(f));
    gan.save(&first, HashMap::new()).map_err(err)?;
    let mut on_device = Gan::load(&first, device).map_err(err)?;
    on_device.save(&again, HashMap::new()).map_err(err)?;
    let mut on_host = Gan::load(&first, Device::Cpu).map_err(err)?;
    on_host.save(&host, HashMap::new()).map_err(err)?;
    let resaved_same = same_contents(&first, &again)? && same_contents(&first, &host)?;

    fixture_steps(&mut on_device, io, io_path, 3..=3)?;
    let (resumed_diff, resumed_worst, _) = state_diff(&on_device, after, after_path, |_| false)?;
    let counters_ok = on_device.steps_done == 3 && on_device.opt_g.step == 3;

    use dcgan_core::export::onnx::{to_bytes, What};
    let mut onnx_same = true;
    for what in [What::Generator, What::Discriminator] {
        onnx_same &= to_bytes(&gan, what).map_err(err)? == to_bytes(&on_host, what).map_err(err)?;
    }

    // Sampling on the device gives the host copy's images (the noise is drawn on the host), with
    // running statistics and with the batch's, as the trainer's fixed-noise samples use.
    let mut samples_diff = 0.0f64;
    for mode in [dcgan_core::NormMode::Eval, dcgan_core::NormMode::BatchStats] {
        let (a, b) = (gan.generate(16, Some(3), mode).map_err(err)?, on_host.generate(16, Some(3), mode).map_err(err)?);
        samples_diff = samples_diff.max(max_abs_diff(&a, &b)?);
    }

    let tol = tolerance(args, device)?;
    // Weights far from the fixture's (another seed's N(0, 0.02)), so that a replay still reading
    // the old ones differs by far more than the tolerance.
    let (graph_diff, graph_replays) = if device.is_cuda() {
        let other = tmp.join("other-weights.safetensors");
        Gan::new(fixture_model(io, io_path)?, TrainOptions::default(), Device::Cpu, Some(7)).map_err(err)?.save(&other, HashMap::new()).map_err(err)?;
        let weights = load(&other)?;
        let mut graphed = fixture_gan(args, device, io, io_path, init)?;
        graphed.use_cuda_graph(1).map_err(err)?;
        let mut eager = fixture_gan(args, device, io, io_path, init)?;
        for g in [&mut graphed, &mut eager] {
            fixture_steps(g, io, io_path, 1..=3)?;
            g.generator.load_state(&weights.tensors).map_err(err)?;
            g.discriminator.load_state(&weights.tensors).map_err(err)?;
            fixture_steps(g, io, io_path, 1..=1)?;
        }
        let (diff, _, _) = state_diff(&graphed, &host_state(&eager), Path::new("the eager model"), |_| false)?;
        (Some(diff), graphed.cuda_graph_replays())
    } else {
        (None, None)
    };
    // The memory guard measures against the GPU's memory (not the host's): a step too large for it
    // is refused by name before anything is allocated, the fixture's batch is not.
    let memory_refusal = match device {
        Device::Cuda(index) => {
            let (_, total) = dcgan_core::ffi::device_memory(index).map_err(err)?;
            // Beyond the per-image part alone, so whatever the fixed part (weights, moments) adds.
            let too_many = (total / gan.model.activation_bytes(1, true)) as i64 + 1;
            let refused = gan.check_work(too_many, true, "a training step").is_err_and(|e| e.to_string().contains(&format!("of GPU cuda:{index}")));
            let batch = tensor(io, "real.1", io_path)?.size()[0];
            Some(json!({ "gpuMemoryBytes": total, "refusedImages": too_many, "refused": refused, "fixtureBatchAccepted": gan.check_work(batch, true, "a training step").is_ok() }))
        }
        _ => None,
    };
    let memory_ok = memory_refusal.as_ref().map(|m| m["refused"] == json!(true) && m["fixtureBatchAccepted"] == json!(true));
    let graph_ok = graph_diff.map(|d| d <= tol && graph_replays == Some(3));
    let pass = resaved_same && resumed_diff <= tol && counters_ok && onnx_same && samples_diff <= tol && graph_ok != Some(false) && memory_ok != Some(false);
    Ok((json!({
        "savedLoadedSavedSame": resaved_same, "resumedStepMaxDiff": resumed_diff, "resumedWorstTensor": resumed_worst,
        "resumedCountersOk": counters_ok, "onnxSameAsHostCopy": onnx_same, "samplesMaxDiffFromHostCopy": samples_diff,
        "loadWeightsIntoGraphMaxDiff": graph_diff, "loadWeightsIntoGraphReplays": graph_replays, "gpuMemoryGuard": memory_refusal, "tolerance": tol,
    }), pass))
}

/// The bounds of crates/dcgan-core/tests/bf16.rs (see there how they were measured): statistics,
/// BatchNorm running statistics, and the fraction of weights more than lr/2 from PyTorch's.
const BF16_STATS_TOL: f64 = 3e-5;
const BF16_BN_TOL: f64 = 2.5e-5;
const BF16_WEIGHTS_OFF_FRACTION: f64 = 0.05;

/// How far `gan` is from PyTorch's state_dict `expected`: (fraction of the weights more than lr/2
/// away, largest BatchNorm running-statistic difference). Adam turns a near-zero gradient into a
/// step of about lr, so a weight's distance is counted rather than bounded.
fn bf16_state_distance(gan: &Gan, expected: &weights::Loaded, path: &Path) -> Res<(f64, f64)> {
    let lr = gan.train.lr;
    let (mut off, mut total, mut bn) = (0i64, 0i64, 0.0f64);
    for (name, t, is_buffer) in gan.generator.state().into_iter().chain(gan.discriminator.state()) {
        let e = tensor(expected, &name, path)?;
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        if is_buffer {
            bn = bn.max(max_abs_diff(&t, e).map_err(|m| format!("'{name}': {m}"))?);
        } else {
            let diff = (t.to_device(Device::Cpu).to_kind(Kind::Double) - e.to_kind(Kind::Double)).abs();
            off += diff.gt(lr / 2.0).sum(Kind::Int64).int64_value(&[]);
            total += diff.numel() as i64;
        }
    }
    Ok((off as f64 / total.max(1) as f64, bn))
}

/// `parity-bf16 --fixture DIR --precision bf16`: DIR holds seed64/ and wide32/ as
/// benchmark/reference/make_bf16_fixtures.py writes them on this device (PyTorch's autocast recipe
/// run here, from the committed inputs); our bf16 step over their three steps, within the bounds
/// of tests/bf16.rs (widened to --noise where this device's own noise is larger). A bf16 step's numbers depend on the device's kernels, so the reference must
/// come from the same device, as `npm test` does on the CPU.
fn parity_bf16(args: &Args) -> Res<(Value, bool)> {
    let device = device(args)?;
    if device == Device::Cpu {
        // As the reference ran (make_bf16_fixtures.py): oneDNN's bf16 sums depend on the threads.
        dcgan_core::set_threads(1).map_err(|e| e.to_string())?;
    }
    let dir = PathBuf::from(args.str("fixture", ""));
    // --noise: per fixture, how far PyTorch's own recipe in the other layout lands from its
    // reference on this device ({"seed64": {"stats": …, "bn_stats": …, "weights_off_by_half_lr": …}}).
    // The CPU's bounds were set at that noise there; another device's kernels may round
    // differently, so a bound is widened to the noise measured here when that is larger (no more:
    // on this CPU the no-autocast bug lands only about twice that far).
    let noise: Value = serde_json::from_str(&args.str("noise", "{}")).map_err(|e| format!("--noise: {e}"))?;
    // With --cuda-graph 1, as parity: step 1 eager, step 2 captured and replayed, step 3 replayed
    // (the autocast region and its weight casts inside the graph).
    let graphed = args.int("cuda-graph", 0)? != 0;
    let mut fixtures = Vec::new();
    let mut pass = true;
    for name in ["seed64", "wide32"] {
        let widened = |bound: f64, key: &str| noise[name][key].as_f64().map_or(bound, |n| bound.max(n));
        let bounds = (widened(BF16_STATS_TOL, "stats"), widened(BF16_BN_TOL, "bn_stats"), widened(BF16_WEIGHTS_OFF_FRACTION, "weights_off_by_half_lr"));
        let folder = dir.join(name);
        let (io_path, init_path) = (folder.join("io.safetensors"), folder.join("init.safetensors"));
        let (io, init) = (load(&io_path)?, load(&init_path)?);
        let mut gan = fixture_gan(args, device, &io, &io_path, &init)?;
        if gan.train.precision != dcgan_core::Precision::Bf16 {
            return Err("parity-bf16 needs --precision bf16".into());
        }
        if graphed {
            gan.use_cuda_graph(1).map_err(|e| e.to_string())?;
        }
        let (mut stats, mut off, mut bn) = (0.0f64, 0.0f64, 0.0f64);
        for step in 1..=3i64 {
            let (real, noise) = (tensor(&io, &format!("real.{step}"), &io_path)?, tensor(&io, &format!("noise.{step}"), &io_path)?);
            let s = gan.train_step(real, Some(noise)).map_err(|e| e.to_string())?;
            stats = stats.max(stats_diff(&s, tensor(&io, &format!("stats.{step}"), &io_path)?)?);
            if step == 1 || step == 3 {
                let path = folder.join(format!("after{step}.safetensors"));
                let (w, b) = bf16_state_distance(&gan, &load(&path)?, &path)?;
                (off, bn) = (off.max(w), bn.max(b));
            }
        }
        let replays = gan.cuda_graph_replays();
        let ok = stats <= bounds.0 && bn <= bounds.1 && off <= bounds.2 && replays == graphed.then_some(2);
        pass &= ok;
        fixtures.push(json!({
            "fixture": name, "maxStatsDiff": stats, "maxBnStatsDiff": bn, "weightsOffByHalfLr": off, "graphReplays": replays,
            "bounds": { "stats": bounds.0, "bnStats": bounds.1, "weightsOffByHalfLr": bounds.2 }, "pass": ok,
        }));
    }
    let tolerances = json!({ "stats": BF16_STATS_TOL, "bnStats": BF16_BN_TOL, "weightsOffByHalfLr": BF16_WEIGHTS_OFF_FRACTION });
    Ok((json!({ "mode": "parity-bf16", "side": "ours", "device": device_name(device), "cudaGraph": graphed, "fixtures": fixtures, "tolerances": tolerances, "pass": pass }), pass))
}

fn env_int(name: &str) -> Res<i64> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))?.parse().map_err(|_| format!("{name} is not an integer"))
}

/// One rank of `dist`: the group from RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
fn dist_rank(args: &Args) -> Res<(Value, bool)> {
    let device = device(args)?;
    let sync_bn = args.int("sync-bn", 0)? != 0;
    let (rank, world) = (env_int("RANK")?, env_int("WORLD_SIZE")?);
    let options = dcgan_core::distributed::DistributedOptions {
        rank,
        world_size: world,
        master_addr: std::env::var("MASTER_ADDR").map_err(|_| "MASTER_ADDR is not set".to_string())?,
        master_port: env_int("MASTER_PORT")?,
        // Two ranks on one machine: a peer that has not answered in 30 s has failed.
        timeout: 30.0,
        sync_batch_norm: sync_bn,
    };
    dcgan_core::distributed::init(&options).map_err(|e| e.to_string())?;
    let dir = PathBuf::from(args.str("fixture", "__test__/fixtures/ddp32"));
    let (io_path, init_path) = (dir.join("io.safetensors"), dir.join("init.safetensors"));
    let (io, init) = (load(&io_path)?, load(&init_path)?);
    let mut gan = Gan::new(fixture_model(&io, &io_path)?, TrainOptions::default(), device, Some(0)).map_err(|e| e.to_string())?;
    gan.generator.load_state(&init.tensors).map_err(|e| e.to_string())?;
    gan.discriminator.load_state(&init.tensors).map_err(|e| e.to_string())?;
    dcgan_core::distributed::sync_from_rank0(&mut gan).map_err(|e| e.to_string())?;
    for step in 1..=3 {
        let part = |name: &str| -> Res<Tensor> {
            let t = tensor(&io, &format!("{name}.{step}"), &io_path)?;
            let rows = t.size()[0] / world;
            Ok(t.narrow(0, rank * rows, rows).contiguous())
        };
        gan.train_step(&part("real")?, Some(&part("noise")?)).map_err(|e| e.to_string())?;
    }
    // Without SyncBatchNorm, D's running statistics are each DDP rank's own (see make_ddp_fixtures.py).
    let file = match (sync_bn, rank) {
        (true, _) => "after3.global.safetensors",
        (false, 0) => "after3.safetensors",
        (false, _) => "after3.rank1.safetensors",
    };
    let path = dir.join(file);
    let reference = load(&path)?;
    let own_buffers = !sync_bn && rank != 0;
    let (max, worst, compared) = state_diff(&gan, &reference, &path, |name| own_buffers && name.starts_with("disc.") && name.contains("running_"))?;
    dcgan_core::distributed::shutdown().map_err(|e| e.to_string())?;
    let tol = tolerance(args, device)?;
    let pass = max <= tol;
    Ok((json!({ "rank": rank, "reference": file, "maxStateDiff": max, "worstTensor": worst, "tensorsCompared": compared, "tolerance": tol, "pass": pass }), pass))
}

/// `dist`: starts the two ranks and gathers their reports.
fn dist(raw: &[String], args: &Args) -> Res<(Value, bool)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| format!("no free port: {e}"))?.port();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let children: Vec<_> = (0..2)
        .map(|rank| {
            std::process::Command::new(&exe)
                .arg("dist-rank")
                .args(raw)
                .envs([("RANK", rank.to_string()), ("WORLD_SIZE", "2".into()), ("MASTER_ADDR", "127.0.0.1".into()), ("MASTER_PORT", port.to_string())])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start rank {rank}: {e}"))
        })
        .collect::<Res<_>>()?;
    let mut ranks = Vec::new();
    for child in children {
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().rev().find(|l| l.starts_with('{')).unwrap_or("{}");
        ranks.push(serde_json::from_str::<Value>(line).unwrap_or(json!({ "error": line })));
    }
    let pass = ranks.iter().all(|r| r["pass"] == json!(true));
    let sync_bn = args.int("sync-bn", 0)? != 0;
    Ok((json!({ "mode": "dist", "device": args.str("device", "cpu"), "syncBatchNorm": sync_bn, "ranks": ranks, "pass": pass }), pass))
}

fn run() -> Res<bool> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: gpu_check bench|parity|parity-bf16|roundtrip|dist [--device cpu|cuda|cuda:N] [--key value ...] (see the file's header)";
    let mode = raw.first().ok_or(usage)?;
    let args = Args::parse(&raw[1..])?;
    // As the library does before its first step (the addon's libtorch thread, the data loader).
    dcgan_core::executor::tune_malloc();
    match mode.as_str() {
        "bench" => {
            println!("{}", bench(&args)?);
            Ok(true)
        }
        "parity" | "parity-bf16" | "roundtrip" | "dist" | "dist-rank" => {
            let (report, pass) = match mode.as_str() {
                "parity" => parity(&args)?,
                "parity-bf16" => parity_bf16(&args)?,
                "roundtrip" => roundtrip(&args)?,
                "dist" => dist(&raw[1..], &args)?,
                _ => dist_rank(&args)?,
            };
            println!("{report}");
            Ok(pass)
        }
        _ => Err(usage.into()),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("gpu_check: {e}");
            println!("{}", json!({ "error": e }));
            ExitCode::from(2)
        }
    }
}
