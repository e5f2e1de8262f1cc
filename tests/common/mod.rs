//! Shared helpers for integration tests: generated data and the real-data switch.
#![allow(dead_code)]

use shallow::data::{RawData, Split};
use shallow::nn::Real;
use shallow::train::group::Silent;
use shallow::train::{train_group, Control, Group, GroupOutcome, RunConfig};

/// A small generated split (d = 3072, classes separable by a colour bias), so
/// training does something meaningful without the real data.
pub fn generated_split<T: Real>(n_train: usize, n_val: usize, seed: u64) -> Split<T> {
    shallow::data::generated::split(n_train, n_val, n_val, seed)
}

/// The real data when CIFAR10_DIR is set; otherwise prints why the test is skipped.
pub fn real_data(test: &str) -> Option<RawData> {
    match std::env::var_os("CIFAR10_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => {
            Some(RawData::load(std::path::Path::new(&dir)).expect("CIFAR10_DIR holds CIFAR-10"))
        }
        None => {
            eprintln!("skipping {test}: CIFAR10_DIR is not set (point it at cifar-10-batches-bin to run it)");
            None
        }
    }
}

/// Trains `cfgs` as one lockstep group (ids 0..n), silently, to the end.
pub fn train<T: Real>(cfgs: &[RunConfig], split: &Split<T>) -> GroupOutcome<T> {
    let ids: Vec<usize> = (0..cfgs.len()).collect();
    let group = Group::new(cfgs.to_vec()).expect("one lockstep group");
    train_group(&group, &ids, split, &Control::new(), &Silent, None).expect("trains")
}

/// The numbers of a result.json (accuracies and costs on train, validation and
/// test), wall times aside: what determinism tests compare bit for bit.
pub fn numbers(r: &shallow::train::output::RunResult) -> [f64; 6] {
    [
        r.train_acc,
        r.val_acc,
        r.test_acc,
        r.train_cost,
        r.val_cost,
        r.test_cost,
    ]
}

/// A generated release (10,000 images per file, as the reader checks) written
/// once per test binary under Cargo's target temporary folder.
pub fn generated_release() -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("generated-cifar10-bin");
        let data = shallow::data::generated::cifar10(10_000, 5);
        std::fs::create_dir_all(&dir).unwrap();
        for b in data.train.iter().chain(std::iter::once(&data.test)) {
            let mut bytes = Vec::with_capacity(b.labels.len() * 3073);
            for (j, &l) in b.labels.iter().enumerate() {
                bytes.push(l);
                bytes.extend_from_slice(&b.pixels[j * 3072..(j + 1) * 3072]);
            }
            shallow::util::write_atomic(&dir.join(&b.name), &bytes).unwrap();
        }
        dir
    })
    .clone()
}

/// Names of the run folders (those with a config.json) in `dir`, sorted.
pub fn run_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("config.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every run of `a` is in `b` with the same files, byte for byte (metrics,
/// pictures, saved weights), and the same final numbers bit for bit; only
/// config.json (cores used) and result.json's wall time may differ. Returns
/// how many runs were compared.
pub fn assert_same_runs(a: &std::path::Path, b: &std::path::Path) -> usize {
    let names = run_names(a);
    assert_eq!(names, run_names(b), "{} vs {}", a.display(), b.display());
    for n in &names {
        let files = |d: &std::path::Path| -> Vec<String> {
            let mut f: Vec<String> = std::fs::read_dir(d.join(n))
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // What made the run (command, machine, date, times) may differ.
                .filter(|f| f != "config.json" && f != "result.json" && f != "shallow.json")
                .collect();
            f.sort();
            f
        };
        assert_eq!(files(a), files(b), "{n}: other files");
        assert!(files(a).iter().any(|f| f == "metrics.csv"), "{n}");
        for f in files(a) {
            let m = |d: &std::path::Path| std::fs::read(d.join(n).join(&f)).unwrap();
            assert!(m(a) == m(b), "{n}/{f} differs");
        }
        let r = |d: &std::path::Path| -> shallow::train::output::RunResult {
            serde_json::from_slice(&std::fs::read(d.join(n).join("result.json")).unwrap()).unwrap()
        };
        let (x, y) = (numbers(&r(a)), numbers(&r(b)));
        assert_eq!(
            x.map(f64::to_bits),
            y.map(f64::to_bits),
            "{n}: {x:?} vs {y:?}"
        );
    }
    names.len()
}

/// A sweep of six configurations in four lockstep groups (two widths, at most
/// two per group) on the generated release: what the shard and Slurm tests cut.
pub const SHARDED_SWEEP: [&str; 16] = [
    "sweep",
    "--grid",
    "lambda=1e-4,1e-3,1e-2",
    "--grid",
    "hidden=20,40",
    "--cycles",
    "1",
    "--ns",
    "20",
    "--n-train",
    "1000",
    "--n-val",
    "300",
    "--log-points",
    "2",
    "--max-group=2",
];

/// [`SHARDED_SWEEP`] pruned by successive halving: its six configurations
/// at 1 cycle, the best two on to 3 cycles.
pub fn pruned_sweep() -> Vec<String> {
    let mut args: Vec<String> = SHARDED_SWEEP.iter().map(|s| s.to_string()).collect();
    let at = args.iter().position(|a| a == "--cycles").expect("a length");
    args.splice(
        at..at + 2,
        ["--halving", "--max-cycles", "3"].map(String::from),
    );
    args
}

/// A small search on the generated release (6 coarse values in two groups, 4
/// fine, the top 2 on more data), without --out.
pub fn small_search(coarse: &str) -> Vec<String> {
    [
        "search",
        "--coarse",
        coarse,
        "--fine-n",
        "4",
        "--top",
        "2",
        "--coarse-cycles",
        "1",
        "--fine-cycles",
        "1",
        "--final-cycles",
        "1",
        "--ns",
        "20",
        "--n-train",
        "1000",
        "--n-val",
        "300",
        "--final-n-val",
        "300",
        "--log-points",
        "2",
    ]
    .map(String::from)
    .to_vec()
}

/// Runs the shallow binary with `args` on the generated release (in `cwd`,
/// with `envs` added): exit code, stdout and stderr.
pub fn shallow_cli(
    args: &[&str],
    cwd: Option<&std::path::Path>,
    envs: &[(&str, &std::ffi::OsStr)],
) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_shallow"));
    cmd.args(args)
        .env("CIFAR10_DIR", generated_release())
        .env_remove("OPENBLAS_NUM_THREADS")
        .env_remove("SLURM_ARRAY_JOB_ID")
        .env_remove("SLURM_JOB_ID")
        .envs(envs.iter().copied());
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let o = cmd.output().expect("runs");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// [`shallow_cli`] in `cwd` with RUST_BACKTRACE=1, asserting that it did not
/// panic nor print a backtrace, whatever its exit code.
pub fn shallow_checked(args: &[&str], cwd: &std::path::Path) -> (i32, String, String) {
    let (code, out, err) = shallow_cli(args, Some(cwd), &[("RUST_BACKTRACE", "1".as_ref())]);
    assert_ne!(code, 101, "must not panic: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("stack backtrace"),
        "{err}"
    );
    (code, out, err)
}

/// The Python of `scripts/pyenv.sh` (NumPy, safetensors, onnxruntime,
/// scikit-learn), or `None` with the reason printed; with
/// `SHALLOW_REQUIRE_PYTHON` set (CI), its absence fails the test.
pub fn python(test: &str) -> Option<std::path::PathBuf> {
    let py = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/python");
    let ok = std::process::Command::new(&py)
        .args(["-c", "import numpy, safetensors, onnxruntime, sklearn"])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    if std::env::var_os("SHALLOW_REQUIRE_PYTHON").is_some() {
        panic!("{test}: target/pyenv is missing or incomplete; run scripts/pyenv.sh");
    }
    eprintln!("skipping {test}: no target/pyenv (run scripts/pyenv.sh to check against NumPy and onnxruntime)");
    None
}

/// scikit-learn's real 8 x 8 digits as a Keras-style .npz
/// (`scripts/digits_npz.py`), written once per test binary.
pub fn digits_npz(test: &str) -> Option<std::path::PathBuf> {
    let py = python(test)?;
    static FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    Some(
        FILE.get_or_init(|| {
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("digits");
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join("digits.npz");
            let script =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/digits_npz.py");
            let ok = std::process::Command::new(py)
                .arg(script)
                .arg(&file)
                .status()
                .unwrap();
            assert!(ok.success(), "scripts/digits_npz.py failed");
            file
        })
        .clone(),
    )
}
