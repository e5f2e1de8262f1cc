//! Output losses: softmax cross-entropy and sigmoid multiple binary cross-entropy.
//! Each has a forward (scores -> probabilities in place, summed loss, correct count)
//! and a backward (probabilities -> dL/dscores in place, G = P - Y up to a factor).

use serde::{Deserialize, Serialize};

use ndarray::ArrayViewMut2;

use crate::linalg::Real;

/// Loss applied to the last layer's scores.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// Softmax + cross-entropy.
    #[default]
    Ce,
    /// Sigmoid per class + mean binary cross-entropy over the K classes.
    Bce,
}

impl Loss {
    /// `"ce"` or `"bce"`.
    pub fn name(&self) -> &'static str {
        match self {
            Loss::Ce => "ce",
            Loss::Bce => "bce",
        }
    }
}

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Turns a block of scores (K x n, one column per sample) into probabilities in
/// place and returns (summed loss over the n samples, number of correct argmax
/// predictions). Numerically stable for any finite score.
///
/// `smoothing` eps > 0 (cross-entropy only) smooths the targets to
/// (1 - eps) one-hot + eps / K: the loss is then -sum_i t_i log p_i. Evaluation
/// passes 0, the plain loss.
pub fn loss_forward<T: Real>(
    loss: Loss,
    mut scores: ArrayViewMut2<'_, T>,
    labels: &[u8],
    smoothing: f64,
) -> (f64, usize) {
    let k = scores.nrows();
    let mut total = 0.0f64;
    let mut correct = 0usize;
    for (j, &y) in labels.iter().enumerate().take(scores.ncols()) {
        let col = scores
            .column_mut(j)
            .into_slice()
            .expect("column-major scores");
        let y = y as usize;
        let mut arg = 0;
        let mut max = col[0];
        for (i, &v) in col.iter().enumerate() {
            if v > max {
                max = v;
                arg = i;
            }
        }
        if arg == y {
            correct += 1;
        }
        match loss {
            Loss::Ce => {
                let zy = col[y];
                let mut sum = T::zero();
                let mut shifted_sum = 0.0f64;
                for v in col.iter_mut() {
                    shifted_sum += (*v - max).f64();
                    *v = (*v - max).exp();
                    sum += *v;
                }
                // -log p_y = log(sum_i exp(z_i - max)) - (z_y - max)
                let lse = sum.f64().ln();
                let nll = lse - (zy - max).f64();
                total += if smoothing > 0.0 {
                    // sum_i -log p_i = K lse - sum_i (z_i - max)
                    (1.0 - smoothing) * nll + smoothing / k as f64 * (k as f64 * lse - shifted_sum)
                } else {
                    nll
                };
                let inv = T::one() / sum;
                for v in col.iter_mut() {
                    *v *= inv;
                }
            }
            Loss::Bce => {
                let mut l = 0.0;
                for (i, v) in col.iter_mut().enumerate() {
                    let z = v.f64();
                    l += if i == y { softplus(-z) } else { softplus(z) };
                    *v = T::of(1.0 / (1.0 + (-z).exp()));
                }
                total += l / k as f64;
            }
        }
        if !max.is_finite() {
            total = f64::NAN;
        }
    }
    (total, correct)
}

/// Turns probabilities (as left by [`loss_forward`]) into dL/dscores per sample in
/// place: P - Y for cross-entropy, (P - Y) / K for binary cross-entropy. The 1/n of
/// the mean over the batch is left to the caller's GEMM alpha. With label
/// `smoothing` eps (cross-entropy) the targets are (1 - eps) one-hot + eps / K.
pub fn loss_backward<T: Real>(
    loss: Loss,
    mut probs: ArrayViewMut2<'_, T>,
    labels: &[u8],
    smoothing: T,
) {
    let k = probs.nrows();
    let spread = smoothing / T::of(k as f64);
    for (j, &y) in labels.iter().enumerate().take(probs.ncols()) {
        let col = probs
            .column_mut(j)
            .into_slice()
            .expect("column-major probabilities");
        if smoothing > T::zero() {
            for v in col.iter_mut() {
                *v -= spread;
            }
            col[y as usize] -= T::one() - smoothing;
        } else {
            col[y as usize] -= T::one();
        }
        if loss == Loss::Bce {
            let inv = T::of(1.0 / k as f64);
            for v in col.iter_mut() {
                *v *= inv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ShapeBuilder;

    #[test]
    fn softmax_is_stable_for_huge_logits() {
        let mut s = vec![1000.0f32, 0.0, -1000.0, 3e38, 3e38, 0.0];
        let (l, correct) = loss_forward(
            Loss::Ce,
            ArrayViewMut2::from_shape((3, 2).f(), &mut s).unwrap(),
            &[0, 1],
            0.0,
        );
        assert!(l.is_finite(), "loss {l}");
        assert!(s.iter().all(|v| v.is_finite()));
        assert_eq!(correct, 1, "ties pick the first maximum");
        assert!((s[0] - 1.0).abs() < 1e-6 && (s[3] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn cross_entropy_matches_definition() {
        let z = [0.3f64, -1.2, 2.0];
        let mut s = z.to_vec();
        let (l, _) = loss_forward(
            Loss::Ce,
            ArrayViewMut2::from_shape((3, 1).f(), &mut s).unwrap(),
            &[1],
            0.0,
        );
        let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
        assert!((l - (lse - z[1])).abs() < 1e-12);
        let mut s2 = z.to_vec();
        let (lb, _) = loss_forward(
            Loss::Bce,
            ArrayViewMut2::from_shape((3, 1).f(), &mut s2).unwrap(),
            &[1],
            0.0,
        );
        let p: Vec<f64> = z.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
        let want = -((1.0 - p[0]).ln() + p[1].ln() + (1.0 - p[2]).ln()) / 3.0;
        assert!((lb - want).abs() < 1e-12);
    }
}
