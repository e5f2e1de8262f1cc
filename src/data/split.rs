//! Train / validation / test splits, converted once to floats, standardised
//! with the training split's per-feature mean and standard deviation, and
//! optionally whitened (PCA or ZCA) with the training split's covariance.

use anyhow::{bail, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::batch::Batch;
use super::shape::{DataShape, ImageShape};
use super::source::RawData;
use super::whiten::{self, Whitening, DEFAULT_WHITEN_EPS};
use ndarray::{s, Array1, Array2, ArrayView2, ShapeBuilder};

use crate::linalg::Real;

/// Which images train, validate and test.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum SplitKind {
    /// Assignment 1: train on data_batch_1, validate on data_batch_2, test on
    /// test_batch (other data sets: the first and the second fifth of the
    /// training images).
    #[default]
    A1,
    /// All training images, the last `n_val` held out for validation.
    Full,
}

/// A split, its sizes and how its inputs are preprocessed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitSpec {
    /// Which split.
    pub kind: SplitKind,
    /// Validation images held out of the five batches (split `full` only).
    pub n_val: usize,
    /// Keep only the first `n_train` training images (all when `None`).
    pub n_train: Option<usize>,
    /// Whitening after standardisation, fitted on the training images.
    #[serde(default)]
    pub whiten: Whitening,
    /// Added to every eigenvalue before whitening (see [`whiten`]).
    #[serde(default = "default_whiten_eps")]
    pub whiten_eps: f64,
    /// The data set's sizes (CIFAR-10's unless other data is loaded; left
    /// out of configuration files then).
    #[serde(default, skip_serializing_if = "DataShape::is_cifar10")]
    pub data: DataShape,
}

fn default_whiten_eps() -> f64 {
    DEFAULT_WHITEN_EPS
}

impl Default for SplitSpec {
    fn default() -> Self {
        SplitSpec {
            kind: SplitKind::A1,
            n_val: 5000,
            n_train: None,
            whiten: Whitening::None,
            whiten_eps: DEFAULT_WHITEN_EPS,
            data: DataShape::default(),
        }
    }
}

impl SplitSpec {
    /// Short description, e.g. `a1` or `full (45000/5000)`.
    pub fn describe(&self) -> String {
        let split = match self.kind {
            SplitKind::A1 if self.data.is_cifar10() => "a1 (batch 1 / batch 2 / test)".to_string(),
            SplitKind::A1 => "a1 (1st fifth / 2nd fifth / test)".to_string(),
            SplitKind::Full if self.data.is_cifar10() => {
                format!("full (last {} of batches 1-5 validate)", self.n_val)
            }
            SplitKind::Full => format!("full (last {} training images validate)", self.n_val),
        };
        match self.whiten {
            Whitening::None => split,
            w => format!("{split}, {} whitened (eps {})", w.name(), self.whiten_eps),
        }
    }
}

/// Images as floats, d x n in Fortran (column-major) order, so that image j is
/// one contiguous column and a run of images is one contiguous block; with labels.
#[derive(Clone, Debug)]
pub struct DataSet<T> {
    /// Features, d x n, Fortran order.
    pub x: Array2<T>,
    /// Labels 0..K-1, n of them.
    pub labels: Vec<u8>,
    /// How the d features of an image lie (planes of rows), for flips,
    /// translations and pictures.
    pub image: ImageShape,
    /// The images in bf16 for the mixed-precision kernel, converted on first
    /// use ([`Self::packed_bf16`]), once per process: every run borrows it.
    packed_bf16: std::sync::OnceLock<crate::linalg::bf16::PackedSet>,
    /// The images as centred bytes for the int16 kernel, converted on first
    /// use ([`Self::packed_int16`]), once per process.
    packed_int16: std::sync::OnceLock<crate::linalg::int16::PackedSet>,
}

impl<T: Real> DataSet<T> {
    /// A set of the images `x` (d x n, Fortran order) with their labels.
    pub fn new(x: Array2<T>, labels: Vec<u8>) -> Self {
        DataSet {
            image: ImageShape::guess(x.nrows()),
            x,
            labels,
            packed_bf16: std::sync::OnceLock::new(),
            packed_int16: std::sync::OnceLock::new(),
        }
    }
    /// The images in bf16, in both layouts the bf16 kernel reads (see
    /// [`crate::linalg::bf16::PackedSet`]), converted on the first call and
    /// kept: training on consecutive batches then packs nothing per step.
    /// `None` for an f64 set. Call it only once `x` is final.
    pub fn packed_bf16(&self) -> Option<&crate::linalg::bf16::PackedSet> {
        let x = T::f32_view(self.x.view())?;
        Some(
            self.packed_bf16
                .get_or_init(|| crate::linalg::bf16::PackedSet::new(x)),
        )
    }
    /// The images as centred bytes, in both layouts the int16 kernel reads
    /// (see [`crate::linalg::int16::PackedSet`]), converted on the first call
    /// and kept; `pixels` maps the features back to bytes. `None` for an f64
    /// set; an error for features that are not standardised bytes.
    pub fn packed_int16(
        &self,
        pixels: &crate::linalg::int16::Pixels,
    ) -> Result<Option<&crate::linalg::int16::PackedSet>> {
        let Some(x) = T::f32_view(self.x.view()) else {
            return Ok(None);
        };
        if let Some(set) = self.packed_int16.get() {
            return Ok(Some(set));
        }
        let set = crate::linalg::int16::PackedSet::new(x, pixels)?;
        Ok(Some(self.packed_int16.get_or_init(|| set)))
    }
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
    /// How raw pixels became these features (fitted on the training images).
    pub preprocess: Preprocess,
    /// How the split was made.
    pub spec: SplitSpec,
    /// Class names.
    pub class_names: Vec<String>,
}

/// How raw pixels p (0-255) become a network's inputs:
/// x = W ((p / 255 - mean) / std), with W the whitening matrix (identity
/// without whitening). Fitted on the training images; saved beside the weights
/// (`--save-weights`), so that they can be applied to new images.
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocess {
    /// Per-feature mean of the training pixels on the 0-1 scale (d).
    pub mean: Array1<f64>,
    /// Per-feature standard deviation of the training pixels on the 0-1 scale (d).
    pub std: Array1<f64>,
    /// Which whitening W is.
    pub whiten: Whitening,
    /// Its eps.
    pub whiten_eps: f64,
    /// W, d x d; `None` without whitening.
    pub matrix: Option<Array2<f64>>,
}

/// `preprocess.json`: what the .npy files beside it hold and how to apply them.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PreprocessRecord {
    formula: String,
    whiten: Whitening,
    whiten_eps: f64,
    files: Vec<String>,
}

impl Preprocess {
    /// Standardised (and whitened) features of raw pixels (d x n, one image
    /// per contiguous column, u8), d x n in Fortran order.
    pub fn apply<T: Real>(&self, pixels: &[u8]) -> Array2<T> {
        let d = self.mean.len();
        let n = pixels.len() / d;
        let x = standardise::<T>(
            pixels,
            d,
            self.mean.as_slice().unwrap(),
            self.std.as_slice().unwrap(),
        );
        let mut x = Array2::from_shape_vec((d, n).f(), x).expect("d x n pixels");
        if let Some(w) = &self.matrix {
            let wt = w.mapv(T::of);
            whiten::apply(wt.view(), &mut x);
        }
        x
    }

    /// How the int16 kernel maps these features back to bytes; refused for
    /// whitened features, which are not a byte's affine image.
    pub fn int16_pixels(&self) -> Result<crate::linalg::int16::Pixels> {
        if self.matrix.is_some() {
            bail!(
                "--precision int16 multiplies the pixels' bytes, and {} whitening mixes them into \
                 non-integer features: use --precision f32 or bf16 with whitening",
                self.whiten.name()
            );
        }
        Ok(crate::linalg::int16::Pixels::new(
            self.mean.as_slice().expect("contiguous"),
            self.std.as_slice().expect("contiguous"),
        ))
    }

    /// Writes `mean.npy`, `std.npy` (d), `whiten.npy` (d x d, when whitening)
    /// and `preprocess.json` (the formula) into `dir`, atomically each.
    pub fn save(&self, dir: &std::path::Path) -> Result<()> {
        use ndarray_npy::WriteNpyExt;
        let write = |name: &str,
                     a: &dyn Fn(&mut Vec<u8>) -> Result<(), ndarray_npy::WriteNpyError>|
         -> Result<()> {
            let mut bytes = Vec::new();
            a(&mut bytes)?;
            crate::util::write_atomic(&dir.join(name), &bytes)
        };
        write("mean.npy", &|b| self.mean.write_npy(b))?;
        write("std.npy", &|b| self.std.write_npy(b))?;
        let mut files = vec!["mean.npy".to_string(), "std.npy".to_string()];
        if let Some(w) = &self.matrix {
            write("whiten.npy", &|b| w.write_npy(b))?;
            files.push("whiten.npy".to_string());
        }
        let formula = if self.matrix.is_some() {
            "x = whiten @ ((pixels / 255 - mean) / std), pixels as a d x n array (one image per column, its planes of rows in order: CIFAR's channel-major order)"
        } else {
            "x = (pixels / 255 - mean) / std, pixels as a d x n array (one image per column, its planes of rows in order: CIFAR's channel-major order)"
        };
        crate::util::write_json(
            &dir.join("preprocess.json"),
            &PreprocessRecord {
                formula: formula.to_string(),
                whiten: self.whiten,
                whiten_eps: self.whiten_eps,
                files,
            },
        )
    }

    /// Reads what [`Self::save`] wrote.
    pub fn load(dir: &std::path::Path) -> Result<Self> {
        use anyhow::Context;
        let read_json = std::fs::read(dir.join("preprocess.json")).with_context(|| {
            format!(
                "{} has no preprocess.json: train with --save-weights",
                dir.display()
            )
        })?;
        let rec: PreprocessRecord = serde_json::from_slice(&read_json)
            .with_context(|| format!("{}/preprocess.json is not shallow's", dir.display()))?;
        let npy = |name: &str| dir.join(name);
        let mean: Array1<f64> = ndarray_npy::read_npy(npy("mean.npy"))
            .with_context(|| format!("cannot read {}/mean.npy", dir.display()))?;
        let std: Array1<f64> = ndarray_npy::read_npy(npy("std.npy"))
            .with_context(|| format!("cannot read {}/std.npy", dir.display()))?;
        let matrix = if rec.whiten == Whitening::None {
            None
        } else {
            let w: Array2<f64> = ndarray_npy::read_npy(npy("whiten.npy"))
                .with_context(|| format!("cannot read {}/whiten.npy", dir.display()))?;
            Some(w)
        };
        Ok(Preprocess {
            mean,
            std,
            whiten: rec.whiten,
            whiten_eps: rec.whiten_eps,
            matrix,
        })
    }
}

/// The (labels, pixels) of training images `range` (counted across the
/// batches, in order), each image `d` bytes.
fn gather(batches: &[Batch], range: std::ops::Range<usize>, d: usize) -> (Vec<u8>, Vec<u8>) {
    let mut labels = Vec::with_capacity(range.len());
    let mut pixels = Vec::with_capacity(range.len() * d);
    let mut start = 0;
    for b in batches {
        let (lo, hi) = (range.start.max(start), range.end.min(start + b.len()));
        if lo < hi {
            labels.extend_from_slice(&b.labels[lo - start..hi - start]);
            pixels.extend_from_slice(&b.pixels[(lo - start) * d..(hi - start) * d]);
        }
        start += b.len();
    }
    (labels, pixels)
}

/// Per-feature mean and standard deviation of `pixels` (d x n, u8) scaled to
/// 0-1; 1 for a feature constant over the images.
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
            // A pixel constant in training (MNIST's border) is only centred,
            // as scikit-learn's StandardScaler does: dividing by a tiny std
            // would blow up any other value it takes in validation or test.
            let std = var.max(0.0).sqrt();
            if std < 1e-8 {
                1.0
            } else {
                std
            }
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

impl<T> Split<T> {
    /// Sets the image layout of all three sets.
    pub fn set_image(&mut self, image: ImageShape) {
        for set in [&mut self.train, &mut self.val, &mut self.test] {
            set.image = image;
        }
    }
}

impl<T: Real> Split<T> {
    /// Builds the split `spec` of `data`: floats, standardised with training statistics.
    pub fn new(data: &RawData, spec: SplitSpec) -> Result<Self> {
        let spec = SplitSpec {
            data: data.shape,
            ..spec
        };
        spec.validate()?;
        let (d, total) = (data.shape.pixels(), data.shape.train_images);
        let (mut train, val) = match spec.kind {
            SplitKind::A1 => (
                gather(&data.train, 0..total / 5, d),
                gather(&data.train, total / 5..2 * total / 5, d),
            ),
            SplitKind::Full => {
                let cut = total - spec.n_val;
                (
                    gather(&data.train, 0..cut, d),
                    gather(&data.train, cut..total, d),
                )
            }
        };
        if let Some(n) = spec.n_train {
            let have = train.0.len();
            if n == 0 || n > have {
                bail!("--n-train {n} is out of range: this split has {have} training images");
            }
            train.0.truncate(n);
            train.1.truncate(n * d);
        }
        let test = (data.test.labels.clone(), data.test.pixels.clone());
        let mut split = Self::from_pixels(train, val, test, d, spec, data.class_names.clone())?;
        split.set_image(data.shape.image);
        Ok(split)
    }

    /// Builds a split from raw (labels, d x n u8 pixels) triples; the statistics
    /// (and the whitening of `spec.whiten`) come from the training part only.
    /// A whitening decomposition is cached in [`whiten::cache_dir`].
    pub fn from_pixels(
        train: (Vec<u8>, Vec<u8>),
        val: (Vec<u8>, Vec<u8>),
        test: (Vec<u8>, Vec<u8>),
        d: usize,
        spec: SplitSpec,
        class_names: Vec<String>,
    ) -> Result<Self> {
        let cache = whiten::cache_dir();
        Self::from_pixels_cached(train, val, test, d, spec, class_names, cache.as_deref())
    }

    /// [`Self::from_pixels`] with the whitening cache in `cache` (none: always computed).
    pub fn from_pixels_cached(
        train: (Vec<u8>, Vec<u8>),
        val: (Vec<u8>, Vec<u8>),
        test: (Vec<u8>, Vec<u8>),
        d: usize,
        spec: SplitSpec,
        class_names: Vec<String>,
        cache: Option<&std::path::Path>,
    ) -> Result<Self> {
        let (mean, std) = feature_stats(&train.1, d);
        let mut pre = Preprocess {
            mean: Array1::from(mean),
            std: Array1::from(std),
            whiten: spec.whiten,
            whiten_eps: spec.whiten_eps,
            matrix: None,
        };
        let key = (spec.whiten != Whitening::None).then(|| whiten::pixels_key(&train.1, d));
        let mk = |(labels, px): (Vec<u8>, Vec<u8>), pre: &Preprocess| {
            DataSet::new(pre.apply::<T>(&px), labels)
        };
        let mut train = mk(train, &pre);
        if let Some(key) = key {
            if !(spec.whiten_eps.is_finite() && spec.whiten_eps > 0.0) {
                bail!(
                    "--whiten-eps {} is out of range: give a positive number such as {DEFAULT_WHITEN_EPS}",
                    spec.whiten_eps
                );
            }
            let e = whiten::fit(train.view(), &key, cache)?;
            let w = whiten::matrix(&e, spec.whiten, spec.whiten_eps).expect("whitening on");
            whiten::apply(w.mapv(T::of).view(), &mut train.x);
            pre.matrix = Some(w);
        }
        Ok(Split {
            train,
            val: mk(val, &pre),
            test: mk(test, &pre),
            preprocess: pre,
            spec,
            class_names,
        })
    }
}

impl SplitSpec {
    /// Refuses a split that leaves no image to train or validate on, naming
    /// the flag and its range (before loading anything).
    pub fn validate(&self) -> Result<()> {
        let total = self.data.train_images;
        if self.kind == SplitKind::Full && (self.n_val == 0 || self.n_val >= total) {
            bail!(
                "--n-val {} is out of range: hold out between 1 and {} images",
                self.n_val,
                total.saturating_sub(1)
            );
        }
        if self.kind == SplitKind::A1 && total < 10 {
            bail!(
                "--split a1 trains on the first fifth of the {total} training images, which is too few: give --split full"
            );
        }
        if self.n_train == Some(0) {
            bail!("--n-train 0: train on at least one image (at least --batch)");
        }
        Ok(())
    }

    /// Number of training images this split yields (before loading anything).
    pub fn train_len(&self) -> usize {
        let total = self.data.train_images;
        let all = match self.kind {
            SplitKind::A1 => total / 5,
            SplitKind::Full => total - self.n_val.min(total),
        };
        self.n_train.map_or(all, |n| n.min(all))
    }

    /// Number of validation images this split yields (before loading anything).
    pub fn val_len(&self) -> usize {
        let total = self.data.train_images;
        match self.kind {
            SplitKind::A1 => 2 * total / 5 - total / 5,
            SplitKind::Full => self.n_val.min(total),
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
        let s = Split::<f64>::from_pixels(train, val.clone(), val, d, SplitSpec::default(), vec![])
            .unwrap();
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

    /// A whitened split: its training features have identity covariance (up
    /// to eps), validation went through the same transform, and the saved
    /// preprocessing reproduces the features from raw pixels bit for bit.
    #[test]
    fn whitening_is_fitted_on_training_and_saved_preprocessing_reproduces_it() {
        use rand::{RngExt, SeedableRng};
        let d = 48;
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(5);
        let mut make = |n: usize| {
            let labels: Vec<u8> = (0..n).map(|j| (j % 10) as u8).collect();
            // Correlated pixels: neighbours share a random base.
            let mut px = vec![0u8; n * d];
            for img in px.chunks_mut(d) {
                let base: u8 = rng.random_range(0..128);
                for (i, p) in img.iter_mut().enumerate() {
                    *p = base + rng.random_range(0..(64 + i as u8));
                }
            }
            (labels, px)
        };
        let (train, val) = (make(3000), make(200));
        let spec = SplitSpec {
            whiten: Whitening::Zca,
            whiten_eps: 1e-6,
            ..Default::default()
        };
        let cache = tempfile::tempdir().unwrap();
        let s = Split::<f64>::from_pixels_cached(
            train.clone(),
            val.clone(),
            val.clone(),
            d,
            spec,
            vec![],
            Some(cache.path()),
        )
        .unwrap();
        let c = whiten::covariance(s.train.view());
        for ((i, j), v) in c.indexed_iter() {
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((v - want).abs() < 1e-4, "cov[{i},{j}] = {v}");
        }
        assert_eq!(s.preprocess.apply::<f64>(&val.1), s.val.x);
        let dir = tempfile::tempdir().unwrap();
        s.preprocess.save(dir.path()).unwrap();
        let loaded = Preprocess::load(dir.path()).unwrap();
        assert_eq!(loaded, s.preprocess);
        // Built again, from the cache this time: the same bits.
        let again = Split::<f64>::from_pixels_cached(
            train,
            val.clone(),
            val,
            d,
            spec,
            vec![],
            Some(cache.path()),
        )
        .unwrap();
        assert_eq!(again.train.x, s.train.x);
        // A non-positive eps is refused with the fix.
        let bad = SplitSpec {
            whiten_eps: 0.0,
            ..spec
        };
        let err =
            Split::<f64>::from_pixels_cached(make(10), make(10), make(10), d, bad, vec![], None)
                .unwrap_err();
        assert!(
            err.to_string().contains("--whiten-eps 0 is out of range"),
            "{err}"
        );
    }
}
