//! Tests of the core that need no Node: the optimiser's arithmetic, validation, file formats.
use dcgan_core::ffi::{adam_step, AdamHyper, AdamKernel, StepCount};
use dcgan_core::model::Network;
use dcgan_core::{device, data::idx::IdxImages, image, Error, Gan, ModelConfig, NormMode, TrainOptions};
use std::io::Write;
use tch::{Device, Kind, Tensor};

/// torch.optim.Adam's update written out in f64, step by step.
fn adam_reference(mut p: f64, grads: &[f64], h: AdamHyper) -> f64 {
    let (mut m, mut v) = (0.0, 0.0);
    for (i, g) in grads.iter().enumerate() {
        let step = (i + 1) as f64;
        m += (g - m) * (1.0 - h.beta1);
        v = v * h.beta2 + (1.0 - h.beta2) * g * g;
        let bc1 = 1.0 - h.beta1.powf(step);
        let bc2 = 1.0 - h.beta2.powf(step);
        p -= h.lr / bc1 * m / ((v.sqrt() / bc2.sqrt()) + h.eps);
    }
    p
}

#[test]
fn adam_shim_follows_torch_formula_over_steps() {
    let h = AdamHyper { lr: 2e-4, beta1: 0.5, beta2: 0.999, eps: 1e-8 };
    let grads = [0.3, -1.2, 0.05, 2.0, -0.7];
    let want = adam_reference(1.0, &grads, h);
    for kernel in [AdamKernel::PerOp, AdamKernel::Fused] {
        let param = Tensor::from_slice(&[1.0f64]).set_requires_grad(true);
        let (m, v) = (param.zeros_like(), param.zeros_like());
        for (i, g) in grads.iter().enumerate() {
            let grad = Tensor::from_slice(&[*g]);
            adam_step(&[param.shallow_clone()], &[grad], &[m.shallow_clone()], &[v.shallow_clone()], h, StepCount::Host(i as i64 + 1), kernel).unwrap();
            if i == 0 {
                // The first step moves by lr·sign(g) (up to ε), as Adam does.
                let moved = 1.0 - param.double_value(&[0]);
                assert!((moved - 2e-4).abs() < 1e-9, "{kernel:?}: first step moved {moved}");
            }
        }
        let got = param.double_value(&[0]);
        assert!((got - want).abs() < 1e-12, "{kernel:?}: {got} vs {want}");
        // The capturable arithmetic, its step count a float tensor that each update increments
        // (float32 for the fused kernel, which reads it as such).
        let param = Tensor::from_slice(&[1.0f64]);
        let (m, v) = (param.zeros_like(), param.zeros_like());
        let step = match kernel {
            AdamKernel::PerOp => Tensor::from(0.0f64),
            AdamKernel::Fused => Tensor::from(0.0f32),
        };
        for g in grads {
            adam_step(&[param.shallow_clone()], &[Tensor::from_slice(&[g])], &[m.shallow_clone()], &[v.shallow_clone()], h, StepCount::OnDevice(&step), kernel).unwrap();
        }
        assert_eq!(step.double_value(&[]), grads.len() as f64, "{kernel:?}");
        let got = param.double_value(&[0]);
        // The same float64 numbers in another order. (A float32 count, as PyTorch's capturable Adam
        // keeps it, is 1.1e-9 away in the per-op arithmetic: 1 − 0.999ᵗ loses 1e-5 of itself in
        // float32; the fused kernel takes only the integer count from it.)
        assert!((got - want).abs() < 1e-12, "{kernel:?}, on-device count: {got} vs {want}");
    }
}

/// The library's Adam (adam.rs: every parameter a view into one flat buffer, 4-d ones laid out
/// channels-last or not, gradients reordered to match) against libtorch's own C++ Adam
/// (`torch::optim::Adam`, through tch's `nn::Adam`), which shares no code with it.
#[test]
fn adam_matches_libtorchs_own_adam_over_steps() {
    use dcgan_core::adam::Adam;
    use tch::nn::{self, OptimizerConfig};
    let h = AdamHyper { lr: 2e-4, beta1: 0.5, beta2: 0.999, eps: 1e-8 };
    let shapes: [&[i64]; 4] = [&[3, 2, 4, 4], &[5], &[4, 3, 2, 5], &[2, 3]];
    // The count on the device (for CUDA graphs) from step 3 on, in the second round of each layout.
    let rounds = [(false, false), (true, false), (false, true), (true, true)];
    for (kernel, (channels_last, count_on_device)) in [AdamKernel::PerOp, AdamKernel::Fused].into_iter().flat_map(|k| rounds.map(|r| (k, r))) {
        tch::manual_seed(7);
        let init: Vec<Tensor> = shapes.iter().map(|s| Tensor::randn(*s, (Kind::Float, Device::Cpu))).collect();
        let mut ours: Vec<Tensor> = init.iter().map(|t| t.copy()).collect();
        let mut adam = Adam::new(ours.iter_mut().collect(), h, channels_last).unwrap().with_kernel(kernel).unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        let theirs: Vec<Tensor> = init.iter().enumerate().map(|(i, t)| vs.root().var_copy(&format!("p{i}"), t)).collect();
        let mut opt = nn::Adam { beta1: h.beta1, beta2: h.beta2, wd: 0.0, eps: h.eps, amsgrad: false }.build(&vs, h.lr).unwrap();
        for step in 1..=6 {
            if count_on_device && step == 3 {
                adam.count_on_device().unwrap();
            }
            let grads: Vec<Tensor> = shapes.iter().map(|s| Tensor::randn(*s, (Kind::Float, Device::Cpu)) * step as f64).collect();
            adam.update(&grads).unwrap();
            // Σ p·g has gradient g with respect to p.
            let loss = theirs.iter().zip(&grads).map(|(p, g)| (p * g).sum(Kind::Float)).fold(Tensor::from(0.0f32), |a, b| a + b);
            opt.backward_step(&loss);
        }
        assert_eq!(adam.step, 6);
        for (i, ((o, t), p0)) in ours.iter().zip(&theirs).zip(&init).enumerate() {
            let diff = (o - t).abs().max().double_value(&[]);
            let moved = (t - p0).abs().mean(Kind::Float).double_value(&[]);
            // Six steps of up to lr each. Measured: 0 difference, both kernels, both layouts.
            // Planted and caught: gradients not reordered for channels-last (2.4e-3), the step
            // counted twice.
            assert!(moved > 1e-4, "parameter {i} moved {moved} on average: the reference did not train");
            assert!(diff < 1e-6, "parameter {i} ({kernel:?}, channels_last {channels_last}): max |ours − libtorch| {diff}");
        }
    }
}

#[test]
fn adam_rejects_mismatched_lists() {
    let h = AdamHyper { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    let p = Tensor::zeros([2], (Kind::Float, Device::Cpu));
    let err = adam_step(&[p.shallow_clone()], &[], &[], &[], h, StepCount::Host(1), AdamKernel::Fused).unwrap_err();
    assert!(err.to_string().contains("1 parameters but 0 gradients"), "{err}");
    // The fused kernel reads its count as one float32 on the parameters' device: a float64 count
    // (what the per-op path keeps) would be read as garbage on CUDA.
    let count = Tensor::from(0.0f64);
    let (m, v) = (p.zeros_like(), p.zeros_like());
    let err = adam_step(&[p.shallow_clone()], &[p.ones_like()], &[m], &[v], h, StepCount::OnDevice(&count), AdamKernel::Fused).unwrap_err();
    assert!(err.to_string().contains("must be one float32 value on Cpu, got Double [] on Cpu"), "{err}");
    assert_eq!(count.double_value(&[]), 0.0, "the refused update moved the count");
}

#[test]
fn config_errors_name_field_value_and_allowed() {
    let bad = |f: fn(&mut ModelConfig)| {
        let mut c = ModelConfig::default();
        f(&mut c);
        c.validate().unwrap_err().to_string()
    };
    assert_eq!(bad(|c| c.image_size = 48), "invalid imageSize: got 48; allowed: a power of two from 16 to 256 (16, 32, 64, 128, 256)");
    assert_eq!(bad(|c| c.channels = 2), "invalid channels: got 2; allowed: 1 (grayscale) or 3 (RGB)");
    assert_eq!(bad(|c| c.z_dim = 0), "invalid zDim: got 0; allowed: an integer from 1 to 4096");
    let t = TrainOptions { beta2: 1.0, ..Default::default() };
    assert_eq!(t.validate().unwrap_err().to_string(), "invalid beta2: got 1; allowed: a number in [0, 1)");
    assert_eq!(ModelConfig { image_size: 64, ..Default::default() }.upsamplings(), 4);
}

#[test]
fn device_parsing() {
    assert_eq!(device::parse_device("cpu").unwrap(), Device::Cpu);
    let e = device::parse_device("gpu").unwrap_err().to_string();
    assert!(e.starts_with("invalid device: got 'gpu'"), "{e}");
    // Each machine checks the branch it has (__test__/errors.spec.ts checks the other one with
    // the GPUs hidden).
    let count = tch::Cuda::device_count();
    if count == 0 {
        assert_eq!(device::parse_device("auto").unwrap(), Device::Cpu);
        // A CPU-only libtorch says which library is missing; one with CUDA, that there is no GPU.
        let e = device::parse_device("cuda:0").unwrap_err().to_string();
        assert!(e.contains("CUDA is not available") || e.contains("libtorch_cuda.so is missing"), "{e}");
    } else {
        assert_eq!(device::parse_device("auto").unwrap(), Device::Cuda(0));
        assert_eq!(device::parse_device("cuda").unwrap(), Device::Cuda(0));
        let e = device::parse_device(&format!("cuda:{count}")).unwrap_err().to_string();
        assert!(e.contains(&format!("this machine has {count} CUDA device(s)")), "{e}");
    }
}

fn small_gan() -> Gan {
    let model = ModelConfig { image_size: 16, features_g: 2, features_d: 2, z_dim: 8, ..Default::default() };
    Gan::new(model, TrainOptions::default(), Device::Cpu, Some(1)).unwrap()
}

#[test]
fn train_step_rejects_bad_batches_without_panicking() {
    let mut gan = small_gan();
    let wrong = Tensor::zeros([2, 3, 16, 16], (Kind::Float, Device::Cpu));
    let e = gan.train_step(&wrong, None).unwrap_err();
    assert!(matches!(e, Error::Input(_)));
    assert!(e.to_string().contains("expected [n, 1, 16, 16]"), "{e}");
    let nan = Tensor::full([2, 1, 16, 16], f64::NAN, (Kind::Float, Device::Cpu));
    let e = gan.train_step(&nan, None).unwrap_err().to_string();
    assert!(e.contains("value 0 is NaN"), "{e}");
    let ok = Tensor::zeros([2, 1, 16, 16], (Kind::Float, Device::Cpu));
    let s = gan.train_step(&ok, None).unwrap();
    assert!(s.d_real > 0.0 && s.d_real < 1.0);
    let img = gan.generate(3, Some(1), NormMode::Eval).unwrap();
    assert_eq!(img.size(), [3, 1, 16, 16]);
}

/// Deferred steps report each step's numbers one call late (the last through
/// `take_pending_stats`), exactly those of the same steps taken one by one, and train the same
/// weights; a bad batch is refused before anything is enqueued, the pending numbers kept.
#[test]
fn deferred_steps_report_the_same_numbers_one_call_late() {
    let batches: Vec<Tensor> = (0..4).map(|i| (Tensor::rand([4, 1, 16, 16], (Kind::Float, Device::Cpu)) * 2.0 - 1.0) * (0.5 + 0.1 * i as f64)).collect();
    let mut plain = small_gan();
    let expected: Vec<_> = batches.iter().map(|b| plain.train_step(b, None).unwrap()).collect();
    let mut deferred = small_gan();
    let mut got = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        let previous = deferred.train_step_deferred(b, None).unwrap();
        assert_eq!(previous.as_ref().map(|p| p.0), if i == 0 { None } else { Some(i as i64) });
        got.extend(previous);
        if i == 1 {
            let bad = Tensor::full([4, 1, 16, 16], 3.0, (Kind::Float, Device::Cpu));
            assert!(deferred.train_step_deferred(&bad, None).unwrap_err().to_string().contains("images must be scaled to [−1, 1]"));
        }
    }
    got.extend(deferred.take_pending_stats().unwrap());
    assert!(deferred.take_pending_stats().unwrap().is_none(), "the last numbers are given once");
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), expected);
    for ((name, a, _), (_, b, _)) in plain.generator.state().into_iter().zip(deferred.generator.state()) {
        assert!(a.equal(&b), "{name} differs");
    }
}

fn write_temp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dcgan-core-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::File::create(&path).unwrap().write_all(bytes).unwrap();
    path
}

fn idx_header(magic: u32, n: u32, r: u32, c: u32) -> Vec<u8> {
    [magic, n, r, c].iter().flat_map(|v| v.to_be_bytes()).collect()
}

#[test]
fn idx_reads_images_and_rejects_bad_headers() {
    let mut bytes = idx_header(0x803, 2, 2, 3);
    bytes.extend([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    let path = write_temp("ok-idx3-ubyte", &bytes);
    let images = IdxImages::open(&path).unwrap();
    assert_eq!((images.count, images.rows, images.cols), (2, 2, 3));
    let mut out = [0u8; 6];
    images.read_into(1, &mut out).unwrap();
    assert_eq!(out, [7, 8, 9, 10, 11, 12]);

    let gz = {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes).unwrap();
        enc.finish().unwrap()
    };
    let gz_images = IdxImages::open(&write_temp("ok-idx3-ubyte.gz", &gz)).unwrap();
    gz_images.read_into(0, &mut out).unwrap();
    assert_eq!(out, [1, 2, 3, 4, 5, 6]);

    let labels = write_temp("labels", &[0, 0, 8, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
    let e = IdxImages::open(&labels).err().unwrap().to_string();
    assert!(e.contains("not an IDX image file: magic number 0x00000801"), "{e}");
    let short = write_temp("short", &bytes[..20]);
    let e = IdxImages::open(&short).err().unwrap().to_string();
    assert!(e.contains("truncated: the header announces 2 images of 2×3 (28 bytes) but the file has 20"), "{e}");
}

#[test]
fn grid_layout_matches_save_image() {
    // Two 2×2 RGB images in one row, padding 1: 2·3+1 = 7 wide, 1·3+1 = 4 high.
    let mut data = vec![-1.0f32; 2 * 3 * 4];
    data[12..16].fill(1.0); // second image, red channel
    let (w, h, c, px) = image::grid(&data, &[2, 3, 2, 2], 8, 1).unwrap();
    assert_eq!((w, h, c), (7, 4, 3));
    let at = |x: usize, y: usize| &px[(y * 7 + x) * 3..(y * 7 + x) * 3 + 3];
    assert_eq!(at(1, 1), [0, 0, 0]);
    assert_eq!(at(4, 1), [255, 0, 0]);
    assert!(image::grid(&data, &[2, 2, 2, 2], 8, 1).is_err());
}

#[test]
fn image_folder_decodes_jpeg_and_png() {
    use dcgan_core::data::{folder::ImageFolder, prepare::prepare_into, Source};
    let dir = std::env::temp_dir().join(format!("dcgan-folder-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let gray = ::image::GrayImage::from_pixel(10, 6, ::image::Luma([200]));
    gray.save(dir.join("sub/b.jpg")).unwrap();
    let rgb = ::image::RgbImage::from_pixel(4, 4, ::image::Rgb([0, 128, 255]));
    rgb.save(dir.join("a.png")).unwrap();
    let folder = ImageFolder::open(&dir).unwrap();
    assert_eq!(folder.len(), 2);
    assert!(folder.describe(0).ends_with("a.png"));
    let jpeg = folder.read(1).unwrap();
    assert_eq!((jpeg.width, jpeg.height, jpeg.channels), (10, 6, 1));
    assert!(jpeg.pixels.iter().all(|&p| (p as i32 - 200).abs() <= 2), "JPEG is lossy, but not by much on a flat image");
    let mut out = vec![0f32; 3 * 8 * 8];
    prepare_into(&folder.read(0).unwrap(), 3, 8, &mut out);
    assert_eq!((out[0], out[64], out[128]), (-1.0, 128.0 / 127.5 - 1.0, 1.0));
}

#[test]
fn cuda_graphs_are_refused_where_they_cannot_run_each_saying_why() {
    let mut gan = small_gan();
    let real = Tensor::zeros([4, gan.model.channels, gan.model.image_size, gan.model.image_size], (Kind::Float, Device::Cpu));
    let err = gan.train_step_graphed(&real, None).unwrap_err().to_string();
    assert!(err.contains("needs use_cuda_graph first"), "{err}");
    let err = gan.use_cuda_graph(0).unwrap_err().to_string();
    assert!(err.contains("at least 1 warm-up step"), "{err}");
    let err = gan.use_cuda_graph(3).unwrap_err().to_string();
    assert!(err.contains("need a model on a CUDA device; this one is on the CPU"), "{err}");
    // Nothing changed: the model still trains eagerly, Adam on its host count.
    gan.train_step(&real, None).unwrap();
    assert_eq!((gan.steps_done, gan.opt_g.step), (1, 1));
    assert!(gan.cuda_graph.is_none());
}

/// Output and gradients (input, weight, bias) of a 4×4 stride-2 padding-1 (transposed)
/// convolution computed by `compute(x, w, b)` from float32 channels-last leaves.
fn strided_conv_and_grads(
    transposed: bool,
    (small, big): (i64, i64),
    with_bias: bool,
    compute: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
) -> Vec<Tensor> {
    tch::manual_seed(11);
    let opts = (Kind::Float, Device::Cpu);
    let x_shape = if transposed { [3, small, 4, 4] } else { [3, big, 8, 8] };
    let cl = |t: Tensor| dcgan_core::ffi::channels_last(&t).unwrap().set_requires_grad(true);
    let x = cl(Tensor::randn(x_shape, opts));
    let w = cl(Tensor::randn([small, big, 4, 4], opts) * 0.02);
    let b = Tensor::randn([if transposed { big } else { small }], opts).set_requires_grad(true);
    let y = compute(&x, &w, &b);
    let up = Tensor::randn(y.size(), opts);
    let leaves = if with_bias { vec![&x, &w, &b] } else { vec![&x, &w] };
    let mut out = Tensor::run_backward(&[(&y * &up).sum(Kind::Float)], &leaves, false, false);
    out.insert(0, y.detach());
    out
}

#[test]
fn convolution_parts_by_matrix_products_agree_with_libtorchs() {
    use dcgan_core::ffi::{conv_by_matmul, MatmulParts as P};
    let every = [P::NONE, P::WEIGHT_GRAD, P::SCATTER, P::WEIGHT_GRAD | P::GATHER_GRAD, P::WEIGHT_GRAD | P::GATHER_GRAD | P::SCATTER];
    for (transposed, with_bias) in [(false, true), (true, true), (false, false), (true, false)] {
        // 3 channels on the image side (RGB), 5 on the other: unequal, so that a swapped
        // channel or patch order cannot go unnoticed.
        let torch = strided_conv_and_grads(transposed, (5, 3), with_bias, |x, w, b| {
            let b = if with_bias { Some(b) } else { None };
            if transposed {
                x.conv_transpose2d(w, b, [2, 2], [1, 1], [0, 0], 1, [1, 1])
            } else {
                x.conv2d(w, b, [2, 2], [1, 1], [1, 1], 1)
            }
        });
        for parts in every {
            let ours = strided_conv_and_grads(transposed, (5, 3), with_bias, |x, w, b| {
                conv_by_matmul(x, w, if with_bias { Some(b) } else { None }, transposed, parts).unwrap()
            });
            assert_eq!(ours.len(), torch.len());
            for (i, what) in ["output", "input gradient", "weight gradient", "bias gradient"].iter().take(torch.len()).enumerate() {
                assert_eq!(ours[i].size(), torch[i].size(), "{what}");
                let scale = torch[i].abs().max().double_value(&[]);
                let diff = (&ours[i] - &torch[i]).abs().max().double_value(&[]);
                // The same float32 products summed in another order: a few ulps of the largest value.
                assert!(diff <= 1e-5 * scale, "transposed {transposed}, bias {with_bias}, {parts:?}: {what} differs by {diff:e} (scale {scale:e})");
            }
        }
    }
}

/// The copy-stream upload (`DCGAN_COPY_STREAM=1`): on a GPU the batch arrives whole and the current
/// stream sees it without a host wait in between; without CUDA it is libtorch's error, not a crash.
#[test]
fn a_batch_uploaded_on_the_copy_stream_arrives_whole() {
    let batch = Tensor::randn([4, 1, 16, 16], (Kind::Float, Device::Cpu));
    let pinned = if tch::Cuda::device_count() > 0 { dcgan_core::ffi::pin_memory(&batch).unwrap() } else { batch.shallow_clone() };
    match dcgan_core::ffi::upload_on_copy_stream(&pinned, 0) {
        Ok(on_gpu) => {
            assert!(tch::Cuda::device_count() > 0, "an upload without a GPU");
            // Work on the current stream right after the upload reads the copied values.
            let doubled = (&on_gpu * 2.0).to_device(Device::Cpu);
            assert_eq!(doubled, &batch * 2.0);
        }
        Err(e) => {
            assert_eq!(tch::Cuda::device_count(), 0, "the upload failed on a GPU: {e}");
            assert!(e.to_string().to_lowercase().contains("cuda"), "{e}");
        }
    }
}

/// A GPU's memory, asked through libtorch's device allocator: on a GPU plausible numbers, and a
/// call too large for it refused by name before anything is allocated; without CUDA libtorch's
/// error, not a crash.
#[test]
fn a_gpu_reports_its_memory_and_refuses_work_larger_than_it() {
    match dcgan_core::ffi::device_memory(0) {
        Ok((free, total)) => {
            assert!(tch::Cuda::device_count() > 0, "memory of a GPU that is not there");
            assert!(total >= 1 << 30 && free <= total, "free {free}, total {total}");
            let model = dcgan_core::ModelConfig { image_size: 64, features_g: 64, features_d: 64, ..Default::default() };
            let gan = dcgan_core::Gan::new(model, Default::default(), Device::Cuda(0), Some(0)).unwrap();
            // Beyond the per-image part alone, so whatever the fixed part (weights, moments) adds.
            let too_many = (total / gan.model.activation_bytes(1, true)) as i64 + 1;
            let e = gan.check_work(too_many, true, "a training step").unwrap_err().to_string();
            assert!(e.contains("of GPU cuda:0") && e.contains(&format!("{too_many} images")), "{e}");
            gan.check_work(1, true, "a training step").unwrap();
        }
        Err(e) => {
            assert_eq!(tch::Cuda::device_count(), 0, "no memory figures from a GPU: {e}");
            assert!(e.to_string().to_lowercase().contains("cuda"), "{e}");
        }
    }
}
