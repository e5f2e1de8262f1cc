//! Integer GEMM for layer 0 on exact pixels (`--precision int16`): 16-bit
//! integer products with 32-bit integer sums, on every x86-64 CPU with AVX2
//! (`VPMADDWD` + `VPADDD`), and in one instruction (`VPDPWSSD`) with AVX-VNNI
//! or AVX512-VNNI. A 16-bit multiply-add instruction does twice the
//! multiply-adds of an f32 FMA, so where the CPU issues it as often (AMD Zen 3
//! to 5, Intel client cores) layer 0 can run up to twice as fast as f32.
//!
//! Why it is exact enough: a standardised input is x_j = (p - 128 - o_j) / s_j
//! with p a byte (so p - 128, the "centred byte", is exact in 16 bits), o_j
//! and s_j from the training set's mean and std ([`Pixels`]). So
//! - W X = diag(a) (Q X_c - u 1^T), Q = round(W diag(1/s) / a) per row, a
//!   row's scale a_i = max |W_i / s| / 32767 and u = Q o (forward);
//! - alpha G X^T = alpha diag(a) (Q X_c^T - u o^T) diag(1/s), Q = round(G / a)
//!   per row and u = Q 1 (the weight product).
//!
//! Q's error is half a unit in 2^15 of its row's largest term, some 250 times
//! smaller than bf16's; everything else is exact integer or f32 arithmetic.
//!
//! C (m x n, f32) = ((A B - u v^T) diag-scaled) with, element by element, in f32:
//! `t = sum - u_i * v_j; y = (t * (alpha * a_i)) * w_j; c = y (+ beta * c)`,
//! where `sum` adds, in k order, each block of [`BLOCK_PAIRS`] pairs of k's
//! exact i32 sum converted to f32 (v, w: the [`Columns`], 1 when absent).
//! A block's sum cannot overflow: a centred byte is at most 128 in magnitude
//! and a 15-bit weight at most 32767, so 2 * 256 products stay below 2^31.
//! Integer sums are exact in any order, so every instruction set gives the
//! same bits, and [`gemm_emulated`] gives them in scalar code.
//!
//! Layouts (as [`super::bf16`]'s, in i16): A packed by [`PackedA`] in panels of
//! [`MR`] rows, for each pair of k the panel's rows' pairs side by side; B
//! read through a [`BView`], each column's k values in order (pairs adjacent),
//! k padded with a zero to even.

use anyhow::{bail, Result};
use ndarray::{ArrayView2, ArrayViewMut2};
use serde::{Deserialize, Serialize};

/// Rows of a packed panel of A.
pub const MR: usize = 32;

/// Pairs of k summed in i32 before the sum is converted and added in f32:
/// 512 products of at most 128 * 32767 each stay below 2^31.
pub const BLOCK_PAIRS: usize = 256;

/// Largest quantised magnitude: 15 bits.
pub const QMAX: f32 = 32767.0;

/// Environment variable that makes [`isa`] answer none (as on a CPU without
/// AVX2), or name one to use (`avx2`, `avxvnni`, `avx512vnni`) if the CPU has it.
pub const ISA_VAR: &str = "SHALLOW_INT16_ISA";

/// The instruction sets the kernel has a version for, best last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isa {
    /// `VPMADDWD` + `VPADDD` on 256 bits (every x86-64 CPU since 2013).
    Avx2,
    /// `VPDPWSSD` on 256 bits (Intel Alder Lake and later client cores, AMD Zen 5).
    AvxVnni,
    /// `VPDPWSSD` on 512 bits (Intel Ice Lake and later, AMD Zen 4 and 5).
    Avx512Vnni,
}

impl Isa {
    /// Every version, best last.
    pub const ALL: [Isa; 3] = [Isa::Avx2, Isa::AvxVnni, Isa::Avx512Vnni];

    /// The name `/proc/cpuinfo` and [`ISA_VAR`] use.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512Vnni => "avx512vnni",
        }
    }

    /// Whether this CPU has it (detected at run time).
    pub fn detected(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match self {
                Isa::Avx2 => has!("avx2"),
                Isa::AvxVnni => has!("avx2") && has!("avxvnni"),
                Isa::Avx512Vnni => has!("avx512f") && has!("avx512bw") && has!("avx512vnni"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }
}

/// The version this process runs: the best the CPU has, or the one
/// `SHALLOW_INT16_ISA` names (none if it names `none` or one the CPU lacks).
/// Asked once per process.
pub fn isa() -> Option<Isa> {
    static ISA: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| match std::env::var(ISA_VAR) {
        Ok(name) => Isa::ALL
            .into_iter()
            .find(|i| i.name() == name)
            .filter(|i| i.detected()),
        Err(_) => Isa::ALL.into_iter().rev().find(|i| i.detected()),
    })
}

/// The refusal when the CPU has no version, naming what it needs.
pub fn require() -> Result<Isa> {
    match isa() {
        Some(i) => Ok(i),
        None => bail!(
            "--precision int16 needs a CPU with AVX2 (avx2 in /proc/cpuinfo: Intel since 2013, AMD since 2015); \
             this one has none{}: use --precision f32",
            if std::env::var_os(ISA_VAR).is_some() {
                format!(" ({ISA_VAR} is set)")
            } else {
                String::new()
            }
        ),
    }
}

/// Pairs along k: `k` rounded up to even, halved.
fn pairs(k: usize) -> usize {
    k.div_ceil(2)
}

/// How the network's f32 inputs relate to bytes: feature j of an image is
/// `(p - 128 - offset_j) / scale_j` with p its byte (0-255), i.e. the
/// standardisation `(p / 255 - mean_j) / std_j` with `scale_j = 255 std_j`
/// and `offset_j = 255 mean_j - 128`.
#[derive(Clone, Debug, PartialEq)]
pub struct Pixels {
    /// o_j = 255 mean_j - 128 (d).
    pub offset: Vec<f32>,
    /// s_j = 255 std_j (d).
    pub scale: Vec<f32>,
    /// 1 / s_j (d).
    pub inv_scale: Vec<f32>,
}

impl Pixels {
    /// From the training set's per-feature mean and std on the 0-1 scale.
    pub fn new(mean: &[f64], std: &[f64]) -> Self {
        Pixels {
            offset: mean.iter().map(|m| (255.0 * m - 128.0) as f32).collect(),
            scale: std.iter().map(|s| (255.0 * s) as f32).collect(),
            inv_scale: std.iter().map(|s| (1.0 / (255.0 * s)) as f32).collect(),
        }
    }

    /// Features d.
    pub fn dim(&self) -> usize {
        self.offset.len()
    }

    /// Feature j's value `x` as the centred byte it stands for (p - 128),
    /// rounded to the nearest and clamped to a byte's range; with how far `x`
    /// was from it, in bytes (0 up to rounding for a standardised byte).
    #[inline]
    pub fn centred(&self, j: usize, x: f32) -> (i16, f32) {
        let v = x * self.scale[j] + self.offset[j];
        let p = centred_byte(x, self.scale[j], self.offset[j]);
        (p as i32 as i16, (v - p).abs())
    }
}

/// `x * scale + offset` rounded to the nearest integer (ties to even) and
/// clamped to -128..=127 (NaN stays NaN, and converts to 0): the same bits
/// in scalar and in vector code.
#[inline(always)]
fn centred_byte(x: f32, scale: f32, offset: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    let v = x * scale + offset;
    ((v + MAGIC) - MAGIC).clamp(-128.0, 127.0)
}

/// Pass 1 of quantising, for one element `x` of a row: its largest
/// magnitude so far, and a poison that turns NaN on a NaN or an infinity.
#[inline(always)]
fn track(max: &mut f32, poison: &mut f32, x: f32) {
    let x = x.abs();
    *max = if x > *max { x } else { *max };
    *poison += x * 0.0;
}

/// `y` rounded to the nearest integer, ties to even, where |y| < 32767.5
/// (0 otherwise, NaN included): adding and taking away 1.5 x 2^23 rounds
/// exactly that way in f32, in scalar and in vector code alike.
#[inline(always)]
fn quantum(y: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    if y.abs() < QMAX + 0.5 {
        (y + MAGIC) - MAGIC
    } else {
        0.0
    }
}

/// The column factors of a quantisation: each column is multiplied by
/// `scale` first, and the rows' sums weigh its integers by `offset` (1 each
/// when absent).
#[derive(Clone, Copy)]
struct Factors<'a> {
    scale: Option<&'a [f32]>,
    offset: Option<&'a [f32]>,
}

/// One panel's share of a [`PackedA`]: its integers (pairs(k) x MR x 2) and
/// its rows' scales, sums and scratch.
struct PanelOut<'a> {
    data: &'a mut [i16],
    scale: &'a mut [f32],
    sums: &'a mut [f32],
    max: &'a mut [f32],
    acc: &'a mut [f64],
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantise_panel_avx2(a: ArrayView2<'_, f32>, out: PanelOut<'_>, f: Factors<'_>) {
    quantise_panel(a, out, f, true)
}

/// Quantises one panel's rows `a` (up to [`MR`] x k) into `out` (see
/// [`PackedA::quantise`]): pass 1 finds each row's largest magnitude, and a
/// poison that is NaN where the row holds a NaN or an infinity (x * 0 is 0
/// otherwise); pass 2 writes the integers pair of columns by pair of columns,
/// and the sums. `vector`: 8 rows at a time in AVX2 (the caller checked the
/// CPU), with the same operations.
#[inline(always)]
fn quantise_panel(a: ArrayView2<'_, f32>, out: PanelOut<'_>, f: Factors<'_>, vector: bool) {
    let (live, k) = a.dim();
    let cs = |j: usize| {
        if j < k {
            f.scale.map_or(1.0, |s| s[j])
        } else {
            1.0
        }
    };
    let co = |j: usize| {
        if j < k {
            f.offset.map_or(1.0, |o| o[j]) as f64
        } else {
            0.0
        }
    };
    let PanelOut {
        data,
        scale,
        sums,
        max,
        acc,
    } = out;
    let (max, acc, scale, sums) = (
        &mut max[..live],
        &mut acc[..live],
        &mut scale[..live],
        &mut sums[..live],
    );
    let poison = &mut *sums;
    max.fill(0.0);
    acc.fill(0.0);
    poison.fill(0.0);
    let contiguous = a.strides()[0] == 1 || live == 1;
    let zeros = [0.0f32; MR];
    let mut copies = [[0.0f32; MR]; 2];
    // Column j's rows, as a slice (copied when `a` is not column-major).
    let mut column = |j: usize, copy: usize| -> &[f32] {
        if j >= k {
            return &zeros[..live];
        }
        if contiguous {
            // SAFETY: column j's `live` rows are in `a`, one after another.
            return unsafe {
                std::slice::from_raw_parts(a.as_ptr().offset(j as isize * a.strides()[1]), live)
            };
        }
        for r in 0..live {
            copies[copy][r] = a[[r, j]];
        }
        // SAFETY: `copies` outlives the call; each call overwrites its own row.
        unsafe { std::slice::from_raw_parts(copies[copy].as_ptr(), live) }
    };
    for j in 0..k {
        let (c, s) = (column(j, 0), cs(j));
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if contiguous && j + PREFETCH < k {
            // The panel's columns lie a whole column apart: fetch ahead.
            // SAFETY: column j + PREFETCH's rows are in `a`; prefetching reads nothing.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                let ahead = a.as_ptr().offset((j + PREFETCH) as isize * a.strides()[1]);
                for line in (0..live).step_by(16) {
                    _mm_prefetch::<_MM_HINT_T0>(ahead.add(line) as *const i8);
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        if vector {
            // SAFETY: the caller checked AVX2.
            done = unsafe { kernel::track_column(max, poison, c, s) };
        }
        for r in done..live {
            track(&mut max[r], &mut poison[r], c[r] * s);
        }
    }
    for ((scale, mx), &p) in scale.iter_mut().zip(max.iter_mut()).zip(poison.iter()) {
        let ok = p == 0.0 && mx.is_finite();
        *scale = if ok { *mx / QMAX } else { f32::NAN };
        // From here on, the factor to the integers (0: a row of zeros).
        *mx = if ok && *mx > 0.0 { QMAX / *mx } else { 0.0 };
    }
    let inv = &*max;
    for p in 0..pairs(k) {
        let out = &mut data[p * MR * 2..][..live * 2];
        let (c0, c1) = (column(2 * p, 0), column(2 * p + 1, 1));
        let (s0, s1, o0, o1) = (cs(2 * p), cs(2 * p + 1), co(2 * p), co(2 * p + 1));
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if vector {
            // SAFETY: the caller checked AVX2; every slice holds `live` rows.
            done = unsafe { kernel::quantise_pairs(out, c0, c1, inv, acc, [s0, s1], [o0, o1]) };
        }
        for r in done..live {
            let (q0, q1) = (
                quantum((c0[r] * s0) * inv[r]),
                quantum((c1[r] * s1) * inv[r]),
            );
            out[2 * r] = q0 as i32 as i16;
            out[2 * r + 1] = q1 as i32 as i16;
            acc[r] += q0 as f64 * o0;
            acc[r] += q1 as f64 * o1;
        }
    }
    for (u, &a) in sums.iter_mut().zip(acc.iter()) {
        *u = a as f32;
    }
}

/// Columns ahead that quantising a panel prefetches.
const PREFETCH: usize = 16;

/// A (m x k) quantised per row to 15-bit integers in panels of [`MR`] rows
/// (see the module), with each row's scale a_i and sum u_i. Allocated once for
/// k up to a capacity and re-quantised in place ([`Self::quantise`]).
#[derive(Clone, Debug)]
pub struct PackedA {
    m: usize,
    k: usize,
    /// panels x pairs(k) x MR x 2 values.
    data: Vec<i16>,
    /// a_i (m): row i stands for a_i times its integers.
    scale: Vec<f32>,
    /// u_i (m): sum over j of q_ij times the column offset (1 without).
    sums: Vec<f32>,
    /// Each row's largest magnitude (m), a pass's scratch.
    max: Vec<f32>,
    /// Rows' f64 sums of q_ij o_j (m), a pass's scratch.
    acc: Vec<f64>,
    /// Quantise in scalar code only (for the tests that compare the two).
    scalar_only: bool,
}

impl PackedA {
    /// Room for an m x k matrix (zeros), and for any narrower one.
    pub fn new(m: usize, k: usize) -> Self {
        PackedA {
            m,
            k,
            data: vec![0; m.div_ceil(MR) * pairs(k) * MR * 2],
            scale: vec![0.0; m],
            sums: vec![0.0; m],
            max: vec![0.0; m],
            acc: vec![0.0; m],
            scalar_only: false,
        }
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.m
    }

    /// Columns (the inner dimension) of what was quantised last.
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Quantises `a` (m x k within the capacity, any layout) in place; allocates
    /// nothing. Column j is first multiplied by `col_scale[j]` (when given);
    /// then row i's scale is a_i = max_j |a_ij| / 32767 and q_ij =
    /// round_ties_even(a_ij * (32767 / max_j |a_ij|)), and u_i = sum_j q_ij
    /// o_j in f64 in j order (o = `col_offset`, or 1), rounded to f32. A row
    /// of zeros has scale 0; a row with a NaN or an infinity has scale NaN
    /// (and zeros), so that its products are NaN, as in f32. Vectorised where
    /// the CPU has AVX2, with the same bits.
    pub fn quantise(
        &mut self,
        a: ArrayView2<'_, f32>,
        col_scale: Option<&[f32]>,
        col_offset: Option<&[f32]>,
    ) {
        let (m, k) = a.dim();
        assert!(
            m == self.m && m.div_ceil(MR) * pairs(k) * MR * 2 <= self.data.len(),
            "int16 PackedA: {m}x{k} does not fit {} rows",
            self.m
        );
        for v in [col_scale, col_offset].into_iter().flatten() {
            assert!(
                v.len() >= k,
                "int16 PackedA: {} column factors for {k} columns",
                v.len()
            );
        }
        self.k = k;
        self.quantise_any(a, col_scale, col_offset);
    }

    /// [`Self::quantise`], panel by panel as rayon tasks (the same bits on
    /// any pool), each vectorised where the CPU has AVX2 (and not
    /// `scalar_only`).
    fn quantise_any(
        &mut self,
        a: ArrayView2<'_, f32>,
        col_scale: Option<&[f32]>,
        col_offset: Option<&[f32]>,
    ) {
        use rayon::prelude::*;
        let (m, k) = a.dim();
        let kp = pairs(k);
        #[cfg(target_arch = "x86_64")]
        let vector = std::arch::is_x86_feature_detected!("avx2") && !self.scalar_only;
        #[cfg(not(target_arch = "x86_64"))]
        let vector = false;
        let factors = Factors {
            scale: col_scale,
            offset: col_offset,
        };
        let panels = m.div_ceil(MR);
        self.data[..panels * kp * MR * 2]
            .par_chunks_mut(kp * MR * 2)
            .zip(self.scale.par_chunks_mut(MR))
            .zip(self.sums.par_chunks_mut(MR))
            .zip(self.max.par_chunks_mut(MR))
            .zip(self.acc.par_chunks_mut(MR))
            .enumerate()
            .for_each(|(panel, ((((data, scale), sums), max), acc))| {
                let rows = a.slice(ndarray::s![panel * MR..(panel * MR + MR).min(m), ..]);
                let out = PanelOut {
                    data,
                    scale,
                    sums,
                    max,
                    acc,
                };
                #[cfg(target_arch = "x86_64")]
                if vector {
                    // SAFETY: AVX2 was detected.
                    return unsafe { quantise_panel_avx2(rows, out, factors) };
                }
                quantise_panel(rows, out, factors, vector);
            });
    }

    /// Integer (i, j) (zero in the padding).
    pub fn get(&self, i: usize, j: usize) -> i16 {
        let kp = pairs(self.k);
        self.data[(i / MR) * kp * MR * 2 + (j / 2) * MR * 2 + (i % MR) * 2 + j % 2]
    }

    /// Row i's scale a_i.
    pub fn scale(&self, i: usize) -> f32 {
        self.scale[i]
    }

    /// Row i's sum u_i.
    pub fn sum(&self, i: usize) -> f32 {
        self.sums[i]
    }
}

/// B (k x n) as columns of k centred bytes in order, k padded to even,
/// allocated once for k and n up to a capacity.
#[derive(Clone, Debug)]
pub struct PackedB {
    k: usize,
    n: usize,
    /// n x pairs(k) x 2 values.
    data: Vec<i16>,
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

    fn resize(&mut self, k: usize, n: usize) {
        assert!(
            n * pairs(k) * 2 <= self.data.len(),
            "int16 PackedB: {k}x{n} does not fit"
        );
        self.k = k;
        self.n = n;
    }

    /// Packs images `x` (d x n, f32 inputs as [`Pixels`] describes) as their
    /// centred bytes, one image per column (B of W X). Allocates nothing.
    pub fn pack_images(&mut self, x: ArrayView2<'_, f32>, px: &Pixels) {
        self.resize(x.nrows(), x.ncols());
        let len = pairs(self.k) * 2;
        images_into::<false>(&mut self.data[..self.n * len], x, px, len);
    }

    /// Packs X^T of images `x` (d x n): column j is feature j of every image
    /// (B of G X^T). Allocates nothing.
    pub fn pack_pixels(&mut self, x: ArrayView2<'_, f32>, px: &Pixels) {
        self.resize(x.ncols(), x.nrows());
        let len = pairs(self.k) * 2;
        pixels_into(&mut self.data[..self.n * len], x, px, 0, len);
    }

    /// Packs integers directly (any layout): for tests and peaks.
    pub fn pack_ints(&mut self, b: ArrayView2<'_, i16>) {
        self.resize(b.nrows(), b.ncols());
        let len = pairs(self.k) * 2;
        for (j, col) in b.columns().into_iter().enumerate() {
            let out = &mut self.data[j * len..(j + 1) * len];
            out[len - 1] = 0;
            for (o, &v) in out.iter_mut().zip(col.iter()) {
                *o = v;
            }
        }
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
/// (padded to even) at `data[j * ld..]`. A [`PackedB`] is one; so is a batch
/// of a [`PackedSet`].
#[derive(Clone, Copy, Debug)]
pub struct BView<'a> {
    k: usize,
    n: usize,
    /// Distance between consecutive columns (even, at least `pairs(k) * 2`).
    ld: usize,
    data: &'a [i16],
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

    /// Element (i, j).
    pub fn get(&self, i: usize, j: usize) -> i16 {
        self.data[j * self.ld + i]
    }
}

/// `x`'s images (columns, d features each) as centred bytes, one per `len`
/// values; vectorised where the CPU has AVX2. With `CHECK`, returns how many
/// inputs were not within [`FAR`] of a byte (or not finite); 0 otherwise.
fn images_into<const CHECK: bool>(
    out: &mut [i16],
    x: ArrayView2<'_, f32>,
    px: &Pixels,
    len: usize,
) -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the feature was detected.
        return unsafe { images_avx2::<CHECK>(out, x, px, len) };
    }
    images_any::<CHECK>(out, x, px, len)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn images_avx2<const CHECK: bool>(
    out: &mut [i16],
    x: ArrayView2<'_, f32>,
    px: &Pixels,
    len: usize,
) -> usize {
    images_any::<CHECK>(out, x, px, len)
}

#[inline(always)]
fn images_any<const CHECK: bool>(
    out: &mut [i16],
    x: ArrayView2<'_, f32>,
    px: &Pixels,
    len: usize,
) -> usize {
    let d = x.nrows();
    let (scale, offset) = (&px.scale[..d], &px.offset[..d]);
    let mut far = 0usize;
    for (j, col) in x.columns().into_iter().enumerate() {
        let out = &mut out[j * len..(j + 1) * len];
        out[len - 1] = 0;
        let mut put = |(((o, &v), &s), &f): (((&mut i16, &f32), &f32), &f32)| {
            let p = centred_byte(v, s, f);
            *o = p as i32 as i16;
            if CHECK {
                far += is_far((v * s + f - p).abs()) as usize;
            }
        };
        match col.as_slice() {
            Some(c) => out
                .iter_mut()
                .zip(c)
                .zip(scale)
                .zip(offset)
                .for_each(&mut put),
            None => out
                .iter_mut()
                .zip(col.iter())
                .zip(scale)
                .zip(offset)
                .for_each(&mut put),
        }
    }
    far
}

/// `x`'s features `f0..f0 + x.nrows()` (rows of `x`, over its n images) as
/// centred bytes: feature f0 + i's n values at `out[i * len..]`; vectorised
/// where the CPU has AVX2.
fn pixels_into(out: &mut [i16], x: ArrayView2<'_, f32>, px: &Pixels, f0: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the feature was detected.
        return unsafe { pixels_avx2(out, x, px, f0, len) };
    }
    pixels_any(out, x, px, f0, len)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pixels_avx2(out: &mut [i16], x: ArrayView2<'_, f32>, px: &Pixels, f0: usize, len: usize) {
    pixels_any(out, x, px, f0, len)
}

/// Features in blocks of [`FEATURE_BLOCK`], each converted two images at a
/// time into small buffers, then stored feature by feature as one 32-bit
/// word per pair of images: the stores of a block land in few pages.
#[inline(always)]
fn pixels_any(out: &mut [i16], x: ArrayView2<'_, f32>, px: &Pixels, f0: usize, len: usize) {
    let (d, n) = x.dim();
    assert!(d == 0 || (d - 1) * len + n.div_ceil(2) * 2 <= out.len() && len >= n.div_ceil(2) * 2);
    let (rs, cs) = (x.strides()[0], x.strides()[1]);
    let mut buf = [[0i16; FEATURE_BLOCK]; 2];
    for b0 in (0..d).step_by(FEATURE_BLOCK) {
        let w = (b0 + FEATURE_BLOCK).min(d) - b0;
        let (scale, offset) = (
            &px.scale[f0 + b0..f0 + b0 + w],
            &px.offset[f0 + b0..f0 + b0 + w],
        );
        for j in (0..n).step_by(2) {
            for (h, buf) in buf.iter_mut().enumerate() {
                let buf = &mut buf[..w];
                if j + h >= n {
                    buf.fill(0);
                    continue;
                }
                let put = |(((o, &v), &s), &f): (((&mut i16, &f32), &f32), &f32)| {
                    *o = centred_byte(v, s, f) as i32 as i16;
                };
                // SAFETY: image j + h's features b0..b0 + w are in `x`, `rs` apart.
                let first = unsafe { x.as_ptr().offset((j + h) as isize * cs + b0 as isize * rs) };
                if rs == 1 {
                    // SAFETY: as above, one after another.
                    let col = unsafe { std::slice::from_raw_parts(first, w) };
                    buf.iter_mut().zip(col).zip(scale).zip(offset).for_each(put);
                } else {
                    let col = (0..w).map(|i| unsafe { &*first.offset(i as isize * rs) });
                    buf.iter_mut().zip(col).zip(scale).zip(offset).for_each(put);
                }
            }
            for (i, (&lo, &hi)) in buf[0][..w].iter().zip(&buf[1][..w]).enumerate() {
                let word = (lo as u16 as u32) | ((hi as u16 as u32) << 16);
                // SAFETY: (b0 + i) * len + j + 1 is in `out` (asserted above); j is even.
                unsafe {
                    let at = out.as_mut_ptr().add((b0 + i) * len + j) as *mut u32;
                    at.write_unaligned(word);
                }
            }
        }
    }
}

/// Features per block of [`pixels_any`].
const FEATURE_BLOCK: usize = 64;

/// A training set's images as centred bytes, converted once per process in
/// both layouts the kernel reads (as [`super::bf16::PackedSet`]): `images`
/// (d x N, B of W X) and `pixels` (N x d, B of G X^T; a batch is a window).
#[derive(Clone, Debug)]
pub struct PackedSet {
    images: PackedB,
    pixels: PackedB,
}

/// Both operands of a batch of a [`PackedSet`]: X (d x n) and X^T (n x d).
#[derive(Clone, Copy, Debug)]
pub struct PackedBatch<'a> {
    /// The images, d x n: B of W X.
    pub x: BView<'a>,
    /// Their transpose, n x d: B of G X^T.
    pub xt: BView<'a>,
}

/// How far, in bytes, an input may be from the byte it stands for (rounding).
const FAR: f32 = 0.01;

/// Whether a distance from a byte is more than rounding (NaN included).
#[inline(always)]
fn is_far(distance: f32) -> bool {
    distance.is_nan() || distance > FAR
}

/// Images per tile of the transposition that builds a [`PackedSet`]'s X^T.
const TILE: usize = 64;

/// Images per task when a [`PackedSet`] is built.
pub const SET_IMAGES_PER_TASK: usize = 1024;
/// Features per task when a [`PackedSet`] is built.
pub const SET_PIXELS_PER_TASK: usize = 64;

impl PackedSet {
    /// Converts `x` (d x N standardised images) to centred bytes in both
    /// layouts, in fixed tasks on the current rayon pool. Refuses inputs that
    /// are not standardised bytes (whitened features, another data set's
    /// statistics), naming the first one found.
    pub fn new(x: ArrayView2<'_, f32>, px: &Pixels) -> Result<Self> {
        use rayon::prelude::*;
        let (d, n) = x.dim();
        assert_eq!(
            d,
            px.dim(),
            "int16 PackedSet: {d} features, {} in Pixels",
            px.dim()
        );
        let mut images = PackedB::new(d, n);
        let mut pixels = PackedB::new(n, d);
        let (image_len, pixel_len) = (pairs(d) * 2, pairs(n) * 2);
        let per = SET_IMAGES_PER_TASK;
        let far: usize = images
            .data
            .par_chunks_mut(image_len * per)
            .enumerate()
            .map(|(t, out)| {
                let j = t * per;
                let cols = x.slice(ndarray::s![.., j..(j + per).min(n)]);
                images_into::<true>(out, cols, px, image_len)
            })
            .sum();
        // Every input must stand for a byte, to rounding.
        if far > 0 {
            let j = (0..n)
                .find(|&j| {
                    let col = x.column(j);
                    col.iter()
                        .enumerate()
                        .any(|(f, &v)| is_far(px.centred(f, v).1))
                })
                .unwrap_or(0);
            bail!(
                "--precision int16 multiplies bytes, but image {j}'s features are not standardised bytes \
                 (whitened, or scaled otherwise): use --precision f32 or bf16 with whitening"
            );
        }
        // X^T from X's bytes, in tiles (whole cache lines each way).
        let per = SET_PIXELS_PER_TASK;
        let (from, data) = (&images.data, &mut pixels.data);
        data.par_chunks_mut(pixel_len * per)
            .enumerate()
            .for_each(|(t, out)| {
                let f0 = t * per;
                let rows = per.min(d - f0);
                for j0 in (0..n).step_by(TILE) {
                    for j in j0..(j0 + TILE).min(n) {
                        let image = &from[j * image_len + f0..][..rows];
                        for (i, &v) in image.iter().enumerate() {
                            out[i * pixel_len + j] = v;
                        }
                    }
                }
            });
        Ok(PackedSet { images, pixels })
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
    /// when j0 or n is odd (a pair of k would straddle the batch's edge).
    pub fn batch(&self, j0: usize, n: usize) -> Option<PackedBatch<'_>> {
        assert!(
            j0 + n <= self.len(),
            "batch {j0}+{n} past {} images",
            self.len()
        );
        if j0 % 2 == 1 || n % 2 == 1 {
            return None;
        }
        let (images, pixels) = (self.images.view(), self.pixels.view());
        Some(PackedBatch {
            x: BView {
                n,
                data: &images.data[j0 * images.ld..],
                ..images
            },
            xt: BView {
                k: n,
                data: &pixels.data[j0..],
                ..pixels
            },
        })
    }
}

/// The per-column factors of a product (see the module): C's column j gets
/// `- u_i * offset[j]` before the row scale and `* scale[j]` after (1 each
/// when absent), indexed by B's column.
#[derive(Clone, Copy, Debug, Default)]
pub struct Columns<'a> {
    /// v_j: the weight product's column offsets o_j.
    pub offset: Option<&'a [f32]>,
    /// w_j: the weight product's 1 / s_j.
    pub scale: Option<&'a [f32]>,
}

fn check(a: &PackedA, b: &BView<'_>, cols: &Columns<'_>, c: &ArrayViewMut2<'_, f32>) {
    assert!(
        b.ld.is_multiple_of(2)
            && b.ld >= pairs(b.k) * 2
            && (b.n == 0 || (b.n - 1) * b.ld + pairs(b.k) * 2 <= b.data.len()),
        "int16 gemm: B's columns ({}x{}, ld {}) overrun its {} values",
        b.k,
        b.n,
        b.ld,
        b.data.len()
    );
    assert!(
        a.k == b.k && c.nrows() == a.m && c.ncols() == b.n,
        "int16 gemm shapes: A {}x{}, B {}x{}, C {}x{}",
        a.m,
        a.k,
        b.k,
        b.n,
        c.nrows(),
        c.ncols()
    );
    for v in [cols.offset, cols.scale].into_iter().flatten() {
        assert!(
            v.len() >= b.n,
            "int16 gemm: {} column factors for {} columns",
            v.len(),
            b.n
        );
    }
}

/// Rows `i0..i0 + sums.len()` of C's column `j` from their f32 sums (see the
/// module for the arithmetic); `out` is the column's first row, `rs` apart.
/// Plain element-wise IEEE operations: vectorised or not, the same bits.
///
/// # Safety
/// `out` must point at `sums.len()` elements `rs` apart.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn finish(
    sums: &[f32],
    i0: usize,
    j: usize,
    alpha: f32,
    a: &PackedA,
    cols: &Columns<'_>,
    beta: f32,
    out: *mut f32,
    rs: isize,
) {
    let rows = sums.len();
    let v = cols.offset.map_or(1.0, |o| o[j]);
    let w = cols.scale.map_or(1.0, |s| s[j]);
    let (u, scale) = (&a.sums[i0..i0 + rows], &a.scale[i0..i0 + rows]);
    let value = |s: f32, u: f32, a: f32| ((s - u * v) * (alpha * a)) * w;
    if rs == 1 {
        let out = std::slice::from_raw_parts_mut(out, rows);
        if beta == 0.0 {
            for (((o, &s), &u), &a) in out.iter_mut().zip(sums).zip(u).zip(scale) {
                *o = value(s, u, a);
            }
        } else {
            for (((o, &s), &u), &a) in out.iter_mut().zip(sums).zip(u).zip(scale) {
                *o = value(s, u, a) + beta * *o;
            }
        }
    } else {
        for r in 0..rows {
            let p = out.offset(r as isize * rs);
            let y = value(sums[r], u[r], scale[r]);
            *p = if beta == 0.0 { y } else { y + beta * *p };
        }
    }
}

/// The product in scalar code with the kernel's exact arithmetic (see the
/// module): the reference the kernels are tested against, on any CPU.
pub fn gemm_emulated(
    alpha: f32,
    a: &PackedA,
    b: BView<'_>,
    cols: Columns<'_>,
    beta: f32,
    mut c: ArrayViewMut2<'_, f32>,
) {
    check(a, &b, &cols, &c);
    let kp = pairs(a.k);
    let (rs, cs) = (c.strides()[0], c.strides()[1]);
    for j in 0..b.n {
        for i in 0..a.m {
            let mut sum = 0.0f32;
            for p0 in (0..kp).step_by(BLOCK_PAIRS) {
                let mut block = 0i32;
                for p in p0..(p0 + BLOCK_PAIRS).min(kp) {
                    let (a0, a1) = (a.get(i, 2 * p) as i32, a.get(i, 2 * p + 1) as i32);
                    let (b0, b1) = (b.get(2 * p, j) as i32, b.get(2 * p + 1, j) as i32);
                    block += a0 * b0 + a1 * b1;
                }
                sum += block as f32;
            }
            // SAFETY: (i, j) is in C.
            unsafe {
                let out = c.as_mut_ptr().offset(i as isize * rs + j as isize * cs);
                finish(&[sum], i, j, alpha, a, &cols, beta, out, 1);
            }
        }
    }
}

/// C = the product (see the module) on this CPU's best version ([`isa`]),
/// C's columns in the fixed blocks of `blas::for_column_blocks` (the same bits
/// on any pool). Refuses, with [`require`]'s message, where no version runs.
pub fn gemm_blocks(
    alpha: f32,
    a: &PackedA,
    b: BView<'_>,
    cols: Columns<'_>,
    beta: f32,
    c: ArrayViewMut2<'_, f32>,
) -> Result<()> {
    let isa = require()?;
    gemm_blocks_with(isa, alpha, a, b, cols, beta, c);
    Ok(())
}

/// [`gemm_blocks`] on a given version, which the CPU must have
/// ([`Isa::detected`]; checked, a panic otherwise).
pub fn gemm_blocks_with(
    isa: Isa,
    alpha: f32,
    a: &PackedA,
    b: BView<'_>,
    cols: Columns<'_>,
    beta: f32,
    c: ArrayViewMut2<'_, f32>,
) {
    check(a, &b, &cols, &c);
    assert!(isa.detected(), "int16 gemm: this CPU has no {}", isa.name());
    super::blas::for_column_blocks(c, false, &|j0, c| {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the features were detected; shapes checked above.
        unsafe {
            match isa {
                Isa::Avx512Vnni => kernel::gemm_512(alpha, a, b, j0, &cols, beta, c),
                Isa::AvxVnni => kernel::gemm_avxvnni(alpha, a, b, j0, &cols, beta, c),
                Isa::Avx2 => kernel::gemm_avx2(alpha, a, b, j0, &cols, beta, c),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (j0, c);
    });
}

/// One core's 16-bit multiply-add peak on version `isa`, in G-ops/s (a
/// multiply-add counted as 2, as an FMA's FLOPs): 16 independent accumulators
/// (6, each with its own operand, with AVX2's 16 registers), no memory traffic, for about `min_s`
/// seconds. `None` where the CPU lacks it.
pub fn instruction_peak(isa: Isa, min_s: f64) -> Option<f64> {
    if !isa.detected() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // Ops per loop turn: accumulators x lanes x 2 products x 2.
        let (f, ops): (unsafe fn(usize) -> i32, f64) = match isa {
            Isa::Avx2 => (kernel::madd_turns, 6.0 * 8.0 * 4.0),
            Isa::AvxVnni => (kernel::vnni256_turns, 16.0 * 8.0 * 4.0),
            Isa::Avx512Vnni => (kernel::vnni512_turns, 16.0 * 16.0 * 4.0),
        };
        Some(super::timing::rate(min_s, ops, |turns| {
            // SAFETY: the features were detected.
            std::hint::black_box(unsafe { f(turns) });
        }))
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

#[cfg(target_arch = "x86_64")]
// Register tiles are indexed explicitly: the loops unroll over constants.
#[allow(clippy::needless_range_loop)]
mod kernel {
    use super::{finish, pairs, BView, Columns, PackedA, BLOCK_PAIRS, MR};
    use ndarray::ArrayViewMut2;
    use std::arch::x86_64::*;

    /// Columns of C per tile of the 512-bit version (24 accumulators).
    const NR512: usize = 12;
    /// Columns of C per tile of the 256-bit versions (12 accumulators).
    const NR256: usize = 6;

    /// Every tile of C on 512 bits: panels of A outermost (a panel stays in
    /// cache while B's columns stream past it), tiles of [`MR`] x 12.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn gemm_512(
        alpha: f32,
        a: &PackedA,
        b: BView<'_>,
        j0: usize,
        cols: &Columns<'_>,
        beta: f32,
        mut c: ArrayViewMut2<'_, f32>,
    ) {
        let kp = pairs(a.k);
        let n = c.ncols();
        let (rs, cs) = (c.strides()[0], c.strides()[1]);
        let cptr = c.as_mut_ptr();
        for panel in 0..a.m.div_ceil(MR) {
            let rows = (a.m - panel * MR).min(MR);
            let ap = a.data.as_ptr().add(panel * kp * MR * 2);
            for t in 0..n.div_ceil(NR512) {
                let j = t * NR512;
                let ncols = (n - j).min(NR512);
                let bp = b.data.as_ptr().add((j0 + j) * b.ld);
                let mut sums = [[_mm512_setzero_ps(); NR512]; 2];
                match ncols {
                    12 => tile_512::<12>(ap, bp, kp, b.ld, &mut sums),
                    11 => tile_512::<11>(ap, bp, kp, b.ld, &mut sums),
                    10 => tile_512::<10>(ap, bp, kp, b.ld, &mut sums),
                    9 => tile_512::<9>(ap, bp, kp, b.ld, &mut sums),
                    8 => tile_512::<8>(ap, bp, kp, b.ld, &mut sums),
                    7 => tile_512::<7>(ap, bp, kp, b.ld, &mut sums),
                    6 => tile_512::<6>(ap, bp, kp, b.ld, &mut sums),
                    5 => tile_512::<5>(ap, bp, kp, b.ld, &mut sums),
                    4 => tile_512::<4>(ap, bp, kp, b.ld, &mut sums),
                    3 => tile_512::<3>(ap, bp, kp, b.ld, &mut sums),
                    2 => tile_512::<2>(ap, bp, kp, b.ld, &mut sums),
                    _ => tile_512::<1>(ap, bp, kp, b.ld, &mut sums),
                }
                for col in 0..ncols {
                    let mut s = [0.0f32; MR];
                    _mm512_storeu_ps(s.as_mut_ptr(), sums[0][col]);
                    _mm512_storeu_ps(s.as_mut_ptr().add(16), sums[1][col]);
                    let out = cptr.offset((panel * MR) as isize * rs + (j + col) as isize * cs);
                    let jj = j0 + j + col;
                    finish(&s[..rows], panel * MR, jj, alpha, a, cols, beta, out, rs);
                }
            }
        }
    }

    /// sums[h][col] = the f32 sum over k's blocks of the exact i32 sums of
    /// the panel's rows 16 h .. 16 h + 15 times column col of the `N` at `bp`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn tile_512<const N: usize>(
        ap: *const i16,
        bp: *const i16,
        kp: usize,
        ld: usize,
        sums: &mut [[__m512; NR512]; 2],
    ) {
        let mut p0 = 0;
        while p0 < kp {
            let p1 = (p0 + BLOCK_PAIRS).min(kp);
            let mut acc = [[_mm512_setzero_si512(); N]; 2];
            for p in p0..p1 {
                let a0 = _mm512_loadu_si512(ap.add(p * MR * 2) as *const __m512i);
                let a1 = _mm512_loadu_si512(ap.add(p * MR * 2 + 32) as *const __m512i);
                for col in 0..N {
                    let pair = (bp.add(col * ld + p * 2) as *const i32).read_unaligned();
                    let bv = _mm512_set1_epi32(pair);
                    acc[0][col] = _mm512_dpwssd_epi32(acc[0][col], a0, bv);
                    acc[1][col] = _mm512_dpwssd_epi32(acc[1][col], a1, bv);
                }
            }
            for col in 0..N {
                for h in 0..2 {
                    sums[h][col] = _mm512_add_ps(sums[h][col], _mm512_cvtepi32_ps(acc[h][col]));
                }
            }
            p0 = p1;
        }
    }

    /// The 256-bit versions: AVX2's two instructions, AVX-VNNI's one.
    macro_rules! gemm_256 {
        ($gemm:ident, $tile:ident, $features:literal, $madd:ident) => {
            /// Every tile of C on 256 bits: panels of A outermost, each as two
            /// halves of 16 rows, tiles of 16 x 6.
            #[target_feature(enable = $features)]
            pub unsafe fn $gemm(
                alpha: f32,
                a: &PackedA,
                b: BView<'_>,
                j0: usize,
                cols: &Columns<'_>,
                beta: f32,
                mut c: ArrayViewMut2<'_, f32>,
            ) {
                let kp = pairs(a.k);
                let n = c.ncols();
                let (rs, cs) = (c.strides()[0], c.strides()[1]);
                let cptr = c.as_mut_ptr();
                for panel in 0..a.m.div_ceil(MR) {
                    for half in 0..2 {
                        let r0 = panel * MR + half * 16;
                        if r0 >= a.m {
                            continue;
                        }
                        let rows = (a.m - r0).min(16);
                        let ap = a.data.as_ptr().add(panel * kp * MR * 2 + half * 32);
                        for t in 0..n.div_ceil(NR256) {
                            let j = t * NR256;
                            let ncols = (n - j).min(NR256);
                            let bp = b.data.as_ptr().add((j0 + j) * b.ld);
                            let mut sums = [[_mm256_setzero_ps(); NR256]; 2];
                            match ncols {
                                6 => $tile::<6>(ap, bp, kp, b.ld, &mut sums),
                                5 => $tile::<5>(ap, bp, kp, b.ld, &mut sums),
                                4 => $tile::<4>(ap, bp, kp, b.ld, &mut sums),
                                3 => $tile::<3>(ap, bp, kp, b.ld, &mut sums),
                                2 => $tile::<2>(ap, bp, kp, b.ld, &mut sums),
                                _ => $tile::<1>(ap, bp, kp, b.ld, &mut sums),
                            }
                            for col in 0..ncols {
                                let mut s = [0.0f32; 16];
                                _mm256_storeu_ps(s.as_mut_ptr(), sums[0][col]);
                                _mm256_storeu_ps(s.as_mut_ptr().add(8), sums[1][col]);
                                let out = cptr.offset(r0 as isize * rs + (j + col) as isize * cs);
                                let jj = j0 + j + col;
                                finish(&s[..rows], r0, jj, alpha, a, cols, beta, out, rs);
                            }
                        }
                    }
                }
            }

            /// sums[h][col] over k's blocks, for 16 rows (8 h .. 8 h + 7)
            /// of a half panel at `ap` (pairs `MR * 2` values apart).
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn $tile<const N: usize>(
                ap: *const i16,
                bp: *const i16,
                kp: usize,
                ld: usize,
                sums: &mut [[__m256; NR256]; 2],
            ) {
                let mut p0 = 0;
                while p0 < kp {
                    let p1 = (p0 + BLOCK_PAIRS).min(kp);
                    let mut acc = [[_mm256_setzero_si256(); N]; 2];
                    for p in p0..p1 {
                        let a0 = _mm256_loadu_si256(ap.add(p * MR * 2) as *const __m256i);
                        let a1 = _mm256_loadu_si256(ap.add(p * MR * 2 + 16) as *const __m256i);
                        for col in 0..N {
                            let pair = (bp.add(col * ld + p * 2) as *const i32).read_unaligned();
                            let bv = _mm256_set1_epi32(pair);
                            acc[0][col] = $madd(acc[0][col], a0, bv);
                            acc[1][col] = $madd(acc[1][col], a1, bv);
                        }
                    }
                    for col in 0..N {
                        for h in 0..2 {
                            let f = _mm256_cvtepi32_ps(acc[h][col]);
                            sums[h][col] = _mm256_add_ps(sums[h][col], f);
                        }
                    }
                    p0 = p1;
                }
            }
        };
    }

    /// acc + the pairs' products of a and b, in two instructions.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn madd_avx2(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        _mm256_add_epi32(acc, _mm256_madd_epi16(a, b))
    }

    /// acc + the pairs' products of a and b, in one instruction.
    #[target_feature(enable = "avx2,avxvnni")]
    #[inline]
    unsafe fn madd_avxvnni(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        _mm256_dpwssd_avx_epi32(acc, a, b)
    }

    gemm_256!(gemm_avx2, tile_avx2, "avx2", madd_avx2);
    gemm_256!(gemm_avxvnni, tile_avxvnni, "avx2,avxvnni", madd_avxvnni);

    /// Pass 1 of [`PackedA::quantise`] over a column `c` scaled by `s`, 8
    /// rows at a time, with [`super::track`]'s operations. Returns how many
    /// rows it did (a multiple of 8).
    #[target_feature(enable = "avx2")]
    pub unsafe fn track_column(max: &mut [f32], poison: &mut [f32], c: &[f32], s: f32) -> usize {
        let live = c.len().min(max.len()).min(poison.len());
        let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let (vs, zero) = (_mm256_set1_ps(s), _mm256_setzero_ps());
        let mut r = 0;
        while r + 8 <= live {
            let x = _mm256_and_ps(_mm256_mul_ps(_mm256_loadu_ps(c.as_ptr().add(r)), vs), abs);
            let m = _mm256_loadu_ps(max.as_ptr().add(r));
            // MAXPS(x, m) is x where x > m, else m (NaN included): as `track`.
            _mm256_storeu_ps(max.as_mut_ptr().add(r), _mm256_max_ps(x, m));
            let p = _mm256_loadu_ps(poison.as_ptr().add(r));
            _mm256_storeu_ps(
                poison.as_mut_ptr().add(r),
                _mm256_add_ps(p, _mm256_mul_ps(x, zero)),
            );
            r += 8;
        }
        r
    }

    /// Pass 2 of [`PackedA::quantise`] for 8 rows at a time of a panel's
    /// pair of columns `c0`, `c1` (scaled by `s`, offsets `o`), with the
    /// scalar code's operations: `out` gets the rows' integer pairs, `acc`
    /// their sums. Returns how many rows it did (a multiple of 8).
    #[target_feature(enable = "avx2")]
    pub unsafe fn quantise_pairs(
        out: &mut [i16],
        c0: &[f32],
        c1: &[f32],
        inv: &[f32],
        acc: &mut [f64],
        s: [f32; 2],
        o: [f64; 2],
    ) -> usize {
        let live = c0
            .len()
            .min(c1.len())
            .min(inv.len())
            .min(acc.len())
            .min(out.len() / 2);
        let magic = _mm256_set1_ps(12_582_912.0);
        let limit = _mm256_set1_ps(super::QMAX + 0.5);
        let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let (s0, s1) = (_mm256_set1_ps(s[0]), _mm256_set1_ps(s[1]));
        let (o0, o1) = (_mm256_set1_pd(o[0]), _mm256_set1_pd(o[1]));
        let low = _mm256_set1_epi32(0xffff);
        let quantum = |y: __m256| {
            let inside = _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_and_ps(y, abs), limit);
            _mm256_and_ps(_mm256_sub_ps(_mm256_add_ps(y, magic), magic), inside)
        };
        let mut r = 0;
        while r + 8 <= live {
            let f = _mm256_loadu_ps(inv.as_ptr().add(r));
            let y0 = _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(c0.as_ptr().add(r)), s0), f);
            let y1 = _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(c1.as_ptr().add(r)), s1), f);
            let (q0, q1) = (quantum(y0), quantum(y1));
            let (i0, i1) = (_mm256_cvttps_epi32(q0), _mm256_cvttps_epi32(q1));
            let words = _mm256_or_si256(_mm256_and_si256(i0, low), _mm256_slli_epi32::<16>(i1));
            _mm256_storeu_si256(out.as_mut_ptr().add(2 * r) as *mut __m256i, words);
            for h in 0..2 {
                let (a0, a1) = if h == 0 {
                    (_mm256_castps256_ps128(q0), _mm256_castps256_ps128(q1))
                } else {
                    (
                        _mm256_extractf128_ps::<1>(q0),
                        _mm256_extractf128_ps::<1>(q1),
                    )
                };
                let u = acc.as_mut_ptr().add(r + 4 * h);
                let mut v = _mm256_loadu_pd(u);
                v = _mm256_add_pd(v, _mm256_mul_pd(_mm256_cvtps_pd(a0), o0));
                v = _mm256_add_pd(v, _mm256_mul_pd(_mm256_cvtps_pd(a1), o1));
                _mm256_storeu_pd(u, v);
            }
            r += 8;
        }
        r
    }

    /// `turns` rounds of 6 independent `VPMADDWD` + `VPADDD` pairs, each on
    /// its own operand, which every round hides from the compiler (else it
    /// hoists the product out of the loop and times the additions alone).
    #[target_feature(enable = "avx2")]
    pub unsafe fn madd_turns(turns: usize) -> i32 {
        let mut b = [_mm256_set1_epi16(std::hint::black_box(3)); 6];
        let mut acc = [_mm256_setzero_si256(); 6];
        for _ in 0..turns {
            let [b0, b1, b2, b3, b4, b5] = &mut b;
            std::arch::asm!(
                "/* {0} {1} {2} {3} {4} {5} */",
                inout(ymm_reg) * b0,
                inout(ymm_reg) * b1,
                inout(ymm_reg) * b2,
                inout(ymm_reg) * b3,
                inout(ymm_reg) * b4,
                inout(ymm_reg) * b5,
                options(nomem, nostack, preserves_flags)
            );
            for (r, &v) in acc.iter_mut().zip(&b) {
                *r = madd_avx2(*r, v, v);
            }
        }
        let mut s = _mm256_setzero_si256();
        for r in acc {
            s = _mm256_add_epi32(s, r);
        }
        _mm256_extract_epi32::<0>(s)
    }

    /// `turns` rounds of 16 independent 256-bit `VPDPWSSD`.
    #[target_feature(enable = "avx2,avxvnni")]
    pub unsafe fn vnni256_turns(turns: usize) -> i32 {
        let a = _mm256_set1_epi16(std::hint::black_box(3));
        let mut acc = [_mm256_setzero_si256(); 16];
        for _ in 0..turns {
            for r in acc.iter_mut() {
                *r = madd_avxvnni(*r, a, a);
            }
            std::arch::asm!("", options(nomem, nostack));
        }
        let mut s = _mm256_setzero_si256();
        for r in acc {
            s = _mm256_add_epi32(s, r);
        }
        _mm256_extract_epi32::<0>(s)
    }

    /// `turns` rounds of 16 independent 512-bit `VPDPWSSD`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn vnni512_turns(turns: usize) -> i32 {
        let a = _mm512_set1_epi16(std::hint::black_box(3));
        let mut acc = [_mm512_setzero_si512(); 16];
        for _ in 0..turns {
            for r in acc.iter_mut() {
                *r = _mm512_dpwssd_epi32(*r, a, a);
            }
            std::arch::asm!("", options(nomem, nostack));
        }
        let mut s = _mm512_setzero_si512();
        for r in acc {
            s = _mm512_add_epi32(s, r);
        }
        _mm512_reduce_add_epi32(s)
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

    /// Centred bytes (-128..=127), seeded.
    fn bytes(rows: usize, cols: usize, seed: u32) -> Array2<i16> {
        let m = matrix(rows, cols, seed, true);
        m.mapv(|v| ((v + 1.0) * 127.5).floor().clamp(0.0, 255.0) as i16 - 128)
    }

    fn pixels(d: usize) -> Pixels {
        let mean: Vec<f64> = (0..d).map(|j| 0.3 + 0.4 * (j % 7) as f64 / 7.0).collect();
        let std: Vec<f64> = (0..d).map(|j| 0.2 + 0.1 * (j % 5) as f64 / 5.0).collect();
        Pixels::new(&mean, &std)
    }

    /// Standardised f32 inputs of the centred bytes `b` (d x n), as the data set holds them.
    fn standardised(b: &Array2<i16>, px: &Pixels) -> Array2<f32> {
        let mut x = Array2::<f32>::zeros(b.dim().f());
        for ((f, j), &v) in b.indexed_iter() {
            let p = (v + 128) as f64;
            let (mean, std) = (
                (px.offset[f] as f64 + 128.0) / 255.0,
                px.scale[f] as f64 / 255.0,
            );
            x[[f, j]] = ((p / 255.0 - mean) / std) as f32;
        }
        x
    }

    fn same_bits(a: &Array2<f32>, b: &Array2<f32>, what: &str) {
        for ((i, j), x) in a.indexed_iter() {
            let y = b[[i, j]];
            assert!(
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                "{what}: ({i},{j}) {x} vs {y}"
            );
        }
    }

    #[test]
    fn quantising_keeps_each_row_to_half_a_unit_of_its_largest_term() {
        for &(m, k) in &[(1, 1), (5, 3), (33, 7), (70, 101)] {
            for fortran in [false, true] {
                let a = matrix(m, k, 7, fortran);
                let cs: Vec<f32> = (0..k).map(|j| 1.0 + j as f32 / 10.0).collect();
                let mut pa = PackedA::new(m, k + 4);
                pa.quantise(a.view(), Some(&cs), None);
                assert_eq!((pa.rows(), pa.cols()), (m, k));
                for i in 0..m {
                    let row: Vec<f32> = (0..k).map(|j| a[[i, j]] * cs[j]).collect();
                    let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    assert_eq!(pa.scale(i), max / QMAX);
                    let mut sum = 0i64;
                    for (j, &v) in row.iter().enumerate() {
                        let q = pa.get(i, j);
                        assert!(q.unsigned_abs() <= 32767);
                        // Half a unit, and f32's rounding of the scaled value.
                        let err = (q as f64 * pa.scale(i) as f64 - v as f64).abs();
                        let bound = 0.5 * pa.scale(i) as f64 + 2.0f64.powi(-22) * max as f64;
                        assert!(err <= bound, "({i},{j}) {err:e} > {bound:e}");
                        sum += q as i64;
                    }
                    assert_eq!(pa.sum(i), sum as f32, "row {i}'s sum");
                    if k % 2 == 1 {
                        assert_eq!(pa.get(i, k), 0, "padding");
                    }
                }
            }
        }
        // Zero rows, and rows with a NaN or an infinity.
        let mut a = matrix(3, 8, 1, true);
        a.row_mut(0).fill(0.0);
        a[[1, 3]] = f32::NAN;
        a[[2, 5]] = f32::INFINITY;
        let mut pa = PackedA::new(3, 8);
        pa.quantise(a.view(), None, None);
        assert_eq!(pa.scale(0), 0.0);
        assert!(pa.scale(1).is_nan() && pa.scale(2).is_nan());
        assert!((0..3).all(|i| (0..8).all(|j| pa.get(i, j) == 0)));
    }

    /// The vectorised passes give the scalar code's bits (quantising, and
    /// converting images in both layouts).
    #[test]
    fn vector_and_scalar_conversions_agree_bit_for_bit() {
        for &(m, k) in &[(1, 1), (33, 7), (70, 101), (400, 64)] {
            let mut a = matrix(m, k, 5, true);
            a[[0, 0]] = 1e-30;
            let cs: Vec<f32> = (0..k).map(|j| 0.5 + j as f32 / 7.0).collect();
            let co: Vec<f32> = (0..k).map(|j| j as f32 / 3.0 - 9.0).collect();
            let (mut vector, mut scalar) = (PackedA::new(m, k), PackedA::new(m, k));
            vector.quantise(a.view(), Some(&cs), Some(&co));
            scalar.k = k;
            scalar.scalar_only = true;
            scalar.quantise_any(a.view(), Some(&cs), Some(&co));
            assert_eq!(vector.data, scalar.data, "{m}x{k}");
            assert_eq!(vector.scale, scalar.scale);
            assert_eq!(vector.sums, scalar.sums);
        }
        let (d, n) = (301, 33);
        let px = pixels(d);
        let mut x = standardised(&bytes(d, n, 3), &px);
        x[[4, 5]] = 1e9;
        x[[6, 7]] = -1e9;
        x[[8, 9]] = f32::NAN;
        let len = pairs(d) * 2;
        let (mut vector, mut scalar) = (vec![0i16; n * len], vec![0i16; n * len]);
        assert_eq!(
            images_into::<true>(&mut vector, x.view(), &px, len),
            3,
            "three inputs are not bytes"
        );
        images_any::<false>(&mut scalar, x.view(), &px, len);
        assert_eq!(vector, scalar);
        assert_eq!(
            (
                vector[5 * len + 4],
                vector[7 * len + 6],
                vector[9 * len + 8]
            ),
            (127, -128, 0)
        );
        let len = pairs(n) * 2;
        let (mut vector, mut scalar) = (vec![0i16; d * len], vec![0i16; d * len]);
        pixels_into(&mut vector, x.view(), &px, 0, len);
        pixels_any(&mut scalar, x.view(), &px, 0, len);
        assert_eq!(vector, scalar);
    }

    /// Every version this CPU has gives the emulation's bits, over odd shapes
    /// (m not a multiple of 16 or 32, n not a multiple of a tile, odd k, k
    /// over several blocks), column factors, alpha and beta, either layout of C.
    #[test]
    fn every_version_gives_the_emulations_bits_on_odd_shapes() {
        let versions: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.detected()).collect();
        if versions.is_empty() {
            eprintln!("skipped: this CPU has no AVX2; the emulation is what the tests below check");
        }
        for &(m, n, k) in &[
            (1, 1, 1),
            (16, 12, 2),
            (17, 13, 3),
            (31, 11, 64),
            (33, 25, 513),
            (50, 100, 3072),
            (100, 7, 99),
            (400, 30, 100),
        ] {
            let a = matrix(m, k, 3, true);
            let mut pa = PackedA::new(m, k);
            let offsets: Vec<f32> = (0..k).map(|j| j as f32 / 50.0 - 3.0).collect();
            pa.quantise(a.view(), None, Some(&offsets));
            let mut pb = PackedB::new(k, n);
            pb.pack_ints(bytes(k, n, 4).view());
            let (v, w): (Vec<f32>, Vec<f32>) = (0..n)
                .map(|j| (j as f32 * 0.3 - 2.0, 0.5 + j as f32 / 64.0))
                .unzip();
            for (alpha, beta, fortran, cols) in [
                (1.0f32, 0.0f32, true, Columns::default()),
                (
                    -0.01,
                    0.999,
                    true,
                    Columns {
                        offset: Some(&v),
                        scale: Some(&w),
                    },
                ),
                (
                    0.5,
                    1.0,
                    false,
                    Columns {
                        offset: Some(&v),
                        scale: None,
                    },
                ),
            ] {
                let c0 = matrix(m, n, 5, fortran);
                let mut want = c0.clone();
                gemm_emulated(alpha, &pa, pb.view(), cols, beta, want.view_mut());
                for &isa in &versions {
                    let mut got = c0.clone();
                    gemm_blocks_with(isa, alpha, &pa, pb.view(), cols, beta, got.view_mut());
                    same_bits(
                        &got,
                        &want,
                        &format!("{isa:?} {m}x{n}x{k} alpha {alpha} beta {beta}"),
                    );
                }
            }
        }
    }

    /// The largest magnitudes (15-bit weights of one sign, bytes at -128) over
    /// a whole block and more: no i32 sum overflows, and the result is the exact one.
    #[test]
    fn the_largest_terms_over_whole_blocks_do_not_overflow() {
        let (m, n, k) = (40, 3, 3072);
        let a = Array2::from_elem((m, k).f(), -1.0f32);
        let mut pa = PackedA::new(m, k);
        pa.quantise(a.view(), None, None);
        assert!((0..k).all(|j| pa.get(0, j) == -32767));
        let mut pb = PackedB::new(k, n);
        pb.pack_ints(Array2::from_elem((k, n), -128i16).view());
        let mut want = Array2::<f32>::zeros((m, n).f());
        gemm_emulated(
            1.0,
            &pa,
            pb.view(),
            Columns::default(),
            0.0,
            want.view_mut(),
        );
        // Each block's sum, 512 x 32767 x 128, is exact in f32; six blocks' sum too.
        let per_block = 512.0f32 * 32767.0 * 128.0;
        let sum = per_block * 6.0;
        let expect = (sum - pa.sum(0)) * (1.0 * pa.scale(0));
        assert_eq!(want[[0, 0]], expect);
        for isa in Isa::ALL.into_iter().filter(|i| i.detected()) {
            let mut got = Array2::<f32>::zeros((m, n).f());
            gemm_blocks_with(
                isa,
                1.0,
                &pa,
                pb.view(),
                Columns::default(),
                0.0,
                got.view_mut(),
            );
            same_bits(&got, &want, &format!("{isa:?}"));
        }
    }

    /// The product of standardised images approximates the f64 product of
    /// the f32 inputs to 16 bits: W X and G X^T as a step computes them.
    #[test]
    fn products_of_standardised_images_are_the_f64_products_to_16_bits() {
        let (m, d, n) = (24, 301, 40);
        let px = pixels(d);
        let xb = bytes(d, n, 9);
        let x = standardised(&xb, &px);
        let w = matrix(m, d, 2, true);
        let g = matrix(m, n, 3, true);
        let (mut pw, mut pg) = (PackedA::new(m, d), PackedA::new(m, n));
        pw.quantise(w.view(), Some(&px.inv_scale), Some(&px.offset));
        pg.quantise(g.view(), None, None);
        let (mut bx, mut bxt) = (PackedB::new(d, n), PackedB::new(n, d));
        bx.pack_images(x.view(), &px);
        bxt.pack_pixels(x.view(), &px);
        for f in 0..d {
            for j in 0..n {
                assert_eq!(bx.view().get(f, j), xb[[f, j]]);
                assert_eq!(bxt.view().get(j, f), xb[[f, j]]);
            }
        }
        let mut fwd = Array2::<f32>::zeros((m, n).f());
        gemm_emulated(1.0, &pw, bx.view(), Columns::default(), 0.0, fwd.view_mut());
        let cols = Columns {
            offset: Some(&px.offset),
            scale: Some(&px.inv_scale),
        };
        let mut grad = Array2::<f32>::zeros((m, d).f());
        gemm_emulated(-0.5, &pg, bxt.view(), cols, 0.0, grad.view_mut());
        let rel = |got: &Array2<f32>, want: &Array2<f64>| {
            let num: f64 = got
                .iter()
                .zip(want)
                .map(|(a, b)| (*a as f64 - b).powi(2))
                .sum();
            let den: f64 = want.iter().map(|b| b * b).sum();
            (num / den).sqrt()
        };
        let x64 = x.mapv(|v| v as f64);
        let want_fwd = w.mapv(|v| v as f64).dot(&x64);
        let want_grad = g.mapv(|v| v as f64).dot(&x64.t()) * -0.5;
        let (ef, eg) = (rel(&fwd, &want_fwd), rel(&grad, &want_grad));
        assert!(ef < 4e-5 && eg < 4e-5, "relative errors {ef:.2e}, {eg:.2e}");
        assert!(
            ef > 1e-7 && eg > 1e-7,
            "quantised, so not f32's: {ef:.2e}, {eg:.2e}"
        );
    }

    #[test]
    fn blocked_products_are_the_same_bits_on_any_pool() {
        let Some(isa) = isa() else {
            eprintln!("skipped: this CPU has no AVX2");
            return;
        };
        let mut pa = PackedA::new(70, 100);
        pa.quantise(matrix(70, 100, 1, true).view(), None, None);
        let mut pb = PackedB::new(100, 3072);
        pb.pack_ints(bytes(100, 3072, 2).view());
        let mut one = Array2::<f32>::zeros((70, 3072).f());
        gemm_emulated(0.1, &pa, pb.view(), Columns::default(), 0.0, one.view_mut());
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut c = Array2::<f32>::zeros((70, 3072).f());
            pool.install(|| {
                gemm_blocks_with(
                    isa,
                    0.1,
                    &pa,
                    pb.view(),
                    Columns::default(),
                    0.0,
                    c.view_mut(),
                )
            });
            same_bits(&c, &one, &format!("{threads} threads"));
        }
    }

    /// A batch of the set holds what packing the batch itself would; the set
    /// refuses inputs that are not standardised bytes.
    #[test]
    fn batches_of_a_packed_set_equal_packing_each_batch_and_non_bytes_are_refused() {
        let (d, n_set) = (3072, 40);
        let px = pixels(d);
        let xb = bytes(d, n_set, 7);
        let x = standardised(&xb, &px);
        let set = PackedSet::new(x.view(), &px).unwrap();
        assert_eq!(set.len(), n_set);
        for (j0, n) in [(0, 10), (10, 10), (4, 36), (0, 40)] {
            let batch = set.batch(j0, n).expect("even start and length");
            let cols = x.slice(ndarray::s![.., j0..j0 + n]);
            let mut own_x = PackedB::new(d, n);
            own_x.pack_images(cols, &px);
            let mut own_xt = PackedB::new(n, d);
            own_xt.pack_pixels(cols, &px);
            for j in 0..n {
                for f in 0..d {
                    assert_eq!(batch.x.get(f, j), own_x.view().get(f, j));
                    assert_eq!(batch.xt.get(j, f), own_xt.view().get(j, f));
                    assert_eq!(batch.x.get(f, j), xb[[f, j0 + j]]);
                }
            }
        }
        assert!(set.batch(1, 10).is_none() && set.batch(0, 9).is_none());
        let mut whitened = x.clone();
        whitened[[5, 17]] += 0.1;
        let e = PackedSet::new(whitened.view(), &px)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("image 17") && e.contains("not standardised bytes"),
            "{e}"
        );
    }

    #[test]
    fn a_cpu_without_the_instructions_is_refused_by_name() {
        // SHALLOW_INT16_ISA=none is how the CLI tests see this on any machine.
        if isa().is_none() {
            let e = require().unwrap_err().to_string();
            assert!(e.contains("AVX2") && e.contains("--precision f32"), "{e}");
        } else {
            assert!(isa().unwrap().detected());
        }
    }
}
