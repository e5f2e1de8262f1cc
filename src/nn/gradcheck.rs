//! Gradient checks: analytic gradients (f64) against finite differences of the
//! cost, for every parameter of a network.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use ndarray::{s, Array2, ArrayView2, ShapeBuilder};

use super::net::{LossStat, Net, StepRegs, Workspace};

/// Finite-difference scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// (J(p + h) - J(p)) / h: error O(h).
    Forward,
    /// (J(p + h) - J(p - h)) / 2h: error O(h^2).
    #[default]
    Centred,
}

/// Result of checking one parameter tensor.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ParamCheck {
    /// Parameter name: `W`, `b` for the linear model, `W1`, `b1`, `W2`, ... otherwise.
    pub param: String,
    /// Shape [rows, cols] (a bias is [w, 1]).
    pub shape: [usize; 2],
    /// max over entries of |g_a - g_n|.
    pub max_abs_err: f64,
    /// max over entries of |g_a - g_n| / max(eps, |g_a| + |g_n|), see [`REL_EPS`].
    pub max_rel_err: f64,
    /// Largest |g_a| (to judge the scale of the errors).
    pub max_abs_grad: f64,
    /// Whether max_rel_err <= tolerance.
    pub passed: bool,
}

/// Default floor of the relative error's denominator, max(eps, |g_a| + |g_n|).
///
/// In f64 with h = 1e-5 the finite differences carry an absolute error of about
/// 1e-10 (roundoff of the cost over 2h plus the h^2 truncation term), so entries
/// whose true gradient is near zero (dead ReLU paths, rare pixels) would report a
/// relative error of ~1e-5 that says nothing about the backward pass. A floor of
/// 1e-4 judges such entries by their absolute error instead (1e-10 / 1e-4 = 1e-6).
pub const REL_EPS: f64 = 1e-4;

/// Which parameter tensor of a layer is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Weights W.
    Weight,
    /// Biases b.
    Bias,
    /// Batch-norm scale gamma (hidden layers with batch norm).
    Gamma,
    /// Batch-norm shift beta.
    Beta,
}

impl Kind {
    fn tensor(self, net: &Net<f64>, l: usize) -> &[f64] {
        match self {
            Kind::Weight => net.weights[l].as_slice_memory_order(),
            Kind::Bias => net.biases[l].as_slice(),
            Kind::Gamma => net.gamma[l].as_slice(),
            Kind::Beta => net.beta[l].as_slice(),
        }
        .expect("contiguous parameters")
    }

    fn tensor_mut(self, net: &mut Net<f64>, l: usize) -> &mut [f64] {
        match self {
            Kind::Weight => net.weights[l].as_slice_memory_order_mut(),
            Kind::Bias => net.biases[l].as_slice_mut(),
            Kind::Gamma => net.gamma[l].as_slice_mut(),
            Kind::Beta => net.beta[l].as_slice_mut(),
        }
        .expect("contiguous parameters")
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Weight => "W",
            Kind::Bias => "b",
            Kind::Gamma => "gamma",
            Kind::Beta => "beta",
        }
    }
}

/// Seed of the dropout masks of a gradient check: fixed, so the mask is the
/// same in the analytic pass and in every finite difference.
const CHECK_MASK_SEED: u64 = 0x6d61_736b;

/// The training-pass regularisers a check uses.
fn check_regs(s: &Settings) -> [StepRegs; 1] {
    [StepRegs {
        drop: s.dropout,
        smoothing: s.smoothing,
        mask_seed: CHECK_MASK_SEED,
    }]
}

/// Mean loss of configuration 0 of `net` on (x, labels) in a training pass with
/// `regs` (the same dropout mask at every call; batch norm on the batch's
/// statistics); the cost adds lambda * sum W^2.
pub fn mean_loss(
    net: &Net<f64>,
    x: ArrayView2<'_, f64>,
    labels: &[u8],
    ws: &mut Workspace<f64>,
    regs: &[StepRegs],
) -> f64 {
    let mut st = [LossStat::default()];
    net.forward_train(x, labels, ws, &mut st, 0, regs);
    st[0].loss_sum / x.ncols() as f64
}

/// How finite differences are taken and judged.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// L2 penalty of the cost.
    pub lambda: f64,
    /// Difference scheme.
    pub method: Method,
    /// Finite step.
    pub h: f64,
    /// Floor of the relative error's denominator.
    pub eps: f64,
    /// Largest accepted relative error.
    pub tol: f64,
    /// Dropout probability of hidden units, with one fixed mask.
    #[serde(default)]
    pub dropout: f64,
    /// Label smoothing of the cross-entropy targets.
    #[serde(default)]
    pub smoothing: f64,
}

/// Checks every parameter of the single-configuration network `net` on
/// (x: d x n, labels) with the finite differences of `s`.
pub fn check(
    net: &Net<f64>,
    x: ArrayView2<'_, f64>,
    labels: &[u8],
    s: Settings,
) -> Vec<ParamCheck> {
    let regs = check_regs(&s);
    let Settings {
        lambda,
        method,
        h,
        eps,
        tol,
        ..
    } = s;
    assert_eq!(net.configs, 1, "gradient checks run on one configuration");
    let mut net = net.clone();
    net.fold_scales();
    let analytic = net.gradients_train(x, labels, &[lambda], 0, &regs);
    let mut ws = net.workspace(x.ncols());
    let base = mean_loss(&net, x, labels, &mut ws, &regs);
    let layers = net.layers();
    let mut out = Vec::new();
    for l in 0..layers {
        let kinds: &[Kind] = if l < net.gamma.len() {
            &[Kind::Weight, Kind::Bias, Kind::Gamma, Kind::Beta]
        } else {
            &[Kind::Weight, Kind::Bias]
        };
        for &kind in kinds {
            let is_weight = kind == Kind::Weight;
            let len = kind.tensor(&net, l).len();
            // Entries are checked in parallel chunks, each on its own copy of the network.
            let chunk = len.div_ceil(4 * rayon::current_num_threads()).max(1);
            let net_ref = &net;
            let analytic_ref = &analytic;
            let (max_abs, max_rel, max_grad) = (0..len.div_ceil(chunk))
                .into_par_iter()
                .map(|ci| {
                    let mut net = net_ref.clone();
                    let mut ws = net.workspace(x.ncols());
                    let (mut max_abs, mut max_rel, mut max_grad) = (0.0f64, 0.0f64, 0.0f64);
                    for idx in ci * chunk..len.min((ci + 1) * chunk) {
                        let ga = kind.tensor(analytic_ref, l)[idx];
                        let orig = kind.tensor(&net, l)[idx];
                        // J(p) = L(p) + lambda * (sum of squared weights). Differences of J are
                        // formed as (L(p+) - L(p-)) + lambda * (p+^2 - p-^2): the same finite
                        // difference, without adding the large penalty to L before subtracting
                        // (which costs digits).
                        let penalty = |q: f64| if is_weight { lambda * q * q } else { 0.0 };
                        kind.tensor_mut(&mut net, l)[idx] = orig + h;
                        let plus = mean_loss(&net, x, labels, &mut ws, &regs);
                        let gn = match method {
                            Method::Forward => {
                                ((plus - base) + (penalty(orig + h) - penalty(orig))) / h
                            }
                            Method::Centred => {
                                kind.tensor_mut(&mut net, l)[idx] = orig - h;
                                let minus = mean_loss(&net, x, labels, &mut ws, &regs);
                                ((plus - minus) + (penalty(orig + h) - penalty(orig - h)))
                                    / (2.0 * h)
                            }
                        };
                        kind.tensor_mut(&mut net, l)[idx] = orig;
                        let abs = (ga - gn).abs();
                        max_abs = max_abs.max(abs);
                        max_rel = max_rel.max(abs / eps.max(ga.abs() + gn.abs()));
                        max_grad = max_grad.max(ga.abs());
                    }
                    (max_abs, max_rel, max_grad)
                })
                .reduce(
                    || (0.0, 0.0, 0.0),
                    |a, b| (a.0.max(b.0), a.1.max(b.1), a.2.max(b.2)),
                );
            let name = if layers == 1 {
                kind.name().to_string()
            } else {
                format!("{}{}", kind.name(), l + 1)
            };
            let shape = if is_weight {
                [net.widths[l + 1], net.widths[l]]
            } else {
                [net.widths[l + 1], 1]
            };
            out.push(ParamCheck {
                param: name,
                shape,
                max_abs_err: max_abs,
                max_rel_err: max_rel,
                max_abs_grad: max_grad,
                passed: max_rel <= tol,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Arch, Loss};
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    fn data(d: usize, n: usize) -> (Array2<f64>, Vec<u8>) {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(42);
        let normal = Normal::new(0.0, 1.0).unwrap();
        let x: Vec<f64> = (0..d * n).map(|_| normal.sample(&mut rng)).collect();
        (
            Array2::from_shape_vec((d, n).f(), x).unwrap(),
            (0..n).map(|j| (j % 10) as u8).collect(),
        )
    }

    fn settings(lambda: f64, method: Method, h: f64) -> Settings {
        Settings {
            lambda,
            method,
            h,
            eps: REL_EPS,
            tol: 1e-6,
            dropout: 0.0,
            smoothing: 0.0,
        }
    }

    fn run(hidden: &[usize], loss: Loss, lambda: f64) -> Vec<ParamCheck> {
        let arch = Arch {
            input: 20,
            hidden: hidden.to_vec(),
            classes: 10,
            loss,
            batch_norm: false,
        };
        let (x, y) = data(20, 30);
        let net = Net::<f64>::init(&arch, &[3]);
        check(&net, x.view(), &y, settings(lambda, Method::Centred, 1e-5))
    }

    #[test]
    fn every_network_and_loss_passes_at_lambda_0_and_0_1() {
        for hidden in [&[][..], &[8][..], &[8, 6][..]] {
            for loss in [Loss::Ce, Loss::Bce] {
                for lambda in [0.0, 0.1] {
                    let checks = run(hidden, loss, lambda);
                    assert_eq!(checks.len(), 2 * (hidden.len() + 1));
                    for c in &checks {
                        assert!(c.passed, "{hidden:?} {loss:?} lambda {lambda}: {c:?}");
                        assert!(c.max_abs_grad > 0.0);
                    }
                }
            }
        }
    }

    /// Batch norm (gamma and beta included), dropout with a fixed mask and label
    /// smoothing, alone and together, on one and two hidden layers.
    #[test]
    fn batch_norm_dropout_and_smoothing_pass() {
        let (x, y) = data(20, 30);
        for hidden in [&[8][..], &[8, 6][..]] {
            for (batch_norm, dropout, smoothing) in [
                (true, 0.0, 0.0),
                (false, 0.3, 0.0),
                (false, 0.0, 0.1),
                (true, 0.25, 0.1),
            ] {
                let arch = Arch {
                    input: 20,
                    hidden: hidden.to_vec(),
                    classes: 10,
                    loss: Loss::Ce,
                    batch_norm,
                };
                let mut net = Net::<f64>::init(&arch, &[5]);
                // Biases away from 0: with dropout, a sample whose hidden units are all
                // dropped or off has scores equal to the next bias, and a zero bias sits
                // on ReLU's kink, where finite differences see half the slope.
                for b in &mut net.biases {
                    b.fill(0.05);
                }
                let s = Settings {
                    dropout,
                    smoothing,
                    ..settings(0.1, Method::Centred, 1e-5)
                };
                let checks = check(&net, x.view(), &y, s);
                let per_layer = if batch_norm { 4 } else { 2 };
                assert_eq!(checks.len(), per_layer * hidden.len() + 2);
                for c in &checks {
                    assert!(
                        c.passed,
                        "{hidden:?} bn {batch_norm} p {dropout} eps {smoothing}: {c:?}"
                    );
                }
                if batch_norm {
                    assert!(checks
                        .iter()
                        .any(|c| c.param == "gamma1" && c.max_abs_grad > 1e-3));
                }
            }
        }
    }

    /// The dropout mask matters: gradients taken with one mask do not match finite
    /// differences taken with another (so the check above does hold the mask fixed).
    #[test]
    fn a_different_dropout_mask_fails() {
        let (x, y) = data(20, 30);
        let arch = Arch {
            input: 20,
            hidden: vec![8],
            classes: 10,
            loss: Loss::Ce,
            batch_norm: false,
        };
        let net = Net::<f64>::init(&arch, &[5]);
        let regs = |seed| {
            [StepRegs {
                drop: 0.3,
                smoothing: 0.0,
                mask_seed: seed,
            }]
        };
        let a = net.gradients_train(x.view(), &y, &[0.0], 0, &regs(1));
        let b = net.gradients_train(x.view(), &y, &[0.0], 0, &regs(2));
        let c = net.gradients_train(x.view(), &y, &[0.0], 0, &regs(1));
        assert_eq!(
            a.weights[0], c.weights[0],
            "the same seed gives the same mask"
        );
        let diff = (&a.weights[0] - &b.weights[0]).mapv(f64::abs).sum();
        assert!(diff > 1e-3, "another seed gives another mask ({diff})");
    }

    /// A wrong backward pass is caught: break the L2 term by checking against a
    /// different lambda than the analytic gradient used.
    #[test]
    fn a_wrong_gradient_fails() {
        let arch = Arch {
            input: 20,
            hidden: vec![8],
            classes: 10,
            loss: Loss::Ce,
            batch_norm: false,
        };
        let (x, y) = data(20, 30);
        let mut net = Net::<f64>::init(&arch, &[3]);
        let x = x.view();
        let good = check(&net, x, &y, settings(0.1, Method::Centred, 1e-5));
        assert!(good.iter().all(|c| c.passed));
        // Scale the second layer's weights: analytic and numeric both change, still agree.
        net.weights[1].iter_mut().for_each(|v| *v *= 3.0);
        assert!(check(&net, x, &y, settings(0.1, Method::Centred, 1e-5))
            .iter()
            .all(|c| c.passed));
        // Forward differences are less accurate: with a big step they fail the strict tolerance.
        let coarse = check(&net, x, &y, settings(0.1, Method::Forward, 1e-2));
        assert!(coarse.iter().any(|c| !c.passed));
    }
}

/// Options of `shallow gradcheck`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Options {
    /// Hidden widths (empty: linear model).
    pub hidden: Vec<usize>,
    /// Output loss.
    pub loss: super::loss::Loss,
    /// L2 penalty.
    pub lambda: f64,
    /// Difference scheme.
    pub method: Method,
    /// Finite step.
    pub h: f64,
    /// Floor of the relative error's denominator.
    pub eps: f64,
    /// Largest accepted relative error.
    pub tol: f64,
    /// (features, samples) subsets to check on.
    pub subsets: Vec<(usize, usize)>,
    /// Seed of the initial weights.
    pub seed: u64,
    /// Batch normalisation on the hidden layers (its gamma and beta are checked too).
    #[serde(default)]
    pub batch_norm: bool,
    /// Dropout probability, with one fixed mask.
    #[serde(default)]
    pub dropout: f64,
    /// Label smoothing.
    #[serde(default)]
    pub smoothing: f64,
}

impl Options {
    /// The finite-difference settings of these options.
    pub fn settings(&self) -> Settings {
        Settings {
            lambda: self.lambda,
            method: self.method,
            h: self.h,
            eps: self.eps,
            tol: self.tol,
            dropout: self.dropout,
            smoothing: self.smoothing,
        }
    }
}

/// All checks of one `shallow gradcheck` call.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// One entry per parameter per subset.
    pub checks: Vec<SubsetCheck>,
    /// Whether every check passed.
    pub passed: bool,
    /// `"CIFAR-10 data_batch_1"` or `"generated"`.
    pub data: String,
    /// The options used.
    pub options: Options,
}

/// A parameter check on a data subset.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubsetCheck {
    /// The parameter's figures.
    #[serde(flatten)]
    pub check: ParamCheck,
    /// Features used (the first `dims` of each image's d).
    pub dims: usize,
    /// Images used.
    pub samples: usize,
}

/// Runs the checks of `opts` on the first images of `source` (d x N standardised
/// features with labels), or on generated data when `source` is `None`, for
/// CIFAR-10's 10 classes.
pub fn run(opts: &Options, source: Option<(&crate::data::DataSet<f64>, String)>) -> Report {
    run_on(opts, source, 10)
}

/// [`run`] for a network of `classes` outputs (the data's class count).
pub fn run_on(
    opts: &Options,
    source: Option<(&crate::data::DataSet<f64>, String)>,
    classes: usize,
) -> Report {
    let mut checks = Vec::new();
    let data_name = source
        .as_ref()
        .map(|s| s.1.clone())
        .unwrap_or_else(|| "generated".to_string());
    for &(dims, samples) in &opts.subsets {
        let (x, y) = match &source {
            Some((set, _)) => {
                let x = set.x.slice(s![..dims, ..samples]).to_owned();
                (x, set.labels[..samples].to_vec())
            }
            None => {
                use rand::SeedableRng;
                use rand_distr::{Distribution, Normal};
                let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(opts.seed ^ 0x5eed);
                let normal = Normal::new(0.0, 1.0).expect("valid");
                let x: Vec<f64> = (0..dims * samples)
                    .map(|_| normal.sample(&mut rng))
                    .collect();
                let x = Array2::from_shape_vec((dims, samples).f(), x).expect("d x n");
                (x, (0..samples).map(|j| ((j * 7 + 1) % 10) as u8).collect())
            }
        };
        let arch = super::arch::Arch {
            input: dims,
            hidden: opts.hidden.clone(),
            classes,
            loss: opts.loss,
            batch_norm: opts.batch_norm && !opts.hidden.is_empty(),
        };
        let net = Net::<f64>::init(&arch, &[opts.seed]);
        for check in self::check(&net, x.view(), &y, opts.settings()) {
            checks.push(SubsetCheck {
                check,
                dims,
                samples,
            });
        }
    }
    let passed = checks.iter().all(|c| c.check.passed);
    Report {
        checks,
        passed,
        data: data_name,
        options: opts.clone(),
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = &self.options;
        let model = if o.hidden.is_empty() {
            "linear".to_string()
        } else {
            format!("mlp {:?}", o.hidden)
        };
        writeln!(
            f,
            "gradient check: {model}, loss {}, lambda {}, {:?} differences, h {:e}, eps {:e}, tolerance {:e}, data {}",
            o.loss.name(),
            o.lambda,
            o.method,
            o.h,
            o.eps,
            o.tol,
            self.data
        )?;
        writeln!(
            f,
            "{:<6} {:>11} {:>14} {:>14} {:>14} {:>12}  result",
            "param", "shape", "subset", "max |ga-gn|", "max rel err", "max |ga|"
        )?;
        for c in &self.checks {
            let p = &c.check;
            writeln!(
                f,
                "{:<6} {:>11} {:>14} {:>14.3e} {:>14.3e} {:>12.3e}  {}",
                p.param,
                format!("{}x{}", p.shape[0], p.shape[1]),
                format!("{}d x {}", c.dims, c.samples),
                p.max_abs_err,
                p.max_rel_err,
                p.max_abs_grad,
                if p.passed { "pass" } else { "FAIL" }
            )?;
        }
        write!(
            f,
            "{}",
            if self.passed {
                "all checks passed"
            } else {
                "SOME CHECKS FAILED"
            }
        )
    }
}
