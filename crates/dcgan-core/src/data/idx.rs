//! IDX image files (the MNIST format), plain or gzip-compressed. Plain files are read image by
//! image at their offsets, so memory stays bounded whatever the file's size.
use crate::error::{Error, Result};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const HEADER: usize = 16;

enum Source {
    File(File),
    Memory(Vec<u8>),
}

pub struct IdxImages {
    path: PathBuf,
    source: Source,
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl IdxImages {
    pub fn open(path: &Path) -> Result<IdxImages> {
        let bad = |m: String| Error::file(path, m);
        let mut file = File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
        let gz = path.extension().is_some_and(|e| e == "gz");
        let (source, header, total) = if gz {
            let mut bytes = Vec::new();
            flate2::read::GzDecoder::new(file)
                .read_to_end(&mut bytes)
                .map_err(|e| bad(format!("not a readable gzip file: {e}")))?;
            let header = bytes.get(..HEADER).map(|h| h.to_vec());
            let total = bytes.len() as u64;
            (Source::Memory(bytes), header, total)
        } else {
            let total = file.metadata().map_err(|e| bad(e.to_string()))?.len();
            let mut h = vec![0u8; HEADER];
            let header = file.read_exact(&mut h).ok().map(|_| h);
            (Source::File(file), header, total)
        };
        let header = header.ok_or_else(|| bad(format!("truncated: {total} bytes, shorter than the 16-byte IDX header")))?;
        let magic = be_u32(&header[0..4]);
        if magic != IMAGES_MAGIC {
            return Err(bad(format!(
                "not an IDX image file: magic number 0x{magic:08x}, expected 0x{IMAGES_MAGIC:08x} (unsigned bytes, 3 dimensions)"
            )));
        }
        let (count, rows, cols) = (be_u32(&header[4..8]) as usize, be_u32(&header[8..12]) as usize, be_u32(&header[12..16]) as usize);
        if count == 0 || rows == 0 || cols == 0 {
            return Err(bad(format!("holds no images (count {count}, {rows}×{cols})")));
        }
        let needed = (count as u64)
            .checked_mul(rows as u64)
            .and_then(|v| v.checked_mul(cols as u64))
            .and_then(|v| v.checked_add(HEADER as u64))
            .ok_or_else(|| bad(format!("implausible header: {count} images of {rows}×{cols}")))?;
        if total < needed {
            return Err(bad(format!("truncated: the header announces {count} images of {rows}×{cols} ({needed} bytes) but the file has {total}")));
        }
        Ok(IdxImages { path: path.to_path_buf(), source, count, rows, cols })
    }

    pub fn image_len(&self) -> usize {
        self.rows * self.cols
    }

    /// Copies image `i` (row-major bytes) into `out`.
    pub fn read_into(&self, i: usize, out: &mut [u8]) -> Result<()> {
        let len = self.image_len();
        let offset = HEADER + i * len;
        match &self.source {
            Source::Memory(bytes) => out[..len].copy_from_slice(&bytes[offset..offset + len]),
            Source::File(f) => f
                .read_exact_at(&mut out[..len], offset as u64)
                .map_err(|e| Error::file(&self.path, format!("cannot read image {i}: {e}")))?,
        }
        Ok(())
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
