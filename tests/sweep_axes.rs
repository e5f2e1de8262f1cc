//! Sweeps over any axis, the search's final runs, reports of every kind of
//! folder and the learning-rate range test, through the command line on a
//! generated release written as binary batch files.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use shallow::sweep::results::SearchSummary;
use shallow::train::output::RunResult;

fn data_dir() -> PathBuf {
    common::generated_release()
}

fn shallow(args: &[&str]) -> (i32, String, String) {
    let data = data_dir();
    let o = Command::new(env!("CARGO_BIN_EXE_shallow"))
        .args(args)
        .env("CIFAR10_DIR", &data)
        .env_remove("OPENBLAS_NUM_THREADS")
        .output()
        .expect("runs");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = shallow(args);
    assert_eq!(code, 0, "{args:?}\nstdout: {out}\nstderr: {err}");
    out
}

fn result(dir: &Path) -> RunResult {
    serde_json::from_slice(&std::fs::read(dir.join("result.json")).unwrap()).unwrap()
}

const SMALL: [&str; 8] = [
    "--n-train",
    "1000",
    "--n-val",
    "300",
    "--quiet",
    "--log-points",
    "2",
    "--threads=2",
];

#[test]
fn a_two_axis_grid_from_flags_and_from_toml_gives_the_same_runs_and_a_heatmap() {
    let tmp = tempfile::tempdir().unwrap();
    let flags = tmp.path().join("flags");
    let mut args = vec![
        "sweep",
        "--grid",
        "eta_max=0.05,0.1",
        "--grid",
        "hidden=20,40",
        "--cycles",
        "1",
        "--ns",
        "20",
        "--out",
        flags.to_str().unwrap(),
    ];
    args.extend(SMALL);
    ok(&args);
    let names = [
        "run01_eta_max0.05_hidden20",
        "run02_eta_max0.05_hidden40",
        "run03_eta_max0.1_hidden20",
        "run04_eta_max0.1_hidden40",
    ];
    for n in names {
        assert!(flags.join(n).join("result.json").exists(), "{n}");
    }
    for f in [
        "summary.png",
        "report.html",
        "report.md",
        "run.json",
        "sweep.json",
    ] {
        assert!(flags.join(f).exists(), "{f}");
    }
    let csv = std::fs::read_to_string(flags.join("results.csv")).unwrap();
    assert!(
        csv.lines().next().unwrap().contains("eta_max,hidden"),
        "{csv}"
    );
    let md = std::fs::read_to_string(flags.join("report.md")).unwrap();
    assert!(
        md.contains("Sweep: eta_max 0.05, 0.1 (grid) x hidden 20, 40 (grid)"),
        "{md}"
    );
    assert!(
        md.contains("cyclic 1e-5..0.1, ns 20"),
        "tables give the schedule: {md}"
    );

    let toml = tmp.path().join("sweep.toml");
    std::fs::write(
        &toml,
        "cycles = 1\nns = 20\n[grid]\neta_max = [0.05, 0.1]\nhidden = [20, 40]\n",
    )
    .unwrap();
    let from_file = tmp.path().join("file");
    // One group at a time this time: the same bits whatever runs them.
    let mut args = vec![
        "sweep",
        "--config",
        toml.to_str().unwrap(),
        "--out",
        from_file.to_str().unwrap(),
        "--jobs",
        "1",
    ];
    args.extend(SMALL);
    ok(&args);
    for n in names {
        let (a, b) = (result(&flags.join(n)), result(&from_file.join(n)));
        assert_eq!(
            (a.train_acc, a.val_acc, a.test_acc, a.train_cost),
            (b.train_acc, b.val_acc, b.test_acc, b.train_cost),
            "{n}"
        );
    }
    // `shallow report` rebuilds it from the folder.
    std::fs::remove_file(flags.join("summary.png")).unwrap();
    ok(&["report", flags.to_str().unwrap()]);
    assert!(flags.join("summary.png").exists());
}

#[test]
fn an_assignment_one_sweep_over_lambda_and_a_fixed_eta() {
    let tmp = tempfile::tempdir().unwrap();
    let toml = tmp.path().join("a1.toml");
    std::fs::write(
        &toml,
        "model = \"linear\"\nsplit = \"a1\"\n[grid]\nlambda = \"0,0.1,1\"\neta = [0.01, 0.001]\n",
    )
    .unwrap();
    let out = tmp.path().join("a1");
    ok(&[
        "sweep",
        "--config",
        toml.to_str().unwrap(),
        "--epochs",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    let lines: Vec<String> = std::fs::read_to_string(out.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 6);
    for l in &lines {
        let r: RunResult = serde_json::from_str(l).unwrap();
        // 2 epochs of 10,000 images in batches of 100, a fixed eta.
        assert_eq!(r.steps, 200, "{}", r.name);
        assert!(
            r.schedule == "eta 0.01" || r.schedule == "eta 0.001",
            "{}",
            r.schedule
        );
    }
    assert!(out.join("summary.png").exists() && out.join("report.html").exists());
    // The same settings with a cyclical one are refused, naming them.
    let (code, _, err) = shallow(&[
        "sweep",
        "--config",
        toml.to_str().unwrap(),
        "--cycles",
        "2",
        "--out",
        tmp.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("eta does not belong to the cyclical schedule"),
        "{err}"
    );
}

#[test]
fn search_trains_the_top_three_of_both_stages_around_the_best_value() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("search");
    let mut args = vec![
        "search",
        "--coarse",
        "1e-5:1e-1:4",
        "--fine-n",
        "3",
        "--ns",
        "20",
        "--coarse-cycles",
        "1",
        "--fine-cycles",
        "1",
        "--final-cycles",
        "1",
        "--final-n-val",
        "500",
        "--top",
        "3",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(SMALL);
    ok(&args);
    let s: SearchSummary =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s.finals.len(), 3);
    assert_eq!(s.final_values.len(), 3);
    // The final values are the best three of coarse and fine together.
    let mut pool: Vec<(f64, f64)> = s
        .coarse
        .iter()
        .zip(&s.coarse_values)
        .chain(s.fine.iter().zip(&s.fine_values))
        .map(|(r, &v)| (r.val_acc, v))
        .collect();
    pool.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut want: Vec<f64> = Vec::new();
    for (_, v) in pool {
        if want.len() < 3 && !want.contains(&v) {
            want.push(v);
        }
    }
    assert_eq!(s.final_values, want);
    // The fine range is centred (in log) on the best coarse value.
    let centre = (s.fine_range.0 * s.fine_range.1).sqrt();
    assert!((centre / s.best_coarse_value - 1.0).abs() < 1e-9);
    for (r, v) in s.finals.iter().zip(&s.final_values) {
        assert_eq!(r.lambda, *v);
        assert!(out.join("final").join(&r.name).join("curves.png").exists());
    }
    for f in ["summary.png", "report.html", "summary.md", "run.json"] {
        assert!(out.join(f).exists(), "{f}");
    }
    std::fs::remove_file(out.join("report.html")).unwrap();
    ok(&["report", out.to_str().unwrap()]);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Coarse-to-fine search over lambda") && html.contains("Final runs"));
}

#[test]
fn report_works_on_train_and_lr_range_folders_and_refuses_others() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("lr");
    let out = ok(&[
        "lr-range",
        "--n-train",
        "2000",
        "--n-val",
        "500",
        "--steps",
        "200",
        "--points",
        "20",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(out.contains("suggested: --eta-min"), "{out}");
    let found: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("lr_range.json")).unwrap()).unwrap();
    let (lo, hi) = (
        found["eta_min"].as_f64().unwrap(),
        found["eta_max"].as_f64().unwrap(),
    );
    assert!(lo > 0.0 && lo <= hi, "{found}");
    assert!(run.join("lr_range.png").exists());
    ok(&["report", run.to_str().unwrap()]);
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("exponential 1e-5..1 over 200 steps"), "{md}");

    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, _, err) = shallow(&["report", empty.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("holds no results of shallow"), "{err}");
}
