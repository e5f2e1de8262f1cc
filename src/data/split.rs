//! Train / validation / test splits, converted once to floats and standardised
//! with the training split's per-feature mean and standard deviation.

use anyhow::{bail, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Batch, Cifar10, PIXELS};
use ndarray::{s, Array1, Array2, ArrayView2, ShapeBuilder};

use crate::nn::Real;

/// Which images train, validate and test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum SplitKind {
    /// Assignment 1: train on data_batch_1, validate on data_batch_2, test on test_batch.
    #[default]
    A1,
    /// Batches 1-5 with the last `n_val` images held out for validation.
    Full,
}

/// A split and its sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSpec {
    /// Which split.
    pub kind: SplitKind,
    /// Validation images held out of the five batches (split `full` only).
    pub n_val: usize,
    /// Keep only the first `n_train` training images (all when `None`).
    pub n_train: Option<usize>,
}

impl Default for SplitSpec {
    fn default() -> Self {
        SplitSpec {
            kind: SplitKind::A1,
            n_val: 5000,
            n_train: None,
        }
    }
}

impl SplitSpec {
    /// Short description, e.g. `a1` or `full (45000/5000)`.
    pub fn describe(&self) -> String {
        match self.kind {
            SplitKind::A1 => "a1 (batch 1 / batch 2 / test)".to_string(),
            SplitKind::Full => format!("full (last {} of batches 1-5 validate)", self.n_val),
        }
    }
}

/// Images as floats, d x n in Fortran (column-major) order, so that image j is
/// one contiguous column and a run of images is one contiguous block; with labels.
#[derive(Clone, Debug)]
pub struct DataSet<T> {
    /// Features, d x n, Fortran order.
    pub x: Array2<T>,
    /// Labels 0..9, n of them.
    pub labels: Vec<u8>,
}

impl<T: Real> DataSet<T> {
    /// Number of images n.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Feature count d.
    pub fn dim(&self) -> usize {
        self.x.nrows()
    }
    /// The whole set as a d x n view.
    pub fn view(&self) -> ArrayView2<'_, T> {
        self.x.view()
    }
    /// Images `j0..j0 + n` as a d x n view, without copying.
    pub fn cols(&self, j0: usize, n: usize) -> ArrayView2<'_, T> {
        self.x.slice(s![.., j0..j0 + n])
    }
    /// Image j's d features (one contiguous column).
    pub fn image(&self, j: usize) -> &[T] {
        let d = self.dim();
        &self
            .x
            .as_slice_memory_order()
            .expect("Fortran-order data set")[j * d..(j + 1) * d]
    }
}

/// Standardised train, validation and test sets, shared read-only by every run.
#[derive(Clone, Debug)]
pub struct Split<T> {
    /// Training set.
    pub train: DataSet<T>,
    /// Validation set.
    pub val: DataSet<T>,
    /// Test set.
    pub test: DataSet<T>,
    /// Per-feature mean of the training pixels on the 0-1 scale (d).
    pub mean: Array1<f64>,
    /// Per-feature standard deviation of the training pixels on the 0-1 scale (d).
    pub std: Array1<f64>,
    /// How the split was made.
    pub spec: SplitSpec,
    /// Class names.
    pub class_names: Vec<String>,
}

/// Concatenates images (labels, pixels) of a list of (batch, range) pieces.
fn gather(parts: &[(&Batch, std::ops::Range<usize>)]) -> (Vec<u8>, Vec<u8>) {
    let mut labels = Vec::new();
    let mut pixels = Vec::new();
    for (b, r) in parts {
        labels.extend_from_slice(&b.labels[r.clone()]);
        pixels.extend_from_slice(&b.pixels[r.start * PIXELS..r.end * PIXELS]);
    }
    (labels, pixels)
}

/// Per-feature mean and standard deviation of `pixels` (d x n, u8) scaled to 0-1.
pub fn feature_stats(pixels: &[u8], d: usize) -> (Vec<f64>, Vec<f64>) {
    let n = pixels.len() / d;
    let (sum, sq) = pixels
        .par_chunks(d * 512)
        .map(|chunk| {
            let mut s = vec![0u64; d];
            let mut q = vec![0u64; d];
            for img in chunk.chunks_exact(d) {
                for ((s, q), &v) in s.iter_mut().zip(q.iter_mut()).zip(img) {
                    *s += v as u64;
                    *q += (v as u64) * (v as u64);
                }
            }
            (s, q)
        })
        .reduce(
            || (vec![0u64; d], vec![0u64; d]),
            |(mut a, mut b), (c, e)| {
                a.iter_mut().zip(&c).for_each(|(x, y)| *x += y);
                b.iter_mut().zip(&e).for_each(|(x, y)| *x += y);
                (a, b)
            },
        );
    let n = n.max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|&s| s as f64 / n / 255.0).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(&q, &m)| {
            let var = q as f64 / n / (255.0 * 255.0) - m * m;
            var.max(0.0).sqrt().max(1e-8)
        })
        .collect();
    (mean, std)
}

/// Converts u8 pixels (d x n) to standardised floats: (v / 255 - mean) / std.
pub fn standardise<T: Real>(pixels: &[u8], d: usize, mean: &[f64], std: &[f64]) -> Vec<T> {
    let inv: Vec<f64> = std.iter().map(|s| 1.0 / s).collect();
    let mut out = vec![T::zero(); pixels.len()];
    out.par_chunks_mut(d)
        .zip(pixels.par_chunks(d))
        .for_each(|(o, p)| {
            for i in 0..d {
                o[i] = T::of((p[i] as f64 / 255.0 - mean[i]) * inv[i]);
            }
        });
    out
}

impl<T: Real> Split<T> {
    /// Builds the split `spec` of `data`: floats, standardised with training statistics.
    pub fn new(data: &Cifar10, spec: SplitSpec) -> Result<Self> {
        let (mut train, val) = match spec.kind {
            SplitKind::A1 => (
                gather(&[(&data.train[0], 0..data.train[0].len())]),
                gather(&[(&data.train[1], 0..data.train[1].len())]),
            ),
            SplitKind::Full => {
                let total: usize = data.train.iter().map(|b| b.len()).sum();
                if spec.n_val == 0 || spec.n_val >= total {
                    bail!(
                        "--n-val {} is out of range: hold out between 1 and {} images",
                        spec.n_val,
                        total - 1
                    );
                }
                let cut = total - spec.n_val;
                let mut tr = Vec::new();
                let mut va = Vec::new();
                let mut start = 0;
                for b in &data.train {
                    let end = start + b.len();
                    if cut >= end {
                        tr.push((b, 0..b.len()));
                    } else if cut <= start {
                        va.push((b, 0..b.len()));
                    } else {
                        tr.push((b, 0..cut - start));
                        va.push((b, cut - start..b.len()));
                    }
                    start = end;
                }
                (gather(&tr), gather(&va))
            }
        };
        if let Some(n) = spec.n_train {
            let have = train.0.len();
            if n == 0 || n > have {
                bail!("--n-train {n} is out of range: this split has {have} training images");
            }
            train.0.truncate(n);
            train.1.truncate(n * PIXELS);
        }
        let test = (data.test.labels.clone(), data.test.pixels.clone());
        Ok(Self::from_pixels(
            train,
            val,
            test,
            PIXELS,
            spec,
            data.class_names.clone(),
        ))
    }

    /// Builds a split from raw (labels, d x n u8 pixels) triples; the statistics come
    /// from the training part only.
    pub fn from_pixels(
        train: (Vec<u8>, Vec<u8>),
        val: (Vec<u8>, Vec<u8>),
        test: (Vec<u8>, Vec<u8>),
        d: usize,
        spec: SplitSpec,
        class_names: Vec<String>,
    ) -> Self {
        let (mean, std) = feature_stats(&train.1, d);
        let mk = |(labels, px): (Vec<u8>, Vec<u8>)| {
            let n = labels.len();
            let x = standardise::<T>(&px, d, &mean, &std);
            DataSet {
                x: Array2::from_shape_vec((d, n).f(), x).expect("d x n pixels"),
                labels,
            }
        };
        Split {
            train: mk(train),
            val: mk(val),
            test: mk(test),
            mean: Array1::from(mean),
            std: Array1::from(std),
            spec,
            class_names,
        }
    }
}

impl SplitSpec {
    /// Number of training images this split yields (before loading anything).
    pub fn train_len(&self) -> usize {
        let all = match self.kind {
            SplitKind::A1 => super::RECORDS_PER_FILE,
            SplitKind::Full => {
                5 * super::RECORDS_PER_FILE - self.n_val.min(5 * super::RECORDS_PER_FILE)
            }
        };
        self.n_train.map_or(all, |n| n.min(all))
    }

    /// Number of validation images this split yields (before loading anything).
    pub fn val_len(&self) -> usize {
        match self.kind {
            SplitKind::A1 => super::RECORDS_PER_FILE,
            SplitKind::Full => self.n_val.min(5 * super::RECORDS_PER_FILE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardisation_uses_training_statistics_only() {
        let d = 4;
        let train = (vec![0, 1], vec![0, 10, 20, 30, 255, 10, 40, 50]);
        let val = (vec![2], vec![255, 255, 255, 255]);
        let s = Split::<f64>::from_pixels(train, val.clone(), val, d, SplitSpec::default(), vec![]);
        // Training features have mean 0 and unit variance...
        for i in 0..d {
            let m = (s.train.x[[i, 0]] + s.train.x[[i, 1]]) / 2.0;
            assert!(m.abs() < 1e-12);
        }
        // ...the constant feature 1 (10, 10) gets std floor and stays finite.
        assert!(s.val.x.iter().all(|v| v.is_finite()));
        // Validation uses the same transform: feature 0 mean 127.5/255, std 127.5/255 -> (1 - .5)/.5 = 1.
        assert!((s.val.x[[0, 0]] - 1.0).abs() < 1e-12);
    }
}
