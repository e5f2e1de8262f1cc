//! Command line of shallow: the commands, and a call into the library for each
//! (`shallow::app`, where each command's flags and pipeline live).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use shallow::app;
use shallow::train::Control;

/// Set by Ctrl-C / SIGTERM; training loops stop at the next step.
static CONTROL: Control = Control::new();

#[derive(Parser)]
#[command(
    name = "shallow",
    version,
    about = "Fast trainer for shallow networks on image data (CIFAR-10, CIFAR-100, MNIST, .npz)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect or download a data set (CIFAR-10, CIFAR-100, MNIST, Fashion-MNIST).
    #[command(subcommand)]
    Data(app::data::DataCommand),
    /// Compare analytic gradients with finite differences.
    Gradcheck(app::gradcheck::GradcheckArgs),
    /// Train one network and write its run folder.
    Train(app::train::TrainArgs),
    /// Reproduce an assignment's experiments (a1, a2).
    Experiment(app::experiment::ExperimentArgs),
    /// Train a grid or random draws over any settings in parallel lockstep
    /// groups, with a live dashboard, summary.png and a report.
    Sweep(app::sweep::SweepArgs),
    /// Coarse-to-fine search on lambda (or another scale axis), then the best
    /// values trained on more data.
    Search(app::search::SearchArgs),
    /// Learning-rate range test: eta grown exponentially over one short run,
    /// accuracy and loss against eta, suggested eta_min and eta_max.
    LrRange(app::lr_range::LrRangeArgs),
    /// Averaged prediction of finished runs saved with --save-probs (a seed
    /// or any other ensemble): validation and test accuracy.
    Ensemble(app::ensemble::EnsembleArgs),
    /// Classify PNG or JPEG images with a saved model (a run folder trained
    /// with --save-weights, or its model.safetensors).
    Predict(app::model::PredictArgs),
    /// A saved model's accuracy and confusion matrix on a data set's test split.
    Evaluate(app::model::EvaluateArgs),
    /// Write saved models as one ONNX graph that takes raw pixels (several
    /// models: their probabilities averaged).
    Export(app::model::ExportArgs),
    /// Measure GEMM roofline, step speed, phase profile and sweep throughput.
    Bench(app::bench::BenchArgs),
    /// Rebuild report.md and report.html (and summary.png) of an experiment,
    /// sweep, search or train folder.
    Report {
        /// The folder the command's --out named.
        dir: PathBuf,
    },
}

/// Starts the program again with the OpenBLAS kernel the CPU can run, where
/// OpenBLAS fell back to a slow one ([`shallow::linalg::blas::restart_kernel`]);
/// returns only when there is nothing to do or the restart failed.
fn restart_with_the_cpus_kernel() {
    use shallow::linalg::blas;
    use std::os::unix::process::CommandExt;
    let Some((kernel, why)) = blas::restart_kernel() else {
        return;
    };
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("OPENBLAS_CORETYPE", kernel)
        .env(blas::KERNEL_CHOSEN_VAR, why)
        .exec();
    // exec returns only on failure: go on with OpenBLAS's own choice.
    eprintln!(
        "warning: could not restart with OPENBLAS_CORETYPE={kernel} ({err}); BLAS runs its {} kernels",
        blas::kernel()
    );
}

fn main() -> ExitCode {
    restart_with_the_cpus_kernel();
    // BLAS always runs single-threaded: products are cut into fixed blocks
    // instead, so that numbers do not depend on the cores (linalg::blas).
    shallow::linalg::blas::set_threads(1);
    let cli = Cli::parse();
    let _ = ctrlc::set_handler(|| {
        if CONTROL.stop.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130); // second interrupt: leave at once
        }
        eprintln!("\ninterrupted: stopping after the current step (press again to quit at once)");
    });
    let finish = match &cli.command {
        Command::Data(c) => app::data::run(c),
        Command::Gradcheck(a) => app::gradcheck::run(a),
        Command::Train(a) => app::train::run(a, &CONTROL),
        Command::Experiment(a) => app::experiment::run(a, &CONTROL),
        Command::Sweep(a) => app::sweep::run(a, &CONTROL),
        Command::Search(a) => app::search::run(a, &CONTROL),
        Command::LrRange(a) => app::lr_range::run(a, &CONTROL),
        Command::Ensemble(a) => app::ensemble::run(a),
        Command::Predict(a) => app::model::predict(a),
        Command::Evaluate(a) => app::model::evaluate(a),
        Command::Export(a) => app::model::export(a),
        Command::Bench(a) => app::bench::run_command(a),
        Command::Report { dir } => app::report(dir),
    };
    match finish {
        Ok(f) => f.exit_code(),
        // The reader of standard output went away (`| head`): end quietly.
        Err(e) if e.is::<shallow::util::StdoutClosed>() => ExitCode::from(141),
        Err(e) => {
            // Display with its causes, never Debug: no backtrace for bad input.
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
