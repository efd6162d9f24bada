//! Compiles the small C++ shim (csrc/shim.cpp) for the libtorch calls that tch does not expose
//! (src/ffi.rs lists them), against the same libtorch headers, C++ standard and ABI that
//! torch-sys uses.
use std::{env, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=csrc/shim.cpp");
    println!("cargo:rerun-if-changed=csrc/distributed.cpp");
    println!("cargo:rerun-if-changed=csrc/guard.h");
    println!("cargo:rerun-if-env-changed=DCGAN_TORCH_CXX11_ABI");
    let lib_dir = PathBuf::from(
        env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys did not report its libtorch directory"),
    );
    let root = lib_dir.parent().expect("libtorch lib dir has a parent").to_path_buf();
    // The PyPI wheels of torch >= 2.7 use the new C++11 ABI; scripts/setup.mjs reads it from torch.
    let abi = env::var("DCGAN_TORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .opt_level(2)
        // Gloo's headers are not in the wheel (csrc/gloo-decl/gloo/README.md).
        .include("csrc/gloo-decl")
        .file("csrc/shim.cpp")
        .file("csrc/distributed.cpp")
        .compile("dcgan_shim");
}
