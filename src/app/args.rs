//! Flags shared by several commands: where the data is, where results go,
//! the split and its preprocessing, and the shape of a sweep.

use std::path::PathBuf;

use clap::Args;

use crate::sweep::plan::SweepSettings;

/// Data, output, display and cores: every command that trains.
#[derive(Args, Clone)]
pub struct CommonArgs {
    /// Where the data is.
    #[command(flatten)]
    pub data: DataArgs,
    /// Output folder.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress display.
    #[arg(long)]
    pub quiet: bool,
    /// Cores to use (BLAS threads and parallel runs); default all.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Where the data set's files are, and which data set they hold.
#[derive(Args, Clone)]
pub struct DataArgs {
    /// Data folder or .npz file (else $CIFAR10_DIR, else ./data/cifar-10-batches-bin):
    /// CIFAR-10, CIFAR-100, MNIST, Fashion-MNIST or .npz, detected from its files.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The data set, when its files do not say (MNIST and Fashion-MNIST share theirs).
    #[arg(long, value_name = "NAME")]
    pub dataset: Option<crate::data::DatasetKind>,
    /// CIFAR-100's classes: the 100 fine ones or the 20 coarse ones [default: fine].
    #[arg(long, value_name = "KIND")]
    pub labels: Option<crate::data::Labels>,
}

impl DataArgs {
    /// Where the data is and how to read it.
    pub fn source(&self) -> crate::data::Source {
        crate::data::Source {
            dir: self.data.clone(),
            dataset: self.dataset,
            labels: self.labels,
        }
    }
}

/// Generates [`SettingsArgs`] from the one table of settings
/// ([`crate::train::settings::setting_table`]): a flag per value, two per
/// switch (`--X` and `--no-X`), and [`SettingsArgs::settings`].
macro_rules! settings_args {
    (
        values { $( $(#[doc = $vdoc:literal])* $v:ident : $vty:ty [ $($vattr:tt)* ] $(=> $vaxis:ident)? ; )* }
        switches { $( $(#[doc = $sdoc:literal])* $s:ident , $no:ident $(=> $saxis:ident)? ; )* }
    ) => {
        /// Every setting of a training run, each optional: `train` fills the rest
        /// from its defaults (Assignment 1), `sweep` and `search` from a TOML file and
        /// theirs (Assignment 2's network, cyclical, split full).
        #[derive(Args, Clone, Default)]
        pub struct SettingsArgs {
            $(
                $(#[doc = $vdoc])*
                #[arg(long, $($vattr)*)]
                pub $v: Option<$vty>,
            )*
            $(
                $(#[doc = $sdoc])*
                #[arg(long, overrides_with = stringify!($no))]
                pub $s: bool,
                /// Turns the flag above off (where a --config file turns it on).
                #[arg(long, overrides_with = stringify!($s))]
                pub $no: bool,
            )*
        }

        impl SettingsArgs {
            /// The flags given, as settings (no axes).
            pub fn settings(&self) -> SweepSettings {
                SweepSettings {
                    $( $v: self.$v.clone(), )*
                    $( $s: on_off(self.$s, self.$no), )*
                    ..Default::default()
                }
            }
        }
    };
}
crate::train::settings::setting_table!(settings_args);

/// A boolean flag and its `--no-` twin as a setting: on, off, or not given
/// (so a TOML file's `shuffle = true` can be switched off on the command line).
fn on_off(on: bool, off: bool) -> Option<bool> {
    match (on, off) {
        (_, true) => Some(false),
        (true, false) => Some(true),
        (false, false) => None,
    }
}

/// `--grid`'s help, listing every axis a sweep accepts (from the one list
/// of axes, so that it cannot leave one out).
fn grid_help() -> String {
    let names: Vec<&str> = crate::train::settings::AXES
        .iter()
        .map(|a| a.name())
        .collect();
    format!(
        "Grid axis, repeatable: NAME=V1,V2,... or NAME=LO:HI:N[:log|lin] (log by default on lambda \
         and learning rates). Every combination of the grid axes is trained. Axes: {} (hidden as 50 or \
         100x50, loss as ce,bce, booleans as 0,1, several seeds are repeats)",
        names.join(", ")
    )
}

/// The axes of a sweep: grids, ranges and random draws over any setting.
#[derive(Args, Clone, Default)]
pub struct AxesArgs {
    /// Grid axis, repeatable (see the help's list of axes).
    #[arg(long, value_name = "NAME=VALUES", help = grid_help())]
    pub grid: Vec<String>,
    /// Random axis, repeatable: NAME=LO:HI[:log|lin], drawn --draws times
    /// (log-uniform on lambda and learning rates), jointly with the other
    /// random axes, seeded by --seed.
    #[arg(long, value_name = "NAME=LO:HI")]
    pub random: Vec<String>,
    /// Random draws [8].
    #[arg(long)]
    pub draws: Option<usize>,
    /// Shorthand: --grid lambda=V1,V2,...
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["lambda_grid", "lambda_random"])]
    pub lambdas: Option<Vec<f64>>,
    /// Shorthand: N lambdas log-spaced in [LO, HI] (--grid lambda=LO:HI:N:log).
    #[arg(long, value_name = "LO:HI:N", conflicts_with = "lambda_random")]
    pub lambda_grid: Option<String>,
    /// Shorthand: N lambdas log-uniform at random in [LO, HI]
    /// (--random lambda=LO:HI --draws N).
    #[arg(long, value_name = "LO:HI:N")]
    pub lambda_random: Option<String>,
}

impl AxesArgs {
    /// The axes as settings; `NAME=VALUES` that does not parse is refused.
    pub fn settings(&self) -> anyhow::Result<SweepSettings> {
        let table = |items: &[String], flag: &str| -> anyhow::Result<Option<toml::Table>> {
            let mut t = toml::Table::new();
            for item in items {
                let Some((name, values)) = item.split_once('=') else {
                    anyhow::bail!(
                        "{flag} {item}: expected NAME=VALUES, e.g. {flag} eta_max=0.05,0.1,0.2"
                    );
                };
                let axis = crate::train::Axis::parse(name)?;
                if t.insert(axis.name().into(), values.trim().into()).is_some() {
                    anyhow::bail!("{flag} {}: the axis is given twice", axis.name());
                }
            }
            Ok((!t.is_empty()).then_some(t))
        };
        Ok(SweepSettings {
            grid: table(&self.grid, "--grid")?,
            random: table(&self.random, "--random")?,
            draws: self.draws,
            lambdas: self.lambdas.clone(),
            lambda_grid: self.lambda_grid.clone(),
            lambda_random: self.lambda_random.clone(),
            ..Default::default()
        })
    }
}

/// A pruned search: successive halving or Hyperband over the sweep's
/// configurations, in lockstep.
#[derive(Args, Clone, Default)]
pub struct PruneArgs {
    /// Successive halving: train every configuration to --min-cycles (or
    /// --min-epochs), keep the best 1 in --reduction on validation accuracy,
    /// give them --reduction times the budget, and so on up to --max-cycles.
    #[arg(long, conflicts_with = "hyperband")]
    pub halving: bool,
    /// Hyperband: its brackets of successive halving side by side, from many
    /// configurations at the smallest budget to a few at the top one. The
    /// sweep needs exactly the brackets' configurations (refusals name the count).
    #[arg(long)]
    pub hyperband: bool,
    /// The rungs' budgets and reduction.
    #[command(flatten)]
    pub rungs: RungArgs,
}

impl PruneArgs {
    /// The flags as the sweep layer reads them; budget flags without
    /// --halving or --hyperband are refused.
    pub fn flags(&self) -> anyhow::Result<crate::sweep::ladder::PruneFlags> {
        use crate::sweep::ladder::Method;
        let method = match (self.halving, self.hyperband) {
            (true, _) => Some(Method::Halving),
            (_, true) => Some(Method::Hyperband),
            _ => None,
        };
        self.rungs.flags(method, "add --halving or --hyperband")
    }
}

/// The rungs of a pruned search (`sweep --halving|--hyperband`, `search
/// --method halving|hyperband`).
#[derive(Args, Clone, Default)]
pub struct RungArgs {
    /// The factor eta of a pruned search: keep 1 in ETA at each rung, and
    /// give the survivors ETA times the budget [3].
    #[arg(long, value_name = "ETA")]
    pub reduction: Option<usize>,
    /// A pruned search's smallest budget, in cycles of the cyclical schedule
    /// [the top one divided by --reduction as often as it divides].
    #[arg(long, value_name = "N")]
    pub min_cycles: Option<usize>,
    /// A pruned search's top budget, in cycles: every run's length, in place
    /// of --cycles [sweep: --cycles; search: --fine-cycles].
    #[arg(long, value_name = "N")]
    pub max_cycles: Option<usize>,
    /// A pruned search's smallest budget, in epochs of a fixed or decaying schedule.
    #[arg(long, value_name = "N")]
    pub min_epochs: Option<usize>,
    /// A pruned search's top budget, in epochs, in place of --epochs [--epochs].
    #[arg(long, value_name = "N")]
    pub max_epochs: Option<usize>,
}

impl RungArgs {
    /// The flags of a pruned search by `method`; without one, any rung flag
    /// is refused with `fix`.
    pub fn flags(
        &self,
        method: Option<crate::sweep::ladder::Method>,
        fix: &str,
    ) -> anyhow::Result<crate::sweep::ladder::PruneFlags> {
        let given = [
            ("--reduction", self.reduction),
            ("--min-cycles", self.min_cycles),
            ("--max-cycles", self.max_cycles),
            ("--min-epochs", self.min_epochs),
            ("--max-epochs", self.max_epochs),
        ];
        if method.is_none() {
            if let Some((flag, _)) = given.iter().find(|(_, v)| v.is_some()) {
                anyhow::bail!("{flag} sets a pruned search's rungs: {fix}");
            }
        }
        Ok(crate::sweep::ladder::PruneFlags {
            method,
            reduction: self.reduction,
            min_cycles: self.min_cycles,
            max_cycles: self.max_cycles,
            min_epochs: self.min_epochs,
            max_epochs: self.max_epochs,
        })
    }
}

/// Running on a Slurm cluster: `--slurm N` writes job scripts (and with
/// `--submit` submits them) instead of training here.
#[derive(Args, Clone, Default)]
pub struct SlurmArgs {
    /// Write Slurm job scripts into --out/slurm instead of training here: an
    /// sbatch array of N tasks, one shard each, and the job that merges them
    /// (a search: coarse, fine and final arrays, then its report).
    #[arg(long, value_name = "N")]
    pub slurm: Option<usize>,
    /// With --slurm: also submit the jobs with sbatch and print their ids.
    #[arg(long, requires = "slurm")]
    pub submit: bool,
    /// With --slurm: cores per array task, the --threads of its shard [4].
    #[arg(long, requires = "slurm", value_name = "N")]
    pub cpus_per_task: Option<usize>,
    /// With --slurm: time limit per task, as sbatch takes it (e.g. 1:00:00).
    #[arg(long, requires = "slurm")]
    pub time: Option<String>,
    /// With --slurm: memory per task, as sbatch takes it (e.g. 8G).
    #[arg(long, requires = "slurm")]
    pub mem: Option<String>,
    /// With --slurm: the partition.
    #[arg(long, requires = "slurm")]
    pub partition: Option<String>,
    /// With --slurm: the account charged.
    #[arg(long, requires = "slurm")]
    pub account: Option<String>,
}

impl SlurmArgs {
    /// The jobs' resources, checked.
    pub fn resources(&self) -> anyhow::Result<crate::sweep::slurm::Resources> {
        let cpus = self.cpus_per_task.unwrap_or(4);
        if cpus == 0 || cpus > 1024 {
            anyhow::bail!("--cpus-per-task {cpus}: give between 1 and the cores of a node");
        }
        for (flag, v) in [
            ("--time", &self.time),
            ("--mem", &self.mem),
            ("--partition", &self.partition),
            ("--account", &self.account),
        ] {
            if let Some(v) = v {
                if v.is_empty()
                    || v.chars()
                        .any(|c| c.is_whitespace() || c == '\'' || c == '"')
                {
                    anyhow::bail!("{flag} {v:?}: give one word, as sbatch takes it");
                }
            }
        }
        Ok(crate::sweep::slurm::Resources {
            cpus_per_task: cpus,
            time: self.time.clone(),
            mem: self.mem.clone(),
            partition: self.partition.clone(),
            account: self.account.clone(),
            coretype: crate::sweep::slurm::Resources::user_coretype(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, FromArgMatches};

    fn settings(args: &[&str]) -> SweepSettings {
        let cmd = SettingsArgs::augment_args(clap::Command::new("shallow"));
        let m = cmd.try_get_matches_from(args).unwrap();
        SettingsArgs::from_arg_matches(&m).unwrap().settings()
    }

    /// A TOML file's `shuffle = true` (any boolean) is switched off by
    /// `--no-shuffle`; the last of `--X` and `--no-X` wins.
    /// `sweep --help` lists every axis the sweep accepts.
    #[test]
    fn the_grid_help_lists_every_axis() {
        let help = grid_help();
        for a in crate::train::settings::AXES {
            assert!(help.contains(a.name()), "{} missing from: {help}", a.name());
        }
    }

    #[test]
    fn booleans_have_a_no_flag_that_overrides_the_file() {
        let file: SweepSettings =
            toml::from_str("shuffle = true\nflip = true\ntta = true").unwrap();
        let merged = settings(&[
            "shallow",
            "--no-shuffle",
            "--flip",
            "--no-flip",
            "--no-tta",
            "--tta",
        ])
        .over(file)
        .unwrap();
        assert_eq!(merged.shuffle, Some(false));
        assert_eq!(merged.flip, Some(false));
        assert_eq!(merged.tta, Some(true));
        let untouched = settings(&["shallow"]).over(toml::from_str("shuffle = true").unwrap());
        assert_eq!(untouched.unwrap().shuffle, Some(true));
    }
}
