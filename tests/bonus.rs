//! `shallow experiment bonus`: the pipeline (recipes, ablation, bonus.json,
//! report, ensembles from saved probabilities) on a generated release, and the
//! one-hidden-layer recipe's accuracy on the real data.

mod common;

use std::path::Path;
use std::process::Command;

use shallow::report::bonus::BonusSummary;

fn shallow(data: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_shallow"))
        .args(args)
        .env("CIFAR10_DIR", data)
        .output()
        .expect("runs");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `--quick` runs every part in tiny form: the JSON has the promised fields,
/// the ensembles are what `shallow ensemble` computes from the run folders, the
/// ablation has every row, and the report holds both tables.
#[test]
fn bonus_quick_writes_recipes_ablation_and_report() {
    let data = common::generated_release();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bonus");
    let (code, stdout, stderr) = shallow(
        &data,
        &[
            "experiment",
            "bonus",
            "--quick",
            "--json",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for (r, name, layers) in [(&runs[0], "one-hidden", 1), (&runs[1], "few-hidden", 2)] {
        assert_eq!(r["name"], name);
        assert_eq!(r["hidden"].as_array().unwrap().len(), layers);
        for field in ["test_acc", "val_acc", "wall_s"] {
            assert!(r[field].as_f64().unwrap() > 0.0, "{name} {field}");
        }
    }
    let summary: BonusSummary =
        serde_json::from_slice(&std::fs::read(out.join("bonus.json")).unwrap()).unwrap();
    assert!(summary.quick);
    // The recipe's ensemble is the one `shallow ensemble` builds from its members.
    let one = &summary.runs[0];
    let members: Vec<String> = one
        .runs
        .iter()
        .map(|r| out.join(r).display().to_string())
        .collect();
    let mut args = vec!["ensemble", "--json"];
    args.extend(members.iter().map(|s| s.as_str()));
    let (code, stdout, stderr) = shallow(&data, &args);
    assert_eq!(code, 0, "{stderr}");
    let e: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(e["members"], 3);
    assert_eq!(e["test"]["acc"].as_f64().unwrap(), one.test_acc);
    assert_eq!(e["val"]["acc"].as_f64().unwrap(), one.val_acc);
    // Every ablation row measured, each against the row it names.
    assert_eq!(summary.ablation.len(), 12);
    assert_eq!(summary.ablation[0].change, "base");
    for row in &summary.ablation[1..] {
        assert!(row.test_acc.is_finite() && row.delta.is_some(), "{row:?}");
        assert!(summary.ablation.iter().any(|r| r.change == row.against));
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for want in [
        "Recipes",
        "Ablation",
        "one-hidden",
        "+ flips, seed ensemble of 3",
        "<img",
    ] {
        assert!(html.contains(want), "report.html lacks {want}");
    }
    // `shallow report` rebuilds it from the folder.
    let (code, _, stderr) = shallow(&data, &["report", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    // Runs without saved probabilities are refused by name.
    let (code, _, stderr) = shallow(&data, &["ensemble", tmp.path().to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--save-probs"), "{stderr}");
}

/// The bonus's promise, as candle's MNIST example states its accuracy: the
/// one-hidden-layer recipe (three nets of 1024 ReLU units trained in lockstep,
/// flips, label smoothing, snapshot and seed ensembles with test-time flips)
/// reaches at least 60% on the CIFAR-10 test set. OpenBLAS's kernel is pinned
/// to Haswell (AVX2), which every machine this runs on has, so that the result
/// is the same bits on all of them instead of depending on the kernel OpenBLAS
/// would pick (measured with it: see docs/bonus.md). About 12-15 minutes on 2 cores.
#[test]
fn one_hidden_layer_recipe_reaches_60_percent() {
    let Some(d) = common::real_data("one_hidden_layer_recipe_reaches_60_percent") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_shallow"))
        .env("CIFAR10_DIR", &d.dir)
        .env("OPENBLAS_CORETYPE", "Haswell")
        .args([
            "experiment",
            "bonus",
            "--part",
            "one-hidden",
            "--json",
            "--quiet",
        ])
        .arg("--out")
        .arg(tmp.path())
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = &v["runs"][0];
    assert_eq!(r["name"], "one-hidden");
    assert_eq!(r["hidden"], serde_json::json!([1024]));
    let acc = r["test_acc"].as_f64().unwrap();
    assert!(
        acc >= 0.60,
        "one hidden layer: {:.2}% test, below 60%",
        100.0 * acc
    );
}
