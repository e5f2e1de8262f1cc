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

/// Splits configurations into lockstep groups: same [`RunConfig::lockstep_key`],
/// at most `max_group` each, and, when there are enough configurations, at
/// least `workers` groups so that every worker has one. Returns indices into
/// `configs`; the grouping never changes any result (a configuration trains to
/// the same numbers alone or in any group).
pub fn group_configs(configs: &[RunConfig], workers: usize, max_group: usize) -> Vec<Vec<usize>> {
    let mut by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, c) in configs.iter().enumerate() {
        by_key.entry(c.lockstep_key()).or_default().push(i);
    }
    let mut groups = Vec::new();
    for (_, ids) in by_key {
        let parts = ids
            .len()
            .div_ceil(max_group.max(1))
            .max(workers.max(1).min(ids.len()));
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
