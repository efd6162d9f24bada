//! Bindings of the evaluation (dcgan_core::eval): a model's samples and real held-out images
//! measured by the MNIST classifier or by the model's discriminator. Real images are read and
//! prepared on a libuv thread (no libtorch there); all libtorch work runs on the libtorch thread.
// Test builds leave out napi's registration, which is what uses these items.
#![cfg_attr(test, allow(dead_code))]
use super::{fn_task, int_option, invalid, norm_mode, open_source, shape_of, to_js, with_gan, FnTask, NativeGan, Shared};
use dcgan_core::eval::{self, classifier::Classifier, EvalKind, Judge, Report, Scores};
use dcgan_core::{input, Error as CoreError, NormMode};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::PathBuf;


/// The numbers of one set of images.
#[napi(object)]
pub struct EvalScores {
    /// Fréchet distance of the features to the reference statistics.
    pub fid: f64,
    /// exp(E[KL(p(y|x) ‖ p(y))]) of the classifier's probabilities (classifier only).
    pub inception_score: Option<f64>,
    /// Images per predicted class 0…9 (classifier only).
    pub class_histogram: Option<Vec<u32>>,
    /// Classes holding at least a quarter of their uniform share (classifier only).
    pub classes_covered: Option<u32>,
}

/// An evaluation of a model.
#[napi(object)]
pub struct NativeEvalReport {
    /// 'mnist-classifier' or 'discriminator-features'.
    pub kind: String,
    pub samples: u32,
    pub seed: f64,
    pub generated: EvalScores,
    pub real: EvalScores,
    /// Training steps of the model.
    pub step: f64,
}

/// What `evaluateGan` measures and with what.
#[napi(object)]
pub struct NativeEvalOptions {
    /// Generated images, and real held-out images as the yardstick.
    pub samples: f64,
    /// Seed of the noise and of the choice of real images.
    pub seed: f64,
    /// Generate with BatchNorm on batch statistics (chunks of 100) instead of running ones.
    pub batch_stats: Option<bool>,
    /// 'mnist-classifier' or 'discriminator-features'.
    pub kind: String,
    /// The classifier file (mnist-classifier).
    pub classifier: Option<String>,
    /// Source of the real images: 'idx', 'cifar10' or 'folder', as for `NativeLoader`.
    pub data_kind: String,
    pub data_paths: Vec<String>,
    /// Use only the first `dataLimit` images of the source.
    pub data_limit: Option<f64>,
}

fn scores_js(s: Scores) -> EvalScores {
    EvalScores {
        fid: s.fid,
        inception_score: s.inception_score,
        class_histogram: s.class_histogram.map(|h| h.into_iter().map(|c| c as u32).collect()),
        classes_covered: s.classes_covered.map(|c| c as u32),
    }
}

struct Request {
    samples: i64,
    seed: u64,
    mode: NormMode,
    kind: EvalKind,
    classifier: Option<PathBuf>,
    data_kind: String,
    data_paths: Vec<String>,
    limit: Option<usize>,
}

pub struct EvalTask {
    gan: Shared,
    request: Option<Request>,
}

impl Task for EvalTask {
    type Output = Report;
    type JsValue = NativeEvalReport;

    fn compute(&mut self) -> Result<Report> {
        let r = self.request.take().ok_or_else(|| invalid("task already ran"))?;
        let (channels, size) = (self.gan.model.channels, self.gan.model.image_size);
        // Reading and preparing the real images involves no libtorch: done here, on this libuv thread.
        let source = open_source(&r.data_kind, &r.data_paths).map_err(to_js)?;
        let available = r.limit.map_or(source.len(), |l| l.min(source.len()));
        let per_side = if r.kind == EvalKind::DiscriminatorFeatures { 2 } else { 1 };
        let needed = r.samples as usize * per_side;
        if available < needed {
            let what = if per_side == 2 { "the reference and the real yardstick need" } else { "the real yardstick needs" };
            return Err(invalid(format!(
                "invalid samples: got {}; {what} {needed} distinct real images but the dataset ({}) holds {available}; use samples ≤ {}",
                r.samples,
                r.data_paths.join(", "),
                available / per_side
            )));
        }
        let indices = eval::choose(available, needed, r.seed);
        let pixels = eval::read_prepared(&*source, &indices, channels as usize, size as u32).map_err(to_js)?;
        with_gan(&self.gan, "evaluate", move |g| {
            let all = input::tensor_from_f32(&pixels, &[needed as i64, channels, size, size], tch::Device::Cpu, "the real images")?;
            match r.kind {
                EvalKind::MnistClassifier => {
                    let path = r.classifier.ok_or_else(|| CoreError::Input("no classifier file was given".into()))?;
                    let (model, references, _) = Classifier::load(&path, g.device)?;
                    eval::evaluate(g, &Judge::Classifier(&model, &references), &all, r.samples, r.seed, r.mode)
                }
                EvalKind::DiscriminatorFeatures => {
                    let reference = all.f_narrow(0, 0, r.samples)?;
                    let real = all.f_narrow(0, r.samples, r.samples)?;
                    eval::evaluate(g, &Judge::Discriminator { reference: &reference }, &real, r.samples, r.seed, r.mode)
                }
            }
        })
    }

    fn resolve(&mut self, _env: Env, r: Report) -> Result<NativeEvalReport> {
        Ok(NativeEvalReport {
            kind: r.kind.name().to_string(),
            samples: r.samples as u32,
            seed: r.seed as f64,
            generated: scores_js(r.generated),
            real: scores_js(r.real),
            step: r.step as f64,
        })
    }
}

fn samples_option(v: f64) -> Result<i64> {
    let n = int_option("samples", Some(v), 0)?;
    eval::check_samples(n).map_err(to_js)?;
    Ok(n)
}

fn seed_option(v: f64) -> Result<u64> {
    let s = int_option("seed", Some(v), 0)?;
    if s < 0 {
        return Err(invalid(format!("invalid seed: got {s}; allowed: an integer ≥ 0")));
    }
    Ok(s as u64)
}

/// Evaluates a model: `samples` generated images and as many real held-out images, measured by
/// the MNIST classifier (kind 'mnist-classifier') or by the model's discriminator
/// ('discriminator-features', against another `samples` real images as the reference).
#[napi(ts_return_type = "Promise<NativeEvalReport>")]
pub fn evaluate_gan(gan: &NativeGan, options: NativeEvalOptions) -> Result<AsyncTask<EvalTask>> {
    let kind = match options.kind.as_str() {
        "mnist-classifier" => EvalKind::MnistClassifier,
        "discriminator-features" => EvalKind::DiscriminatorFeatures,
        other => return Err(invalid(format!("invalid kind: got '{other}'; allowed: 'mnist-classifier', 'discriminator-features'"))),
    };
    if kind == EvalKind::MnistClassifier && options.classifier.is_none() {
        return Err(invalid("the 'mnist-classifier' evaluation needs the classifier file"));
    }
    let limit = options.data_limit.map(|l| int_option("dataLimit", Some(l), 0)).transpose()?.map(|l| l.max(0) as usize);
    let request = Request {
        samples: samples_option(options.samples)?,
        seed: seed_option(options.seed)?,
        mode: norm_mode(options.batch_stats),
        kind,
        classifier: options.classifier.map(PathBuf::from),
        data_kind: options.data_kind,
        data_paths: options.data_paths,
        limit,
    };
    Ok(AsyncTask::new(EvalTask { gan: gan.gan.clone(), request: Some(request) }))
}

/// The MNIST classifier's numbers for a set of images, and its prediction for each.
#[napi(object)]
pub struct ImageScores {
    pub fid: f64,
    pub inception_score: f64,
    pub class_histogram: Vec<u32>,
    pub classes_covered: u32,
    /// The most probable class of each image.
    pub predictions: Vec<u32>,
}

/// Measures images (n×1×S×S values in [−1, 1], n ≥ 2, any S) with the MNIST classifier file
/// `classifier`: Fréchet distance to its reference statistics, Inception Score, classes.
#[napi(ts_return_type = "Promise<ImageScores>")]
pub fn evaluate_images(images: Float32Array, shape: Vec<f64>, classifier: String) -> Result<AsyncTask<FnTask<ImageScores>>> {
    let shape = shape_of(&shape, "image batch")?;
    if shape.len() != 4 || shape[1] != 1 {
        return Err(invalid(format!("the images have shape {shape:?}; the MNIST classifier takes grayscale images [n, 1, S, S]")));
    }
    eval::check_samples(shape[0]).map_err(to_js)?;
    let data = images.to_vec();
    Ok(fn_task("evaluateImages", move || {
        let x = input::tensor_from_f32(&data, &shape, tch::Device::Cpu, "the images")?;
        input::ensure_finite(&x, "the images")?;
        let (model, references, _) = Classifier::load(&PathBuf::from(classifier), tch::Device::Cpu)?;
        let (s, probs) = eval::classifier_scores(&model, &references, &x)?;
        let predictions = Vec::<i64>::try_from(probs.f_argmax(1, false)?)?;
        Ok(ImageScores {
            fid: s.fid,
            inception_score: s.inception_score.unwrap_or(f64::NAN),
            class_histogram: s.class_histogram.unwrap_or_default().into_iter().map(|c| c as u32).collect(),
            classes_covered: s.classes_covered.unwrap_or(0) as u32,
            predictions: predictions.into_iter().map(|p| p as u32).collect(),
        })
    }))
}
