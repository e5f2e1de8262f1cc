//! Dense-layer pieces as plain functions in the style of llm.c: the GEMMs
//! themselves are calls to [`gemm`]; these are the element-wise passes that go
//! with them (scale + bias + activation, ReLU mask, bias gradient).

use super::{MatMut, MatRef, Real};

/// Forward epilogue of a dense layer on one configuration's block of scores
/// (w_out x n): `out <- scale * out + bias` per row, then ReLU when `relu`.
/// `scale` carries the configuration's weight-decay factor (see [`super::Net`]),
/// so the decay needs no pass over the weights.
pub fn bias_activation<T: Real>(out: MatMut<'_, T>, scale: T, bias: &[T], relu: bool) {
    let rows = out.rows;
    debug_assert_eq!(bias.len(), rows);
    let ld = out.ld;
    for j in 0..out.cols {
        let col = &mut out.data[j * ld..j * ld + rows];
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
pub fn relu_backward<T: Real>(d_hidden: MatMut<'_, T>, hidden: MatRef<'_, T>) {
    let rows = d_hidden.rows;
    for j in 0..d_hidden.cols {
        let d = &mut d_hidden.data[j * d_hidden.ld..j * d_hidden.ld + rows];
        let h = &hidden.data[j * hidden.ld..j * hidden.ld + rows];
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
pub fn bias_step<T: Real>(bias: &mut [T], alpha: T, g: MatRef<'_, T>, beta: T) {
    let rows = g.rows;
    for b in bias.iter_mut() {
        *b *= beta;
    }
    for j in 0..g.cols {
        let col = &g.data[j * g.ld..j * g.ld + rows];
        for (b, &v) in bias.iter_mut().zip(col) {
            *b += alpha * v;
        }
    }
}

/// Scales a w x n block in place.
pub fn scale_block<T: Real>(mut m: MatMut<'_, T>, factor: T) {
    m.for_each(|_, _, v| *v *= factor);
}
