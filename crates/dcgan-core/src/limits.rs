//! Limits on what an input can make this library allocate or read, in one place. Sizes that
//! come from a caller or a file (a model's widths, a batch, an IDX header, a checkpoint) are
//! checked against them before anything is allocated: a failed allocation in Rust aborts the
//! process, and one that the kernel grants lazily ends in the OOM killer; an error does neither.
use crate::error::{Error, Result};
use std::fs::File;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The environment variable that sets the memory limit: bytes, or a number with a unit
/// (`512M`, `8GiB`, `2T`; K/M/G/T are powers of 1024). Default: the machine's physical memory.
pub const MEMORY_LIMIT_ENV: &str = "DCGAN_MEMORY_LIMIT";

/// Largest decoded image (bytes of pixels) a loader accepts: the `image` crate's own default
/// allocation limit, applied to IDX images too.
pub const MAX_IMAGE_BYTES: u64 = 512 << 20;

/// The memory limit in bytes: `DCGAN_MEMORY_LIMIT`, or the machine's physical memory.
pub fn memory_limit() -> Result<u64> {
    match std::env::var(MEMORY_LIMIT_ENV) {
        Ok(text) => parse_size(&text).ok_or_else(|| {
            Error::config(MEMORY_LIMIT_ENV, format!("got '{text}'; allowed: a number of bytes, optionally with a unit K, M, G or T (e.g. 8G)"))
        }),
        Err(_) => Ok(physical_memory()),
    }
}

fn physical_memory() -> u64 {
    // SAFETY: sysconf only reads system constants.
    let (pages, page) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    if pages > 0 && page > 0 { pages as u64 * page as u64 } else { u64::MAX }
}

/// `8G`, `512MiB`, `1.5T`, `1000000` → bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().ok()?;
    let shift = match unit.trim().to_ascii_uppercase().trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    let bytes = value * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// Bytes in a human unit, for messages.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{bytes} bytes") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// Fails when `bytes` (what `what` needs) exceeds the memory limit, with the error `error`
/// makes of the reason (so that it names the caller's field or file).
pub fn within_memory(bytes: u64, what: &str, error: impl FnOnce(String) -> Error) -> Result<()> {
    let limit = memory_limit()?;
    if bytes <= limit {
        return Ok(());
    }
    let source = if std::env::var(MEMORY_LIMIT_ENV).is_ok() { MEMORY_LIMIT_ENV.to_string() } else { format!("this machine's memory; {MEMORY_LIMIT_ENV} changes it") };
    Err(error(format!("{what} needs about {}, more than the memory limit of {} ({source})", human(bytes), human(limit))))
}

/// `within_memory` for work on GPU `device_index`: against the GPU's whole memory, and the
/// memory limit too when `DCGAN_MEMORY_LIMIT` sets one (the machine's RAM does not bound a GPU).
pub fn within_device_memory(bytes: u64, device_index: usize, what: &str, error: impl Fn(String) -> Error) -> Result<()> {
    if std::env::var(MEMORY_LIMIT_ENV).is_ok() {
        within_memory(bytes, what, &error)?;
    }
    let total = device_total_memory(device_index)?;
    if bytes <= total {
        return Ok(());
    }
    Err(error(format!("{what} needs about {}, more than the {} of GPU cuda:{device_index}: give fewer images at once", human(bytes), human(total))))
}

/// GPU `device_index`'s whole memory, asked once: the check runs before every step, and a driver
/// query there would cost time (and could not be made inside a CUDA graph's capture).
fn device_total_memory(device_index: usize) -> Result<u64> {
    static TOTALS: std::sync::Mutex<Vec<(usize, u64)>> = std::sync::Mutex::new(Vec::new());
    let mut totals = TOTALS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(&(_, total)) = totals.iter().find(|(i, _)| *i == device_index) {
        return Ok(total);
    }
    let (_, total) = crate::ffi::device_memory(device_index)?;
    totals.push((device_index, total));
    Ok(total)
}

/// `a × b × …` in u64, or None on overflow.
pub fn product(factors: &[u64]) -> Option<u64> {
    factors.iter().try_fold(1u64, |a, &b| a.checked_mul(b))
}

/// Opens `path` for reading if it is a regular file no longer than `max` bytes, and returns its
/// length. A FIFO or device (`/dev/zero`) is refused without blocking: the file is opened
/// non-blocking, then checked with fstat, so that a FIFO with no writer cannot hang the caller.
pub fn open_regular(path: &Path, max: u64) -> Result<(File, u64)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::file(path, format!("cannot open: {e}")))?;
    let meta = file.metadata().map_err(|e| Error::file(path, format!("cannot read its metadata: {e}")))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a folder"
        } else if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(Error::file(path, format!("is {what}; only regular files are read")));
    }
    if meta.len() > max {
        return Err(Error::file(path, format!("is {}, more than the {} this kind of file may have", human(meta.len()), human(max))));
    }
    Ok((file, meta.len()))
}

/// Reads the whole of a regular file of at most `max` bytes (see `open_regular`).
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let (file, len) = open_regular(path, max)?;
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(len as usize).map_err(|_| Error::file(path, format!("cannot allocate {} to read it", human(len))))?;
    // `take`: a file that grows while it is read cannot push past what was checked.
    file.take(len).read_to_end(&mut bytes).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("1.5k"), Some(1536));
        assert_eq!(parse_size("2 TB"), Some(2 << 40));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("0"), None);
        assert_eq!(parse_size("-1G"), None);
    }

    #[test]
    fn devices_and_fifos_are_refused_without_blocking() {
        let e = open_regular(Path::new("/dev/zero"), 1 << 20).err().expect("a device is refused").to_string();
        assert!(e.contains("/dev/zero: is a device"), "{e}");
        let dir = std::env::temp_dir().join(format!("dcgan-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("x.png");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open_regular(&fifo, 1 << 20).err().expect("a FIFO is refused").to_string();
        assert!(e.contains("is a FIFO"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
