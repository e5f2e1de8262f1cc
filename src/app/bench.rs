//! `shallow bench`: its flags, the call to [`crate::pipeline::bench`] and the
//! printing of its report.

use anyhow::Result;

pub use crate::pipeline::bench::{run, BenchOptions, BenchReport};

/// Flags of `shallow bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// A run of a few seconds.
    #[arg(long)]
    pub quick: bool,
    /// Also measure dgemm (f64).
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: crate::nn::Precision,
    /// Skip the 8-lambda sweep.
    #[arg(long)]
    pub no_sweep: bool,
    /// Cores for the "all cores" figures (default: all).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where the data is.
    #[command(flatten)]
    pub data: super::args::DataArgs,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `shallow bench`: measures on the real data when it is found, else on
/// generated data of the same shapes, and prints the tables (or JSON).
pub fn run_command(a: &BenchArgs) -> Result<super::common::Finish> {
    // The flags are checked before the data is read.
    let opts = BenchOptions {
        quick: a.quick,
        cores: super::common::threads(a.threads)?,
        f64: a.precision == crate::nn::Precision::F64,
        no_sweep: a.no_sweep,
    };
    let source = a.data.source();
    let data = match crate::data::locate(&source)? {
        Some(dir) => Some(crate::data::RawData::load_as(&dir, &source)?),
        None => None,
    };
    let report = run(data.as_ref(), &opts)?;
    if a.json {
        super::common::print_json(&report)?;
    } else {
        crate::outln!("{report}")?;
    }
    Ok(super::common::Finish::Done)
}
