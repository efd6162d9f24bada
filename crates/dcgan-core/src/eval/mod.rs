//! Measuring what a GAN learned.
//!
//! On MNIST-like models (one channel, trained on MNIST) a small classifier trained by this library
//! (`models/mnist-classifier.safetensors`, see [`classifier`]) gives, for the generated images and
//! for real held-out images (MNIST test) as the yardstick: the Fréchet distance of its penultimate
//! features to the reference Gaussian of all 60 000 MNIST training images prepared at the model's
//! image size (stored in the classifier's file, see [`classifier::References`]), the Inception
//! Score of its class probabilities, the class histogram and the classes covered. Images of any
//! side are resized to the classifier's 28×28 (bilinear, antialiased when shrinking).
//!
//! For every other model the same Fréchet distance is computed on the discriminator's features
//! (the input of its last convolution, flattened), against real images of the training set;
//! there are no class numbers then.
pub mod classifier;
pub mod mnist;
pub mod stats;

use crate::data::{prepare::prepare_into, Source};
use crate::error::{Error, Result};
use crate::gan::Gan;
use crate::layers::NormMode;
use classifier::Classifier;
use rand::seq::index::sample as sample_indices;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use classifier::References;
use tch::{Kind, Tensor};

/// Images generated and featurised per forward pass. Fixed, so that with BatchNorm on batch
/// statistics the numbers depend only on the seed and the sample count (on a GPU, also on
/// cuDNN's choice of algorithms, which its autotuner may make differently from run to run;
/// `DCGAN_CUDNN_BENCHMARK=0` keeps one choice).
pub const CHUNK: i64 = 100;
/// Most samples one evaluation takes.
pub const MAX_SAMPLES: i64 = 50_000;
/// Fewest samples: a covariance needs two.
pub const MIN_SAMPLES: i64 = 2;

/// What the features come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalKind {
    MnistClassifier,
    DiscriminatorFeatures,
}

impl EvalKind {
    pub fn name(self) -> &'static str {
        match self {
            EvalKind::MnistClassifier => "mnist-classifier",
            EvalKind::DiscriminatorFeatures => "discriminator-features",
        }
    }
}

/// The numbers of one set of images.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    /// Fréchet distance to the reference statistics.
    pub fid: f64,
    /// Classifier only.
    pub inception_score: Option<f64>,
    /// Classifier only: samples per predicted class.
    pub class_histogram: Option<Vec<i64>>,
    /// Classifier only: see [`stats::classes_covered`].
    pub classes_covered: Option<i64>,
}

/// An evaluation: generated images and, as the yardstick, real images measured the same way.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub kind: EvalKind,
    pub samples: i64,
    pub seed: u64,
    pub generated: Scores,
    pub real: Scores,
    pub step: i64,
}

/// Checks a sample count: 2 (a covariance needs two) to [`MAX_SAMPLES`].
pub fn check_samples(n: i64) -> Result<()> {
    crate::options::in_range("samples", n, MIN_SAMPLES, MAX_SAMPLES)
}

/// `count` distinct indices below `len`, drawn with `seed`, in drawing order.
pub fn choose(len: usize, count: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_1DEA);
    sample_indices(&mut rng, len, count.min(len)).into_vec()
}

/// Images `indices` of `source`, prepared as training data is (channel conversion, centre crop,
/// bilinear resize to `size`, [−1, 1]), as a flat n×C×S×S buffer. No libtorch involved.
pub fn read_prepared(source: &dyn Source, indices: &[usize], channels: usize, size: u32) -> Result<Vec<f32>> {
    let per = channels * (size * size) as usize;
    let mut out = vec![0f32; indices.len() * per];
    for (k, &i) in indices.iter().enumerate() {
        let img = source.read(i)?;
        prepare_into(&img, channels, size, &mut out[k * per..(k + 1) * per]);
    }
    Ok(out)
}

/// Features, and class probabilities for the classifier, of a set of images.
struct Measured {
    features: Tensor,
    probs: Option<Tensor>,
}

/// The classifier's numbers for `images` (n×1×S×S in [−1, 1]) against the reference of side S,
/// and the class probabilities.
pub fn classifier_scores(model: &Classifier, references: &References, images: &Tensor) -> Result<(Scores, Tensor)> {
    let side = images.size().last().copied().unwrap_or(0);
    let reference = references.get(side)?;
    let (features, probs) = model.predict(&classifier::to_input(images)?, 500)?;
    let scores = scores_of(&Measured { features, probs: Some(probs.shallow_clone()) }, &Reference::Gaussian(reference))?;
    Ok((scores, probs))
}

enum Reference<'a> {
    Gaussian(&'a stats::Gaussian),
    Features(&'a Tensor),
}

fn scores_of(m: &Measured, reference: &Reference) -> Result<Scores> {
    let fid = match reference {
        Reference::Gaussian(g) => stats::frechet_distance(&stats::Gaussian::fit(&m.features)?, g)?,
        Reference::Features(r) => stats::frechet_distance_of_features(&m.features, r)?,
    };
    Ok(match &m.probs {
        Some(p) => {
            let hist = stats::class_histogram(p)?;
            Scores {
                fid,
                inception_score: Some(stats::inception_score(p)?),
                classes_covered: Some(stats::classes_covered(&hist)),
                class_histogram: Some(hist),
            }
        }
        None => Scores { fid, inception_score: None, class_histogram: None, classes_covered: None },
    })
}

/// What measures the images.
pub enum Judge<'a> {
    /// The MNIST classifier and its reference Gaussians (of MNIST training images).
    Classifier(&'a Classifier, &'a References),
    /// The discriminator of the GAN under evaluation; `reference` are real images (n×C×S×S)
    /// whose discriminator features are the reference.
    Discriminator { reference: &'a Tensor },
}

/// Where the images to measure come from.
enum Images<'a> {
    /// The generator on these latent vectors, BatchNorm in this mode.
    Generated(&'a Tensor, NormMode),
    Given(&'a Tensor),
}

/// Measures `n` images chunk by chunk of [`CHUNK`].
fn measure(gan: &mut Gan, judge: &Judge, images: Images, n: i64) -> Result<Measured> {
    let (mut feats, mut probs) = (Vec::new(), Vec::new());
    let mut start = 0;
    while start < n {
        let len = CHUNK.min(n - start);
        let x = match images {
            Images::Generated(z, mode) => {
                let x = gan.generate_from(&z.f_narrow(0, start, len)?, mode)?;
                if x.f_isfinite()?.f_all()?.f_int64_value(&[])? == 0 {
                    return Err(Error::NonFinite("the generator made NaN or infinite pixels: its weights diverged; evaluate an earlier checkpoint".into()));
                }
                x
            }
            Images::Given(x) => x.f_narrow(0, start, len)?,
        };
        match judge {
            Judge::Classifier(model, _) => {
                // Resized where the classifier runs.
                let (f, p) = model.predict(&classifier::to_input(&x.f_to_device(model.device())?)?, CHUNK)?;
                feats.push(f);
                probs.push(p);
            }
            Judge::Discriminator { .. } => {
                let x = x.f_to_device(gan.device)?;
                let f = tch::no_grad(|| gan.discriminator.features(&x, NormMode::Eval))?;
                feats.push(f.f_flatten(1, -1)?.f_to_device(tch::Device::Cpu)?.f_to_kind(Kind::Double)?);
            }
        }
        start += len;
    }
    let features = Tensor::f_cat(&feats, 0)?;
    let probs = if probs.is_empty() { None } else { Some(Tensor::f_cat(&probs, 0)?) };
    Ok(Measured { features, probs })
}

/// Evaluates `gan`: `samples` images generated from noise drawn with `seed` (BatchNorm in `mode`)
/// and `real` (samples×C×S×S held-out real images, prepared as training data is), both measured
/// by `judge` against its reference.
pub fn evaluate(gan: &mut Gan, judge: &Judge, real: &Tensor, samples: i64, seed: u64, mode: NormMode) -> Result<Report> {
    check_samples(samples)?;
    gan.check_images(real, "the real images")?;
    if real.size()[0] != samples {
        return Err(Error::Input(format!("{} real images for {samples} samples; give as many of each", real.size()[0])));
    }
    let kind = match judge {
        Judge::Classifier(..) => {
            if gan.model.channels != 1 {
                return Err(Error::Input(format!(
                    "the MNIST classifier takes grayscale images but this model makes {} channels; evaluate it on discriminator features",
                    gan.model.channels
                )));
            }
            EvalKind::MnistClassifier
        }
        Judge::Discriminator { reference } => {
            gan.check_images(reference, "the reference images")?;
            EvalKind::DiscriminatorFeatures
        }
    };
    let z = gan.latent(&mut ChaCha8Rng::seed_from_u64(seed), samples)?;
    let generated = measure(gan, judge, Images::Generated(&z, mode), samples)?;
    let real = measure(gan, judge, Images::Given(real), samples)?;
    let reference_features;
    let reference = match judge {
        Judge::Classifier(_, r) => Reference::Gaussian(r.get(gan.model.image_size)?),
        Judge::Discriminator { reference } => {
            let n = reference.size()[0];
            reference_features = measure(gan, judge, Images::Given(reference), n)?.features;
            Reference::Features(&reference_features)
        }
    };
    Ok(Report {
        kind,
        samples,
        seed,
        generated: scores_of(&generated, &reference)?,
        real: scores_of(&real, &reference)?,
        step: gan.steps_done,
    })
}
