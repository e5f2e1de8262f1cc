//! Command line of shallow: parses arguments and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use shallow::data::{self, SplitKind, SplitSpec};
use shallow::nn::gradcheck::{self, Method};
use shallow::data::Split;
use shallow::nn::Loss;

#[derive(Parser)]
#[command(name = "shallow", version, about = "Fast trainer for shallow networks on CIFAR-10")]
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
                anyhow::bail!("--h {} is out of range: use a small positive step such as 1e-5", a.h);
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
                hidden: if a.model == Model::Linear { vec![] } else { a.hidden.clone() },
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
                    Some(Split::<f64>::new(&d, SplitSpec { kind: SplitKind::A1, ..Default::default() })?)
                }
                None => {
                    eprintln!("no CIFAR-10 data found (--data, CIFAR10_DIR): checking on generated data");
                    None
                }
            };
            let report = gradcheck::run(&opts, split.as_ref().map(|s| (&s.train, "CIFAR-10 data_batch_1".to_string())));
            if a.json {
                print_json(&report)?;
            } else {
                println!("{report}");
            }
            if !report.passed {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
