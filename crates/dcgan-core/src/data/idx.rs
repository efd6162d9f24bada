//! IDX image files (the MNIST format), plain or gzip-compressed. Images are read one by one at
//! their offsets, so memory stays bounded whatever the file's size: a `.gz` file is inflated
//! once, as a stream, into an unlinked temporary file, and read from there.
use crate::error::{Error, Result};
use crate::limits;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const HEADER: usize = 16;

pub struct IdxImages {
    path: PathBuf,
    /// The uncompressed file: the original, or the inflated temporary copy of a `.gz`.
    file: File,
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Images, rows and columns from a 16-byte header, and the bytes the file must have; checked
/// against the limits (one image at most `MAX_IMAGE_BYTES`, indices that fit 32 bits).
fn parse_header(header: &[u8], bad: impl Fn(String) -> Error) -> Result<(usize, usize, usize, u64)> {
    let magic = be_u32(&header[0..4]);
    if magic != IMAGES_MAGIC {
        return Err(bad(format!(
            "not an IDX image file: magic number 0x{magic:08x}, expected 0x{IMAGES_MAGIC:08x} (unsigned bytes, 3 dimensions)"
        )));
    }
    let (count, rows, cols) = (be_u32(&header[4..8]) as u64, be_u32(&header[8..12]) as u64, be_u32(&header[12..16]) as u64);
    if count == 0 || rows == 0 || cols == 0 {
        return Err(bad(format!("holds no images (count {count}, {rows}×{cols})")));
    }
    let image = rows * cols; // both < 2^32: no overflow
    if image > limits::MAX_IMAGE_BYTES {
        return Err(bad(format!(
            "announces images of {rows}×{cols} ({}), more than the {} one image may have",
            limits::human(image),
            limits::human(limits::MAX_IMAGE_BYTES)
        )));
    }
    let needed = limits::product(&[count, image]).and_then(|v| v.checked_add(HEADER as u64)).ok_or_else(|| bad(format!("implausible header: {count} images of {rows}×{cols}")))?;
    Ok((count as usize, rows as usize, cols as usize, needed))
}

impl IdxImages {
    pub fn open(path: &Path) -> Result<IdxImages> {
        let bad = |m: String| Error::file(path, m);
        let (file, len) = limits::open_regular(path, u64::MAX)?;
        let gz = path.extension().is_some_and(|e| e == "gz");
        let mut reader: Box<dyn Read> = if gz { Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file.try_clone().map_err(|e| bad(e.to_string()))?))) } else { Box::new(file.try_clone().map_err(|e| bad(e.to_string()))?) };
        let mut header = [0u8; HEADER];
        reader.read_exact(&mut header).map_err(|e| {
            if gz && e.kind() != std::io::ErrorKind::UnexpectedEof {
                bad(format!("not a readable gzip file: {e}"))
            } else if gz {
                bad("truncated: it inflates to less than the 16-byte IDX header".into())
            } else {
                bad(format!("truncated: {len} bytes, shorter than the 16-byte IDX header"))
            }
        })?;
        let (count, rows, cols, needed) = parse_header(&header, bad)?;
        let file = if gz { inflate(path, &header, reader, needed)? } else {
            if len < needed {
                return Err(bad(format!("truncated: the header announces {count} images of {rows}×{cols} ({needed} bytes) but the file has {len}")));
            }
            file
        };
        Ok(IdxImages { path: path.to_path_buf(), file, count, rows, cols })
    }

    pub fn image_len(&self) -> usize {
        self.rows * self.cols
    }

    /// Copies image `i` (row-major bytes) into `out`.
    pub fn read_into(&self, i: usize, out: &mut [u8]) -> Result<()> {
        let len = self.image_len();
        let offset = (HEADER + i * len) as u64;
        self.file.read_exact_at(&mut out[..len], offset).map_err(|e| {
            let why = if e.kind() == std::io::ErrorKind::UnexpectedEof { "the file was truncated after it was opened".to_string() } else { e.to_string() };
            Error::file(&self.path, format!("cannot read image {i}: {why}"))
        })
    }
}

/// Inflates the rest of a `.gz` IDX stream (after `header`) into an unlinked temporary file of
/// `needed` bytes, through a small buffer; the disk must have room for it, and a stream that
/// holds more than the header announces is cut there (a gzip bomb inflates no further).
fn inflate(path: &Path, header: &[u8], reader: Box<dyn Read>, needed: u64) -> Result<File> {
    let dir = std::env::temp_dir();
    let tmp = dir.join(format!(".dcgan-idx-{}-{}", std::process::id(), TEMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&tmp).map_err(|e| Error::file(&tmp, format!("cannot create a temporary file to inflate {} into: {e}", path.display())))?;
    let _ = std::fs::remove_file(&tmp); // the open file stays readable; nothing is left behind
    check_room(path, &dir, &file, needed)?;
    let mut out = std::io::BufWriter::new(&file);
    let copy = || -> std::io::Result<u64> {
        out.write_all(header)?;
        let n = std::io::copy(&mut reader.take(needed - HEADER as u64), &mut out)?;
        out.flush()?;
        Ok(n)
    };
    let copied = copy().map_err(|e| Error::file(path, format!("not a readable gzip file: {e}")))?;
    drop(out);
    if copied + (HEADER as u64) < needed {
        return Err(Error::file(path, format!("truncated: the header announces {needed} bytes but the file inflates to {}", copied + HEADER as u64)));
    }
    Ok(file)
}

static TEMP_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The inflated copy must leave a twentieth of its file system free (other programs write there
/// too), and on a tmpfs, which lives in memory, fit the memory limit as well.
fn check_room(path: &Path, dir: &Path, file: &File, needed: u64) -> Result<()> {
    let Some(room) = TempRoom::of(file) else { return Ok(()) };
    let keep = room.total / 20;
    if room.free.saturating_sub(keep) < needed {
        return Err(Error::file(path, format!(
            "inflates to {} (as its header announces), but {} has {} free, of which {} stays free; \
             set TMPDIR to a larger disk, or unpack the file (gunzip) and give the .idx file",
            limits::human(needed), dir.display(), limits::human(room.free), limits::human(keep)
        )));
    }
    if room.in_memory {
        let what = format!("inflating it into {}, a file system in memory (tmpfs),", dir.display());
        limits::within_memory(needed, &what, |m| Error::file(path, format!("{m}; set TMPDIR to a folder on disk, or unpack the file (gunzip)")))?;
    }
    Ok(())
}

/// Size and free space of a temporary file's file system, and whether it is a tmpfs.
struct TempRoom {
    total: u64,
    free: u64,
    in_memory: bool,
}

impl TempRoom {
    /// None when the file system cannot be asked.
    fn of(file: &File) -> Option<TempRoom> {
        use std::os::fd::AsRawFd;
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: a valid descriptor and a struct to fill.
        if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
            return None;
        }
        // Block counts are in fragment units (statvfs's f_frsize); f_bsize is only the I/O size.
        let block = if st.f_frsize > 0 { st.f_frsize as u64 } else { st.f_bsize as u64 };
        Some(TempRoom {
            total: (st.f_blocks as u64).saturating_mul(block),
            free: (st.f_bavail as u64).saturating_mul(block),
            in_memory: st.f_type as i64 == libc::TMPFS_MAGIC as i64,
        })
    }
}

impl super::Source for IdxImages {
    fn len(&self) -> usize {
        self.count
    }

    fn read(&self, index: usize) -> Result<super::RawImage> {
        let mut pixels = vec![0u8; self.image_len()];
        self.read_into(index, &mut pixels)?;
        Ok(super::RawImage { width: self.cols as u32, height: self.rows as u32, channels: 1, pixels })
    }

    fn describe(&self, index: usize) -> String {
        format!("{} image {index}", self.path.display())
    }
}
