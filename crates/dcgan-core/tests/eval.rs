//! Tests of the evaluation's statistics against answers known in closed form.
use dcgan_core::eval::stats::{class_histogram, classes_covered, frechet_distance, frechet_distance_of_features, inception_score, Gaussian};
use dcgan_core::eval::{choose, classifier};
use tch::{Device, Kind, Tensor};

fn vec64(v: &[f64]) -> Tensor {
    Tensor::from_slice(v)
}

fn diag(v: &[f64]) -> Tensor {
    vec64(v).diag(0)
}

fn close(got: f64, want: f64, tol: f64) {
    assert!((got - want).abs() <= tol * want.abs().max(1.0), "got {got}, want {want}");
}

#[test]
fn frechet_of_diagonal_gaussians_is_analytic() {
    // |μ1 − μ2|² + Σ (√a − √b)² for diagonal covariances a, b.
    let (m1, m2) = ([0.5, -1.0, 2.0, 0.0], [1.5, 1.0, 2.0, -3.0]);
    let (a, b) = ([1.0, 4.0, 0.25, 9.0], [4.0, 1.0, 0.25, 2.0]);
    let want: f64 = m1.iter().zip(&m2).map(|(x, y)| (x - y) * (x - y)).sum::<f64>()
        + a.iter().zip(&b).map(|(x, y): (&f64, &f64)| (x.sqrt() - y.sqrt()).powi(2)).sum::<f64>();
    let g1 = Gaussian::new(&vec64(&m1), &diag(&a)).unwrap();
    let g2 = Gaussian::new(&vec64(&m2), &diag(&b)).unwrap();
    close(frechet_distance(&g1, &g2).unwrap(), want, 1e-12);
    close(frechet_distance(&g2, &g1).unwrap(), want, 1e-12);
    assert!(frechet_distance(&g1, &g1).unwrap() < 1e-12);
}

#[test]
fn frechet_with_rotated_covariance_is_analytic() {
    // Σ1 = I, Σ2 = R diag(λ) Rᵀ: the distance is Σ (1 − √λ)² (no mean difference).
    let t = 0.7f64;
    let r = Tensor::from_slice(&[t.cos(), -t.sin(), t.sin(), t.cos()]).view([2, 2]);
    let lambda = [9.0, 0.16];
    let s2 = r.mm(&diag(&lambda)).mm(&r.tr());
    let g1 = Gaussian::new(&vec64(&[0.0, 0.0]), &diag(&[1.0, 1.0])).unwrap();
    let g2 = Gaussian::new(&vec64(&[0.0, 0.0]), &s2).unwrap();
    let want = (1.0f64 - 3.0).powi(2) + (1.0f64 - 0.4).powi(2);
    close(frechet_distance(&g1, &g2).unwrap(), want, 1e-10);
    close(frechet_distance(&g2, &g1).unwrap(), want, 1e-10);
}

#[test]
fn frechet_rejects_mismatched_dimensions() {
    let g1 = Gaussian::new(&vec64(&[0.0, 0.0]), &diag(&[1.0, 1.0])).unwrap();
    let g2 = Gaussian::new(&vec64(&[0.0]), &diag(&[1.0])).unwrap();
    let e = frechet_distance(&g1, &g2).unwrap_err().to_string();
    assert!(e.contains("2 and 1 dimensions"), "{e}");
    let e = Gaussian::new(&vec64(&[0.0, 0.0]), &diag(&[1.0])).unwrap_err().to_string();
    assert!(e.contains("mean of shape [d] and a covariance [d, d]"), "{e}");
}

#[test]
fn fit_matches_numpy_cov_and_both_forms_agree() {
    tch::manual_seed(3);
    let x = Tensor::randn([40, 3], (Kind::Double, Device::Cpu));
    let g = Gaussian::fit(&x).unwrap();
    // numpy.cov(x, rowvar=False): divisor n − 1.
    let c = &x - x.mean_dim(0, true, Kind::Double);
    let want = c.tr().mm(&c) / 39.0;
    assert!(f64::try_from((&g.cov - want).abs().max()).unwrap() < 1e-12);
    // Features wider than the sample counts: the n×n form gives the d×d form's number.
    let a = Tensor::randn([30, 50], (Kind::Double, Device::Cpu));
    let b = Tensor::randn([20, 50], (Kind::Double, Device::Cpu)) * 1.5 + 0.3;
    let wide = frechet_distance_of_features(&a, &b).unwrap();
    let full = frechet_distance(&Gaussian::fit(&a).unwrap(), &Gaussian::fit(&b).unwrap()).unwrap();
    // (Σ1, Σ2 are singular here: the d×d form's square roots lose a little precision.)
    close(wide, full, 1e-7);
    close(frechet_distance_of_features(&b, &a).unwrap(), full, 1e-7);
    assert!(frechet_distance_of_features(&a, &a).unwrap() < 1e-9);
}

#[test]
fn inception_score_of_known_tables() {
    // Every row the same (uniform): p(y|x) = p(y), KL 0, IS 1.
    assert_eq!(inception_score(&Tensor::full([50, 10], 0.1, (Kind::Double, Device::Cpu))).unwrap(), 1.0);
    // Any identical rows: IS 1.
    let row = vec64(&[0.7, 0.2, 0.1]).unsqueeze(0).repeat([8, 1]);
    close(inception_score(&row).unwrap(), 1.0, 1e-12);
    // One-hot rows spread evenly over k classes: IS k.
    for k in [1i64, 2, 5, 10] {
        let labels = Tensor::arange(4 * k, (Kind::Int64, Device::Cpu)).remainder(k);
        let onehot = labels.one_hot(10).to_kind(Kind::Double);
        close(inception_score(&onehot).unwrap(), k as f64, 1e-12);
    }
    // One-hot rows, 3 of class 0 and 1 of class 1: exp(H(p(y))) = exp(−¾ln¾ − ¼ln¼).
    let t = Tensor::from_slice(&[0i64, 0, 0, 1]).one_hot(2).to_kind(Kind::Double);
    close(inception_score(&t).unwrap(), (-(0.75f64 * 0.75f64.ln() + 0.25 * 0.25f64.ln())).exp(), 1e-12);
    let e = inception_score(&vec64(&[0.5, -0.5, 0.5, 0.5]).view([2, 2])).unwrap_err().to_string();
    assert!(e.contains("negative"), "{e}");
}

#[test]
fn histogram_and_coverage() {
    // 40 samples over 10 classes: a class is covered with at least 40 / 10 / 4 = 1 sample.
    let labels: Vec<i64> = (0..40).map(|i| if i < 31 { 0 } else { 1 + (i - 31) % 9 }).collect();
    let probs = Tensor::from_slice(&labels).one_hot(10).to_kind(Kind::Float);
    let h = class_histogram(&probs).unwrap();
    assert_eq!(h, vec![31, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    assert_eq!(classes_covered(&h), 10);
    // 2000 samples: covered needs ≥ 50.
    assert_eq!(classes_covered(&[1500, 50, 49, 401, 0, 0, 0, 0, 0, 0]), 3);
    assert_eq!(classes_covered(&[0; 10]), 0);
}

#[test]
fn choose_is_seeded_and_distinct() {
    let a = choose(10_000, 500, 7);
    assert_eq!(a, choose(10_000, 500, 7));
    assert_ne!(a, choose(10_000, 500, 8));
    let mut s = a.clone();
    s.sort();
    s.dedup();
    assert_eq!(s.len(), 500);
    assert!(a.iter().all(|&i| i < 10_000));
}

#[test]
fn classifier_resizes_and_shapes() {
    let c = classifier::Classifier::new(0, Device::Cpu).unwrap();
    for side in [16i64, 28, 32, 64] {
        let x = Tensor::zeros([3, 1, side, side], (Kind::Float, Device::Cpu));
        let input = classifier::to_input(&x).unwrap();
        assert_eq!(input.size(), [3, 1, 28, 28]);
        let (f, p) = c.predict(&input, 2).unwrap();
        assert_eq!((f.size(), p.size()), (vec![3, 128], vec![3, 10]));
    }
    let e = classifier::to_input(&Tensor::zeros([2, 3, 32, 32], (Kind::Float, Device::Cpu))).unwrap_err().to_string();
    assert!(e.contains("grayscale"), "{e}");
}
