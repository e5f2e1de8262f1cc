//! Layer 0's two big products, W X (forward) and G X^T (the weight step),
//! behind one trait: a network picks its kernel when it is built, and
//! another kernel is one new type. [`Blas`] runs them through BLAS in the
//! network's own precision; [`Bf16`] in bf16 with f32 sums on AVX512-BF16;
//! [`Int16`] as 16-bit integer products of the exact pixels.

use std::any::Any;
use std::fmt::Debug;

use anyhow::{anyhow, Result};
use ndarray::{ArrayView2, ArrayViewMut2};

use crate::linalg::bf16::{self, PackedA, PackedB};
use crate::linalg::blas::gemm_blocks;
use crate::linalg::int16::{self, Pixels};
use crate::linalg::Real;

/// A training batch as the network's passes read it: the images x (d x n,
/// column-major) and, for a bf16 or int16 net, optionally the same images
/// already in the kernel's form (a batch of a set converted once per
/// process), which spares packing X and X^T every step. Either way the step
/// computes the same bits. A plain view converts into one.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a, T> {
    /// The images, d x n.
    pub x: ArrayView2<'a, T>,
    /// The same images packed for a kernel (ignored by the others).
    pub packed: Option<Packed<'a>>,
}

/// A batch's images as a kernel reads them: X (d x n) and X^T (n x d).
#[derive(Clone, Copy, Debug)]
pub enum Packed<'a> {
    /// In bf16 ([`bf16::PackedSet`]).
    Bf16(bf16::PackedBatch<'a>),
    /// As centred bytes ([`int16::PackedSet`]).
    Int16(int16::PackedBatch<'a>),
}

impl Packed<'_> {
    /// (rows, columns) of X and of X^T.
    pub fn dims(&self) -> ((usize, usize), (usize, usize)) {
        match self {
            Packed::Bf16(p) => ((p.x.rows(), p.x.cols()), (p.xt.rows(), p.xt.cols())),
            Packed::Int16(p) => ((p.x.rows(), p.x.cols()), (p.xt.rows(), p.xt.cols())),
        }
    }
}

/// A training set converted once per process for a kernel: its batches of
/// consecutive images are [`Packed`] without a copy.
#[derive(Clone, Copy, Debug)]
pub enum PackedImages<'a> {
    /// In bf16.
    Bf16(&'a bf16::PackedSet),
    /// As centred bytes.
    Int16(&'a int16::PackedSet),
}

impl<'a> PackedImages<'a> {
    /// Images j0..j0 + n; `None` where the kernel must pack them itself
    /// (an odd start or length).
    pub fn batch(&self, j0: usize, n: usize) -> Option<Packed<'a>> {
        match self {
            PackedImages::Bf16(s) => s.batch(j0, n).map(Packed::Bf16),
            PackedImages::Int16(s) => s.batch(j0, n).map(Packed::Int16),
        }
    }
}

impl<'a, T> From<ArrayView2<'a, T>> for Input<'a, T> {
    fn from(x: ArrayView2<'a, T>) -> Self {
        Input { x, packed: None }
    }
}

/// A workspace's buffers for its kernel, allocated with the workspace.
#[derive(Clone, Debug, Default)]
pub struct Scratch {
    /// The bf16 kernel's packed operands: the batch X (d x cap), the output
    /// gradient G ((C*w1) x cap) and X^T (cap x d), packed each step.
    bf16: Option<Bf16Scratch>,
    /// The int16 kernel's: the batch X (d x cap) and X^T (cap x d) as centred
    /// bytes, and the output gradient G ((C*w1) x cap) quantised.
    int16: Option<Int16Scratch>,
}

#[derive(Clone, Debug)]
struct Int16Scratch {
    cap: usize,
    x: int16::PackedB,
    xt: int16::PackedB,
    g: int16::PackedA,
}

impl Int16Scratch {
    fn new(d: usize, rows: usize, cap: usize) -> Self {
        Int16Scratch {
            cap,
            x: int16::PackedB::new(d, cap),
            xt: int16::PackedB::new(cap, d),
            g: int16::PackedA::new(rows, cap),
        }
    }
}

#[derive(Clone, Debug)]
struct Bf16Scratch {
    /// Most samples a batch may have.
    cap: usize,
    x: PackedB,
    g: PackedA,
    xt: PackedB,
}

impl Bf16Scratch {
    /// Buffers for batches of up to `cap` samples of `d` features, `rows` = C*w1.
    fn new(d: usize, rows: usize, cap: usize) -> Self {
        Bf16Scratch {
            cap,
            x: PackedB::new(d, cap),
            g: PackedA::new(rows, cap),
            xt: PackedB::new(cap, d),
        }
    }
}

/// Layer 0's products for a stacked network of element type `T`, whose stored
/// first-layer weights W are (C*w1) x d.
pub trait Layer0<T>: Send + Sync + Debug {
    /// The kernel's name, as `config.json` records it.
    fn name(&self) -> &'static str;

    /// Buffers for batches of up to `cap` samples of `d` features, `rows` = C*w1.
    fn scratch(&self, d: usize, rows: usize, cap: usize) -> Scratch;

    /// out ((C*w1) x n) <- W X, with `w` the stored weights and `x` the batch.
    fn forward(
        &self,
        w: ArrayView2<'_, T>,
        x: Input<'_, T>,
        scratch: &mut Scratch,
        out: ArrayViewMut2<'_, T>,
    );

    /// c ((C*w1) x d) <- alpha G X^T + beta c, with G ((C*w1) x n) final.
    /// `stores_weights`: c is the stored weights W, which the kernel then
    /// keeps its own copy of in step.
    #[allow(clippy::too_many_arguments)]
    fn weight_product(
        &mut self,
        alpha: T,
        g: ArrayView2<'_, T>,
        x: Input<'_, T>,
        beta: T,
        c: ArrayViewMut2<'_, T>,
        scratch: &mut Scratch,
        stores_weights: bool,
    );

    /// The stored weights changed outside [`Self::weight_product`] (a scale
    /// folded, a configuration reset, a momentum step).
    fn weights_changed(&mut self, w: ArrayView2<'_, T>);

    /// A boxed copy (a network is cloned with its kernel).
    fn clone_box(&self) -> Box<dyn Layer0<T>>;
}

impl<T> Clone for Box<dyn Layer0<T>> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// Both products through BLAS in `T`, C's columns in fixed blocks
/// ([`gemm_blocks`]): the same bits on any pool.
#[derive(Clone, Copy, Debug, Default)]
pub struct Blas;

impl<T: Real> Layer0<T> for Blas {
    fn name(&self) -> &'static str {
        "blas"
    }

    fn scratch(&self, _d: usize, _rows: usize, _cap: usize) -> Scratch {
        Scratch::default()
    }

    fn forward(
        &self,
        w: ArrayView2<'_, T>,
        x: Input<'_, T>,
        _scratch: &mut Scratch,
        out: ArrayViewMut2<'_, T>,
    ) {
        gemm_blocks(T::one(), w, x.x, T::zero(), out);
    }

    fn weight_product(
        &mut self,
        alpha: T,
        g: ArrayView2<'_, T>,
        x: Input<'_, T>,
        beta: T,
        c: ArrayViewMut2<'_, T>,
        _scratch: &mut Scratch,
        _stores_weights: bool,
    ) {
        gemm_blocks(alpha, g, x.x.t(), beta, c);
    }

    fn weights_changed(&mut self, _w: ArrayView2<'_, T>) {}

    fn clone_box(&self) -> Box<dyn Layer0<T>> {
        Box::new(*self)
    }
}

/// Mixed precision (`--precision bf16`): both products take bf16 operands
/// with f32 sums in the AVX512-BF16 kernel; weights and updates stay f32.
/// `packed` is W in bf16, re-packed whenever W changes (by the weight
/// product itself when it stores W).
#[derive(Clone, Debug)]
pub struct Bf16 {
    packed: PackedA,
}

/// The bf16 kernel for a network of `T` whose stored first-layer weights are
/// `w`: refused, with the reason, on a CPU without AVX512-BF16 and for any
/// network but an f32 one.
pub fn bf16_kernel<T: Real>(w: ArrayView2<'_, T>) -> Result<Box<dyn Layer0<T>>> {
    bf16::require()?;
    let only_f32 = || anyhow!("--precision bf16 trains f32 networks only");
    let w = T::f32_view(w).ok_or_else(only_f32)?;
    of_type(Box::new(Bf16 {
        packed: PackedA::of(w),
    }))
    .ok_or_else(only_f32)
}

/// An f32 kernel as the kernel of a network of `T`: `Some` for T = f32 (the
/// only type the bf16 and int16 kernels serve).
fn of_type<T: Real>(kernel: Box<dyn Layer0<f32>>) -> Option<Box<dyn Layer0<T>>> {
    let kernel: Box<dyn Any> = Box::new(kernel);
    kernel.downcast::<Box<dyn Layer0<T>>>().ok().map(|k| *k)
}

impl Bf16 {
    /// The workspace's buffers for a batch of n samples of d features. A
    /// workspace made with a bf16 net has them; one made before the net
    /// turned to bf16 gets them here, once.
    fn scratch<'s>(&self, scratch: &'s mut Scratch, d: usize, n: usize) -> &'s mut Bf16Scratch {
        if scratch.bf16.as_ref().is_none_or(|s| s.cap < n) {
            scratch.bf16 = Some(Bf16Scratch::new(d, self.packed.rows(), n));
        }
        scratch.bf16.as_mut().expect("made above")
    }
}

impl Layer0<f32> for Bf16 {
    fn name(&self) -> &'static str {
        "bf16"
    }

    fn scratch(&self, d: usize, rows: usize, cap: usize) -> Scratch {
        Scratch {
            bf16: Some(Bf16Scratch::new(d, rows, cap)),
            int16: None,
        }
    }

    fn forward(
        &self,
        _w: ArrayView2<'_, f32>,
        x: Input<'_, f32>,
        scratch: &mut Scratch,
        out: ArrayViewMut2<'_, f32>,
    ) {
        let (d, n) = x.x.dim();
        let b = match x.packed {
            Some(Packed::Bf16(p)) => p.x,
            _ => {
                let s = self.scratch(scratch, d, n);
                s.x.pack(x.x);
                s.x.view()
            }
        };
        bf16::gemm_blocks(1.0, &self.packed, b, 0.0, out).expect("checked by bf16::require");
    }

    fn weight_product(
        &mut self,
        alpha: f32,
        g: ArrayView2<'_, f32>,
        x: Input<'_, f32>,
        beta: f32,
        c: ArrayViewMut2<'_, f32>,
        scratch: &mut Scratch,
        stores_weights: bool,
    ) {
        let (d, n) = x.x.dim();
        let s = self.scratch(scratch, d, n);
        s.g.pack(g);
        let xt = match x.packed {
            Some(Packed::Bf16(b)) => b.xt,
            _ => {
                s.xt.pack_transposed(x.x);
                s.xt.view()
            }
        };
        if stores_weights {
            bf16::gemm_blocks_repacking(alpha, &s.g, xt, beta, c, &mut self.packed)
        } else {
            bf16::gemm_blocks(alpha, &s.g, xt, beta, c)
        }
        .expect("checked by bf16::require");
    }

    fn weights_changed(&mut self, w: ArrayView2<'_, f32>) {
        self.packed.pack(w);
    }

    fn clone_box(&self) -> Box<dyn Layer0<f32>> {
        Box::new(self.clone())
    }
}

/// `--precision int16`: both products as 16-bit integer products of the
/// exact pixels with i32 sums ([`int16`]): W is quantised per row (with the
/// standardisation's 1/s folded in) whenever it changes, G per row every
/// step; weights, updates and everything after layer 0 stay f32.
#[derive(Clone, Debug)]
pub struct Int16 {
    isa: int16::Isa,
    pixels: std::sync::Arc<Pixels>,
    /// W diag(1/s), quantised per row, with u = Q o.
    w: int16::PackedA,
}

/// The int16 kernel for a network of `T` whose stored first-layer weights
/// are `w`, on inputs that `pixels` maps to bytes: refused, with the reason,
/// on a CPU without AVX2 and for any network but an f32 one.
pub fn int16_kernel<T: Real>(w: ArrayView2<'_, T>, pixels: Pixels) -> Result<Box<dyn Layer0<T>>> {
    let isa = int16::require()?;
    let only_f32 = || anyhow!("--precision int16 trains f32 networks only");
    let w = T::f32_view(w).ok_or_else(only_f32)?;
    anyhow::ensure!(
        pixels.dim() == w.ncols(),
        "int16: {} pixel statistics for {} inputs",
        pixels.dim(),
        w.ncols()
    );
    let mut kernel = Int16 {
        isa,
        pixels: std::sync::Arc::new(pixels),
        w: int16::PackedA::new(w.nrows(), w.ncols()),
    };
    kernel.weights_changed(w);
    of_type(Box::new(kernel)).ok_or_else(only_f32)
}

impl Int16 {
    /// The workspace's buffers for a batch of n samples of d features (made
    /// here, once, for a workspace made before the net turned to int16).
    fn scratch<'s>(&self, scratch: &'s mut Scratch, d: usize, n: usize) -> &'s mut Int16Scratch {
        if scratch.int16.as_ref().is_none_or(|s| s.cap < n) {
            scratch.int16 = Some(Int16Scratch::new(d, self.w.rows(), n));
        }
        scratch.int16.as_mut().expect("made above")
    }
}

impl Layer0<f32> for Int16 {
    fn name(&self) -> &'static str {
        "int16"
    }

    fn scratch(&self, d: usize, rows: usize, cap: usize) -> Scratch {
        Scratch {
            bf16: None,
            int16: Some(Int16Scratch::new(d, rows, cap)),
        }
    }

    fn forward(
        &self,
        _w: ArrayView2<'_, f32>,
        x: Input<'_, f32>,
        scratch: &mut Scratch,
        out: ArrayViewMut2<'_, f32>,
    ) {
        let (d, n) = x.x.dim();
        let b = match x.packed {
            Some(Packed::Int16(p)) => p.x,
            _ => {
                let s = self.scratch(scratch, d, n);
                s.x.pack_images(x.x, &self.pixels);
                s.x.view()
            }
        };
        let cols = int16::Columns::default();
        int16::gemm_blocks_with(self.isa, 1.0, &self.w, b, cols, 0.0, out);
    }

    fn weight_product(
        &mut self,
        alpha: f32,
        g: ArrayView2<'_, f32>,
        x: Input<'_, f32>,
        beta: f32,
        mut c: ArrayViewMut2<'_, f32>,
        scratch: &mut Scratch,
        stores_weights: bool,
    ) {
        let (d, n) = x.x.dim();
        let px = std::sync::Arc::clone(&self.pixels);
        let s = self.scratch(scratch, d, n);
        s.g.quantise(g, None, None);
        let xt = match x.packed {
            Some(Packed::Int16(b)) => b.xt,
            _ => {
                s.xt.pack_pixels(x.x, &px);
                s.xt.view()
            }
        };
        let cols = int16::Columns {
            offset: Some(&px.offset),
            scale: Some(&px.inv_scale),
        };
        int16::gemm_blocks_with(self.isa, alpha, &s.g, xt, cols, beta, c.view_mut());
        if stores_weights {
            self.weights_changed(c.view());
        }
    }

    fn weights_changed(&mut self, w: ArrayView2<'_, f32>) {
        let px = &self.pixels;
        self.w.quantise(w, Some(&px.inv_scale), Some(&px.offset));
    }

    fn clone_box(&self) -> Box<dyn Layer0<f32>> {
        Box::new(self.clone())
    }
}
