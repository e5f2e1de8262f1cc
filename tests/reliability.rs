//! Nothing lost, nothing mixed, never a panic: one test per family of what a
//! careless user or a second process can do (docs/reliability.md).
//! Generated data, a few steps each.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{generated_release, shallow_cli};

fn cli(args: &[&str]) -> (i32, String, String) {
    shallow_cli(args, None, &[])
}

/// A clean refusal: exit 2, the expected words, no panic or backtrace.
fn refused(args: &[&str], want: &[&str]) -> String {
    let (code, _, err) = shallow_cli(args, None, &[("RUST_BACKTRACE", "1".as_ref())]);
    assert_eq!(code, 2, "{args:?} must be refused: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    for w in want {
        assert!(err.contains(w), "expected {w:?} for {args:?} in: {err}");
    }
    err
}

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_shallow"))
        .args(args)
        .env("CIFAR10_DIR", generated_release())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts")
}

/// Waits until `dir`'s lock names a process (the command has claimed it and
/// is past its checks), then `extra` more.
fn wait_for_claim(dir: &Path, extra: Duration) {
    let t0 = Instant::now();
    while std::fs::read_to_string(dir.join(".shallow.lock")).map_or(true, |s| s.is_empty()) {
        assert!(t0.elapsed() < Duration::from_secs(60), "never claimed");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(extra);
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(ok.success());
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file under `dir` with its bytes, for "nothing changed" checks.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if e.file_name() != ".shallow.lock" {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A sweep of `groups` lockstep groups (one width each) that would train for
/// minutes, one group at a time.
fn long_sweep(out: &Path, groups: usize) -> Vec<String> {
    let widths: Vec<String> = (0..groups).map(|k| (10 + k).to_string()).collect();
    [
        "sweep",
        "--grid",
        &format!("hidden={}", widths.join(",")),
        "--steps",
        "2000000",
        "--n-train",
        "1000",
        "--n-val",
        "200",
        "--log-points",
        "0",
        "--jobs",
        "1",
        "--threads",
        "1",
        "--quiet",
        "--out",
        s(out),
    ]
    .map(String::from)
    .to_vec()
}

/// Two processes on one folder: the second is refused, naming the first, with
/// or without --force or --resume; nothing of the first is lost; and Ctrl-C
/// and SIGTERM stop a sweep with queued groups within a second, writing
/// nothing for the groups not started.
#[test]
fn one_process_per_folder_and_signals_stop_queued_groups_at_once() {
    let dir = tempfile::tempdir().unwrap();
    for sig in ["-INT", "-TERM"] {
        let out = dir.path().join(format!("sweep{sig}"));
        let args = long_sweep(&out, 40);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut first = spawn(&args);
        wait_for_claim(&out, Duration::from_millis(1500));
        let holder = std::fs::read_to_string(out.join(".shallow.lock")).unwrap();
        assert!(
            holder.contains(&format!("process {}", first.id())),
            "{holder}"
        );
        let before = std::fs::read(out.join("plan.json")).unwrap();
        for extra in [&[][..], &["--force"], &["--resume"]] {
            let mut second = vec![
                "sweep",
                "--grid",
                "lambda=0.5,0.9,0.7",
                "--steps",
                "5",
                "--n-train",
                "1000",
                "--out",
                s(&out),
            ];
            second.extend_from_slice(extra);
            refused(
                &second,
                &[
                    "is in use by process",
                    &first.id().to_string(),
                    "wait for it to finish",
                ],
            );
        }
        assert_eq!(std::fs::read(out.join("plan.json")).unwrap(), before);
        let t0 = Instant::now();
        signal(&first, sig);
        let status = first.wait().unwrap();
        let took = t0.elapsed();
        assert_eq!(status.code(), Some(130), "{sig}");
        assert!(
            took < Duration::from_secs(1),
            "{sig}: stopped after {took:?}"
        );
        // The one group that ran keeps its checkpoint; the 39 queued left nothing.
        let checkpoints = std::fs::read_dir(&out)
            .unwrap()
            .flatten()
            .filter(|e| e.path().join("checkpoint.json").exists())
            .count();
        assert_eq!(checkpoints, 1, "{sig}");
        assert_eq!(common::run_names(&out).len(), 1, "{sig}");
        // Once the first has gone, the folder is free again (the lock died with it).
        refused(
            &["sweep", "--grid", "lambda=0.5", "--out", s(&out)],
            &["holds an earlier run", "--resume"],
        );
    }
}

/// `train` and `lr-range` take --resume as their interrupt message says; the
/// same command without it refuses to lose the checkpoint; the resumed run
/// equals an uninterrupted one.
#[test]
fn train_resumes_as_its_interrupt_message_says() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let args = |out: &Path| -> Vec<String> {
        [
            "train",
            "--model",
            "mlp",
            "--hidden",
            "10",
            "--split",
            "full",
            "--n-train",
            "2000",
            "--n-val",
            "200",
            "--steps",
            "20000",
            "--log-points",
            "0",
            "--quiet",
            "--out",
            s(out),
        ]
        .map(String::from)
        .to_vec()
    };
    let a = args(&run);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let child = spawn(&a);
    wait_for_claim(&run, Duration::from_millis(1500));
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("--resume"), "{err}");
    assert!(run.join("checkpoint.json").exists());
    let kept = snapshot(&run);
    refused(&a, &["holds an interrupted run", "--resume", "--force"]);
    assert!(snapshot(&run) == kept, "a refusal changed the folder");
    let (code, _, err) = cli(&[&a[..], &["--resume"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(!run.join("checkpoint.json").exists());
    assert!(run.join("curves.png").exists());
    // The same run uninterrupted.
    let whole = dir.path().join("whole");
    let b = args(&whole);
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let (code, _, err) = cli(&b);
    assert_eq!(code, 0, "{err}");
    let numbers = |d: &Path| {
        let r: shallow::train::output::RunResult =
            serde_json::from_slice(&std::fs::read(d.join("result.json")).unwrap()).unwrap();
        common::numbers(&r).map(f64::to_bits)
    };
    assert_eq!(numbers(&run), numbers(&whole));
    assert_eq!(
        std::fs::read(run.join("metrics.csv")).unwrap(),
        std::fs::read(whole.join("metrics.csv")).unwrap()
    );
    // A finished run is not replaced without --force.
    refused(&b, &["holds a finished run", "--force"]);
}

/// Out-of-range input that used to panic or abort is refused before anything
/// is written: no folder is left behind.
#[test]
fn bad_values_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never");
    let o = s(&out);
    refused(
        &["train", "--translate", "33", "--steps", "3", "--out", o],
        &["--translate 33", "give 0 to 31"],
    );
    refused(
        &[
            "sweep",
            "--grid",
            "translate=0,40",
            "--steps",
            "3",
            "--out",
            o,
        ],
        &["--translate 40"],
    );
    refused(
        &[
            "train", "--model", "mlp", "--hidden", "10000000", "--out", o,
        ],
        &["need at least", "GiB", "--hidden"],
    );
    refused(
        &[
            "train",
            "--cycles",
            "2",
            "--ns",
            "4611686018427387905",
            "--out",
            o,
        ],
        &["--ns 4611686018427387905"],
    );
    refused(
        &["train", "--cycles", "3", "--ns", "400000000", "--out", o],
        &["update steps is more than the 1000000000"],
    );
    refused(
        &["train", "--cycles", "1", "--eta-max", "1e10", "--out", o],
        &["eta-max < 100"],
    );
    refused(
        &["train", "--threads", "100000", "--out", o],
        &["--threads 100000", "core"],
    );
    refused(
        &["bench", "--threads", "100000"],
        &["--threads 100000", "core"],
    );
    refused(
        &["sweep", "--grid", "lambda=1e-5:1e-1:100000000", "--out", o],
        &["an axis takes at most 10000"],
    );
    refused(
        &[
            "sweep",
            "--grid",
            "lambda=1e-5:1e-1:1000",
            "--grid",
            "hidden=10,20",
            "--out",
            o,
        ],
        &[
            "2000 configurations",
            "1000 lambda x 2 hidden",
            "--max-runs",
        ],
    );
    refused(
        &[
            "sweep",
            "--lambda",
            "0.1",
            "--grid",
            "lambda=0.01,0.1",
            "--out",
            o,
        ],
        &["lambda is both a sweep axis and a fixed setting"],
    );
    refused(
        &["search", "--lambda", "0.1", "--out", o],
        &["search varies lambda", "--coarse"],
    );
    refused(
        &["train", "--split", "a1", "--n-val", "100", "--out", o],
        &["--n-val", "--split full"],
    );
    refused(&["train", "--pad", "reflect", "--out", o], &["--translate"]);
    refused(
        &[
            "train",
            "--n-train",
            "500",
            "--eval-train",
            "900",
            "--out",
            o,
        ],
        &["--eval-train 900", "500 training images"],
    );
    refused(&["experiment", "a1", "--quick", "--out", o], &["--quick"]);
    assert!(!out.exists(), "a refusal left {}", out.display());
}

/// Batch files that are not files, or far too large, are refused without
/// being read (a FIFO would block, /dev/zero would fill the memory).
#[test]
fn data_files_are_checked_before_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for f in std::fs::read_dir(generated_release()).unwrap().flatten() {
        std::os::unix::fs::symlink(f.path(), data.join(f.file_name())).unwrap();
    }
    let batch = data.join("data_batch_3.bin");
    std::fs::remove_file(&batch).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &batch).unwrap();
    refused(
        &["data", "info", "--data", s(&data)],
        &["data_batch_3.bin", "not a regular file"],
    );
    std::fs::remove_file(&batch).unwrap();
    assert!(Command::new("mkfifo")
        .arg(&batch)
        .status()
        .unwrap()
        .success());
    let t0 = Instant::now();
    refused(
        &["data", "info", "--data", s(&data)],
        &["data_batch_3.bin", "not a regular file"],
    );
    assert!(t0.elapsed() < Duration::from_secs(30));
    std::fs::remove_file(&batch).unwrap();
    std::fs::write(&batch, vec![0u8; 64 << 20]).unwrap();
    refused(
        &["data", "info", "--data", s(&data)],
        &["data_batch_3.bin", "larger than a batch file"],
    );
}

/// A closed or full standard output ends the command without a panic: quietly
/// for a closed pipe (exit 141, as SIGPIPE would), with a message for a full disk.
#[test]
fn closed_or_full_stdout_never_panics() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shallow"))
        .args(["data", "info"])
        .env("CIFAR10_DIR", generated_release())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before anything is printed
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{err}");
    assert!(err.is_empty(), "{err}");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shallow"))
        .args(["data", "info", "--json"])
        .env("CIFAR10_DIR", generated_release())
        .stdout(full)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot write to standard output"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A folder holds one kind of results: a search, a train or another sweep's
/// merge into a sweep's folder is refused and changes nothing; a sweep's
/// tables name each column once; a resume repairs a run's missing picture;
/// the sweep and its run folders carry their manifests.
#[test]
fn folders_of_one_kind_and_resume_leaves_them_whole() {
    let dir = tempfile::tempdir().unwrap();
    let sweep = dir.path().join("sweep");
    let args = [
        "sweep",
        "--grid",
        "lambda=0.001,0.01",
        "--hidden",
        "10",
        "--cycles",
        "1",
        "--ns",
        "10",
        "--n-train",
        "500",
        "--n-val",
        "100",
        "--log-points",
        "1",
        "--save-probs",
        "--quiet",
        "--out",
        s(&sweep),
    ];
    let (code, _, err) = cli(&args);
    assert_eq!(code, 0, "{err}");
    let header = std::fs::read_to_string(sweep.join("results.csv")).unwrap();
    let header: Vec<&str> = header.lines().next().unwrap().split(',').collect();
    for h in &header {
        assert_eq!(header.iter().filter(|x| *x == h).count(), 1, "{h} twice");
    }
    // The sweep and each of its runs say what they are, and report reads it.
    let kind = |d: &Path| {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("shallow.json")).unwrap()).unwrap();
        assert_eq!(m["schema"], 1);
        assert!(m["command"].as_str().unwrap().contains("sweep --grid"));
        m["kind"].as_str().unwrap().to_string()
    };
    assert_eq!(kind(&sweep), "sweep");
    let first = sweep.join(&common::run_names(&sweep)[0]);
    assert_eq!(kind(&first), "train");
    let (code, out, err) = cli(&["report", s(&first)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("report.html"), "{out}");
    std::fs::remove_file(first.join("report.md")).unwrap();
    std::fs::remove_file(first.join("report.html")).unwrap();
    let kept = snapshot(&sweep);
    let mut search = common::small_search("1e-4:1e-2:2");
    search.extend(["--out".into(), s(&sweep).into()]);
    let search: Vec<&str> = search.iter().map(String::as_str).collect();
    refused(&search, &["holds a sweep", "writes a search", "--force"]);
    refused(
        &["train", "--steps", "3", "--out", s(&sweep)],
        &["holds a sweep", "writes a training run"],
    );
    refused(
        &["lr-range", "--steps", "3", "--out", s(&sweep)],
        &["holds a sweep"],
    );
    assert!(snapshot(&sweep) == kept, "a refusal changed the sweep");
    // A merge of the whole sweep into itself keeps its own record.
    let info = std::fs::read(sweep.join("run.json")).unwrap();
    let (code, _, err) = cli(&["sweep", "merge", s(&sweep), s(&sweep), "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(sweep.join("run.json")).unwrap(), info);
    // A picture a full disk never drew is drawn by --resume, to the same numbers.
    let run = common::run_names(&sweep)[0].clone();
    let metrics = std::fs::read(sweep.join(&run).join("metrics.csv")).unwrap();
    std::fs::remove_file(sweep.join(&run).join("curves.png")).unwrap();
    std::fs::write(sweep.join(&run).join(".result.json.x1y2z3.tmp"), "half").unwrap();
    let (code, _, err) = cli(&[&args[..], &["--resume"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(sweep.join(&run).join("curves.png").exists());
    assert!(!sweep.join(&run).join(".result.json.x1y2z3.tmp").exists());
    assert_eq!(
        std::fs::read(sweep.join(&run).join("metrics.csv")).unwrap(),
        metrics
    );
    // One run twice in an ensemble.
    let r = sweep.join(&run);
    refused(&["ensemble", s(&r), s(&r)], &["same run"]);
}
