//! Results tables of a set of runs: CSV, JSON lines and Markdown, sorted by
//! validation accuracy with the best run marked.

use std::path::Path;

use anyhow::Result;

use crate::train::output::RunResult;
use crate::train::Status;
use crate::util::write_atomic;

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
    let mut s = String::from(
        "| | run | lambda | eta | train acc % | val acc % | test acc % | train cost | steps | seconds | status |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for (rank, &i) in ranking(results).iter().enumerate() {
        let r = &results[i];
        s.push_str(&format!(
            "| {} | {} | {:.3e} | {} | {} | {} | {} | {} | {} | {:.2} | {:?} |\n",
            if rank == 0 && r.status == Status::Done {
                "★"
            } else {
                ""
            },
            r.name,
            r.lambda,
            r.schedule,
            pct(r.train_acc),
            pct(r.val_acc),
            pct(r.test_acc),
            if r.train_cost.is_finite() {
                format!("{:.4}", r.train_cost)
            } else {
                "-".into()
            },
            r.steps,
            r.wall_s,
            r.status
        ));
    }
    s
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
