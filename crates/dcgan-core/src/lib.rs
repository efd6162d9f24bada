//! dcgan-core: the DCGAN of Radford et al. as the seed writes it, on libtorch through tch.
//! Models, the training step, Adam and weight files; nothing here knows about Node.
pub mod adam;
pub mod augment;
pub mod config;
pub mod cuda_graph;
pub mod cuda_lib;
pub mod data;
pub mod device;
pub mod distributed;
pub mod error;
pub mod eval;
pub mod executor;
pub mod export;
pub mod ffi;
pub mod gan;
pub mod image;
pub mod input;
pub mod layers;
pub mod limits;
pub mod model;
pub mod options;
pub mod train;
pub mod weights;

pub use config::{AdversarialLoss, Augment, GeneratorLoss, Init, ModelConfig, Precision, TrainOptions};
pub use error::{Error, Result};
pub use gan::Gan;
pub use layers::NormMode;
pub use train::{GroupStep, StepStats};

/// The switches that measurements and bit-for-bit runs use (`DCGAN_FUSED_ADAM`,
/// `DCGAN_CONV_MATMUL`, …): on when environment variable `name` is set to anything but "0",
/// off when it is "0", `default` when it is unset.
pub(crate) fn env_switch(name: &str, default: bool) -> bool {
    std::env::var(name).map_or(default, |v| v != "0")
}

/// Sets the number of threads libtorch uses for intra-op parallelism on the CPU (process-wide).
pub fn set_threads(n: i32) -> Result<()> {
    if !(1..=1024).contains(&n) {
        return Err(Error::config("threads", format!("got {n}; allowed: an integer from 1 to 1024")));
    }
    tch::set_num_threads(n);
    Ok(())
}
