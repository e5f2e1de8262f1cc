//! The plan of a sweep: fixed settings, the axes it varies (grids, ranges and
//! random draws over any training hyperparameter), the configurations they
//! make, and the grouping of those configurations into lockstep groups.

use anyhow::{bail, Context, Result};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use crate::train::settings::{Axis, ScheduleKind, TrainSettings, Value};
use crate::train::RunConfig;

/// The values one axis takes: every value of a grid axis, or one value per
/// draw of a random axis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AxisValues {
    /// Which setting.
    pub axis: Axis,
    /// Its values, in order.
    pub values: Vec<Value>,
}

/// A sweep: fixed settings, grid axes (every combination, the first axis
/// outermost) and random axes (drawn jointly, one value of each per draw; the
/// draws are the innermost loop). What `sweep.json` records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepSpec {
    /// Name prefix of the runs.
    pub prefix: String,
    /// Every setting the axes do not vary.
    pub base: TrainSettings,
    /// Grid axes.
    pub grid: Vec<AxisValues>,
    /// Random axes, all with the same number of values (the draws).
    pub random: Vec<AxisValues>,
}

impl Default for SweepSpec {
    /// Eight log-spaced lambdas from 1e-5 to 1e-1 over the sweep defaults.
    fn default() -> Self {
        SweepSpec::lambdas(TrainSettings::sweep_default(), &log_range(1e-5, 1e-1, 8))
    }
}

/// Most values of one axis (`LO:HI:N`) or random draws.
pub const MAX_AXIS_VALUES: usize = 10_000;

/// Most configurations a plan trains unless `--max-runs` raises it: a typo
/// in a range (`1e-5:1e-1:800`) is caught before hours of training.
pub const DEFAULT_MAX_RUNS: usize = 1000;

/// `n` values log-spaced from `lo` to `hi` inclusive.
pub fn log_range(lo: f64, hi: f64, n: usize) -> Vec<f64> {
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

/// `n` values evenly spaced from `lo` to `hi` inclusive.
pub fn lin_range(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            if n == 1 {
                lo
            } else {
                lo + (hi - lo) * i as f64 / (n - 1) as f64
            }
        })
        .collect()
}

/// Parses a range `LO:HI:N[:log|lin]` (`with_n`) or `LO:HI[:log|lin]`; the
/// spacing defaults to log on scale axes. Returns (lo, hi, n, log).
fn parse_range(axis: Axis, s: &str, with_n: bool) -> Result<(f64, f64, usize, bool)> {
    let parts: Vec<&str> = s.split(':').map(str::trim).collect();
    let form = if with_n {
        "LO:HI:N[:log|lin]"
    } else {
        "LO:HI[:log|lin]"
    };
    let example = if with_n {
        "1e-5:1e-1:8:log"
    } else {
        "1e-5:1e-1"
    };
    let bad = || {
        anyhow::anyhow!(
            "{} = {s}: expected {form}, e.g. {}={example}",
            axis.name(),
            axis.name()
        )
    };
    let need = if with_n { 3 } else { 2 };
    if parts.len() != need && parts.len() != need + 1 {
        return Err(bad());
    }
    let lo: f64 = parts[0].parse().map_err(|_| bad())?;
    let hi: f64 = parts[1].parse().map_err(|_| bad())?;
    let n: usize = if with_n {
        parts[2].parse().map_err(|_| bad())?
    } else {
        1
    };
    let log = match parts.get(need) {
        None => axis.is_scale(),
        Some(&"log") => true,
        Some(&"lin") => false,
        Some(_) => return Err(bad()),
    };
    if n > MAX_AXIS_VALUES {
        bail!(
            "{} = {s}: {n} values; an axis takes at most {MAX_AXIS_VALUES}",
            axis.name()
        );
    }
    if !(lo.is_finite() && hi.is_finite() && lo >= 0.0 && hi >= lo) || n == 0 {
        bail!(
            "{} = {s}: need 0 <= LO <= HI{}",
            axis.name(),
            if with_n { " and N >= 1" } else { "" }
        );
    }
    if log && lo <= 0.0 {
        bail!(
            "{} = {s}: a log range needs LO > 0 (or add :lin)",
            axis.name()
        );
    }
    Ok((lo, hi, n, log))
}

/// Parses a log range `LO:HI:N` given to `flag` (`--coarse`, `--lambda-grid`,
/// `--lambda-random`): 0 < LO <= HI, N >= 1.
pub fn parse_log_range(flag: &str, s: &str) -> Result<(f64, f64, usize)> {
    let parts: Vec<&str> = s.split(':').map(str::trim).collect();
    let parsed = match parts.as_slice() {
        [lo, hi, n] => match (lo.parse::<f64>(), hi.parse::<f64>(), n.parse::<usize>()) {
            (Ok(lo), Ok(hi), Ok(n)) if lo > 0.0 && hi >= lo && hi.is_finite() && n > 0 => {
                Some((lo, hi, n))
            }
            _ => None,
        },
        _ => None,
    };
    parsed.ok_or_else(|| {
        anyhow::anyhow!(
            "{flag} {s}: expected LO:HI:N with 0 < LO <= HI and N >= 1, e.g. 1e-5:1e-1:8"
        )
    })
}

fn whole(axis: Axis, v: f64) -> f64 {
    if axis.is_integer() || axis == Axis::Hidden {
        v.round()
    } else {
        v
    }
}

/// The values of a grid axis from its text: a list (`0.01,0.1`, `50,100x50`,
/// `ce,bce`) or a range `LO:HI:N[:log|lin]` (whole-number axes are rounded and
/// repeats dropped).
pub fn grid_values(axis: Axis, spec: &str) -> Result<Vec<Value>> {
    let values: Vec<Value> = if spec.contains(':') {
        if matches!(axis, Axis::Loss) {
            bail!("loss = {spec}: list the losses, e.g. loss=ce,bce");
        }
        let (lo, hi, n, log) = parse_range(axis, spec, true)?;
        let raw = if log {
            log_range(lo, hi, n)
        } else {
            lin_range(lo, hi, n)
        };
        let mut out: Vec<Value> = Vec::new();
        for v in raw {
            let v = whole(axis, v);
            let value = axis.parse_value(&format!("{v}"))?;
            if !out.contains(&value) {
                out.push(value);
            }
        }
        out
    } else {
        spec.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| axis.parse_value(p))
            .collect::<Result<_>>()?
    };
    if values.is_empty() {
        bail!("{} = {spec}: give at least one value", axis.name());
    }
    Ok(values)
}

/// `draws` random values of each axis in `ranges` (`LO:HI[:log|lin]`), drawn
/// jointly from `seed`: log-uniform on scale axes, uniform otherwise.
pub fn random_values(
    ranges: &[(Axis, String)],
    draws: usize,
    seed: u64,
) -> Result<Vec<AxisValues>> {
    let parsed: Vec<(Axis, f64, f64, bool)> = ranges
        .iter()
        .map(|(axis, s)| {
            if matches!(axis, Axis::Loss) {
                bail!("loss cannot be drawn at random: put it in the grid (loss=ce,bce)");
            }
            let (lo, hi, _, log) = parse_range(*axis, s, false)?;
            Ok((*axis, lo, hi, log))
        })
        .collect::<Result<_>>()?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut out: Vec<AxisValues> = parsed
        .iter()
        .map(|p| AxisValues {
            axis: p.0,
            values: Vec::with_capacity(draws),
        })
        .collect();
    for _ in 0..draws {
        for (k, &(axis, lo, hi, log)) in parsed.iter().enumerate() {
            let u = rng.random::<f64>();
            let v = if log {
                let (a, b) = (lo.log10(), hi.log10());
                10f64.powf(a + (b - a) * u)
            } else {
                lo + (hi - lo) * u
            };
            out[k]
                .values
                .push(axis.parse_value(&format!("{}", whole(axis, v)))?);
        }
    }
    Ok(out)
}

impl SweepSpec {
    /// A sweep over `lambdas` with the rest fixed by `base`.
    pub fn lambdas(base: TrainSettings, lambdas: &[f64]) -> Self {
        SweepSpec {
            prefix: "lambda".into(),
            base,
            grid: vec![AxisValues {
                axis: Axis::Lambda,
                values: lambdas.iter().map(|&l| Value::Num(l)).collect(),
            }],
            random: vec![],
        }
    }

    /// The axes, grid first, in order.
    pub fn axes(&self) -> Vec<Axis> {
        self.grid
            .iter()
            .chain(&self.random)
            .map(|a| a.axis)
            .collect()
    }

    /// How many configurations the plan has, counted without listing them,
    /// and how: `8 lambda x 3 hidden`.
    pub fn count(&self) -> (u128, String) {
        let mut n: u128 = 1;
        let mut parts = Vec::new();
        for a in &self.grid {
            n = n.saturating_mul(a.values.len() as u128);
            parts.push(format!("{} {}", a.values.len(), a.axis.name()));
        }
        if let Some(a) = self.random.first() {
            n = n.saturating_mul(a.values.len() as u128);
            parts.push(format!("{} random draws", a.values.len()));
        }
        (n, parts.join(" x "))
    }

    /// Refuses a plan of more than `max_runs` configurations, saying how
    /// many it has and how to allow them.
    pub fn check_size(&self, max_runs: usize) -> Result<()> {
        let (n, how) = self.count();
        if n > max_runs as u128 {
            bail!(
                "the sweep has {n} configurations ({how}), more than --max-runs {max_runs}: \
                 narrow its axes, or raise --max-runs if you mean it"
            );
        }
        Ok(())
    }

    /// Each configuration's axis values, in plan order.
    pub fn points(&self) -> Vec<Vec<(Axis, Value)>> {
        let mut points: Vec<Vec<(Axis, Value)>> = vec![vec![]];
        for a in &self.grid {
            points = points
                .into_iter()
                .flat_map(|p| {
                    a.values.iter().map(move |v| {
                        let mut q = p.clone();
                        q.push((a.axis, v.clone()));
                        q
                    })
                })
                .collect();
        }
        let draws = self.random.first().map_or(0, |a| a.values.len());
        if draws > 0 {
            points = points
                .into_iter()
                .flat_map(|p| {
                    (0..draws).map(move |d| {
                        let mut q = p.clone();
                        q.extend(self.random.iter().map(|a| (a.axis, a.values[d].clone())));
                        q
                    })
                })
                .collect();
        }
        points
    }

    /// The name of the configuration at `point`, `i` counting from 0:
    /// `lambda03_1.000e-3` for a lambda-only sweep, else
    /// `run03_eta_max0.1_hidden100`.
    pub fn name(&self, i: usize, point: &[(Axis, Value)]) -> String {
        if let [(Axis::Lambda, Value::Num(l))] = point {
            return format!("{}{:02}_{l:.3e}", self.prefix, i + 1);
        }
        let mut name = format!("{}{:02}", self.prefix, i + 1);
        for (axis, v) in point {
            name.push('_');
            name.push_str(axis.name());
            name.push_str(&v.label());
        }
        name
    }

    /// The settings of every configuration, in plan order, with their names.
    pub fn settings(&self) -> Result<Vec<(String, TrainSettings)>> {
        self.points()
            .iter()
            .enumerate()
            .map(|(i, point)| {
                let mut s = self.base.clone();
                for (axis, v) in point {
                    s.set(*axis, v)?;
                }
                Ok((self.name(i, point), s))
            })
            .collect()
    }

    /// One configuration per point of the plan.
    pub fn configs(&self) -> Result<Vec<RunConfig>> {
        self.settings()?
            .iter()
            .map(|(name, s)| s.run_config(name))
            .collect()
    }

    /// "lambda 1e-5..0.1 (8, log grid) x hidden 50, 100" and the like.
    pub fn describe_axes(&self) -> String {
        let mut parts = Vec::new();
        for (a, kind) in self
            .grid
            .iter()
            .map(|a| (a, "grid"))
            .chain(self.random.iter().map(|a| (a, "random")))
        {
            let labels: Vec<String> = a.values.iter().map(Value::label).collect();
            if labels.len() > 4 {
                let nums: Vec<f64> = a.values.iter().filter_map(Value::as_number).collect();
                let (lo, hi) = nums
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |m, &v| {
                        (m.0.min(v), m.1.max(v))
                    });
                parts.push(format!(
                    "{} {}..{} ({} values, {kind})",
                    a.axis.name(),
                    crate::util::short_number(lo),
                    crate::util::short_number(hi),
                    labels.len()
                ));
            } else {
                parts.push(format!("{} {} ({kind})", a.axis.name(), labels.join(", ")));
            }
        }
        if parts.is_empty() {
            "one configuration".into()
        } else {
            parts.join(" x ")
        }
    }
}

pub use crate::train::settings::{SWEEP_EVAL_TRAIN, SWEEP_LOG_POINTS};

/// Default of `--max-group`: the most configurations one lockstep group stacks.
/// It decides the groups, and so the GEMM shapes and the numbers' last bits.
pub const DEFAULT_MAX_GROUP: usize = 4;

/// Splits configurations into lockstep groups: equal [`RunConfig::lockstep_key`],
/// at most `max_group` each, in near-equal sizes (9 configurations with
/// `max_group` 8 make groups of 5 and 4). Keys come in order of first
/// appearance, members in plan order. Decided from the configurations alone,
/// never from the cores or workers, so that a configuration always trains in
/// the same group, whatever runs it. Returns indices into `configs`.
pub fn group_configs(configs: &[RunConfig], max_group: usize) -> Vec<Vec<usize>> {
    let keys: Vec<_> = configs.iter().map(|c| c.lockstep_key()).collect();
    group_by_key(&keys, max_group)
}

/// Groups indices of equal `keys` as [`group_configs`] does.
pub fn group_by_key<K: Eq + std::hash::Hash>(keys: &[K], max_group: usize) -> Vec<Vec<usize>> {
    let mut slot: std::collections::HashMap<&K, usize> = std::collections::HashMap::new();
    let mut by_key: Vec<Vec<usize>> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let s = *slot.entry(k).or_insert_with(|| {
            by_key.push(Vec::new());
            by_key.len() - 1
        });
        by_key[s].push(i);
    }
    let mut groups = Vec::new();
    for ids in by_key {
        let parts = ids.len().div_ceil(max_group.max(1));
        let size = ids.len().div_ceil(parts);
        groups.extend(ids.chunks(size).map(|c| c.to_vec()));
    }
    groups
}

/// Generates [`SweepSettings`] from the one table of settings
/// ([`crate::train::settings::setting_table`]): its fields after the axes',
/// `fixed_axes` and `over_table`.
macro_rules! sweep_settings {
    (
        values { $( $(#[doc = $vdoc:literal])* $v:ident : $vty:ty [ $($vattr:tt)* ] $(=> $vaxis:ident)? ; )* }
        switches { $( $(#[doc = $sdoc:literal])* $s:ident , $no:ident $(=> $saxis:ident)? ; )* }
    ) => {
        /// Sweep settings that may each be absent: what a sweep file (`--config`, TOML,
        /// the same names as the flags) or the command line says. Every `shallow train`
        /// setting may be fixed; `grid` and `random` tables vary axes. Layers combine
        /// with [`Self::over`] (flags over file), then [`Self::spec`] fills the rest
        /// from a command's defaults.
        ///
        /// ```toml
        /// eta_max = 0.1            # fixed settings, as the flags name them
        /// cycles = 3
        /// [grid]                   # every combination, first axis outermost
        /// lambda = "1e-5:1e-1:8:log"
        /// hidden = [50, 100, 200]
        /// [random]                 # `draws` joint draws, log-uniform on scale axes
        /// eta_min = "1e-6:1e-4"
        /// ```
        #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct SweepSettings {
            /// Explicit lambdas (shorthand for `grid lambda=...`).
            pub lambdas: Option<Vec<f64>>,
            /// `LO:HI:N` log-spaced lambdas (shorthand for `grid lambda=LO:HI:N:log`).
            pub lambda_grid: Option<String>,
            /// `LO:HI:N` log-uniform random lambdas (shorthand for `random lambda=LO:HI`, N draws).
            pub lambda_random: Option<String>,
            /// Grid axes: name = list, range `LO:HI:N[:log|lin]`, or a TOML array.
            pub grid: Option<toml::Table>,
            /// Random axes: name = `LO:HI[:log|lin]`.
            pub random: Option<toml::Table>,
            /// Number of random draws.
            pub draws: Option<usize>,
            $( $(#[doc = $vdoc])* pub $v: Option<$vty>, )*
            $( $(#[doc = $sdoc])* pub $s: Option<bool>, )*
        }

        impl SweepSettings {
            /// The axes that these settings fix to one value.
            pub fn fixed_axes(&self) -> Vec<Axis> {
                let mut out = Vec::new();
                $( $( if self.$v.is_some() { out.push(Axis::$vaxis); } )? )*
                $( $( if self.$s.is_some() { out.push(Axis::$saxis); } )? )*
                out
            }

            /// Every setting of the table from `self` when set, else from `lower`.
            fn over_table(mut self, lower: &SweepSettings) -> SweepSettings {
                $( self.$v = self.$v.take().or_else(|| lower.$v.clone()); )*
                $( self.$s = self.$s.or(lower.$s); )*
                self
            }
        }
    };
}
crate::train::settings::setting_table!(sweep_settings);

/// A TOML axis value as the text the flags take: arrays join with commas,
/// nested arrays (several hidden layers) with `x`.
fn toml_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(items) => items
            .iter()
            .map(|i| match i {
                toml::Value::Array(inner) => {
                    inner.iter().map(toml_text).collect::<Vec<_>>().join("x")
                }
                other => toml_text(other),
            })
            .collect::<Vec<_>>()
            .join(","),
        toml::Value::Float(f) => format!("{f}"),
        other => other.to_string(),
    }
}

impl SweepSettings {
    /// Reads a TOML sweep file; errors name the file and the offending key.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read sweep file {}", path.display()))?;
        let file: Self = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("sweep file {}: {e}", path.display()))?;
        Self::refuse_fixed_axes(&file, &file, &format!("in {}", path.display()))?;
        Ok(file)
    }

    /// The lambda shorthands turned into `grid`/`random` entries.
    fn normalised(mut self) -> Result<Self> {
        let mut grid = self.grid.take().unwrap_or_default();
        let mut random = self.random.take().unwrap_or_default();
        if let Some(v) = self.lambdas.take() {
            if v.is_empty() {
                bail!("--lambdas: give at least one value");
            }
            let text: Vec<String> = v.iter().map(|l| format!("{l:e}")).collect();
            grid.insert("lambda".into(), toml::Value::String(text.join(",")));
        }
        if let Some(g) = self.lambda_grid.take() {
            let (lo, hi, n) = parse_log_range("--lambda-grid", &g)?;
            grid.insert(
                "lambda".into(),
                toml::Value::String(format!("{lo:e}:{hi:e}:{n}:log")),
            );
        }
        if let Some(r) = self.lambda_random.take() {
            let (lo, hi, n) = parse_log_range("--lambda-random", &r)?;
            if self.draws.is_some_and(|d| d != n) {
                bail!(
                    "--lambda-random {r} asks for {n} draws but --draws says {}: give one",
                    self.draws.unwrap_or(0)
                );
            }
            self.draws = Some(n);
            random.insert(
                "lambda".into(),
                toml::Value::String(format!("{lo:e}:{hi:e}:log")),
            );
        }
        self.grid = (!grid.is_empty()).then_some(grid);
        self.random = (!random.is_empty()).then_some(random);
        Ok(self)
    }

    /// Names of the axes these settings fix or vary (lambda, eta_max, ...).
    fn named_axes(&self) -> Vec<Axis> {
        let mut out: Vec<Axis> = Vec::new();
        for t in [&self.grid, &self.random].into_iter().flatten() {
            out.extend(t.keys().filter_map(|k| Axis::parse(k).ok()));
        }
        out.extend(self.fixed_axes());
        out
    }

    /// Refuses a sweep axis of `axes` that `fixed` also sets to one value, in
    /// one layer (the command line, or one file): the axis would silently
    /// replace the fixed value. `source` says where, for the message.
    pub fn refuse_fixed_axes(
        axes: &SweepSettings,
        fixed: &SweepSettings,
        source: &str,
    ) -> Result<()> {
        let varied = axes.clone().normalised()?;
        let fixed_axes = fixed.fixed_axes();
        for t in [&varied.grid, &varied.random].into_iter().flatten() {
            for k in t.keys() {
                if let Ok(axis) = Axis::parse(k) {
                    if fixed_axes.contains(&axis) {
                        bail!(
                            "{source}, {} is both a sweep axis and a fixed setting: the axis gives every value, \
                             so the fixed one would be dropped. Give one of them",
                            axis.name()
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// These settings over `lower`: each field from `self` when set. A setting
    /// that `self` fixes or varies replaces `lower`'s axis of the same name
    /// (flags' `--lambda-grid` replace a file's `[grid] lambda`).
    pub fn over(self, lower: SweepSettings) -> Result<SweepSettings> {
        let upper = self.normalised()?;
        let mut lower = lower.normalised()?;
        let mine = upper.named_axes();
        for t in [&mut lower.grid, &mut lower.random].into_iter().flatten() {
            t.retain(|k, _| Axis::parse(k).map_or(true, |a| !mine.contains(&a)));
        }
        let merge = |a: Option<toml::Table>, b: Option<toml::Table>| -> Option<toml::Table> {
            let mut t = b.unwrap_or_default();
            for (k, v) in a.unwrap_or_default() {
                t.insert(k, v);
            }
            (!t.is_empty()).then_some(t)
        };
        let (grid, random, draws) = (
            merge(upper.grid.clone(), lower.grid.clone()),
            merge(upper.random.clone(), lower.random.clone()),
            upper.draws.or(lower.draws),
        );
        Ok(SweepSettings {
            lambdas: None,
            lambda_grid: None,
            lambda_random: None,
            grid,
            random,
            draws,
            ..upper.over_table(&lower)
        })
    }

    /// The schedule the settings ask for: `schedule` when given, else the one
    /// the schedule-specific settings and axes belong to, else `default`.
    /// Settings of two schedules at once are refused, naming them.
    pub fn schedule_kind(&self, default: ScheduleKind) -> Result<ScheduleKind> {
        let axes = self.named_axes();
        let hint = |k: ScheduleKind| -> Vec<&'static str> {
            axes.iter()
                .filter(|a| a.schedule() == Some(k))
                .map(|a| a.name())
                .collect()
        };
        let (fixed, decay, cyclic) = (
            hint(ScheduleKind::Fixed),
            hint(ScheduleKind::Decay),
            hint(ScheduleKind::Cyclic),
        );
        let kind = match self.schedule {
            Some(k) => k,
            None if !cyclic.is_empty() => ScheduleKind::Cyclic,
            None if !decay.is_empty() => ScheduleKind::Decay,
            None if !fixed.is_empty() => ScheduleKind::Fixed,
            None => default,
        };
        let foreign: Vec<&str> = match kind {
            ScheduleKind::Cyclic => fixed.iter().chain(&decay).copied().collect(),
            ScheduleKind::Fixed => decay.iter().chain(&cyclic).copied().collect(),
            ScheduleKind::Decay => cyclic.clone(),
        };
        if !foreign.is_empty() {
            let what = match kind {
                ScheduleKind::Cyclic => "the cyclical schedule (eta_min, eta_max, ns, cycles)",
                ScheduleKind::Fixed => "a fixed eta (eta, epochs)",
                ScheduleKind::Decay => "step decay (eta, epochs, decay_factor, decay_every)",
            };
            bail!(
                "{} do{} not belong to {what}: drop {}, or choose the schedule with --schedule fixed|decay|cyclic",
                foreign.join(", "),
                if foreign.len() == 1 { "es" } else { "" },
                if foreign.len() == 1 { "it" } else { "them" }
            );
        }
        Ok(kind)
    }

    /// The fixed settings over `base`, with the schedule resolved (`base`'s
    /// schedule is the default when nothing says which).
    pub fn train_settings(&self, base: TrainSettings) -> Result<TrainSettings> {
        let d = base;
        let schedule = self.schedule_kind(d.schedule)?;
        let s = self.resolve(d, schedule);
        // Flags that would do nothing here are refused, not ignored.
        let varied = self.named_axes();
        if self.n_val.is_some() && s.split.kind == crate::data::SplitKind::A1 {
            bail!(
                "--n-val sets the validation images of --split full; --split a1 validates on data_batch_2. \
                 Drop --n-val, or give --split full"
            );
        }
        if self.pad.is_some() && s.augment.translate == 0 && !varied.contains(&Axis::Translate) {
            bail!("--pad fills the pixels a translation uncovers: give --translate K too, or drop --pad");
        }
        if let crate::train::EvalTrain::Sample(n) = s.eval_train {
            let images = s.split.train_len();
            if self.eval_train.is_some() && n > images {
                bail!(
                    "--eval-train {n} is more than the {images} training images: give at most {images}, or `all`"
                );
            }
        }
        Ok(s)
    }

    fn resolve(&self, d: TrainSettings, schedule: crate::train::ScheduleKind) -> TrainSettings {
        TrainSettings {
            model: self.model.unwrap_or(if self.hidden.is_some() {
                crate::nn::ModelKind::Mlp
            } else {
                d.model
            }),
            hidden: self.hidden.clone().unwrap_or(d.hidden),
            loss: self.loss.unwrap_or(d.loss),
            lambda: self.lambda.unwrap_or(d.lambda),
            schedule,
            eta: self.eta.unwrap_or(d.eta),
            decay_factor: self.decay_factor.unwrap_or(d.decay_factor),
            decay_every: self.decay_every.unwrap_or(d.decay_every),
            cycles: self.cycles.unwrap_or(d.cycles),
            eta_min: self.eta_min.unwrap_or(d.eta_min),
            eta_max: self.eta_max.unwrap_or(d.eta_max),
            ns: self.ns.unwrap_or(d.ns),
            epochs: self.epochs.unwrap_or(d.epochs),
            steps: self.steps.or(d.steps),
            log_points: self.log_points.unwrap_or(d.log_points),
            eval_train: self.eval_train.unwrap_or(d.eval_train),
            batch: self.batch.unwrap_or(d.batch),
            shuffle: self.shuffle.unwrap_or(d.shuffle),
            seed: self.seed.unwrap_or(d.seed),
            split: crate::data::SplitSpec {
                kind: self.split.unwrap_or(d.split.kind),
                n_val: self.n_val.unwrap_or(d.split.n_val),
                n_train: self.n_train.or(d.split.n_train),
                whiten: self.whiten.unwrap_or(d.split.whiten),
                whiten_eps: self.whiten_eps.unwrap_or(d.split.whiten_eps),
                data: d.split.data,
            },
            precision: self.precision.unwrap_or(d.precision),
            save_weights: self.save_weights.unwrap_or(d.save_weights),
            augment: crate::data::Augment {
                flip: self.flip.unwrap_or(d.augment.flip),
                translate: self.translate.unwrap_or(d.augment.translate),
                pad: self.pad.unwrap_or(d.augment.pad),
            },
            dropout: self.dropout.unwrap_or(d.dropout),
            label_smoothing: self.label_smoothing.unwrap_or(d.label_smoothing),
            batch_norm: self.batch_norm.unwrap_or(d.batch_norm),
            member: self.member.unwrap_or(d.member),
            snapshots: self.snapshots.unwrap_or(d.snapshots),
            save_probs: self.save_probs.unwrap_or(d.save_probs),
            momentum: self.momentum.unwrap_or(d.momentum),
            tta: self.tta.unwrap_or(d.tta),
        }
    }

    /// The sweep these settings describe over `base` (the command's defaults):
    /// with no axis at all, the defaults' eight log-spaced lambdas.
    pub fn spec(&self, base: TrainSettings) -> Result<SweepSpec> {
        let s = self.clone().normalised()?;
        let settings = s.train_settings(base)?;
        let mut grid = Vec::new();
        let mut seen: Vec<Axis> = Vec::new();
        for (name, v) in s.grid.iter().flatten() {
            let axis = Axis::parse(name)?;
            if seen.contains(&axis) {
                bail!("axis {name} is given twice");
            }
            seen.push(axis);
            grid.push(AxisValues {
                axis,
                values: grid_values(axis, &toml_text(v))?,
            });
        }
        let mut ranges = Vec::new();
        for (name, v) in s.random.iter().flatten() {
            let axis = Axis::parse(name)?;
            if seen.contains(&axis) {
                bail!("axis {name} is both in the grid and drawn at random: keep one");
            }
            seen.push(axis);
            ranges.push((axis, toml_text(v)));
        }
        let random = if ranges.is_empty() {
            if s.draws.is_some() {
                bail!("--draws without a random axis: add --random NAME=LO:HI");
            }
            vec![]
        } else {
            let draws = s.draws.unwrap_or(8);
            if draws == 0 || draws > MAX_AXIS_VALUES {
                bail!("--draws {draws}: draw between 1 and {MAX_AXIS_VALUES} configurations");
            }
            random_values(&ranges, draws, settings.seed)?
        };
        let only_lambda = seen == [Axis::Lambda];
        let mut spec = SweepSpec {
            prefix: if only_lambda || seen.is_empty() {
                "lambda".into()
            } else {
                "run".into()
            },
            base: settings.clone(),
            grid,
            random,
        };
        if seen.is_empty() && s.lambda.is_none() {
            spec.grid = SweepSpec::default().grid;
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod settings_tests {
    use super::*;

    /// The table names every sweep axis: its TOML key is the axis's name, and
    /// a fixed value of it fixes that axis and no other.
    #[test]
    fn every_axis_is_a_setting_of_the_table_under_its_name() {
        for axis in crate::train::settings::AXES {
            let value = match axis {
                Axis::Hidden => "[7]",
                Axis::Loss => "\"bce\"",
                Axis::Flip | Axis::BatchNorm | Axis::Tta => "true",
                a if a.is_integer() => "17",
                _ => "0.37",
            };
            let toml = format!("{} = {value}", axis.name());
            let fixed: SweepSettings =
                toml::from_str(&toml).unwrap_or_else(|e| panic!("{toml}: {e}"));
            assert_eq!(fixed.fixed_axes(), vec![axis], "{toml}");
        }
    }

    fn spec(file: &str, flags: SweepSettings) -> Result<SweepSpec> {
        let file: SweepSettings = toml::from_str(file).unwrap();
        flags.over(file)?.spec(TrainSettings::sweep_default())
    }

    #[test]
    fn flags_over_file_over_defaults() {
        let flags = SweepSettings {
            lambda_grid: Some("1e-4:1e-2:3".into()),
            cycles: Some(1),
            ..Default::default()
        };
        let s = spec(
            "lambdas = [0.1, 0.2]\ncycles = 3\nmodel = \"linear\"\nhidden = [20]\nprecision = \"f64\"\n",
            flags,
        )
        .unwrap();
        // The flags' lambdas replace the file's; other fields merge one by one.
        assert_eq!(s.axes(), vec![Axis::Lambda]);
        let configs = s.configs().unwrap();
        let l: Vec<f64> = configs.iter().map(|c| c.lambda).collect();
        assert_eq!(l.len(), 3);
        assert!((l[0] / 1e-4 - 1.0).abs() < 1e-12 && (l[2] / 1e-2 - 1.0).abs() < 1e-12);
        assert_eq!(s.base.cycles, 1);
        assert!(configs[0].hidden.is_empty(), "linear has no hidden layer");
        assert_eq!(s.base.precision, crate::nn::Precision::F64);
        assert_eq!(configs[0].name, "lambda01_1.000e-4");
    }

    #[test]
    fn two_axis_grids_from_toml_and_flags_make_every_combination() {
        let toml = "[grid]\neta_max = [0.05, 0.1]\nhidden = \"50,100x50\"\n";
        let s = spec(toml, SweepSettings::default()).unwrap();
        let c = s.configs().unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].name, "run01_eta_max0.05_hidden50");
        assert_eq!(c[3].hidden, vec![100, 50]);
        assert_eq!(c[3].schedule.eta_peak(), 0.1);
        // The flag form gives the same plan.
        let mut grid = toml::Table::new();
        grid.insert("eta_max".into(), "0.05,0.1".into());
        grid.insert("hidden".into(), "50,100x50".into());
        let f = spec(
            "",
            SweepSettings {
                grid: Some(grid),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(f.configs().unwrap(), c);
        // eta_max differs within a group; hidden widths make their own groups.
        let groups = group_configs(&c, 4);
        assert_eq!(groups.len(), 2);
    }

    #[test]
    fn a_fixed_eta_lambda_grid_is_assignment_one_style() {
        let s = spec(
            "model = \"linear\"\nepochs = 40\nsplit = \"a1\"\n[grid]\nlambda = \"0,0.1,1\"\neta = \"0.1,0.001\"\n",
            SweepSettings::default(),
        )
        .unwrap();
        let c = s.configs().unwrap();
        assert_eq!(c.len(), 6);
        assert!(c.iter().all(|c| c.steps == 4000 && c.log_every == 100));
        assert_eq!(c[1].schedule, crate::train::Schedule::Fixed { eta: 0.001 });
        assert_eq!(
            group_configs(&c, 8).len(),
            1,
            "eta and lambda may differ in lockstep"
        );
    }

    #[test]
    fn ranges_and_random_draws() {
        let v = grid_values(Axis::Lambda, "1e-5:1e-1:5").unwrap();
        let want = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1];
        for (a, b) in v.iter().zip(want) {
            assert!((a.as_number().unwrap() / b - 1.0).abs() < 1e-12);
        }
        let v = grid_values(Axis::Hidden, "50:200:4:lin").unwrap();
        assert_eq!(
            v.iter().map(Value::label).collect::<Vec<_>>(),
            ["50", "100", "150", "200"]
        );
        let v = grid_values(Axis::Batch, "10:12:5:lin").unwrap();
        assert_eq!(v.len(), 3, "rounded repeats are dropped");
        let r = random_values(&[(Axis::Lambda, "1e-5:1e-1".into())], 100, 3).unwrap();
        let l: Vec<f64> = r[0].values.iter().filter_map(Value::as_number).collect();
        assert!(l.iter().all(|&v| (1e-5..=1e-1).contains(&v)));
        assert!(
            l.iter().any(|&v| v < 1e-4) && l.iter().any(|&v| v > 1e-2),
            "log-uniform covers the decades"
        );
        assert_eq!(
            r,
            random_values(&[(Axis::Lambda, "1e-5:1e-1".into())], 100, 3).unwrap()
        );
        // --lambda-random is the same draw.
        let s = spec(
            "",
            SweepSettings {
                lambda_random: Some("1e-5:1e-1:100".into()),
                seed: Some(3),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.random, r);
    }

    #[test]
    fn unknown_keys_axes_and_values_are_errors() {
        let e = toml::from_str::<SweepSettings>("cylces = 3").unwrap_err();
        assert!(e.to_string().contains("cylces"), "{e}");
        let e = toml::from_str::<SweepSettings>("model = \"cnn\"").unwrap_err();
        assert!(e.to_string().contains("linear"), "{e}");
        let bad = |toml: &str| {
            spec(toml, SweepSettings::default())
                .unwrap_err()
                .to_string()
        };
        assert!(bad("lambdas = [-1.0]").contains("lambda"));
        assert!(bad("[grid]\nwidth = \"50\"").contains("unknown sweep axis `width`"));
        assert!(bad("[grid]\nlambda = \"1e-5:1e-1\"").contains("LO:HI:N"));
        let e = bad("eta = 0.01\n[grid]\neta_max = \"0.1,0.2\"");
        assert!(e.contains("eta do") && e.contains("--schedule"), "{e}");
        assert!(bad("[random]\nlambda = \"0:1e-1\"").contains("LO > 0"));
    }
}
