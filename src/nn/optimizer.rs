//! The optimizer of a stacked network, apart from its parameters: plain SGD
//! or SGD with momentum, and each kind of weight step as the coefficients of
//! the one fused GEMM that performs it.

use ndarray::{Array1, Array2, ArrayViewMut2, ShapeBuilder};

use crate::linalg::Real;

/// SGD, with momentum mu when `momentum` > 0: v <- mu v + dJ/dW (the L2
/// term included), W <- W - eta v, the same for the biases.
///
/// - `velocity[l]`: layer l's weight velocities, the layout of the network's
///   `weights[l]` (configuration c's block where its weights are).
/// - `velocity_b[l]`: the biases' velocities, the layout of `biases[l]`.
///
/// Both are empty for plain SGD, which needs no state.
#[derive(Clone, Debug)]
pub struct Sgd<T> {
    /// Momentum mu, shared by the group (0: plain SGD).
    pub momentum: T,
    /// Velocities of the weights (empty without momentum).
    pub velocity: Vec<Array2<T>>,
    /// Velocities of the biases (empty without momentum).
    pub velocity_b: Vec<Array1<T>>,
}

impl<T: Real> Sgd<T> {
    /// Plain SGD: no state.
    pub fn plain() -> Self {
        Sgd {
            momentum: T::zero(),
            velocity: Vec::new(),
            velocity_b: Vec::new(),
        }
    }

    /// SGD with momentum `mu` for parameters shaped as `weights` and
    /// `biases`, velocities zero (plain SGD for mu <= 0).
    pub fn with_momentum(mu: f64, weights: &[Array2<T>], biases: &[Array1<T>]) -> Self {
        if mu <= 0.0 {
            return Self::plain();
        }
        Sgd {
            momentum: T::of(mu),
            velocity: weights
                .iter()
                .map(|w| Array2::zeros(w.raw_dim().f()))
                .collect(),
            velocity_b: biases.iter().map(|b| Array1::zeros(b.len())).collect(),
        }
    }

    /// Whether the steps carry velocities.
    pub fn has_momentum(&self) -> bool {
        self.momentum > T::zero()
    }
}

/// One configuration's weight step as GEMM coefficients: the target (the
/// weights, their velocity, or the gradient) becomes alpha G H^T + beta target,
/// and its bias alpha sum_j G[:, j] + bias_beta bias, for a layer with output
/// gradient G and input H over a batch of n. The one place the three kinds of
/// step differ:
///
/// | step              | target    | alpha        | beta              | bias_beta |
/// |-------------------|-----------|--------------|-------------------|-----------|
/// | SGD               | W         | -eta / n     | 1 - 2 eta lambda  | 1         |
/// | SGD with momentum | velocity  | 1 / n        | mu                | mu        |
/// | gradients         | W (copy)  | 1 / n        | 2 lambda          | 0         |
///
/// With momentum, [`momentum_step`] then moves W and b along the velocities.
#[derive(Clone, Copy, Debug)]
pub struct Coefficients<T> {
    /// Factor of G H^T (and of G's row sums for the bias).
    pub alpha: T,
    /// Factor of the target's old value.
    pub beta: T,
    /// Factor of the bias target's old value.
    pub bias_beta: T,
    /// The step's learning rate (the momentum step's own pass).
    pub eta: T,
    /// The step's L2 penalty (the momentum step's own pass).
    pub lambda: T,
}

impl<T: Real> Coefficients<T> {
    /// A step of `sgd` with learning rate `eta` and L2 penalty `lambda`.
    pub fn step(sgd: &Sgd<T>, eta: T, lambda: T, n: usize) -> Self {
        let inv_n = T::of(1.0 / n as f64);
        if sgd.has_momentum() {
            let mu = sgd.momentum;
            return Coefficients {
                alpha: inv_n,
                beta: mu,
                bias_beta: mu,
                eta,
                lambda,
            };
        }
        Coefficients {
            alpha: -eta * inv_n,
            beta: T::one() - T::of(2.0) * eta * lambda,
            bias_beta: T::one(),
            eta,
            lambda,
        }
    }

    /// The gradient of the cost with L2 penalty `lambda`, written over a copy
    /// of W (gradient checks, and the reference of the fused steps).
    pub fn gradient(lambda: T, n: usize) -> Self {
        Coefficients {
            alpha: T::of(1.0 / n as f64),
            beta: T::of(2.0) * lambda,
            bias_beta: T::zero(),
            eta: T::zero(),
            lambda,
        }
    }
}

/// The step of SGD with momentum on one block of weights `w` and biases `b`,
/// once their velocities `v` and `vb` hold mu v + dL/dW (the GEMM's beta) and
/// mu v_b + dL/db: adds the L2 term 2 lambda W to v, then W <- W - eta v and
/// b <- b - eta v_b, in one pass over each. Allocates nothing.
pub fn momentum_step<T: Real>(
    mut w: ArrayViewMut2<'_, T>,
    mut v: ArrayViewMut2<'_, T>,
    b: &mut [T],
    vb: &[T],
    eta: T,
    lambda: T,
) {
    let decay = T::of(2.0) * lambda;
    ndarray::Zip::from(&mut w).and(&mut v).for_each(|w, v| {
        *v += decay * *w;
        *w -= eta * *v;
    });
    for (b, v) in b.iter_mut().zip(vb) {
        *b -= eta * *v;
    }
}
