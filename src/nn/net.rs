//! A stack of C >= 1 configurations of the same architecture, trained in lockstep.
//!
//! All configurations read the same input batch, so the first layer of every
//! configuration is one stacked matrix and its forward and weight-gradient
//! products are one GEMM each for the whole group: (C*w1 x d)(d x n) and
//! (C*w1 x n)(n x d). Later (small) layers loop over the configurations. A single
//! run is simply C = 1: there is no separate single-run path.
//!
//! Weight decay per configuration without an extra pass: the first layer keeps
//! W_c = s_c * V_c. The update W <- (1 - 2 eta lambda) W - (eta / n) G X^T becomes
//! s_c <- (1 - 2 eta_c lambda_c) s_c, G_c <- -eta_c / (n s_c) G_c (G is small),
//! V <- V + G X^T (one stacked GEMM with beta = 1); the forward pass multiplies
//! each block by s_c in the pass that adds the bias and applies ReLU.

use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::blas::gemm_blocks;
use super::layers::{bias_activation, bias_step, relu_backward, scale_block};
use super::loss::{loss_backward, loss_forward};
use super::profile::{self, Phase};
use super::{gemm, Arch, MatMut, MatRef, Real};

/// When |s_c| falls below this, s_c is folded back into V_c.
const FOLD_BELOW: f64 = 1e-3;

/// Parameters of C stacked configurations.
///
/// Layouts (all column-major):
/// - `weights[0]`: V, (C*w1) x d with leading dimension C*w1; rows c*w1..(c+1)*w1
///   are configuration c's first-layer weights divided by `scale[c]`.
/// - `weights[l]`, l >= 1: C dense blocks, block c at offset c*w_{l+1}*w_l, each
///   w_{l+1} x w_l.
/// - `biases[l]`: C blocks of w_{l+1}.
#[derive(Clone, Debug)]
pub struct Net<T> {
    /// Architecture shared by all configurations.
    pub arch: Arch,
    /// Number of stacked configurations C.
    pub configs: usize,
    /// Layer widths `[d, h1, ..., K]`.
    pub widths: Vec<usize>,
    /// Weights, see the type's documentation for the layout.
    pub weights: Vec<Vec<T>>,
    /// Biases, C blocks of w_{l+1} per layer.
    pub biases: Vec<Vec<T>>,
    /// First-layer scale s_c per configuration: W0_c = s_c V_c.
    pub scale: Vec<T>,
}

/// Per-batch buffers, allocated once for batches of up to `cap` samples.
///
/// `acts[l]` holds layer l's output for all configurations, (C*w_{l+1}) x cap with
/// leading dimension C*w_{l+1}: post-ReLU activations for hidden layers, and for the
/// last layer the probabilities, then (in the backward pass) dL/dscores.
/// `grads[l]` (l < L-1) holds dL/d(output of layer l), same layout.
#[derive(Clone, Debug)]
pub struct Workspace<T> {
    /// Largest batch the buffers hold.
    pub cap: usize,
    acts: Vec<Vec<T>>,
    grads: Vec<Vec<T>>,
}

/// Loss sum and correct count of one configuration over some samples.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossStat {
    /// Sum of per-sample losses.
    pub loss_sum: f64,
    /// Correct argmax predictions.
    pub correct: usize,
    /// Samples seen.
    pub n: usize,
}

/// Cost, loss and accuracy of one configuration on a data set.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Eval {
    /// Mean loss + lambda * sum of squared weights.
    pub cost: f64,
    /// Mean loss.
    pub loss: f64,
    /// Share of correct argmax predictions, 0..1.
    pub acc: f64,
}

/// What the backward pass does with the gradients.
enum Backward<'a, T> {
    /// SGD update in place, fused into the GEMMs (per-configuration eta and lambda).
    Update { etas: &'a [T], lambdas: &'a [T] },
    /// Write plain gradients dL/dW + 2 lambda W and dL/db into `grads` (same layout
    /// as the network, with every scale folded).
    Gradients {
        lambdas: &'a [T],
        grads: &'a mut Net<T>,
    },
}

impl<T: Real> Net<T> {
    /// All-zero parameters for `configs` configurations.
    pub fn zeros(arch: &Arch, configs: usize) -> Self {
        let widths = arch.widths();
        let weights = (0..arch.layers())
            .map(|l| vec![T::zero(); configs * widths[l] * widths[l + 1]])
            .collect();
        let biases = (0..arch.layers())
            .map(|l| vec![T::zero(); configs * widths[l + 1]])
            .collect();
        Net {
            arch: arch.clone(),
            configs,
            widths,
            weights,
            biases,
            scale: vec![T::one(); configs],
        }
    }

    /// Random initialisation, one seed per configuration: weights from N(0, 0.01^2)
    /// for the linear classifier (Assignment 1), N(0, 1/fan_in) for hidden networks
    /// (Assignment 2), biases zero. Each configuration draws its weights layer by
    /// layer in row-major order from its own generator, so a configuration gets the
    /// same weights alone or in any group.
    pub fn init(arch: &Arch, seeds: &[u64]) -> Self {
        let mut net = Self::zeros(arch, seeds.len());
        for (c, &seed) in seeds.iter().enumerate() {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            for l in 0..arch.layers() {
                let (w_in, w_out) = (net.widths[l], net.widths[l + 1]);
                let std = if arch.hidden.is_empty() {
                    0.01
                } else {
                    1.0 / (w_in as f64).sqrt()
                };
                let normal = Normal::new(0.0, std).expect("finite std");
                for i in 0..w_out {
                    for j in 0..w_in {
                        let v = T::of(normal.sample(&mut rng));
                        let idx = net.weight_index(l, c, i, j);
                        net.weights[l][idx] = v;
                    }
                }
            }
        }
        net
    }

    /// Number of layers L.
    pub fn layers(&self) -> usize {
        self.widths.len() - 1
    }

    /// Index in `weights[l]` of configuration c's element (i, j) of W_l (w_{l+1} x w_l).
    pub fn weight_index(&self, l: usize, c: usize, i: usize, j: usize) -> usize {
        let (w_in, w_out) = (self.widths[l], self.widths[l + 1]);
        if l == 0 {
            c * w_out + i + j * self.configs * w_out
        } else {
            c * w_out * w_in + i + j * w_out
        }
    }

    /// Configuration c's W_l as a view (w_{l+1} x w_l). For l = 0 it is V_c: multiply by `scale[c]`.
    pub fn weight(&self, l: usize, c: usize) -> MatRef<'_, T> {
        let (w_in, w_out) = (self.widths[l], self.widths[l + 1]);
        if l == 0 {
            MatRef::with_ld(
                &self.weights[0][c * w_out..],
                w_out,
                w_in,
                self.configs * w_out,
            )
        } else {
            let off = c * w_out * w_in;
            MatRef::new(&self.weights[l][off..off + w_out * w_in], w_out, w_in)
        }
    }

    /// Configuration c's bias of layer l (w_{l+1}).
    pub fn bias(&self, l: usize, c: usize) -> &[T] {
        let w = self.widths[l + 1];
        &self.biases[l][c * w..(c + 1) * w]
    }

    /// Effective weights W_l of configuration c, row-major (w_{l+1} rows of w_l), in f64.
    pub fn weight_rows(&self, l: usize, c: usize) -> Vec<f64> {
        let m = self.weight(l, c);
        let s = if l == 0 { self.scale[c].f64() } else { 1.0 };
        let mut out = Vec::with_capacity(m.rows * m.cols);
        for i in 0..m.rows {
            for j in 0..m.cols {
                out.push(m.at(i, j).f64() * s);
            }
        }
        out
    }

    /// Buffers for batches of up to `cap` samples.
    pub fn workspace(&self, cap: usize) -> Workspace<T> {
        let l = self.layers();
        let c = self.configs;
        let acts = (0..l)
            .map(|i| vec![T::zero(); c * self.widths[i + 1] * cap])
            .collect();
        let grads = (0..l - 1)
            .map(|i| vec![T::zero(); c * self.widths[i + 1] * cap])
            .collect();
        Workspace { cap, acts, grads }
    }

    /// Folds configuration c's first-layer scale s_c into V_c (s_c becomes 1).
    pub fn fold_scale(&mut self, c: usize) {
        let s = self.scale[c];
        if s == T::one() {
            return;
        }
        let (d, w1, ld) = (
            self.widths[0],
            self.widths[1],
            self.configs * self.widths[1],
        );
        let block = MatMut::with_ld(&mut self.weights[0][c * w1..], w1, d, ld);
        scale_block(block, s);
        self.scale[c] = T::one();
    }

    /// Folds every configuration's scale (before saving or comparing weights).
    pub fn fold_scales(&mut self) {
        for c in 0..self.configs {
            self.fold_scale(c);
        }
    }

    /// Sets configuration c's parameters to zero (a diverged configuration: its
    /// rows then stay finite and cost nothing to carry along).
    pub fn reset_config(&mut self, c: usize) {
        self.scale[c] = T::one();
        for l in 0..self.layers() {
            let (w_in, w_out) = (self.widths[l], self.widths[l + 1]);
            for i in 0..w_out {
                for j in 0..w_in {
                    let idx = self.weight_index(l, c, i, j);
                    self.weights[l][idx] = T::zero();
                }
            }
            self.biases[l][c * w_out..(c + 1) * w_out].fill(T::zero());
        }
    }

    /// Sum of squared effective weights (all layers, no biases) per configuration,
    /// the L2 penalty before lambda.
    pub fn weight_sq_sum(&self, c: usize) -> f64 {
        (0..self.layers())
            .map(|l| {
                let m = self.weight(l, c);
                let s = if l == 0 { self.scale[c].f64() } else { 1.0 };
                let mut acc = 0.0;
                for j in 0..m.cols {
                    for i in 0..m.rows {
                        let v = m.at(i, j).f64();
                        acc += v * v;
                    }
                }
                acc * s * s
            })
            .sum()
    }

    /// Forward pass over the n = x.cols samples of `x` (d x n, column-major), then
    /// the loss: `stats[c]` receives configuration c's loss sum and correct count.
    /// Leaves the probabilities in the workspace for [`Self::backward_update`].
    pub fn forward_loss(
        &self,
        x: MatRef<'_, T>,
        labels: &[u8],
        ws: &mut Workspace<T>,
        stats: &mut [LossStat],
    ) {
        let n = x.cols;
        assert!(n <= ws.cap && labels.len() == n && x.rows == self.widths[0]);
        let layers = self.layers();
        let cfgs = self.configs;
        let mut timer = profile::start();
        // Layer 0: one stacked GEMM for every configuration.
        let w1 = self.widths[1];
        {
            let v = MatRef::with_ld(&self.weights[0], cfgs * w1, self.widths[0], cfgs * w1);
            let out = MatMut::with_ld(&mut ws.acts[0], cfgs * w1, n, cfgs * w1);
            gemm_blocks(T::one(), v, false, x, false, T::zero(), out);
            profile::lap(&mut timer, Phase::ForwardGemm);
            for c in 0..cfgs {
                let block = MatMut::with_ld(&mut ws.acts[0][c * w1..], w1, n, cfgs * w1);
                bias_activation(block, self.scale[c], self.bias(0, c), layers > 1);
            }
            profile::lap(&mut timer, Phase::Activation);
        }
        // Later layers: one GEMM per configuration.
        for l in 1..layers {
            let (w_in, w_out) = (self.widths[l], self.widths[l + 1]);
            let (lo, hi) = ws.acts.split_at_mut(l);
            for c in 0..cfgs {
                let inp = MatRef::with_ld(&lo[l - 1][c * w_in..], w_in, n, cfgs * w_in);
                let out = MatMut::with_ld(&mut hi[0][c * w_out..], w_out, n, cfgs * w_out);
                gemm(
                    T::one(),
                    self.weight(l, c),
                    false,
                    inp,
                    false,
                    T::zero(),
                    out,
                );
                profile::lap(&mut timer, Phase::ForwardGemm);
                let out = MatMut::with_ld(&mut hi[0][c * w_out..], w_out, n, cfgs * w_out);
                bias_activation(out, T::one(), self.bias(l, c), l + 1 < layers);
                profile::lap(&mut timer, Phase::Activation);
            }
        }
        let k = self.widths[layers];
        for (c, stat) in stats.iter_mut().enumerate().take(cfgs) {
            let block = MatMut::with_ld(&mut ws.acts[layers - 1][c * k..], k, n, cfgs * k);
            let (loss_sum, correct) = loss_forward(self.arch.loss, block, labels);
            *stat = LossStat {
                loss_sum,
                correct,
                n,
            };
        }
        profile::lap(&mut timer, Phase::Activation);
    }

    /// One SGD step for every configuration, after [`Self::forward_loss`] on the
    /// same `x` and `labels`: W <- (1 - 2 eta_c lambda_c) W - (eta_c / n) dL/dW and
    /// b <- b - (eta_c / n) dL/db, fused into the backward GEMMs. Allocates nothing.
    pub fn backward_update(
        &mut self,
        x: MatRef<'_, T>,
        labels: &[u8],
        ws: &mut Workspace<T>,
        etas: &[T],
        lambdas: &[T],
    ) {
        self.backward(x, labels, ws, Backward::Update { etas, lambdas });
    }

    /// Plain gradients of the cost (mean loss + lambda_c * sum W^2) for every
    /// configuration on (x, labels), in the network's layout with scales folded.
    /// Used by gradient checks and as the reference for the fused update.
    pub fn gradients(&self, x: MatRef<'_, T>, labels: &[u8], lambdas: &[T]) -> Net<T> {
        let mut ws = self.workspace(x.cols);
        let mut stats = vec![LossStat::default(); self.configs];
        self.forward_loss(x, labels, &mut ws, &mut stats);
        let mut grads = Net::zeros(&self.arch, self.configs);
        // backward() takes &mut self for the update mode; gradients leave self unchanged.
        let mut me = self.clone();
        me.backward(
            x,
            labels,
            &mut ws,
            Backward::Gradients {
                lambdas,
                grads: &mut grads,
            },
        );
        grads
    }

    fn backward(
        &mut self,
        x: MatRef<'_, T>,
        labels: &[u8],
        ws: &mut Workspace<T>,
        mut mode: Backward<'_, T>,
    ) {
        let n = x.cols;
        let layers = self.layers();
        let cfgs = self.configs;
        let inv_n = T::of(1.0 / n as f64);
        let two = T::of(2.0);
        let k = self.widths[layers];
        let mut timer = profile::start();
        for c in 0..cfgs {
            let block = MatMut::with_ld(&mut ws.acts[layers - 1][c * k..], k, n, cfgs * k);
            loss_backward(self.arch.loss, block, labels);
        }
        profile::lap(&mut timer, Phase::Update);
        for l in (1..layers).rev() {
            let (w_in, w_out) = (self.widths[l], self.widths[l + 1]);
            let (acts_lo, acts_hi) = ws.acts.split_at_mut(l);
            let (grads_lo, grads_hi) = ws.grads.split_at_mut(l);
            let g_buf: &[T] = if l == layers - 1 {
                &acts_hi[0]
            } else {
                &grads_hi[0]
            };
            for c in 0..cfgs {
                let g = MatRef::with_ld(&g_buf[c * w_out..], w_out, n, cfgs * w_out);
                let h = MatRef::with_ld(&acts_lo[l - 1][c * w_in..], w_in, n, cfgs * w_in);
                {
                    let dh =
                        MatMut::with_ld(&mut grads_lo[l - 1][c * w_in..], w_in, n, cfgs * w_in);
                    gemm(T::one(), self.weight(l, c), true, g, false, T::zero(), dh);
                    profile::lap(&mut timer, Phase::BackwardGemm);
                    let dh =
                        MatMut::with_ld(&mut grads_lo[l - 1][c * w_in..], w_in, n, cfgs * w_in);
                    relu_backward(dh, h);
                    profile::lap(&mut timer, Phase::Update);
                }
                let off = c * w_out * w_in;
                let bias = c * w_out..(c + 1) * w_out;
                match &mut mode {
                    Backward::Update { etas, lambdas } => {
                        let (eta, lambda) = (etas[c], lambdas[c]);
                        let w =
                            MatMut::new(&mut self.weights[l][off..off + w_out * w_in], w_out, w_in);
                        gemm(
                            -eta * inv_n,
                            g,
                            false,
                            h,
                            true,
                            T::one() - two * eta * lambda,
                            w,
                        );
                        profile::lap(&mut timer, Phase::BackwardGemm);
                        bias_step(&mut self.biases[l][bias], -eta * inv_n, g, T::one());
                        profile::lap(&mut timer, Phase::Update);
                    }
                    Backward::Gradients { lambdas, grads } => {
                        let dw = &mut grads.weights[l][off..off + w_out * w_in];
                        dw.copy_from_slice(&self.weights[l][off..off + w_out * w_in]);
                        gemm(
                            inv_n,
                            g,
                            false,
                            h,
                            true,
                            two * lambdas[c],
                            MatMut::new(dw, w_out, w_in),
                        );
                        bias_step(&mut grads.biases[l][bias], inv_n, g, T::zero());
                    }
                }
            }
        }
        // Layer 0: one stacked weight GEMM for every configuration.
        let (d, w1) = (self.widths[0], self.widths[1]);
        let ld = cfgs * w1;
        let g0: &mut [T] = if layers == 1 {
            &mut ws.acts[0]
        } else {
            &mut ws.grads[0]
        };
        match mode {
            Backward::Update { etas, lambdas } => {
                for c in 0..cfgs {
                    let (eta, lambda) = (etas[c], lambdas[c]);
                    let g = MatRef::with_ld(&g0[c * w1..], w1, n, ld);
                    bias_step(
                        &mut self.biases[0][c * w1..(c + 1) * w1],
                        -eta * inv_n,
                        g,
                        T::one(),
                    );
                    let s_new = self.scale[c] * (T::one() - two * eta * lambda);
                    if s_new.abs().f64() < FOLD_BELOW || !s_new.is_finite() {
                        self.scale[c] = s_new;
                        self.fold_scale(c);
                    } else {
                        self.scale[c] = s_new;
                    }
                    let g = MatMut::with_ld(&mut g0[c * w1..], w1, n, ld);
                    scale_block(g, -eta * inv_n / self.scale[c]);
                }
                profile::lap(&mut timer, Phase::Update);
                let g = MatRef::with_ld(g0, ld, n, ld);
                let v = MatMut::with_ld(&mut self.weights[0], ld, d, ld);
                gemm_blocks(T::one(), g, false, x, true, T::one(), v);
                profile::lap(&mut timer, Phase::BackwardGemm);
            }
            Backward::Gradients { lambdas, grads } => {
                for c in 0..cfgs {
                    let decay = two * lambdas[c] * self.scale[c];
                    for j in 0..d {
                        for i in 0..w1 {
                            let idx = c * w1 + i + j * ld;
                            grads.weights[0][idx] = decay * self.weights[0][idx];
                        }
                    }
                    let g = MatRef::with_ld(&g0[c * w1..], w1, n, ld);
                    bias_step(
                        &mut grads.biases[0][c * w1..(c + 1) * w1],
                        inv_n,
                        g,
                        T::zero(),
                    );
                }
                let g = MatRef::with_ld(g0, ld, n, ld);
                let dw = MatMut::with_ld(&mut grads.weights[0], ld, d, ld);
                gemm(inv_n, g, false, x, true, T::one(), dw);
            }
        }
    }

    /// Cost, loss and accuracy of every configuration on a whole data set `x`
    /// (d x N, column-major), in chunks of the workspace's capacity; `out[c]` is
    /// configuration c's result with its own `lambdas[c]`.
    pub fn evaluate(
        &self,
        x: MatRef<'_, T>,
        labels: &[u8],
        lambdas: &[f64],
        ws: &mut Workspace<T>,
        out: &mut [Eval],
    ) {
        let mut totals = [LossStat::default(); MAX_GROUP];
        let mut j0 = 0;
        while j0 < x.cols {
            let m = ws.cap.min(x.cols - j0);
            self.add_chunk(x.col_block(j0, m), &labels[j0..j0 + m], ws, &mut totals);
            j0 += m;
        }
        self.finish_eval(&totals, lambdas, out);
    }

    /// [`Self::evaluate`] on the columns `cols` of `x` only (a fixed sample of a
    /// data set), gathered chunk by chunk into `gather` (at least d x the
    /// workspace's capacity): no copy of the data set, nothing allocated.
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate_columns(
        &self,
        x: MatRef<'_, T>,
        labels: &[u8],
        cols: &[usize],
        lambdas: &[f64],
        ws: &mut Workspace<T>,
        gather: &mut [T],
        chunk_labels: &mut [u8],
        out: &mut [Eval],
    ) {
        let d = x.rows;
        assert!(gather.len() >= d * ws.cap && chunk_labels.len() >= ws.cap);
        let mut totals = [LossStat::default(); MAX_GROUP];
        for chunk in cols.chunks(ws.cap) {
            let m = chunk.len();
            for (k, &j) in chunk.iter().enumerate() {
                let col = x.col_block(j, 1);
                gather[k * d..(k + 1) * d].copy_from_slice(&col.data[..d]);
                chunk_labels[k] = labels[j];
            }
            let xs = MatRef::new(&gather[..d * m], d, m);
            self.add_chunk(xs, &chunk_labels[..m], ws, &mut totals);
        }
        self.finish_eval(&totals, lambdas, out);
    }

    fn add_chunk(
        &self,
        x: MatRef<'_, T>,
        labels: &[u8],
        ws: &mut Workspace<T>,
        totals: &mut [LossStat; MAX_GROUP],
    ) {
        let cfgs = self.configs;
        let mut chunk = [LossStat::default(); MAX_GROUP];
        self.forward_loss(x, labels, ws, &mut chunk[..cfgs]);
        for c in 0..cfgs {
            totals[c].loss_sum += chunk[c].loss_sum;
            totals[c].correct += chunk[c].correct;
            totals[c].n += x.cols;
        }
    }

    fn finish_eval(&self, totals: &[LossStat; MAX_GROUP], lambdas: &[f64], out: &mut [Eval]) {
        for c in 0..self.configs {
            let n = totals[c].n.max(1) as f64;
            let loss = totals[c].loss_sum / n;
            out[c] = Eval {
                cost: loss + lambdas[c] * self.weight_sq_sum(c),
                loss,
                acc: totals[c].correct as f64 / n,
            };
        }
    }
}

/// Largest number of configurations one group may stack.
pub const MAX_GROUP: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Loss;

    fn toy(d: usize, n: usize, seed: u64) -> (Vec<f64>, Vec<u8>) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let normal = Normal::new(0.0, 1.0).unwrap();
        let x = (0..d * n).map(|_| normal.sample(&mut rng)).collect();
        let y = (0..n).map(|j| ((j * 7 + 3) % 10) as u8).collect();
        (x, y)
    }

    fn arch(hidden: &[usize], loss: Loss) -> Arch {
        Arch {
            input: 12,
            hidden: hidden.to_vec(),
            classes: 10,
            loss,
        }
    }

    /// The fused update equals "compute the plain gradient, then W -= eta * grad".
    #[test]
    fn fused_update_equals_gradient_then_update() {
        for hidden in [&[][..], &[6][..], &[7, 5][..]] {
            for loss in [Loss::Ce, Loss::Bce] {
                let a = arch(hidden, loss);
                let (x, y) = toy(12, 9, 1);
                let x = MatRef::new(&x, 12, 9);
                let mut net = Net::<f64>::init(&a, &[11, 12, 13]);
                net.scale = vec![0.7, 1.0, 1.3]; // non-trivial scales
                let etas = [0.1, 0.05, 0.2];
                let lambdas = [0.0, 0.1, 0.5];
                let grads = net.gradients(x, &y, &lambdas);
                let mut want = net.clone();
                want.fold_scales();
                for l in 0..net.layers() {
                    for (c, eta) in etas.iter().enumerate() {
                        for i in 0..net.widths[l + 1] {
                            for j in 0..net.widths[l] {
                                let idx = net.weight_index(l, c, i, j);
                                want.weights[l][idx] -= eta * grads.weights[l][idx];
                            }
                            want.biases[l][c * net.widths[l + 1] + i] -=
                                eta * grads.biases[l][c * net.widths[l + 1] + i];
                        }
                    }
                }
                let mut ws = net.workspace(9);
                let mut stats = [LossStat::default(); 3];
                net.forward_loss(x, &y, &mut ws, &mut stats);
                net.backward_update(x, &y, &mut ws, &etas, &lambdas);
                net.fold_scales();
                for l in 0..net.layers() {
                    for (a, b) in net.weights[l].iter().zip(&want.weights[l]) {
                        assert!((a - b).abs() < 1e-12, "layer {l}: {a} vs {b}");
                    }
                    for (a, b) in net.biases[l].iter().zip(&want.biases[l]) {
                        assert!((a - b).abs() < 1e-12);
                    }
                }
            }
        }
    }

    /// Stacking changes nothing: each configuration of a group equals the same
    /// configuration trained alone, step after step.
    #[test]
    fn group_equals_configurations_alone() {
        let a = arch(&[6], Loss::Ce);
        let (x, y) = toy(12, 8, 2);
        let x = MatRef::new(&x, 12, 8);
        let seeds = [5, 6, 7];
        let etas = [0.3, 0.1, 0.2];
        let lambdas = [0.4, 0.0, 0.05];
        let mut group = Net::<f64>::init(&a, &seeds);
        let mut ws = group.workspace(8);
        let mut st = [LossStat::default(); 3];
        for _ in 0..20 {
            group.forward_loss(x, &y, &mut ws, &mut st);
            group.backward_update(x, &y, &mut ws, &etas, &lambdas);
        }
        for c in 0..3 {
            let mut alone = Net::<f64>::init(&a, &seeds[c..c + 1]);
            let mut ws1 = alone.workspace(8);
            let mut st1 = [LossStat::default(); 1];
            for _ in 0..20 {
                alone.forward_loss(x, &y, &mut ws1, &mut st1);
                alone.backward_update(x, &y, &mut ws1, &etas[c..c + 1], &lambdas[c..c + 1]);
            }
            for l in 0..2 {
                let (g, s) = (group.weight_rows(l, c), alone.weight_rows(l, 0));
                for (p, q) in g.iter().zip(&s) {
                    assert!((p - q).abs() < 1e-12, "config {c} layer {l}");
                }
            }
        }
    }

    /// A batch forward equals sample-by-sample forwards.
    #[test]
    fn batch_forward_equals_per_sample() {
        let a = arch(&[6], Loss::Ce);
        let (x, y) = toy(12, 5, 3);
        let net = Net::<f64>::init(&a, &[1]);
        let mut ws = net.workspace(5);
        let mut st = [LossStat::default()];
        net.forward_loss(MatRef::new(&x, 12, 5), &y, &mut ws, &mut st);
        let batch_probs = ws.acts[1].clone();
        let mut total = 0.0;
        for j in 0..5 {
            let mut ws1 = net.workspace(1);
            let mut s1 = [LossStat::default()];
            net.forward_loss(
                MatRef::new(&x[j * 12..], 12, 1),
                &y[j..j + 1],
                &mut ws1,
                &mut s1,
            );
            total += s1[0].loss_sum;
            for k in 0..10 {
                assert!((ws1.acts[1][k] - batch_probs[j * 10 + k]).abs() < 1e-14);
            }
        }
        assert!((total - st[0].loss_sum).abs() < 1e-12);
    }

    /// f32 and f64 passes agree to f32 precision.
    #[test]
    fn f32_matches_f64() {
        let a = arch(&[6], Loss::Ce);
        let (x, y) = toy(12, 7, 4);
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let n64 = Net::<f64>::init(&a, &[9]);
        let n32 = Net::<f32>::init(&a, &[9]);
        let g64 = n64.gradients(MatRef::new(&x, 12, 7), &y, &[0.1]);
        let g32 = n32.gradients(MatRef::new(&x32, 12, 7), &y, &[0.1]);
        for l in 0..2 {
            for (p, q) in g64.weights[l].iter().zip(&g32.weights[l]) {
                assert!((p - *q as f64).abs() < 1e-5 * (1.0 + p.abs()), "{p} vs {q}");
            }
        }
    }
}
