//! `shallow gradcheck`: analytic gradients against finite differences, on the
//! real images when they are found, else on generated ones.

use anyhow::{bail, Result};
use clap::Args;

use super::args::DataArgs;
use super::common::{print_json, Finish};
use crate::data::{self, Split, SplitKind, SplitSpec};
use crate::nn::gradcheck::{self, Method};
use crate::nn::{Loss, ModelKind};

/// Flags of `shallow gradcheck`.
#[derive(Args)]
pub struct GradcheckArgs {
    /// Network: linear (Assignment 1) or mlp (Assignment 2).
    #[arg(long, value_enum, default_value = "mlp")]
    pub model: ModelKind,
    /// Hidden widths of the mlp, e.g. 50 or 100,50.
    #[arg(long, value_delimiter = ',', default_value = "50")]
    pub hidden: Vec<usize>,
    /// Output loss.
    #[arg(long, value_enum, default_value = "ce")]
    pub loss: Loss,
    /// L2 penalty.
    #[arg(long = "lambda", default_value_t = 0.0)]
    pub lambda: f64,
    /// Finite differences.
    #[arg(long, value_enum, default_value = "centred")]
    pub method: Method,
    /// Finite step.
    #[arg(long, default_value_t = 1e-5)]
    pub h: f64,
    /// Floor of the relative error's denominator max(eps, |ga| + |gn|).
    #[arg(long, default_value_t = gradcheck::REL_EPS)]
    pub eps: f64,
    /// Largest accepted relative error.
    #[arg(long, default_value_t = 1e-6)]
    pub tol: f64,
    /// Features used (default: 20, plus a full 3072-feature check on 2 images).
    #[arg(long)]
    pub dims: Option<usize>,
    /// Images used (default 100).
    #[arg(long)]
    pub samples: Option<usize>,
    /// Seed of the initial weights.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Batch normalisation on the hidden layers (checks gamma and beta too).
    #[arg(long)]
    pub batch_norm: bool,
    /// Dropout probability of hidden units, checked with one fixed mask.
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f64,
    /// Label smoothing of the cross-entropy targets.
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// Precision (gradient checks run in f64).
    #[arg(long, value_enum, default_value = "f64")]
    pub precision: crate::nn::Precision,
    /// Where the data is.
    #[command(flatten)]
    pub data: DataArgs,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Validates the flags of `a`, runs the checks and prints the table (or JSON);
/// [`Finish::Failed`] when a check fails.
pub fn run(a: &GradcheckArgs) -> Result<Finish> {
    if a.precision != crate::nn::Precision::F64 {
        bail!(
            "--precision {}: too coarse for finite differences, gradient checks run in f64{}",
            serde_json::to_value(a.precision)?.as_str().unwrap_or("f32"),
            if a.precision == crate::nn::Precision::Bf16 {
                " (the test suite checks the bf16 path against f64: nn::net tests)"
            } else {
                ""
            }
        );
    }
    if !(a.h > 0.0 && a.h < 1.0) {
        bail!(
            "--h {} is out of range: use a small positive step such as 1e-5",
            a.h
        );
    }
    if !(0.0..0.95).contains(&a.dropout) {
        bail!(
            "--dropout {} is out of range: give a probability from 0 to 0.95, e.g. 0.2",
            a.dropout
        );
    }
    if !(0.0..1.0).contains(&a.label_smoothing) || (a.label_smoothing > 0.0 && a.loss != Loss::Ce) {
        bail!(
            "--label-smoothing {} needs --loss ce and a value from 0 to below 1, e.g. 0.1",
            a.label_smoothing
        );
    }
    if a.model != ModelKind::Linear && (a.hidden.is_empty() || a.hidden.contains(&0)) {
        bail!(
            "--hidden {:?}: every hidden layer needs at least one unit, e.g. --hidden 50",
            a.hidden
        );
    }
    let opts = gradcheck::Options {
        hidden: if a.model == ModelKind::Linear {
            vec![]
        } else {
            a.hidden.clone()
        },
        loss: a.loss,
        lambda: a.lambda,
        method: a.method,
        h: a.h,
        eps: a.eps,
        tol: a.tol,
        subsets: vec![],
        seed: a.seed,
        batch_norm: a.batch_norm,
        dropout: a.dropout,
        smoothing: a.label_smoothing,
    };
    crate::linalg::blas::set_threads(1); // tiny products: threads only add overhead
    let source = a.data.source();
    let data = match data::locate(&source)? {
        Some(dir) => Some(data::RawData::load_as(&dir, &source)?),
        None => {
            eprintln!("no data found (--data, CIFAR10_DIR): checking on generated data");
            None
        }
    };
    // Generated data: CIFAR-10's sizes.
    let shape = data.as_ref().map(|d| d.shape).unwrap_or_default();
    let (d_max, n_max) = (shape.pixels(), shape.train_images / 5);
    let mut opts = opts;
    opts.subsets = match (a.dims, a.samples) {
        (None, None) => vec![(20.min(d_max), 100.min(n_max)), (d_max, 2.min(n_max))],
        (d, s) => vec![(d.unwrap_or(20), s.unwrap_or(100))],
    };
    for &(d, s) in &opts.subsets {
        if d == 0 || d > d_max || s == 0 || s > n_max {
            bail!("--dims {d} --samples {s} out of range: use 1-{d_max} features and 1-{n_max} images");
        }
    }
    let split = match &data {
        Some(d) => {
            let a1 = SplitSpec {
                kind: SplitKind::A1,
                ..Default::default()
            };
            Some(Split::<f64>::new(d, a1)?)
        }
        None => None,
    };
    let name = data.as_ref().map_or(String::new(), |d| {
        let first = &d.train[0].name;
        format!("{} {}", d.kind.title(), first.trim_end_matches(".bin"))
    });
    let report = gradcheck::run_on(
        &opts,
        split.as_ref().map(|s| (&s.train, name.clone())),
        shape.classes,
    );
    if a.json {
        print_json(&report)?;
    } else {
        crate::outln!("{report}")?;
    }
    Ok(if report.passed {
        Finish::Done
    } else {
        Finish::Failed
    })
}
