//! The plans of successive halving (Jamieson & Talwalkar, AISTATS 2016) and
//! Hyperband (Li et al., JMLR 2018): which configurations start in which
//! bracket, the budgets of each bracket's rungs, and how many go on from each
//! rung. Budgets count cycles of a cyclical schedule or epochs of a fixed
//! one. A plan depends on the configuration count and the flags alone.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::plan::SweepSpec;
use crate::train::{Axis, ScheduleKind};

/// File name of the rung record in a pruned search's folder
/// ([`super::halving::RungRecord`]).
pub const RUNGS_FILE: &str = "rungs.json";

/// Which pruned search a plan is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// One bracket: every configuration starts at the smallest budget.
    Halving,
    /// The paper's brackets, from many configurations at the smallest budget
    /// to a few at the largest.
    Hyperband,
}

/// What a rung's budget counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetUnit {
    /// Cycles of the cyclical schedule (2 n_s steps each).
    Cycles,
    /// Epochs of a fixed or step-decay schedule.
    Epochs,
}

impl BudgetUnit {
    /// The unit's name, plural.
    pub fn name(self) -> &'static str {
        match self {
            BudgetUnit::Cycles => "cycles",
            BudgetUnit::Epochs => "epochs",
        }
    }

    /// "1 cycle", "3 cycles", "1 epoch".
    pub fn count(self, n: usize) -> String {
        let name = self.name();
        if n == 1 {
            format!("1 {}", &name[..name.len() - 1])
        } else {
            format!("{n} {name}")
        }
    }
}

/// One successive-halving run inside a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bracket {
    /// Indices into the plan of the configurations that start here, in plan order.
    pub members: Vec<usize>,
    /// Budget of each rung, increasing; the last is the plan's top budget.
    pub budgets: Vec<usize>,
    /// How many of rung i's configurations go on to rung i + 1 (one fewer
    /// entry than `budgets`).
    pub keep: Vec<usize>,
}

/// A pruned search's plan: its brackets over the configurations of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ladder {
    /// Successive halving or Hyperband.
    pub method: Method,
    /// The factor eta: a rung keeps about 1 in `reduction` and gives the
    /// survivors `reduction` times the budget.
    pub reduction: usize,
    /// What budgets count.
    pub unit: BudgetUnit,
    /// Smallest budget.
    pub min: usize,
    /// Top budget: every configuration's own length (its `steps`).
    pub max: usize,
    /// The brackets, run side by side.
    pub brackets: Vec<Bracket>,
}

/// The flag names of a budget unit, for messages: (`--min-X`, `--max-X`).
fn flags(unit: BudgetUnit) -> (String, String) {
    (
        format!("--min-{}", unit.name()),
        format!("--max-{}", unit.name()),
    )
}

/// Refuses a reduction factor below 2, which would prune nothing.
fn check_reduction(reduction: usize) -> Result<()> {
    if reduction < 2 {
        bail!("--reduction {reduction}: each rung must keep fewer than it trained; give 2 or more (3 is usual)");
    }
    Ok(())
}

/// The budgets min, min·eta, ..., max: refused unless max is min times a
/// power of eta.
pub fn budgets(unit: BudgetUnit, min: usize, max: usize, reduction: usize) -> Result<Vec<usize>> {
    let (lo, hi) = flags(unit);
    check_reduction(reduction)?;
    if min == 0 || min >= max {
        bail!("{lo} {min} / {hi} {max}: need 1 <= {lo} < {hi}, e.g. 1 and 9");
    }
    let mut out = vec![min];
    while *out.last().expect("not empty") < max {
        let next = out.last().expect("not empty").saturating_mul(reduction);
        out.push(next);
    }
    if *out.last().expect("not empty") != max {
        let fits: Vec<String> = out.iter().map(|b| b.to_string()).collect();
        bail!(
            "{hi} {max} is not {lo} {min} times a power of --reduction {reduction}, so the rungs ({}, ...) \
             miss the top budget: give {hi} {} or {}, or another {lo}",
            fits.join(", "),
            out[out.len() - 2],
            out[out.len() - 1]
        );
    }
    Ok(out)
}

impl Ladder {
    /// Successive halving of `n` configurations: every one at `min`, the best
    /// ceil(n_i / reduction) of rung i go on, to `max`.
    pub fn halving(
        n: usize,
        reduction: usize,
        unit: BudgetUnit,
        min: usize,
        max: usize,
    ) -> Result<Ladder> {
        let budgets = budgets(unit, min, max, reduction)?;
        if n < reduction {
            bail!(
                "--halving keeps 1 in {reduction} (--reduction) at each rung, and the sweep has {n} configuration{}: \
                 give at least {reduction} (more --random draws or grid values) or a smaller --reduction",
                if n == 1 { "" } else { "s" }
            );
        }
        let mut keep = Vec::new();
        let mut alive = n;
        for _ in 1..budgets.len() {
            alive = alive.div_ceil(reduction);
            keep.push(alive);
        }
        Ok(Ladder {
            method: Method::Halving,
            reduction,
            unit,
            min,
            max,
            brackets: vec![Bracket {
                members: (0..n).collect(),
                budgets,
                keep,
            }],
        })
    }

    /// How many configurations each of Hyperband's brackets starts with, from
    /// the most aggressive (s = s_max, every rung) to plain training at `max`
    /// (s = 0): n_s = ceil((s_max + 1) eta^s / (s + 1)).
    pub fn hyperband_sizes(reduction: usize, rungs: usize) -> Vec<usize> {
        let s_max = rungs - 1;
        (0..=s_max)
            .rev()
            .map(|s| ((s_max + 1) * reduction.pow(s as u32)).div_ceil(s + 1))
            .collect()
    }

    /// Hyperband over `n` configurations, which must be exactly what its
    /// brackets start with ([`Self::hyperband_sizes`]), dealt to the brackets
    /// in plan order. Bracket s starts at budget max eta^-s; rung i keeps
    /// floor(n_i / eta), as in the paper.
    pub fn hyperband(
        n: usize,
        reduction: usize,
        unit: BudgetUnit,
        min: usize,
        max: usize,
    ) -> Result<Ladder> {
        let all = budgets(unit, min, max, reduction)?;
        let sizes = Self::hyperband_sizes(reduction, all.len());
        let total: usize = sizes.iter().sum();
        if n != total {
            let list: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
            bail!(
                "--hyperband with --reduction {reduction} from {} to {} runs brackets of {} configurations, \
                 {total} in all, and the sweep has {n}: give --random {total} (or a grid of {total})",
                unit.count(min),
                unit.count(max),
                list.join(", ")
            );
        }
        let mut start = 0;
        let brackets = sizes
            .iter()
            .enumerate()
            .map(|(b, &size)| {
                let budgets = all[b..].to_vec();
                let mut keep = Vec::new();
                let mut alive = size;
                for _ in 1..budgets.len() {
                    alive = (alive / reduction).max(1);
                    keep.push(alive);
                }
                let members = (start..start + size).collect();
                start += size;
                Bracket {
                    members,
                    budgets,
                    keep,
                }
            })
            .collect();
        Ok(Ladder {
            method: Method::Hyperband,
            reduction,
            unit,
            min,
            max,
            brackets,
        })
    }

    /// How many stages the plan takes: its longest bracket's rungs.
    pub fn stages(&self) -> usize {
        self.brackets
            .iter()
            .map(|b| b.budgets.len())
            .max()
            .unwrap_or(0)
    }

    /// The configurations of the plan, all brackets together.
    pub fn configurations(&self) -> usize {
        self.brackets.iter().map(|b| b.members.len()).sum()
    }

    /// The work the plan does, in configuration-budgets (configuration-cycles
    /// or configuration-epochs): each rung trains its configurations from the
    /// last rung's budget to its own.
    pub fn planned_work(&self) -> usize {
        self.brackets
            .iter()
            .map(|b| {
                let mut alive = b.members.len();
                let mut from = 0;
                let mut work = 0;
                for (i, &budget) in b.budgets.iter().enumerate() {
                    work += alive * (budget - from);
                    from = budget;
                    alive = b.keep.get(i).copied().unwrap_or(0);
                }
                work
            })
            .sum()
    }

    /// The work of training every configuration to the top budget.
    pub fn full_work(&self) -> usize {
        self.configurations() * self.max
    }

    /// The step at which a configuration of `steps` steps (the top budget)
    /// reaches `budget`.
    pub fn step_of(&self, steps: usize, budget: usize) -> usize {
        steps / self.max * budget
    }

    /// The brackets as people read them: "27 at 1 cycle, 9 at 3, 3 at 9" each.
    fn bracket_texts(&self) -> Vec<String> {
        self.brackets
            .iter()
            .map(|b| {
                let mut alive = b.members.len();
                let parts: Vec<String> = b
                    .budgets
                    .iter()
                    .enumerate()
                    .map(|(i, &budget)| {
                        let s = if i == 0 {
                            format!("{alive} at {}", self.unit.count(budget))
                        } else {
                            format!("{alive} at {budget}")
                        };
                        alive = b.keep.get(i).copied().unwrap_or(0);
                        s
                    })
                    .collect();
                parts.join(", ")
            })
            .collect()
    }

    /// "successive halving" or "Hyperband", with the reduction.
    fn title(&self) -> String {
        format!(
            "{} (reduction {})",
            match self.method {
                Method::Halving => "successive halving",
                Method::Hyperband => "Hyperband",
            },
            self.reduction
        )
    }

    /// The share of the full sweep's work, e.g. "26% of the full sweep's work".
    fn share(&self) -> String {
        format!(
            "{:.0}% of the full sweep's work",
            100.0 * self.planned_work() as f64 / self.full_work().max(1) as f64
        )
    }

    /// One line for reports: "successive halving (reduction 3): 27 at 1
    /// cycle, 9 at 3, 3 at 9; 26% of the full sweep's work".
    pub fn describe(&self) -> String {
        format!(
            "{}: {}; {}",
            self.title(),
            self.bracket_texts().join("; "),
            self.share()
        )
    }

    /// The same for a terminal of 80 columns: one line per bracket under a
    /// title when there are several.
    pub fn describe_lines(&self) -> Vec<String> {
        let brackets = self.bracket_texts();
        if brackets.len() == 1 {
            return vec![self.describe()];
        }
        let mut out = vec![format!(
            "{}, {} brackets; {}",
            self.title(),
            brackets.len(),
            self.share()
        )];
        out.extend(
            brackets
                .iter()
                .enumerate()
                .map(|(b, t)| format!("  bracket {}: {t}", b + 1)),
        );
        out
    }
}

/// The flags of a pruned search as given (`--halving`, `--hyperband`,
/// `--reduction`, `--min-cycles`, ...); absent ones take their defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PruneFlags {
    /// Which search, if any.
    pub method: Option<Method>,
    /// The factor eta [3].
    pub reduction: Option<usize>,
    /// Smallest budget in cycles.
    pub min_cycles: Option<usize>,
    /// Top budget in cycles [the sweep's --cycles].
    pub max_cycles: Option<usize>,
    /// Smallest budget in epochs.
    pub min_epochs: Option<usize>,
    /// Top budget in epochs [the sweep's --epochs].
    pub max_epochs: Option<usize>,
}

/// Default of `--reduction` (Hyperband's paper; Optuna's Hyperband pruner).
pub const DEFAULT_REDUCTION: usize = 3;

impl PruneFlags {
    /// The folder of a search's pruned stage: `halving` or `hyperband`.
    pub fn folder(&self) -> &'static str {
        match self.method {
            Some(Method::Hyperband) => "hyperband",
            _ => "halving",
        }
    }

    /// The flag that asks for this search: `--halving` or `--hyperband`.
    pub fn flag(&self) -> &'static str {
        match self.method {
            Some(Method::Hyperband) => "--hyperband",
            _ => "--halving",
        }
    }

    /// How many configurations Hyperband's brackets start with for these
    /// flags over `spec`'s budgets (the cyclical schedule's cycles), if the
    /// flags ask for Hyperband and its budgets are valid.
    pub fn hyperband_total(&self, spec: &SweepSpec) -> Option<usize> {
        if self.method != Some(Method::Hyperband) {
            return None;
        }
        let reduction = self.reduction.unwrap_or(DEFAULT_REDUCTION);
        let max = self.max_cycles.unwrap_or(spec.base.cycles);
        let min = self.min_cycles.unwrap_or(1);
        let b = budgets(BudgetUnit::Cycles, min, max, reduction).ok()?;
        Some(Ladder::hyperband_sizes(reduction, b.len()).iter().sum())
    }

    /// Fits `spec` to the pruned search and returns its plan over the spec's
    /// configurations: every run's length becomes the top budget (`--max-X`,
    /// else the sweep's own cycles or epochs), and the smallest budget is
    /// `--min-X`, else the top divided by the reduction as often as it
    /// divides. Refuses what has no meaning under pruning, naming the fix:
    /// a fixed `--steps`, the budget as an axis, snapshot averaging over the
    /// last cycles (which ones depends on the total).
    pub fn fit(&self, spec: &mut SweepSpec) -> Result<Option<Ladder>> {
        let Some(method) = self.method else {
            return Ok(None);
        };
        let flag = self.flag();
        let reduction = self.reduction.unwrap_or(DEFAULT_REDUCTION);
        check_reduction(reduction)?;
        let cyclic = spec.base.schedule == ScheduleKind::Cyclic;
        let unit = if cyclic {
            BudgetUnit::Cycles
        } else {
            BudgetUnit::Epochs
        };
        let (min, max, other) = if cyclic {
            (
                self.min_cycles,
                self.max_cycles,
                self.min_epochs.or(self.max_epochs),
            )
        } else {
            (
                self.min_epochs,
                self.max_epochs,
                self.min_cycles.or(self.max_cycles),
            )
        };
        if other.is_some() {
            let (lo, hi) = flags(unit);
            bail!(
                "{flag}: the {} schedule's budgets count {}: give {lo} and {hi}",
                if cyclic {
                    "cyclical"
                } else {
                    "fixed or decaying"
                },
                unit.name()
            );
        }
        if spec.base.steps.is_some() {
            bail!(
                "{flag} with --steps: the rungs cut each run into whole {}; leave --steps out and give --max-{}",
                unit.name(),
                unit.name()
            );
        }
        let varied = spec.axes();
        let budget_axis = if cyclic { Axis::Cycles } else { Axis::Epochs };
        for axis in [budget_axis, Axis::Steps] {
            if varied.contains(&axis) {
                bail!(
                    "{flag} with {} as an axis: the rungs set every run's length; drop the axis and give --min-{u} and --max-{u}",
                    axis.name(),
                    u = unit.name()
                );
            }
        }
        if spec.base.snapshots > 0 || varied.contains(&Axis::Snapshots) {
            bail!(
                "{flag} with --snapshots: a snapshot ensemble averages the last cycles of the whole run,                  which are not those of a rung; leave --snapshots out (or set it to 0)"
            );
        }
        let max = max.unwrap_or(if cyclic {
            spec.base.cycles
        } else {
            spec.base.epochs
        });
        let min = min.unwrap_or_else(|| {
            let mut m = max;
            while m % reduction == 0 && m > 0 && reduction > 1 {
                m /= reduction;
            }
            m
        });
        if min == max {
            let u = unit.name();
            bail!(
                "{flag}: the runs are {} long, which --reduction {reduction} cannot cut into rungs; give the top \
                 budget as --max-{u} {} (or {}) with --min-{u} 1",
                unit.count(max),
                reduction.pow(2),
                reduction
            );
        }
        if cyclic {
            spec.base.cycles = max;
        } else {
            spec.base.epochs = max;
        }
        let (n, _) = spec.count();
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        Ok(Some(match method {
            Method::Halving => Ladder::halving(n, reduction, unit, min, max)?,
            Method::Hyperband => Ladder::hyperband(n, reduction, unit, min, max)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halving_keeps_the_ceiling_of_one_in_eta_and_counts_its_work() {
        let l = Ladder::halving(27, 3, BudgetUnit::Cycles, 1, 9).unwrap();
        assert_eq!(l.brackets[0].budgets, vec![1, 3, 9]);
        assert_eq!(l.brackets[0].keep, vec![9, 3]);
        assert_eq!(l.planned_work(), 27 + 9 * 2 + 3 * 6);
        assert_eq!(l.full_work(), 243);
        let odd = Ladder::halving(10, 3, BudgetUnit::Epochs, 2, 18).unwrap();
        assert_eq!(odd.brackets[0].keep, vec![4, 2]);
        assert_eq!(odd.step_of(1800, 6), 600);
        assert_eq!(
            l.describe(),
            "successive halving (reduction 3): 27 at 1 cycle, 9 at 3, 3 at 9; 26% of the full sweep's work"
        );
        let h = Ladder::hyperband(17, 3, BudgetUnit::Cycles, 1, 9).unwrap();
        let lines = h.describe_lines();
        assert_eq!(lines[1], "  bracket 1: 9 at 1 cycle, 3 at 3, 1 at 9");
        assert_eq!(lines[3], "  bracket 3: 3 at 9 cycles");
        assert!(lines.iter().all(|l| l.chars().count() <= 80), "{lines:?}");
    }

    #[test]
    fn hyperband_has_the_papers_brackets() {
        // eta 3, R = 9 (s_max 2): n = 9, 5, 3 starting at r = 1, 3, 9.
        assert_eq!(Ladder::hyperband_sizes(3, 3), vec![9, 5, 3]);
        // eta 3, R = 81 (s_max 4): the paper's table 1 gives 81, 34, 15, 8, 5.
        assert_eq!(Ladder::hyperband_sizes(3, 5), vec![81, 34, 15, 8, 5]);
        let l = Ladder::hyperband(17, 3, BudgetUnit::Cycles, 1, 9).unwrap();
        let b: Vec<(Vec<usize>, Vec<usize>, Vec<usize>)> = l
            .brackets
            .iter()
            .map(|b| (b.members.clone(), b.budgets.clone(), b.keep.clone()))
            .collect();
        assert_eq!(b[0], ((0..9).collect(), vec![1, 3, 9], vec![3, 1]));
        assert_eq!(b[1], ((9..14).collect(), vec![3, 9], vec![1]));
        assert_eq!(b[2], ((14..17).collect(), vec![9], vec![]));
        assert_eq!(l.stages(), 3);
    }

    #[test]
    fn plans_that_cannot_run_are_refused_naming_the_fix() {
        let e = |r: Result<Ladder>| r.unwrap_err().to_string();
        let m = e(Ladder::halving(2, 3, BudgetUnit::Cycles, 1, 9));
        assert!(
            m.contains("has 2 configurations") && m.contains("--reduction"),
            "{m}"
        );
        let m = e(Ladder::halving(27, 3, BudgetUnit::Cycles, 1, 10));
        assert!(
            m.contains("--max-cycles 10 is not --min-cycles 1 times a power of --reduction 3"),
            "{m}"
        );
        assert!(m.contains("give --max-cycles 9 or 27"), "{m}");
        let m = e(Ladder::halving(27, 1, BudgetUnit::Cycles, 1, 9));
        assert!(m.contains("--reduction 1"), "{m}");
        let m = e(Ladder::halving(27, 3, BudgetUnit::Epochs, 4, 4));
        assert!(m.contains("--min-epochs 4 / --max-epochs 4"), "{m}");
        let m = e(Ladder::hyperband(27, 3, BudgetUnit::Cycles, 1, 9));
        assert!(
            m.contains("brackets of 9, 5, 3 configurations, 17 in all"),
            "{m}"
        );
        assert!(m.contains("--random 17"), "{m}");
    }
}
