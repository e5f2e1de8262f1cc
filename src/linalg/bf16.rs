//! Mixed-precision GEMM for CPUs with AVX512-BF16 (AMD Zen 4/5, Intel Cooper
//! Lake and Sapphire Rapids onwards): bf16 operands, f32 products and sums,
//! through `VDPBF16PS`, which does twice the multiply-adds of an f32 FMA per
//! instruction. Debian's OpenBLAS 0.3.21 has no `sbgemm`, so this is our own.
//! Whether it beats f32 depends on how often the CPU issues it: twice the f32
//! FMA rate on Zen 5, half on Sapphire Rapids ([`instruction_peak`] measures it).
//!
//! C (m x n, f32) = alpha * A (m x k) B (k x n) + beta * C, with
//! - A packed by [`PackedA`]: panels of [`MR`] rows; within a panel, for each
//!   pair of columns (2p, 2p + 1), the [`MR`] rows' pairs (a[r, 2p], a[r, 2p + 1])
//!   side by side, so that one 64-byte load holds 16 rows' pairs;
//! - B read through a [`BView`]: each column's k values in order (the pairs
//!   (b[2p, j], b[2p + 1, j]) adjacent), broadcast one pair at a time; packed
//!   by [`PackedB`] per product, or a batch of a [`PackedSet`] (a training
//!   set converted once per process, in both layouts a step reads);
//! - k padded with a zero to an even length, m with zero rows to a whole panel.
//!
//! [`gemm_blocks_repacking`] also leaves the new C packed as an A operand, from
//! the registers as it stores each tile: the SGD update re-packs the weights in
//! its own pass.
//!
//! The arithmetic is fixed: each output starts from 0 and adds, pair by pair in
//! k order, the odd product and then the even one (each exact in f32, each sum
//! rounded to nearest even, subnormals flushed to zero, as `VDPBF16PS` does),
//! then C = alpha * acc + beta * C (C not read when beta is 0). [`gemm_emulated`]
//! does the same in scalar code, and the tests require the same bits.

use anyhow::{bail, Result};
use ndarray::{ArrayView2, ArrayViewMut2};

/// Rows of a packed panel of A: two 16-lane vectors.
pub const MR: usize = 32;

/// Columns of C one micro-kernel call computes.
pub const NR: usize = 12;

/// Environment variable that makes [`available`] answer no, as on a CPU
/// without AVX512-BF16: to see (and test) the refusal on any machine.
pub const DISABLE_VAR: &str = "SHALLOW_NO_BF16";

/// Whether this CPU runs the kernel (AVX-512 F, BW, VL and BF16), detected at
/// run time (and not disabled by `SHALLOW_NO_BF16`).
/// Asked once per process (the products ask on every call).
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if std::env::var_os(DISABLE_VAR).is_some() {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512bf16")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// The refusal when the CPU lacks the feature, naming it and the way out.
pub fn require() -> Result<()> {
    if !available() {
        bail!(
            "--precision bf16 needs a CPU with AVX512-BF16 (avx512_bf16 in /proc/cpuinfo: AMD Zen 4 or later, \
             Intel Cooper Lake, Sapphire Rapids or later); this one has none: use --precision f32"
        );
    }
    Ok(())
}

/// `x` rounded to the nearest bf16, ties to even (NaN stays a quiet NaN), as
/// `VCVTNE2PS2BF16` does, subnormals flushed to a signed zero.
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) as u16) | 0x0040;
    }
    if x != 0.0 && x.abs() < f32::MIN_POSITIVE {
        return ((bits >> 16) as u16) & 0x8000;
    }
    let rounding = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// The f32 a bf16 stands for (exact).
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Pairs along k: `k` rounded up to even, halved.
fn pairs(k: usize) -> usize {
    k.div_ceil(2)
}

/// A (m x k) in bf16 panels of [`MR`] rows (see the module), allocated once
/// for k up to a capacity and re-packed in place ([`Self::pack`]) as A changes.
#[derive(Clone, Debug)]
pub struct PackedA {
    m: usize,
    k: usize,
    /// panels x pairs(k) x MR x 2 values (room for pairs(k_cap)).
    data: Vec<u16>,
}

impl PackedA {
    /// Room for an m x k matrix (zeros), and for any narrower one.
    pub fn new(m: usize, k: usize) -> Self {
        PackedA {
            m,
            k,
            data: vec![0; m.div_ceil(MR) * pairs(k) * MR * 2],
        }
    }

    /// A packed copy of `a`.
    pub fn of(a: ArrayView2<'_, f32>) -> Self {
        let mut p = PackedA::new(a.nrows(), a.ncols());
        p.pack(a);
        p
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.m
    }

    /// Columns (the inner dimension) of what was packed last.
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Packs `a` (m x k with k up to the capacity, any layout) in place,
    /// rounding to bf16; allocates nothing.
    pub fn pack(&mut self, a: ArrayView2<'_, f32>) {
        let k = a.ncols();
        assert!(
            a.nrows() == self.m && self.m.div_ceil(MR) * pairs(k) * MR * 2 <= self.data.len(),
            "PackedA: {}x{} does not fit {} rows",
            a.nrows(),
            k,
            self.m
        );
        self.k = k;
        let kp = pairs(k);
        if k % 2 == 1 {
            // The padding column: zero in every row.
            for panel in 0..self.m.div_ceil(MR) {
                let base = panel * kp * MR * 2 + (kp - 1) * MR * 2;
                for r in 0..MR {
                    self.data[base + r * 2 + 1] = 0;
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        if a.strides()[0] == 1 && available() {
            // SAFETY: the features were detected; columns are contiguous.
            unsafe { kernel::pack_a(&mut self.data, a, kp) };
            return;
        }
        self.pack_scalar(a, kp);
    }

    /// [`Self::pack`] element by element (any layout, any CPU).
    fn pack_scalar(&mut self, a: ArrayView2<'_, f32>, kp: usize) {
        for (i, row) in a.rows().into_iter().enumerate() {
            let (panel, r) = (i / MR, i % MR);
            let base = panel * kp * MR * 2 + r * 2;
            for (j, &v) in row.iter().enumerate() {
                self.data[base + (j / 2) * MR * 2 + (j % 2)] = to_bf16(v);
            }
        }
        // Rows past m in the last panel stay zero: nothing ever writes them.
    }

    /// Element (i, j) as f32 (after rounding; zero in the padding).
    pub fn get(&self, i: usize, j: usize) -> f32 {
        let kp = pairs(self.k);
        from_bf16(self.data[(i / MR) * kp * MR * 2 + (j / 2) * MR * 2 + (i % MR) * 2 + j % 2])
    }
}

/// B (k x n) as bf16 columns of k values in order, k padded to even (see the
/// module), allocated once for k and n up to a capacity.
#[derive(Clone, Debug)]
pub struct PackedB {
    k: usize,
    n: usize,
    /// n x pairs(k) x 2 values (room for the capacity).
    data: Vec<u16>,
}

impl PackedB {
    /// Room for a k x n matrix (zeros), and for any smaller one.
    pub fn new(k: usize, n: usize) -> Self {
        PackedB {
            k,
            n,
            data: vec![0; n * pairs(k) * 2],
        }
    }

    /// A packed copy of `b`.
    pub fn of(b: ArrayView2<'_, f32>) -> Self {
        let mut p = PackedB::new(b.nrows(), b.ncols());
        p.pack(b);
        p
    }

    /// Rows (the inner dimension) of what was packed last.
    pub fn rows(&self) -> usize {
        self.k
    }

    /// Columns of what was packed last.
    pub fn cols(&self) -> usize {
        self.n
    }

    fn resize(&mut self, k: usize, n: usize) {
        assert!(
            n * pairs(k) * 2 <= self.data.len(),
            "PackedB: {k}x{n} does not fit"
        );
        self.k = k;
        self.n = n;
    }

    /// Packs `b` (k x n within the capacity, any layout) in place, rounding to
    /// bf16; allocates nothing.
    pub fn pack(&mut self, b: ArrayView2<'_, f32>) {
        self.resize(b.nrows(), b.ncols());
        let len = pairs(self.k) * 2;
        pack_columns(&mut self.data[..self.n * len], b, len);
    }

    /// Packs the transpose of `x` (so B = x^T, k = x's columns, n = x's rows),
    /// reading `x` in its own column order: for the weight gradient G X^T,
    /// where X holds one image per column. Allocates nothing.
    pub fn pack_transposed(&mut self, x: ArrayView2<'_, f32>) {
        self.resize(x.ncols(), x.nrows());
        let len = pairs(self.k) * 2;
        pack_transposed_into(&mut self.data[..self.n * len], x, len);
    }

    /// Element (i, j) as f32 (after rounding).
    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.view().get(i, j)
    }

    /// What was packed last, as the kernel's B operand.
    pub fn view(&self) -> BView<'_> {
        BView {
            k: self.k,
            n: self.n,
            ld: pairs(self.k) * 2,
            data: &self.data,
        }
    }
}

/// The kernel's B operand (k x n) without ownership: column j's k values
/// (padded to even) at `data[j * ld..]`, in the layout of [`PackedB`]. A
/// [`PackedB`] is one ([`PackedB::view`]); so is a batch of a [`PackedSet`],
/// whose columns lie farther apart than their length.
#[derive(Clone, Copy, Debug)]
pub struct BView<'a> {
    k: usize,
    n: usize,
    /// Distance between consecutive columns, in bf16 values (even, at least
    /// `pairs(k) * 2`).
    ld: usize,
    data: &'a [u16],
}

impl BView<'_> {
    /// Rows (the inner dimension).
    pub fn rows(&self) -> usize {
        self.k
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.n
    }

    /// Element (i, j) as f32 (after rounding).
    pub fn get(&self, i: usize, j: usize) -> f32 {
        from_bf16(self.data[j * self.ld + i])
    }
}

/// A training set's images in bf16, converted once per process in both
/// layouts the kernel reads, so that a batch of consecutive images j0..j0 + n
/// needs no packing at all ([`Self::batch`]):
/// - `images`: d x N, one image per column (B of the forward product W X);
/// - `pixels`: N x d, one pixel per column over every image (B of the weight
///   product G X^T; a batch is a window of each column).
///
/// Together they take the memory of one f32 copy. Rounding commutes with
/// these copies, so a step on a batch of the set computes the same bits as a
/// step that packs the batch itself.
#[derive(Clone, Debug)]
pub struct PackedSet {
    images: PackedB,
    pixels: PackedB,
}

/// Images per task when a [`PackedSet`] is built.
pub const SET_IMAGES_PER_TASK: usize = 1024;
/// Pixels (rows of the set) per task when a [`PackedSet`] is built.
pub const SET_PIXELS_PER_TASK: usize = 64;

/// Both packed operands of a batch of a [`PackedSet`]: X (d x n) and X^T (n x d).
#[derive(Clone, Copy, Debug)]
pub struct PackedBatch<'a> {
    /// The images, d x n: B of W X.
    pub x: BView<'a>,
    /// Their transpose, n x d: B of G X^T.
    pub xt: BView<'a>,
}

impl PackedSet {
    /// Converts `x` (d x N, columns contiguous or not) to bf16 in both layouts,
    /// in tasks of [`SET_IMAGES_PER_TASK`] images and [`SET_PIXELS_PER_TASK`]
    /// pixels on the current rayon pool (the result does not depend on it).
    pub fn new(x: ArrayView2<'_, f32>) -> Self {
        let (d, n) = x.dim();
        let mut images = PackedB::new(d, n);
        let mut pixels = PackedB::new(n, d);
        let (image_len, pixel_len) = (pairs(d) * 2, pairs(n) * 2);
        let (per_image_task, per_pixel_task) = (SET_IMAGES_PER_TASK, SET_PIXELS_PER_TASK);
        rayon::join(
            || {
                in_tasks(&mut images.data, image_len, per_image_task, |j, out| {
                    let cols = x.slice(ndarray::s![.., j..(j + per_image_task).min(n)]);
                    pack_columns(out, cols, image_len);
                })
            },
            || {
                in_tasks(&mut pixels.data, pixel_len, per_pixel_task, |i, out| {
                    let rows = x.slice(ndarray::s![i..(i + per_pixel_task).min(d), ..]);
                    pack_transposed_into(out, rows, pixel_len);
                })
            },
        );
        PackedSet { images, pixels }
    }

    /// Images (N).
    pub fn len(&self) -> usize {
        self.images.n
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.images.n == 0
    }

    /// Images j0..j0 + n as the kernel's operands, without copying; `None`
    /// when j0 or n is odd (a pair of k would straddle the batch's edge): pack
    /// such a batch instead.
    pub fn batch(&self, j0: usize, n: usize) -> Option<PackedBatch<'_>> {
        assert!(
            j0 + n <= self.len(),
            "batch {j0}+{n} past {} images",
            self.len()
        );
        if j0 % 2 == 1 || n % 2 == 1 {
            return None;
        }
        let images = self.images.view();
        let pixels = self.pixels.view();
        Some(PackedBatch {
            x: BView {
                k: images.k,
                n,
                ld: images.ld,
                data: &images.data[j0 * images.ld..],
            },
            xt: BView {
                k: n,
                n: pixels.n,
                ld: pixels.ld,
                data: &pixels.data[j0..],
            },
        })
    }
}

/// `fill(first, chunk)` on `data` cut into chunks of `per` columns of `len`
/// values each (`first`: the chunk's first column), as rayon tasks.
fn in_tasks(data: &mut [u16], len: usize, per: usize, fill: impl Fn(usize, &mut [u16]) + Sync) {
    use rayon::prelude::*;
    data.par_chunks_mut(len * per)
        .enumerate()
        .for_each(|(t, chunk)| fill(t * per, chunk));
}

/// `b`'s columns (k values each, any layout) rounded to bf16 into `out`, one
/// column per `len` values (k padded with a zero to even).
fn pack_columns(out: &mut [u16], b: ArrayView2<'_, f32>, len: usize) {
    let vector = cfg!(target_arch = "x86_64") && available();
    for (j, col) in b.columns().into_iter().enumerate() {
        let out = &mut out[j * len..(j + 1) * len];
        out[len - 1] = 0;
        match col.as_slice() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the features were detected.
            Some(src) if vector => unsafe { kernel::convert(src, out) },
            _ => {
                for (o, &v) in out.iter_mut().zip(col.iter()) {
                    *o = to_bf16(v);
                }
            }
        }
    }
}

/// `x`'s transpose rounded to bf16 into `out`: column i of the result (x's
/// row i, its n values padded with a zero to even) at `out[i * len..]`.
fn pack_transposed_into(out: &mut [u16], x: ArrayView2<'_, f32>, len: usize) {
    if x.ncols() % 2 == 1 {
        for i in 0..x.nrows() {
            out[i * len + len - 1] = 0;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if x.strides()[0] == 1 && available() {
        // SAFETY: the features were detected; columns are contiguous.
        unsafe { kernel::pack_transposed(out, x, len) };
        return;
    }
    for (j, col) in x.columns().into_iter().enumerate() {
        for (i, &v) in col.iter().enumerate() {
            out[i * len + j] = to_bf16(v);
        }
    }
}

fn check(a: &PackedA, b: &BView<'_>, c: &ArrayViewMut2<'_, f32>) {
    assert!(
        b.ld.is_multiple_of(2)
            && b.ld >= pairs(b.k) * 2
            && (b.n == 0 || (b.n - 1) * b.ld + pairs(b.k) * 2 <= b.data.len()),
        "bf16 gemm: B's columns ({}x{}, ld {}) overrun its {} values",
        b.k,
        b.n,
        b.ld,
        b.data.len()
    );
    assert!(
        a.k == b.k && c.nrows() == a.m && c.ncols() == b.n,
        "bf16 gemm shapes: A {}x{}, B {}x{}, C {}x{}",
        a.m,
        a.k,
        b.k,
        b.n,
        c.nrows(),
        c.ncols()
    );
}

/// f32 with subnormals flushed to a signed zero (DAZ/FTZ, as `VDPBF16PS`).
fn flush(x: f32) -> f32 {
    if x != 0.0 && x.abs() < f32::MIN_POSITIVE {
        0.0f32.copysign(x)
    } else {
        x
    }
}

/// The product in scalar code with the kernel's exact arithmetic (see the
/// module): the reference the kernel is tested against, on any CPU.
pub fn gemm_emulated(
    alpha: f32,
    a: &PackedA,
    b: BView<'_>,
    beta: f32,
    mut c: ArrayViewMut2<'_, f32>,
) {
    check(a, &b, &c);
    for j in 0..b.n {
        for i in 0..a.m {
            let mut acc = 0.0f32;
            for p in 0..pairs(a.k) {
                let odd = flush(a.get(i, 2 * p + 1) * b.get(2 * p + 1, j));
                acc = flush(acc + odd);
                let even = flush(a.get(i, 2 * p) * b.get(2 * p, j));
                acc = flush(acc + even);
            }
            let v = alpha * acc;
            c[[i, j]] = if beta == 0.0 { v } else { v + beta * c[[i, j]] };
        }
    }
}

/// C = alpha * A B + beta * C on AVX512-BF16 (see the module for the layouts
/// and the arithmetic). Refuses, with [`require`]'s message, on a CPU without
/// the feature; never reaches an illegal instruction.
pub fn gemm(
    alpha: f32,
    a: &PackedA,
    b: BView<'_>,
    beta: f32,
    c: ArrayViewMut2<'_, f32>,
) -> Result<()> {
    check(a, &b, &c);
    require()?;
    gemm_cols(alpha, a, b, 0, beta, c, None);
    Ok(())
}

/// Where a product also writes its result C rounded to bf16: the data of a
/// [`PackedA`] of C's shape (C its A operand next time), shared by the column
/// blocks, each of which writes only its own (whole) pairs of columns.
#[derive(Clone, Copy)]
struct Repack {
    data: *mut u16,
}

// SAFETY: the blocks that share it write disjoint pairs of columns (their
// bounds are even), and the PackedA it points to is borrowed mutably for the
// whole product.
unsafe impl Send for Repack {}
unsafe impl Sync for Repack {}

/// The product for B's columns `j0..j0 + c.ncols()` into `c`; the features were checked.
fn gemm_cols(
    alpha: f32,
    a: &PackedA,
    b: BView<'_>,
    j0: usize,
    beta: f32,
    c: ArrayViewMut2<'_, f32>,
    repack: Option<Repack>,
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: callers checked the CPU's features and the shapes.
    unsafe {
        kernel::gemm(alpha, a, b, j0, beta, c, repack)
    };
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("bf16::require refuses on this architecture");
}

/// [`gemm`] with C's columns cut into the fixed blocks of
/// `blas::blocks_for`, run as rayon tasks (in parallel where the pool has
/// idle threads). Every element of C is computed by the same arithmetic
/// whatever the block it falls in, so the result is the same bits on any
/// pool, and equal to [`gemm`]'s.
pub fn gemm_blocks(
    alpha: f32,
    a: &PackedA,
    b: BView<'_>,
    beta: f32,
    c: ArrayViewMut2<'_, f32>,
) -> Result<()> {
    check(a, &b, &c);
    require()?;
    blocks(alpha, a, b, beta, c, None);
    Ok(())
}

/// [`gemm_blocks`] that also leaves the new C, rounded to bf16, in `c_packed`
/// (a [`PackedA`] of C's shape), written from the registers as each tile of C
/// is stored: the SGD update W <- alpha G X^T + beta W re-packs the bf16
/// weights in the same pass, not in a pass of its own. `c_packed` ends equal to
/// `PackedA::of(c)`, bit for bit.
pub fn gemm_blocks_repacking(
    alpha: f32,
    a: &PackedA,
    b: BView<'_>,
    beta: f32,
    mut c: ArrayViewMut2<'_, f32>,
    c_packed: &mut PackedA,
) -> Result<()> {
    check(a, &b, &c);
    assert!(
        c_packed.m == c.nrows() && c_packed.k == c.ncols(),
        "bf16 gemm: C is {}x{} but its packed copy {}x{}",
        c.nrows(),
        c.ncols(),
        c_packed.m,
        c_packed.k
    );
    require()?;
    if c.strides()[0] != 1 {
        // The fused stores read C's columns as vectors.
        blocks(alpha, a, b, beta, c.view_mut(), None);
        c_packed.pack(c.view());
        return Ok(());
    }
    let repack = Repack {
        data: c_packed.data.as_mut_ptr(),
    };
    blocks(alpha, a, b, beta, c, Some(repack));
    Ok(())
}

/// C's columns cut into `blas::blocks_for`'s fixed blocks, with bounds rounded
/// to even (so that a pair of columns of a re-packed C stays in one block).
fn blocks(
    alpha: f32,
    a: &PackedA,
    b: BView<'_>,
    beta: f32,
    c: ArrayViewMut2<'_, f32>,
    repack: Option<Repack>,
) {
    let n = c.ncols();
    let parts = crate::linalg::blas::blocks_for(n);
    let mut bounds = [0usize; crate::linalg::blas::MAX_BLOCKS + 1];
    for (i, v) in bounds.iter_mut().enumerate().take(parts + 1) {
        *v = if i == parts { n } else { (n * i / parts) & !1 };
    }
    range(&bounds[..parts + 1], alpha, a, b, beta, c, repack);
}

fn range(
    bounds: &[usize],
    alpha: f32,
    a: &PackedA,
    b: BView<'_>,
    beta: f32,
    c: ArrayViewMut2<'_, f32>,
    repack: Option<Repack>,
) {
    let parts = bounds.len() - 1;
    if parts <= 1 {
        return gemm_cols(alpha, a, b, bounds[0], beta, c, repack);
    }
    let mid = parts / 2;
    let (lo, hi) = c.split_at(ndarray::Axis(1), bounds[mid] - bounds[0]);
    rayon::join(
        || range(&bounds[..=mid], alpha, a, b, beta, lo, repack),
        || range(&bounds[mid..], alpha, a, b, beta, hi, repack),
    );
}

/// One core's bf16 dot-product peak (`VDPBF16PS`, 16 lanes x 2 pairs x 2
/// FLOPs, on 16 independent 512-bit accumulators, no memory traffic), in
/// GFLOP/s, for about `min_s` seconds; `None` where the CPU lacks
/// AVX512-BF16. About twice the f32 FMA peak on AMD Zen 4/5, half on the
/// Intel Sapphire/Emerald Rapids machine this was measured on (one
/// `VDPBF16PS` every other cycle against two FMAs per cycle).
pub fn dot_peak(min_s: f64) -> Option<f64> {
    if !available() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        Some(super::timing::rate(min_s, 16.0 * 16.0 * 4.0, |turns| {
            // SAFETY: the features were detected.
            std::hint::black_box(unsafe { kernel::dot_turns(turns) });
        }))
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

#[cfg(target_arch = "x86_64")]
// Register tiles are indexed explicitly: the loops unroll over constants.
#[allow(clippy::needless_range_loop)]
mod kernel {
    use super::{pairs, BView, PackedA, Repack, MR, NR};
    use ndarray::ArrayViewMut2;
    use std::arch::x86_64::*;

    /// Every tile of C: panels of A outermost, so one panel (MR x k bf16)
    /// stays in cache while the columns of B stream past it.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub unsafe fn gemm(
        alpha: f32,
        a: &PackedA,
        b: BView<'_>,
        j0: usize,
        beta: f32,
        mut c: ArrayViewMut2<'_, f32>,
        repack: Option<Repack>,
    ) {
        let kp = pairs(a.k);
        let n = c.ncols();
        // C's pairs of columns in its packed copy (C is m x (its full width)).
        let c_pairs = pairs(b.n);
        let mut stored = [[_mm512_setzero_ps(); NR]; 2];
        let (rs, cs) = (c.strides()[0], c.strides()[1]);
        let cptr = c.as_mut_ptr();
        // Panels of A outermost: a panel (MR x k bf16) stays in cache while the
        // columns of B stream past it. (Tiles of B outermost when A fits in
        // cache measured no faster, on packed or on strided B.)
        for panel in 0..a.m.div_ceil(MR) {
            for t in 0..n.div_ceil(NR) {
                let rows = (a.m - panel * MR).min(MR);
                let ap = a.data.as_ptr().add(panel * kp * MR * 2);
                let j = t * NR;
                let cols = (n - j).min(NR);
                let bp = b.data.as_ptr().add((j0 + j) * b.ld);
                let mut acc = [[_mm512_setzero_ps(); NR]; 2];
                match cols {
                    12 => tile::<12>(ap, bp, kp, b.ld, &mut acc),
                    11 => tile::<11>(ap, bp, kp, b.ld, &mut acc),
                    10 => tile::<10>(ap, bp, kp, b.ld, &mut acc),
                    9 => tile::<9>(ap, bp, kp, b.ld, &mut acc),
                    8 => tile::<8>(ap, bp, kp, b.ld, &mut acc),
                    7 => tile::<7>(ap, bp, kp, b.ld, &mut acc),
                    6 => tile::<6>(ap, bp, kp, b.ld, &mut acc),
                    5 => tile::<5>(ap, bp, kp, b.ld, &mut acc),
                    4 => tile::<4>(ap, bp, kp, b.ld, &mut acc),
                    3 => tile::<3>(ap, bp, kp, b.ld, &mut acc),
                    2 => tile::<2>(ap, bp, kp, b.ld, &mut acc),
                    _ => tile::<1>(ap, bp, kp, b.ld, &mut acc),
                }
                let valpha = _mm512_set1_ps(alpha);
                let vbeta = _mm512_set1_ps(beta);
                for (col, _) in acc[0].iter().enumerate().take(cols) {
                    for half in 0..2 {
                        let r0 = panel * MR + half * 16;
                        let live = rows.saturating_sub(half * 16).min(16);
                        if live == 0 {
                            continue;
                        }
                        let v = _mm512_mul_ps(valpha, acc[half][col]);
                        let base = cptr.offset(r0 as isize * rs + (j + col) as isize * cs);
                        if rs == 1 {
                            let mask: __mmask16 = if live == 16 {
                                0xffff
                            } else {
                                (1u16 << live) - 1
                            };
                            let out = if beta == 0.0 {
                                v
                            } else {
                                let old = _mm512_maskz_loadu_ps(mask, base);
                                _mm512_add_ps(v, _mm512_mul_ps(vbeta, old))
                            };
                            _mm512_mask_storeu_ps(base, mask, out);
                            stored[half][col] = _mm512_maskz_mov_ps(mask, out);
                        } else {
                            let mut lanes = [0.0f32; 16];
                            _mm512_storeu_ps(lanes.as_mut_ptr(), v);
                            for (r, &x) in lanes.iter().enumerate().take(live) {
                                let p = base.offset(r as isize * rs);
                                *p = if beta == 0.0 { x } else { x + beta * *p };
                            }
                        }
                    }
                }
                if let Some(r) = repack {
                    // The tile's new C, rounded to bf16, into C's packed
                    // panel: pairs of columns, 16 rows' pairs per vector.
                    debug_assert!(rs == 1 && (j0 + j).is_multiple_of(2));
                    for half in 0..2 {
                        if rows <= half * 16 {
                            continue;
                        }
                        for q in 0..cols.div_ceil(2) {
                            let lo = stored[half][2 * q];
                            let hi = if 2 * q + 1 < cols {
                                stored[half][2 * q + 1]
                            } else {
                                _mm512_setzero_ps()
                            };
                            let pair = (j0 + j) / 2 + q;
                            let out = r
                                .data
                                .add(panel * c_pairs * MR * 2 + pair * MR * 2 + half * 32);
                            _mm512_storeu_si512(out as *mut __m512i, interleave(lo, hi));
                        }
                    }
                }
            }
        }
    }

    /// acc[h][col] += the panel's rows (16 h .. 16 h + 15) times column col of
    /// the `N` columns at `bp`, over every pair of k, in order.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    #[inline]
    unsafe fn tile<const N: usize>(
        ap: *const u16,
        bp: *const u16,
        kp: usize,
        ld: usize,
        acc: &mut [[__m512; NR]; 2],
    ) {
        let mut a0;
        let mut a1;
        let mut local = [[_mm512_setzero_ps(); N]; 2];
        for p in 0..kp {
            a0 = _mm512_loadu_si512(ap.add(p * MR * 2) as *const __m512i);
            a1 = _mm512_loadu_si512(ap.add(p * MR * 2 + 32) as *const __m512i);
            for col in 0..N {
                let pair = (bp.add(col * ld + p * 2) as *const i32).read_unaligned();
                let bv = _mm512_set1_epi32(pair);
                local[0][col] = _mm512_dpbf16_ps(local[0][col], m512bh(a0), m512bh(bv));
                local[1][col] = _mm512_dpbf16_ps(local[1][col], m512bh(a1), m512bh(bv));
            }
        }
        for col in 0..N {
            acc[0][col] = local[0][col];
            acc[1][col] = local[1][col];
        }
    }

    /// `dst[i] = to_bf16(src[i])`, 32 at a time with `VCVTNE2PS2BF16`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub unsafe fn convert(src: &[f32], dst: &mut [u16]) {
        let n = src.len().min(dst.len());
        let mut i = 0;
        while i + 32 <= n {
            let lo = _mm512_loadu_ps(src.as_ptr().add(i));
            let hi = _mm512_loadu_ps(src.as_ptr().add(i + 16));
            let v = _mm512_cvtne2ps_pbh(hi, lo);
            _mm512_storeu_si512(dst.as_mut_ptr().add(i) as *mut __m512i, m512i(v));
            i += 32;
        }
        for j in i..n {
            dst[j] = super::to_bf16(src[j]);
        }
    }

    /// `lo` and `hi` rounded to bf16 and interleaved: lo0, hi0, lo1, hi1, ...
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    #[inline]
    unsafe fn interleave(lo: __m512, hi: __m512) -> __m512i {
        let both = m512i(_mm512_cvtne2ps_pbh(hi, lo));
        let order = _mm512_set_epi16(
            31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20,
            4, 19, 3, 18, 2, 17, 1, 16, 0,
        );
        _mm512_permutexvar_epi16(order, both)
    }

    /// 16 rows from `lo` and `hi` (the `live` first; the rest read as zero),
    /// rounded to bf16 and interleaved: lo0, hi0, lo1, hi1, ...
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    #[inline]
    unsafe fn pairs16(lo: *const f32, hi: Option<*const f32>, live: usize) -> __m512i {
        let mask: __mmask16 = if live >= 16 {
            0xffff
        } else {
            (1u16 << live) - 1
        };
        let l = _mm512_maskz_loadu_ps(mask, lo);
        let h = match hi {
            Some(p) => _mm512_maskz_loadu_ps(mask, p),
            None => _mm512_setzero_ps(),
        };
        interleave(l, h)
    }

    /// [`PackedA::pack`] for an A whose columns are contiguous.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub unsafe fn pack_a(data: &mut [u16], a: ndarray::ArrayView2<'_, f32>, kp: usize) {
        let (m, k) = (a.nrows(), a.ncols());
        let cs = a.strides()[1];
        let base = a.as_ptr();
        for panel in 0..m.div_ceil(MR) {
            for p in 0..kp {
                let out = data.as_mut_ptr().add(panel * kp * MR * 2 + p * MR * 2);
                for half in 0..2 {
                    let r0 = panel * MR + half * 16;
                    let live = m.saturating_sub(r0).min(16);
                    let v = if live == 0 {
                        _mm512_setzero_si512()
                    } else {
                        let lo = base.offset((2 * p) as isize * cs + r0 as isize);
                        let hi = (2 * p + 1 < k)
                            .then(|| base.offset((2 * p + 1) as isize * cs + r0 as isize));
                        pairs16(lo, hi, live)
                    };
                    _mm512_storeu_si512(out.add(half * 32) as *mut __m512i, v);
                }
            }
        }
    }

    /// [`PackedB::pack_transposed`] for an X whose columns are contiguous:
    /// two images at a time, 16 features at a time, each pair stored as one
    /// 32-bit word in its feature's column. Features go in blocks of
    /// [`FEATURE_BLOCK`], every image pair within a block, so that the
    /// scattered stores land in few pages (a whole training set's columns lie
    /// 90 KB apart: scattering over all 3072 at once misses the TLB on every word).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub unsafe fn pack_transposed(data: &mut [u16], x: ndarray::ArrayView2<'_, f32>, len: usize) {
        let (d, n) = (x.nrows(), x.ncols());
        let cs = x.strides()[1];
        let base = x.as_ptr();
        let words = data.as_mut_ptr() as *mut u32;
        let step = (len / 2) as u32;
        let index = _mm512_mullo_epi32(
            _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
            _mm512_set1_epi32(step as i32),
        );
        for f0 in (0..d).step_by(FEATURE_BLOCK) {
            for q in 0..n.div_ceil(2) {
                let lo_col = base.offset((2 * q) as isize * cs);
                let hi_col = (2 * q + 1 < n).then(|| base.offset((2 * q + 1) as isize * cs));
                let mut f = f0;
                while f < d.min(f0 + FEATURE_BLOCK) {
                    let live = (d - f).min(16);
                    let v = pairs16(lo_col.add(f), hi_col.map(|h| h.add(f)), live);
                    let mask: __mmask16 = if live >= 16 {
                        0xffff
                    } else {
                        (1u16 << live) - 1
                    };
                    _mm512_mask_i32scatter_epi32(
                        words.add(f * step as usize + q) as *mut _,
                        mask,
                        index,
                        v,
                        4,
                    );
                    f += 16;
                }
            }
        }
    }

    /// Features per block of [`pack_transposed`]: 64 pages of scattered stores.
    const FEATURE_BLOCK: usize = 64;

    /// `turns` rounds of 16 independent bf16 dot products.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub unsafe fn dot_turns(turns: usize) -> f32 {
        // 0.5 in bf16, in every half of every lane.
        let a = m512bh(_mm512_set1_epi32(std::hint::black_box(0x3f00_3f00)));
        let mut acc = [_mm512_setzero_ps(); 16];
        for _ in 0..turns {
            for r in acc.iter_mut() {
                *r = _mm512_dpbf16_ps(*r, a, a);
            }
            std::arch::asm!("", options(nomem, nostack));
        }
        let mut s = _mm512_setzero_ps();
        for r in acc {
            s = _mm512_add_ps(s, r);
        }
        _mm512_reduce_add_ps(s)
    }

    #[inline(always)]
    fn m512i(v: __m512bh) -> __m512i {
        // SAFETY: same size, any bits.
        unsafe { std::mem::transmute::<__m512bh, __m512i>(v) }
    }

    #[inline(always)]
    fn m512bh(v: __m512i) -> __m512bh {
        // SAFETY: same size, any bits are a valid vector of bf16.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, ShapeBuilder};

    fn matrix(rows: usize, cols: usize, seed: u32, fortran: bool) -> Array2<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
        let v: Vec<f32> = (0..rows * cols)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 20001) as f32 / 10000.0 - 1.0
            })
            .collect();
        if fortran {
            Array2::from_shape_vec((rows, cols).f(), v).unwrap()
        } else {
            Array2::from_shape_vec((rows, cols), v).unwrap()
        }
    }

    #[test]
    fn rounding_to_bf16_is_to_nearest_even_and_keeps_specials() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even 1.
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: up to even.
        assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0 + 1.0 / 65536.0), 0x3f81);
        assert_eq!(to_bf16(-2.5), 0xc020);
        assert_eq!(to_bf16(f32::INFINITY), 0x7f80);
        assert_eq!(to_bf16(f32::MAX), 0x7f80, "rounds up to infinity");
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(to_bf16(1e-40), 0x0000, "subnormals flush");
        assert_eq!(to_bf16(-1e-40), 0x8000);
        for x in [0.1f32, -3.75, 1e-30, 65504.0] {
            let back = from_bf16(to_bf16(x));
            assert!((back - x).abs() <= x.abs() / 256.0, "{x} -> {back}");
        }
    }

    #[test]
    fn packing_keeps_every_element_and_pads_with_zeros_on_any_layout() {
        for &(m, k) in &[(1, 1), (5, 3), (32, 8), (33, 7), (70, 101)] {
            for fortran in [false, true] {
                let a = matrix(m, k, 7, fortran);
                let pa = PackedA::of(a.view());
                let pb = PackedB::of(a.view());
                for i in 0..m {
                    for j in 0..k {
                        let want = from_bf16(to_bf16(a[[i, j]]));
                        assert_eq!(pa.get(i, j).to_bits(), want.to_bits(), "A ({i},{j})");
                        assert_eq!(pb.get(i, j).to_bits(), want.to_bits(), "B ({i},{j})");
                    }
                }
                // Padding: A's column k and B's row m (its inner dimension) when odd,
                // and A's rows past m up to a whole panel.
                if k % 2 == 1 {
                    for i in 0..m {
                        assert_eq!(pa.get(i, k), 0.0);
                    }
                }
                if m % 2 == 1 {
                    for j in 0..k {
                        assert_eq!(pb.get(m, j), 0.0);
                    }
                }
                for i in m..m.div_ceil(MR) * MR {
                    for j in 0..k {
                        assert_eq!(pa.get(i, j), 0.0, "padding row {i}");
                    }
                }
                // Re-packing in place gives the same as a fresh pack.
                let mut again = PackedA::new(m, k);
                again.pack(matrix(m, k, 9, fortran).view());
                again.pack(a.view());
                assert_eq!(again.data, pa.data);
            }
        }
    }

    #[test]
    fn the_emulation_is_the_f64_product_of_the_rounded_operands_to_f32_accuracy() {
        let (m, n, k) = (7, 5, 33);
        let (a, b) = (matrix(m, k, 1, true), matrix(k, n, 2, true));
        let (pa, pb) = (PackedA::of(a.view()), PackedB::of(b.view()));
        let mut c = Array2::<f32>::zeros((m, n).f());
        gemm_emulated(1.0, &pa, pb.view(), 0.0, c.view_mut());
        for i in 0..m {
            for j in 0..n {
                let exact: f64 = (0..k)
                    .map(|p| pa.get(i, p) as f64 * pb.get(p, j) as f64)
                    .sum();
                assert!((c[[i, j]] as f64 - exact).abs() < 1e-5, "({i},{j})");
            }
        }
    }

    /// The kernel gives the emulation's bits over odd shapes (m not a multiple
    /// of 16 or 32, n not a multiple of the tile, odd k), alpha and beta, and a
    /// C with either layout.
    #[test]
    fn the_kernel_gives_the_emulations_bits_on_odd_shapes() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX512-BF16 (avx512_bf16 in /proc/cpuinfo), so the kernel cannot run here; the packing and emulation tests ran");
            let e = gemm(
                1.0,
                &PackedA::new(1, 1),
                PackedB::new(1, 1).view(),
                0.0,
                Array2::zeros((1, 1)).view_mut(),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("AVX512-BF16"), "{e}");
            return;
        }
        for &(m, n, k) in &[
            (1, 1, 1),
            (16, 12, 2),
            (17, 13, 3),
            (31, 11, 64),
            (32, 24, 3072),
            (33, 25, 101),
            (50, 100, 3072),
            (100, 7, 99),
            (400, 30, 100),
        ] {
            for (alpha, beta, fortran) in [
                (1.0f32, 0.0f32, true),
                (-0.01, 0.999, true),
                (0.5, 1.0, false),
            ] {
                let (a, b) = (matrix(m, k, 3, true), matrix(k, n, 4, false));
                let (pa, pb) = (PackedA::of(a.view()), PackedB::of(b.view()));
                let c0 = matrix(m, n, 5, fortran);
                let (mut want, mut got) = (c0.clone(), c0.clone());
                gemm_emulated(alpha, &pa, pb.view(), beta, want.view_mut());
                gemm(alpha, &pa, pb.view(), beta, got.view_mut()).unwrap();
                for i in 0..m {
                    for j in 0..n {
                        assert_eq!(
                            got[[i, j]].to_bits(),
                            want[[i, j]].to_bits(),
                            "{m}x{n}x{k} alpha {alpha} beta {beta}: ({i},{j}) {} vs {}",
                            got[[i, j]],
                            want[[i, j]]
                        );
                    }
                }
            }
        }
        // beta = 0 never reads C: NaN there is overwritten.
        let mut c = Array2::from_elem((5, 3).f(), f32::NAN);
        let (a, b) = (matrix(5, 4, 6, true), matrix(4, 3, 7, true));
        gemm(
            1.0,
            &PackedA::of(a.view()),
            PackedB::of(b.view()).view(),
            0.0,
            c.view_mut(),
        )
        .unwrap();
        assert!(c.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn packing_within_the_capacity_and_transposed_packing_agree_with_fresh_packs() {
        // A packed for k up to 100, then used for k = 37 (odd): as a fresh 37-wide pack.
        let mut a = PackedA::new(45, 100);
        a.pack(matrix(45, 100, 1, true).view());
        let small = matrix(45, 37, 2, true);
        a.pack(small.view());
        let fresh = PackedA::of(small.view());
        for i in 0..45 {
            for j in 0..38 {
                assert_eq!(
                    a.get(i, j).to_bits(),
                    fresh.get(i, j).to_bits(),
                    "({i},{j})"
                );
            }
        }
        // X^T packed from X's columns equals X^T packed as a matrix, within a capacity.
        let x = matrix(3072, 33, 3, true);
        let mut t = PackedB::new(100, 3072);
        t.pack_transposed(matrix(3072, 100, 4, true).view());
        t.pack_transposed(x.view());
        let want = PackedB::of(x.t());
        assert_eq!((t.rows(), t.cols()), (33, 3072));
        assert_eq!(&t.data[..want.data.len()], &want.data[..]);
    }

    #[test]
    fn blocked_products_are_the_same_bits_on_any_pool() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        let (a, b) = (matrix(70, 3072, 1, true), matrix(3072, 100, 2, true));
        let (pa, pb) = (PackedA::of(a.view()), PackedB::of(b.view()));
        let mut one = Array2::<f32>::zeros((70, 100).f());
        gemm(1.0, &pa, pb.view(), 0.0, one.view_mut()).unwrap();
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut c = Array2::<f32>::zeros((70, 100).f());
            pool.install(|| gemm_blocks(1.0, &pa, pb.view(), 0.0, c.view_mut()).unwrap());
            assert!(
                c.iter()
                    .zip(one.iter())
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{threads} threads"
            );
        }
    }

    #[test]
    fn vector_conversion_and_packing_give_the_scalar_bits() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX512-BF16; the scalar packing is what runs, tested above");
            return;
        }
        // Every kind of value: normal, ties, subnormal, zero, infinities, NaN.
        let mut s = 0x9e3779b9u32;
        let mut vals: Vec<f32> = (0..4096)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                f32::from_bits(s)
            })
            .collect();
        vals.extend([
            0.0,
            -0.0,
            1e-40,
            -1e-40,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1.0 + 1.0 / 256.0,
            f32::MAX,
        ]);
        let mut out = vec![0u16; vals.len()];
        unsafe { kernel::convert(&vals, &mut out) };
        for (v, o) in vals.iter().zip(&out) {
            let want = to_bf16(*v);
            if v.is_nan() {
                assert!(from_bf16(*o).is_nan(), "{v:?}");
            } else {
                assert_eq!(*o, want, "{v:e} ({:#x})", v.to_bits());
            }
        }
        for &(m, k) in &[(1, 1), (17, 3), (40, 40), (70, 101)] {
            let a = matrix(m, k, 11, true);
            let mut vector = PackedA::new(m, k);
            vector.pack(a.view());
            let mut scalar = PackedA::new(m, k);
            scalar.pack_scalar(a.view(), pairs(k));
            assert_eq!(vector.data, scalar.data, "A {m}x{k}");
            let mut t = PackedB::new(k, m);
            t.pack_transposed(a.view());
            let want = PackedB::of(a.t());
            assert_eq!(&t.data[..want.data.len()], &want.data[..], "X^T {m}x{k}");
        }
    }

    /// A batch of the packed set holds exactly what packing the batch itself
    /// would (on every machine), and multiplies to the same bits (where the
    /// CPU has the feature).
    #[test]
    fn batches_of_a_packed_set_equal_packing_each_batch() {
        let (d, n_set) = (3072, 40);
        let x = matrix(d, n_set, 7, true);
        let set = PackedSet::new(x.view());
        assert_eq!(set.len(), n_set);
        for (j0, n) in [(0, 10), (10, 10), (30, 10), (4, 36), (0, 40)] {
            let batch = set.batch(j0, n).expect("even start and length");
            let cols = x.slice(ndarray::s![.., j0..j0 + n]);
            let own_x = PackedB::of(cols);
            let mut own_xt = PackedB::new(n, d);
            own_xt.pack_transposed(cols);
            assert_eq!((batch.x.rows(), batch.x.cols()), (d, n));
            assert_eq!((batch.xt.rows(), batch.xt.cols()), (n, d));
            for j in 0..n {
                for i in 0..d {
                    assert_eq!(batch.x.get(i, j).to_bits(), own_x.get(i, j).to_bits());
                    assert_eq!(batch.xt.get(j, i).to_bits(), own_xt.get(j, i).to_bits());
                }
            }
            if !available() {
                continue;
            }
            // Forward W X and weight product G X^T, as a step computes them.
            let w = PackedA::of(matrix(70, d, 8, true).view());
            let g = PackedA::of(matrix(70, n, 9, true).view());
            let mut want = Array2::<f32>::zeros((70, n).f());
            let mut got = want.clone();
            gemm(1.0, &w, own_x.view(), 0.0, want.view_mut()).unwrap();
            gemm(1.0, &w, batch.x, 0.0, got.view_mut()).unwrap();
            assert!(want
                .iter()
                .zip(&got)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            let mut want = matrix(70, d, 8, true);
            let mut got = want.clone();
            gemm_blocks(-0.01, &g, own_xt.view(), 0.999, want.view_mut()).unwrap();
            gemm_blocks(-0.01, &g, batch.xt, 0.999, got.view_mut()).unwrap();
            assert!(want
                .iter()
                .zip(&got)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        // A pair of k may not straddle a batch's edge: odd starts and lengths
        // are packed per step instead.
        assert!(set.batch(1, 10).is_none());
        assert!(set.batch(0, 9).is_none());
    }

    /// The product that re-packs C as it stores it leaves C as [`gemm`] does
    /// and its packed copy as a fresh pack of C, bit for bit, on any pool and
    /// on ragged shapes (m not a multiple of 32, an odd number of columns).
    #[test]
    fn repacking_products_leave_c_and_its_fresh_pack() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        for (m, n, k) in [(50, 3072, 100), (17, 301, 9), (64, 25, 40), (1, 13, 2)] {
            let (a, b) = (matrix(m, k, 1, true), matrix(k, n, 2, true));
            let (pa, pb) = (PackedA::of(a.view()), PackedB::of(b.view()));
            let start = matrix(m, n, 3, true);
            let mut want = start.clone();
            gemm(-0.05, &pa, pb.view(), 0.999, want.view_mut()).unwrap();
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut c = start.clone();
                // A stale copy, as the weights' before the step.
                let mut packed = PackedA::of(start.view());
                pool.install(|| {
                    gemm_blocks_repacking(-0.05, &pa, pb.view(), 0.999, c.view_mut(), &mut packed)
                        .unwrap()
                });
                assert!(
                    c.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{m}x{n}x{k}, {threads} threads"
                );
                assert_eq!(
                    packed.data,
                    PackedA::of(c.view()).data,
                    "{m}x{n}x{k}, {threads} threads"
                );
            }
        }
    }
}
