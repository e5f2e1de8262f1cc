//! The report section of `shallow experiment bonus`: its summary file's types
//! (written by the experiment, read here) and the report's blocks: the
//! recipes against their targets, the ablation, and the recipes' curves.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::doc::Block;

/// File of the bonus summary inside the experiment folder.
pub const BONUS_FILE: &str = "bonus.json";

/// One recipe's result: the ensemble of its members.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RecipeResult {
    /// Recipe name, e.g. `one-hidden`.
    pub name: String,
    /// Hidden widths.
    pub hidden: Vec<usize>,
    /// Test accuracy of the ensemble (0-1).
    pub test_acc: f64,
    /// Validation accuracy of the ensemble (0-1).
    pub val_acc: f64,
    /// Wall time of the recipe (training, evaluation, files), seconds.
    pub wall_s: f64,
    /// The accuracy the recipe aims at (0-1).
    pub target: f64,
    /// Seed-ensemble members.
    pub members: usize,
    /// Snapshots per member.
    pub snapshots: usize,
    /// Test accuracy of member 0 alone, final net (0-1).
    pub single_test_acc: f64,
    /// Test accuracy of member 0's snapshot ensemble (0-1).
    pub snapshot_test_acc: f64,
    /// Every setting, described.
    pub describe: String,
    /// The members' run folders, relative to the experiment folder.
    pub runs: Vec<String>,
}

/// One row of the ablation: a change to the base net and what it measured.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AblationRow {
    /// What changed, e.g. `+ flips`.
    pub change: String,
    /// Validation accuracy (0-1).
    pub val_acc: f64,
    /// Test accuracy (0-1).
    pub test_acc: f64,
    /// Test accuracy minus the row it builds on (0-1), none for the base.
    pub delta: Option<f64>,
    /// Which row it builds on.
    pub against: String,
    /// Wall time of the run's lockstep group, seconds.
    pub wall_s: f64,
}

/// Everything `experiment bonus` measured (`bonus.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BonusSummary {
    /// Recipes.
    pub runs: Vec<RecipeResult>,
    /// Ablation rows, base first.
    pub ablation: Vec<AblationRow>,
    /// The ablation's base net, described.
    pub ablation_base: String,
    /// Whole experiment, seconds.
    pub wall_s: f64,
    /// Whether this was `--quick` (tiny runs that check the pipeline only).
    pub quick: bool,
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.2}%", 100.0 * v)
    } else {
        "-".to_string()
    }
}

/// The blocks of a bonus folder's report.
pub fn blocks(dir: &Path) -> Result<Vec<Block>> {
    let bytes = std::fs::read(dir.join(BONUS_FILE))?;
    let s: BonusSummary = serde_json::from_slice(&bytes)?;
    let mut b = vec![Block::Heading(
        1,
        "shallow experiment bonus: beyond the assignments".into(),
    )];
    if s.quick {
        b.push(Block::Para(
            "**--quick**: tiny runs that check the pipeline; the accuracies mean nothing.".into(),
        ));
    }
    if !s.quick {
        b.push(Block::Para(
            "49,000 training and 1,000 validation images, the whole test set.".into(),
        ));
    }
    b.push(Block::Para(format!("Total time {:.0} s.", s.wall_s)));
    if !s.runs.is_empty() {
        b.push(Block::Heading(2, "Recipes".into()));
        let rows = s
            .runs
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    format!("{:?}", r.hidden),
                    format!("{} x {} snapshots", r.members, r.snapshots),
                    pct(r.single_test_acc),
                    pct(r.snapshot_test_acc),
                    pct(r.val_acc),
                    pct(r.test_acc),
                    pct(r.target),
                    if r.test_acc >= r.target {
                        "reached".into()
                    } else {
                        "short".into()
                    },
                    format!("{:.0}", r.wall_s),
                ]
            })
            .collect();
        b.push(Block::Table(
            [
                "recipe",
                "hidden",
                "nets",
                "1 net",
                "1 net avg",
                "val",
                "test",
                "target",
                "",
                "s",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        ));
        b.push(Block::Para(
            "nets: seed-ensemble members x snapshots each; 1 net: member 0's final net on the \
             test set; 1 net avg: member 0's averaged prediction (its snapshots, each on the \
             images and their mirror images); val and test: the whole ensemble's."
                .into(),
        ));
        for r in &s.runs {
            b.push(Block::Para(format!("{}: {}.", r.name, r.describe)));
        }
        let imgs: Vec<(PathBuf, String)> = s
            .runs
            .iter()
            .filter_map(|r| r.runs.first().map(|f| (r, f)))
            .map(|(r, f)| {
                (
                    Path::new(f).join("curves.png"),
                    format!("{} member 0", r.name),
                )
            })
            .filter(|(p, _)| dir.join(p).exists())
            .collect();
        if !imgs.is_empty() {
            b.push(Block::Images(imgs));
        }
    }
    if !s.ablation.is_empty() {
        b.push(Block::Heading(2, "Ablation: what each trick adds".into()));
        b.push(Block::Para(format!(
            "Base: {}. Each row changes one thing and is compared with the row it builds on; \
             every number is measured in this run. The group time is the wall time of the lockstep \
             group the row trained in.",
            s.ablation_base
        )));
        let rows = s
            .ablation
            .iter()
            .map(|r| {
                vec![
                    r.change.clone(),
                    pct(r.val_acc),
                    pct(r.test_acc),
                    r.delta.map_or("-".into(), |d| format!("{:+.2}", 100.0 * d)),
                    if r.against.is_empty() {
                        "-".into()
                    } else {
                        r.against.clone()
                    },
                    format!("{:.0}", r.wall_s),
                ]
            })
            .collect();
        b.push(Block::Table(
            ["change", "val", "test", "points", "against", "group s"]
                .map(String::from)
                .to_vec(),
            rows,
        ));
    }
    Ok(b)
}
