//! Bindings of the evaluation (dcgan_core::eval): a model's samples and real held-out images
//! measured by the MNIST classifier or by the model's discriminator. Real images are read and
//! prepared on a thread of their own (no libtorch there); the libtorch thread measures them and
//! settles the promise.
use crate::errors::{sync, Failure};
use crate::model::{with_gan, NativeGan};
use crate::promise::{guarded, on_torch_thread, Settle};
use crate::tensor::{from_js, integer_in, shape_of};
use dcgan_core::data::open_source;
use dcgan_core::eval::{self, classifier::Classifier, EvalKind, Judge, Report, Scores};
use dcgan_core::options::DatasetSpec;
use dcgan_core::{executor, input, Error as CoreError, NormMode};
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
    /// Source of the real images: a `DatasetSpec` as JSON (its `limit` is honoured).
    pub dataset_json: String,
    /// The MNIST IDX file, for a spec of kind 'mnist'.
    pub mnist_file: Option<String>,
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
    dataset: DatasetSpec,
    mnist_file: Option<PathBuf>,
}

/// The real images an evaluation needs, read and prepared as training data (no libtorch).
fn read_real(r: &Request, channels: i64, size: i64) -> dcgan_core::Result<(Vec<f32>, usize)> {
    let source = open_source(&r.dataset, r.mnist_file.as_deref())?;
    let available = r.dataset.limit.map_or(source.len(), |l| (l as usize).min(source.len()));
    let per_side = if r.kind == EvalKind::DiscriminatorFeatures { 2 } else { 1 };
    let needed = r.samples as usize * per_side;
    if available < needed {
        let what = if per_side == 2 { "the reference and the real yardstick need" } else { "the real yardstick needs" };
        return Err(CoreError::config(
            "samples",
            format!("got {}; {what} {needed} distinct real images but the dataset ({}) holds {available}; use samples ≤ {}", r.samples, describe(r), available / per_side),
        ));
    }
    let indices = eval::choose(available, needed, r.seed);
    Ok((eval::read_prepared(&*source, &indices, channels as usize, size as u32)?, needed))
}

/// The files of the real images, for messages.
fn describe(r: &Request) -> String {
    match (&r.dataset.path, &r.mnist_file) {
        (Some(p), _) => p.to_vec().join(", "),
        (None, Some(f)) => f.display().to_string(),
        (None, None) => r.dataset.kind.name().to_string(),
    }
}

/// Measures the model's samples and the real images, on the libtorch thread.
fn measure(g: &mut dcgan_core::Gan, r: &Request, pixels: &[f32], needed: usize) -> dcgan_core::Result<Report> {
    let (channels, size) = (g.model.channels, g.model.image_size);
    let all = from_js(pixels, &[needed as i64, channels, size, size], "the real images")?;
    match r.kind {
        EvalKind::MnistClassifier => {
            let path = r.classifier.as_ref().ok_or_else(|| CoreError::Input("no classifier file was given".into()))?;
            let (model, references, _) = Classifier::load(path, g.device)?;
            eval::evaluate(g, &Judge::Classifier(&model, &references), &all, r.samples, r.seed, r.mode)
        }
        EvalKind::DiscriminatorFeatures => {
            let reference = all.f_narrow(0, 0, r.samples)?;
            let real = all.f_narrow(0, r.samples, r.samples)?;
            eval::evaluate(g, &Judge::Discriminator { reference: &reference }, &real, r.samples, r.seed, r.mode)
        }
    }
}

fn report_js(_env: Env, r: Report) -> Result<NativeEvalReport> {
    Ok(NativeEvalReport {
        kind: r.kind.name().to_string(),
        samples: r.samples as u32,
        seed: r.seed as f64,
        generated: scores_js(r.generated),
        real: scores_js(r.real),
        step: r.step as f64,
    })
}

fn request(options: NativeEvalOptions) -> dcgan_core::Result<Request> {
    let kind = match options.kind.as_str() {
        "mnist-classifier" => EvalKind::MnistClassifier,
        "discriminator-features" => EvalKind::DiscriminatorFeatures,
        other => return Err(CoreError::config("kind", format!("got '{other}'; allowed: 'mnist-classifier', 'discriminator-features'"))),
    };
    if kind == EvalKind::MnistClassifier && options.classifier.is_none() {
        return Err(CoreError::Input("the 'mnist-classifier' evaluation needs the classifier file".into()));
    }
    let samples = integer_in("samples", options.samples, eval::MIN_SAMPLES, eval::MAX_SAMPLES)?;
    Ok(Request {
        samples,
        seed: integer_in("seed", options.seed, 0, dcgan_core::options::MAX_SEED as i64)? as u64,
        mode: if options.batch_stats.unwrap_or(false) { NormMode::BatchStats } else { NormMode::Eval },
        kind,
        classifier: options.classifier.map(PathBuf::from),
        dataset: DatasetSpec::from_json(&options.dataset_json)?,
        mnist_file: options.mnist_file.map(PathBuf::from),
    })
}

/// Evaluates a model: `samples` generated images and as many real held-out images, measured by
/// the MNIST classifier (kind 'mnist-classifier') or by the model's discriminator
/// ('discriminator-features', against another `samples` real images as the reference).
#[napi(ts_return_type = "Promise<NativeEvalReport>")]
pub fn evaluate_gan<'e>(env: &'e Env, gan: &NativeGan, options: NativeEvalOptions) -> Result<Object<'e>> {
    let r = sync(env, request(options))?;
    let shared = gan.gan.clone();
    let (channels, size) = (shared.model.channels, shared.model.image_size);
    let (settle, promise) = Settle::new(env)?;
    let spawned = std::thread::Builder::new().name("dcgan-eval".into()).spawn(move || match guarded("evaluate", || read_real(&r, channels, size)) {
        Err(f) => settle.settle(Err::<Report, Failure>(f), report_js),
        Ok((pixels, needed)) => {
            let job = move || settle.settle(guarded("evaluate", || with_gan(&shared, |g| measure(g, &r, &pixels, needed))), report_js);
            // The libtorch thread runs as long as the process: the model was built on it.
            let _ = executor::spawn(job);
        }
    });
    spawned.map_err(|e| Failure::internal(format!("cannot start the evaluation thread: {e}")).into_napi(env))?;
    Ok(promise)
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
pub fn evaluate_images<'e>(env: &'e Env, images: Float32Array, shape: Vec<f64>, classifier: String) -> Result<Object<'e>> {
    let shape = sync(env, shape_of(&shape, "the image batch"))?;
    if shape.len() != 4 || shape[1] != 1 {
        let message = format!("the images have shape {shape:?}; the MNIST classifier takes grayscale images [n, 1, S, S]");
        return Err(Failure::input(message).into_napi(env));
    }
    sync(env, eval::check_samples(shape[0]))?;
    let data = images.to_vec();
    on_torch_thread(env, "evaluateImages", move || {
        let x = from_js(&data, &shape, "the images")?;
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
    }, |_env, scores| Ok(scores))
}
