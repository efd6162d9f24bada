//! CIFAR-10 binary batches (`data_batch_1.bin` …): records of one label byte then 32×32 red,
//! green and blue planes.
use super::{RawImage, Source};
use crate::error::{Error, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const SIDE: usize = 32;
const RECORD: usize = 1 + 3 * SIDE * SIDE;

pub struct Cifar10 {
    files: Vec<(PathBuf, File, usize)>,
    total: usize,
}

impl Cifar10 {
    /// Opens the given `.bin` files, or every `data_batch_*.bin` in a folder given alone.
    pub fn open(paths: &[PathBuf]) -> Result<Cifar10> {
        let mut list = Vec::new();
        for p in paths {
            if p.is_dir() {
                let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                    .map_err(|e| Error::file(p, format!("cannot list: {e}")))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.is_file())
                    .filter(|f| f.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("data_batch_") && n.ends_with(".bin")))
                    .collect();
                found.sort();
                if found.is_empty() {
                    return Err(Error::file(p, "holds no data_batch_*.bin files (CIFAR-10 binary version)"));
                }
                list.extend(found);
            } else {
                list.push(p.clone());
            }
        }
        let mut files = Vec::new();
        let mut total = 0;
        for path in list {
            let (file, len) = crate::limits::open_regular(&path, u64::MAX)?;
            let len = len as usize;
            if len == 0 || len % RECORD != 0 {
                return Err(Error::file(&path, format!(
                    "is not a CIFAR-10 binary batch: {len} bytes is not a multiple of the {RECORD}-byte record (truncated or another format)"
                )));
            }
            total += len / RECORD;
            files.push((path, file, len / RECORD));
        }
        Ok(Cifar10 { files, total })
    }

    fn locate(&self, mut index: usize) -> (usize, usize) {
        for (f, (_, _, n)) in self.files.iter().enumerate() {
            if index < *n {
                return (f, index);
            }
            index -= n;
        }
        unreachable!("index checked against len")
    }
}

impl Source for Cifar10 {
    fn len(&self) -> usize {
        self.total
    }

    fn read(&self, index: usize) -> Result<RawImage> {
        let (f, record) = self.locate(index);
        let (path, file, _) = &self.files[f];
        let mut buf = vec![0u8; RECORD];
        file.read_exact_at(&mut buf, (record * RECORD) as u64)
            .map_err(|e| {
                let why = if e.kind() == std::io::ErrorKind::UnexpectedEof { "the file was truncated after it was opened".to_string() } else { e.to_string() };
                Error::file(path, format!("cannot read record {record}: {why}"))
            })?;
        let plane = SIDE * SIDE;
        let mut pixels = Vec::with_capacity(3 * plane);
        for i in 0..plane {
            pixels.extend([buf[1 + i], buf[1 + plane + i], buf[1 + 2 * plane + i]]);
        }
        Ok(RawImage { width: SIDE as u32, height: SIDE as u32, channels: 3, pixels })
    }

    fn describe(&self, index: usize) -> String {
        let (f, record) = self.locate(index);
        format!("{} record {record}", self.files[f].0.display())
    }
}

impl Cifar10 {
    pub fn files(&self) -> Vec<&Path> {
        self.files.iter().map(|(p, _, _)| p.as_path()).collect()
    }
}
