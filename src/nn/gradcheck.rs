//! Gradient checks: analytic gradients (f64) against finite differences of the
//! cost, for every parameter of a network.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use ndarray::{s, Array2, ArrayView2, ShapeBuilder};

use super::net::{LossStat, Net, Workspace};

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

/// Entry `idx` of layer l's weights (or biases) of `net`.
fn entry(net: &Net<f64>, l: usize, is_bias: bool, idx: usize) -> &f64 {
    if is_bias {
        &net.biases[l][idx]
    } else {
        &net.weights[l].as_slice_memory_order().expect("contiguous")[idx]
    }
}

/// Entry `idx` of layer l's weights (or biases) of `net`, mutably.
fn entry_mut(net: &mut Net<f64>, l: usize, is_bias: bool, idx: usize) -> &mut f64 {
    if is_bias {
        &mut net.biases[l][idx]
    } else {
        &mut net.weights[l]
            .as_slice_memory_order_mut()
            .expect("contiguous")[idx]
    }
}

/// Mean loss of configuration 0 of `net` on (x, labels); the cost adds lambda * sum W^2.
pub fn mean_loss(
    net: &Net<f64>,
    x: ArrayView2<'_, f64>,
    labels: &[u8],
    ws: &mut Workspace<f64>,
) -> f64 {
    let mut st = [LossStat::default()];
    net.forward_loss(x, labels, ws, &mut st);
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
}

/// Checks every parameter of the single-configuration network `net` on
/// (x: d x n, labels) with the finite differences of `s`.
pub fn check(
    net: &Net<f64>,
    x: ArrayView2<'_, f64>,
    labels: &[u8],
    s: Settings,
) -> Vec<ParamCheck> {
    let Settings {
        lambda,
        method,
        h,
        eps,
        tol,
    } = s;
    assert_eq!(net.configs, 1, "gradient checks run on one configuration");
    let mut net = net.clone();
    net.fold_scales();
    let analytic = net.gradients(x, labels, &[lambda]);
    let mut ws = net.workspace(x.ncols());
    let base = mean_loss(&net, x, labels, &mut ws);
    let layers = net.layers();
    let mut out = Vec::new();
    for l in 0..layers {
        for is_bias in [false, true] {
            let len = if is_bias {
                net.biases[l].len()
            } else {
                net.weights[l].len()
            };
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
                        let ga = *entry(analytic_ref, l, is_bias, idx);
                        let orig = *entry_mut(&mut net, l, is_bias, idx);
                        // J(p) = L(p) + lambda * (sum of squared weights). Differences of J are
                        // formed as (L(p+) - L(p-)) + lambda * (p+^2 - p-^2): the same finite
                        // difference, without adding the large penalty to L before subtracting
                        // (which costs digits).
                        let penalty = |q: f64| if is_bias { 0.0 } else { lambda * q * q };
                        *entry_mut(&mut net, l, is_bias, idx) = orig + h;
                        let plus = mean_loss(&net, x, labels, &mut ws);
                        let gn = match method {
                            Method::Forward => {
                                ((plus - base) + (penalty(orig + h) - penalty(orig))) / h
                            }
                            Method::Centred => {
                                *entry_mut(&mut net, l, is_bias, idx) = orig - h;
                                let minus = mean_loss(&net, x, labels, &mut ws);
                                ((plus - minus) + (penalty(orig + h) - penalty(orig - h)))
                                    / (2.0 * h)
                            }
                        };
                        *entry_mut(&mut net, l, is_bias, idx) = orig;
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
            let name = match (layers, is_bias) {
                (1, false) => "W".to_string(),
                (1, true) => "b".to_string(),
                (_, false) => format!("W{}", l + 1),
                (_, true) => format!("b{}", l + 1),
            };
            let shape = if is_bias {
                [net.widths[l + 1], 1]
            } else {
                [net.widths[l + 1], net.widths[l]]
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
    out.sort_by_key(|c| (c.param[1..].to_string(), c.param.starts_with('b')));
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
        }
    }

    fn run(hidden: &[usize], loss: Loss, lambda: f64) -> Vec<ParamCheck> {
        let arch = Arch {
            input: 20,
            hidden: hidden.to_vec(),
            classes: 10,
            loss,
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

    /// A wrong backward pass is caught: break the L2 term by checking against a
    /// different lambda than the analytic gradient used.
    #[test]
    fn a_wrong_gradient_fails() {
        let arch = Arch {
            input: 20,
            hidden: vec![8],
            classes: 10,
            loss: Loss::Ce,
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
    /// Features used (first `dims` of 3072).
    pub dims: usize,
    /// Images used.
    pub samples: usize,
}

/// Runs the checks of `opts` on the first images of `source` (d x N standardised
/// features with labels), or on generated data when `source` is `None`.
pub fn run(opts: &Options, source: Option<(&crate::data::DataSet<f64>, String)>) -> Report {
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
            classes: 10,
            loss: opts.loss,
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
