//! Command line of shallow: parses arguments and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use shallow::data::Split;
use shallow::data::{self, SplitKind, SplitSpec};
use shallow::nn::gradcheck::{self, Method};
use shallow::nn::{Loss, Precision};
use shallow::sweep::experiment::{self, Summary};
use shallow::sweep::{run_configs, Dashboard, DisplayMode, RunnerOptions};
use shallow::train::output::RunResult;
use shallow::train::{Control, RunConfig, Schedule};

/// Set by Ctrl-C / SIGTERM; training loops stop at the next step.
static CONTROL: Control = Control::new();

#[derive(Parser)]
#[command(
    name = "shallow",
    version,
    about = "Fast trainer for shallow networks on CIFAR-10"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect or download the CIFAR-10 data.
    #[command(subcommand)]
    Data(DataCommand),
    /// Compare analytic gradients with finite differences.
    Gradcheck(GradcheckArgs),
    /// Train one network and write its run folder.
    Train(TrainArgs),
    /// Reproduce an assignment's experiments (a1, a2).
    Experiment(ExperimentArgs),
}

#[derive(Args)]
struct TrainArgs {
    /// Network: linear (Assignment 1) or mlp (Assignment 2).
    #[arg(long, value_enum, default_value = "linear")]
    model: Model,
    /// Hidden widths of the mlp, e.g. 50 or 100,50.
    #[arg(long, value_delimiter = ',', default_value = "50")]
    hidden: Vec<usize>,
    /// Output loss.
    #[arg(long, value_enum, default_value = "ce")]
    loss: Loss,
    /// L2 penalty lambda.
    #[arg(long = "lambda", default_value_t = 0.0, allow_negative_numbers = true)]
    lambda: f64,
    /// Fixed learning rate (or the initial one with --decay-factor).
    #[arg(long, default_value_t = 0.001, allow_negative_numbers = true)]
    eta: f64,
    /// Step decay: multiply eta by this every --decay-every epochs.
    #[arg(long)]
    decay_factor: Option<f64>,
    /// Epochs between decays.
    #[arg(long, default_value_t = 10)]
    decay_every: usize,
    /// Cyclical schedule: number of cycles (selects the cyclical schedule).
    #[arg(long)]
    cycles: Option<usize>,
    /// Cyclical schedule: lowest eta.
    #[arg(long, default_value_t = 1e-5)]
    eta_min: f64,
    /// Cyclical schedule: highest eta.
    #[arg(long, default_value_t = 1e-1)]
    eta_max: f64,
    /// Cyclical schedule: half-cycle steps n_s (0: 2 floor(n_train / batch)).
    #[arg(long, default_value_t = 500)]
    ns: usize,
    /// Logged points per cycle (cyclical schedule).
    #[arg(long, default_value_t = 10)]
    log_points: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Epochs (fixed and step-decay schedules).
    #[arg(long, default_value_t = 40)]
    epochs: usize,
    /// Update steps (overrides --epochs).
    #[arg(long)]
    steps: Option<usize>,
    /// Reshuffle the training set every epoch.
    #[arg(long)]
    shuffle: bool,
    /// Base seed of initialisation and shuffling.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    split: SplitArgs,
    /// Floating-point precision.
    #[arg(long, value_enum, default_value = "f32")]
    precision: Precision,
    /// Save the trained weights as .npy.
    #[arg(long)]
    save_weights: bool,
    #[command(flatten)]
    common: CommonArgs,
    /// Run name (folder inside --out).
    #[arg(long, default_value = "run")]
    name: String,
}

#[derive(Args, Clone)]
struct SplitArgs {
    /// Data split: a1 (batch 1 / batch 2 / test) or full (batches 1-5, last --n-val validate).
    #[arg(long, value_enum, default_value = "a1")]
    split: SplitKind,
    /// Validation images held out (split full).
    #[arg(long, default_value_t = 5000)]
    n_val: usize,
    /// Use only the first N training images.
    #[arg(long)]
    n_train: Option<usize>,
}

impl SplitArgs {
    fn spec(&self) -> SplitSpec {
        SplitSpec {
            kind: self.split,
            n_val: self.n_val,
            n_train: self.n_train,
        }
    }
}

#[derive(Args, Clone)]
struct CommonArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Output folder.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No progress display.
    #[arg(long)]
    quiet: bool,
    /// Cores to use (BLAS threads and parallel runs); default all.
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct ExperimentArgs {
    /// Which experiment.
    #[arg(value_enum)]
    which: Experiment,
    /// Base seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Floating-point precision.
    #[arg(long, value_enum, default_value = "f32")]
    precision: Precision,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Experiment {
    /// Assignment 1: the four (lambda, eta) settings of the linear classifier.
    A1,
    /// Assignment 2: one cycle (n_s 500) and three cycles (n_s 800), m = 50.
    A2,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Images and classes per file, training mean, load time.
    Info {
        #[command(flatten)]
        data: DataArgs,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Download the official binary release, check its md5 and extract it.
    Fetch {
        /// Folder to put cifar-10-batches-bin into.
        #[arg(long, default_value = "data")]
        dest: PathBuf,
        /// Where to download from (a mirror of cifar-10-binary.tar.gz).
        #[arg(long, default_value = data::fetch::URL)]
        url: String,
        /// Expected md5 of the tarball.
        #[arg(long, default_value = data::fetch::MD5, hide = true)]
        md5: String,
    },
}

#[derive(Args, Clone)]
struct DataArgs {
    /// CIFAR-10 folder (else $CIFAR10_DIR, else ./data/cifar-10-batches-bin).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

#[derive(Args)]
struct GradcheckArgs {
    /// Network: linear (Assignment 1) or mlp (Assignment 2).
    #[arg(long, value_enum, default_value = "mlp")]
    model: Model,
    /// Hidden widths of the mlp, e.g. 50 or 100,50.
    #[arg(long, value_delimiter = ',', default_value = "50")]
    hidden: Vec<usize>,
    /// Output loss.
    #[arg(long, value_enum, default_value = "ce")]
    loss: Loss,
    /// L2 penalty.
    #[arg(long = "lambda", default_value_t = 0.0)]
    lambda: f64,
    /// Finite differences.
    #[arg(long, value_enum, default_value = "centred")]
    method: Method,
    /// Finite step.
    #[arg(long, default_value_t = 1e-5)]
    h: f64,
    /// Floor of the relative error's denominator max(eps, |ga| + |gn|).
    #[arg(long, default_value_t = gradcheck::REL_EPS)]
    eps: f64,
    /// Largest accepted relative error.
    #[arg(long, default_value_t = 1e-6)]
    tol: f64,
    /// Features used (default: 20, plus a full 3072-feature check on 2 images).
    #[arg(long)]
    dims: Option<usize>,
    /// Images used (default 100).
    #[arg(long)]
    samples: Option<usize>,
    /// Seed of the initial weights.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Precision (gradient checks run in f64).
    #[arg(long, value_enum, default_value = "f64")]
    precision: shallow::nn::Precision,
    #[command(flatten)]
    data: DataArgs,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Model {
    Linear,
    Mlp,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = ctrlc::set_handler(|| {
        if CONTROL.stop.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130); // second interrupt: leave at once
        }
        eprintln!("\ninterrupted: stopping after the current step (press again to quit at once)");
    });
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Data(DataCommand::Info { data, json }) => {
            let d = data::load(data.data.as_deref())?;
            let info = d.info();
            if json {
                print_json(&info)?;
            } else {
                println!("{info}");
            }
        }
        Command::Data(DataCommand::Fetch { dest, url, md5 }) => {
            let dir = data::fetch::fetch(&dest, &url, &md5, true)?;
            eprintln!("CIFAR-10 is in {}", dir.display());
        }
        Command::Gradcheck(a) => {
            if a.precision != shallow::nn::Precision::F64 {
                anyhow::bail!("--precision f32 is too coarse for finite differences: gradient checks run in f64");
            }
            if !(a.h > 0.0 && a.h < 1.0) {
                anyhow::bail!(
                    "--h {} is out of range: use a small positive step such as 1e-5",
                    a.h
                );
            }
            let subsets = match (a.dims, a.samples) {
                (None, None) => vec![(20, 100), (3072, 2)],
                (d, s) => vec![(d.unwrap_or(20), s.unwrap_or(100))],
            };
            for &(d, s) in &subsets {
                if d == 0 || d > data::PIXELS || s == 0 || s > data::RECORDS_PER_FILE {
                    anyhow::bail!("--dims {d} --samples {s} out of range: use 1-3072 features and 1-10000 images");
                }
            }
            let opts = gradcheck::Options {
                hidden: if a.model == Model::Linear {
                    vec![]
                } else {
                    a.hidden.clone()
                },
                loss: a.loss,
                lambda: a.lambda,
                method: a.method,
                h: a.h,
                eps: a.eps,
                tol: a.tol,
                subsets,
                seed: a.seed,
            };
            shallow::nn::blas::set_threads(1); // tiny products: threads only add overhead
            let split = match data::locate(a.data.data.as_deref())? {
                Some(dir) => {
                    let d = data::Cifar10::load(&dir)?;
                    Some(Split::<f64>::new(
                        &d,
                        SplitSpec {
                            kind: SplitKind::A1,
                            ..Default::default()
                        },
                    )?)
                }
                None => {
                    eprintln!(
                        "no CIFAR-10 data found (--data, CIFAR10_DIR): checking on generated data"
                    );
                    None
                }
            };
            let report = gradcheck::run(
                &opts,
                split
                    .as_ref()
                    .map(|s| (&s.train, "CIFAR-10 data_batch_1".to_string())),
            );
            if a.json {
                print_json(&report)?;
            } else {
                println!("{report}");
            }
            if !report.passed {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Train(a) => {
            let config = train_config(&a)?;
            let results = run_and_write(vec![config], &a.common)?;
            let r = &results[0];
            if a.common.json {
                print_json(r)?;
            }
            if r.status != shallow::train::Status::Done {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Experiment(a) => {
            let configs = match a.which {
                Experiment::A1 => experiment::a1_configs(a.seed, a.precision),
                Experiment::A2 => experiment::a2_configs(a.seed, a.precision),
            };
            let t0 = std::time::Instant::now();
            let results = run_and_write(configs, &a.common)?;
            let summary = Summary::new(&results, t0.elapsed().as_secs_f64());
            summary.write(&a.common.out)?;
            if a.common.json {
                print_json(&summary)?;
            } else if !a.common.quiet {
                println!("{}", summary.markdown());
                println!("results in {}", a.common.out.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds the run configuration of `shallow train` from its flags.
fn train_config(a: &TrainArgs) -> Result<RunConfig> {
    let split = a.split.spec();
    let n_train = split.train_len();
    let per_epoch = (n_train / a.batch.max(1)).max(1);
    let (schedule, steps, log_every) = if let Some(cycles) = a.cycles {
        let ns = if a.ns == 0 { 2 * per_epoch } else { a.ns };
        if cycles == 0 {
            anyhow::bail!("--cycles 0: train at least one cycle");
        }
        let every = (2 * ns / a.log_points.max(1)).max(1);
        (
            Schedule::Cyclic {
                eta_min: a.eta_min,
                eta_max: a.eta_max,
                ns,
            },
            2 * ns * cycles,
            every,
        )
    } else {
        let schedule = match a.decay_factor {
            Some(factor) => Schedule::StepDecay {
                eta: a.eta,
                factor,
                every_steps: a.decay_every.max(1) * per_epoch,
            },
            None => Schedule::Fixed { eta: a.eta },
        };
        (schedule, a.steps.unwrap_or(a.epochs * per_epoch), per_epoch)
    };
    Ok(RunConfig {
        name: a.name.clone(),
        hidden: if a.model == Model::Linear {
            vec![]
        } else {
            a.hidden.clone()
        },
        loss: a.loss,
        lambda: a.lambda,
        schedule,
        batch: a.batch,
        steps,
        shuffle: a.shuffle,
        seed: a.seed,
        split,
        precision: a.precision,
        log_every,
        save_weights: a.save_weights,
    })
}

/// Loads the data, trains `configs` with a dashboard, writes every run folder
/// under `--out`, and returns their results in order.
fn run_and_write(configs: Vec<RunConfig>, common: &CommonArgs) -> Result<Vec<RunResult>> {
    for c in &configs {
        c.validate(c.split.train_len())?;
    }
    if let Some(t) = common.threads {
        if t == 0 || t > 1024 {
            anyhow::bail!("--threads {t}: use between 1 and the number of cores");
        }
    }
    shallow::util::create_dir(&common.out)?;
    let data = data::load(common.data.data.as_deref())?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let threads = common.threads.unwrap_or(cores).max(1);
    let opts = RunnerOptions {
        jobs: threads,
        threads,
        max_group: 8,
        out: Some(common.out.clone()),
        data_dir: data.dir.display().to_string(),
    };
    let mode = DisplayMode::detect(common.quiet);
    let dashboard = Dashboard::new(&configs, mode, |c| c.name.clone());
    let outcomes = run_configs(&configs, &data, &opts, &CONTROL, &dashboard)?;
    Ok(outcomes.iter().map(RunResult::from_outcome).collect())
}
