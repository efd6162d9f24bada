//! libtorch's CUDA library, loaded at run time. The addon links libtorch's CPU libraries only, so
//! one binary serves a CPU-only install (no libtorch_cuda.so, no 2.7 GB of NVIDIA libraries) and
//! a CUDA one. libtorch registers its CUDA backend from static initialisers of libtorch_cuda.so,
//! which therefore has to be loaded even though no symbol of it is used; loading it explicitly
//! (RTLD_GLOBAL, before the first CUDA query) is the documented remedy. It is looked for beside
//! the libtorch_cpu.so this process loaded. Unverified on a GPU machine: see README.
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::OnceLock;

/// What `DCGAN_TORCH=cuda npm rebuild dcgan` installs: said in every error about it.
pub const HOW_TO_GET_CUDA: &str = "install libtorch with CUDA: DCGAN_TORCH=cuda npm rebuild dcgan";

static LOADED: OnceLock<Result<(), String>> = OnceLock::new();

/// The folder holding the libtorch_cpu.so mapped into this process (from /proc/self/maps).
fn libtorch_lib_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| path.ends_with("/libtorch_cpu.so"))
        .and_then(|path| PathBuf::from(path).parent().map(PathBuf::from))
}

/// Loads libtorch_cuda.so once per process. The error names the missing or unloadable library.
pub fn load() -> Result<(), String> {
    LOADED.get_or_init(load_once).clone()
}

fn load_once() -> Result<(), String> {
    let dir = libtorch_lib_dir().ok_or("libtorch_cpu.so is not among this process's libraries")?;
    let path = dir.join("libtorch_cuda.so");
    if !path.exists() {
        return Err(format!("{} is missing (this libtorch is CPU-only); {HOW_TO_GET_CUDA}", path.display()));
    }
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| "the libtorch path holds a NUL byte".to_string())?;
    // SAFETY: dlopen with a valid C string; the handle is kept open for the life of the process.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns null or a C string valid until the next dl* call on this thread.
        let why = unsafe {
            let e = libc::dlerror();
            if e.is_null() { "unknown error".into() } else { CStr::from_ptr(e).to_string_lossy().into_owned() }
        };
        return Err(format!("{} could not be loaded ({why}); {HOW_TO_GET_CUDA}", path.display()));
    }
    Ok(())
}
