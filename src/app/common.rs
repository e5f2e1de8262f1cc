//! What every command shares: how it ends ([`Finish`]), printing, runner
//! settings from the common flags, finding (or fetching) the data, and
//! training a list of runs into `--out`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};

use super::args::CommonArgs;
use crate::sweep::{run_configs, RunnerOptions};
use crate::train::output::RunResult;
use crate::train::{Control, RunConfig};
use crate::ui::{Dashboard, DisplayMode};

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
    // Held while the report is written: never beside a command still writing there.
    let _lock = match (dir.is_dir(), crate::folder::kind_of(dir)) {
        (true, Some(kind)) => Some(crate::folder::claim(
            dir,
            &crate::folder::Claim {
                flag: "",
                ..crate::folder::Claim::new(kind, false)
            },
        )?),
        _ => None,
    };
    let (md, html) = crate::report::build::build(dir)?;
    crate::outln!("report: {} and {}", md.display(), html.display())?;
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
    crate::outln!("{}", serde_json::to_string(v)?)?;
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
        crate::outln!("{table}")?;
        crate::outln!("results in {}", common.out.display())?;
    }
    Ok(())
}

/// `--threads`, checked: between 1 and the cores this process may use
/// (its CPU affinity and quota); all of them without the flag.
pub fn threads(flag: Option<usize>) -> Result<usize> {
    let cores = cores();
    match flag {
        None => Ok(cores),
        Some(t) if (1..=cores).contains(&t) => Ok(t),
        Some(t) => bail!(
            "--threads {t}: give between 1 and the {cores} core{} this process may use",
            if cores == 1 { "" } else { "s" }
        ),
    }
}

/// Claims `--out` for a command writing `kind` ([`crate::folder::claim`]):
/// refused while another process writes it, or when it holds another kind
/// of results (unless `force`).
pub fn claim_out(
    common: &CommonArgs,
    kind: crate::folder::FolderKind,
    force: bool,
) -> Result<crate::folder::FolderLock> {
    crate::folder::claim(&common.out, &crate::folder::Claim::new(kind, force))
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
    let threads = threads(common.threads)?;
    let jobs = jobs.unwrap_or(threads);
    if jobs == 0 || max_group == 0 || max_group > crate::nn::net::MAX_GROUP {
        bail!(
            "--jobs and --max-group must be at least 1 (--max-group at most {})",
            crate::nn::net::MAX_GROUP
        );
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
        ladder: None,
        pause_at: None,
    })
}

/// The data of `--data`, `$CIFAR10_DIR` or `./data/cifar-10-batches-bin`;
/// when there is none, the official release is fetched into `./data` first.
pub fn load_or_fetch(source: &crate::data::Source) -> Result<crate::data::RawData> {
    use crate::data::{self, fetch};
    match data::locate(source)? {
        Some(dir) => data::RawData::load_as(&dir, source),
        None => {
            let kind = source.dataset.unwrap_or(data::DatasetKind::Cifar10);
            eprintln!("no {} data found: fetching it into ./data", kind.title());
            let release = fetch::Release::official(kind)?;
            let dir = fetch::fetch_release(Path::new("data"), &release, true)?;
            data::RawData::load_as(&dir, source)
        }
    }
}

/// Whether any of `results` was interrupted.
pub fn interrupted(results: &[RunResult]) -> bool {
    results
        .iter()
        .any(|r| r.status == crate::train::Status::Interrupted)
}

/// Tells, once, which kernel `--precision fast` took and why, when a
/// configuration asked for it.
pub fn say_fast_choice() {
    static SAID: std::sync::Once = std::sync::Once::new();
    if let Some(why) = crate::linalg::peak::fast_choice() {
        SAID.call_once(|| eprintln!("--precision {why}"));
    }
}

/// Checks `configs` and `--threads` and that the runs fit in memory; call it
/// before anything is written.
pub fn check_runs(configs: &[RunConfig], common: &CommonArgs) -> Result<usize> {
    for c in configs {
        c.validate(c.split.train_len())?;
    }
    say_fast_choice();
    let threads = threads(common.threads)?;
    crate::sweep::runner::check_memory(configs, crate::sweep::DEFAULT_MAX_GROUP, threads)?;
    Ok(threads)
}

/// Loads the data, trains `configs` with a dashboard on `threads` cores,
/// writes every run folder under `--out` (continuing their checkpoints with
/// `resume`), and returns their results in order. The caller has checked the
/// runs ([`check_runs`], which gives `threads`) and claimed the folder.
pub fn run_and_write(
    configs: Vec<RunConfig>,
    common: &CommonArgs,
    (threads, resume): (usize, bool),
    control: &Control,
) -> Result<Vec<RunResult>> {
    crate::util::create_dir(&common.out)?;
    let data = crate::data::load(&common.data.source())?;
    let opts = RunnerOptions {
        jobs: threads,
        threads,
        max_group: crate::sweep::DEFAULT_MAX_GROUP,
        out: common.out.clone(),
        data_dir: data.dir.display().to_string(),
        draw: Some(crate::report::run_pictures),
        resume,
        ..Default::default()
    };
    let mode = DisplayMode::detect(common.quiet);
    let dashboard = Dashboard::new(&configs, mode, |c| c.name.clone());
    run_configs(&configs, &data, &opts, control, &dashboard)
}

/// `--resume` and `--force` of a command that trains one run into its own folder.
#[derive(clap::Args, Clone, Copy, Default)]
pub struct ResumeArgs {
    /// Continue the interrupted run in the same folder (refused when its
    /// settings differ); a finished run there is kept as it is.
    #[arg(long)]
    pub resume: bool,
    /// Start over in a folder that holds a finished or interrupted run (or
    /// another kind of results), replacing it.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
}

/// Trains `config` into its own folder `run_dir` (`common.out`/NAME) as a command writing `kind`
/// (`train`, `lr-range`): checks everything first, claims the folder, and
/// refuses a finished or interrupted run there unless `--resume` continues it
/// or `--force` replaces it. Returns the result and the claim (held until the
/// caller has written the rest).
pub fn train_in_folder(
    config: RunConfig,
    common: &CommonArgs,
    kind: crate::folder::FolderKind,
    again: ResumeArgs,
    control: &Control,
) -> Result<(RunResult, crate::folder::FolderLock)> {
    let threads = check_runs(std::slice::from_ref(&config), common)?;
    let run_dir = &common.out.join(&config.name);
    let lock = crate::folder::claim(run_dir, &crate::folder::Claim::new(kind, again.force))?;
    let checkpoint = run_dir.join(crate::train::checkpoint::FILE);
    let result = run_dir.join("result.json");
    if again.force {
        for f in [&checkpoint, &result] {
            let _ = std::fs::remove_file(f);
        }
    } else if !again.resume {
        if checkpoint.exists() {
            bail!(
                "{} holds an interrupted run ({}): continue it with --resume, start over with --force, \
                 or choose another --out",
                run_dir.display(),
                crate::train::checkpoint::FILE
            );
        }
        if result.exists() {
            bail!(
                "{} holds a finished run (result.json): start over with --force (replaces it), \
                 or choose another --out",
                run_dir.display()
            );
        }
    }
    let mut results = run_and_write(vec![config], common, (threads, again.resume), control)?;
    Ok((results.remove(0), lock))
}
