//! Results tables of a set of runs: CSV, JSON lines and Markdown, sorted by
//! validation accuracy with the best run marked; and the plain records of an
//! experiment's and a search's summaries, which the report reads.

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::train::output::RunResult;
use crate::train::Status;
use crate::util::{write_atomic, write_json};

/// Indices of `results` sorted by validation accuracy, best first: finished
/// runs, then those a pruned search stopped (the longest trained first),
/// then the rest (diverged, interrupted); plan order on ties.
pub fn ranking(results: &[RunResult]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..results.len()).collect();
    let key = |r: &RunResult| {
        let class = match r.status {
            _ if !r.val_acc.is_finite() => 2,
            Status::Done => 0,
            Status::Pruned => 1,
            _ => 2,
        };
        let steps = if class == 1 { r.steps } else { 0 };
        let acc = if class < 2 { r.val_acc } else { -1.0 };
        (class, std::cmp::Reverse(steps), -acc)
    };
    idx.sort_by(|&a, &b| {
        let (ka, kb) = (key(&results[a]), key(&results[b]));
        ka.0.cmp(&kb.0)
            .then(ka.1.cmp(&kb.1))
            .then(ka.2.total_cmp(&kb.2))
    });
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

/// Extra columns of a results table, each a header and one cell per result
/// in plan order: a sweep's axis values ([`axis_columns`]).
pub type Columns = Vec<(String, Vec<String>)>;

/// One column per axis of `spec`, its values' labels in plan order.
pub fn axis_columns(spec: &crate::sweep::SweepSpec) -> Columns {
    let points = spec.points();
    spec.axes()
        .iter()
        .enumerate()
        .map(|(k, axis)| {
            (
                axis.name().to_string(),
                points.iter().map(|p| p[k].1.label()).collect(),
            )
        })
        .collect()
}

/// The table of `results` sorted by validation accuracy, best first and
/// marked with a star: the run, `columns` (else lambda), the schedule, the
/// accuracies, cost, steps, seconds and status. `with_names` adds the run
/// name (the files' tables; the terminal's has the axes instead).
pub fn table(
    results: &[RunResult],
    columns: &Columns,
    with_names: bool,
) -> (Vec<String>, Vec<Vec<String>>) {
    let lambda_col: Columns = vec![(
        "lambda".into(),
        results
            .iter()
            .map(|r| crate::util::short_number(r.lambda))
            .collect(),
    )];
    let columns = if columns.is_empty() {
        &lambda_col
    } else {
        columns
    };
    let mut header: Vec<String> = vec!["".into()];
    if with_names {
        header.push("run".into());
    }
    header.extend(columns.iter().map(|c| c.0.clone()));
    // Runs with snapshots or test-time flips: their averaged prediction's test accuracy.
    let averaged = results.iter().any(|r| r.averaged.is_some());
    header.extend(["schedule", "train %", "val %", "test %"].map(String::from));
    if averaged {
        header.push("averaged test %".into());
    }
    header.extend(["cost", "steps", "s", "status"].map(String::from));
    let rows = ranking(results)
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
            let mut row = vec![star.to_string()];
            if with_names {
                row.push(r.name.clone());
            }
            row.extend(
                columns
                    .iter()
                    .map(|c| c.1.get(i).cloned().unwrap_or_default()),
            );
            row.extend([
                r.schedule.clone(),
                pct(r.train_acc),
                pct(r.val_acc),
                pct(r.test_acc),
            ]);
            if averaged {
                row.push(r.averaged.map_or("-".into(), |a| pct(a.test.acc)));
            }
            row.extend([
                cost,
                r.steps.to_string(),
                format!("{:.1}", r.wall_s),
                format!("{:?}", r.status).to_lowercase(),
            ]);
            row
        })
        .collect();
    (header, rows)
}

/// Markdown table (results.md), see [`table`].
pub fn markdown(results: &[RunResult], columns: &Columns) -> String {
    let (header, rows) = table(results, columns, true);
    crate::util::markdown_table(&header, &rows)
}

/// Aligned plain-text table for a terminal, see [`table`]: on a terminal
/// narrower than the table, the status, seconds, steps, cost, schedule and
/// training accuracy columns are left out, in that order, until it fits.
pub fn text_table(results: &[RunResult], columns: &Columns) -> String {
    let (header, rows) = table(results, columns, false);
    let width = crate::util::terminal_width().unwrap_or(usize::MAX);
    crate::util::text_table_fit(
        &header,
        &rows,
        width,
        &[
            "status",
            "s",
            "steps",
            "cost",
            "schedule",
            "train %",
            "averaged test %",
        ],
    )
}

/// Writes `results.csv`, `results.jsonl` and `results.md` into `dir`;
/// `columns` (a sweep's axes) join the CSV and Markdown tables.
pub fn write_tables(dir: &Path, results: &[RunResult], columns: &Columns) -> Result<()> {
    let order = ranking(results);
    let mut w = csv::Writer::from_writer(Vec::new());
    let fixed = [
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
    ];
    // An axis that is also a fixed column (lambda, steps) appears once, with
    // the fixed column's full precision: every header names one column.
    let axes: Vec<&(String, Vec<String>)> = columns
        .iter()
        .filter(|c| !fixed.contains(&c.0.as_str()))
        .collect();
    let mut header: Vec<String> = ["rank", "name", "status"].map(String::from).to_vec();
    header.extend(axes.iter().map(|c| c.0.clone()));
    header.extend(fixed.map(String::from));
    w.write_record(&header)?;
    let mut jsonl = String::new();
    for (rank, &i) in order.iter().enumerate() {
        let r = &results[i];
        let mut row = vec![
            (rank + 1).to_string(),
            r.name.clone(),
            format!("{:?}", r.status).to_lowercase(),
        ];
        row.extend(axes.iter().map(|c| c.1.get(i).cloned().unwrap_or_default()));
        row.extend([
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
        ]);
        w.write_record(&row)?;
        jsonl.push_str(&serde_json::to_string(r)?);
        jsonl.push('\n');
    }
    write_atomic(
        &dir.join("results.csv"),
        &w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?,
    )?;
    write_atomic(&dir.join("results.jsonl"), jsonl.as_bytes())?;
    write_atomic(
        &dir.join("results.md"),
        markdown(results, columns).as_bytes(),
    )?;
    Ok(())
}

/// File name of [`RunInfo`] in a sweep or search folder.
pub const RUN_INFO: &str = "run.json";

/// What was run, where and when: the command line, the date, the machine and
/// the BLAS kernel, written beside a sweep's or search's results for its report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunInfo {
    /// sweep, search or experiment.
    pub kind: String,
    /// The command line, as typed.
    pub command: String,
    /// UTC date and time, e.g. `2026-12-02 18:40 UTC`.
    pub date: String,
    /// CPU model.
    pub cpu: String,
    /// Cores used.
    pub cores: usize,
    /// BLAS build and kernel.
    pub blas: String,
    /// shallow's version.
    pub version: String,
    /// Wall seconds of the whole command (of every resume added up).
    pub wall_s: f64,
    /// When it was resumed, if it was: (date, command line) of each resume.
    #[serde(default)]
    pub resumed: Vec<(String, String)>,
    /// The shards it was trained in, when merged from shards (`shallow sweep merge`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<super::shard::ShardRecord>,
}

impl RunInfo {
    /// This process's command line, as typed (arguments with spaces or shell
    /// characters in quotes).
    pub fn command_line() -> String {
        crate::util::command_line()
    }

    /// The record of the command running now.
    pub fn now(kind: &str, cores: usize, wall_s: f64) -> Self {
        RunInfo {
            kind: kind.into(),
            command: Self::command_line(),
            date: crate::util::utc_now(),
            cpu: crate::util::cpu_model(),
            cores,
            blas: crate::linalg::blas::describe(),
            version: env!("CARGO_PKG_VERSION").into(),
            wall_s,
            resumed: vec![],
            shards: vec![],
        }
    }

    /// Writes `dir`/run.json for the command running now; a resume keeps the
    /// first command's record, adds its wall time and notes the resume.
    pub fn record(dir: &Path, kind: &str, cores: usize, wall_s: f64, resume: bool) -> Result<()> {
        let path = dir.join(RUN_INFO);
        let now = RunInfo::now(kind, cores, wall_s);
        let earlier: Option<RunInfo> = resume
            .then(|| std::fs::read(&path).ok())
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let info = match earlier {
            Some(mut e) => {
                e.wall_s += wall_s;
                e.resumed.push((now.date, now.command));
                e
            }
            None => now,
        };
        write_json(&path, &info)
    }
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
    /// The schedule, e.g. `eta 0.001` or `cyclic 1e-5..0.1, ns 500`.
    #[serde(default)]
    pub schedule: String,
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
                schedule: r.schedule.clone(),
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
            "schedule",
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
                    crate::util::short_number(r.lambda),
                    if r.schedule.is_empty() {
                        format!("eta {}", crate::util::short_number(r.eta))
                    } else {
                        r.schedule.clone()
                    },
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
    /// The axis searched, e.g. `lambda`.
    pub axis: String,
    /// Coarse values of the axis, in plan order.
    pub coarse_values: Vec<f64>,
    /// Fine values of the axis, in plan order.
    pub fine_values: Vec<f64>,
    /// The values trained in the final stage, best first.
    pub final_values: Vec<f64>,
    /// Coarse results in plan order.
    pub coarse: Vec<RunResult>,
    /// Fine results in plan order.
    pub fine: Vec<RunResult>,
    /// The final runs, in the order of `final_values`.
    pub finals: Vec<RunResult>,
    /// Best value of the coarse stage: the centre of the fine range (a
    /// pruned search: its best value).
    pub best_coarse_value: f64,
    /// Fine range searched (a pruned search: the range of its draws).
    pub fine_range: (f64, f64),
    /// Wall seconds per stage: coarse, fine, final.
    pub stage_s: [f64; 3],
    /// A pruned search (`halving` or `hyperband`): its results stand in
    /// `coarse`, and there is no fine stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruning: Option<String>,
}

impl SearchSummary {
    /// The final run with the best validation accuracy: the search's answer.
    pub fn best_final(&self) -> Option<(&RunResult, f64)> {
        ranking(&self.finals)
            .first()
            .map(|&i| (&self.finals[i], self.final_values[i]))
            .filter(|r| r.0.status == Status::Done)
    }

    fn table(&self) -> ([String; 5], Vec<Vec<String>>) {
        use crate::util::short_number as n;
        let best_of = |rs: &[RunResult], vs: &[f64]| -> (String, String) {
            match ranking(rs)
                .first()
                .filter(|&&i| rs[i].status == Status::Done)
            {
                Some(&i) => (n(vs[i]), pct(rs[i].val_acc)),
                None => ("-".into(), "-".into()),
            }
        };
        let (cv, ca) = best_of(&self.coarse, &self.coarse_values);
        let (fv, fa) = best_of(&self.fine, &self.fine_values);
        let mut rows = vec![vec![
            self.pruning.clone().unwrap_or_else(|| "coarse".into()),
            self.coarse.len().to_string(),
            cv,
            ca,
            format!("{:.1}", self.stage_s[0]),
        ]];
        if self.pruning.is_none() {
            rows.push(vec![
                format!("fine ({}..{})", n(self.fine_range.0), n(self.fine_range.1)),
                self.fine.len().to_string(),
                fv,
                fa,
                format!("{:.1}", self.stage_s[1]),
            ]);
        }
        for (k, (r, v)) in self.finals.iter().zip(&self.final_values).enumerate() {
            rows.push(vec![
                format!("final {}", k + 1),
                "1".into(),
                n(*v),
                format!("{} (test {})", pct(r.val_acc), pct(r.test_acc)),
                if k == 0 {
                    format!("{:.1}", self.stage_s[2])
                } else {
                    String::new()
                },
            ]);
        }
        let header = [
            "stage".to_string(),
            "runs".into(),
            format!("best {}", self.axis),
            "val acc %".into(),
            "seconds".into(),
        ];
        (header, rows)
    }

    fn answer(&self) -> String {
        match self.best_final() {
            Some((r, v)) => format!(
                "{} {} (best validation accuracy of the final runs): test accuracy {}% after {} steps",
                self.axis,
                crate::util::short_number(v),
                pct(r.test_acc),
                r.steps
            ),
            None => "every final run diverged".into(),
        }
    }

    /// Markdown summary: the stages' table and the chosen final run.
    pub fn markdown(&self) -> String {
        let (header, rows) = self.table();
        format!(
            "{}\nChosen: **{}**.\n",
            crate::util::markdown_table(&header, &rows),
            self.answer()
        )
    }

    /// The same summary for a terminal, without Markdown.
    pub fn text(&self) -> String {
        let (header, rows) = self.table();
        format!(
            "{}\nchosen: {}",
            crate::util::text_table(&header, &rows),
            self.answer()
        )
    }
}

/// Reads a finished search's summary.
pub fn load_summary(dir: &Path) -> Result<SearchSummary> {
    Ok(serde_json::from_slice(&std::fs::read(
        dir.join("summary.json"),
    )?)?)
}
