//! Reference figures on the real CIFAR-10 (skipped when CIFAR10_DIR is unset).

mod common;

use shallow::data::{Split, SplitSpec};
use shallow::nn::gradcheck;
use shallow::nn::{Loss, Precision};
use shallow::pipeline::experiment::{a1_configs, a2_configs};
use shallow::train::Status;

#[test]
fn data_info_matches_the_release() {
    let Some(d) = common::real_data("data_info_matches_the_release") else {
        return;
    };
    let info = d.info();
    assert_eq!(info.files.len(), 6);
    for f in &info.files {
        assert_eq!(f.n, 10_000, "{}", f.name);
    }
    assert_eq!(info.files[5].class_counts, vec![1000; 10]);
    let per_class: Vec<usize> = (0..10)
        .map(|k| info.files[..5].iter().map(|f| f.class_counts[k]).sum())
        .collect();
    assert_eq!(per_class, vec![5000; 10]);
    let want = [125.31, 122.95, 113.87];
    for (m, w) in info.train_mean.iter().zip(want) {
        assert!((m - w).abs() < 0.01, "{m} vs {w}");
    }
    assert_eq!(&d.train[0].labels[..10], &[6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
    assert_eq!(&d.test.labels[..10], &[3, 8, 8, 0, 6, 6, 1, 6, 3, 1]);
}

#[test]
fn assignment1_reference_accuracy() {
    let Some(d) = common::real_data("assignment1_reference_accuracy") else {
        return;
    };
    let split = Split::<f32>::new(&d, SplitSpec::default()).unwrap();
    // lambda 0.1, eta 0.001: 39.0% on the test set.
    let cfg = a1_configs(1, Precision::F32)
        .into_iter()
        .find(|c| c.lambda == 0.1)
        .unwrap();
    let out = common::train(&[cfg], &split);
    let r = &out.runs[0];
    assert_eq!(r.status, Status::Done);
    assert!(
        (r.test.acc - 0.390).abs() <= 0.01,
        "test accuracy {}",
        r.test.acc
    );
}

#[test]
fn assignment2_one_cycle_reference_accuracy() {
    let Some(d) = common::real_data("assignment2_one_cycle_reference_accuracy") else {
        return;
    };
    let split = Split::<f32>::new(&d, SplitSpec::default()).unwrap();
    let cfg = a2_configs(1, Precision::F32).remove(0);
    let out = common::train(&[cfg], &split);
    assert!(
        (out.runs[0].test.acc - 0.46).abs() <= 0.01,
        "test accuracy {}",
        out.runs[0].test.acc
    );
}

#[test]
fn short_run_beats_chance_by_far() {
    let Some(d) = common::real_data("short_run_beats_chance_by_far") else {
        return;
    };
    let split = Split::<f32>::new(&d, SplitSpec::default()).unwrap();
    let mut cfg = a2_configs(1, Precision::F32).remove(0);
    cfg.steps = 200;
    cfg.schedule = shallow::train::Schedule::Fixed { eta: 0.02 };
    let out = common::train(&[cfg], &split);
    assert!(
        out.runs[0].val.acc > 0.30,
        "validation accuracy {}",
        out.runs[0].val.acc
    );
}

#[test]
fn gradients_check_on_real_data() {
    let Some(d) = common::real_data("gradients_check_on_real_data") else {
        return;
    };
    let split = Split::<f64>::new(&d, SplitSpec::default()).unwrap();
    for hidden in [vec![], vec![50]] {
        for loss in [Loss::Ce, Loss::Bce] {
            for lambda in [0.0, 0.1] {
                let opts = gradcheck::Options {
                    hidden: hidden.clone(),
                    loss,
                    lambda,
                    method: gradcheck::Method::Centred,
                    h: 1e-5,
                    eps: gradcheck::REL_EPS,
                    tol: 1e-6,
                    // Full 3072-feature inputs for the linear model and one mlp setting
                    // (every W1 entry costs a full forward pass there).
                    subsets: if hidden.is_empty() || (loss == Loss::Ce && lambda > 0.0) {
                        vec![(20, 100), (3072, 1)]
                    } else {
                        vec![(20, 100)]
                    },
                    seed: 1,
                    batch_norm: false,
                    dropout: 0.0,
                    smoothing: 0.0,
                };
                let report = gradcheck::run(&opts, Some((&split.train, "real".into())));
                assert!(report.passed, "{report}");
            }
        }
    }
    // The bonus pieces on real images: batch norm on two hidden layers (gamma and
    // beta checked), dropout with a fixed mask, label smoothing.
    let opts = gradcheck::Options {
        hidden: vec![30, 20],
        loss: Loss::Ce,
        lambda: 0.01,
        method: gradcheck::Method::Centred,
        h: 1e-5,
        eps: gradcheck::REL_EPS,
        tol: 1e-6,
        subsets: vec![(20, 100)],
        seed: 1,
        batch_norm: true,
        dropout: 0.2,
        smoothing: 0.1,
    };
    let report = gradcheck::run(&opts, Some((&split.train, "real".into())));
    assert!(report.passed, "{report}");
    assert_eq!(
        report.checks.len(),
        10,
        "W, b, gamma, beta per hidden layer, W, b last"
    );
}

/// `shallow train --out DIR` writes the run into DIR (named after it), with
/// `--name N` into DIR/N, and `--json` prints that run's result.
#[test]
fn train_writes_its_run_where_out_says() {
    if common::real_data("train_writes_its_run_where_out_says").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let train = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_shallow"))
            .args([
                "train", "--model", "linear", "--steps", "50", "--json", "--quiet",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let dir = tmp.path().join("a1run");
    let r = train(&["--out", dir.to_str().unwrap()]);
    assert_eq!(r["name"], "a1run");
    for f in [
        "config.json",
        "metrics.csv",
        "result.json",
        "curves.png",
        "weights.png",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
    }
    let r = train(&["--out", tmp.path().to_str().unwrap(), "--name", "named"]);
    assert_eq!(r["name"], "named");
    assert!(tmp.path().join("named/result.json").is_file());
}

/// On the real data, through the whole pipeline (split, groups, runner, files):
/// one core or two, one job or two, interrupted between logged points and
/// resumed with other settings, every run gives the same bits.
#[test]
fn real_sweep_is_the_same_bit_for_bit_whatever_the_cores_jobs_or_interruptions() {
    let Some(d) = common::real_data("real_sweep_is_the_same_bit_for_bit") else {
        return;
    };
    use shallow::sweep::{run_configs, RunnerOptions, SweepSpec};
    use shallow::train::{Control, TrainSettings};
    use shallow::ui::{Dashboard, DisplayMode};
    let spec = SweepSpec::lambdas(
        TrainSettings {
            cycles: 1,
            ns: 100,
            log_points: 5,
            split: shallow::data::SplitSpec {
                kind: shallow::data::SplitKind::Full,
                n_val: 1000,
                n_train: Some(10_000),
                ..Default::default()
            },
            eval_train: shallow::train::EvalTrain::Sample(2000),
            ..TrainSettings::sweep_default()
        },
        &[1e-4, 1e-3, 1e-2, 5e-2, 0.1],
    );
    let configs = spec.configs().unwrap();
    let run =
        |jobs: usize, threads: usize, dir: &std::path::Path, resume: bool, control: &Control| {
            let opts = RunnerOptions {
                jobs,
                threads,
                max_group: 3,
                out: dir.to_path_buf(),
                resume,
                guard: true,
                ..Default::default()
            };
            let dash = Dashboard::new(&configs, DisplayMode::Quiet, |c| c.name.clone());
            let results = run_configs(&configs, &d, &opts, control, &dash).unwrap();
            let metrics: Vec<String> = configs
                .iter()
                .map(|c| std::fs::read_to_string(dir.join(&c.name).join("metrics.csv")).unwrap())
                .collect();
            let numbers: Vec<[f64; 6]> = results.iter().map(common::numbers).collect();
            (results, numbers, metrics)
        };
    let base_dir = tempfile::tempdir().unwrap();
    let (results, base, base_metrics) = run(1, 1, base_dir.path(), false, &Control::new());
    assert!(results.iter().all(|r| r.status == Status::Done));
    assert!(results.iter().all(|r| r.val_acc > 0.3), "learns: {base:?}");
    // Intermediate points use the 2,000-image sample, the last one all 10,000.
    let rows: Vec<&str> = base_metrics[0].lines().collect();
    assert!(rows[0].contains("train_images"));
    assert!(rows[1].contains(",2000,") && rows.last().unwrap().contains(",10000,"));
    for (jobs, threads) in [(2, 2), (1, 2), (3, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let (_, numbers, metrics) = run(jobs, threads, dir.path(), false, &Control::new());
        assert_eq!(base, numbers, "--jobs {jobs} --threads {threads}");
        assert_eq!(base_metrics, metrics, "--jobs {jobs} --threads {threads}");
    }
    let dir = tempfile::tempdir().unwrap();
    let (part, _, _) = run(2, 2, dir.path(), false, &Control::stop_at(77));
    assert!(part.iter().all(|r| r.status == Status::Interrupted));
    let (_, numbers, metrics) = run(1, 1, dir.path(), true, &Control::new());
    assert_eq!(base, numbers, "interrupted at step 77, resumed");
    assert_eq!(base_metrics, metrics, "interrupted at step 77, resumed");
}

/// `--save-weights` with `--whiten zca` leaves everything needed to classify
/// raw images: applying preprocess.json's recipe (mean.npy, std.npy,
/// whiten.npy) and W1, b1, W2, b2 to the raw test batch gives the test
/// accuracy the run reported (to a few images: this product is summed in
/// another order than training's).
#[test]
fn saved_weights_and_preprocessing_classify_raw_test_images() {
    use ndarray::{Array2, Axis};
    let Some(data) = common::real_data("saved_weights_and_preprocessing_classify_raw_test_images")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("zca");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shallow"))
        .args([
            "train", "--model", "mlp", "--hidden", "50", "--lambda", "0.001",
        ])
        .args([
            "--cycles",
            "1",
            "--ns",
            "200",
            "--whiten",
            "zca",
            "--save-weights",
        ])
        .args(["--json", "--quiet", "--out", dir.to_str().unwrap()])
        .env("SHALLOW_CACHE", tmp.path().join("cache"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reported = r["test_acc"].as_f64().unwrap();
    assert!(reported > 0.35, "ZCA run reached only {reported}");
    let pre = shallow::data::Preprocess::load(&dir).unwrap();
    assert_eq!(pre.whiten, shallow::data::Whitening::Zca);
    let x = pre.apply::<f32>(&data.test.pixels);
    let load = |name: &str| -> Array2<f32> { ndarray_npy::read_npy(dir.join(name)).unwrap() };
    let (w1, b1, w2, b2) = (
        load("W1.npy"),
        load("b1.npy"),
        load("W2.npy"),
        load("b2.npy"),
    );
    assert_eq!(
        (w1.dim(), b1.dim(), w2.dim(), b2.dim()),
        ((50, 3072), (50, 1), (10, 50), (10, 1))
    );
    let h = (w1.dot(&x) + &b1).mapv(|v| v.max(0.0));
    let scores = w2.dot(&h) + &b2;
    let correct = scores
        .axis_iter(Axis(1))
        .zip(&data.test.labels)
        .filter(|(col, &y)| {
            let best = col
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                );
            best.0 == y as usize
        })
        .count();
    let acc = correct as f64 / data.test.labels.len() as f64;
    assert!(
        (acc - reported).abs() <= 0.002,
        "saved files classify {acc}, the run reported {reported}"
    );
}
