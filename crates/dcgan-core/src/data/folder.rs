//! A folder of PNG and JPEG images, searched recursively (the CelebA / LSUN way of working).
use super::{RawImage, Source};
use crate::error::{Error, Result};
use crate::limits;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::path::{Path, PathBuf};

pub struct ImageFolder {
    files: Vec<PathBuf>,
    /// What one decode may allocate (`Source::limit_decoding`); at most `MAX_IMAGE_BYTES`.
    decode_limit: AtomicU64,
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

/// Collects the images under `dir`. Symbolic links are followed, but each folder is entered
/// once (by device and inode), so links that loop neither repeat images nor recurse forever;
/// only regular files are listed (a FIFO named `x.png` would block its reader).
fn walk(dir: &Path, seen: &mut HashSet<(u64, u64)>, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(dir).map_err(|e| Error::file(dir, format!("cannot read: {e}")))?;
    if !seen.insert((meta.dev(), meta.ino())) {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::file(dir, format!("cannot list: {e}")))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::file(dir, e))?.path();
        let Ok(meta) = std::fs::metadata(&path) else { continue }; // a dangling link
        if meta.is_dir() {
            walk(&path, seen, out)?;
        } else if meta.is_file() && is_image(&path) {
            out.push(path);
        }
    }
    Ok(())
}

impl ImageFolder {
    pub fn open(root: &Path) -> Result<ImageFolder> {
        if !root.is_dir() {
            return Err(Error::file(root, "is not a folder"));
        }
        let mut files = Vec::new();
        walk(root, &mut HashSet::new(), &mut files)?;
        files.sort(); // the same order on every machine, whatever the file system returns
        if files.is_empty() {
            return Err(Error::file(root, "holds no .png, .jpg or .jpeg images (searched recursively)"));
        }
        Ok(ImageFolder { files, decode_limit: AtomicU64::new(limits::MAX_IMAGE_BYTES) })
    }
}

impl Source for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn read(&self, index: usize) -> Result<RawImage> {
        let path = &self.files[index];
        // A regular file, no larger than the largest decoded image: never a FIFO swapped in after
        // the folder was listed. The decoder's own limits bound the pixels.
        let (file, _) = limits::open_regular(path, limits::MAX_IMAGE_BYTES)?;
        let mut reader = image::ImageReader::new(std::io::BufReader::new(file))
            .with_guessed_format()
            .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
        let most = self.decode_limit.load(Ordering::Relaxed);
        let mut bounds = image::Limits::default();
        bounds.max_alloc = Some(most);
        reader.limits(bounds);
        let img = reader.decode().map_err(|e| match e {
            image::ImageError::Limits(_) => Error::file(
                path,
                format!(
                    "cannot decode image: it needs more than the {} one image may take here (the memory limit shared among \
                     the loader's threads: fewer workers, a smaller batch or a larger {} leave more)",
                    limits::human(most),
                    limits::MEMORY_LIMIT_ENV
                ),
            ),
            e => Error::file(path, format!("cannot decode image: {e}")),
        })?;
        let (width, height) = (img.width(), img.height());
        Ok(if img.color().has_color() {
            RawImage { width, height, channels: 3, pixels: img.into_rgb8().into_raw() }
        } else {
            RawImage { width, height, channels: 1, pixels: img.into_luma8().into_raw() }
        })
    }

    fn describe(&self, index: usize) -> String {
        self.files[index].display().to_string()
    }

    fn limit_decoding(&self, bytes_per_image: u64) {
        self.decode_limit.store(bytes_per_image.min(limits::MAX_IMAGE_BYTES), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gray PNG of `side`² pixels, all black: a few kB on disk, `side`² bytes decoded.
    fn black_png(path: &Path, side: u32) {
        let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        let mut encoder = png::Encoder::new(file, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        let mut writer = encoder.write_header().unwrap().into_stream_writer().unwrap();
        let row = vec![0u8; side as usize];
        for _ in 0..side {
            std::io::Write::write_all(&mut writer, &row).unwrap();
        }
        writer.finish().unwrap();
    }

    #[test]
    fn decoding_allocates_no_more_than_the_limit_a_loader_sets() {
        let dir = std::env::temp_dir().join(format!("dcgan-decode-limit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        black_png(&dir.join("big.png"), 3000); // 9 MB decoded
        let folder = ImageFolder::open(&dir).unwrap();
        folder.limit_decoding(4 << 20);
        let e = folder.read(0).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("big.png: cannot decode image: it needs more than the 4.0 MiB one image may take here"), "{e}");
        folder.limit_decoding(u64::MAX); // capped at MAX_IMAGE_BYTES
        assert_eq!(folder.decode_limit.load(Ordering::Relaxed), limits::MAX_IMAGE_BYTES);
        assert_eq!(folder.read(0).unwrap().width, 3000);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
