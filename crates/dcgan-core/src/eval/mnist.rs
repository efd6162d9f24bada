//! MNIST as tensors for the classifier: IDX images at their own 28×28 in [−1, 1], IDX labels.
use crate::data::idx::IdxImages;
use crate::error::{Error, Result};
use std::path::Path;
use tch::Tensor;

const LABELS_MAGIC: u32 = 0x0000_0801;

/// The labels of an IDX label file (magic 0x00000801: unsigned bytes, one dimension).
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    if bytes.len() < 8 {
        return Err(Error::file(path, format!("truncated: {} bytes, shorter than the 8-byte IDX label header", bytes.len())));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != LABELS_MAGIC {
        return Err(Error::file(path, format!("not an IDX label file: magic number 0x{magic:08x}, expected 0x{LABELS_MAGIC:08x}")));
    }
    let count = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    if bytes.len() < 8 + count {
        return Err(Error::file(path, format!("truncated: the header announces {count} labels but the file has {} bytes", bytes.len())));
    }
    Ok(bytes[8..8 + count].to_vec())
}

/// Images `indices` (all when `None`) of an IDX file as n×1×H×W floats, v / 127.5 − 1.
pub fn read_images(path: &Path, indices: Option<&[usize]>) -> Result<Tensor> {
    let idx = IdxImages::open(path)?;
    let all: Vec<usize>;
    let indices = match indices {
        Some(i) => i,
        None => {
            all = (0..idx.count).collect();
            &all
        }
    };
    let len = idx.image_len();
    let mut bytes = vec![0u8; len];
    let mut out = Vec::with_capacity(indices.len() * len);
    for &i in indices {
        if i >= idx.count {
            return Err(Error::file(path, format!("has {} images; image {i} was asked for", idx.count)));
        }
        idx.read_into(i, &mut bytes)?;
        out.extend(bytes.iter().map(|&v| v as f32 / 127.5 - 1.0));
    }
    Ok(Tensor::f_from_slice(&out)?.f_view([indices.len() as i64, 1, idx.rows as i64, idx.cols as i64])?)
}
