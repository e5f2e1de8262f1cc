//! Ensembles as averaged class probabilities: a snapshot ensemble averages one
//! run's nets at the ends of its last cycles, a seed ensemble averages runs that
//! differ only in their initialisation. Probabilities are kept as K x n
//! column-major f32 buffers (one column of K per image, that is an n x K
//! row-major matrix, as `val_probs.npy` stores them).

use ndarray::{s, ArrayView2};
use serde::{Deserialize, Serialize};

use super::net::{Eval, Net, Workspace};
use crate::linalg::Real;

/// Accuracy and loss of averaged probabilities on one data set.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnsembleEval {
    /// Members averaged.
    pub members: usize,
    /// On the validation set (cost = loss: an ensemble has no single L2 term).
    pub val: Eval,
    /// On the test set.
    pub test: Eval,
}

/// Adds configuration `c`'s class probabilities on every image of `x` (d x N)
/// to `sum` (K x N column-major, `sum[j * K + k]`), in chunks of the workspace's
/// capacity. `c` runs in evaluation mode (no dropout, batch norm on running
/// averages). Allocates nothing.
pub fn add_probs<T: Real>(
    net: &Net<T>,
    x: ArrayView2<'_, T>,
    ws: &mut Workspace<T>,
    configs: &[usize],
    sums: &mut [&mut [f32]],
    labels_scratch: &mut [u8],
) {
    let k = net.widths[net.layers()];
    let total = x.ncols();
    let mut stats = [super::net::LossStat::default(); super::net::MAX_GROUP];
    let mut j0 = 0;
    while j0 < total {
        let m = ws.cap.min(total - j0);
        let chunk = x.slice(s![.., j0..j0 + m]);
        labels_scratch[..m].iter_mut().for_each(|l| *l = 0);
        net.forward_loss(chunk, &labels_scratch[..m], ws, &mut stats[..net.configs]);
        let out = ws.output(m);
        for (&c, sum) in configs.iter().zip(sums.iter_mut()) {
            let block = out.slice(s![c * k..(c + 1) * k, ..]);
            for j in 0..m {
                let dst = &mut sum[(j0 + j) * k..(j0 + j + 1) * k];
                for (d, v) in dst.iter_mut().zip(block.column(j)) {
                    *d += v.f64() as f32;
                }
            }
        }
        j0 += m;
    }
}

/// Accuracy and mean loss (-log of the averaged probability of the true class;
/// binary cross-entropy nets' sigmoids are renormalised to sum to 1) of the
/// probability sum `sum` (K x n column-major) of `members` nets.
pub fn eval_probs(sum: &[f32], classes: usize, labels: &[u8]) -> Eval {
    let n = labels.len();
    assert_eq!(sum.len(), n * classes);
    let mut correct = 0usize;
    let mut loss = 0.0f64;
    for (j, &y) in labels.iter().enumerate() {
        let col = &sum[j * classes..(j + 1) * classes];
        let mut arg = 0;
        for (i, &v) in col.iter().enumerate() {
            if v > col[arg] {
                arg = i;
            }
        }
        if arg == y as usize {
            correct += 1;
        }
        let total: f64 = col.iter().map(|&v| v as f64).sum();
        loss -= (col[y as usize] as f64 / total).max(1e-30).ln();
    }
    let n = n.max(1) as f64;
    Eval {
        cost: loss / n,
        loss: loss / n,
        acc: correct as f64 / n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Averaging decides by the summed probabilities, not by majority.
    #[test]
    fn averaged_probabilities_decide() {
        // Two images, three classes; member sums as columns.
        let sum = [0.9f32, 0.6, 0.5, 0.2, 1.0, 0.8];
        let e = eval_probs(&sum, 3, &[0, 2]);
        assert_eq!(e.acc, 0.5);
        let want = -((0.9f64 / 2.0).ln() + (0.8f64 / 2.0).ln()) / 2.0;
        assert!((e.loss - want).abs() < 1e-6);
    }
}
