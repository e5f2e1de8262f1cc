//! What every command shares: how it ends ([`Finish`]), printing, runner
//! settings from the common flags, finding (or fetching) the data, and
//! training a list of runs into `--out`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};

use super::args::CommonArgs;
use crate::sweep::{run_configs, Dashboard, DisplayMode, RunnerOptions};
use crate::train::output::RunResult;
use crate::train::{Control, RunConfig};

/// How a command ended, and so its exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// Everything asked for was done (exit 0).
    Done,
    /// It ran, but the result is a failure: a diverged run, a failed
    /// gradient check (exit 1).
    Failed,
    /// Stopped by Ctrl-C or SIGTERM; finished runs and checkpoints are kept
    /// (exit 130).
    Interrupted,
}

impl Finish {
    /// The exit status, after telling the user how to continue an
    /// interrupted command (the one place that says it).
    pub fn exit_code(self) -> ExitCode {
        match self {
            Finish::Done => ExitCode::SUCCESS,
            Finish::Failed => ExitCode::from(1),
            Finish::Interrupted => {
                eprintln!(
                    "interrupted: finished runs are kept; continue with the same command and --resume"
                );
                ExitCode::from(130)
            }
        }
    }
}

/// Rebuilds report.md and report.html from an `experiment all` folder.
pub fn report(dir: &Path) -> Result<Finish> {
    let (md, html) = crate::report::build::build(dir)?;
    println!("report: {} and {}", md.display(), html.display());
    Ok(Finish::Done)
}

/// Cores this machine offers.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Prints one JSON document on stdout.
pub fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

/// Prints `value` as JSON with --json, else `table` and where the files are
/// (nothing with --quiet).
pub fn print_summary<T: serde::Serialize>(
    common: &CommonArgs,
    value: &T,
    table: &str,
) -> Result<()> {
    if common.json {
        print_json(value)?;
    } else if !common.quiet {
        println!("{table}");
        println!("results in {}", common.out.display());
    }
    Ok(())
}

/// Runner settings from the common flags; `resume` and `force` as
/// [`RunnerOptions`] has them, the plan always guarded, pictures drawn.
pub fn runner_options(
    common: &CommonArgs,
    jobs: Option<usize>,
    max_group: usize,
    (resume, force): (bool, bool),
    data_dir: String,
) -> Result<RunnerOptions> {
    let threads = common.threads.unwrap_or_else(cores);
    let jobs = jobs.unwrap_or(threads);
    if threads == 0 || jobs == 0 || max_group == 0 || max_group > crate::nn::net::MAX_GROUP {
        bail!("--threads, --jobs and --max-group must be at least 1 (--max-group at most 64)");
    }
    Ok(RunnerOptions {
        jobs,
        threads,
        max_group,
        out: common.out.clone(),
        data_dir,
        resume,
        guard: true,
        force,
        draw: Some(crate::report::run_pictures),
        shard: None,
    })
}

/// The data of `--data`, `$CIFAR10_DIR` or `./data/cifar-10-batches-bin`;
/// when there is none, the official release is fetched into `./data` first.
pub fn load_or_fetch(dir: Option<&Path>) -> Result<crate::data::Cifar10> {
    use crate::data::{self, fetch};
    match data::locate(dir)? {
        Some(dir) => data::Cifar10::load(&dir),
        None => {
            eprintln!("no CIFAR-10 data found: fetching it into ./data");
            let dir = fetch::fetch(Path::new("data"), fetch::URL, fetch::MD5, true)?;
            data::Cifar10::load(&dir)
        }
    }
}

/// Whether any of `results` was interrupted.
pub fn interrupted(results: &[RunResult]) -> bool {
    results
        .iter()
        .any(|r| r.status == crate::train::Status::Interrupted)
}

/// Loads the data, trains `configs` with a dashboard, writes every run folder
/// under `--out`, and returns their results in order.
pub fn run_and_write(
    configs: Vec<RunConfig>,
    common: &CommonArgs,
    control: &Control,
) -> Result<Vec<RunResult>> {
    for c in &configs {
        c.validate(c.split.train_len())?;
    }
    if let Some(t) = common.threads {
        if t == 0 || t > 1024 {
            bail!("--threads {t}: use between 1 and the number of cores");
        }
    }
    crate::util::create_dir(&common.out)?;
    let data = crate::data::load(common.data.data.as_deref())?;
    let threads = common.threads.unwrap_or_else(cores).max(1);
    let opts = RunnerOptions {
        jobs: threads,
        threads,
        max_group: crate::sweep::DEFAULT_MAX_GROUP,
        out: common.out.clone(),
        data_dir: data.dir.display().to_string(),
        draw: Some(crate::report::run_pictures),
        ..Default::default()
    };
    let mode = DisplayMode::detect(common.quiet);
    let dashboard = Dashboard::new(&configs, mode, |c| c.name.clone());
    run_configs(&configs, &data, &opts, control, &dashboard)
}
