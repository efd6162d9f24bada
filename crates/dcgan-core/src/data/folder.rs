//! A folder of PNG and JPEG images, searched recursively (the CelebA / LSUN way of working).
use super::{RawImage, Source};
use crate::error::{Error, Result};
use crate::limits;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub struct ImageFolder {
    files: Vec<PathBuf>,
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
        Ok(ImageFolder { files })
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
        let img = image::ImageReader::new(std::io::BufReader::new(file))
            .with_guessed_format()
            .map_err(|e| Error::file(path, format!("cannot read: {e}")))?
            .decode()
            .map_err(|e| Error::file(path, format!("cannot decode image: {e}")))?;
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
}
