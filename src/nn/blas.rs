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

/// [`gemm`] with C's columns cut into [`blocks_for`]`(cols)` fixed blocks (block
/// i starts at column `cols * i / blocks`), each one single-threaded BLAS call,
/// run as rayon tasks: in parallel where the pool has idle threads, one after
/// another where it has none, with the same arithmetic either way. Used for the
/// large layer-0 products; shapes as in [`gemm`]. BLAS must run single-threaded
/// ([`set_threads`]`(1)`) for the result not to depend on the machine.
pub fn gemm_blocks<T: Real>(
    alpha: T,
    a: MatRef<'_, T>,
    trans_a: bool,
    b: MatRef<'_, T>,
    trans_b: bool,
    beta: T,
    c: MatMut<'_, T>,
) {
    let parts = blocks_for(c.cols);
    let mut bounds = [0usize; MAX_BLOCKS + 1];
    for (i, v) in bounds.iter_mut().enumerate().take(parts + 1) {
        *v = c.cols * i / parts;
    }
    gemm_range(&bounds[..parts + 1], alpha, a, trans_a, b, trans_b, beta, c)
}

/// The blocks between `bounds` (column boundaries relative to `c`, from 0 to
/// `c.cols`): one BLAS call each, halves forked with `rayon::join`.
#[allow(clippy::too_many_arguments)]
fn gemm_range<T: Real>(
    bounds: &[usize],
    alpha: T,
    a: MatRef<'_, T>,
    trans_a: bool,
    b: MatRef<'_, T>,
    trans_b: bool,
    beta: T,
    c: MatMut<'_, T>,
) {
    let parts = bounds.len() - 1;
    if parts <= 1 {
        return gemm(alpha, a, trans_a, b, trans_b, beta, c);
    }
    let mid = parts / 2;
    let j = bounds[mid] - bounds[0];
    let (b_lo, b_hi) = if trans_b {
        (b.row_block(0, j), b.row_block(j, b.rows - j))
    } else {
        (b.col_block(0, j), b.col_block(j, b.cols - j))
    };
    let (c_lo, c_hi) = c.split_cols(j);
    rayon::join(
        || {
            gemm_range(
                &bounds[..=mid],
                alpha,
                a,
                trans_a,
                b_lo,
                trans_b,
                beta,
                c_lo,
            )
        },
        || gemm_range(&bounds[mid..], alpha, a, trans_a, b_hi, trans_b, beta, c_hi),
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
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        for (n, trans_b) in [
            (100, false),
            (101, false),
            (3072, true),
            (999, true),
            (40, false),
        ] {
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
            let blocked: Vec<Vec<f32>> = pools
                .iter()
                .map(|pool| {
                    let mut out = start.clone();
                    let c = MatMut::with_ld(&mut out, m, n, ld);
                    pool.install(|| gemm_blocks(0.5, am, false, bm, trans_b, 0.25, c));
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
            assert_eq!(one[m..ld], blocked[0][m..ld], "padding rows untouched");
        }
        assert_eq!(
            (blocks_for(100), blocks_for(3072), blocks_for(40)),
            (2, 4, 1)
        );
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
