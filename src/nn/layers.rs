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

/// Backward of ReLU and inverted dropout together:
/// `d_hidden <- d_hidden * keep_scale` where `hidden > 0`, else 0. `hidden` is
/// the forward output after dropout, so a dropped unit (0) gets no gradient and
/// a kept one the same 1 / (1 - p) factor as in the forward pass. With
/// `keep_scale` 1 (no dropout) this is plain ReLU backward, bit for bit.
pub fn relu_dropout_backward<T: Real>(
    mut d_hidden: ArrayViewMut2<'_, T>,
    hidden: ArrayView2<'_, T>,
    keep_scale: T,
) {
    if keep_scale == T::one() {
        relu_backward(d_hidden, hidden);
        return;
    }
    assert_eq!(d_hidden.dim(), hidden.dim());
    for j in 0..d_hidden.ncols() {
        let d = column_mut(&mut d_hidden, j);
        let h = column(&hidden, j);
        for (dv, &hv) in d.iter_mut().zip(h) {
            *dv = if hv <= T::zero() {
                T::zero()
            } else {
                *dv * keep_scale
            };
        }
    }
}

/// Dropout threshold and keep scale of a drop probability: a unit is dropped when
/// its 16-bit draw is below the threshold, so the drop probability is exactly
/// `threshold / 65536`, and kept units are scaled by `65536 / (65536 - threshold)`
/// (inverted dropout: the expected output is unchanged, and evaluation needs no
/// rescaling).
pub fn dropout_threshold(drop: f64) -> (u32, f64) {
    let t = (drop.clamp(0.0, 1.0) * 65536.0).round().min(65535.0) as u32;
    (t, 65536.0 / (65536.0 - t as f64))
}

/// Inverted dropout on a post-ReLU block (w x n, column-major), in place: each
/// entry is zeroed with probability `drop` (see [`dropout_threshold`]) and
/// otherwise scaled by the keep scale. The draws are a hash of `seed`, the column
/// and the row: no generator state, nothing allocated, the same mask for the same
/// seed (a gradient check holds the mask fixed by fixing the seed).
pub fn dropout<T: Real>(mut out: ArrayViewMut2<'_, T>, drop: f64, seed: u64) {
    let (threshold, keep) = dropout_threshold(drop);
    if threshold == 0 {
        return;
    }
    let keep = T::of(keep);
    for j in 0..out.ncols() {
        let base = crate::util::mix64(seed ^ (j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let col = column_mut(&mut out, j);
        for (k, quad) in col.chunks_mut(4).enumerate() {
            let bits = crate::util::mix64(base.wrapping_add(k as u64));
            for (i, v) in quad.iter_mut().enumerate() {
                let draw = ((bits >> (16 * i)) & 0xFFFF) as u32;
                *v = if draw < threshold {
                    T::zero()
                } else {
                    *v * keep
                };
            }
        }
    }
}

/// Variance floor of batch normalisation: zhat = (z - mean) / sqrt(var + eps).
pub const BN_EPS: f64 = 1e-5;

/// Weight of the old value in batch normalisation's running averages
/// (running <- a running + (1 - a) batch), as in Assignment 3.
pub const BN_MOMENTUM: f64 = 0.9;

/// Batch normalisation in training, on one configuration's block of scores
/// (w x n, column-major) straight from the GEMM:
/// z = scale * out + bias; per unit (row) the batch mean and (biased) variance;
/// zhat = (z - mean) / sqrt(var + eps), kept in `zhat` for the backward pass;
/// out = ReLU(gamma * zhat + beta). `mean`, `var` and `inv_std` (w each) receive
/// the batch statistics. Allocates nothing.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_train<T: Real>(
    mut out: ArrayViewMut2<'_, T>,
    scale: T,
    bias: ArrayView1<'_, T>,
    gamma: ArrayView1<'_, T>,
    beta: ArrayView1<'_, T>,
    mut zhat: ArrayViewMut2<'_, T>,
    mean: &mut [T],
    var: &mut [T],
    inv_std: &mut [T],
) {
    let n = out.ncols();
    let inv_n = T::of(1.0 / n as f64);
    let bias = bias.as_slice().expect("contiguous bias");
    let (gamma, beta) = (
        gamma.as_slice().expect("contiguous gamma"),
        beta.as_slice().expect("contiguous beta"),
    );
    mean.iter_mut().for_each(|m| *m = T::zero());
    var.iter_mut().for_each(|v| *v = T::zero());
    for j in 0..n {
        let col = column_mut(&mut out, j);
        for ((v, &b), m) in col.iter_mut().zip(bias).zip(mean.iter_mut()) {
            *v = *v * scale + b;
            *m += *v;
        }
    }
    mean.iter_mut().for_each(|m| *m *= inv_n);
    for j in 0..n {
        let o = out.column(j);
        let col = o.to_slice().expect("column-major view");
        for ((&v, &m), s) in col.iter().zip(mean.iter()).zip(var.iter_mut()) {
            let d = v - m;
            *s += d * d;
        }
    }
    let eps = T::of(BN_EPS);
    for (s, inv) in var.iter_mut().zip(inv_std.iter_mut()) {
        *s *= inv_n;
        *inv = T::one() / (*s + eps).sqrt();
    }
    for j in 0..n {
        let zc = column_mut(&mut zhat, j);
        let col = column_mut(&mut out, j);
        for i in 0..col.len() {
            let z = (col[i] - mean[i]) * inv_std[i];
            zc[i] = z;
            col[i] = (gamma[i] * z + beta[i]).max(T::zero());
        }
    }
}

/// Batch normalisation in evaluation, on one configuration's block of scores
/// (w x n): out = ReLU(gamma * (scale * out + bias - mean) / sqrt(var + eps) + beta)
/// with the running averages `mean` and `var` (w each).
pub fn batch_norm_eval<T: Real>(
    mut out: ArrayViewMut2<'_, T>,
    scale: T,
    bias: ArrayView1<'_, T>,
    gamma: ArrayView1<'_, T>,
    beta: ArrayView1<'_, T>,
    mean: ArrayView1<'_, T>,
    var: ArrayView1<'_, T>,
) {
    let eps = T::of(BN_EPS);
    let bias = bias.as_slice().expect("contiguous bias");
    let (gamma, beta) = (
        gamma.as_slice().expect("contiguous gamma"),
        beta.as_slice().expect("contiguous beta"),
    );
    let (mean, var) = (
        mean.as_slice().expect("contiguous mean"),
        var.as_slice().expect("contiguous var"),
    );
    for j in 0..out.ncols() {
        let col = column_mut(&mut out, j);
        for i in 0..col.len() {
            let z = (col[i] * scale + bias[i] - mean[i]) / (var[i] + eps).sqrt();
            col[i] = (gamma[i] * z + beta[i]).max(T::zero());
        }
    }
}

/// Backward of batch normalisation, in place on `g` (w x n): on entry the
/// gradient with respect to gamma * zhat + beta (after the ReLU and dropout
/// backward), on exit the gradient with respect to the normalised scores z:
/// g <- gamma inv_std (g - mean_j g - zhat mean_j(g zhat)). `d_gamma` and `d_beta`
/// (w each) receive sum_j g zhat and sum_j g, the per-sample sums (the caller's
/// 1/n makes them the mean loss's gradients). Allocates nothing.
pub fn batch_norm_backward<T: Real>(
    mut g: ArrayViewMut2<'_, T>,
    zhat: ArrayView2<'_, T>,
    gamma: ArrayView1<'_, T>,
    inv_std: &[T],
    d_gamma: &mut [T],
    d_beta: &mut [T],
) {
    let n = g.ncols();
    let inv_n = T::of(1.0 / n as f64);
    let gamma = gamma.as_slice().expect("contiguous gamma");
    d_gamma.iter_mut().for_each(|v| *v = T::zero());
    d_beta.iter_mut().for_each(|v| *v = T::zero());
    for j in 0..n {
        let gc = g.column(j);
        let gc = gc.to_slice().expect("column-major view");
        let zc = column(&zhat, j);
        for i in 0..gc.len() {
            d_gamma[i] += gc[i] * zc[i];
            d_beta[i] += gc[i];
        }
    }
    for j in 0..n {
        let zc = column(&zhat, j);
        let gc = column_mut(&mut g, j);
        for i in 0..gc.len() {
            gc[i] =
                gamma[i] * inv_std[i] * (gc[i] - d_beta[i] * inv_n - zc[i] * d_gamma[i] * inv_n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, ShapeBuilder};

    /// Dropout drops about p of the units, scales the rest by exactly the keep
    /// scale, and draws the same mask for the same seed.
    #[test]
    fn dropout_drops_p_and_rescales() {
        let ones = Array2::<f32>::ones((64, 500).f());
        for p in [0.1, 0.5] {
            let mut a = ones.clone();
            dropout(a.view_mut(), p, 7);
            let (_, keep) = dropout_threshold(p);
            let dropped = a.iter().filter(|&&v| v == 0.0).count() as f64 / a.len() as f64;
            assert!((dropped - p).abs() < 0.01, "p {p}: dropped {dropped}");
            assert!(a.iter().all(|&v| v == 0.0 || v == keep as f32));
            let mut b = ones.clone();
            dropout(b.view_mut(), p, 7);
            assert_eq!(a, b);
            let mut c = ones.clone();
            dropout(c.view_mut(), p, 8);
            assert_ne!(a, c);
        }
        let mut none = ones.clone();
        dropout(none.view_mut(), 0.0, 7);
        assert_eq!(none, ones);
    }

    /// In training, batch norm makes each unit's scores mean 0 and variance 1
    /// over the batch before gamma and beta.
    #[test]
    fn batch_norm_normalises_each_unit() {
        let w = 3;
        let n = 8;
        let mut out = Array2::<f64>::from_shape_fn((w, n).f(), |(i, j)| (i * 10 + j * j) as f64);
        let mut zhat = Array2::<f64>::zeros((w, n).f());
        let (mut mean, mut var, mut inv) = (vec![0.0; w], vec![0.0; w], vec![0.0; w]);
        let bias = ndarray::Array1::from_elem(w, 0.5);
        let gamma = ndarray::Array1::from_elem(w, 2.0);
        let beta = ndarray::Array1::from_elem(w, -0.25);
        batch_norm_train(
            out.view_mut(),
            1.5,
            bias.view(),
            gamma.view(),
            beta.view(),
            zhat.view_mut(),
            &mut mean,
            &mut var,
            &mut inv,
        );
        for i in 0..w {
            let row = zhat.row(i);
            let m = row.sum() / n as f64;
            let v = row.mapv(|z| (z - m) * (z - m)).sum() / n as f64;
            assert!(
                m.abs() < 1e-12 && (v - 1.0).abs() < 1e-5,
                "unit {i}: {m} {v}"
            );
            for j in 0..n {
                let want = (2.0 * zhat[[i, j]] - 0.25).max(0.0);
                assert_eq!(out[[i, j]], want);
            }
        }
    }
}
