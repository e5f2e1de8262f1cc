//! PCA and ZCA whitening of the inputs (`--whiten pca|zca`, `--whiten-eps`),
//! fitted on the training split only and applied unchanged to validation and
//! test.
//!
//! On the standardised training features X (d x n, mean 0 per feature), with
//! C = X X^T / n = U diag(l) U^T:
//! - PCA: W = diag(1 / sqrt(l + eps)) U^T, coordinates along the principal axes;
//! - ZCA: W = U diag(1 / sqrt(l + eps)) U^T, the whitening closest to the
//!   original pixels, so images stay images.
//!
//! Every set becomes W X. eps (relative to the standardised features, whose
//! covariance has trace d) keeps the near-zero directions from blowing up noise.
//!
//! The decomposition of the 3072 x 3072 covariance is the slow part (about
//! 14 s on one core with LAPACK's divide-and-conquer SVD, `gesdd` through
//! ndarray-linalg; the symmetric `syev` driver took 44 s). For a symmetric
//! positive semi-definite matrix the SVD is the eigendecomposition. It runs on
//! one BLAS thread, so that it gives the same bits on any machine's core count,
//! and it is kept in a cache folder keyed by the training pixels, so each data
//! split pays for it once.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ndarray::{s, Array1, Array2, ArrayView2, ShapeBuilder};
use ndarray_linalg::{JobSvd, SVDDC};
use serde::{Deserialize, Serialize};

use crate::linalg::{blas, Real};

/// How the standardised inputs are whitened.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Whitening {
    /// No whitening: standardised features only.
    #[default]
    None,
    /// PCA whitening: decorrelated coordinates along the principal axes.
    Pca,
    /// ZCA whitening: decorrelated, rotated back to pixel space.
    Zca,
}

impl Whitening {
    /// `"none"`, `"pca"` or `"zca"`.
    pub fn name(&self) -> &'static str {
        match self {
            Whitening::None => "none",
            Whitening::Pca => "pca",
            Whitening::Zca => "zca",
        }
    }
}

/// Default `--whiten-eps`: added to every eigenvalue of the standardised
/// features' covariance (whose eigenvalues sum to d = 3072). Of 0.1, 1, 10 and
/// 100, 10 gave the best A2 test accuracy (docs/data.md, "Whitening"); 0.1 overfits
/// the noise of the small-eigenvalue directions.
pub const DEFAULT_WHITEN_EPS: f64 = 10.0;

/// Images per chunk when the covariance is accumulated and when sets are
/// whitened: fixed by the problem, never by the cores.
const CHUNK: usize = 1000;

/// Eigendecomposition of the training features' covariance: `values[i]`
/// (descending) belongs to column i of `vectors` (d x d).
#[derive(Clone, Debug, PartialEq)]
pub struct Eigen {
    /// Eigenvalues, descending, d.
    pub values: Array1<f64>,
    /// Unit eigenvectors as columns, d x d.
    pub vectors: Array2<f64>,
}

/// C = X X^T / n of the columns of `x` (d x n, column-major), accumulated in
/// f64 over fixed chunks of [`CHUNK`] images, each one product in T. Sets BLAS
/// to one thread, as everything in shallow runs it (the same bits on any machine).
pub fn covariance<T: Real>(x: ArrayView2<'_, T>) -> Array2<f64> {
    blas::set_threads(1);
    let (d, n) = x.dim();
    let mut acc = Array2::<f64>::zeros((d, d).f());
    let mut part = Array2::<T>::zeros((d, d).f());
    let mut j0 = 0;
    while j0 < n {
        let chunk = x.slice(s![.., j0..(j0 + CHUNK).min(n)]);
        blas::gemm_blocks(T::one(), chunk, chunk.t(), T::zero(), part.view_mut());
        acc.zip_mut_with(&part, |a, &p| *a += p.f64());
        j0 += CHUNK;
    }
    acc / n.max(1) as f64
}

/// The eigendecomposition of a covariance `c` (d x d, symmetric positive
/// semi-definite), through LAPACK's divide-and-conquer SVD on one BLAS thread
/// (which it leaves set: LAPACK's threading would change the last bits).
pub fn eigen(c: &Array2<f64>) -> Result<Eigen> {
    blas::set_threads(1);
    let res = c.svddc(JobSvd::All);
    let (u, values, _vt) = res.context("the covariance's decomposition (LAPACK gesdd) failed")?;
    let vectors = u.context("LAPACK returned no singular vectors")?;
    // Fortran order, whatever LAPACK's wrapper handed back.
    let mut v = Array2::zeros(vectors.raw_dim().f());
    v.assign(&vectors);
    Ok(Eigen { values, vectors: v })
}

/// The whitening matrix W (d x d) of `kind` from the decomposition, with eps
/// added to every eigenvalue; `None` for [`Whitening::None`].
pub fn matrix(e: &Eigen, kind: Whitening, eps: f64) -> Option<Array2<f64>> {
    let inv_sqrt = e.values.mapv(|l| 1.0 / (l.max(0.0) + eps).sqrt());
    // D^-1/2 U^T: row i of U^T scaled by 1 / sqrt(l_i + eps).
    let mut pca = Array2::zeros(e.vectors.raw_dim().f());
    pca.assign(&e.vectors.t());
    for (mut row, &f) in pca.rows_mut().into_iter().zip(&inv_sqrt) {
        row *= f;
    }
    match kind {
        Whitening::None => None,
        Whitening::Pca => Some(pca),
        Whitening::Zca => {
            blas::set_threads(1);
            let mut zca = Array2::zeros(e.vectors.raw_dim().f());
            blas::gemm_blocks(1.0, e.vectors.view(), pca.view(), 0.0, zca.view_mut());
            Some(zca)
        }
    }
}

/// X <- W X in place for a whole set (d x n), in fixed chunks of [`CHUNK`]
/// images through one reused buffer, so no second copy of the set is made.
/// BLAS on one thread, as in [`covariance`].
pub fn apply<T: Real>(w: ArrayView2<'_, T>, x: &mut Array2<T>) {
    blas::set_threads(1);
    let (d, n) = x.dim();
    let mut buf = Array2::<T>::zeros((d, CHUNK.min(n)).f());
    let mut j0 = 0;
    while j0 < n {
        let m = CHUNK.min(n - j0);
        let mut chunk = x.slice_mut(s![.., j0..j0 + m]);
        buf.slice_mut(s![.., ..m]).assign(&chunk);
        blas::gemm_blocks(
            T::one(),
            w,
            buf.slice(s![.., ..m]),
            T::zero(),
            chunk.view_mut(),
        );
        j0 += m;
    }
}

/// Folder of cached decompositions: `$SHALLOW_CACHE`, else
/// `$XDG_CACHE_HOME/shallow`, else `~/.cache/shallow`.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("SHALLOW_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|p| p.join("shallow")))
        .or_else(|| var("HOME").map(|p| p.join(".cache").join("shallow")))
}

/// A key for the training pixels (d x n, u8): the decomposition depends on
/// nothing else.
pub fn pixels_key(pixels: &[u8], d: usize) -> String {
    let mut h = crate::util::mix64(pixels.len() as u64 ^ ((d as u64) << 40));
    for chunk in pixels.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = crate::util::mix64(h ^ u64::from_le_bytes(w));
    }
    format!("{h:016x}")
}

fn cache_paths(dir: &Path, key: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("eigen-{key}-values.npy")),
        dir.join(format!("eigen-{key}-vectors.npy")),
    )
}

/// Reads a cached decomposition of `d` features, if there is a valid one.
fn load_cached(dir: &Path, key: &str, d: usize) -> Option<Eigen> {
    let (vp, up) = cache_paths(dir, key);
    let values: Array1<f64> = ndarray_npy::read_npy(&vp).ok()?;
    let vectors: Array2<f64> = ndarray_npy::read_npy(&up).ok()?;
    if values.len() != d || vectors.dim() != (d, d) {
        return None;
    }
    // What an SVD of a covariance gives: finite values >= 0 in falling order,
    // and unit, orthogonal vectors (checked on a few). Anything else was
    // damaged: it is recomputed and cached again.
    let sorted = values.windows(2).into_iter().all(|w| w[0] >= w[1]);
    let unit = (0..d.min(4)).all(|j| {
        let col = vectors.column(j);
        let next = vectors.column((j + 1) % d);
        (col.dot(&col) - 1.0).abs() < 1e-6 && (d == 1 || col.dot(&next).abs() < 1e-6)
    });
    let finite = values.iter().chain(vectors.iter()).all(|v| v.is_finite());
    if !(finite && sorted && unit && values.iter().all(|&v| v >= 0.0)) {
        eprintln!(
            "note: the cached whitening decomposition {} is damaged: computing it again",
            vp.display()
        );
        return None;
    }
    let mut v = Array2::zeros((d, d).f());
    v.assign(&vectors);
    Some(Eigen { values, vectors: v })
}

fn save_cached(dir: &Path, key: &str, e: &Eigen) -> Result<()> {
    use ndarray_npy::WriteNpyExt;
    std::fs::create_dir_all(dir)?;
    let (vp, up) = cache_paths(dir, key);
    let mut bytes = Vec::new();
    e.vectors.write_npy(&mut bytes)?;
    crate::util::write_atomic(&up, &bytes)?;
    bytes.clear();
    e.values.write_npy(&mut bytes)?;
    crate::util::write_atomic(&vp, &bytes)
}

/// The decomposition of the standardised training features `x` (d x n), from
/// the `cache` folder when it holds the one for these pixels, else computed
/// (and cached there when the folder is writable). `key` names the training
/// pixels, see [`pixels_key`]; `cache` is usually [`cache_dir`].
pub fn fit<T: Real>(x: ArrayView2<'_, T>, key: &str, cache: Option<&Path>) -> Result<Eigen> {
    let (d, n) = x.dim();
    if n < 2 {
        bail!("whitening needs at least 2 training images");
    }
    if let Some(e) = cache.and_then(|dir| load_cached(dir, key, d)) {
        return Ok(e);
    }
    if d >= 1000 {
        eprintln!(
            "whitening: decomposing the {d} x {d} covariance of {n} training images (once per data split: it is cached{})",
            cache.map_or(String::new(), |c| format!(" in {}", c.display()))
        );
    }
    let e = eigen(&covariance(x))?;
    if let Some(dir) = cache {
        if let Err(err) = save_cached(dir, key, &e) {
            eprintln!(
                "note: cannot cache the whitening decomposition in {} ({err:#}); set SHALLOW_CACHE to a writable folder to keep it",
                dir.display()
            );
        }
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    /// Correlated generated features: whitened, their covariance is the
    /// identity (up to eps), and ZCA is symmetric while PCA is a rotation of it.
    #[test]
    fn whitened_features_have_identity_covariance() {
        let (d, n) = (12, 4000);
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let normal = Normal::new(0.0, 1.0).unwrap();
        let z = Array2::from_shape_fn((d, n).f(), |_| normal.sample(&mut rng));
        let mix = Array2::from_shape_fn((d, d).f(), |(i, j)| {
            if i >= j {
                1.0 / (1 + i - j) as f64
            } else {
                0.0
            }
        });
        let x = mix.dot(&z);
        let mut x = Array2::from_shape_vec((d, n).f(), x.t().iter().copied().collect()).unwrap();
        let mean = x.mean_axis(ndarray::Axis(1)).unwrap();
        for mut col in x.columns_mut() {
            col -= &mean;
        }
        let e = eigen(&covariance(x.view())).unwrap();
        assert!(
            e.values.windows(2).into_iter().all(|w| w[0] >= w[1]),
            "descending"
        );
        for kind in [Whitening::Pca, Whitening::Zca] {
            let w = matrix(&e, kind, 1e-9).unwrap();
            let mut xw = x.clone();
            apply(w.view(), &mut xw);
            let c = covariance(xw.view());
            for ((i, j), v) in c.indexed_iter() {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-6, "{kind:?} cov[{i},{j}] = {v}");
            }
            if kind == Whitening::Zca {
                assert!(
                    (&w - &w.t()).iter().all(|v| v.abs() < 1e-9),
                    "ZCA is symmetric"
                );
            }
        }
        assert!(matrix(&e, Whitening::None, 0.1).is_none());
    }

    /// Fitting and applying a whitening give the same bits on one core or two
    /// (fixed chunks and blocks, BLAS on one thread).
    #[test]
    fn whitening_is_the_same_on_any_pool() {
        let x = Array2::from_shape_fn((96, 2500).f(), |(i, j)| {
            ((i * 31 + j * 17) % 23) as f32 - 11.0
        });
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let c = covariance(x.view());
                let e = eigen(&c).unwrap();
                let w = matrix(&e, Whitening::Zca, 0.5).unwrap().mapv(|v| v as f32);
                let mut xw = x.clone();
                apply(w.view(), &mut xw);
                (c, xw)
            })
        };
        assert_eq!(run(1), run(2));
    }

    /// The cached decomposition is the computed one, bit for bit.
    #[test]
    fn the_cache_returns_the_same_bits() {
        let dir = tempfile::tempdir().unwrap();
        let x = Array2::from_shape_fn((6, 50).f(), |(i, j)| ((i * 7 + j * 13) % 11) as f64 - 5.0);
        let e = eigen(&covariance(x.view())).unwrap();
        save_cached(dir.path(), "k", &e).unwrap();
        assert_eq!(load_cached(dir.path(), "k", 6), Some(e));
        assert_eq!(
            load_cached(dir.path(), "k", 7),
            None,
            "another size is not used"
        );
    }
}
