//! Mutation fuzzing of every parser that reads outside input: IDX (plain and gzip), CIFAR-10
//! binaries, images of a folder (decode and resize), safetensors checkpoints, and JSON options.
//! Each target starts from the seed corpus in `tests/fuzz-corpus/<target>/` (every file there,
//! including the crashes found so far, is first replayed as a regression test), then mutates it
//! with a seeded random generator. A target fails on a panic, or on one input that takes over
//! `SLOW` to parse; the input is written to `tests/fuzz-corpus/<target>/crash-*` to be committed.
//!
//! `cargo test` runs `DEFAULT_EXECS` mutations per target (seconds in all). For long runs:
//! `DCGAN_FUZZ_SECONDS=600 cargo test --release -p dcgan-core --test fuzz -- --nocapture --test-threads=1`
//! (or `node scripts/fuzz.mjs`), which prints executions per minute for each target.
use dcgan_core::data::Source;
use dcgan_core::{data, options, weights, Gan, ModelConfig, TrainOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DEFAULT_EXECS: u64 = 150;
/// A hang, not a slow parse: generous, because fuzzing runs at nice 15 on busy machines (a
/// checkpoint load took 38.7 s there once, the input committed as `checkpoint/crash-4b39…`).
const SLOW: Duration = Duration::from_secs(60);

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fuzz-corpus").join(target)
}

fn scratch(target: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dcgan-fuzz-{}-{target}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small memory limit, so that what a header announces meets the limit on any machine.
fn limit_memory() {
    std::env::set_var(dcgan_core::limits::MEMORY_LIMIT_ENV, "1G");
}

/// One mutation of `input`: bit flips, interesting bytes and integers, cuts, repeats, splices.
fn mutate(rng: &mut ChaCha8Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let len = out.len();
        match rng.random_range(0..8) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] = [0u8, 1, 0x7f, 0x80, 0xff, b'"', b'{', b'-'][rng.random_range(0..8)];
            }
            2 if len >= 4 => {
                let i = rng.random_range(0..=len - 4);
                let v: u32 = [0, 1, 0xffff_ffff, 0x7fff_ffff, 0x8000_0000, 65535, 1 << 20, rng.random()][rng.random_range(0..8)];
                let bytes = if rng.random() { v.to_be_bytes() } else { v.to_le_bytes() };
                out[i..i + 4].copy_from_slice(&bytes);
            }
            3 if len > 0 => out.truncate(rng.random_range(0..len)),
            4 if len > 0 => {
                let (a, b) = (rng.random_range(0..len), rng.random_range(0..len));
                let (a, b) = (a.min(b), a.max(b).min(a + 64));
                let chunk = out[a..b].to_vec();
                let at = rng.random_range(0..=len);
                out.splice(at..at, chunk);
            }
            5 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = (a + rng.random_range(1..64)).min(len);
                out.drain(a..b);
            }
            6 => {
                let other = &corpus[rng.random_range(0..corpus.len())];
                if !other.is_empty() {
                    let a = rng.random_range(0..other.len());
                    let at = rng.random_range(0..=out.len());
                    out.splice(at..at, other[a..(a + 32).min(other.len())].iter().copied());
                }
            }
            _ => {
                let at = rng.random_range(0..=len);
                let n = rng.random_range(1..16);
                let junk: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                out.splice(at..at, junk);
            }
        }
    }
    out
}

/// Replays the corpus, then mutates it for the budget; panics name the saved input.
fn fuzz(target: &str, seed_corpus: Vec<Vec<u8>>, parse: impl Fn(&[u8])) {
    limit_memory();
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).unwrap();
    let mut corpus = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for f in names {
        corpus.push(std::fs::read(&f).unwrap());
    }
    if corpus.is_empty() {
        for (i, c) in seed_corpus.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), c).unwrap();
        }
        corpus = seed_corpus;
    }
    let run_one = |input: &[u8]| {
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| parse(input)));
        let took = started.elapsed();
        if outcome.is_err() || took > SLOW {
            let name = format!("crash-{:016x}", fxhash(input));
            std::fs::write(dir.join(&name), input).unwrap();
            panic!("{target}: {} on input saved as tests/fuzz-corpus/{target}/{name}", if outcome.is_err() { "a panic".to_string() } else { format!("{took:?}") });
        }
    };
    for input in &corpus {
        run_one(input);
    }
    let seconds: Option<u64> = std::env::var("DCGAN_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok());
    let seed: u64 = std::env::var("DCGAN_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ fxhash(target.as_bytes()));
    let started = Instant::now();
    let mut execs = 0u64;
    loop {
        let done = match seconds {
            Some(s) => started.elapsed() >= Duration::from_secs(s),
            None => execs >= DEFAULT_EXECS,
        };
        if done {
            break;
        }
        let base = &corpus[rng.random_range(0..corpus.len())];
        let input = mutate(&mut rng, base, &corpus);
        run_one(&input);
        execs += 1;
    }
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    println!("fuzz {target}: {execs} executions in {:.1} min ({:.0} per minute), no panic, none slower than {SLOW:?}", minutes, execs as f64 / minutes.max(1e-9));
}

fn fxhash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// Writes `bytes` to `name` in the target's scratch folder.
fn as_file(target: &str, name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch(target).join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Reads the first and last image of a source, as a loader would.
fn read_ends(source: &dyn Source) {
    if source.len() > 0 {
        let _ = source.read(0);
        let _ = source.read(source.len() - 1);
    }
}

fn idx_bytes(count: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [0x803, count, rows, cols] {
        b.extend(v.to_be_bytes());
    }
    b.extend((0..count * rows * cols).map(|i| (i * 7) as u8));
    b
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn fuzz_idx() {
    fuzz("idx", vec![idx_bytes(3, 4, 5), idx_bytes(1, 28, 28)], |bytes| {
        if let Ok(s) = data::idx::IdxImages::open(&as_file("idx", "images.idx", bytes)) {
            read_ends(&s);
        }
    });
}

#[test]
fn fuzz_idx_gz() {
    fuzz("idx-gz", vec![gzip(&idx_bytes(3, 4, 5)), gzip(&idx_bytes(2, 28, 28))], |bytes| {
        if let Ok(s) = data::idx::IdxImages::open(&as_file("idx-gz", "images.idx.gz", bytes)) {
            read_ends(&s);
        }
    });
}

#[test]
fn fuzz_cifar() {
    let record: Vec<u8> = (0..3073u32).map(|i| (i * 13) as u8).collect();
    fuzz("cifar", vec![record.clone(), [record.clone(), record].concat()], |bytes| {
        if let Ok(s) = data::cifar::Cifar10::open(&[as_file("cifar", "data_batch_1.bin", bytes)]) {
            read_ends(&s);
        }
    });
}

/// Every image fixture of the pipeline tests (PNG and JPEG, gray, RGB, RGBA, palette).
fn image_seeds() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/pipeline");
    let mut out = Vec::new();
    for kind in ["png", "jpeg"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(kind)).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        out.extend(files.iter().filter(|f| std::fs::metadata(f).unwrap().len() < 4096).map(|f| std::fs::read(f).unwrap()));
    }
    out
}

#[test]
fn fuzz_image_folder() {
    fuzz("image", image_seeds(), |bytes| {
        let dir = scratch("image").join("folder");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("x.png"), bytes).unwrap();
        let folder = data::folder::ImageFolder::open(&dir).unwrap();
        if let Ok(img) = folder.read(0) {
            let mut out = vec![0f32; 3 * 16 * 16];
            data::prepare::prepare_into(&img, 3, 16, &mut out);
            data::prepare::prepare_into(&img, 1, 16, &mut out[..256]);
        }
    });
}

fn tiny_checkpoint() -> Vec<u8> {
    let model = ModelConfig { image_size: 16, features_g: 1, features_d: 1, z_dim: 2, ..Default::default() };
    let gan = Gan::new(model, TrainOptions::default(), tch::Device::Cpu, Some(1)).unwrap();
    let path = scratch("checkpoint").join("seed.safetensors");
    gan.save(&path, Default::default()).unwrap();
    std::fs::read(path).unwrap()
}

#[test]
fn fuzz_checkpoint() {
    fuzz("checkpoint", vec![tiny_checkpoint()], |bytes| {
        let path = as_file("checkpoint", "model.safetensors", bytes);
        let _ = weights::parse(&path, bytes);
        let _ = weights::read_metadata(&path);
        if let Ok(gan) = Gan::load(&path, tch::Device::Cpu) {
            let mut gan = gan;
            let _ = gan.generate(1, Some(1), dcgan_core::NormMode::Eval);
        }
    });
}

#[test]
fn fuzz_options() {
    let seeds = [
        r#"{"imageSize":32,"featuresG":16,"featuresD":16,"seed":5,"steps":10,"dataset":{"kind":"idx","path":"x.idx","limit":10}}"#,
        r#"{"lr":0.0002,"beta1":0.5,"batchSize":64,"dSteps":2,"precision":"fp32","generatorLoss":"minimax","init":"pytorch-example"}"#,
        r#"{"kind":"folder","path":["a","b"],"skipCorrupt":true,"prefetch":2,"workers":3}"#,
        r#"{"imageSize":64,"channels":3,"batchSize":8,"seed":1,"start":{"epoch":1,"position":4}}"#,
    ];
    fuzz("options", seeds.iter().map(|s| s.as_bytes().to_vec()).collect(), |bytes| {
        let text = String::from_utf8_lossy(bytes);
        let _ = options::TrainConfig::resolve(&text, None);
        let _ = options::TrainConfig::resolve(&text, Some("quick"));
        let _ = options::GanOptions::from_json(&text);
        let _ = options::DatasetSpec::from_json(&text);
        let _ = options::BatchOptions::from_json(&text);
    });
}
