//! A small MNIST classifier, trained by this library, whose penultimate features and class
//! probabilities measure generated digits:
//! conv 1→32 3×3, ReLU, max-pool 2 → conv 32→64 3×3, ReLU, max-pool 2 → linear 1600→128, ReLU
//! (the features) → linear 128→10 (the logits). Input: 1×28×28 in [−1, 1].
use super::stats::Gaussian;
use crate::adam::Adam;
use crate::ffi::AdamHyper;
use crate::error::{Error, Result};
use crate::layers::sample;
use crate::weights;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::Uniform;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::{Device, Kind, Reduction, Tensor};

/// Side of the classifier's input images.
pub const INPUT_SIZE: i64 = 28;
/// Length of the feature vector (the penultimate layer, after its ReLU).
pub const FEATURES: i64 = 128;
pub const CLASSES: i64 = 10;
/// The `format` metadata of a classifier file.
pub const FORMAT: &str = "dcgan-mnist-classifier/1";

/// Parameter names and shapes, in order.
const PARAMS: [(&str, [i64; 4], usize); 8] = [
    ("conv1.weight", [32, 1, 3, 3], 4),
    ("conv1.bias", [32, 0, 0, 0], 1),
    ("conv2.weight", [64, 32, 3, 3], 4),
    ("conv2.bias", [64, 0, 0, 0], 1),
    ("fc1.weight", [FEATURES, 64 * 5 * 5, 0, 0], 2),
    ("fc1.bias", [FEATURES, 0, 0, 0], 1),
    ("fc2.weight", [CLASSES, FEATURES, 0, 0], 2),
    ("fc2.bias", [CLASSES, 0, 0, 0], 1),
];

fn shape(i: usize) -> &'static [i64] {
    &PARAMS[i].1[..PARAMS[i].2]
}

pub struct Classifier {
    /// The parameters in the order of `PARAMS`.
    pub params: Vec<Tensor>,
}

/// Settings of [`train`].
#[derive(Clone, Debug)]
pub struct TrainSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings { epochs: 2, batch_size: 64, lr: 1e-3, seed: 0 }
    }
}

impl Classifier {
    /// New weights as PyTorch initialises Conv2d and Linear (weights and biases U(±1/√fan_in)),
    /// drawn from `seed`.
    pub fn new(seed: u64, device: Device) -> Result<Classifier> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = Vec::new();
        for i in 0..PARAMS.len() {
            // fan_in of a weight is the product of its dimensions after the first; a bias shares its weight's.
            let w = i - i % 2;
            let fan_in: i64 = shape(w)[1..].iter().product();
            let bound = 1.0 / (fan_in as f32).sqrt();
            let dist = Uniform::new(-bound, bound).expect("bound is positive");
            params.push(sample(&mut rng, dist, shape(i), device)?.f_set_requires_grad(true)?);
        }
        Ok(Classifier { params })
    }

    /// Reads a classifier file written by [`Classifier::save`]: the weights, the reference
    /// Gaussians of real images' features, and the metadata.
    pub fn load(path: &Path, device: Device) -> Result<(Classifier, References, HashMap<String, String>)> {
        let loaded = weights::load(path)?;
        if loaded.metadata.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(Error::file(path, format!("is not an MNIST classifier file of dcgan (metadata 'format' is not '{FORMAT}'); use models/mnist-classifier.safetensors from the package")));
        }
        let get = |name: &str, want: &[i64]| -> Result<Tensor> {
            let t = loaded.tensors.get(name).ok_or_else(|| Error::file(path, format!("lacks the tensor '{name}'")))?;
            if t.size() != want {
                return Err(Error::file(path, format!("'{name}' has shape {:?}, expected {want:?}", t.size())));
            }
            Ok(t.shallow_clone())
        };
        let mut params = Vec::new();
        for (i, (name, _, _)) in PARAMS.iter().enumerate() {
            params.push(get(name, shape(i))?.f_to_kind(Kind::Float)?.f_to_device(device)?);
        }
        let mut references = BTreeMap::new();
        for name in loaded.tensors.keys() {
            let Some(side) = name.strip_prefix("reference.").and_then(|r| r.strip_suffix(".mean")) else { continue };
            let side: i64 = side.parse().map_err(|_| Error::file(path, format!("bad tensor name '{name}'")))?;
            let mean = get(name, &[FEATURES])?;
            let cov = get(&format!("reference.{side}.cov"), &[FEATURES, FEATURES])?;
            references.insert(side, Gaussian::new(&mean, &cov).map_err(|e| Error::file(path, e))?);
        }
        if references.is_empty() {
            return Err(Error::file(path, "holds no reference statistics ('reference.<side>.mean')"));
        }
        Ok((Classifier { params }, References(references), loaded.metadata))
    }

    /// Writes the weights, the reference Gaussians (float64) and `metadata` to a safetensors file.
    pub fn save(&self, path: &Path, references: &References, mut metadata: HashMap<String, String>) -> Result<()> {
        let mut tensors: Vec<(String, Tensor)> =
            PARAMS.iter().zip(&self.params).map(|(p, t)| (p.0.to_string(), t.shallow_clone())).collect();
        for (side, g) in &references.0 {
            tensors.push((format!("reference.{side}.mean"), g.mean.shallow_clone()));
            tensors.push((format!("reference.{side}.cov"), g.cov.shallow_clone()));
        }
        metadata.insert("format".into(), FORMAT.into());
        weights::save(path, &tensors, metadata)
    }

    /// The penultimate features (n×128, after the ReLU) of images n×1×28×28.
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let size = x.size();
        if size.len() != 4 || size[1..] != [1, INPUT_SIZE, INPUT_SIZE] || size[0] < 1 {
            return Err(Error::Input(format!("the classifier's input has shape {size:?}; expected [n, 1, 28, 28]")));
        }
        let p = &self.params;
        let h = x.f_conv2d(&p[0], Some(&p[1]), [1, 1], [0, 0], [1, 1], 1)?.f_relu()?;
        let h = h.f_max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)?;
        let h = h.f_conv2d(&p[2], Some(&p[3]), [1, 1], [0, 0], [1, 1], 1)?.f_relu()?;
        let h = h.f_max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)?;
        Ok(h.f_flatten(1, -1)?.f_linear(&p[4], Some(&p[5]))?.f_relu()?)
    }

    /// Class logits (n×10) from features.
    pub fn logits(&self, features: &Tensor) -> Result<Tensor> {
        Ok(features.f_linear(&self.params[6], Some(&self.params[7]))?)
    }

    /// The device the classifier's weights are on.
    pub fn device(&self) -> Device {
        self.params[0].device()
    }

    /// Features and class probabilities of `x` (n×1×28×28, on any device), in batches of `batch`
    /// on the classifier's device, without gradients; both on the host.
    pub fn predict(&self, x: &Tensor, batch: i64) -> Result<(Tensor, Tensor)> {
        let n = x.size().first().copied().unwrap_or(0);
        let device = self.device();
        let (mut feats, mut probs) = (Vec::new(), Vec::new());
        tch::no_grad(|| -> Result<()> {
            let mut start = 0;
            while start < n {
                let len = batch.min(n - start);
                let f = self.features(&x.f_narrow(0, start, len)?.f_to_device(device)?)?;
                probs.push(self.logits(&f)?.f_softmax(1, Kind::Float)?.f_to_device(Device::Cpu)?);
                feats.push(f.f_to_device(Device::Cpu)?);
                start += len;
            }
            Ok(())
        })?;
        Ok((Tensor::f_cat(&feats, 0)?, Tensor::f_cat(&probs, 0)?))
    }

    /// The fraction of `x` whose most probable class is `labels`.
    pub fn accuracy(&self, x: &Tensor, labels: &Tensor) -> Result<f64> {
        let (_, probs) = self.predict(x, 1000)?;
        let right = probs.f_argmax(1, false)?.f_eq_tensor(&labels.f_to_device(probs.device())?)?;
        Ok(right.f_to_kind(Kind::Double)?.f_mean(Kind::Double)?.f_double_value(&[])?)
    }
}

/// Images of any side S (n×1×S×S) resized to the classifier's 28×28: bilinear, antialiased when
/// shrinking (as PIL and torchvision's `Resize` do).
pub fn to_input(images: &Tensor) -> Result<Tensor> {
    let size = images.size();
    if size.len() != 4 || size[1] != 1 || size[0] < 1 || size[2] < 1 || size[3] < 1 {
        return Err(Error::Input(format!(
            "the images have shape {size:?}; the MNIST classifier takes grayscale images [n, 1, S, S]"
        )));
    }
    let x = images.f_to_kind(Kind::Float)?;
    Ok(match (size[2], size[3]) {
        (INPUT_SIZE, INPUT_SIZE) => x,
        (h, w) if h > INPUT_SIZE || w > INPUT_SIZE => {
            x.f_internal_upsample_bilinear2d_aa([INPUT_SIZE, INPUT_SIZE], false, None, None)?
        }
        _ => x.f_upsample_bilinear2d([INPUT_SIZE, INPUT_SIZE], false, None, None)?,
    })
}

/// Trains a new classifier on `images` (n×1×28×28 in [−1, 1]) and `labels` (n, int64) with Adam
/// and cross-entropy; `progress(epoch, batch, batches, loss)` is called every 100 batches.
pub fn train(images: &Tensor, labels: &Tensor, s: &TrainSettings, mut progress: impl FnMut(usize, usize, usize, f64)) -> Result<Classifier> {
    let n = images.size()[0] as usize;
    if labels.size() != [n as i64] {
        return Err(Error::Input(format!("{n} images but labels of shape {:?}", labels.size())));
    }
    let device = images.device();
    let mut model = Classifier::new(s.seed, device)?;
    // The library's own Adam (torch.optim.Adam's arithmetic), with PyTorch's default betas.
    let hyper = AdamHyper { lr: s.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    let mut adam = Adam::new(model.params.iter_mut().collect(), hyper, false)?;
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed.wrapping_add(1));
    let batches = n / s.batch_size;
    for epoch in 0..s.epochs {
        let mut order: Vec<i64> = (0..n as i64).collect();
        order.shuffle(&mut rng);
        let order = Tensor::f_from_slice(&order)?.f_to_device(device)?;
        for b in 0..batches {
            let idx = order.f_narrow(0, (b * s.batch_size) as i64, s.batch_size as i64)?;
            let (x, y) = (images.f_index_select(0, &idx)?, labels.f_index_select(0, &idx)?);
            let logits = model.logits(&model.features(&x)?)?;
            let loss = logits.f_cross_entropy_loss::<Tensor>(&y, None, Reduction::Mean, -100, 0.0)?;
            let grads = Tensor::f_run_backward(&[&loss], &adam.params, false, false)?;
            adam.update(&grads)?;
            if b % 100 == 0 || b + 1 == batches {
                progress(epoch, b, batches, loss.f_double_value(&[])?);
            }
        }
    }
    Ok(model)
}

/// Reference statistics by image side S: the classifier's features of the MNIST training images
/// prepared as training data of side S is (bilinear resize to S×S, as the data loader does) and
/// resized back to 28×28 as generated images of side S are. Side 28 is the images as they are.
pub struct References(pub BTreeMap<i64, Gaussian>);

impl References {
    /// The reference for images of side `side`.
    pub fn get(&self, side: i64) -> Result<&Gaussian> {
        self.0.get(&side).ok_or_else(|| {
            let sides: Vec<String> = self.0.keys().map(|s| s.to_string()).collect();
            Error::Input(format!("the classifier has no reference statistics for {side}×{side} images; it has them for sides {}", sides.join(", ")))
        })
    }
}

/// The reference Gaussian of side `side` (see [`References`]) from all images of `source`,
/// featurised in chunks of 1000.
pub fn reference(model: &Classifier, source: &dyn crate::data::Source, side: i64) -> Result<Gaussian> {
    let n = source.len();
    let mut feats = Vec::new();
    let mut start = 0;
    while start < n {
        let idx: Vec<usize> = (start..n.min(start + 1000)).collect();
        let pixels = super::read_prepared(source, &idx, 1, side as u32)?;
        let x = Tensor::f_from_slice(&pixels)?.f_view([idx.len() as i64, 1, side, side])?;
        feats.push(model.predict(&to_input(&x)?, 1000)?.0);
        start += idx.len();
    }
    Gaussian::fit(&Tensor::f_cat(&feats, 0)?)
}
