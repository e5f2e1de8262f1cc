//! The one checked GEMM over ndarray views (alpha, beta, transposes read from
//! the views' strides), and OpenBLAS thread and kernel control.
//!
//! [`gemm`] calls `cblas_?gemm` (from `cblas-sys`) directly on the views'
//! pointers instead of going through `ndarray::linalg::general_mat_mul`: that
//! one hands a strided view (one configuration's rows of a stacked weight
//! matrix) to the pure-Rust `matrixmultiply` without a word, and the hot path
//! lives on such views. [`gemm`] takes every layout BLAS can and refuses the rest.

use std::fmt;
use std::os::raw::{c_char, c_int};

use cblas_sys::CBLAS_TRANSPOSE;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};

use super::real::Real;

// The OpenBLAS extensions no crate binds (cblas-sys binds only the standard CBLAS).
extern "C" {
    fn openblas_set_num_threads(n: c_int);
    fn openblas_get_num_threads() -> c_int;
    fn openblas_get_config() -> *const c_char;
    fn openblas_get_corename() -> *const c_char;
}

/// Sets the number of threads OpenBLAS uses for every following call, process-wide.
/// (`OPENBLAS_NUM_THREADS` is read only when the library loads, so this is the way.)
pub fn set_threads(n: usize) {
    unsafe { openblas_set_num_threads(n.max(1) as c_int) }
}

/// Number of threads OpenBLAS currently uses.
pub fn threads() -> usize {
    unsafe { openblas_get_num_threads() as usize }
}

/// OpenBLAS build description and the kernel it picked for this CPU, e.g.
/// `"OpenBLAS 0.3.21 DYNAMIC_ARCH ... (Zen)"`.
pub fn describe() -> String {
    unsafe {
        let cfg = std::ffi::CStr::from_ptr(openblas_get_config()).to_string_lossy();
        let core = std::ffi::CStr::from_ptr(openblas_get_corename()).to_string_lossy();
        format!("{} ({})", cfg.trim(), core.trim())
    }
}

/// The kernel family OpenBLAS runs on this CPU, e.g. `"Haswell"` or `"SkylakeX"`.
pub fn kernel() -> String {
    unsafe {
        std::ffi::CStr::from_ptr(openblas_get_corename())
            .to_string_lossy()
            .trim()
            .to_string()
    }
}

/// Environment variable with which shallow tells its re-started self that it
/// chose the kernel (see [`better_kernel`]).
pub const KERNEL_CHOSEN_VAR: &str = "SHALLOW_CHOSE_OPENBLAS_CORETYPE";

/// Who chose the BLAS kernel: the user through `OPENBLAS_CORETYPE`, shallow
/// (see [`better_kernel`]), or OpenBLAS's own detection.
pub fn kernel_source() -> String {
    if std::env::var_os(KERNEL_CHOSEN_VAR).is_some() {
        format!(
            "chosen by shallow: OpenBLAS did not recognise this CPU ({}), so shallow set OPENBLAS_CORETYPE",
            std::env::var(KERNEL_CHOSEN_VAR).unwrap_or_default()
        )
    } else if let Ok(v) = std::env::var("OPENBLAS_CORETYPE") {
        format!("forced by the environment: OPENBLAS_CORETYPE={v}")
    } else {
        "detected by OpenBLAS".to_string()
    }
}

/// The kernel shallow should ask OpenBLAS for, when OpenBLAS fell back to a
/// generic one on a CPU it does not know: Debian's OpenBLAS 0.3.21 picks its
/// SSE3 "Prescott" kernels on newer Intel Xeons (Sapphire Rapids and later), ten
/// times slower than the AVX-512 ones the CPU runs. `None` when the user set
/// `OPENBLAS_CORETYPE` (their choice is kept) or the detected kernel is fine.
pub fn better_kernel() -> Option<&'static str> {
    if std::env::var_os("OPENBLAS_CORETYPE").is_some() {
        return None;
    }
    let generic = matches!(
        kernel().as_str(),
        "Prescott"
            | "Core2"
            | "Penryn"
            | "Dunnington"
            | "Nehalem"
            | "Atom"
            | "Katmai"
            | "Coppermine"
            | "Northwood"
            | "Banias"
            | "Unknown"
    );
    if !generic {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl")
        {
            return Some("SkylakeX");
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Some("Haswell");
        }
    }
    None
}

/// Debian's OpenBLAS 0.3.21 does not know the newest CPUs and falls back to
/// its SSE3 kernels there, ten times slower. OpenBLAS picks its kernel when it
/// loads, before `main`, so in that case the program must start again with
/// `OPENBLAS_CORETYPE` naming the kernel the CPU can run ([`better_kernel`]):
/// this says so, as (the kernel, the value of [`KERNEL_CHOSEN_VAR`] to set for
/// the restart). `None` when there is nothing to do: the kernel is right, the
/// user set `OPENBLAS_CORETYPE` (always kept), or this is the restart. `main`
/// restarts the process; the library never does.
pub fn restart_kernel() -> Option<(&'static str, String)> {
    if std::env::var_os(KERNEL_CHOSEN_VAR).is_some() {
        return None;
    }
    let kernel = better_kernel()?;
    let detected = self::kernel();
    Some((
        kernel,
        format!("it picked {detected}; shallow asked for {kernel}"),
    ))
}

/// How BLAS reads one operand: column-major with leading dimension `ld`, or
/// the transpose of such a matrix (a row-major view, e.g. `x.t()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    transposed: bool,
    ld: usize,
}

/// A view [`gemm`] cannot hand to BLAS, or operands whose shapes do not fit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GemmError {
    /// Neither unit row stride nor unit column stride (or a negative stride):
    /// copy it into a standard or Fortran-order array first.
    Layout {
        /// Which operand: `"a"`, `"b"` or `"c"`.
        operand: &'static str,
        /// Its shape.
        shape: [usize; 2],
        /// Its strides, in elements.
        strides: [isize; 2],
    },
    /// op(A) is m x k, op(B) is k' x n, C is m' x n': k != k' or (m, n) != (m', n').
    Shape {
        /// Shape of A as given.
        a: [usize; 2],
        /// Shape of B as given.
        b: [usize; 2],
        /// Shape of C as given.
        c: [usize; 2],
    },
    /// A dimension or leading dimension beyond BLAS's 32-bit integers.
    TooLarge,
}

impl fmt::Display for GemmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GemmError::Layout {
                operand,
                shape,
                strides,
            } => write!(
                f,
                "gemm: operand {operand} ({}x{}, strides {:?}) has no unit stride along either axis, \
                 which BLAS cannot read; pass a column-major view, a transposed one, or a copy",
                shape[0], shape[1], strides
            ),
            GemmError::Shape { a, b, c } => write!(
                f,
                "gemm: shapes do not fit: A {}x{} times B {}x{} into C {}x{}",
                a[0], a[1], b[0], b[1], c[0], c[1]
            ),
            GemmError::TooLarge => write!(f, "gemm: a dimension exceeds BLAS's 32-bit range"),
        }
    }
}

impl std::error::Error for GemmError {}

/// The BLAS layout of a `rows x cols` view with `strides`, if it has one.
/// A dimension of length 1 puts no constraint on its stride.
fn layout_of(rows: usize, cols: usize, strides: &[isize]) -> Option<Layout> {
    let (s0, s1) = (strides[0], strides[1]);
    let fits = |ld: isize, min: usize| ld >= min.max(1) as isize;
    // Column-major: unit step down a column, columns `ld` apart.
    if rows <= 1 || s0 == 1 {
        let ld = if cols <= 1 { rows.max(1) as isize } else { s1 };
        if fits(ld, rows) {
            return Some(Layout {
                transposed: false,
                ld: ld as usize,
            });
        }
    }
    // Row-major: the transpose of a column-major cols x rows matrix.
    if cols <= 1 || s1 == 1 {
        let ld = if rows <= 1 { cols.max(1) as isize } else { s0 };
        if fits(ld, cols) {
            return Some(Layout {
                transposed: true,
                ld: ld as usize,
            });
        }
    }
    None
}

/// C <- alpha A B + beta C on ndarray views: the one GEMM of the crate, always
/// BLAS (`cblas_sgemm`/`cblas_dgemm`), never a fallback.
///
/// Shapes: A is m x k, B is k x n, C is m x n. Each operand may be column-major
/// (strides `[1, ld]`: a Fortran-order array or a block of one, such as one
/// configuration's rows of a stacked layer) or row-major (strides `[ld, 1]`:
/// a standard array, or `.t()` of a column-major one, which BLAS reads as a
/// transpose). Panics with a [`GemmError`] message on any other layout or on
/// shapes that do not fit: both are programming errors; use [`try_gemm`] to
/// get the error instead. Allocates nothing.
pub fn gemm<T: Real>(
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    beta: T,
    c: ArrayViewMut2<'_, T>,
) {
    if let Err(e) = try_gemm(alpha, a, b, beta, c) {
        panic!("{e}");
    }
}

/// [`gemm`], returning the layout or shape error instead of panicking.
pub fn try_gemm<T: Real>(
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    beta: T,
    c: ArrayViewMut2<'_, T>,
) -> Result<(), GemmError> {
    let (m, k) = a.dim();
    let (kb, n) = b.dim();
    if k != kb || c.dim() != (m, n) {
        return Err(GemmError::Shape {
            a: [m, k],
            b: [kb, n],
            c: [c.nrows(), c.ncols()],
        });
    }
    let check = |operand, rows, cols, strides: &[isize]| {
        layout_of(rows, cols, strides).ok_or(GemmError::Layout {
            operand,
            shape: [rows, cols],
            strides: [strides[0], strides[1]],
        })
    };
    let la = check("a", m, k, a.strides())?;
    let lb = check("b", k, n, b.strides())?;
    let lc = check("c", m, n, c.strides())?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    let big = |v: usize| v > c_int::MAX as usize;
    if [m, n, k, la.ld, lb.ld, lc.ld].into_iter().any(big) {
        return Err(GemmError::TooLarge);
    }
    let op = |l: Layout| {
        if l.transposed {
            CBLAS_TRANSPOSE::CblasTrans
        } else {
            CBLAS_TRANSPOSE::CblasNoTrans
        }
    };
    let mut c = c;
    // SAFETY: each pointer starts a view whose every element (i, j) lies at
    // i + j * ld (column-major) or j + i * ld (transposed) from it, as checked
    // above; C is borrowed mutably, so it aliases neither A nor B.
    unsafe {
        if !lc.transposed {
            T::gemm_raw(
                op(la),
                op(lb),
                [m, n, k],
                alpha,
                (a.as_ptr(), la.ld),
                (b.as_ptr(), lb.ld),
                beta,
                (c.as_mut_ptr(), lc.ld),
            );
        } else {
            // A row-major C is C^T column-major: C^T <- alpha B^T A^T + beta C^T.
            let flip = |l: Layout| Layout {
                transposed: !l.transposed,
                ld: l.ld,
            };
            T::gemm_raw(
                op(flip(lb)),
                op(flip(la)),
                [n, m, k],
                alpha,
                (b.as_ptr(), lb.ld),
                (a.as_ptr(), la.ld),
                beta,
                (c.as_mut_ptr(), lc.ld),
            );
        }
    }
    Ok(())
}

/// Narrowest column block [`gemm_blocks`] cuts a product into.
pub const MIN_BLOCK_COLS: usize = 48;

/// Most column blocks [`gemm_blocks`] cuts a product into.
pub const MAX_BLOCKS: usize = 4;

/// How many column blocks [`gemm_blocks`] cuts an output of `cols` columns into:
/// a function of the shape alone, never of the cores, so that a product gives
/// the same bits on one core or many (`cols / 48`, from 1 to 4: a batch of 100
/// columns makes 2 blocks, 3072 features make 4).
pub fn blocks_for(cols: usize) -> usize {
    (cols / MIN_BLOCK_COLS).clamp(1, MAX_BLOCKS)
}

/// [`gemm`] with C's columns cut into [`blocks_for`]`(n)` fixed blocks (block
/// i starts at column `n * i / blocks`), each one single-threaded BLAS call,
/// run as rayon tasks: in parallel where the pool has idle threads, one after
/// another where it has none, with the same arithmetic either way. Used for the
/// large layer-0 products; shapes and layouts as in [`gemm`]. BLAS must run
/// single-threaded ([`set_threads`]`(1)`) for the result not to depend on the machine.
pub fn gemm_blocks<T: Real>(
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    beta: T,
    c: ArrayViewMut2<'_, T>,
) {
    let n = c.ncols();
    let parts = blocks_for(n);
    let mut bounds = [0usize; MAX_BLOCKS + 1];
    for (i, v) in bounds.iter_mut().enumerate().take(parts + 1) {
        *v = n * i / parts;
    }
    gemm_range(&bounds[..parts + 1], alpha, a, b, beta, c)
}

/// `f(j0, block)` on `c`'s columns cut into the fixed blocks of [`blocks_for`]
/// (block i starts at column `n * i / blocks`, rounded down to even with
/// `even`, so that a pair of columns never straddles two blocks), halves
/// forked with `rayon::join`: for kernels of our own that keep
/// [`gemm_blocks`]'s guarantee (the same bits on any pool).
pub fn for_column_blocks<T: Send>(
    c: ArrayViewMut2<'_, T>,
    even: bool,
    f: &(dyn Fn(usize, ArrayViewMut2<'_, T>) + Sync),
) {
    let n = c.ncols();
    let parts = blocks_for(n);
    let mut bounds = [0usize; MAX_BLOCKS + 1];
    for (i, v) in bounds.iter_mut().enumerate().take(parts + 1) {
        let at = n * i / parts;
        *v = if even && i < parts { at & !1 } else { at };
    }
    column_range(&bounds[..parts + 1], c, f);
}

fn column_range<T: Send>(
    bounds: &[usize],
    c: ArrayViewMut2<'_, T>,
    f: &(dyn Fn(usize, ArrayViewMut2<'_, T>) + Sync),
) {
    let parts = bounds.len() - 1;
    if parts <= 1 {
        return f(bounds[0], c);
    }
    let mid = parts / 2;
    let (lo, hi) = c.split_at(Axis(1), bounds[mid] - bounds[0]);
    rayon::join(
        || column_range(&bounds[..=mid], lo, f),
        || column_range(&bounds[mid..], hi, f),
    );
}

/// The blocks between `bounds` (column boundaries relative to `c`, from 0 to
/// its width): one BLAS call each, halves forked with `rayon::join`.
fn gemm_range<T: Real>(
    bounds: &[usize],
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    beta: T,
    c: ArrayViewMut2<'_, T>,
) {
    let parts = bounds.len() - 1;
    if parts <= 1 {
        return gemm(alpha, a, b, beta, c);
    }
    let mid = parts / 2;
    let j = bounds[mid] - bounds[0];
    let (b_lo, b_hi) = b.split_at(Axis(1), j);
    let (c_lo, c_hi) = c.split_at(Axis(1), j);
    rayon::join(
        || gemm_range(&bounds[..=mid], alpha, a, b_lo, beta, c_lo),
        || gemm_range(&bounds[mid..], alpha, a, b_hi, beta, c_hi),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array2, ShapeBuilder};

    fn filled(rows: usize, cols: usize, f: impl Fn(usize) -> f32) -> Array2<f32> {
        let v: Vec<f32> = (0..rows * cols).map(f).collect();
        Array2::from_shape_vec((rows, cols).f(), v).unwrap()
    }

    /// The blocked product gives the same bits on one thread or three, and is
    /// the one-call product to f32 rounding, for the trainer's shapes (plain and
    /// transposed B, strided C, odd column counts).
    #[test]
    fn blocked_gemm_is_the_same_on_any_pool_and_equals_one_call() {
        let pools: Vec<rayon::ThreadPool> = [1, 3]
            .iter()
            .map(|&t| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap()
            })
            .collect();
        set_threads(1);
        let (m, k) = (50, 3072);
        for (n, trans_b) in [
            (100, false),
            (101, false),
            (3072, true),
            (999, true),
            (40, false),
        ] {
            // op(B) = B^T is 100 x n: the gradient's G X^T shape.
            let kk = if trans_b { 100 } else { k };
            let a = filled(m, kk, |i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0);
            let b_store = if trans_b {
                filled(n, kk, |i| ((i * 104729) % 997) as f32 / 498.5 - 1.0)
            } else {
                filled(kk, n, |i| ((i * 104729) % 997) as f32 / 498.5 - 1.0)
            };
            let b = if trans_b { b_store.t() } else { b_store.view() };
            // C is rows 0..m of an (m + 3) x n array: a strided block.
            let ld = m + 3;
            let start = filled(ld, n, |i| (i % 13) as f32);
            let mut one = start.clone();
            gemm(0.5, a.view(), b, 0.25, one.slice_mut(s![..m, ..]));
            let blocked: Vec<Array2<f32>> = pools
                .iter()
                .map(|pool| {
                    let mut out = start.clone();
                    let c = out.slice_mut(s![..m, ..]);
                    pool.install(|| gemm_blocks(0.5, a.view(), b, 0.25, c));
                    out
                })
                .collect();
            assert_eq!(blocked[0], blocked[1], "n {n}: one thread and three differ");
            // Against one call: OpenBLAS picks kernels by width, so the sums may
            // round differently; a wrong block would be off by O(1).
            let scale = one.iter().fold(0.0f32, |s, v| s.max(v.abs()));
            let worst = one
                .iter()
                .zip(&blocked[0])
                .map(|(p, q)| (p - q).abs())
                .fold(0.0f32, f32::max);
            assert!(
                worst <= 1e-5 * scale,
                "n {n}: differs by {worst} (largest entry {scale})"
            );
            assert_eq!(
                one.slice(s![m.., ..]),
                blocked[0].slice(s![m.., ..]),
                "padding rows untouched"
            );
            assert_eq!(one.slice(s![m.., ..]), start.slice(s![m.., ..]));
        }
        assert_eq!(
            (blocks_for(100), blocks_for(3072), blocks_for(40)),
            (2, 4, 1)
        );
    }

    fn naive(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> Array2<f64> {
        let (m, k) = a.dim();
        let n = b.ncols();
        Array2::from_shape_fn((m, n), |(i, j)| (0..k).map(|p| a[[i, p]] * b[[p, j]]).sum())
    }

    /// Every layout BLAS can read gives the naive product: column-major blocks
    /// with a leading dimension, transposed (row-major) operands, a row-major C,
    /// single rows and columns.
    #[test]
    fn gemm_matches_naive_product_for_every_layout() {
        // A: 5x4 block of a 7x4 Fortran array (ld 7), B: 4x3.
        let a_store = Array2::from_shape_fn((7, 4).f(), |(i, j)| (i + 7 * j) as f64 * 0.5 - 3.0);
        let a = a_store.slice(s![..5, ..]);
        let b_store = Array2::from_shape_fn((4, 3).f(), |(i, j)| ((i + 4 * j) as f64).sin());
        let b = b_store.view();
        let want = naive(a, b);
        let mut c = Array2::from_elem((5, 3).f(), 1.0);
        gemm(2.0, a, b, 0.5, c.view_mut());
        for ((i, j), v) in c.indexed_iter() {
            assert!((v - (0.5 + 2.0 * want[[i, j]])).abs() < 1e-12, "({i}, {j})");
        }
        // (B^T)(A^T) = (AB)^T, both operands read transposed.
        let mut ct = Array2::zeros((3, 5).f());
        gemm(1.0, b.t(), a.t(), 0.0, ct.view_mut());
        assert!(ct
            .iter()
            .zip(want.t().iter())
            .all(|(p, q)| (p - q).abs() < 1e-12));
        // Standard (row-major) arrays everywhere, C included.
        let (ar, br) = (a.to_owned(), b.to_owned());
        assert!(ar.is_standard_layout());
        let mut cr = Array2::zeros((5, 3));
        gemm(1.0, ar.view(), br.view(), 0.0, cr.view_mut());
        assert!(cr
            .iter()
            .zip(want.iter())
            .all(|(p, q)| (p - q).abs() < 1e-12));
        // One row times one column, and a column block of a standard array.
        let mut dot = Array2::zeros((1, 1));
        gemm(
            1.0,
            a.slice(s![2..3, ..]),
            b.slice(s![.., 1..2]),
            0.0,
            dot.view_mut(),
        );
        assert!((dot[[0, 0]] - want[[2, 1]]).abs() < 1e-12);
        let mut part = Array2::zeros((5, 2));
        gemm(1.0, ar.view(), br.slice(s![.., 1..]), 0.0, part.view_mut());
        assert!((part[[4, 1]] - want[[4, 2]]).abs() < 1e-12);
    }

    /// Views without a unit stride, and shapes that do not fit, are refused
    /// with an error that names the operand; nothing falls back.
    #[test]
    fn gemm_refuses_what_blas_cannot_take() {
        let a_store = Array2::<f64>::ones((6, 6).f());
        let every_other = a_store.slice(s![..;2, ..;2]); // strides [2, 12]
        let b = Array2::<f64>::ones((3, 2).f());
        let mut c = Array2::<f64>::zeros((3, 2).f());
        let err = try_gemm(1.0, every_other, b.view(), 0.0, c.view_mut()).unwrap_err();
        assert!(
            matches!(err, GemmError::Layout { operand: "a", .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("operand a (3x3, strides [2, 12])"),
            "{err}"
        );
        let reversed = b.slice(s![..;-1, ..]);
        let a = Array2::<f64>::ones((3, 3).f());
        let err = try_gemm(1.0, a.view(), reversed, 0.0, c.view_mut()).unwrap_err();
        assert!(
            matches!(err, GemmError::Layout { operand: "b", .. }),
            "{err:?}"
        );
        let mut wide = Array2::<f64>::zeros((3, 3).f());
        let err = try_gemm(1.0, a.view(), b.view(), 0.0, wide.view_mut()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "gemm: shapes do not fit: A 3x3 times B 3x2 into C 3x3"
        );
        assert!(c.iter().all(|&v| v == 0.0), "a refused call writes nothing");
    }

    /// (Only to 1: under `cargo test` every test of this binary shares the
    /// process-wide BLAS thread count, and the blocked product relies on 1.)
    #[test]
    fn thread_count_is_set_at_run_time_and_the_kernel_is_named() {
        set_threads(1);
        assert_eq!(threads(), 1);
        assert!(describe().contains("OpenBLAS"));
        assert!(
            describe().contains(&kernel()),
            "{} / {}",
            describe(),
            kernel()
        );
        assert!(!kernel_source().is_empty());
    }
}
