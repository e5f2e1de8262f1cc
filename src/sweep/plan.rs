//! The plan of a sweep: lambda values (list, log grid or log-uniform random) and
//! the grouping of configurations into lockstep groups.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use crate::train::RunConfig;

/// How the lambdas of a sweep are chosen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LambdaSpec {
    /// Explicit values.
    List(Vec<f64>),
    /// `n` values log-spaced from `lo` to `hi` inclusive.
    Grid {
        /// Lowest lambda.
        lo: f64,
        /// Highest lambda.
        hi: f64,
        /// Number of values.
        n: usize,
    },
    /// `n` values 10^l with l uniform in [log10 lo, log10 hi] (Assignment 2), seeded.
    Random {
        /// Lowest lambda.
        lo: f64,
        /// Highest lambda.
        hi: f64,
        /// Number of values.
        n: usize,
        /// Seed of the draw.
        seed: u64,
    },
}

impl LambdaSpec {
    /// Parses `lo:hi:n` (for `--lambda-grid` and `--lambda-random`).
    pub fn parse_range(s: &str, flag: &str) -> Result<(f64, f64, usize)> {
        let parts: Vec<&str> = s.split(':').collect();
        let bad = || format!("{flag} {s}: expected LO:HI:N, e.g. 1e-5:1e-1:8");
        if parts.len() != 3 {
            bail!(bad());
        }
        let lo: f64 = parts[0].trim().parse().with_context(bad)?;
        let hi: f64 = parts[1].trim().parse().with_context(bad)?;
        let n: usize = parts[2].trim().parse().with_context(bad)?;
        if !(lo > 0.0 && hi >= lo && hi.is_finite()) || n == 0 {
            bail!("{flag} {s}: need 0 < LO <= HI and N >= 1 (lambdas are spaced on a log scale)");
        }
        Ok((lo, hi, n))
    }
}

/// The lambda values of a spec, in order.
pub fn lambda_values(spec: &LambdaSpec) -> Vec<f64> {
    match *spec {
        LambdaSpec::List(ref v) => v.clone(),
        LambdaSpec::Grid { lo, hi, n } => {
            let (a, b) = (lo.log10(), hi.log10());
            (0..n)
                .map(|i| {
                    10f64.powf(if n == 1 {
                        a
                    } else {
                        a + (b - a) * i as f64 / (n - 1) as f64
                    })
                })
                .collect()
        }
        LambdaSpec::Random { lo, hi, n, seed } => {
            let (a, b) = (lo.log10(), hi.log10());
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            (0..n)
                .map(|_| 10f64.powf(a + (b - a) * rng.random::<f64>()))
                .collect()
        }
    }
}

/// Default logged points per cycle of a sweep. With [`SWEEP_EVAL_TRAIN`] the
/// curves cost about 9% of the training's GEMM work (each point evaluates the
/// 5,000 validation images and 1,000 training images per configuration, against
/// 2 x 100 images per training step): 16 points over 3 cycles of n_s 900.
pub const SWEEP_LOG_POINTS: usize = 5;

/// Default `--eval-train` of a sweep: 1,000 training images at intermediate points.
pub const SWEEP_EVAL_TRAIN: crate::train::EvalTrain = crate::train::EvalTrain::Sample(1000);

/// Default of `--max-group`: the most configurations one lockstep group stacks.
/// It decides the groups, and so the GEMM shapes and the numbers' last bits.
pub const DEFAULT_MAX_GROUP: usize = 4;

/// Splits configurations into lockstep groups: same [`RunConfig::lockstep_key`],
/// at most `max_group` each, in near-equal sizes (9 configurations with
/// `max_group` 8 make groups of 5 and 4). Decided from the configurations alone,
/// never from the cores or workers, so that a configuration always trains in
/// the same group, whatever runs it. Returns indices into `configs`.
pub fn group_configs(configs: &[RunConfig], max_group: usize) -> Vec<Vec<usize>> {
    let keys: Vec<String> = configs.iter().map(|c| c.lockstep_key()).collect();
    group_by_key(&keys, max_group)
}

/// Groups indices of equal `keys` as [`group_configs`] does.
pub fn group_by_key(keys: &[String], max_group: usize) -> Vec<Vec<usize>> {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        by_key.entry(k).or_default().push(i);
    }
    let mut groups = Vec::new();
    for (_, ids) in by_key {
        let parts = ids.len().div_ceil(max_group.max(1));
        let size = ids.len().div_ceil(parts);
        groups.extend(ids.chunks(size).map(|c| c.to_vec()));
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_and_random_draws() {
        let g = lambda_values(&LambdaSpec::Grid {
            lo: 1e-5,
            hi: 1e-1,
            n: 5,
        });
        let want = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1];
        for (a, b) in g.iter().zip(want) {
            assert!((a / b - 1.0).abs() < 1e-12);
        }
        let r = lambda_values(&LambdaSpec::Random {
            lo: 1e-5,
            hi: 1e-1,
            n: 100,
            seed: 3,
        });
        assert!(r.iter().all(|&v| (1e-5..=1e-1).contains(&v)));
        assert!(
            r.iter().any(|&v| v < 1e-4) && r.iter().any(|&v| v > 1e-2),
            "log-uniform covers the decades"
        );
        assert_eq!(
            r,
            lambda_values(&LambdaSpec::Random {
                lo: 1e-5,
                hi: 1e-1,
                n: 100,
                seed: 3
            })
        );
        assert!(LambdaSpec::parse_range("1e-5:1e-1", "--lambda-grid").is_err());
        assert_eq!(
            LambdaSpec::parse_range("1e-5:1e-1:8", "--x").unwrap(),
            (1e-5, 1e-1, 8)
        );
    }
}

/// A sweep over lambda of one architecture and cyclical schedule: the flat
/// description that `--config sweep.toml` and the flags fill in. More axes can be
/// added as further lists whose product builds the configurations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepSpec {
    /// Name prefix of the runs.
    pub prefix: String,
    /// The lambda values.
    pub lambdas: LambdaSpec,
    /// Hidden widths (empty: linear).
    pub hidden: Vec<usize>,
    /// Output loss.
    pub loss: crate::nn::Loss,
    /// Number of cycles of the cyclical schedule.
    pub cycles: usize,
    /// Half-cycle steps (0: 2 floor(n_train / batch)).
    pub ns: usize,
    /// Lowest learning rate.
    pub eta_min: f64,
    /// Highest learning rate.
    pub eta_max: f64,
    /// Mini-batch size.
    pub batch: usize,
    /// Data split.
    pub split: crate::data::SplitSpec,
    /// Base seed.
    pub seed: u64,
    /// Logged points per cycle (0: only the start and the end).
    pub log_points: usize,
    /// Reshuffle every epoch.
    pub shuffle: bool,
    /// Precision.
    pub precision: crate::nn::Precision,
    /// Training images the intermediate logged points evaluate.
    #[serde(default)]
    pub eval_train: crate::train::EvalTrain,
}

impl Default for SweepSpec {
    fn default() -> Self {
        SweepSpec {
            prefix: "lambda".into(),
            lambdas: LambdaSpec::Grid {
                lo: 1e-5,
                hi: 1e-1,
                n: 8,
            },
            hidden: vec![50],
            loss: crate::nn::Loss::Ce,
            cycles: 2,
            ns: 0,
            eta_min: 1e-5,
            eta_max: 1e-1,
            batch: 100,
            split: crate::data::SplitSpec {
                kind: crate::data::SplitKind::Full,
                ..Default::default()
            },
            seed: 1,
            log_points: SWEEP_LOG_POINTS,
            shuffle: false,
            precision: crate::nn::Precision::F32,
            eval_train: SWEEP_EVAL_TRAIN,
        }
    }
}

impl SweepSpec {
    /// Half-cycle length in steps, resolving `ns = 0`.
    pub fn resolved_ns(&self) -> usize {
        if self.ns == 0 {
            2 * (self.split.train_len() / self.batch.max(1)).max(1)
        } else {
            self.ns
        }
    }

    /// One configuration per lambda, named `<prefix>_<lambda>`.
    pub fn configs(&self) -> Vec<RunConfig> {
        let ns = self.resolved_ns();
        let steps = 2 * ns * self.cycles;
        let log_every = (2 * ns)
            .checked_div(self.log_points)
            .map_or(0, |e| e.max(1));
        lambda_values(&self.lambdas)
            .into_iter()
            .enumerate()
            .map(|(i, lambda)| RunConfig {
                name: format!("{}{:02}_{lambda:.3e}", self.prefix, i + 1),
                hidden: self.hidden.clone(),
                loss: self.loss,
                lambda,
                schedule: crate::train::Schedule::Cyclic {
                    eta_min: self.eta_min,
                    eta_max: self.eta_max,
                    ns,
                },
                batch: self.batch,
                steps,
                shuffle: self.shuffle,
                seed: self.seed,
                split: self.split,
                precision: self.precision,
                log_every,
                save_weights: false,
                eval_train: self.eval_train,
            })
            .collect()
    }
}

/// Sweep settings that may each be absent: what a sweep file (`--config`, TOML,
/// the same names as the flags) or the command line says. Layers combine with
/// [`Self::over`] (flags over file), then [`Self::spec`] fills the rest from
/// [`SweepSpec::default`]. Further swept axes become further fields here.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSettings {
    /// Explicit lambdas.
    pub lambdas: Option<Vec<f64>>,
    /// `LO:HI:N` log-spaced lambdas.
    pub lambda_grid: Option<String>,
    /// `LO:HI:N` log-uniform random lambdas (seeded with `seed`).
    pub lambda_random: Option<String>,
    /// Network kind (linear ignores `hidden`).
    pub model: Option<crate::nn::ModelKind>,
    /// Hidden widths of the MLP.
    pub hidden: Option<Vec<usize>>,
    /// Cycles of the cyclical schedule.
    pub cycles: Option<usize>,
    /// Half-cycle steps (0: 2 floor(n_train / batch)).
    pub ns: Option<usize>,
    /// Lowest learning rate.
    pub eta_min: Option<f64>,
    /// Highest learning rate.
    pub eta_max: Option<f64>,
    /// Mini-batch size.
    pub batch: Option<usize>,
    /// Data split: "a1" or "full".
    pub split: Option<crate::data::SplitKind>,
    /// Validation images held out (split full).
    pub n_val: Option<usize>,
    /// Use only the first N training images.
    pub n_train: Option<usize>,
    /// Whitening of the inputs: "none", "pca" or "zca".
    pub whiten: Option<crate::data::Whitening>,
    /// Added to every eigenvalue before whitening.
    pub whiten_eps: Option<f64>,
    /// Base seed.
    pub seed: Option<u64>,
    /// Logged points per cycle.
    pub log_points: Option<usize>,
    /// Reshuffle every epoch.
    pub shuffle: Option<bool>,
    /// "f32" or "f64".
    pub precision: Option<crate::nn::Precision>,
    /// Training images of the intermediate logged points: a number, or "all".
    pub eval_train: Option<crate::train::EvalTrain>,
}

impl SweepSettings {
    /// Reads a TOML sweep file; errors name the file and the offending key.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read sweep file {}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("sweep file {}: {e}", path.display()))
    }

    /// These settings over `lower`: each field from `self` when set. The lambdas
    /// count as one setting: any lambda option here replaces all of `lower`'s.
    pub fn over(self, lower: SweepSettings) -> SweepSettings {
        let own_lambdas =
            self.lambdas.is_some() || self.lambda_grid.is_some() || self.lambda_random.is_some();
        let (lambdas, lambda_grid, lambda_random) = if own_lambdas {
            (self.lambdas, self.lambda_grid, self.lambda_random)
        } else {
            (lower.lambdas, lower.lambda_grid, lower.lambda_random)
        };
        SweepSettings {
            lambdas,
            lambda_grid,
            lambda_random,
            model: self.model.or(lower.model),
            hidden: self.hidden.or(lower.hidden),
            cycles: self.cycles.or(lower.cycles),
            ns: self.ns.or(lower.ns),
            eta_min: self.eta_min.or(lower.eta_min),
            eta_max: self.eta_max.or(lower.eta_max),
            batch: self.batch.or(lower.batch),
            split: self.split.or(lower.split),
            n_val: self.n_val.or(lower.n_val),
            n_train: self.n_train.or(lower.n_train),
            whiten: self.whiten.or(lower.whiten),
            whiten_eps: self.whiten_eps.or(lower.whiten_eps),
            seed: self.seed.or(lower.seed),
            log_points: self.log_points.or(lower.log_points),
            shuffle: self.shuffle.or(lower.shuffle),
            precision: self.precision.or(lower.precision),
            eval_train: self.eval_train.or(lower.eval_train),
        }
    }

    /// The sweep these settings describe over `base` (usually [`SweepSpec::default`]).
    pub fn spec(&self, base: SweepSpec) -> Result<SweepSpec> {
        let d = base;
        let seed = self.seed.unwrap_or(d.seed);
        let lambdas = if let Some(v) = &self.lambdas {
            if v.is_empty() || v.iter().any(|l| !(l.is_finite() && *l >= 0.0)) {
                bail!("lambdas {v:?}: give finite values >= 0");
            }
            LambdaSpec::List(v.clone())
        } else if let Some(g) = &self.lambda_grid {
            let (lo, hi, n) = LambdaSpec::parse_range(g, "--lambda-grid")?;
            LambdaSpec::Grid { lo, hi, n }
        } else if let Some(r) = &self.lambda_random {
            let (lo, hi, n) = LambdaSpec::parse_range(r, "--lambda-random")?;
            LambdaSpec::Random { lo, hi, n, seed }
        } else {
            d.lambdas.clone()
        };
        let hidden = match self.model {
            Some(crate::nn::ModelKind::Linear) => vec![],
            _ => self.hidden.clone().unwrap_or(d.hidden.clone()),
        };
        Ok(SweepSpec {
            lambdas,
            hidden,
            cycles: self.cycles.unwrap_or(d.cycles),
            ns: self.ns.unwrap_or(d.ns),
            eta_min: self.eta_min.unwrap_or(d.eta_min),
            eta_max: self.eta_max.unwrap_or(d.eta_max),
            batch: self.batch.unwrap_or(d.batch),
            split: crate::data::SplitSpec {
                kind: self.split.unwrap_or(d.split.kind),
                n_val: self.n_val.unwrap_or(d.split.n_val),
                n_train: self.n_train.or(d.split.n_train),
                whiten: self.whiten.unwrap_or(d.split.whiten),
                whiten_eps: self.whiten_eps.unwrap_or(d.split.whiten_eps),
            },
            seed,
            log_points: self.log_points.unwrap_or(d.log_points),
            shuffle: self.shuffle.unwrap_or(d.shuffle),
            precision: self.precision.unwrap_or(d.precision),
            eval_train: self.eval_train.unwrap_or(d.eval_train),
            ..d
        })
    }
}

#[cfg(test)]
mod settings_tests {
    use super::*;

    #[test]
    fn flags_over_file_over_defaults() {
        let file: SweepSettings = toml::from_str(
            "lambdas = [0.1, 0.2]\ncycles = 3\nmodel = \"linear\"\nhidden = [20]\nprecision = \"f64\"\n",
        )
        .unwrap();
        let flags = SweepSettings {
            lambda_grid: Some("1e-4:1e-2:3".into()),
            cycles: Some(1),
            ..Default::default()
        };
        let spec = flags.over(file).spec(SweepSpec::default()).unwrap();
        // The flags' lambdas replace the file's; other fields merge one by one.
        assert_eq!(
            spec.lambdas,
            LambdaSpec::Grid {
                lo: 1e-4,
                hi: 1e-2,
                n: 3
            }
        );
        assert_eq!(spec.cycles, 1);
        assert!(spec.hidden.is_empty(), "linear has no hidden layer");
        assert_eq!(spec.precision, crate::nn::Precision::F64);
        assert_eq!(spec.batch, SweepSpec::default().batch);
    }

    #[test]
    fn unknown_keys_and_values_are_errors() {
        let e = toml::from_str::<SweepSettings>("cylces = 3").unwrap_err();
        assert!(e.to_string().contains("cylces"), "{e}");
        let e = toml::from_str::<SweepSettings>("model = \"cnn\"").unwrap_err();
        assert!(e.to_string().contains("linear"), "{e}");
        let bad = SweepSettings {
            lambdas: Some(vec![-1.0]),
            ..Default::default()
        };
        assert!(bad.spec(SweepSpec::default()).is_err());
    }
}
