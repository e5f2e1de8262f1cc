//! Generated data of CIFAR-10's shapes, for tests, `shallow bench` and the
//! criterion benches on machines without the real data: one module, so that
//! every one of them measures and checks the same kind of input.
//!
//! Images are uniform noise plus a brightness bias on the tenth of the pixels
//! that belongs to their class (pixels `307 c .. 307 (c + 1)` for class c), so
//! the classes are separable and training does something meaningful.

use ndarray::{Array2, ShapeBuilder};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::batch::{Batch, Format, DEFAULT_CLASS_NAMES, PIXELS};
use super::source::{DatasetKind, RawData};
use super::split::{Split, SplitKind, SplitSpec};
use crate::linalg::Real;

/// `n` generated images: (labels, pixels of 3072 x n, column-major u8), noise
/// in `0..noise` plus `bias` on the class's pixels, drawn from `rng`.
fn images(rng: &mut Xoshiro256PlusPlus, n: usize, noise: u8, bias: u8) -> (Vec<u8>, Vec<u8>) {
    let labels: Vec<u8> = (0..n).map(|_| rng.random_range(0..10u8)).collect();
    let mut px = vec![0u8; n * PIXELS];
    for (j, &l) in labels.iter().enumerate() {
        for i in 0..PIXELS {
            let b = if i / 307 == l as usize { bias } else { 0 };
            px[j * PIXELS + i] = rng.random_range(0..noise) + b;
        }
    }
    (labels, px)
}

/// A standardised split of `n_train`, `n_val` and `n_test` generated images
/// (d = 3072), as [`Split::from_pixels`] builds it from real ones.
pub fn split<T: Real>(n_train: usize, n_val: usize, n_test: usize, seed: u64) -> Split<T> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let train = images(&mut rng, n_train, 160, 60);
    let val = images(&mut rng, n_val, 160, 60);
    let test = images(&mut rng, n_test, 160, 60);
    Split::from_pixels(train, val, test, PIXELS, SplitSpec::default(), vec![])
        .expect("a generated split without whitening")
}

/// A generated split of the real split's sizes: `a1` (10,000 / 10,000 / 10,000)
/// or `full` (45,000 / 5,000 / 10,000).
pub fn split_like<T: Real>(kind: SplitKind, seed: u64) -> Split<T> {
    let (n_train, n_val) = match kind {
        SplitKind::A1 => (10_000, 10_000),
        SplitKind::Full => (45_000, 5_000),
    };
    let mut s = split(n_train, n_val, 10_000, seed);
    s.spec = SplitSpec {
        kind,
        ..Default::default()
    };
    s
}

/// A whole generated release: five training batches and a test batch of
/// `per_batch` images each, with CIFAR-10's class names (what
/// [`RawData::load`] returns for real files).
pub fn cifar10(per_batch: usize, seed: u64) -> RawData {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut batch = |name: String| {
        let (labels, pixels) = images(&mut rng, per_batch, 150, 80);
        Batch {
            name,
            labels,
            pixels,
        }
    };
    let train = (1..=5)
        .map(|i| batch(format!("data_batch_{i}.bin")))
        .collect();
    let test = batch("test_batch.bin".to_string());
    RawData {
        dir: "generated".into(),
        kind: DatasetKind::Cifar10,
        shape: super::DataShape {
            train_images: 5 * per_batch,
            ..Default::default()
        },
        format: Format::Binary,
        train,
        test,
        class_names: DEFAULT_CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
        load_s: 0.0,
    }
}

/// `n` feature columns (d x n, Fortran order) in [-1, 1] from a fixed integer
/// pattern, with labels `j % 10`: a cheap, reproducible batch for benches and
/// allocation tests, where the values do not matter.
pub fn features<T: Real>(d: usize, n: usize) -> (Array2<T>, Vec<u8>) {
    let x = Array2::from_shape_fn((d, n).f(), |(i, j)| {
        T::of(((i + j * d) * 7919 % 255) as f64 / 127.5 - 1.0)
    });
    (x, (0..n).map(|j| (j % 10) as u8).collect())
}
