//! Bad input gets a clear message naming the thing and the fix, a non-zero exit,
//! and never a panic or a backtrace (RUST_BACKTRACE=1 is set on purpose).

use std::fs;
use std::path::Path;
use std::process::Command;

use shallow::data::binary::encode_batch;
use shallow::data::pickle;

fn shallow(args: &[&str]) -> (i32, String, String) {
    shallow_with(args, &[])
}

/// [`shallow`] with extra environment variables.
fn shallow_with(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shallow"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .envs(envs.iter().copied())
        .env_remove("CIFAR10_DIR")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Runs `data info` on `dir` and checks a clean failure whose message contains `want`.
fn fails_with(dir: &Path, want: &[&str]) {
    let (code, _, err) = shallow(&["data", "info", "--data", dir.to_str().unwrap()]);
    assert_ne!(code, 0, "must fail: {err}");
    assert_ne!(code, 101, "must not panic: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    for w in want {
        assert!(err.contains(w), "expected {w:?} in: {err}");
    }
}

fn valid_batch() -> Vec<u8> {
    let labels: Vec<u8> = (0..10_000).map(|i| (i % 10) as u8).collect();
    encode_batch(&labels, &vec![7u8; 10_000 * 3072])
}

#[test]
fn missing_folder() {
    fails_with(
        Path::new("/nonexistent/cifar"),
        &["/nonexistent/cifar", "does not exist", "shallow data fetch"],
    );
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("data_batch_1.bin"), valid_batch()).unwrap();
    fails_with(dir.path(), &["data_batch_2.bin", "file missing"]);
}

#[test]
fn size_not_a_multiple_of_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = valid_batch();
    b.truncate(b.len() - 100);
    fs::write(dir.path().join("data_batch_1.bin"), b).unwrap();
    fails_with(
        dir.path(),
        &["data_batch_1.bin", "not a multiple of the 3073-byte record"],
    );
}

#[test]
fn wrong_record_count() {
    let dir = tempfile::tempdir().unwrap();
    let b = valid_batch();
    fs::write(dir.path().join("data_batch_1.bin"), &b[..3073 * 9000]).unwrap();
    fails_with(
        dir.path(),
        &["data_batch_1.bin", "holds 9000 records, expected 10000"],
    );
}

#[test]
fn label_above_nine() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = valid_batch();
    b[3073 * 42] = 12;
    fs::write(dir.path().join("data_batch_1.bin"), b).unwrap();
    fails_with(dir.path(), &["data_batch_1.bin", "record 42 has label 12"]);
}

#[test]
fn unreadable_file() {
    // A folder where the file should be is refused before reading (works as root too).
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("data_batch_1.bin")).unwrap();
    fails_with(dir.path(), &["data_batch_1.bin", "not a regular file"]);
}

#[test]
fn pickle_of_the_wrong_shape() {
    let dir = tempfile::tempdir().unwrap();
    let labels: Vec<i64> = (0..10_000).map(|i| i % 10).collect();
    fs::write(
        dir.path().join("data_batch_1"),
        pickle::encode_batch(&labels, (10_000, 1024), &vec![0; 10_000 * 1024]),
    )
    .unwrap();
    fails_with(dir.path(), &["data_batch_1", "shape [10000, 1024]"]);
}

#[test]
fn no_data_anywhere_suggests_fetch() {
    let (code, _, err) = shallow(&["data", "info"]);
    assert_eq!(code, 2);
    assert!(err.contains("shallow data fetch"), "{err}");
}

#[test]
fn nonsense_hyperparameters() {
    for (args, want) in [
        (vec!["train", "--lambda", "-1"], "--lambda -1"),
        (vec!["train", "--eta", "0"], "--eta 0"),
        (vec!["train", "--batch", "0"], "--batch 0"),
        (
            vec![
                "train",
                "--model",
                "mlp",
                "--cycles",
                "1",
                "--eta-min",
                "0.1",
                "--eta-max",
                "0.01",
            ],
            "--eta-min",
        ),
        (
            vec!["train", "--lambda", "10", "--eta", "0.1"],
            "1 - 2 eta lambda",
        ),
        (vec!["sweep", "--eta-max=-1"], "--eta-max -1"),
        (vec!["sweep", "--eta-max=nan"], "--eta-max NaN"),
        (vec!["sweep", "--eta-max=inf"], "--eta-max inf"),
        (vec!["search", "--eta-max=-1"], "--eta-max -1"),
        (
            vec!["sweep", "--eta-min=0.2", "--eta-max=0.1"],
            "eta-min <= eta-max",
        ),
        (vec!["train", "--eta=nan"], "--eta NaN"),
        (vec!["train", "--eta=-0.5"], "--eta -0.5"),
        (vec!["sweep", "--eval-train", "0"], "--eval-train 0"),
        (vec!["sweep", "--eval-train", "some"], "or `all`"),
        (vec!["sweep", "--resume", "--force"], "--force"),
        (
            vec!["train", "--whiten", "zca", "--whiten-eps", "0"],
            "--whiten-eps 0 is out of range",
        ),
        (
            vec!["sweep", "--whiten", "pca", "--whiten-eps=-1"],
            "--whiten-eps -1",
        ),
        (vec!["train", "--whiten", "white"], "invalid value 'white'"),
        (
            vec!["train", "--model", "mlp", "--dropout", "1.5"],
            "--dropout 1.5 is out of range",
        ),
        (
            vec!["train", "--dropout", "0.2"],
            "--dropout applies to hidden layers",
        ),
        (
            vec!["train", "--batch-norm"],
            "--batch-norm normalises hidden layers",
        ),
        (
            vec![
                "train",
                "--model",
                "mlp",
                "--loss",
                "bce",
                "--label-smoothing",
                "0.1",
            ],
            "use it with --loss ce",
        ),
        (
            vec!["train", "--model", "mlp", "--snapshots", "2"],
            "use it with the cyclic schedule",
        ),
        (
            vec!["sweep", "--cycles", "2", "--snapshots", "3"],
            "exceeds the run's 2 complete cycles",
        ),
        (
            vec!["sweep", "--momentum", "1"],
            "--momentum 1 is out of range",
        ),
        (
            vec!["experiment", "bonus", "--part", "all"],
            "invalid value 'all'",
        ),
    ] {
        let (code, _, err) = shallow(&args);
        assert_ne!(code, 0);
        assert!(
            err.contains(want) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn unwritable_output_folder() {
    let (code, _, err) = shallow(&["train", "--out", "/proc/shallow-out"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("/proc/shallow-out") && err.contains("--out"),
        "{err}"
    );
}

#[test]
fn sweep_file_errors_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("sweep.toml");
    fs::write(&bad, "lambda_grid = \"1e-5:1e-1:8\"\ncylces = 3\n").unwrap();
    let (code, _, err) = shallow(&["sweep", "--config", bad.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        err.contains("sweep.toml") && err.contains("cylces"),
        "{err}"
    );
    let range = dir.path().join("range.toml");
    fs::write(&range, "lambda_grid = \"1e-5:1e-1\"\n").unwrap();
    let (_, _, err) = shallow(&["sweep", "--config", range.to_str().unwrap()]);
    assert!(err.contains("expected LO:HI:N"), "{err}");
    // A good file gets as far as looking for the data.
    let good = dir.path().join("good.toml");
    fs::write(
        &good,
        "lambda_random = \"1e-5:1e-1:4\"\ncycles = 1\nns = 10\nsplit = \"a1\"\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let (code, _, err) = shallow(&[
        "sweep",
        "--config",
        good.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("no CIFAR-10 data found"), "{err}");
}

/// `--precision int16` on a CPU without AVX2 (as `SHALLOW_INT16_ISA=none`
/// makes any CPU look), and with whitening (whose features are not bytes),
/// is refused by every command that trains, before any data is read, naming
/// what is missing and the way out; `fast` never refuses for it.
#[test]
fn int16_without_avx2_or_with_whitening_is_refused_naming_it() {
    for args in [
        &["train", "--model", "mlp", "--precision", "int16"][..],
        &["sweep", "--precision", "int16"],
        &["search", "--precision", "int16"],
        &["experiment", "a2", "--precision", "int16"],
    ] {
        let (code, _, err) = shallow_with(args, &[("SHALLOW_INT16_ISA", "none")]);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains("needs a CPU with AVX2") && err.contains("use --precision f32"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    for args in [
        &[
            "train",
            "--model",
            "mlp",
            "--precision",
            "int16",
            "--whiten",
            "zca",
        ][..],
        &["sweep", "--precision", "int16", "--whiten", "pca"],
    ] {
        let (code, _, err) = shallow_with(args, &[("CIFAR10_DIR", "/nonexistent")]);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains("--precision int16 multiplies the pixels' bytes")
                && err.contains("f32 or bf16"),
            "{args:?}: {err}"
        );
    }
    // fast takes the next best kernel for whitened inputs: it gets as far as
    // looking for the data, as f32 does.
    let args = [
        "train",
        "--model",
        "mlp",
        "--precision",
        "fast",
        "--whiten",
        "zca",
        "--data",
        "/nonexistent/x",
    ];
    let (code, _, err) = shallow_with(&args, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("data folder /nonexistent/x does not exist"),
        "{err}"
    );
}

/// `--precision bf16` on a CPU without AVX512-BF16 (as `SHALLOW_NO_BF16`
/// makes any CPU look) is refused by every command that trains, before any
/// data is read, naming the feature and the way out; nothing panics.
#[test]
fn bf16_without_the_cpu_feature_is_refused_naming_it() {
    for args in [
        &["train", "--model", "mlp", "--precision", "bf16"][..],
        &["sweep", "--precision", "bf16"],
        &["search", "--precision", "bf16"],
        &["experiment", "a2", "--precision", "bf16"],
    ] {
        let (code, _, err) = shallow_with(args, &[("SHALLOW_NO_BF16", "1")]);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains("needs a CPU with AVX512-BF16") && err.contains("use --precision f32"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn pruned_searches_that_cannot_run_are_refused_before_anything_is_read_or_written() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("never");
    let o = out.to_str().unwrap();
    let base = ["sweep", "--data", "/nonexistent/cifar", "--out", o];
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--lambdas", "0.1,0.01", "--halving", "--max-cycles", "9"],
            &[
                "--halving keeps 1 in 3",
                "has 2 configurations",
                "--reduction",
            ],
        ),
        (
            &["--lambdas", "0.1,0.01,0.001", "--halving"],
            &[
                "the runs are 2 cycles long",
                "--max-cycles 9 (or 3) with --min-cycles 1",
            ],
        ),
        (
            &[
                "--lambda-grid",
                "1e-5:1e-1:9",
                "--halving",
                "--max-cycles",
                "10",
                "--min-cycles",
                "1",
            ],
            &[
                "--max-cycles 10 is not --min-cycles 1 times a power of --reduction 3",
                "give --max-cycles 9 or 27",
            ],
        ),
        (
            &[
                "--lambda-grid",
                "1e-5:1e-1:9",
                "--halving",
                "--snapshots",
                "2",
                "--max-cycles",
                "9",
            ],
            &["--halving with --snapshots", "last cycles of the whole run"],
        ),
        (
            &[
                "--lambda-grid",
                "1e-5:1e-1:9",
                "--halving",
                "--steps",
                "900",
            ],
            &["--halving with --steps", "--max-cycles"],
        ),
        (
            &[
                "--lambda-grid",
                "1e-5:1e-1:9",
                "--grid",
                "cycles=1,3",
                "--halving",
            ],
            &[
                "--halving with cycles as an axis",
                "--min-cycles and --max-cycles",
            ],
        ),
        (
            &[
                "--lambda-grid",
                "1e-5:1e-1:9",
                "--halving",
                "--min-epochs",
                "1",
            ],
            &[
                "the cyclical schedule's budgets count cycles",
                "--min-cycles and --max-cycles",
            ],
        ),
        (
            &["--lambda-grid", "1e-5:1e-1:9", "--max-cycles", "9"],
            &[
                "--max-cycles sets a pruned search's rungs",
                "add --halving or --hyperband",
            ],
        ),
        (
            &[
                "--lambda-grid",
                "1e-5:1e-1:9",
                "--hyperband",
                "--max-cycles",
                "9",
            ],
            &[
                "brackets of 9, 5, 3 configurations, 17 in all",
                "--random 17",
            ],
        ),
        (
            &[
                "--lambda-grid",
                "1e-5:1e-1:9",
                "--halving",
                "--max-cycles",
                "9",
                "--reduction",
                "1",
            ],
            &["--reduction 1", "give 2 or more"],
        ),
    ];
    for (args, want) in cases {
        let all: Vec<&str> = base.iter().chain(args.iter()).copied().collect();
        let (code, _, err) = shallow(&all);
        assert_eq!(code, 2, "{all:?} must fail as a usage error: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
        for w in *want {
            assert!(err.contains(w), "{all:?}: expected {w:?} in: {err}");
        }
        assert!(!out.exists(), "{all:?} wrote {}", out.display());
    }
}
