//! Links the addon so that `require('dcgan')` finds libtorch with no LD_LIBRARY_PATH, and CUDA
//! works where present: tch's own rpath and link flags do not reach a cdylib that uses it.
use std::env;

fn main() {
    napi_build::setup();
    let lib_dir = env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys did not report its libtorch directory");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-rpath,{lib_dir}");
    // libtorch_cuda registers the CUDA backend from static initialisers; no symbol of it is used
    // directly, so --as-needed would drop it and CUDA would look unavailable at run time.
    if std::path::Path::new(&lib_dir).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
