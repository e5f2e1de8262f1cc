//! Dense-layer pieces as plain functions in the style of llm.c: the GEMMs
//! themselves are calls to [`crate::linalg::blas::gemm`]; these are the element-wise passes that
//! go with them (scale + bias + activation, ReLU mask, bias gradient). Every
//! block is a column-major view (unit stride down a column), w x n: one row per
//! unit, one column per sample.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

use crate::linalg::Real;

/// Column `j` of a column-major view as a slice (a column of such a view is
/// contiguous); panics on any other layout.
fn column<'a, T>(m: &'a ArrayView2<'_, T>, j: usize) -> &'a [T] {
    m.column(j).to_slice().expect("column-major view")
}

/// Column `j` of a mutable column-major view as a slice.
fn column_mut<'a, T>(m: &'a mut ArrayViewMut2<'_, T>, j: usize) -> &'a mut [T] {
    m.column_mut(j).into_slice().expect("column-major view")
}

/// Forward epilogue of a dense layer on one configuration's block of scores
/// (w_out x n): `out <- scale * out + bias` per row, then ReLU when `relu`.
/// `scale` carries the configuration's weight-decay factor (see `Net`),
/// so the decay needs no pass over the weights.
pub fn bias_activation<T: Real>(
    mut out: ArrayViewMut2<'_, T>,
    scale: T,
    bias: ArrayView1<'_, T>,
    relu: bool,
) {
    let bias = bias.as_slice().expect("contiguous bias");
    debug_assert_eq!(bias.len(), out.nrows());
    for j in 0..out.ncols() {
        let col = column_mut(&mut out, j);
        if relu {
            for (v, &b) in col.iter_mut().zip(bias) {
                *v = (*v * scale + b).max(T::zero());
            }
        } else {
            for (v, &b) in col.iter_mut().zip(bias) {
                *v = *v * scale + b;
            }
        }
    }
}

/// Backward of ReLU: `d_hidden <- d_hidden * (hidden > 0)`, both w x n blocks
/// where `hidden` is the post-activation output of the forward pass.
pub fn relu_backward<T: Real>(mut d_hidden: ArrayViewMut2<'_, T>, hidden: ArrayView2<'_, T>) {
    assert_eq!(d_hidden.dim(), hidden.dim());
    for j in 0..d_hidden.ncols() {
        let d = column_mut(&mut d_hidden, j);
        let h = column(&hidden, j);
        for (dv, &hv) in d.iter_mut().zip(h) {
            if hv <= T::zero() {
                *dv = T::zero();
            }
        }
    }
}

/// Bias step: `bias <- beta * bias + alpha * rowsum(g)` for a w x n gradient block
/// `g`; with beta 0 and alpha 1/n this is the bias gradient, with beta 1 and alpha
/// -eta/n it is the SGD update.
pub fn bias_step<T: Real>(mut bias: ArrayViewMut1<'_, T>, alpha: T, g: ArrayView2<'_, T>, beta: T) {
    let bias = bias.as_slice_mut().expect("contiguous bias");
    assert_eq!(bias.len(), g.nrows());
    for b in bias.iter_mut() {
        *b *= beta;
    }
    for j in 0..g.ncols() {
        for (b, &v) in bias.iter_mut().zip(column(&g, j)) {
            *b += alpha * v;
        }
    }
}

/// Scales a w x n block in place.
pub fn scale_block<T: Real>(mut m: ArrayViewMut2<'_, T>, factor: T) {
    for j in 0..m.ncols() {
        for v in column_mut(&mut m, j) {
            *v *= factor;
        }
    }
}
