//! The coarse-to-fine search of Assignment 2 on any scale axis (lambda by
//! default): a coarse random sweep over a wide log range, a fine one centred
//! on the best value so far, then the `top` values of both stages trained on
//! more data, reporting test accuracy. A stage can also run one shard of its
//! lockstep groups (`--stage S --shard K/N`), for Slurm arrays.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::{RawData, SplitKind};
use crate::sweep::ladder::{Ladder, PruneFlags};
use crate::sweep::plan::{random_values, AxisValues, SweepSpec};
use crate::sweep::results::{axis_columns, ranking, write_tables, SearchSummary};
use crate::sweep::shard::{Shard, ShardRecord};
use crate::sweep::{run_configs, run_configs_shard, RunnerOptions};
use crate::train::output::RunResult;
use crate::train::{Axis, Control, Status, TrainSettings, Value};
use crate::ui::{Dashboard, DisplayMode};
use crate::util::{write_atomic, write_json};

/// Settings of a search.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchOptions {
    /// The scale axis searched (lambda, eta, eta_min or eta_max).
    pub axis: Axis,
    /// The coarse range: (lo, hi, draws), log-uniform.
    pub coarse_range: (f64, f64, usize),
    /// Fixed settings of every stage (the coarse stage's cycles).
    pub base: TrainSettings,
    /// Values of the fine sweep.
    pub fine_n: usize,
    /// Cycles of the fine sweep.
    pub fine_cycles: usize,
    /// Half-width of the fine range around the best value so far, in decades.
    pub fine_decades: f64,
    /// Values trained in the final stage: the best of the coarse and fine
    /// stages together, by validation accuracy.
    pub top: usize,
    /// Cycles of the final runs.
    pub final_cycles: usize,
    /// Validation images held out in the final runs (the rest of the five
    /// training batches train).
    pub final_n_val: usize,
    /// A pruned search (`--method halving|hyperband`) in place of the coarse
    /// and fine stages: the coarse range's draws, pruned in lockstep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneFlags>,
}

impl Default for SearchOptions {
    /// Assignment 2's search: 8 lambdas in 1e-5..1e-1 for 2 cycles of n_s 900,
    /// 8 in the half-decade around the best for 3 cycles, then the best 3 on
    /// 49,000 images for 3 cycles.
    fn default() -> Self {
        SearchOptions {
            axis: Axis::Lambda,
            coarse_range: (1e-5, 1e-1, 8),
            base: TrainSettings {
                cycles: 2,
                ns: 900,
                ..TrainSettings::sweep_default()
            },
            fine_n: 8,
            fine_cycles: 3,
            fine_decades: 0.5,
            top: 3,
            final_cycles: 3,
            final_n_val: 1000,
            prune: None,
        }
    }
}

impl SearchOptions {
    /// A stage's sweep over `base`: the axis's values as a grid, or as random
    /// draws (`random`), which only changes how the plan records them.
    fn stage(
        &self,
        prefix: &str,
        base: TrainSettings,
        axis_values: AxisValues,
        random: bool,
    ) -> SweepSpec {
        let (grid, random) = if random {
            (vec![], vec![axis_values])
        } else {
            (vec![axis_values], vec![])
        };
        SweepSpec {
            prefix: prefix.into(),
            base,
            grid,
            random,
        }
    }

    fn draw(&self, lo: f64, hi: f64, n: usize, seed: u64) -> Result<AxisValues> {
        let range = format!("{lo:e}:{hi:e}:log");
        Ok(random_values(&[(self.axis, range)], n, seed)?.remove(0))
    }

    /// The coarse stage's sweep.
    pub fn coarse(&self) -> Result<SweepSpec> {
        let (lo, hi, n) = self.coarse_range;
        let values = self.draw(lo, hi, n, self.base.seed)?;
        Ok(self.stage("coarse", self.base.clone(), values, true))
    }

    /// The pruned stage's sweep and its plan (with [`Self::prune`]): the
    /// coarse range's draws (as many as Hyperband's brackets take), every run
    /// as long as the top budget (`--max-cycles`, else `--fine-cycles`).
    pub fn pruned(&self) -> Result<Option<(SweepSpec, Ladder)>> {
        let Some(flags) = &self.prune else {
            return Ok(None);
        };
        let (lo, hi, n) = self.coarse_range;
        let base = TrainSettings {
            cycles: self.fine_cycles,
            ..self.base.clone()
        };
        let mut spec = self.stage(
            flags.folder(),
            base,
            AxisValues {
                axis: self.axis,
                values: vec![],
            },
            true,
        );
        let n = flags.hyperband_total(&spec).unwrap_or(n);
        spec.random = vec![self.draw(lo, hi, n, self.base.seed)?];
        let ladder = flags
            .fit(&mut spec)?
            .context("a pruned search names its method")?;
        Ok(Some((spec, ladder)))
    }

    /// The fine stage's sweep, centred on the best value so far, and its range.
    pub fn fine(&self, best: f64) -> Result<(SweepSpec, (f64, f64))> {
        let lo = best * 10f64.powf(-self.fine_decades);
        let hi = best * 10f64.powf(self.fine_decades);
        let base = TrainSettings {
            cycles: self.fine_cycles,
            ..self.base.clone()
        };
        let values = self.draw(lo, hi, self.fine_n, self.base.seed.wrapping_add(1))?;
        Ok((self.stage("fine", base, values, true), (lo, hi)))
    }

    /// The final stage's sweep: `values` trained on the full split less
    /// `final_n_val` validation images.
    pub fn last(&self, values: &[f64]) -> SweepSpec {
        let base = TrainSettings {
            cycles: self.final_cycles,
            ns: 0,
            split: crate::data::SplitSpec {
                kind: SplitKind::Full,
                n_val: self.final_n_val,
                n_train: None,
                ..self.base.split
            },
            ..self.base.clone()
        };
        let values = AxisValues {
            axis: self.axis,
            values: values.iter().map(|&v| Value::Num(v)).collect(),
        };
        self.stage("final", base, values, false)
    }
}

/// The axis value of each result, in plan order.
fn values_of(spec: &SweepSpec) -> Vec<f64> {
    spec.points()
        .iter()
        .map(|p| {
            p.last()
                .and_then(|(_, v)| v.as_number())
                .unwrap_or(f64::NAN)
        })
        .collect()
}

/// The stages of a search, in the order they run.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Random values over the whole range.
    Coarse,
    /// Random values around the best coarse value.
    Fine,
    /// `--method halving`: the coarse range's draws, pruned rung by rung.
    Halving,
    /// `--method hyperband`: draws of the coarse range in Hyperband's brackets.
    Hyperband,
    /// The best values on more data.
    Final,
}

impl Stage {
    /// The stage of a pruned search by `method`.
    pub fn pruned(method: crate::sweep::ladder::Method) -> Stage {
        match method {
            crate::sweep::ladder::Method::Halving => Stage::Halving,
            crate::sweep::ladder::Method::Hyperband => Stage::Hyperband,
        }
    }

    /// Whether the stage belongs to a pruned search (else to coarse-to-fine).
    pub fn is_pruned(self) -> bool {
        matches!(self, Stage::Halving | Stage::Hyperband)
    }

    /// The stage's name, which is also its folder.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Coarse => "coarse",
            Stage::Fine => "fine",
            Stage::Halving => "halving",
            Stage::Hyperband => "hyperband",
            Stage::Final => "final",
        }
    }
}

/// How a search (or one stage's shard of it) ended.
#[derive(Debug)]
pub enum SearchEnd {
    /// Every stage ran: the summary.
    Done(Box<SearchSummary>),
    /// Stopped by Ctrl-C or SIGTERM; checkpoints kept for `resume`.
    Interrupted,
    /// One shard of one stage ran (`--stage S --shard K/N`).
    Shard {
        /// The stage.
        stage: Stage,
        /// The shard.
        shard: Shard,
        /// Its configurations / the stage's.
        trained: usize,
        /// The stage's configurations.
        of: usize,
        /// Whether all of its runs finished.
        finished: bool,
    },
}

/// Runs the three stages into `runner.out`/{coarse,fine,final}. Returns `None`
/// when interrupted (checkpoints kept for `resume`).
pub fn search(
    data: &RawData,
    opts: &SearchOptions,
    runner: &RunnerOptions,
    control: &Control,
    mode: DisplayMode,
) -> Result<Option<SearchSummary>> {
    Ok(
        match search_stage(data, opts, runner, control, mode, None)? {
            SearchEnd::Done(s) => Some(*s),
            _ => None,
        },
    )
}

/// The finished results of `configs` in `out`, in order, for a later stage's
/// shard that needs them; refused, naming what is missing, when any is not
/// finished (it would be trained there, by every shard at once).
fn finished_stage(
    stage: Stage,
    later: Stage,
    configs: &[crate::train::RunConfig],
    runner: &RunnerOptions,
) -> Result<Vec<RunResult>> {
    // Checks (or records) the stage's plan, as a resume does.
    crate::util::create_dir(&runner.out)?;
    crate::sweep::runner::guard_plan(
        configs,
        &RunnerOptions {
            resume: true,
            force: false,
            shard: None,
            ..runner.clone()
        },
    )?;
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for c in configs {
        let path = runner.out.join(&c.name).join("result.json");
        match std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<RunResult>(&b).ok())
        {
            Some(r) if r.status != Status::Interrupted => results.push(r),
            _ => missing.push(c.name.clone()),
        }
    }
    if !missing.is_empty() {
        bail!(
            "--stage {}: the {} stage is not finished in {}: {} of {} runs have no result ({}). \
             The {} stage's values depend on it: run every shard of the {} stage first (--stage {} --shard K/N; \
             the --slurm chain runs them in order)",
            later.name(),
            stage.name(),
            runner.out.display(),
            missing.len(),
            configs.len(),
            missing.join(", "),
            later.name(),
            stage.name(),
            stage.name()
        );
    }
    Ok(results)
}

/// How one stage ended: its results and seconds, or, for the stage a shard
/// runs, the shard's end (nothing after it runs).
enum StageEnd {
    Results(Vec<RunResult>, f64),
    Shard(SearchEnd),
}

/// Runs the stages of one search into `runner.out`/{stage}, or with `only`
/// one shard of stage S (the stages before it read, not trained).
struct Stages<'a> {
    data: &'a RawData,
    runner: &'a RunnerOptions,
    control: &'a Control,
    mode: DisplayMode,
    only: Option<(Stage, Shard)>,
}

impl Stages<'_> {
    /// Stage `name` of sweep `spec`.
    fn run(&self, name: Stage, spec: &SweepSpec) -> Result<StageEnd> {
        let t0 = std::time::Instant::now();
        let configs = spec.configs()?;
        for c in &configs {
            c.validate(c.split.train_len())?;
        }
        let out = self.runner.out.join(name.name());
        let r = RunnerOptions {
            out: out.clone(),
            ..self.runner.clone()
        };
        if let Some((later, shard)) = self.only {
            if name < later {
                let results = finished_stage(name, later, &configs, &r)?;
                return Ok(StageEnd::Results(results, 0.0));
            }
            return self.shard(name, spec, &configs, shard, r, t0);
        }
        let dashboard = Dashboard::new(&configs, self.mode, |c| c.name.clone());
        let first = configs.first();
        dashboard.println(&format!(
            "== {} stage: {} run{}, {}, {} training images",
            name.name(),
            configs.len(),
            if configs.len() == 1 { "" } else { "s" },
            first.map_or(String::new(), |c| c.schedule.describe()),
            spec.base.split.train_len()
        ));
        let results = run_configs(&configs, self.data, &r, self.control, &dashboard)?;
        write_tables(&out, &results, &axis_columns(spec))?;
        write_json(&out.join("sweep.json"), spec)?;
        Ok(StageEnd::Results(results, t0.elapsed().as_secs_f64()))
    }

    /// The pruned stage of `spec` and `ladder` into its folder: every rung,
    /// its tables, and the rungs in them. With `only`: the final stage's
    /// shard reads it (finished), its own shard trains its groups of the
    /// current rung (`sweep merge` on its folder decides the rung).
    fn run_pruned(&self, spec: &SweepSpec, ladder: &Ladder) -> Result<StageEnd> {
        use crate::sweep::halving::{run_halving, HalvingMode};
        let t0 = std::time::Instant::now();
        let stage = Stage::pruned(ladder.method);
        let configs = spec.configs()?;
        for c in &configs {
            c.validate(c.split.train_len())?;
        }
        crate::sweep::halving::check(&configs, ladder)?;
        let out = self.runner.out.join(stage.name());
        let r = RunnerOptions {
            out: out.clone(),
            ladder: Some(ladder.clone()),
            ..self.runner.clone()
        };
        if let Some((later, shard)) = self.only {
            if later == Stage::Final {
                let results = finished_stage(stage, later, &configs, &r)?;
                return Ok(StageEnd::Results(results, 0.0));
            }
            let r = RunnerOptions {
                shard: Some(shard),
                ..r
            };
            let dashboard = Dashboard::new(&configs, self.mode, |c| c.name.clone());
            crate::util::create_dir(&out)?;
            write_json(&out.join("sweep.json"), spec)?;
            let results = run_halving(
                &configs,
                Some(self.data),
                &r,
                self.control,
                &dashboard,
                HalvingMode::Shard,
            )?;
            let trained = results
                .iter()
                .filter(|r| r.steps > 0 && r.status != Status::Interrupted)
                .count();
            let stopped = results
                .iter()
                .any(|r| r.status == Status::Interrupted && r.steps > 0);
            return Ok(StageEnd::Shard(SearchEnd::Shard {
                stage,
                shard,
                trained,
                of: configs.len(),
                finished: !stopped,
            }));
        }
        let dashboard = Dashboard::new(&configs, self.mode, |c| c.name.clone());
        dashboard.println(&format!(
            "== {} stage: {} runs, {} training images",
            stage.name(),
            configs.len(),
            spec.base.split.train_len()
        ));
        for line in ladder.describe_lines() {
            dashboard.println(&line);
        }
        let results = run_halving(
            &configs,
            Some(self.data),
            &r,
            self.control,
            &dashboard,
            HalvingMode::All,
        )?;
        let mut columns = axis_columns(spec);
        if let Some(record) = crate::sweep::halving::RungRecord::read(&out)? {
            columns.push(record.budget_column());
        }
        write_tables(&out, &results, &columns)?;
        write_json(&out.join("sweep.json"), spec)?;
        Ok(StageEnd::Results(results, t0.elapsed().as_secs_f64()))
    }

    /// One shard of stage `name`: its lockstep groups, then its record.
    fn shard(
        &self,
        name: Stage,
        spec: &SweepSpec,
        configs: &[crate::train::RunConfig],
        shard: Shard,
        r: RunnerOptions,
        t0: std::time::Instant,
    ) -> Result<StageEnd> {
        let r = RunnerOptions {
            shard: Some(shard),
            ..r
        };
        let mine = crate::sweep::configs_here(configs, &r);
        let dashboard = Dashboard::new(&mine, self.mode, |c| c.name.clone());
        dashboard.println(&format!(
            "== {} stage, shard {}: {} of {} runs",
            name.name(),
            shard.label(),
            mine.len(),
            configs.len()
        ));
        let results = run_configs_shard(configs, self.data, &r, self.control, &dashboard)?;
        write_json(&r.out.join("sweep.json"), spec)?;
        let finished = results
            .iter()
            .flatten()
            .all(|r| r.status != Status::Interrupted);
        ShardRecord::now(
            shard,
            mine.iter().map(|c| c.name.clone()).collect(),
            finished,
            self.runner.threads,
            t0.elapsed().as_secs_f64(),
        )
        .write(&r.out)?;
        Ok(StageEnd::Shard(SearchEnd::Shard {
            stage: name,
            shard,
            trained: mine.len(),
            of: configs.len(),
            finished,
        }))
    }
}

/// The values the final stage trains: the `top` distinct values of the
/// coarse and fine runs together, best validation accuracy first, among
/// finished runs.
fn top_values(runs: &[(&RunResult, f64)], top: usize) -> Vec<f64> {
    let pooled: Vec<RunResult> = runs.iter().map(|p| p.0.clone()).collect();
    let mut chosen: Vec<f64> = Vec::new();
    for i in ranking(&pooled) {
        if chosen.len() == top {
            break;
        }
        if runs[i].0.status == Status::Done && !chosen.contains(&runs[i].1) {
            chosen.push(runs[i].1);
        }
    }
    chosen
}

/// [`search`], or with `only = (S, shard)` one shard of stage S: the stages
/// before S must be finished in the folder (their results are read, not
/// trained), S trains the shard's lockstep groups and records the shard, and
/// nothing after S runs.
pub fn search_stage(
    data: &RawData,
    opts: &SearchOptions,
    runner: &RunnerOptions,
    control: &Control,
    mode: DisplayMode,
    only: Option<(Stage, Shard)>,
) -> Result<SearchEnd> {
    let stages = Stages {
        data,
        runner,
        control,
        mode,
        only,
    };
    // A stage's results and seconds, or how the search ends there.
    type Stopped = SearchEnd;
    let run = |name: Stage, spec: &SweepSpec| -> Result<Result<(Vec<RunResult>, f64), Stopped>> {
        Ok(match stages.run(name, spec)? {
            StageEnd::Shard(end) => Err(end),
            StageEnd::Results(r, _) if r.iter().any(|r| r.status == Status::Interrupted) => {
                Err(SearchEnd::Interrupted)
            }
            StageEnd::Results(r, s) => Ok((r, s)),
        })
    };
    if let Some((spec, ladder)) = opts.pruned()? {
        return pruned_search(&stages, opts, (&spec, &ladder), |spec| {
            run(Stage::Final, spec)
        });
    }
    if let Some((s, _)) = only.filter(|(s, _)| s.is_pruned()) {
        bail!(
            "--stage {}: that stage belongs to --method {}; this search is coarse-to-fine (coarse, fine, final)",
            s.name(),
            s.name()
        );
    }
    let coarse_spec = opts.coarse()?;
    let (coarse, t_coarse) = match run(Stage::Coarse, &coarse_spec)? {
        Ok(r) => r,
        Err(end) => return Ok(end),
    };
    let coarse_values = values_of(&coarse_spec);
    let Some(&best_i) = ranking(&coarse)
        .first()
        .filter(|&&i| coarse[i].status == Status::Done)
    else {
        bail!("every coarse run diverged: lower --eta-max (or the learning rate)");
    };
    let best_coarse = coarse_values[best_i];
    let (fine_spec, fine_range) = opts.fine(best_coarse)?;
    let (fine, t_fine) = match run(Stage::Fine, &fine_spec)? {
        Ok(r) => r,
        Err(end) => return Ok(end),
    };
    let fine_values = values_of(&fine_spec);
    let pool: Vec<(&RunResult, f64)> = coarse
        .iter()
        .zip(coarse_values.iter().copied())
        .chain(fine.iter().zip(fine_values.iter().copied()))
        .collect();
    let chosen = top_values(&pool, opts.top);
    let final_spec = opts.last(&chosen);
    let (finals, t_finals) = match run(Stage::Final, &final_spec)? {
        Ok(r) => r,
        Err(end) => return Ok(end),
    };
    let summary = SearchSummary {
        axis: opts.axis.name().to_string(),
        coarse_values,
        fine_values,
        final_values: chosen,
        coarse,
        fine,
        finals,
        best_coarse_value: best_coarse,
        fine_range,
        stage_s: [t_coarse, t_fine, t_finals],
        pruning: None,
    };
    finish_summary(runner, summary)
}

/// A search by `--method halving|hyperband`: the pruned stage (or its shard,
/// or, for the final stage's shard, its finished results), then the final
/// runs of its best values through `run_final`, and the summary.
fn pruned_search(
    stages: &Stages<'_>,
    opts: &SearchOptions,
    (spec, ladder): (&SweepSpec, &Ladder),
    run_final: impl Fn(&SweepSpec) -> Result<Result<(Vec<RunResult>, f64), SearchEnd>>,
) -> Result<SearchEnd> {
    let (only, runner) = (stages.only, stages.runner);
    let own = Stage::pruned(ladder.method);
    if let Some((s, _)) = only.filter(|(s, _)| *s != own && *s != Stage::Final) {
        bail!(
            "--stage {}: a --method {} search has the stages {} and final",
            s.name(),
            own.name(),
            own.name()
        );
    }
    let (pruned, t_pruned) = match stages.run_pruned(spec, ladder)? {
        StageEnd::Shard(end) => return Ok(end),
        StageEnd::Results(r, _) if r.iter().any(|r| r.status == Status::Interrupted) => {
            return Ok(SearchEnd::Interrupted)
        }
        StageEnd::Results(r, s) => (r, s),
    };
    let values = values_of(spec);
    let pool: Vec<(&RunResult, f64)> = pruned.iter().zip(values.iter().copied()).collect();
    let chosen = top_values(&pool, opts.top);
    if chosen.is_empty() {
        bail!("every run of the pruned search diverged: lower --eta-max (or the learning rate)");
    }
    let (finals, t_finals) = match run_final(&opts.last(&chosen))? {
        Ok(r) => r,
        Err(end) => return Ok(end),
    };
    let summary = SearchSummary {
        axis: opts.axis.name().to_string(),
        coarse_values: values,
        fine_values: Vec::new(),
        final_values: chosen.clone(),
        coarse: pruned,
        fine: Vec::new(),
        finals,
        best_coarse_value: chosen[0],
        fine_range: (opts.coarse_range.0, opts.coarse_range.1),
        stage_s: [t_pruned, 0.0, t_finals],
        pruning: Some(own.name().to_string()),
    };
    finish_summary(runner, summary)
}

/// Writes a finished search's summary.json and summary.md.
fn finish_summary(runner: &RunnerOptions, summary: SearchSummary) -> Result<SearchEnd> {
    write_json(&runner.out.join("summary.json"), &summary)?;
    write_atomic(
        &runner.out.join("summary.md"),
        summary.markdown().as_bytes(),
    )?;
    Ok(SearchEnd::Done(Box::new(summary)))
}
