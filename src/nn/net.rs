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

use ndarray::{
    s, Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, ShapeBuilder,
};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::arch::Arch;
use super::kernel::{Blas, Layer0, Scratch};
use super::layers::{
    batch_norm_backward, batch_norm_eval, batch_norm_train, bias_activation, bias_step, dropout,
    dropout_threshold, relu_dropout_backward, scale_block, BN_MOMENTUM,
};
use super::loss::{loss_backward, loss_forward};
use super::optimizer::{momentum_step, Coefficients, Sgd};
use super::profile::{self, Phase};
use crate::linalg::blas::gemm;
use crate::linalg::Real;

/// When |s_c| falls below this, s_c is folded back into V_c.
const FOLD_BELOW: f64 = 1e-3;

/// Parameters of C stacked configurations, as Fortran-order (column-major) arrays.
///
/// - `weights[0]`: V, (C*w1) x d; rows c*w1..(c+1)*w1 are configuration c's
///   first-layer weights divided by `scale[c]` (one stacked GEMM for all).
/// - `weights[l]`, l >= 1: w_{l+1} x (C*w_l); columns c*w_l..(c+1)*w_l are
///   configuration c's W_l (w_{l+1} x w_l), so each block is contiguous.
/// - `biases[l]`: C*w_{l+1}, configuration c's bias at c*w_{l+1}.
///
/// - With batch normalisation (`arch.batch_norm`), per hidden layer l:
///   `gamma[l]`, `beta[l]` (learned scale and shift) and `run_mean[l]`,
///   `run_var[l]` (running averages for evaluation), C*w_{l+1} each, configuration
///   c's at c*w_{l+1}; all four are empty without it.
///
/// [`Self::weight`] and [`Self::bias`] give one configuration's block as a view.
#[derive(Clone, Debug)]
pub struct Net<T> {
    /// Architecture shared by all configurations.
    pub arch: Arch,
    /// Number of stacked configurations C.
    pub configs: usize,
    /// Layer widths `[d, h1, ..., K]`.
    pub widths: Vec<usize>,
    /// Weights, see the type's documentation for the layout.
    pub weights: Vec<Array2<T>>,
    /// Biases, C blocks of w_{l+1} per layer.
    pub biases: Vec<Array1<T>>,
    /// First-layer scale s_c per configuration: W0_c = s_c V_c.
    pub scale: Vec<T>,
    /// Batch-norm scale gamma per hidden layer (empty without batch norm).
    pub gamma: Vec<Array1<T>>,
    /// Batch-norm shift beta per hidden layer.
    pub beta: Vec<Array1<T>>,
    /// Running mean of the batch means per hidden layer (evaluation).
    pub run_mean: Vec<Array1<T>>,
    /// Running mean of the batch variances per hidden layer (evaluation).
    pub run_var: Vec<Array1<T>>,
    /// The optimizer's state: plain SGD, or momentum and its velocities.
    pub optimizer: Sgd<T>,
    /// Layer 0's two big products: BLAS in `T`, or with `--precision bf16`
    /// ([`Self::enable_bf16`]) bf16 operands with f32 sums.
    kernel: Box<dyn Layer0<T>>,
}

/// One configuration's regularisers in a training pass: dropout and label
/// smoothing. They may differ between the configurations of a lockstep group,
/// like lambda.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepRegs {
    /// Probability of dropping a hidden unit (inverted dropout), 0 for none.
    pub drop: f64,
    /// Label smoothing eps (cross-entropy), 0 for none.
    pub smoothing: f64,
    /// Seed of this configuration's dropout masks (mixed with the step and layer).
    pub mask_seed: u64,
}

/// How a forward pass treats dropout and batch normalisation.
#[derive(Clone, Copy, Debug)]
pub enum Pass<'a> {
    /// Evaluation: no dropout, no smoothing, batch norm with running averages.
    Eval,
    /// Training step `step`: dropout masks drawn from (`regs[c].mask_seed`, step,
    /// layer), smoothed targets, batch norm with the batch's statistics.
    Train {
        /// Update step (the masks' draw).
        step: u64,
        /// Per configuration.
        regs: &'a [StepRegs],
    },
}

/// One configuration's effective parameters of one layer, in f64: what is
/// saved, shown and compared.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerParams {
    /// W, w_out x w_in (scale folded in).
    pub w: Array2<f64>,
    /// b, w_out.
    pub b: Array1<f64>,
    /// Batch norm on this hidden layer's scores W x + b, when the net has it:
    /// gamma, beta, running mean and running variance (w_out each).
    pub norm: Option<[Array1<f64>; 4]>,
}

/// Per-batch buffers, allocated once for batches of up to `cap` samples.
///
/// `acts[l]` holds layer l's output for all configurations, (C*w_{l+1}) x cap,
/// Fortran order: post-ReLU activations for hidden layers, and for the last
/// layer the probabilities, then (in the backward pass) dL/dscores.
/// `grads[l]` (l < L-1) holds dL/d(output of layer l), same layout. A batch of
/// n < cap samples uses the first n columns.
#[derive(Clone, Debug)]
pub struct Workspace<T> {
    /// Largest batch the buffers hold.
    pub cap: usize,
    acts: Vec<Array2<T>>,
    grads: Vec<Array2<T>>,
    /// Batch norm per hidden layer (empty without it): normalised scores zhat
    /// ((C*w) x cap), and per unit the batch mean, variance and 1/sqrt(var + eps),
    /// and the gamma and beta gradient sums (C*w each).
    zhat: Vec<Array2<T>>,
    bn_mean: Vec<Array1<T>>,
    bn_var: Vec<Array1<T>>,
    bn_inv: Vec<Array1<T>>,
    d_gamma: Vec<Array1<T>>,
    d_beta: Vec<Array1<T>>,
    /// Per configuration, what the last forward pass used: dropout keep scale
    /// (1 for none) and label smoothing, for the backward pass.
    keep: Vec<T>,
    smoothing: Vec<T>,
    /// Whether the last forward pass was a training pass (the backward needs one
    /// for batch norm).
    trained: bool,
    /// The layer-0 kernel's buffers (bf16: the packed batch and gradient).
    scratch: Scratch,
}

pub use super::kernel::Input;

impl<T> Workspace<T> {
    /// The last layer's output after a forward pass, (C*K) x n for the batch's
    /// n samples: configuration c's probabilities are rows c*K..(c+1)*K.
    pub fn output(&self, n: usize) -> ArrayView2<'_, T> {
        let last = self.acts.last().expect("a network has a layer");
        last.slice(s![.., ..n])
    }
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
    /// Mean loss + lambda * sum of squared weights (NaN once diverged,
    /// written as null).
    #[serde(deserialize_with = "crate::util::nan_from_null")]
    pub cost: f64,
    /// Mean loss.
    #[serde(deserialize_with = "crate::util::nan_from_null")]
    pub loss: f64,
    /// Share of correct argmax predictions, 0..1.
    #[serde(deserialize_with = "crate::util::nan_from_null")]
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

impl<T: Real> Backward<'_, T> {
    /// Configuration c's step on a batch of n samples with optimizer `sgd`.
    fn coefficients(&self, c: usize, n: usize, sgd: &Sgd<T>) -> Coefficients<T> {
        match *self {
            Backward::Update { etas, lambdas } => Coefficients::step(sgd, etas[c], lambdas[c], n),
            Backward::Gradients { lambdas, .. } => Coefficients::gradient(lambdas[c], n),
        }
    }
}

/// Rows `c*w..(c+1)*w` of the first `n` columns: configuration c's block of a
/// stacked buffer.
fn block<'a, T>(m: &'a Array2<T>, c: usize, w: usize, n: usize) -> ArrayView2<'a, T> {
    m.slice(s![c * w..(c + 1) * w, ..n])
}

/// [`block`], mutably.
fn block_mut<'a, T>(m: &'a mut Array2<T>, c: usize, w: usize, n: usize) -> ArrayViewMut2<'a, T> {
    m.slice_mut(s![c * w..(c + 1) * w, ..n])
}

/// Configuration c's block of layer l's weights (or of anything in their
/// layout): rows of the stacked layer 0, columns of a later layer.
fn config_block<T>(
    m: &mut Array2<T>,
    l: usize,
    c: usize,
    w_in: usize,
    w_out: usize,
) -> ArrayViewMut2<'_, T> {
    if l == 0 {
        m.slice_mut(s![c * w_out..(c + 1) * w_out, ..])
    } else {
        m.slice_mut(s![.., c * w_in..(c + 1) * w_in])
    }
}

/// Entries `c*w..(c+1)*w`: configuration c's part of a stacked per-unit vector.
fn units<T>(v: &Array1<T>, c: usize, w: usize) -> ArrayView1<'_, T> {
    v.slice(s![c * w..(c + 1) * w])
}

/// [`units`], as a mutable slice.
fn units_mut<T>(v: &mut Array1<T>, c: usize, w: usize) -> &mut [T] {
    v.as_slice_mut().expect("contiguous vector")[c * w..(c + 1) * w].as_mut()
}

/// Seed of one configuration's dropout mask at one step and layer.
fn mask_seed(seed: u64, step: u64, layer: usize) -> u64 {
    crate::util::mix64(seed ^ crate::util::mix64(step ^ ((layer as u64) << 48)))
}

impl<T: Real> Net<T> {
    /// All-zero parameters for `configs` configurations.
    pub fn zeros(arch: &Arch, configs: usize) -> Self {
        let widths = arch.widths();
        let weights = (0..arch.layers())
            .map(|l| {
                if l == 0 {
                    Array2::zeros((configs * widths[1], widths[0]).f())
                } else {
                    Array2::zeros((widths[l + 1], configs * widths[l]).f())
                }
            })
            .collect();
        let biases = (0..arch.layers())
            .map(|l| Array1::zeros(configs * widths[l + 1]))
            .collect();
        let bn_layers = if arch.batch_norm {
            arch.hidden.len()
        } else {
            0
        };
        let per_unit = |value: f64| -> Vec<Array1<T>> {
            (0..bn_layers)
                .map(|l| Array1::from_elem(configs * widths[l + 1], T::of(value)))
                .collect()
        };
        Net {
            arch: arch.clone(),
            configs,
            gamma: per_unit(1.0),
            beta: per_unit(0.0),
            run_mean: per_unit(0.0),
            run_var: per_unit(1.0),
            optimizer: Sgd::plain(),
            widths,
            weights,
            biases,
            scale: vec![T::one(); configs],
            kernel: Box::new(Blas),
        }
    }

    /// Mixed precision (`--precision bf16`): from now on layer 0's forward
    /// product W X and weight product G X^T take bf16 operands with f32 sums in
    /// the AVX512-BF16 kernel; weights, updates and every other layer stay f32.
    /// Refuses on a CPU without the feature, and for f64 networks.
    pub fn enable_bf16(&mut self) -> anyhow::Result<()> {
        self.kernel = super::kernel::bf16_kernel(self.weights[0].view())?;
        Ok(())
    }

    /// `--precision int16`: from now on layer 0's two products are 16-bit
    /// integer products of the pixels that `pixels` maps the inputs back to
    /// ([`crate::linalg::int16`]); weights, updates and every other layer
    /// stay f32. Refuses on a CPU without AVX2, and for f64 networks.
    pub fn enable_int16(&mut self, pixels: crate::linalg::int16::Pixels) -> anyhow::Result<()> {
        self.kernel = super::kernel::int16_kernel(self.weights[0].view(), pixels)?;
        Ok(())
    }

    /// Whether layer 0 runs in bf16 ([`Self::enable_bf16`]).
    pub fn uses_bf16(&self) -> bool {
        self.kernel.name() == "bf16"
    }

    /// Layer 0's kernel: `blas`, `bf16` or `int16`.
    pub fn layer0_kernel(&self) -> &'static str {
        self.kernel.name()
    }

    /// Tells the kernel that layer 0's weights changed.
    fn repack_bf16(&mut self) {
        self.kernel.weights_changed(self.weights[0].view());
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
                let std = if arch.hidden.is_empty() {
                    0.01
                } else {
                    1.0 / (net.widths[l] as f64).sqrt()
                };
                let normal = Normal::new(0.0, std).expect("finite std");
                let mut w = net.weight_mut(l, c);
                for mut row in w.rows_mut() {
                    for v in row.iter_mut() {
                        *v = T::of(normal.sample(&mut rng));
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

    /// Configuration c's W_l as a view (w_{l+1} x w_l, column-major). For l = 0
    /// it is V_c: multiply by `scale[c]` for the effective weights.
    pub fn weight(&self, l: usize, c: usize) -> ArrayView2<'_, T> {
        let (w_in, w_out) = (self.widths[l], self.widths[l + 1]);
        if l == 0 {
            self.weights[0].slice(s![c * w_out..(c + 1) * w_out, ..])
        } else {
            self.weights[l].slice(s![.., c * w_in..(c + 1) * w_in])
        }
    }

    /// [`Self::weight`], mutably.
    pub fn weight_mut(&mut self, l: usize, c: usize) -> ArrayViewMut2<'_, T> {
        let (w_in, w_out) = (self.widths[l], self.widths[l + 1]);
        if l == 0 {
            self.weights[0].slice_mut(s![c * w_out..(c + 1) * w_out, ..])
        } else {
            self.weights[l].slice_mut(s![.., c * w_in..(c + 1) * w_in])
        }
    }

    /// Configuration c's bias of layer l (w_{l+1}).
    pub fn bias(&self, l: usize, c: usize) -> ArrayView1<'_, T> {
        let w = self.widths[l + 1];
        self.biases[l].slice(s![c * w..(c + 1) * w])
    }

    /// [`Self::bias`], mutably.
    pub fn bias_mut(&mut self, l: usize, c: usize) -> ArrayViewMut1<'_, T> {
        let w = self.widths[l + 1];
        self.biases[l].slice_mut(s![c * w..(c + 1) * w])
    }

    /// Turns on SGD with momentum `mu` for every configuration (zero
    /// velocities): v <- mu v + dJ/dW (the L2 term included), W <- W - eta v, and
    /// the same for the biases; batch norm's gamma and beta keep plain steps.
    /// The first layer's scale is folded and stays 1 (the decay is in v).
    pub fn set_momentum(&mut self, mu: f64) {
        if mu > 0.0 {
            self.fold_scales();
        }
        self.optimizer = Sgd::with_momentum(mu, &self.weights, &self.biases);
    }

    /// Configuration c's velocity of layer l's weights (the layout of
    /// [`Self::weight`]) and biases.
    pub fn velocity(&self, l: usize, c: usize) -> (ArrayView2<'_, T>, ArrayView1<'_, T>) {
        let (w_in, w_out) = (self.widths[l], self.widths[l + 1]);
        let v = if l == 0 {
            self.optimizer.velocity[0].slice(s![c * w_out..(c + 1) * w_out, ..])
        } else {
            self.optimizer.velocity[l].slice(s![.., c * w_in..(c + 1) * w_in])
        };
        (v, units(&self.optimizer.velocity_b[l], c, w_out))
    }

    /// [`Self::velocity`], mutably.
    pub fn velocity_mut(&mut self, l: usize, c: usize) -> (ArrayViewMut2<'_, T>, &mut [T]) {
        let (w_in, w_out) = (self.widths[l], self.widths[l + 1]);
        let v = if l == 0 {
            self.optimizer.velocity[0].slice_mut(s![c * w_out..(c + 1) * w_out, ..])
        } else {
            self.optimizer.velocity[l].slice_mut(s![.., c * w_in..(c + 1) * w_in])
        };
        (v, units_mut(&mut self.optimizer.velocity_b[l], c, w_out))
    }

    /// Whether hidden layers are batch-normalised.
    pub fn batch_norm(&self) -> bool {
        !self.gamma.is_empty()
    }

    /// Configuration c's batch-norm vectors of hidden layer l (w_{l+1} each):
    /// gamma, beta, running mean, running variance.
    pub fn norm(&self, l: usize, c: usize) -> [ArrayView1<'_, T>; 4] {
        let w = self.widths[l + 1];
        [
            units(&self.gamma[l], c, w),
            units(&self.beta[l], c, w),
            units(&self.run_mean[l], c, w),
            units(&self.run_var[l], c, w),
        ]
    }

    /// Configuration c's batch-norm vectors of hidden layer l, mutably, in the
    /// order of [`Self::norm`].
    pub fn norm_mut(&mut self, l: usize, c: usize) -> [&mut [T]; 4] {
        let w = self.widths[l + 1];
        [
            units_mut(&mut self.gamma[l], c, w),
            units_mut(&mut self.beta[l], c, w),
            units_mut(&mut self.run_mean[l], c, w),
            units_mut(&mut self.run_var[l], c, w),
        ]
    }

    /// Configuration c's effective parameters, layer by layer, in f64
    /// (first-layer scale folded in).
    pub fn params(&self, c: usize) -> Vec<LayerParams> {
        (0..self.layers())
            .map(|l| {
                let s = if l == 0 { self.scale[c].f64() } else { 1.0 };
                LayerParams {
                    w: self.weight(l, c).mapv(|v| v.f64() * s),
                    b: self.bias(l, c).mapv(|v| v.f64()),
                    norm: (l < self.gamma.len())
                        .then(|| self.norm(l, c).map(|v| v.mapv(|x| x.f64()))),
                }
            })
            .collect()
    }

    /// A one-configuration network of `arch` with the parameters `layers`
    /// (what [`Self::params`] returns), in evaluation mode.
    pub fn from_params(arch: &Arch, layers: &[LayerParams]) -> Self {
        let mut net = Net::zeros(arch, 1);
        for (l, p) in layers.iter().enumerate() {
            net.weight_mut(l, 0).assign(&p.w.mapv(T::of));
            net.bias_mut(l, 0).assign(&p.b.mapv(T::of));
            if let (Some(norm), true) = (&p.norm, l < net.gamma.len()) {
                for (dst, src) in net.norm_mut(l, 0).into_iter().zip(norm) {
                    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = T::of(s));
                }
            }
        }
        net
    }

    /// Buffers for batches of up to `cap` samples.
    pub fn workspace(&self, cap: usize) -> Workspace<T> {
        let l = self.layers();
        let c = self.configs;
        let acts = (0..l)
            .map(|i| Array2::zeros((c * self.widths[i + 1], cap).f()))
            .collect();
        let grads = (0..l - 1)
            .map(|i| Array2::zeros((c * self.widths[i + 1], cap).f()))
            .collect();
        let bn = self.gamma.len();
        let units = |i: usize| Array1::zeros(c * self.widths[i + 1]);
        Workspace {
            cap,
            acts,
            grads,
            zhat: (0..bn)
                .map(|i| Array2::zeros((c * self.widths[i + 1], cap).f()))
                .collect(),
            bn_mean: (0..bn).map(units).collect(),
            bn_var: (0..bn).map(units).collect(),
            bn_inv: (0..bn).map(units).collect(),
            d_gamma: (0..bn).map(units).collect(),
            d_beta: (0..bn).map(units).collect(),
            keep: vec![T::one(); c],
            smoothing: vec![T::zero(); c],
            trained: false,
            scratch: self.kernel.scratch(self.widths[0], c * self.widths[1], cap),
        }
    }

    /// Folds configuration c's first-layer scale s_c into V_c (s_c becomes 1).
    pub fn fold_scale(&mut self, c: usize) {
        let s = self.scale[c];
        if s == T::one() {
            return;
        }
        scale_block(self.weight_mut(0, c), s);
        self.scale[c] = T::one();
        self.repack_bf16();
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
            self.weight_mut(l, c).fill(T::zero());
            self.bias_mut(l, c).fill(T::zero());
        }
        for l in 0..self.gamma.len() {
            for (part, value) in self.norm_mut(l, c).into_iter().zip([1.0, 0.0, 0.0, 1.0]) {
                part.fill(T::of(value));
            }
        }
        if self.optimizer.has_momentum() {
            for l in 0..self.layers() {
                let (mut v, vb) = self.velocity_mut(l, c);
                v.fill(T::zero());
                vb.fill(T::zero());
            }
        }
        self.repack_bf16();
    }

    /// Sum of squared effective weights (all layers, no biases) per configuration,
    /// the L2 penalty before lambda.
    pub fn weight_sq_sum(&self, c: usize) -> f64 {
        (0..self.layers())
            .map(|l| {
                let s = if l == 0 { self.scale[c].f64() } else { 1.0 };
                let mut acc = 0.0;
                for col in self.weight(l, c).columns() {
                    for v in col {
                        let v = v.f64();
                        acc += v * v;
                    }
                }
                acc * s * s
            })
            .sum()
    }

    /// Forward pass over the n samples of `x` (d x n, column-major) in
    /// evaluation mode, then the loss: `stats[c]` receives configuration c's loss
    /// sum and correct count. Leaves the probabilities in the workspace (see
    /// [`Workspace::output`]). Allocates nothing.
    pub fn forward_loss<'a>(
        &self,
        x: impl Into<Input<'a, T>>,
        labels: &[u8],
        ws: &mut Workspace<T>,
        stats: &mut [LossStat],
    ) where
        T: 'a,
    {
        self.forward(x.into(), labels, ws, stats, Pass::Eval);
    }

    /// Forward pass of training step `step`, with each configuration's dropout
    /// and label smoothing (`regs`) and batch norm on the batch's statistics;
    /// [`Self::backward_update`] follows it on the same batch. Without batch norm,
    /// dropout or smoothing it is [`Self::forward_loss`], bit for bit. Allocates nothing.
    pub fn forward_train<'a>(
        &self,
        x: impl Into<Input<'a, T>>,
        labels: &[u8],
        ws: &mut Workspace<T>,
        stats: &mut [LossStat],
        step: u64,
        regs: &[StepRegs],
    ) where
        T: 'a,
    {
        self.forward(x.into(), labels, ws, stats, Pass::Train { step, regs });
    }

    /// The epilogue of hidden layer l's GEMM on configuration c's block: scale,
    /// bias (or batch norm), ReLU, then dropout in training.
    fn hidden_epilogue(&self, l: usize, c: usize, n: usize, ws: &mut Workspace<T>, pass: Pass<'_>) {
        let w = self.widths[l + 1];
        let scale = if l == 0 { self.scale[c] } else { T::one() };
        let Workspace {
            acts,
            zhat,
            bn_mean,
            bn_var,
            bn_inv,
            ..
        } = ws;
        let out = block_mut(&mut acts[l], c, w, n);
        match (self.batch_norm(), pass) {
            (false, _) => bias_activation(out, scale, self.bias(l, c), true),
            (true, Pass::Eval) => {
                let [gamma, beta, mean, var] = self.norm(l, c);
                batch_norm_eval(out, scale, self.bias(l, c), gamma, beta, mean, var);
            }
            (true, Pass::Train { .. }) => {
                let [gamma, beta, _, _] = self.norm(l, c);
                batch_norm_train(
                    out,
                    scale,
                    self.bias(l, c),
                    gamma,
                    beta,
                    block_mut(&mut zhat[l], c, w, n),
                    units_mut(&mut bn_mean[l], c, w),
                    units_mut(&mut bn_var[l], c, w),
                    units_mut(&mut bn_inv[l], c, w),
                );
            }
        }
        if let Pass::Train { step, regs } = pass {
            if regs[c].drop > 0.0 {
                let out = block_mut(&mut acts[l], c, w, n);
                dropout(out, regs[c].drop, mask_seed(regs[c].mask_seed, step, l));
            }
        }
    }

    fn forward(
        &self,
        input: Input<'_, T>,
        labels: &[u8],
        ws: &mut Workspace<T>,
        stats: &mut [LossStat],
        pass: Pass<'_>,
    ) {
        let x = input.x;
        let n = x.ncols();
        assert!(n <= ws.cap && labels.len() == n && x.nrows() == self.widths[0]);
        if let Some(p) = input.packed {
            let d = x.nrows();
            assert!(
                p.dims() == ((d, n), (n, d)),
                "the packed batch's shape differs from the batch's"
            );
        }
        let layers = self.layers();
        let cfgs = self.configs;
        ws.trained = matches!(pass, Pass::Train { .. });
        for c in 0..cfgs {
            let (keep, smoothing) = match pass {
                Pass::Eval => (1.0, 0.0),
                Pass::Train { regs, .. } => {
                    let keep = if regs[c].drop > 0.0 {
                        dropout_threshold(regs[c].drop).1
                    } else {
                        1.0
                    };
                    (keep, regs[c].smoothing)
                }
            };
            ws.keep[c] = T::of(keep);
            ws.smoothing[c] = T::of(smoothing);
        }
        let mut timer = profile::start();
        // Layer 0: one stacked GEMM for every configuration.
        let w1 = self.widths[1];
        let out = ws.acts[0].slice_mut(s![.., ..n]);
        let w = self.weights[0].view();
        self.kernel.forward(w, input, &mut ws.scratch, out);
        profile::lap(&mut timer, Phase::ForwardGemm);
        for c in 0..cfgs {
            if layers > 1 {
                self.hidden_epilogue(0, c, n, ws, pass);
            } else {
                let out = block_mut(&mut ws.acts[0], c, w1, n);
                bias_activation(out, self.scale[c], self.bias(0, c), false);
            }
        }
        profile::lap(&mut timer, Phase::Activation);
        // Later layers: one GEMM per configuration.
        for l in 1..layers {
            let (w_in, w_out) = (self.widths[l], self.widths[l + 1]);
            for c in 0..cfgs {
                {
                    let (lo, hi) = ws.acts.split_at_mut(l);
                    let inp = block(&lo[l - 1], c, w_in, n);
                    let out = block_mut(&mut hi[0], c, w_out, n);
                    gemm(T::one(), self.weight(l, c), inp, T::zero(), out);
                }
                profile::lap(&mut timer, Phase::ForwardGemm);
                if l + 1 < layers {
                    self.hidden_epilogue(l, c, n, ws, pass);
                } else {
                    let out = block_mut(&mut ws.acts[l], c, w_out, n);
                    bias_activation(out, T::one(), self.bias(l, c), false);
                }
                profile::lap(&mut timer, Phase::Activation);
            }
        }
        let k = self.widths[layers];
        for (c, stat) in stats.iter_mut().enumerate().take(cfgs) {
            let scores = block_mut(&mut ws.acts[layers - 1], c, k, n);
            let (loss_sum, correct) =
                loss_forward(self.arch.loss, scores, labels, ws.smoothing[c].f64());
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
    pub fn backward_update<'a>(
        &mut self,
        x: impl Into<Input<'a, T>>,
        labels: &[u8],
        ws: &mut Workspace<T>,
        etas: &[T],
        lambdas: &[T],
    ) where
        T: 'a,
    {
        self.backward(x.into(), labels, ws, Backward::Update { etas, lambdas });
    }

    /// Plain gradients of the cost (mean loss + lambda_c * sum W^2) for every
    /// configuration on (x: d x n, labels), in the network's layout with scales
    /// folded, as a training pass without dropout or smoothing computes them
    /// (batch norm on the batch's statistics). Used by gradient checks and as the
    /// reference for the fused update.
    pub fn gradients(&self, x: ArrayView2<'_, T>, labels: &[u8], lambdas: &[T]) -> Net<T> {
        let regs = vec![StepRegs::default(); self.configs];
        self.gradients_train(x, labels, lambdas, 0, &regs)
    }

    /// [`Self::gradients`] of training step `step` with each configuration's
    /// dropout and label smoothing: the dropout masks are those of that step, so
    /// a gradient check that keeps `step` and the seeds holds the masks fixed.
    /// The gradients of gamma and beta land in the result's `gamma` and `beta`.
    pub fn gradients_train(
        &self,
        x: ArrayView2<'_, T>,
        labels: &[u8],
        lambdas: &[T],
        step: u64,
        regs: &[StepRegs],
    ) -> Net<T> {
        let mut ws = self.workspace(x.ncols());
        let mut stats = vec![LossStat::default(); self.configs];
        self.forward_train(x, labels, &mut ws, &mut stats, step, regs);
        let mut grads = Net::zeros(&self.arch, self.configs);
        // backward() takes &mut self for the update mode; gradients leave self unchanged.
        let mut me = self.clone();
        me.backward(
            x.into(),
            labels,
            &mut ws,
            Backward::Gradients {
                lambdas,
                grads: &mut grads,
            },
        );
        grads
    }

    /// Backward of hidden layer l's epilogue on configuration c, in place on its
    /// output gradient `ws.grads[l]`: ReLU and dropout, then batch norm (whose
    /// gamma and beta are updated, or their gradients written, here).
    fn hidden_backward(
        &mut self,
        l: usize,
        c: usize,
        n: usize,
        ws: &mut Workspace<T>,
        mode: &mut Backward<'_, T>,
    ) {
        let w = self.widths[l + 1];
        let Workspace {
            acts,
            grads,
            zhat,
            bn_mean,
            bn_var,
            bn_inv,
            d_gamma,
            d_beta,
            keep,
            ..
        } = ws;
        let h = block(&acts[l], c, w, n);
        relu_dropout_backward(block_mut(&mut grads[l], c, w, n), h, keep[c]);
        if !self.batch_norm() {
            return;
        }
        let dg = units_mut(&mut d_gamma[l], c, w);
        let db = units_mut(&mut d_beta[l], c, w);
        batch_norm_backward(
            block_mut(&mut grads[l], c, w, n),
            block(&zhat[l], c, w, n),
            units(&self.gamma[l], c, w),
            &units_mut(&mut bn_inv[l], c, w)[..],
            dg,
            db,
        );
        let inv_n = T::of(1.0 / n as f64);
        let (dg, db) = (units(&d_gamma[l], c, w), units(&d_beta[l], c, w));
        match mode {
            Backward::Update { etas, .. } => {
                let step = -etas[c] * inv_n;
                let (mean, var) = (units(&bn_mean[l], c, w), units(&bn_var[l], c, w));
                let a = T::of(BN_MOMENTUM);
                let b = T::one() - a;
                let [gamma, beta, run_mean, run_var] = self.norm_mut(l, c);
                for i in 0..w {
                    gamma[i] += step * dg[i];
                    beta[i] += step * db[i];
                    run_mean[i] = a * run_mean[i] + b * mean[i];
                    run_var[i] = a * run_var[i] + b * var[i];
                }
            }
            Backward::Gradients { grads: out, .. } => {
                let [gamma, beta, _, _] = out.norm_mut(l, c);
                for i in 0..w {
                    gamma[i] = dg[i] * inv_n;
                    beta[i] = db[i] * inv_n;
                }
            }
        }
    }

    /// SGD with momentum's step on configuration c's layer l, once its
    /// velocities hold the step's products ([`momentum_step`]).
    fn momentum_step(&mut self, l: usize, c: usize, eta: T, lambda: T) {
        let (w_in, w_out) = (self.widths[l], self.widths[l + 1]);
        let Net {
            weights,
            biases,
            optimizer,
            ..
        } = self;
        let w = config_block(&mut weights[l], l, c, w_in, w_out);
        let v = config_block(&mut optimizer.velocity[l], l, c, w_in, w_out);
        let b = units_mut(&mut biases[l], c, w_out);
        let vb = units_mut(&mut optimizer.velocity_b[l], c, w_out);
        momentum_step(w, v, b, vb, eta, lambda);
    }

    /// The backward pass over the batch of the last training forward pass:
    /// the output gradients, then layers L-1..1 one configuration at a time,
    /// then layer 0 for the whole group. `mode` says whether the gradients
    /// update the network or are written out. Allocates nothing.
    fn backward(
        &mut self,
        input: Input<'_, T>,
        labels: &[u8],
        ws: &mut Workspace<T>,
        mut mode: Backward<'_, T>,
    ) {
        let n = input.x.ncols();
        let layers = self.layers();
        assert!(
            ws.trained || !self.batch_norm(),
            "a batch-norm backward pass follows a training forward pass"
        );
        let k = self.widths[layers];
        let mut timer = profile::start();
        for c in 0..self.configs {
            loss_backward(
                self.arch.loss,
                block_mut(&mut ws.acts[layers - 1], c, k, n),
                labels,
                ws.smoothing[c],
            );
        }
        profile::lap(&mut timer, Phase::Update);
        for l in (1..layers).rev() {
            for c in 0..self.configs {
                self.layer_backward(l, c, n, ws, &mut mode, &mut timer);
                self.hidden_backward(l - 1, c, n, ws, &mut mode);
                profile::lap(&mut timer, Phase::Update);
            }
        }
        self.first_layer_backward(input, ws, mode, &mut timer);
    }

    /// Layer l >= 1 of configuration c, whose output gradient G (w_{l+1} x n)
    /// is final: the input gradient W^T G (w_l x n) into `ws.grads[l-1]`, then
    /// the weight step with the layer's input H before anything else changes.
    fn layer_backward(
        &mut self,
        l: usize,
        c: usize,
        n: usize,
        ws: &mut Workspace<T>,
        mode: &mut Backward<'_, T>,
        timer: &mut Option<std::time::Instant>,
    ) {
        let (w_in, w_out) = (self.widths[l], self.widths[l + 1]);
        let last = l == self.layers() - 1;
        {
            let (grads_lo, grads_hi) = ws.grads.split_at_mut(l);
            let g_buf = if last { &ws.acts[l] } else { &grads_hi[0] };
            let dh = block_mut(&mut grads_lo[l - 1], c, w_in, n);
            gemm(
                T::one(),
                self.weight(l, c).t(),
                block(g_buf, c, w_out, n),
                T::zero(),
                dh,
            );
        }
        profile::lap(timer, Phase::BackwardGemm);
        let g_buf = if last { &ws.acts[l] } else { &ws.grads[l] };
        let g = block(g_buf, c, w_out, n);
        let h = block(&ws.acts[l - 1], c, w_in, n);
        let step = mode.coefficients(c, n, &self.optimizer);
        match mode {
            Backward::Update { .. } if self.optimizer.has_momentum() => {
                let (v, _) = self.velocity_mut(l, c);
                gemm(step.alpha, g, h.t(), step.beta, v);
                profile::lap(timer, Phase::BackwardGemm);
                let (_, vb) = self.velocity_mut(l, c);
                bias_step(ArrayViewMut1::from(vb), step.alpha, g, step.bias_beta);
                self.momentum_step(l, c, step.eta, step.lambda);
            }
            Backward::Update { .. } => {
                gemm(step.alpha, g, h.t(), step.beta, self.weight_mut(l, c));
                profile::lap(timer, Phase::BackwardGemm);
                bias_step(self.bias_mut(l, c), step.alpha, g, step.bias_beta);
            }
            Backward::Gradients { grads, .. } => {
                let mut dw = grads.weight_mut(l, c);
                dw.assign(&self.weight(l, c));
                gemm(step.alpha, g, h.t(), step.beta, dw);
                bias_step(grads.bias_mut(l, c), step.alpha, g, step.bias_beta);
            }
        }
    }

    /// Layer 0 for every configuration at once, once its output gradient G
    /// ((C*w1) x n) is final: the bias steps, then one stacked weight product
    /// G X^T (in bf16 with f32 sums on a bf16 net). Plain SGD folds the decay
    /// into the scale s_c and scales G's block by -eta_c / (n s_c) so that the
    /// product adds onto V with beta = 1.
    fn first_layer_backward(
        &mut self,
        input: Input<'_, T>,
        ws: &mut Workspace<T>,
        mode: Backward<'_, T>,
        timer: &mut Option<std::time::Instant>,
    ) {
        let n = input.x.ncols();
        let w1 = self.widths[1];
        let Workspace {
            acts,
            grads,
            scratch,
            ..
        } = ws;
        let g0: &mut Array2<T> = if self.layers() == 1 {
            &mut acts[0]
        } else {
            &mut grads[0]
        };
        let two = T::of(2.0);
        match mode {
            Backward::Update { .. } if self.optimizer.has_momentum() => {
                for c in 0..self.configs {
                    let step = mode.coefficients(c, n, &self.optimizer);
                    let (_, vb) = self.velocity_mut(0, c);
                    let g = block(g0, c, w1, n);
                    bias_step(ArrayViewMut1::from(vb), step.alpha, g, step.bias_beta);
                }
                profile::lap(timer, Phase::Update);
                let step = mode.coefficients(0, n, &self.optimizer);
                let g = g0.slice(s![.., ..n]);
                let v = self.optimizer.velocity[0].view_mut();
                let (alpha, beta) = (step.alpha, step.beta);
                self.kernel
                    .weight_product(alpha, g, input, beta, v, scratch, false);
                profile::lap(timer, Phase::BackwardGemm);
                for c in 0..self.configs {
                    let step = mode.coefficients(c, n, &self.optimizer);
                    self.momentum_step(0, c, step.eta, step.lambda);
                }
                self.repack_bf16();
                profile::lap(timer, Phase::Update);
            }
            Backward::Update { .. } => {
                for c in 0..self.configs {
                    let step = mode.coefficients(c, n, &self.optimizer);
                    let g = block(g0, c, w1, n);
                    bias_step(self.bias_mut(0, c), step.alpha, g, step.bias_beta);
                    let s_new = self.scale[c] * step.beta;
                    self.scale[c] = s_new;
                    if s_new.abs().f64() < FOLD_BELOW || !s_new.is_finite() {
                        self.fold_scale(c);
                    }
                    scale_block(block_mut(g0, c, w1, n), step.alpha / self.scale[c]);
                }
                profile::lap(timer, Phase::Update);
                // bf16: the packed weights are re-packed as the product stores them.
                let (g, w) = (g0.slice(s![.., ..n]), self.weights[0].view_mut());
                let one = T::one();
                self.kernel
                    .weight_product(one, g, input, one, w, scratch, true);
                profile::lap(timer, Phase::BackwardGemm);
            }
            Backward::Gradients { lambdas, grads } => {
                let inv_n = T::of(1.0 / n as f64);
                for (c, &lambda) in lambdas.iter().enumerate().take(self.configs) {
                    let decay = two * lambda * self.scale[c];
                    grads
                        .weight_mut(0, c)
                        .zip_mut_with(&self.weight(0, c), |g, &w| *g = decay * w);
                    bias_step(grads.bias_mut(0, c), inv_n, block(g0, c, w1, n), T::zero());
                }
                let (g, dw) = (g0.slice(s![.., ..n]), grads.weights[0].view_mut());
                let one = T::one();
                self.kernel
                    .weight_product(inv_n, g, input, one, dw, scratch, false);
            }
        }
    }

    /// Cost, loss and accuracy of every configuration on a whole data set `x`
    /// (d x N, column-major), in chunks of the workspace's capacity; `out[c]` is
    /// configuration c's result with its own `lambdas[c]`.
    pub fn evaluate(
        &self,
        x: ArrayView2<'_, T>,
        labels: &[u8],
        lambdas: &[f64],
        ws: &mut Workspace<T>,
        out: &mut [Eval],
    ) {
        let mut totals = [LossStat::default(); MAX_GROUP];
        let mut j0 = 0;
        let total = x.ncols();
        while j0 < total {
            let m = ws.cap.min(total - j0);
            let chunk = x.slice(s![.., j0..j0 + m]);
            self.add_chunk(chunk, &labels[j0..j0 + m], ws, &mut totals);
            j0 += m;
        }
        self.finish_eval(&totals, lambdas, out);
    }

    /// [`Self::evaluate`] on the columns `cols` of `x` only (a fixed sample of a
    /// data set), gathered chunk by chunk into `gather` (d x at least the
    /// workspace's capacity, column-major): no copy of the data set, nothing allocated.
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate_columns(
        &self,
        x: ArrayView2<'_, T>,
        labels: &[u8],
        cols: &[usize],
        lambdas: &[f64],
        ws: &mut Workspace<T>,
        gather: &mut Array2<T>,
        chunk_labels: &mut [u8],
        out: &mut [Eval],
    ) {
        assert!(gather.nrows() == x.nrows() && gather.ncols() >= ws.cap);
        assert!(chunk_labels.len() >= ws.cap);
        let mut totals = [LossStat::default(); MAX_GROUP];
        for chunk in cols.chunks(ws.cap) {
            let m = chunk.len();
            for (k, &j) in chunk.iter().enumerate() {
                let dst = gather
                    .column_mut(k)
                    .into_slice()
                    .expect("contiguous column");
                dst.copy_from_slice(x.column(j).to_slice().expect("column-major data"));
                chunk_labels[k] = labels[j];
            }
            let xs = gather.slice(s![.., ..m]);
            self.add_chunk(xs, &chunk_labels[..m], ws, &mut totals);
        }
        self.finish_eval(&totals, lambdas, out);
    }

    fn add_chunk(
        &self,
        x: ArrayView2<'_, T>,
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
            totals[c].n += x.ncols();
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
    use crate::linalg::bf16;
    use crate::nn::Loss;

    fn toy(d: usize, n: usize, seed: u64) -> (Array2<f64>, Vec<u8>) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let normal = Normal::new(0.0, 1.0).unwrap();
        let x = (0..d * n).map(|_| normal.sample(&mut rng)).collect();
        let y = (0..n).map(|j| ((j * 7 + 3) % 10) as u8).collect();
        (Array2::from_shape_vec((d, n).f(), x).unwrap(), y)
    }

    fn arch(hidden: &[usize], loss: Loss) -> Arch {
        Arch {
            input: 12,
            hidden: hidden.to_vec(),
            classes: 10,
            loss,
            batch_norm: false,
        }
    }

    /// The fused update equals "compute the plain gradient, then W -= eta * grad".
    #[test]
    fn fused_update_equals_gradient_then_update() {
        for hidden in [&[][..], &[6][..], &[7, 5][..]] {
            for loss in [Loss::Ce, Loss::Bce] {
                let a = arch(hidden, loss);
                let (x, y) = toy(12, 9, 1);
                let mut net = Net::<f64>::init(&a, &[11, 12, 13]);
                net.scale = vec![0.7, 1.0, 1.3]; // non-trivial scales
                let etas = [0.1, 0.05, 0.2];
                let lambdas = [0.0, 0.1, 0.5];
                let grads = net.gradients(x.view(), &y, &lambdas);
                let mut want = net.clone();
                want.fold_scales();
                for l in 0..net.layers() {
                    for (c, &eta) in etas.iter().enumerate() {
                        want.weight_mut(l, c).scaled_add(-eta, &grads.weight(l, c));
                        want.bias_mut(l, c).scaled_add(-eta, &grads.bias(l, c));
                    }
                }
                let mut ws = net.workspace(9);
                let mut stats = [LossStat::default(); 3];
                net.forward_loss(x.view(), &y, &mut ws, &mut stats);
                net.backward_update(x.view(), &y, &mut ws, &etas, &lambdas);
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

    /// SGD with momentum equals "v <- mu v + gradient (L2 included), W <- W - eta v"
    /// on the plain gradients, step after step, for every configuration.
    #[test]
    fn momentum_update_equals_gradient_then_velocity() {
        for hidden in [&[][..], &[6][..], &[7, 5][..]] {
            let a = arch(hidden, Loss::Ce);
            let (x, y) = toy(12, 9, 1);
            let etas = [0.1, 0.05];
            let lambdas = [0.0, 0.1];
            let mu = 0.9;
            let mut net = Net::<f64>::init(&a, &[11, 12]);
            net.set_momentum(mu);
            let mut want = net.clone();
            let mut vel: Vec<Net<f64>> = vec![Net::zeros(&a, 2)];
            let mut ws = net.workspace(9);
            let mut stats = [LossStat::default(); 2];
            for _ in 0..3 {
                let grads = want.gradients(x.view(), &y, &lambdas);
                for l in 0..want.layers() {
                    for (c, &eta) in etas.iter().enumerate() {
                        let v = &mut vel[0];
                        let mut vw = v.weight_mut(l, c);
                        vw.mapv_inplace(|q| q * mu);
                        vw.scaled_add(1.0, &grads.weight(l, c));
                        let mut vb = v.bias_mut(l, c);
                        vb.mapv_inplace(|q| q * mu);
                        vb.scaled_add(1.0, &grads.bias(l, c));
                        want.weight_mut(l, c).scaled_add(-eta, &v.weight(l, c));
                        want.bias_mut(l, c).scaled_add(-eta, &v.bias(l, c));
                    }
                }
                net.forward_loss(x.view(), &y, &mut ws, &mut stats);
                net.backward_update(x.view(), &y, &mut ws, &etas, &lambdas);
            }
            assert_eq!(net.scale, vec![1.0, 1.0], "the scale stays folded");
            for l in 0..net.layers() {
                for (p, q) in net.weights[l].iter().zip(&want.weights[l]) {
                    assert!((p - q).abs() < 1e-12, "{hidden:?} layer {l}: {p} vs {q}");
                }
                for (p, q) in net.biases[l].iter().zip(&want.biases[l]) {
                    assert!((p - q).abs() < 1e-12, "{hidden:?} bias {l}: {p} vs {q}");
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
        let seeds = [5, 6, 7];
        let etas = [0.3, 0.1, 0.2];
        let lambdas = [0.4, 0.0, 0.05];
        let mut group = Net::<f64>::init(&a, &seeds);
        let mut ws = group.workspace(8);
        let mut st = [LossStat::default(); 3];
        for _ in 0..20 {
            group.forward_loss(x.view(), &y, &mut ws, &mut st);
            group.backward_update(x.view(), &y, &mut ws, &etas, &lambdas);
        }
        for c in 0..3 {
            let mut alone = Net::<f64>::init(&a, &seeds[c..c + 1]);
            let mut ws1 = alone.workspace(8);
            let mut st1 = [LossStat::default(); 1];
            for _ in 0..20 {
                alone.forward_loss(x.view(), &y, &mut ws1, &mut st1);
                alone.backward_update(x.view(), &y, &mut ws1, &etas[c..c + 1], &lambdas[c..c + 1]);
            }
            for (g, s) in group.params(c).iter().zip(alone.params(0)) {
                for (p, q) in g.w.iter().zip(&s.w) {
                    assert!((p - q).abs() < 1e-12, "config {c}");
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
        net.forward_loss(x.view(), &y, &mut ws, &mut st);
        let batch_probs = ws.output(5).to_owned();
        let mut total = 0.0;
        for j in 0..5 {
            let mut ws1 = net.workspace(1);
            let mut s1 = [LossStat::default()];
            net.forward_loss(x.slice(s![.., j..j + 1]), &y[j..j + 1], &mut ws1, &mut s1);
            total += s1[0].loss_sum;
            for k in 0..10 {
                assert!((ws1.output(1)[[k, 0]] - batch_probs[[k, j]]).abs() < 1e-14);
            }
        }
        assert!((total - st[0].loss_sum).abs() < 1e-12);
    }

    /// f32 and f64 passes agree to f32 precision.
    #[test]
    fn f32_matches_f64() {
        let a = arch(&[6], Loss::Ce);
        let (x, y) = toy(12, 7, 4);
        let x32 = x.mapv(|v| v as f32);
        let n64 = Net::<f64>::init(&a, &[9]);
        let n32 = Net::<f32>::init(&a, &[9]);
        let g64 = n64.gradients(x.view(), &y, &[0.1]);
        let g32 = n32.gradients(x32.view(), &y, &[0.1]);
        for l in 0..2 {
            for (p, q) in g64.weights[l].iter().zip(&g32.weights[l]) {
                assert!((p - *q as f64).abs() < 1e-5 * (1.0 + p.abs()), "{p} vs {q}");
            }
        }
    }

    /// The bf16 path's gradients (layer 0's products with bf16 operands and f32
    /// sums) against f64 ones: within bf16's accuracy (8 bits of mantissa, about
    /// 0.4% per operand), and measurably different from f32's, so the kernel ran.
    #[test]
    fn bf16_gradients_match_f64_to_bf16_accuracy() {
        if !bf16::available() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            let mut n = Net::<f32>::init(&arch(&[6], Loss::Ce), &[1]);
            let e = n.enable_bf16().unwrap_err().to_string();
            assert!(e.contains("AVX512-BF16"), "{e}");
            return;
        }
        let a = Arch {
            input: 256,
            ..arch(&[20, 8], Loss::Ce)
        };
        // The f64 reference sees the inputs and first-layer weights rounded to
        // bf16 as the kernel does, so that no ReLU flips on a rounding of its
        // input: what is left is the kernel's arithmetic and G's rounding.
        let round = |v: f64| bf16::from_bf16(bf16::to_bf16(v as f32)) as f64;
        let (x, y) = toy(256, 40, 5);
        let x = x.mapv(round);
        let x32 = x.mapv(|v| v as f32);
        let lambdas = [0.1, 0.001];
        let mut n64 = Net::<f64>::init(&a, &[9, 10]);
        n64.weights[0].mapv_inplace(round);
        let mut n32 = Net::<f32>::init(&a, &[9, 10]);
        n32.weights[0].mapv_inplace(|v| round(v as f64) as f32);
        let plain = n32.gradients(x32.view(), &y, &[0.1, 0.001]);
        n32.enable_bf16().unwrap();
        assert!(n32.uses_bf16());
        let g64 = n64.gradients(x.view(), &y, &lambdas);
        let g16 = n32.gradients(x32.view(), &y, &[0.1, 0.001]);
        let rel = |g: &Net<f32>, l: usize| {
            let num: f64 = g.weights[l]
                .iter()
                .zip(&g64.weights[l])
                .map(|(p, q)| (*p as f64 - q).powi(2))
                .sum();
            let den: f64 = g64.weights[l].iter().map(|q| q * q).sum();
            (num / den).sqrt()
        };
        for l in 0..3 {
            let (e16, e32) = (rel(&g16, l), rel(&plain, l));
            assert!(e16 < 1e-2, "layer {l}: bf16 relative error {e16}");
            assert!(e32 < 1e-5, "layer {l}: f32 relative error {e32}");
            if l == 0 {
                assert!(e16 > 1e-4, "layer 0 ran in bf16: {e16} (f32: {e32})");
            }
            eprintln!("layer {l}: relative error bf16 {e16:.2e}, f32 {e32:.2e}");
        }
        for (p, q) in g16.biases[0].iter().zip(&g64.biases[0]) {
            assert!(
                (*p as f64 - q).abs() < 1e-2 * (1e-3 + q.abs()),
                "{p} vs {q}"
            );
        }
    }

    /// Toy images of bytes: (x f64, x f32, the statistics that map them
    /// back to their bytes), d x n, standardised as the data sets are.
    fn byte_images(
        d: usize,
        n: usize,
        seed: u64,
    ) -> (Array2<f64>, Array2<f32>, crate::linalg::int16::Pixels) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let pixels: Vec<u8> = (0..d * n)
            .map(|_| rand::RngExt::random_range(&mut rng, 0..=255u8))
            .collect();
        let (mean, std) = crate::data::split::feature_stats(&pixels, d);
        let x64 = crate::data::split::standardise::<f64>(&pixels, d, &mean, &std);
        let x32 = crate::data::split::standardise::<f32>(&pixels, d, &mean, &std);
        (
            Array2::from_shape_vec((d, n).f(), x64).unwrap(),
            Array2::from_shape_vec((d, n).f(), x32).unwrap(),
            crate::linalg::int16::Pixels::new(&mean, &std),
        )
    }

    /// The int16 path's gradients (layer 0's products as 16-bit integer
    /// products of the bytes, W and G quantised per row) against f64 ones:
    /// within what 16 bits allow, and measurably not f32's, so the kernel ran.
    #[test]
    fn int16_gradients_match_f64_to_16_bits() {
        if crate::linalg::int16::isa().is_none() {
            eprintln!("skipped: this CPU has no AVX2");
            let mut n = Net::<f32>::init(&arch(&[6], Loss::Ce), &[1]);
            let px = crate::linalg::int16::Pixels::new(&[0.5; 12], &[0.2; 12]);
            let e = n.enable_int16(px).unwrap_err().to_string();
            assert!(e.contains("AVX2"), "{e}");
            return;
        }
        let a = Arch {
            input: 256,
            ..arch(&[20, 8], Loss::Ce)
        };
        let (x, x32, pixels) = byte_images(256, 40, 5);
        let y: Vec<u8> = (0..40).map(|j| ((j * 7 + 3) % 10) as u8).collect();
        let lambdas = [0.1, 0.001];
        let n64 = Net::<f64>::init(&a, &[9, 10]);
        let mut n32 = Net::<f32>::init(&a, &[9, 10]);
        let plain = n32.gradients(x32.view(), &y, &[0.1, 0.001]);
        n32.enable_int16(pixels).unwrap();
        assert_eq!(n32.layer0_kernel(), "int16");
        let g64 = n64.gradients(x.view(), &y, &lambdas);
        let g16 = n32.gradients(x32.view(), &y, &[0.1, 0.001]);
        let rel = |g: &Net<f32>, l: usize| {
            let num: f64 = g.weights[l]
                .iter()
                .zip(&g64.weights[l])
                .map(|(p, q)| (*p as f64 - q).powi(2))
                .sum();
            let den: f64 = g64.weights[l].iter().map(|q| q * q).sum();
            (num / den).sqrt()
        };
        for l in 0..3 {
            let (e16, e32) = (rel(&g16, l), rel(&plain, l));
            eprintln!("layer {l}: relative error int16 {e16:.2e}, f32 {e32:.2e}");
            assert!(e16 < 1e-4, "layer {l}: int16 relative error {e16}");
            assert!(e32 < 1e-5, "layer {l}: f32 relative error {e32}");
            if l == 0 {
                assert!(e16 > 2.0 * e32, "layer 0 ran in int16: {e16} (f32: {e32})");
            }
        }
        for (p, q) in g16.biases[0].iter().zip(&g64.biases[0]) {
            assert!(
                (*p as f64 - q).abs() < 1e-3 * (1e-3 + q.abs()),
                "{p} vs {q}"
            );
        }
    }

    /// Steps on batches of an int16 [`crate::linalg::int16::PackedSet`]
    /// (converted once) compute the same bits as steps that convert each
    /// batch, with and without momentum; and after every step the kernel's
    /// quantised weights are what quantising them afresh gives.
    #[test]
    fn int16_steps_on_a_packed_set_equal_steps_that_convert_each_batch() {
        if crate::linalg::int16::isa().is_none() {
            eprintln!("skipped: this CPU has no AVX2");
            return;
        }
        let a = Arch {
            input: 256,
            ..arch(&[40], Loss::Ce)
        };
        let (_, x, pixels) = byte_images(256, 60, 6);
        let y: Vec<u8> = (0..60).map(|j| ((j * 7 + 3) % 10) as u8).collect();
        let set = crate::linalg::int16::PackedSet::new(x.view(), &pixels).unwrap();
        let (etas, lambdas) = ([0.05f32, 0.02], [0.01f32, 0.1]);
        for mu in [0.0, 0.9] {
            let mut nets: Vec<Net<f32>> = (0..2)
                .map(|_| {
                    let mut n = Net::<f32>::init(&a, &[3, 4]);
                    n.set_momentum(mu);
                    n.enable_int16(pixels.clone()).unwrap();
                    n
                })
                .collect();
            let mut ws: Vec<Workspace<f32>> = nets.iter().map(|n| n.workspace(20)).collect();
            for step in 0..6 {
                let j0 = (step % 3) * 20;
                let cols = x.slice(s![.., j0..j0 + 20]);
                let labels = &y[j0..j0 + 20];
                let mut stats = [[LossStat::default(); 2]; 2];
                let inputs = [
                    Input::from(cols),
                    Input {
                        x: cols,
                        packed: set.batch(j0, 20).map(crate::nn::kernel::Packed::Int16),
                    },
                ];
                for (k, input) in inputs.into_iter().enumerate() {
                    let regs = [StepRegs::default(); 2];
                    nets[k].forward_train(
                        input,
                        labels,
                        &mut ws[k],
                        &mut stats[k],
                        step as u64,
                        &regs,
                    );
                    nets[k].backward_update(input, labels, &mut ws[k], &etas, &lambdas);
                }
                assert_eq!(stats[0], stats[1], "step {step}, momentum {mu}");
                let bits =
                    |n: &Net<f32>| n.weights[0].iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&nets[0]), bits(&nets[1]), "step {step}, momentum {mu}");
                let mut fresh = nets[1].clone();
                fresh.enable_int16(pixels.clone()).unwrap();
                let mut outs = Vec::new();
                for net in [&nets[1], &fresh] {
                    let mut w = net.workspace(20);
                    net.forward_loss(cols, labels, &mut w, &mut stats[0]);
                    outs.push(w.output(20).mapv(f32::to_bits));
                }
                assert_eq!(outs[0], outs[1], "step {step}, momentum {mu}");
            }
        }
    }

    /// Steps on batches of a [`bf16::PackedSet`] (converted once) compute the
    /// same bits as steps that pack each batch, with and without momentum; and
    /// after every step the packed weights are the weights rounded to bf16.
    /// A workspace made before the net turned to bf16 gets the kernel's
    /// buffers on first use, and larger ones for a larger batch: the same
    /// outputs as a workspace made after.
    #[test]
    fn a_workspace_made_before_bf16_serves_batches_of_any_size() {
        if !bf16::available() {
            return;
        }
        let (x, y) = toy(12, 40, 3);
        let x = x.mapv(|v| v as f32);
        let mut net = Net::<f32>::init(&arch(&[20], Loss::Ce), &[1]);
        let mut early = net.workspace(40);
        net.enable_bf16().unwrap();
        let mut stats = [LossStat::default()];
        for n in [10, 40] {
            let cols = x.slice(s![.., ..n]);
            net.forward_loss(cols, &y[..n], &mut early, &mut stats);
            let mut fresh = net.workspace(40);
            net.forward_loss(cols, &y[..n], &mut fresh, &mut stats);
            assert_eq!(early.output(n), fresh.output(n), "batch of {n}");
        }
    }

    #[test]
    fn bf16_steps_on_a_packed_set_equal_steps_that_pack_each_batch() {
        if !bf16::available() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        let a = Arch {
            input: 256,
            ..arch(&[40], Loss::Ce)
        };
        let (x, y) = toy(256, 60, 6);
        let x = x.mapv(|v| v as f32);
        let set = bf16::PackedSet::new(x.view());
        let (etas, lambdas) = ([0.05f32, 0.02], [0.01f32, 0.1]);
        for mu in [0.0, 0.9] {
            let mut nets: Vec<Net<f32>> = (0..2)
                .map(|_| {
                    let mut n = Net::<f32>::init(&a, &[3, 4]);
                    n.set_momentum(mu);
                    n.enable_bf16().unwrap();
                    n
                })
                .collect();
            let mut ws: Vec<Workspace<f32>> = nets.iter().map(|n| n.workspace(20)).collect();
            for step in 0..6 {
                let j0 = (step % 3) * 20;
                let cols = x.slice(s![.., j0..j0 + 20]);
                let labels = &y[j0..j0 + 20];
                let mut stats = [[LossStat::default(); 2]; 2];
                let inputs = [
                    Input::from(cols),
                    Input {
                        x: cols,
                        packed: set.batch(j0, 20).map(crate::nn::kernel::Packed::Bf16),
                    },
                ];
                for (k, input) in inputs.into_iter().enumerate() {
                    let regs = [StepRegs::default(); 2];
                    nets[k].forward_train(
                        input,
                        labels,
                        &mut ws[k],
                        &mut stats[k],
                        step as u64,
                        &regs,
                    );
                    nets[k].backward_update(input, labels, &mut ws[k], &etas, &lambdas);
                }
                assert_eq!(stats[0], stats[1], "step {step}, momentum {mu}");
                let bits =
                    |n: &Net<f32>| n.weights[0].iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&nets[0]), bits(&nets[1]), "step {step}, momentum {mu}");
                // The kernel's bf16 copy of the weights, kept up to date as the
                // product stores them, computes what a fresh packing does.
                let mut fresh = nets[1].clone();
                fresh.enable_bf16().unwrap();
                let mut outs = Vec::new();
                for net in [&nets[1], &fresh] {
                    let mut w = net.workspace(20);
                    net.forward_loss(cols, labels, &mut w, &mut stats[0]);
                    outs.push(w.output(20).mapv(f32::to_bits));
                }
                assert_eq!(outs[0], outs[1], "step {step}, momentum {mu}");
            }
        }
    }
}
