//! `shallow train`: one network, one run folder.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;

use super::args::{CommonArgs, SettingsArgs};
use super::common::{print_json, train_in_folder, Finish};
use crate::train::{Control, RunConfig, Status, TrainSettings};

/// Flags of `shallow train`.
#[derive(Args)]
pub struct TrainArgs {
    /// Every hyperparameter (defaults: Assignment 1's linear classifier, eta
    /// 0.001 for 40 epochs on the a1 split; --cycles selects the cyclical schedule).
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Data, output folder, display and cores.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Run name: the run goes into --out/NAME. Without it, --out is the run's
    /// own folder and names the run.
    #[arg(long)]
    pub name: Option<String>,
    /// --resume and --force.
    #[command(flatten)]
    pub again: super::common::ResumeArgs,
}

/// Splits a run folder into (parent, folder name), e.g. `out/a2` -> (`out`, `a2`).
pub fn run_folder(out: &Path) -> Result<(PathBuf, String)> {
    // `.` and `..` have no name of their own: resolve them first.
    let path = match out.file_name() {
        Some(_) => out.to_path_buf(),
        None => out
            .canonicalize()
            .map_err(|e| anyhow::anyhow!("--out {}: {e}", out.display()))?,
    };
    let name = path.file_name().ok_or_else(|| {
        anyhow::anyhow!(
            "--out {}: name a folder for the run, e.g. --out out/run",
            out.display()
        )
    })?;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok((parent.to_path_buf(), name.to_string_lossy().into_owned()))
}

/// Builds the run configuration of `shallow train` from its flags.
pub fn train_config(a: &TrainArgs) -> Result<RunConfig> {
    let data = crate::data::probe(&a.common.data.source())?;
    let settings = a
        .settings
        .settings()
        .train_settings(TrainSettings::train_default().for_data(data))?;
    settings.run_config(a.name.as_deref().unwrap_or("run"))
}

/// Trains the run of `a` and writes its folder; prints its figures.
pub fn run(a: &TrainArgs, control: &Control) -> Result<Finish> {
    let mut config = train_config(a)?;
    // Without --name, --out is the run folder itself: write into its parent
    // under its own name.
    let mut common = a.common.clone();
    if a.name.is_none() {
        let (parent, name) = run_folder(&a.common.out)?;
        config.name = name;
        common.out = parent;
    }
    let run_dir = common.out.join(&config.name);
    let (r, _lock) = train_in_folder(
        config,
        &common,
        crate::folder::FolderKind::Run,
        a.again,
        control,
    )?;
    let r = &r;
    if a.common.json {
        print_json(r)?;
    } else if let (Some(d), false) = (r.diverged, a.common.quiet) {
        crate::outln!(
            "{} diverged at step {} (eta {:.3e}): the cost is not finite; lower the learning rate. \
             What was recorded is in {}",
            r.name,
            d.step,
            d.eta,
            run_dir.display()
        )?;
    } else if !a.common.quiet {
        crate::outln!(
            "{}: train {:.2}%  validation {:.2}%  test {:.2}%\n  {} steps, {:.3} ms/step, {:.1} s; files in {}",
            r.name,
            100.0 * r.train_acc,
            100.0 * r.val_acc,
            100.0 * r.test_acc,
            r.steps,
            r.ms_per_step,
            r.wall_s,
            run_dir.display()
        )?;
    }
    Ok(match r.status {
        Status::Done => Finish::Done,
        Status::Interrupted | Status::Paused => Finish::Interrupted,
        Status::Diverged | Status::Pruned => Finish::Failed,
    })
}
