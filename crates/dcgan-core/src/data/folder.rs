//! A folder of PNG and JPEG images, searched recursively (the CelebA / LSUN way of working).
use super::{RawImage, Source};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

pub struct ImageFolder {
    files: Vec<PathBuf>,
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::file(dir, format!("cannot list: {e}")))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::file(dir, e))?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if is_image(&path) {
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
        walk(root, &mut files)?;
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
        let img = image::ImageReader::open(path)
            .map_err(|e| Error::file(path, format!("cannot open: {e}")))?
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
