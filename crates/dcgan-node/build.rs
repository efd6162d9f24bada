//! Links the addon against libtorch's CPU libraries only, found at run time through a path
//! relative to the addon itself: `$ORIGIN/libtorch/lib`, where the install script
//! (scripts/setup.mjs) puts a link to the cached libtorch. No absolute path is written into the
//! addon, so the installed package can be moved or copied with what its link points to.
//! libtorch_cuda.so is not linked even when the libtorch folder has it: the core loads it at run
//! time when a CUDA device is asked for (crates/dcgan-core/src/cuda_lib.rs), so one binary serves
//! CPU-only and CUDA installs.
use std::env;

fn main() {
    napi_build::setup();
    env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys did not report its libtorch directory");
    // tch's own rpath and link flags do not reach a cdylib that uses it (tch-rs issue 984).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-rpath,$ORIGIN/libtorch/lib");
    // RUNPATH (searched after LD_LIBRARY_PATH), not the deprecated RPATH.
    println!("cargo:rustc-cdylib-link-arg=-Wl,--enable-new-dtags");
}
