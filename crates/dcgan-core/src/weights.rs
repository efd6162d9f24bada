//! Named tensors to and from safetensors files, written atomically (temporary file, fsync, rename)
//! so that a crash mid-write leaves the previous file intact.
use crate::error::{Error, Result};
use crate::limits;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use tch::{Kind, Tensor};

fn dtype_of(kind: Kind) -> Result<Dtype> {
    Ok(match kind {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Uint8 => Dtype::U8,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        other => return Err(Error::Input(format!("cannot store tensors of kind {other:?} in safetensors"))),
    })
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::U8 => Kind::Uint8,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        _ => return None,
    })
}

/// The bytes of `t` on the host, in row-major order.
fn host_bytes(t: &Tensor) -> Result<Vec<u8>> {
    let t = t.f_detach()?.f_to_device(tch::Device::Cpu)?.f_contiguous()?;
    let numel = t.numel();
    let mut bytes = vec![0u8; numel * t.f_kind()?.elt_size_in_bytes()];
    t.f_copy_data_u8(&mut bytes, numel)?;
    Ok(bytes)
}

/// Writes `tensors` and `metadata` to `path` atomically.
pub fn save(path: &Path, tensors: &[(String, Tensor)], metadata: HashMap<String, String>) -> Result<()> {
    let mut owned = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        owned.push((name.clone(), dtype_of(t.f_kind()?)?, shape, host_bytes(t)?));
    }
    let mut metadata = metadata;
    metadata.insert(CHECKSUM_KEY.into(), checksum(owned.iter().map(|(name, dtype, shape, bytes)| (name.as_str(), *dtype, shape.as_slice(), bytes.as_slice()))));
    let views = owned
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes).map(|v| (name.as_str(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::file(path, e))?;
    let buffer = safetensors::serialize(views, Some(metadata)).map_err(|e| Error::file(path, e))?;
    write_atomically(path, &buffer)
}

/// The metadata key of the checksum `save` writes and `parse` checks when a file has one.
pub const CHECKSUM_KEY: &str = "dcgan.checksum";

/// CRC-32 of every tensor's name, dtype, shape and bytes, in the order of their names, as
/// `crc32:xxxxxxxx`: a bit flipped on a disk or in a copy shows at the next load instead of
/// training on from a silently different model.
fn checksum<'a>(tensors: impl Iterator<Item = (&'a str, Dtype, &'a [usize], &'a [u8])>) -> String {
    let mut sorted: Vec<_> = tensors.collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut hasher = crc32fast::Hasher::new();
    for (name, dtype, shape, bytes) in sorted {
        hasher.update(name.as_bytes());
        hasher.update(format!("{dtype:?}{shape:?}").as_bytes());
        hasher.update(bytes);
    }
    format!("crc32:{:08x}", hasher.finalize())
}

/// Writes to `<path>.tmp-<pid>`, syncs it, renames it over `path` and syncs the folder.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, format!("cannot create the folder: {e}")))?;
    let file_name = path.file_name().ok_or_else(|| Error::file(path, "not a file path"))?;
    let tmp = dir.join(format!(".{}.tmp-{}", file_name.to_string_lossy(), std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::file(path, format!("cannot write: {e}"))
    })
}

/// Named tensors (on the CPU) and the metadata of a safetensors file.
pub struct Loaded {
    pub tensors: HashMap<String, Tensor>,
    pub metadata: HashMap<String, String>,
}

/// Longest safetensors header read (the JSON that lists the tensors and the metadata).
const MAX_HEADER: u64 = 100_000_000;

/// "not a valid safetensors file (why)", and for a file that torch.save wrote (a zip archive, or
/// a bare pickle), how to convert it: that is what a PyTorch user has at hand.
fn not_safetensors(path: &Path, why: impl std::fmt::Display, first_bytes: &[u8]) -> Error {
    let torch_save = first_bytes.starts_with(b"PK\x03\x04") || matches!(first_bytes, [0x80, 2..=5, ..]);
    let hint = if torch_save {
        "; it is a file torch.save wrote (.pt/.pth): dcgan reads safetensors only (a pickle can run code when loaded). \
         Convert it in Python: from safetensors.torch import save_file; save_file(torch.load('model.pth'), 'model.safetensors')"
    } else {
        ""
    };
    Error::file(path, format!("not a valid safetensors file ({why}){hint}"))
}

/// What wraps a module's names in PyTorch: DataParallel and DistributedDataParallel (`module.`),
/// torch.compile (`_orig_mod.`).
const WRAPPER_PREFIXES: [&str; 2] = ["module.", "_orig_mod."];

/// Spectral norm's tensors as `torch.nn.utils.parametrizations.spectral_norm` names them, and as
/// the older `torch.nn.utils.spectral_norm` (this library's names) does: the same three tensors.
const PARAMETRIZED_SPECTRAL_NORM: [(&str, &str); 3] =
    [(".parametrizations.weight.original", ".weight_orig"), (".parametrizations.weight.0._u", ".weight_u"), (".parametrizations.weight.0._v", ".weight_v")];

/// `tensors` (from `path`) under this library's names for the same module: without the prefixes
/// of wrappers (`module.gen.0.0.weight` → `gen.0.0.weight`), spectral norm's parametrizations as
/// its older names. Two tensors that come to the same name are refused: which one is meant?
pub fn as_module_names(path: &Path, tensors: HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::with_capacity(tensors.len());
    let mut origin: HashMap<String, String> = HashMap::new();
    let mut names: Vec<String> = tensors.keys().cloned().collect();
    names.sort_unstable(); // the same refusal whatever the hash order
    let mut tensors = tensors;
    for original in names {
        let t = tensors.remove(&original).expect("a listed name");
        let name = module_name(&original);
        if let Some(first) = origin.insert(name.clone(), original.clone()) {
            return Err(Error::file(path, format!("holds both '{first}' and '{original}', which name the same tensor '{name}': keep one of them")));
        }
        out.insert(name, t);
    }
    Ok(out)
}

fn module_name(original: &str) -> String {
    let mut name = original;
    while let Some(rest) = WRAPPER_PREFIXES.iter().find_map(|p| name.strip_prefix(p)) {
        name = rest;
    }
    match PARAMETRIZED_SPECTRAL_NORM.iter().find_map(|(new, old)| name.strip_suffix(new).map(|stem| (stem, old))) {
        Some((stem, old)) => format!("{stem}{old}"),
        None => name.to_string(),
    }
}

/// A few of `tensors`' names, sorted, and how many there are: what a refusal shows of a file.
pub fn some_names(tensors: &HashMap<String, Tensor>) -> String {
    let mut names: Vec<&str> = tensors.keys().map(String::as_str).collect();
    names.sort_unstable();
    let shown: Vec<String> = names.iter().take(4).map(|n| format!("'{n}'")).collect();
    match names.len() {
        0 => "it holds no tensors".into(),
        n if n <= 4 => format!("it holds {}", shown.join(", ")),
        n => format!("it holds {}, … {n} in all", shown.join(", ")),
    }
}

/// The metadata of a safetensors file, reading only its header.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    use std::io::Read;
    let (f, size) = limits::open_regular(path, u64::MAX)?;
    let mut f = f.take(size); // never past the length checked, whatever the file does meanwhile
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|_| Error::file(path, "not a valid safetensors file (shorter than its 8-byte header length)"))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER || n > size - 8 {
        return Err(not_safetensors(path, format!("header length {n} in a file of {size} bytes"), &len));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|_| Error::file(path, "not a valid safetensors file (truncated header)"))?;
    let json: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| Error::file(path, format!("not a valid safetensors file (header is not JSON: {e})")))?;
    let meta = json.get("__metadata__").and_then(|m| m.as_object());
    Ok(meta
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
        .unwrap_or_default())
}

/// Every tensor and the metadata of a safetensors file: a regular file, whose size (it is read
/// whole, then converted tensor by tensor) must fit the memory limit twice.
pub fn load(path: &Path) -> Result<Loaded> {
    let limit = limits::memory_limit()? / 2;
    let bytes = limits::read_regular(path, limit)?;
    parse(path, &bytes)
}

/// The tensors and metadata of safetensors `bytes` (read from `path`, named in errors).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Loaded> {
    let invalid = |e: safetensors::SafeTensorError| not_safetensors(path, e, &bytes[..bytes.len().min(8)]);
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(invalid)?;
    let st = SafeTensors::deserialize(bytes).map_err(invalid)?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let views = st.tensors();
    if let Some(expected) = metadata.get(CHECKSUM_KEY) {
        let actual = checksum(views.iter().map(|(name, v)| (name.as_str(), v.dtype(), v.shape(), v.data())));
        if actual != *expected {
            return Err(Error::file(
                path,
                format!(
                    "the tensors do not match the checksum they were saved with ({actual}, saved {expected}): the file \
                     was damaged after it was written (disk or copy); use an older checkpoint"
                ),
            ));
        }
    }
    let mut tensors = HashMap::new();
    for (name, view) in views {
        let kind = kind_of(view.dtype())
            .ok_or_else(|| Error::file(path, format!("tensor '{name}' has unsupported dtype {:?}", view.dtype())))?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(view.data(), &shape, kind).map_err(|e| Error::file(path, format!("tensor '{name}': {e}")))?;
        tensors.insert(name, t);
    }
    Ok(Loaded { tensors, metadata })
}
