//! Milliseconds of one 4×4 stride-2 (transposed) convolution's forward and backward, libtorch's
//! convolution against `ffi::conv_by_matmul` with given parts; the measurements behind the
//! thresholds in `layers.rs`:
//!
//!     node scripts/with-torch.mjs cargo run --release -p dcgan-core --example layer_bench -- \
//!         BATCH SMALL_CHANNELS BIG_CHANNELS SMALL_SIDE transposed|conv PARTS [THREADS]
//!
//! PARTS is the sum of 1 (weight gradient), 2 (transposed input gradient), 4 (scatter).
use dcgan_core::ffi::{channels_last, conv_by_matmul, MatmulParts};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn median_ms(mut f: impl FnMut(), reps: usize) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[reps / 2]
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let int = |i: usize| a[i].parse::<i64>().expect("an integer");
    let (n, small, big, side, transposed) = (int(0), int(1), int(2), int(3), a[4] == "transposed");
    let bits = int(5);
    let parts = [(1, MatmulParts::WEIGHT_GRAD), (2, MatmulParts::GATHER_GRAD), (4, MatmulParts::SCATTER)]
        .into_iter()
        .filter(|(bit, _)| bits & bit != 0)
        .fold(MatmulParts::NONE, |all, (_, part)| all | part);
    tch::set_num_threads(a.get(6).map_or(2, |t| t.parse().expect("threads")));
    let opts = (Kind::Float, Device::Cpu);
    let leaf = |t: Tensor| channels_last(&t).unwrap().set_requires_grad(true);
    let x = leaf(if transposed { Tensor::randn([n, small, side, side], opts) } else { Tensor::randn([n, big, 2 * side, 2 * side], opts) });
    let w = leaf(Tensor::randn([small, big, 4, 4], opts) * 0.02);
    let b = Tensor::randn([if transposed { big } else { small }], opts).set_requires_grad(true);
    let libtorch = |x: &Tensor| {
        if transposed {
            x.conv_transpose2d(&w, Some(&b), [2, 2], [1, 1], [0, 0], 1, [1, 1])
        } else {
            x.conv2d(&w, Some(&b), [2, 2], [1, 1], [1, 1], 1)
        }
    };
    let ours = |x: &Tensor| conv_by_matmul(x, &w, Some(&b), transposed, parts).unwrap();
    let up = channels_last(&libtorch(&x).randn_like()).unwrap();
    for (name, f) in [("libtorch", &libtorch as &dyn Fn(&Tensor) -> Tensor), ("matmul", &ours)] {
        let fwd = median_ms(|| drop(tch::no_grad(|| f(&x))), 7);
        let y = f(&x);
        let bwd_x = median_ms(|| drop(Tensor::run_backward(&[&y], &[&x], true, false)), 7);
        let y = f(&x);
        let grad = (&y * &up).sum(Kind::Float);
        let bwd_all = median_ms(|| drop(Tensor::run_backward(&[&grad], &[&x, &w, &b], true, false)), 7);
        println!("{name:9} forward {fwd:8.2} ms  input grad {bwd_x:8.2} ms  all grads {bwd_all:8.2} ms");
    }
}
