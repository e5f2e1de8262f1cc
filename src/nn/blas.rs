//! The one safe wrapper around BLAS GEMM (column-major, with alpha, beta,
//! transposes and leading dimensions), and BLAS thread control.
//!
//! We call `cblas_?gemm` directly instead of going through ndarray: the hot path
//! needs sub-block views with a leading dimension (one configuration's rows of a
//! stacked weight matrix) and fused alpha/beta, and a direct call can never fall
//! back silently to a slower pure-Rust product.

use std::os::raw::{c_char, c_int};

use super::Real;

const COL_MAJOR: c_int = 102;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn cblas_sgemm(
        order: c_int,
        trans_a: c_int,
        trans_b: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f32,
        a: *const f32,
        lda: c_int,
        b: *const f32,
        ldb: c_int,
        beta: f32,
        c: *mut f32,
        ldc: c_int,
    );
    #[allow(clippy::too_many_arguments)]
    fn cblas_dgemm(
        order: c_int,
        trans_a: c_int,
        trans_b: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f64,
        a: *const f64,
        lda: c_int,
        b: *const f64,
        ldb: c_int,
        beta: f64,
        c: *mut f64,
        ldc: c_int,
    );
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

static GEMM_SPLIT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

/// Sets how many column blocks [`gemm_split`] cuts its product into, process-wide
/// like the BLAS thread count (1: no split, one BLAS call).
///
/// Why: OpenBLAS's own threading splits the trainer's thin layer-0 products
/// (50 x 100 x 3072 and 50 x 3072 x 100) poorly; with two cores, two
/// single-threaded calls on halves of the output run 10-25% faster.
pub fn set_split(parts: usize) {
    GEMM_SPLIT.store(parts.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// The current split of [`gemm_split`].
pub fn split() -> usize {
    GEMM_SPLIT.load(std::sync::atomic::Ordering::Relaxed)
}

/// Stacked layer-0 widths (configurations x hidden units) up to which one worker
/// splits its GEMMs over the cores rather than using OpenBLAS's threads
/// (measured with `shallow bench`: the split wins at 50-200 rows, loses at 400).
pub const SPLIT_MAX_ROWS: usize = 256;

/// How a process with `threads` cores running `workers` trainings at once uses
/// them, for a layer 0 of `rows` stacked output rows: (BLAS threads per call,
/// [`gemm_split`] parts). One worker with a thin layer 0 splits its big GEMMs
/// over single-threaded BLAS calls; otherwise the cores are shared out as BLAS
/// threads.
pub fn parallelism(threads: usize, workers: usize, rows: usize) -> (usize, usize) {
    let (threads, workers) = (threads.max(1), workers.max(1));
    if workers == 1 && threads > 1 && rows <= SPLIT_MAX_ROWS {
        (1, threads)
    } else {
        ((threads / workers).max(1), 1)
    }
}

/// Sets BLAS threads and the GEMM split from [`parallelism`]; returns them.
/// Run training inside a rayon pool with at least `threads` threads so the
/// split's blocks run in parallel.
pub fn configure(threads: usize, workers: usize, rows: usize) -> (usize, usize) {
    let (blas_threads, parts) = parallelism(threads, workers, rows);
    set_threads(blas_threads);
    set_split(parts);
    (blas_threads, parts)
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

/// Read-only column-major matrix view: element (i, j) is `data[i + j * ld]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    /// Backing storage, at least `ld * (cols - 1) + rows` long.
    pub data: &'a [T],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Leading dimension: distance between the starts of two columns (>= rows).
    pub ld: usize,
}

/// Mutable column-major matrix view: element (i, j) is `data[i + j * ld]`.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    /// Backing storage, at least `ld * (cols - 1) + rows` long.
    pub data: &'a mut [T],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Leading dimension (>= rows).
    pub ld: usize,
}

fn check_view(len: usize, rows: usize, cols: usize, ld: usize) {
    assert!(ld >= rows.max(1), "leading dimension {ld} < rows {rows}");
    if rows > 0 && cols > 0 {
        assert!(
            len >= ld * (cols - 1) + rows,
            "view {rows}x{cols} (ld {ld}) exceeds buffer of {len}"
        );
    }
}

impl<'a, T> MatRef<'a, T> {
    /// A dense `rows x cols` view (ld = rows) of the first `rows * cols` elements.
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self::with_ld(data, rows, cols, rows)
    }
    /// A view with an explicit leading dimension.
    pub fn with_ld(data: &'a [T], rows: usize, cols: usize, ld: usize) -> Self {
        check_view(data.len(), rows, cols, ld);
        MatRef {
            data,
            rows,
            cols,
            ld,
        }
    }
    /// The block of rows `r0..r0 + rows` (all columns), sharing storage.
    pub fn row_block(&self, r0: usize, rows: usize) -> MatRef<'a, T> {
        assert!(r0 + rows <= self.rows);
        MatRef::with_ld(&self.data[r0..], rows, self.cols, self.ld)
    }
    /// Columns `c0..c0 + cols`, sharing storage.
    pub fn col_block(&self, c0: usize, cols: usize) -> MatRef<'a, T> {
        assert!(c0 + cols <= self.cols);
        MatRef::with_ld(&self.data[c0 * self.ld..], self.rows, cols, self.ld)
    }
    /// Element (i, j).
    pub fn at(&self, i: usize, j: usize) -> &T {
        &self.data[i + j * self.ld]
    }
}

impl<'a, T> MatMut<'a, T> {
    /// A dense `rows x cols` view (ld = rows).
    pub fn new(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        Self::with_ld(data, rows, cols, rows)
    }
    /// A view with an explicit leading dimension.
    pub fn with_ld(data: &'a mut [T], rows: usize, cols: usize, ld: usize) -> Self {
        check_view(data.len(), rows, cols, ld);
        MatMut {
            data,
            rows,
            cols,
            ld,
        }
    }
    /// Reborrows as read-only.
    pub fn rb(&self) -> MatRef<'_, T> {
        MatRef {
            data: self.data,
            rows: self.rows,
            cols: self.cols,
            ld: self.ld,
        }
    }
    /// Reborrows mutably (shorter lifetime).
    pub fn rb_mut(&mut self) -> MatMut<'_, T> {
        MatMut {
            data: self.data,
            rows: self.rows,
            cols: self.cols,
            ld: self.ld,
        }
    }
    /// The block of rows `r0..r0 + rows`, sharing storage.
    pub fn row_block(self, r0: usize, rows: usize) -> MatMut<'a, T> {
        assert!(r0 + rows <= self.rows);
        let ld = self.ld;
        let cols = self.cols;
        MatMut::with_ld(&mut self.data[r0..], rows, cols, ld)
    }
    /// Splits into columns `0..j` and `j..cols`, sharing storage.
    pub fn split_cols(self, j: usize) -> (MatMut<'a, T>, MatMut<'a, T>) {
        assert!(j <= self.cols);
        let (rows, cols, ld) = (self.rows, self.cols, self.ld);
        let at = (j * ld).min(self.data.len());
        let (lo, hi) = self.data.split_at_mut(at);
        (
            MatMut::with_ld(lo, rows, j, ld),
            MatMut::with_ld(hi, rows, cols - j, ld),
        )
    }
    /// Element (i, j), mutably.
    pub fn at_mut(&mut self, i: usize, j: usize) -> &mut T {
        &mut self.data[i + j * self.ld]
    }
    /// Applies `f` to every element of the view (column by column).
    pub fn for_each(&mut self, mut f: impl FnMut(usize, usize, &mut T)) {
        for j in 0..self.cols {
            let col = &mut self.data[j * self.ld..j * self.ld + self.rows];
            for (i, v) in col.iter_mut().enumerate() {
                f(i, j, v);
            }
        }
    }
}

/// C <- alpha * op(A) op(B) + beta * C, with op(X) = X or X^T.
///
/// Shapes: op(A) is m x k, op(B) is k x n, C is m x n; all column-major views.
/// Panics on mismatched shapes (a programming error, never user input).
pub fn gemm<T: Real>(
    alpha: T,
    a: MatRef<'_, T>,
    trans_a: bool,
    b: MatRef<'_, T>,
    trans_b: bool,
    beta: T,
    c: MatMut<'_, T>,
) {
    let (m, ka) = if trans_a {
        (a.cols, a.rows)
    } else {
        (a.rows, a.cols)
    };
    let (kb, n) = if trans_b {
        (b.cols, b.rows)
    } else {
        (b.rows, b.cols)
    };
    assert_eq!(ka, kb, "gemm inner dimensions differ");
    assert_eq!((c.rows, c.cols), (m, n), "gemm output shape");
    if m == 0 || n == 0 {
        return;
    }
    unsafe {
        T::gemm_raw(
            if trans_a { TRANS } else { NO_TRANS },
            if trans_b { TRANS } else { NO_TRANS },
            m as c_int,
            n as c_int,
            ka as c_int,
            alpha,
            a.data.as_ptr(),
            a.ld as c_int,
            b.data.as_ptr(),
            b.ld as c_int,
            beta,
            c.data.as_mut_ptr(),
            c.ld as c_int,
        )
    }
}

/// [`gemm`] with C's columns cut into [`split`] blocks that run as rayon tasks
/// (each block: C_j <- alpha op(A) op(B)_j + beta C_j, the same arithmetic per
/// element as one call). Used for the large layer-0 products; shapes as in [`gemm`].
pub fn gemm_split<T: Real>(
    alpha: T,
    a: MatRef<'_, T>,
    trans_a: bool,
    b: MatRef<'_, T>,
    trans_b: bool,
    beta: T,
    c: MatMut<'_, T>,
) {
    gemm_parts(split(), alpha, a, trans_a, b, trans_b, beta, c)
}

/// Narrowest column block worth a task of its own.
const MIN_SPLIT_COLS: usize = 16;

#[allow(clippy::too_many_arguments)]
fn gemm_parts<T: Real>(
    parts: usize,
    alpha: T,
    a: MatRef<'_, T>,
    trans_a: bool,
    b: MatRef<'_, T>,
    trans_b: bool,
    beta: T,
    c: MatMut<'_, T>,
) {
    if parts <= 1 || c.cols < 2 * MIN_SPLIT_COLS {
        return gemm(alpha, a, trans_a, b, trans_b, beta, c);
    }
    let left = parts / 2;
    let j = c.cols * left / parts;
    let (b_lo, b_hi) = if trans_b {
        (b.row_block(0, j), b.row_block(j, b.rows - j))
    } else {
        (b.col_block(0, j), b.col_block(j, b.cols - j))
    };
    let (c_lo, c_hi) = c.split_cols(j);
    rayon::join(
        || gemm_parts(left, alpha, a, trans_a, b_lo, trans_b, beta, c_lo),
        || gemm_parts(parts - left, alpha, a, trans_a, b_hi, trans_b, beta, c_hi),
    );
}

/// Raw GEMM entry point per precision; used only by [`gemm`].
pub trait GemmRaw: Sized {
    /// # Safety
    /// Pointers and leading dimensions must describe valid column-major matrices.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        ta: c_int,
        tb: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: Self,
        a: *const Self,
        lda: c_int,
        b: *const Self,
        ldb: c_int,
        beta: Self,
        c: *mut Self,
        ldc: c_int,
    );
}

impl GemmRaw for f32 {
    unsafe fn gemm_raw(
        ta: c_int,
        tb: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f32,
        a: *const f32,
        lda: c_int,
        b: *const f32,
        ldb: c_int,
        beta: f32,
        c: *mut f32,
        ldc: c_int,
    ) {
        cblas_sgemm(
            COL_MAJOR, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
        )
    }
}

impl GemmRaw for f64 {
    unsafe fn gemm_raw(
        ta: c_int,
        tb: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f64,
        a: *const f64,
        lda: c_int,
        b: *const f64,
        ldb: c_int,
        beta: f64,
        c: *mut f64,
        ldc: c_int,
    ) {
        cblas_dgemm(
            COL_MAJOR, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The split product is the one-call product (to f32 rounding) for the
    /// trainer's shapes (plain and transposed B, strided C, odd column counts).
    #[test]
    fn split_gemm_equals_one_call() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        set_threads(1);
        let (m, k) = (50, 3072);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        for (n, trans_b) in [(100, false), (101, false), (3072, true), (999, true)] {
            let b: Vec<f32> = (0..k.min(n) * k.max(n))
                .map(|i| ((i * 104729) % 997) as f32 / 498.5 - 1.0)
                .collect();
            let (bm, kk) = if trans_b {
                // op(B) = B^T is 100 x n: the gradient's G X^T shape.
                (MatRef::new(&b[..n * 100], n, 100), 100)
            } else {
                (MatRef::new(&b[..k * n], k, n), k)
            };
            let am = MatRef::new(&a[..m * kk], m, kk);
            let ld = m + 3;
            let start: Vec<f32> = (0..ld * n).map(|i| (i % 13) as f32).collect();
            let mut one = start.clone();
            gemm(
                0.5,
                am,
                false,
                bm,
                trans_b,
                0.25,
                MatMut::with_ld(&mut one, m, n, ld),
            );
            for parts in [2, 3, 4] {
                let mut split = start.clone();
                let c = MatMut::with_ld(&mut split, m, n, ld);
                pool.install(|| gemm_parts(parts, 0.5, am, false, bm, trans_b, 0.25, c));
                // Not bit for bit: OpenBLAS picks kernels by width, so the sums
                // round differently; a wrong block would be off by O(1).
                let scale = one.iter().fold(0.0f32, |s, v| s.max(v.abs()));
                let worst = one
                    .iter()
                    .zip(&split)
                    .map(|(p, q)| (p - q).abs())
                    .fold(0.0f32, f32::max);
                assert!(
                    worst <= 1e-5 * scale,
                    "n {n}, parts {parts}: differs by {worst} (largest entry {scale})"
                );
                assert_eq!(one[m..ld], split[m..ld], "padding rows untouched");
            }
        }
    }

    #[test]
    fn gemm_matches_naive_product_with_transposes_and_sub_blocks() {
        // A: 5x4 stored with ld 7 (two padding rows), B: 4x3.
        let a_store: Vec<f64> = (0..28).map(|v| v as f64 * 0.5 - 3.0).collect();
        let b_store: Vec<f64> = (0..12).map(|v| (v as f64).sin()).collect();
        let a = MatRef::with_ld(&a_store, 5, 4, 7);
        let b = MatRef::new(&b_store, 4, 3);
        let mut c = vec![1.0f64; 15];
        gemm(2.0, a, false, b, false, 0.5, MatMut::new(&mut c, 5, 3));
        for i in 0..5 {
            for j in 0..3 {
                let want: f64 = 0.5 + 2.0 * (0..4).map(|k| a.at(i, k) * b.at(k, j)).sum::<f64>();
                assert!((c[i + 5 * j] - want).abs() < 1e-12);
            }
        }
        // (B^T)(A^T) = (AB)^T
        let mut ct = vec![0.0f64; 15];
        gemm(1.0, b, true, a, true, 0.0, MatMut::new(&mut ct, 3, 5));
        for i in 0..5 {
            for j in 0..3 {
                let want: f64 = (0..4).map(|k| a.at(i, k) * b.at(k, j)).sum();
                assert!((ct[j + 3 * i] - want).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn thread_count_is_set_at_run_time() {
        set_threads(1);
        assert_eq!(threads(), 1);
        set_threads(2);
        assert_eq!(threads(), 2);
        assert!(describe().contains("OpenBLAS"));
    }
}
