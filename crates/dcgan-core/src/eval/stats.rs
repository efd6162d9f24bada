//! The numbers of an evaluation, in float64 on libtorch: Gaussians fitted to features and the
//! Fréchet distance between them, the Inception Score of class probabilities, class histograms.
use crate::error::{Error, Result};
use tch::{Kind, Tensor};

/// A Gaussian N(mean, cov) fitted to features: `mean` is d, `cov` is d×d, both float64.
#[derive(Debug)]
pub struct Gaussian {
    pub mean: Tensor,
    pub cov: Tensor,
}

/// Rows of `x` as float64 on the CPU, checked to be an n×d matrix of finite values.
fn rows(x: &Tensor, what: &str) -> Result<Tensor> {
    let size = x.size();
    if size.len() != 2 || size[0] < 2 || size[1] < 1 {
        return Err(Error::Input(format!("{what} has shape {size:?}; expected [n, d] with n ≥ 2")));
    }
    let x = x.f_to_device(tch::Device::Cpu)?.f_to_kind(Kind::Double)?;
    crate::input::ensure_finite(&x, what)?;
    Ok(x)
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.f_double_value(&[])?)
}

/// Σ √max(λ, 0) over the eigenvalues λ of the symmetric matrix `m` (symmetrised first).
fn trace_sqrt_psd(m: &Tensor) -> Result<f64> {
    let sym = m.f_add(&m.f_transpose(0, 1)?)?.f_mul_scalar(0.5)?;
    let (values, _) = sym.f_linalg_eigh("L")?;
    scalar(&values.f_clamp_min(0.0)?.f_sqrt()?.f_sum(Kind::Double)?)
}

impl Gaussian {
    /// Mean and unbiased covariance (divisor n − 1, as `numpy.cov`) of the rows of `features` (n×d, n ≥ 2).
    pub fn fit(features: &Tensor) -> Result<Gaussian> {
        let x = rows(features, "the features")?;
        let n = x.size()[0];
        let mean = x.f_mean_dim(0, false, Kind::Double)?;
        let centred = x.f_sub(&mean)?;
        let cov = centred.f_transpose(0, 1)?.f_mm(&centred)?.f_div_scalar((n - 1) as f64)?;
        Ok(Gaussian { mean, cov })
    }

    /// A Gaussian from a given mean (d) and covariance (d×d), checked and converted to float64.
    pub fn new(mean: &Tensor, cov: &Tensor) -> Result<Gaussian> {
        let d = mean.size();
        if d.len() != 1 || cov.size() != [d[0], d[0]] {
            return Err(Error::Input(format!("a Gaussian needs a mean of shape [d] and a covariance [d, d]; got {d:?} and {:?}", cov.size())));
        }
        let mean = mean.f_to_device(tch::Device::Cpu)?.f_to_kind(Kind::Double)?;
        let cov = cov.f_to_device(tch::Device::Cpu)?.f_to_kind(Kind::Double)?;
        crate::input::ensure_finite(&mean, "the mean")?;
        crate::input::ensure_finite(&cov, "the covariance")?;
        Ok(Gaussian { mean, cov })
    }

    pub fn dim(&self) -> i64 {
        self.mean.size()[0]
    }
}

/// The Fréchet distance between N(μ1, Σ1) and N(μ2, Σ2):
/// |μ1 − μ2|² + Tr(Σ1 + Σ2 − 2 (Σ1^½ Σ2 Σ1^½)^½), with both square roots from symmetric
/// eigendecompositions in float64 (eigenvalues below 0, rounding errors of a PSD matrix, count as 0).
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> Result<f64> {
    if a.dim() != b.dim() {
        return Err(Error::Input(format!("the Gaussians have {} and {} dimensions; they must match", a.dim(), b.dim())));
    }
    let diff = a.mean.f_sub(&b.mean)?;
    let mean_term = scalar(&diff.f_dot(&diff)?)?;
    let sym = a.cov.f_add(&a.cov.f_transpose(0, 1)?)?.f_mul_scalar(0.5)?;
    let (values, vectors) = sym.f_linalg_eigh("L")?;
    let root = vectors.f_mul(&values.f_clamp_min(0.0)?.f_sqrt()?)?.f_mm(&vectors.f_transpose(0, 1)?)?;
    let cross = trace_sqrt_psd(&root.f_mm(&b.cov)?.f_mm(&root)?)?;
    let traces = scalar(&a.cov.f_trace()?)? + scalar(&b.cov.f_trace()?)?;
    Ok((mean_term + traces - 2.0 * cross).max(0.0))
}

/// The Fréchet distance between Gaussians fitted (as [`Gaussian::fit`]) to the rows of `x1`
/// (n1×d) and `x2` (n2×d). When d exceeds the sample counts it works on the n×n side instead of
/// building d×d covariances: with Σ1 = AᵀA and Σ2 = BᵀB (A, B the centred rows over √(n − 1)),
/// Tr (Σ1^½ Σ2 Σ1^½)^½ is the sum of the singular values of ABᵀ. Same number, less work.
pub fn frechet_distance_of_features(x1: &Tensor, x2: &Tensor) -> Result<f64> {
    let (x1, x2) = (rows(x1, "the first features")?, rows(x2, "the second features")?);
    let (n1, d) = (x1.size()[0], x1.size()[1]);
    let n2 = x2.size()[0];
    if x2.size()[1] != d {
        return Err(Error::Input(format!("the feature sets have {d} and {} dimensions; they must match", x2.size()[1])));
    }
    if d <= n1.max(n2) {
        return frechet_distance(&Gaussian::fit(&x1)?, &Gaussian::fit(&x2)?);
    }
    let centre = |x: &Tensor, n: i64| -> Result<(Tensor, Tensor)> {
        let mean = x.f_mean_dim(0, false, Kind::Double)?;
        Ok((x.f_sub(&mean)?.f_div_scalar(((n - 1) as f64).sqrt())?, mean))
    };
    let (a, m1) = centre(&x1, n1)?;
    let (b, m2) = centre(&x2, n2)?;
    let diff = m1.f_sub(&m2)?;
    let mean_term = scalar(&diff.f_dot(&diff)?)?;
    let traces = scalar(&a.f_square()?.f_sum(Kind::Double)?)? + scalar(&b.f_square()?.f_sum(Kind::Double)?)?;
    let k = a.f_mm(&b.f_transpose(0, 1)?)?;
    let gram = if n1 <= n2 { k.f_mm(&k.f_transpose(0, 1)?)? } else { k.f_transpose(0, 1)?.f_mm(&k)? };
    let cross = trace_sqrt_psd(&gram)?;
    Ok((mean_term + traces - 2.0 * cross).max(0.0))
}

/// The Inception Score of class probabilities `probs` (n×k, rows summing to 1):
/// exp(E_x[KL(p(y|x) ‖ p(y))]) with p(y) the mean row, over all n rows at once (one split).
/// 1 when every row is the same; k when the rows are one-hot and spread evenly over k classes.
pub fn inception_score(probs: &Tensor) -> Result<f64> {
    let p = rows(probs, "the class probabilities")?;
    if scalar(&p.f_lt(0.0)?.f_any()?.f_to_kind(Kind::Double)?)? > 0.0 {
        return Err(Error::Input("the class probabilities hold negative values".into()));
    }
    let marginal = p.f_mean_dim(0, true, Kind::Double)?;
    // xlogy(0, ·) = 0: classes a row gives no probability add nothing.
    let kl = p.f_xlogy(&p)?.f_sub(&p.f_xlogy(&marginal)?)?.f_sum_dim_intlist(1, false, Kind::Double)?;
    Ok(scalar(&kl.f_mean(Kind::Double)?)?.exp())
}

/// How many rows of `probs` (n×k) have their largest value in each of the k classes.
pub fn class_histogram(probs: &Tensor) -> Result<Vec<i64>> {
    let k = probs.size().get(1).copied().unwrap_or(0);
    let predicted = probs.f_argmax(1, false)?.f_to_device(tch::Device::Cpu)?;
    let counts = predicted.f_bincount::<Tensor>(None, k)?;
    Ok(Vec::<i64>::try_from(counts.f_to_kind(Kind::Int64)?)?)
}

/// Classes that hold at least a quarter of their uniform share of the samples:
/// count · k · 4 ≥ n. For 2000 samples and 10 classes: at least 50 samples of that class.
pub fn classes_covered(histogram: &[i64]) -> i64 {
    let n: i64 = histogram.iter().sum();
    let k = histogram.len() as i64;
    histogram.iter().filter(|&&c| n > 0 && c * k * 4 >= n).count() as i64
}
