//! Command line of shallow: parses arguments and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use shallow::data::Split;
use shallow::data::{self, SplitKind, SplitSpec, Whitening};
use shallow::nn::gradcheck::{self, Method};
use shallow::nn::{Loss, ModelKind, Precision};
use shallow::sweep::experiment::{self, Summary};
use shallow::sweep::plan::SweepSettings;
use shallow::sweep::{run_configs, Dashboard, DisplayMode, LambdaSpec, RunnerOptions, SweepSpec};
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
    /// Train many lambdas in parallel lockstep groups, with a live dashboard.
    Sweep(SweepArgs),
    /// Coarse-to-fine lambda search, then a final run with the best lambda.
    Search(SearchArgs),
    /// Measure GEMM roofline, step speed, phase profile and sweep throughput.
    Bench(BenchArgs),
    /// Rebuild report.md and report.html from an `experiment all` folder.
    Report {
        /// The folder `shallow experiment all --out` wrote.
        dir: PathBuf,
    },
}

#[derive(Args)]
struct BenchArgs {
    /// A run of a few seconds.
    #[arg(long)]
    quick: bool,
    /// Also measure dgemm (f64).
    #[arg(long, value_enum, default_value = "f32")]
    precision: Precision,
    /// Skip the 8-lambda sweep.
    #[arg(long)]
    no_sweep: bool,
    /// Cores for the "all cores" figures (default: all).
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    data: DataArgs,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SweepArgs {
    /// TOML file with the sweep's settings (flags override it).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Lambdas as a list, e.g. 1e-5,1e-3,0.1.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["lambda_grid", "lambda_random"])]
    lambdas: Option<Vec<f64>>,
    /// N lambdas log-spaced in [LO, HI]: LO:HI:N.
    #[arg(long, value_name = "LO:HI:N", conflicts_with = "lambda_random")]
    lambda_grid: Option<String>,
    /// N lambdas log-uniform at random in [LO, HI] (seeded): LO:HI:N.
    #[arg(long, value_name = "LO:HI:N")]
    lambda_random: Option<String>,
    #[command(flatten)]
    sweep: SweepShape,
    /// Parallel workers (default: all cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Most configurations trained in lockstep per group. It decides the groups,
    /// and so the GEMM shapes: runs give the same numbers bit for bit for any
    /// --jobs and --threads, but a different --max-group changes their last bits.
    #[arg(long, default_value_t = shallow::sweep::DEFAULT_MAX_GROUP)]
    max_group: usize,
    /// Continue an interrupted sweep in the same --out (refused when the plan differs).
    #[arg(long)]
    resume: bool,
    /// Start over in an --out that holds another sweep, removing its runs.
    #[arg(long, conflicts_with = "resume")]
    force: bool,
    #[command(flatten)]
    common: CommonArgs,
}

/// Settings shared by `sweep` and `search` (all optional: file, then defaults).
#[derive(Args, Clone, Default)]
struct SweepShape {
    /// Network: linear or mlp.
    #[arg(long, value_enum)]
    model: Option<ModelKind>,
    /// Hidden widths of the mlp.
    #[arg(long, value_delimiter = ',')]
    hidden: Option<Vec<usize>>,
    /// Cycles of the cyclical schedule.
    #[arg(long)]
    cycles: Option<usize>,
    /// Half-cycle steps (0: 2 floor(n_train / batch)).
    #[arg(long)]
    ns: Option<usize>,
    /// Lowest eta.
    #[arg(long)]
    eta_min: Option<f64>,
    /// Highest eta.
    #[arg(long)]
    eta_max: Option<f64>,
    /// Mini-batch size.
    #[arg(long)]
    batch: Option<usize>,
    /// Data split (default full).
    #[arg(long, value_enum)]
    split: Option<SplitKind>,
    /// Validation images held out (split full).
    #[arg(long)]
    n_val: Option<usize>,
    /// Use only the first N training images.
    #[arg(long)]
    n_train: Option<usize>,
    /// Whiten the standardised inputs: pca or zca (fitted on the training images).
    #[arg(long, value_enum)]
    whiten: Option<Whitening>,
    /// Added to every eigenvalue before whitening (default 10).
    #[arg(long)]
    whiten_eps: Option<f64>,
    /// Base seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Logged points per cycle (default 5; 0: only start and end; fastest).
    #[arg(long)]
    log_points: Option<usize>,
    /// Training images the intermediate logged points evaluate: N (a fixed
    /// sample chosen from the seed; default 1000) or `all`. The validation set,
    /// and at the last point the training set, are always evaluated in full.
    #[arg(long, value_name = "N|all")]
    eval_train: Option<shallow::train::EvalTrain>,
    /// Reshuffle every epoch.
    #[arg(long)]
    shuffle: bool,
    /// Precision.
    #[arg(long, value_enum)]
    precision: Option<Precision>,
}

#[derive(Args)]
struct SearchArgs {
    /// Coarse lambdas (LO:HI:N, log-uniform at random).
    #[arg(long, default_value = "1e-5:1e-1:8")]
    coarse: String,
    /// Coarse cycles.
    #[arg(long, default_value_t = 2)]
    coarse_cycles: usize,
    /// Fine lambdas.
    #[arg(long, default_value_t = 8)]
    fine_n: usize,
    /// Fine cycles.
    #[arg(long, default_value_t = 3)]
    fine_cycles: usize,
    /// Half-width of the fine range around the best coarse lambda, in decades.
    #[arg(long, default_value_t = 0.5)]
    fine_decades: f64,
    /// Final cycles.
    #[arg(long, default_value_t = 3)]
    final_cycles: usize,
    /// Validation images held out in the final run.
    #[arg(long, default_value_t = 1000)]
    final_n_val: usize,
    #[command(flatten)]
    sweep: SweepShape,
    /// Parallel workers (default: all cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Continue an interrupted search in the same --out (refused when the plan differs).
    #[arg(long)]
    resume: bool,
    /// Start over in an --out that holds another search, removing its runs.
    #[arg(long, conflicts_with = "resume")]
    force: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct TrainArgs {
    /// Network: linear (Assignment 1) or mlp (Assignment 2).
    #[arg(long, value_enum, default_value = "linear")]
    model: ModelKind,
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
    /// Logged points per cycle (cyclical schedule; 0: only the start and the end).
    #[arg(long, default_value_t = 10)]
    log_points: usize,
    /// Training images the intermediate logged points evaluate: N (a fixed
    /// sample chosen from the seed) or `all`. The validation set, and at the
    /// last point the training set, are always evaluated in full.
    #[arg(long, value_name = "N|all", default_value = "5000")]
    eval_train: shallow::train::EvalTrain,
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
    /// Run name: the run goes into --out/NAME. Without it, --out is the run's
    /// own folder and names the run.
    #[arg(long)]
    name: Option<String>,
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
    /// Whiten the standardised inputs: pca or zca, fitted on the training
    /// images only (the decomposition is cached, see README "Whitening").
    #[arg(long, value_enum, default_value = "none")]
    whiten: Whitening,
    /// Added to every eigenvalue of the training covariance before whitening
    /// (the eigenvalues of the standardised features sum to 3072).
    #[arg(long, default_value_t = shallow::data::whiten::DEFAULT_WHITEN_EPS)]
    whiten_eps: f64,
}

impl SplitArgs {
    fn spec(&self) -> SplitSpec {
        SplitSpec {
            kind: self.split,
            n_val: self.n_val,
            n_train: self.n_train,
            whiten: self.whiten,
            whiten_eps: self.whiten_eps,
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
    /// `all` only: tiny versions of every stage (a smoke test of the pipeline).
    #[arg(long)]
    quick: bool,
    /// `all` only: continue an interrupted run in the same --out.
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Experiment {
    /// Assignment 1: the four (lambda, eta) settings of the linear classifier.
    A1,
    /// Assignment 2: one cycle (n_s 500) and three cycles (n_s 800), m = 50.
    A2,
    /// Everything: gradient checks, A1, A2, lambda search, final run, report.
    All,
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
    model: ModelKind,
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

fn main() -> ExitCode {
    use_the_cpus_kernel();
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

/// Debian's OpenBLAS 0.3.21 does not know the newest CPUs and falls back to its
/// SSE3 kernels there, ten times slower. OpenBLAS picks its kernel when it loads,
/// before `main`, so in that case shallow starts itself again with
/// `OPENBLAS_CORETYPE` naming the kernel the CPU can run. A user's own
/// `OPENBLAS_CORETYPE` is always kept.
fn use_the_cpus_kernel() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os(shallow::nn::blas::KERNEL_CHOSEN_VAR).is_some() {
        return;
    }
    let Some(kernel) = shallow::nn::blas::better_kernel() else {
        return;
    };
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let detected = shallow::nn::blas::kernel();
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("OPENBLAS_CORETYPE", kernel)
        .env(
            shallow::nn::blas::KERNEL_CHOSEN_VAR,
            format!("it picked {detected}; shallow asked for {kernel}"),
        )
        .exec();
    // exec returns only on failure: go on with OpenBLAS's own choice.
    eprintln!("warning: could not restart with OPENBLAS_CORETYPE={kernel} ({err}); BLAS runs its {detected} kernels");
}

/// Prints `value` as JSON with --json, else `table` and where the files are
/// (nothing with --quiet).
fn print_summary<T: serde::Serialize>(common: &CommonArgs, value: &T, table: &str) -> Result<()> {
    if common.json {
        print_json(value)?;
    } else if !common.quiet {
        println!("{table}");
        println!("results in {}", common.out.display());
    }
    Ok(())
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
                hidden: if a.model == ModelKind::Linear {
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
            let mut config = train_config(&a)?;
            // Without --name, --out is the run folder itself: write into its parent
            // under its own name.
            let mut common = a.common.clone();
            if a.name.is_none() {
                let (parent, name) = run_folder(&a.common.out)?;
                config.name = name;
                common.out = parent;
            }
            let run_dir = common.out.join(&config.name);
            config.validate(config.split.train_len())?;
            shallow::util::create_dir(&run_dir)?;
            let results = run_and_write(vec![config], &common)?;
            let r = &results[0];
            if a.common.json {
                print_json(r)?;
            } else if let (Some(d), false) = (r.diverged, a.common.quiet) {
                println!(
                    "{} diverged at step {} (eta {:.3e}): the cost is not finite; lower the learning rate. \
                     What was recorded is in {}",
                    r.name,
                    d.step,
                    d.eta,
                    run_dir.display()
                );
            } else if !a.common.quiet {
                println!(
                    "{}: train {:.2}%  validation {:.2}%  test {:.2}%\n  {} steps, {:.3} ms/step, {:.1} s; files in {}",
                    r.name,
                    100.0 * r.train_acc,
                    100.0 * r.val_acc,
                    100.0 * r.test_acc,
                    r.steps,
                    r.ms_per_step,
                    r.wall_s,
                    run_dir.display()
                );
            }
            if r.status != shallow::train::Status::Done {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Sweep(a) => return run_sweep(&a),
        Command::Report { dir } => {
            let (md, html) = shallow::report::build::build(&dir)?;
            println!("report: {} and {}", md.display(), html.display());
        }
        Command::Bench(a) => {
            let cores = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            let data = match data::locate(a.data.data.as_deref())? {
                Some(dir) => Some(data::Cifar10::load(&dir)?),
                None => None,
            };
            let opts = shallow::bench::BenchOptions {
                quick: a.quick,
                cores: a.threads.unwrap_or(cores),
                f64: a.precision == Precision::F64,
                no_sweep: a.no_sweep,
            };
            let report = shallow::bench::run(data.as_ref(), &opts)?;
            if a.json {
                print_json(&report)?;
            } else {
                println!("{report}");
            }
        }
        Command::Search(a) => return run_search(&a),
        Command::Experiment(a) => {
            let configs = match a.which {
                Experiment::A1 => experiment::a1_configs(a.seed, a.precision),
                Experiment::A2 => experiment::a2_configs(a.seed, a.precision),
                Experiment::All => return run_all(&a),
            };
            let t0 = std::time::Instant::now();
            let results = run_and_write(configs, &a.common)?;
            let summary = Summary::new(&results, t0.elapsed().as_secs_f64());
            summary.write(&a.common.out)?;
            print_summary(&a.common, &summary, &summary.markdown())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds a sweep from defaults, then the TOML file, then the flags.
fn sweep_spec(a: &SweepArgs) -> Result<SweepSpec> {
    let file = match &a.config {
        Some(p) => SweepSettings::from_toml_file(p)?,
        None => SweepSettings::default(),
    };
    let flags = SweepSettings {
        lambdas: a.lambdas.clone(),
        lambda_grid: a.lambda_grid.clone(),
        lambda_random: a.lambda_random.clone(),
        ..a.sweep.settings()
    };
    flags.over(file).spec(SweepSpec::default())
}

impl SweepShape {
    /// The flags given, as sweep settings (lambdas aside).
    fn settings(&self) -> SweepSettings {
        SweepSettings {
            model: self.model,
            hidden: self.hidden.clone(),
            cycles: self.cycles,
            ns: self.ns,
            eta_min: self.eta_min,
            eta_max: self.eta_max,
            batch: self.batch,
            split: self.split,
            n_val: self.n_val,
            n_train: self.n_train,
            whiten: self.whiten,
            whiten_eps: self.whiten_eps,
            seed: self.seed,
            log_points: self.log_points,
            shuffle: self.shuffle.then_some(true),
            precision: self.precision,
            eval_train: self.eval_train,
            ..Default::default()
        }
    }
}

/// Runner settings from the common flags.
/// Runner settings from the common flags; `resume` and `force` as
/// [`RunnerOptions`] has them, the plan always guarded.
fn runner_options(
    common: &CommonArgs,
    jobs: Option<usize>,
    max_group: usize,
    (resume, force): (bool, bool),
    data_dir: String,
) -> Result<RunnerOptions> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let threads = common.threads.unwrap_or(cores);
    let jobs = jobs.unwrap_or(threads);
    if threads == 0 || jobs == 0 || max_group == 0 || max_group > shallow::nn::net::MAX_GROUP {
        anyhow::bail!(
            "--threads, --jobs and --max-group must be at least 1 (--max-group at most 64)"
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
    })
}

/// Splits a run folder into (parent, folder name), e.g. `out/a2` -> (`out`, `a2`).
fn run_folder(out: &std::path::Path) -> Result<(PathBuf, String)> {
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
        .unwrap_or(std::path::Path::new("."));
    Ok((parent.to_path_buf(), name.to_string_lossy().into_owned()))
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
        let every = (2 * ns).checked_div(a.log_points).map_or(0, |e| e.max(1));
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
        name: a.name.clone().unwrap_or_else(|| "run".into()),
        hidden: if a.model == ModelKind::Linear {
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
        eval_train: a.eval_train,
    })
}

/// Runs a sweep and writes its tables; returns (results, wall seconds).
fn run_sweep(a: &SweepArgs) -> Result<ExitCode> {
    let spec = sweep_spec(a)?;
    let configs = spec.configs();
    for c in &configs {
        c.validate(c.split.train_len())?;
    }
    shallow::util::create_dir(&a.common.out)?;
    let data = data::load(a.common.data.data.as_deref())?;
    let opts = runner_options(
        &a.common,
        a.jobs,
        a.max_group,
        (a.resume, a.force),
        data.dir.display().to_string(),
    )?;
    let dashboard = Dashboard::new(&configs, DisplayMode::detect(a.common.quiet), |c| {
        format!("lambda {:.3e}", c.lambda)
    });
    let t0 = std::time::Instant::now();
    let results = run_configs(&configs, &data, &opts, &CONTROL, &dashboard)?;
    let wall_s = t0.elapsed().as_secs_f64();
    // Written once the plan was accepted (a refused --resume leaves the folder as it was).
    shallow::util::write_json(&a.common.out.join("sweep.json"), &spec)?;
    shallow::sweep::results::write_tables(&a.common.out, &results)?;
    let interrupted = results
        .iter()
        .any(|r| r.status == shallow::train::Status::Interrupted);
    if a.common.json {
        let runs: Vec<serde_json::Value> = results
            .iter()
            .map(|r| serde_json::json!({"name": r.name, "lambda": r.lambda, "train_acc": r.train_acc, "val_acc": r.val_acc, "test_acc": r.test_acc, "steps": r.steps, "wall_s": r.wall_s, "status": r.status}))
            .collect();
        let best = shallow::sweep::results::best(&results);
        print_json(&serde_json::json!({"runs": runs, "best": best, "wall_s": wall_s}))?;
    } else if !a.common.quiet {
        print!("{}", shallow::sweep::results::text_table(&results));
        println!(
            "{} runs in {wall_s:.2} s; tables in {}",
            results.len(),
            a.common.out.display()
        );
    }
    if interrupted {
        eprintln!(
            "interrupted: finished runs are kept; continue with the same command and --resume"
        );
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `experiment all`: every stage, then the report.
fn run_all(a: &ExperimentArgs) -> Result<ExitCode> {
    let t0 = std::time::Instant::now();
    shallow::util::create_dir(&a.common.out)?;
    let data = match data::locate(a.common.data.data.as_deref())? {
        Some(dir) => data::Cifar10::load(&dir)?,
        None => {
            eprintln!("no CIFAR-10 data found: fetching it into ./data");
            let dir = data::fetch::fetch(
                std::path::Path::new("data"),
                data::fetch::URL,
                data::fetch::MD5,
                true,
            )?;
            data::Cifar10::load(&dir)?
        }
    };
    // The experiment is fixed: without --resume it starts over in its folder.
    let runner = runner_options(
        &a.common,
        None,
        shallow::sweep::DEFAULT_MAX_GROUP,
        (a.resume, !a.resume),
        data.dir.display().to_string(),
    )?;
    let opts = experiment::AllOptions {
        seed: a.seed,
        quick: a.quick,
        runner,
        mode: DisplayMode::detect(a.common.quiet),
    };
    match experiment::run_all(&data, &opts, &CONTROL)? {
        Some((md, html)) => {
            if a.common.json {
                print_json(
                    &serde_json::json!({"report_md": md, "report_html": html, "wall_s": t0.elapsed().as_secs_f64()}),
                )?;
            } else {
                println!(
                    "report: {} and {} ({:.1} s)",
                    html.display(),
                    md.display(),
                    t0.elapsed().as_secs_f64()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!(
                "interrupted: finished runs are kept; continue with the same command and --resume"
            );
            Ok(ExitCode::from(130))
        }
    }
}

/// Runs the coarse-to-fine search.
fn run_search(a: &SearchArgs) -> Result<ExitCode> {
    let (lo, hi, n) = LambdaSpec::parse_range(&a.coarse, "--coarse")?;
    let defaults = shallow::sweep::search::SearchOptions::default();
    let mut coarse = a.sweep.settings().spec(defaults.coarse.clone())?;
    coarse.lambdas = LambdaSpec::Random {
        lo,
        hi,
        n,
        seed: coarse.seed,
    };
    coarse.cycles = a.sweep.cycles.unwrap_or(a.coarse_cycles);
    let opts = shallow::sweep::search::SearchOptions {
        coarse,
        fine_n: a.fine_n,
        fine_cycles: a.fine_cycles,
        fine_decades: a.fine_decades,
        final_cycles: a.final_cycles,
        final_n_val: a.final_n_val,
    };
    for c in opts.coarse.configs() {
        c.validate(c.split.train_len())?;
    }
    if a.fine_n == 0
        || a.fine_cycles == 0
        || a.final_cycles == 0
        || a.fine_decades.is_nan()
        || a.fine_decades < 0.0
    {
        anyhow::bail!(
            "--fine-n, --fine-cycles and --final-cycles must be at least 1, --fine-decades >= 0"
        );
    }
    shallow::util::create_dir(&a.common.out)?;
    let data = data::load(a.common.data.data.as_deref())?;
    let runner = runner_options(
        &a.common,
        a.jobs,
        shallow::sweep::DEFAULT_MAX_GROUP,
        (a.resume, a.force),
        data.dir.display().to_string(),
    )?;
    let mode = DisplayMode::detect(a.common.quiet);
    match shallow::sweep::search::search(&data, &opts, &runner, &CONTROL, mode)? {
        Some(summary) => {
            print_summary(&a.common, &summary, &summary.markdown())?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!(
                "interrupted: finished runs are kept; continue with the same command and --resume"
            );
            Ok(ExitCode::from(130))
        }
    }
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
        max_group: shallow::sweep::DEFAULT_MAX_GROUP,
        out: common.out.clone(),
        data_dir: data.dir.display().to_string(),
        ..Default::default()
    };
    let mode = DisplayMode::detect(common.quiet);
    let dashboard = Dashboard::new(&configs, mode, |c| c.name.clone());
    run_configs(&configs, &data, &opts, &CONTROL, &dashboard)
}
