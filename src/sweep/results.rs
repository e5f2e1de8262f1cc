//! Results tables of a set of runs: CSV, JSON lines and Markdown, sorted by
//! validation accuracy with the best run marked; and the plain records of an
//! experiment's and a search's summaries, which the report reads.

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::train::output::RunResult;
use crate::train::Status;
use crate::util::{write_atomic, write_json};

/// Indices of `results` sorted by validation accuracy, best first (diverged last).
pub fn ranking(results: &[RunResult]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..results.len()).collect();
    let key = |r: &RunResult| {
        if r.status == Status::Done && r.val_acc.is_finite() {
            r.val_acc
        } else {
            -1.0
        }
    };
    idx.sort_by(|&a, &b| key(&results[b]).total_cmp(&key(&results[a])));
    idx
}

/// The best finished run, if any.
pub fn best(results: &[RunResult]) -> Option<&RunResult> {
    ranking(results)
        .first()
        .map(|&i| &results[i])
        .filter(|r| r.status == Status::Done)
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.2}", 100.0 * v)
    } else {
        "-".to_string()
    }
}

/// Markdown table sorted by validation accuracy, best marked with a star.
pub fn markdown(results: &[RunResult]) -> String {
    let header = [
        "",
        "run",
        "lambda",
        "eta",
        "train acc %",
        "val acc %",
        "test acc %",
        "train cost",
        "steps",
        "seconds",
        "status",
    ];
    let rows: Vec<Vec<String>> = ranking(results)
        .iter()
        .enumerate()
        .map(|(rank, &i)| {
            let r = &results[i];
            let star = if rank == 0 && r.status == Status::Done {
                "★"
            } else {
                ""
            };
            let cost = if r.train_cost.is_finite() {
                format!("{:.4}", r.train_cost)
            } else {
                "-".into()
            };
            vec![
                star.to_string(),
                r.name.clone(),
                format!("{:.3e}", r.lambda),
                r.schedule.clone(),
                pct(r.train_acc),
                pct(r.val_acc),
                pct(r.test_acc),
                cost,
                r.steps.to_string(),
                format!("{:.2}", r.wall_s),
                format!("{:?}", r.status),
            ]
        })
        .collect();
    crate::util::markdown_table(&header, &rows)
}

/// Plain-text table for a terminal (under 80 columns), sorted like [`markdown`].
pub fn text_table(results: &[RunResult]) -> String {
    let mut s = format!(
        "{:2}{:>9} {:>8} {:>7} {:>7} {:>8} {:>6} {:>7}  status\n",
        "", "lambda", "train %", "val %", "test %", "cost", "steps", "s"
    );
    for (rank, &i) in ranking(results).iter().enumerate() {
        let r = &results[i];
        let star = if rank == 0 && r.status == Status::Done {
            "★"
        } else {
            ""
        };
        let cost = if r.train_cost.is_finite() {
            format!("{:.4}", r.train_cost)
        } else {
            "-".into()
        };
        s.push_str(&format!(
            "{star:2}{:>9.3e} {:>8} {:>7} {:>7} {cost:>8} {:>6} {:>7.2}  {}\n",
            r.lambda,
            pct(r.train_acc),
            pct(r.val_acc),
            pct(r.test_acc),
            r.steps,
            r.wall_s,
            format!("{:?}", r.status).to_lowercase()
        ));
    }
    s
}

/// Writes `results.csv`, `results.jsonl` and `results.md` into `dir`.
pub fn write_tables(dir: &Path, results: &[RunResult]) -> Result<()> {
    let order = ranking(results);
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "rank",
        "name",
        "status",
        "lambda",
        "eta",
        "schedule",
        "train_acc",
        "val_acc",
        "test_acc",
        "train_cost",
        "val_cost",
        "steps",
        "wall_s",
        "ms_per_step",
    ])?;
    let mut jsonl = String::new();
    for (rank, &i) in order.iter().enumerate() {
        let r = &results[i];
        w.write_record(&[
            (rank + 1).to_string(),
            r.name.clone(),
            format!("{:?}", r.status).to_lowercase(),
            r.lambda.to_string(),
            r.eta.to_string(),
            r.schedule.clone(),
            r.train_acc.to_string(),
            r.val_acc.to_string(),
            r.test_acc.to_string(),
            r.train_cost.to_string(),
            r.val_cost.to_string(),
            r.steps.to_string(),
            r.wall_s.to_string(),
            r.ms_per_step.to_string(),
        ])?;
        jsonl.push_str(&serde_json::to_string(r)?);
        jsonl.push('\n');
    }
    write_atomic(
        &dir.join("results.csv"),
        &w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?,
    )?;
    write_atomic(&dir.join("results.jsonl"), jsonl.as_bytes())?;
    write_atomic(&dir.join("results.md"), markdown(results).as_bytes())?;
    Ok(())
}

/// One row of an experiment's summary (accuracies as fractions 0-1).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SummaryRow {
    /// Run name.
    pub name: String,
    /// L2 penalty.
    pub lambda: f64,
    /// Peak learning rate.
    pub eta: f64,
    /// Final training accuracy.
    pub train_acc: f64,
    /// Final validation accuracy.
    pub val_acc: f64,
    /// Test accuracy.
    pub test_acc: f64,
    /// Update steps.
    pub steps: usize,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// done or diverged.
    pub status: crate::train::Status,
}

/// An experiment's summary: `summary.json` and what `--json` prints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// Runs in plan order.
    pub runs: Vec<SummaryRow>,
    /// Wall time of the whole experiment.
    pub wall_s: f64,
}

impl Summary {
    /// Builds the summary of results in plan order.
    pub fn new(results: &[RunResult], wall_s: f64) -> Self {
        let runs = results
            .iter()
            .map(|r| SummaryRow {
                name: r.name.clone(),
                lambda: r.lambda,
                eta: r.eta,
                train_acc: r.train_acc,
                val_acc: r.val_acc,
                test_acc: r.test_acc,
                steps: r.steps,
                wall_s: r.wall_s,
                status: r.status,
            })
            .collect();
        Summary { runs, wall_s }
    }

    /// Markdown table in plan order.
    pub fn markdown(&self) -> String {
        let (header, rows) = self.table();
        crate::util::markdown_table(&header, &rows)
    }

    /// The same table for a terminal.
    pub fn text(&self) -> String {
        let (header, rows) = self.table();
        crate::util::text_table(&header, &rows)
    }

    /// The table's header and rows, in plan order (what results.md, the
    /// terminal and the report show).
    pub fn table(&self) -> ([&'static str; 8], Vec<Vec<String>>) {
        let header = [
            "run",
            "lambda",
            "eta",
            "train acc %",
            "val acc %",
            "test acc %",
            "steps",
            "seconds",
        ];
        let rows: Vec<Vec<String>> = self
            .runs
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    r.lambda.to_string(),
                    r.eta.to_string(),
                    pct(r.train_acc),
                    pct(r.val_acc),
                    pct(r.test_acc),
                    r.steps.to_string(),
                    format!("{:.1}", r.wall_s),
                ]
            })
            .collect();
        (header, rows)
    }

    /// Writes `summary.json` and `results.md` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_json(&dir.join("summary.json"), self)?;
        write_atomic(&dir.join("results.md"), self.markdown().as_bytes())
    }
}

/// What a search found, written as `summary.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchSummary {
    /// Coarse results in plan order.
    pub coarse: Vec<RunResult>,
    /// Fine results in plan order.
    pub fine: Vec<RunResult>,
    /// The final run.
    pub final_run: RunResult,
    /// Best lambda of the coarse sweep.
    pub best_coarse_lambda: f64,
    /// Fine range searched.
    pub fine_range: (f64, f64),
    /// Best lambda of the fine sweep, used in the final run.
    pub best_lambda: f64,
    /// Wall seconds per stage: coarse, fine, final.
    pub stage_s: [f64; 3],
}

impl SearchSummary {
    fn table(&self) -> ([&'static str; 5], Vec<Vec<String>>) {
        let f = &self.final_run;
        let best_val = |rs: &[RunResult]| 100.0 * best(rs).map_or(f64::NAN, |r| r.val_acc);
        let rows = vec![
            vec![
                "coarse".to_string(),
                self.coarse.len().to_string(),
                format!("{:.3e}", self.best_coarse_lambda),
                format!("{:.2}", best_val(&self.coarse)),
                format!("{:.1}", self.stage_s[0]),
            ],
            vec![
                format!(
                    "fine ({:.2e}..{:.2e})",
                    self.fine_range.0, self.fine_range.1
                ),
                self.fine.len().to_string(),
                format!("{:.3e}", self.best_lambda),
                format!("{:.2}", best_val(&self.fine)),
                format!("{:.1}", self.stage_s[1]),
            ],
            vec![
                "final".to_string(),
                "1".to_string(),
                format!("{:.3e}", f.lambda),
                format!("{:.2}", 100.0 * f.val_acc),
                format!("{:.1}", self.stage_s[2]),
            ],
        ];
        let header = ["stage", "runs", "best lambda", "best val acc %", "seconds"];
        (header, rows)
    }

    /// Markdown summary: the stages' table and the final test accuracy.
    pub fn markdown(&self) -> String {
        let (header, rows) = self.table();
        let f = &self.final_run;
        format!(
            "{}\nFinal test accuracy: **{:.2}%** (lambda {:.3e}, {} steps).\n",
            crate::util::markdown_table(&header, &rows),
            100.0 * f.test_acc,
            f.lambda,
            f.steps
        )
    }

    /// The same summary for a terminal, without Markdown.
    pub fn text(&self) -> String {
        let (header, rows) = self.table();
        let f = &self.final_run;
        format!(
            "{}\nfinal test accuracy {:.2}% (lambda {:.3e}, {} steps)",
            crate::util::text_table(&header, &rows),
            100.0 * f.test_acc,
            f.lambda,
            f.steps
        )
    }
}

/// Reads a finished search's summary.
pub fn load_summary(dir: &Path) -> Result<SearchSummary> {
    Ok(serde_json::from_slice(&std::fs::read(
        dir.join("summary.json"),
    )?)?)
}
