//! Reproducibility: same seed, same numbers; lockstep equals alone; jobs, threads
//! and interruptions do not change a bit.

mod common;

use shallow::nn::Precision;
use shallow::sweep::{run_plan, RunnerOptions};
use shallow::train::output::RunResult;
use shallow::train::{Control, RunConfig, Schedule, Status};
use shallow::ui::{Dashboard, DisplayMode};

fn config(lambda: f64, eta_max: f64) -> RunConfig {
    RunConfig {
        name: format!("l{lambda}"),
        hidden: vec![16],
        lambda,
        schedule: Schedule::Cyclic {
            eta_min: 1e-5,
            eta_max,
            ns: 20,
        },
        batch: 25,
        steps: 80,
        shuffle: true,
        seed: 7,
        precision: Precision::F64,
        log_every: 20,
        eval_train: shallow::train::EvalTrain::Sample(150),
        ..RunConfig::default()
    }
}

#[test]
fn same_seed_same_result_bit_for_bit() {
    let split = common::generated_split::<f32>(300, 100, 1);
    let cfgs = [config(0.01, 0.05)];
    let a = common::train(&cfgs, &split);
    let b = common::train(&cfgs, &split);
    assert_eq!(a.runs[0].history, b.runs[0].history);
    assert_eq!(a.runs[0].weights, b.runs[0].weights);
    assert!(
        a.runs[0].val.acc > 0.2,
        "learns something: {}",
        a.runs[0].val.acc
    );
    let mut other = cfgs[0].clone();
    other.seed = 8;
    let c = common::train(&[other], &split);
    assert_ne!(a.runs[0].weights, c.runs[0].weights, "the seed matters");
}

#[test]
fn lockstep_group_equals_each_configuration_alone() {
    let split = common::generated_split::<f64>(300, 100, 2);
    let cfgs = [config(0.0, 0.05), config(0.05, 0.02), config(0.5, 0.1)];
    let group = common::train(&cfgs, &split);
    for (c, cfg) in cfgs.iter().enumerate() {
        let alone = common::train(std::slice::from_ref(cfg), &split);
        let (g, a) = (&group.runs[c], &alone.runs[0]);
        for (p, q) in g.history.iter().zip(&a.history) {
            assert!(
                (p.val.cost - q.val.cost).abs() < 1e-9,
                "config {c}: {} vs {}",
                p.val.cost,
                q.val.cost
            );
            assert_eq!(p.val.acc, q.val.acc);
        }
        for (lg, la) in g.weights.iter().zip(&a.weights) {
            for (x, y) in lg.w.iter().zip(&la.w) {
                assert!((x - y).abs() < 1e-9);
            }
        }
    }
}

/// Six f32 configurations (two groups of three with --max-group 3) of batch 100,
/// so that layer 0's products are cut into blocks (2 forward, 4 gradient).
fn sweep_configs() -> Vec<RunConfig> {
    [
        (0.0, 0.05),
        (1e-3, 0.05),
        (1e-2, 0.08),
        (0.05, 0.02),
        (0.1, 0.05),
        (0.2, 0.1),
    ]
    .iter()
    .enumerate()
    .map(|(i, &(lambda, eta_max))| {
        let mut c = config(lambda, eta_max);
        c.name = format!("run{i}");
        c.precision = Precision::F32;
        c.batch = 100;
        c.steps = 60; // 15 epochs of 4 batches, logged every 20 steps
        c
    })
    .collect()
}

/// Trains `cfgs` with `run_plan` into a fresh folder; returns every result and
/// metrics.csv, as written.
fn run_sweep(
    cfgs: &[RunConfig],
    split: &shallow::data::Split<f32>,
    jobs: usize,
    threads: usize,
    out: Option<&std::path::Path>,
    control: &Control,
) -> (Vec<RunResult>, Vec<Vec<u8>>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = out.unwrap_or(tmp.path());
    let opts = RunnerOptions {
        jobs,
        threads,
        max_group: 3,
        out: dir.to_path_buf(),
        resume: out.is_some(),
        ..Default::default()
    };
    let ids: Vec<usize> = (0..cfgs.len()).collect();
    let dash = Dashboard::new(cfgs, DisplayMode::Quiet, |c| c.name.clone());
    let results = run_plan(cfgs, &ids, split, &opts, control, &dash).unwrap();
    let metrics = cfgs
        .iter()
        .map(|c| std::fs::read(dir.join(&c.name).join("metrics.csv")).unwrap_or_default())
        .collect();
    (results, metrics)
}

/// `cfgs` give `base` (and its metrics.csv) with any other jobs and threads,
/// and when stopped at each of `stops` and resumed with other ones.
fn assert_same_bits_on_any_jobs_threads_or_resume(
    cfgs: &[RunConfig],
    split: &shallow::data::Split<f32>,
    (base, base_metrics): (&[RunResult], &[Vec<u8>]),
    stops: &[usize],
) {
    let same = |(other, metrics): (Vec<RunResult>, Vec<Vec<u8>>), how: &str| {
        for (a, b) in base.iter().zip(&other) {
            assert_eq!(common::numbers(a), common::numbers(b), "{} {how}", a.name);
        }
        assert_eq!(base_metrics, metrics, "{how}");
    };
    for (jobs, threads) in [(2, 2), (3, 2)] {
        let run = run_sweep(cfgs, split, jobs, threads, None, &Control::new());
        same(run, &format!("--jobs {jobs} --threads {threads}"));
    }
    for &stop in stops {
        let dir = tempfile::tempdir().unwrap();
        run_sweep(cfgs, split, 2, 2, Some(dir.path()), &Control::stop_at(stop));
        let run = run_sweep(cfgs, split, 1, 2, Some(dir.path()), &Control::new());
        same(run, &format!("stopped at {stop}"));
    }
}

#[test]
fn threads_and_jobs_do_not_change_a_bit() {
    let split = common::generated_split::<f32>(400, 100, 3);
    let cfgs = sweep_configs();
    let (base, base_metrics) = run_sweep(&cfgs, &split, 1, 1, None, &Control::new());
    assert!(base.iter().all(|r| r.status == Status::Done));
    for (jobs, threads) in [(1, 2), (2, 1), (2, 2), (3, 2)] {
        let (other, metrics) = run_sweep(&cfgs, &split, jobs, threads, None, &Control::new());
        for (a, b) in base.iter().zip(&other) {
            assert_eq!(
                common::numbers(a),
                common::numbers(b),
                "{} with --jobs {jobs} --threads {threads}",
                a.name
            );
        }
        assert_eq!(
            base_metrics, metrics,
            "metrics.csv with --jobs {jobs} --threads {threads}"
        );
    }
}

#[test]
fn an_interrupted_sweep_resumes_to_the_same_bits_at_any_step() {
    let split = common::generated_split::<f32>(400, 100, 4);
    let cfgs = sweep_configs();
    let (base, base_metrics) = run_sweep(&cfgs, &split, 2, 2, None, &Control::new());
    // Between logged points (7, 33), on one (20), near the end (59); resumed
    // with other jobs and threads than the interrupted part.
    for (stop, jobs, threads) in [(7, 1, 1), (20, 2, 2), (33, 2, 1), (59, 1, 2)] {
        let dir = tempfile::tempdir().unwrap();
        let (part, _) = run_sweep(
            &cfgs,
            &split,
            2,
            2,
            Some(dir.path()),
            &Control::stop_at(stop),
        );
        assert!(
            part.iter().all(|r| r.status == Status::Interrupted),
            "stop at {stop}"
        );
        let (done, metrics) = run_sweep(
            &cfgs,
            &split,
            jobs,
            threads,
            Some(dir.path()),
            &Control::new(),
        );
        for (a, b) in base.iter().zip(&done) {
            assert_eq!(b.status, Status::Done);
            assert_eq!(
                common::numbers(a),
                common::numbers(b),
                "{} stopped at step {stop}",
                a.name
            );
        }
        assert_eq!(base_metrics, metrics, "metrics.csv, stopped at step {stop}");
    }
}

#[test]
fn a_diverging_configuration_stops_alone() {
    let split = common::generated_split::<f32>(300, 100, 4);
    let mut wild = config(0.0, 0.05);
    wild.schedule = Schedule::Cyclic {
        eta_min: 50.0,
        eta_max: 90.0,
        ns: 20,
    };
    wild.precision = Precision::F32;
    let mut calm = config(0.01, 0.05);
    calm.precision = Precision::F32;
    let out = common::train(&[wild, calm.clone()], &split);
    assert_eq!(out.runs[0].status, Status::Diverged);
    let d = out.runs[0].diverged.expect("where it diverged");
    assert!(d.step < 80 && d.eta >= 50.0);
    assert_eq!(out.runs[1].status, Status::Done);
    let alone = common::train(&[calm], &split);
    assert_eq!(
        out.runs[1].val.acc, alone.runs[0].val.acc,
        "the other configuration is unaffected"
    );
}

#[test]
fn augmented_sweeps_are_the_same_bits_whatever_the_jobs_threads_or_interruptions() {
    let split = common::generated_split::<f32>(400, 100, 5);
    let augment = shallow::data::Augment {
        flip: true,
        translate: 2,
        pad: shallow::data::Pad::Reflect,
    };
    let mut cfgs = sweep_configs();
    for (i, c) in cfgs.iter_mut().enumerate() {
        c.augment = augment;
        // Half of them in data order: augmentation alone also gathers.
        c.shuffle = i % 2 == 0;
    }
    let (base, base_metrics) = run_sweep(&cfgs, &split, 1, 1, None, &Control::new());
    assert!(base.iter().all(|r| r.status == Status::Done));
    let (plain, _) = run_sweep(&sweep_configs(), &split, 1, 1, None, &Control::new());
    assert_ne!(
        common::numbers(&base[0]),
        common::numbers(&plain[0]),
        "augmentation changes what is learned"
    );
    assert_same_bits_on_any_jobs_threads_or_resume(&cfgs, &split, (&base, &base_metrics), &[7, 33]);
}

/// The bonus pieces keep the bits: dropout (different per configuration),
/// label smoothing, batch norm on two hidden layers, momentum (its own groups),
/// seed-ensemble members, snapshot ensembles and the saved probabilities are the
/// same whatever the jobs, threads or interruptions.
#[test]
fn regularised_ensembles_are_the_same_bits_whatever_the_jobs_threads_or_interruptions() {
    let split = common::generated_split::<f32>(400, 100, 6);
    let mut cfgs = sweep_configs();
    for (i, c) in cfgs.iter_mut().enumerate() {
        c.hidden = vec![16, 12];
        c.batch_norm = true;
        c.dropout = [0.0, 0.1, 0.3][i % 3];
        c.label_smoothing = if i % 2 == 0 { 0.1 } else { 0.0 };
        c.momentum = if i >= 3 { 0.5 } else { 0.0 };
        c.member = (i % 2) as u64;
        c.snapshots = 1;
        c.save_probs = true;
        c.augment.flip = true;
    }
    let read = |dir: &std::path::Path| -> Vec<Vec<u8>> {
        cfgs.iter()
            .flat_map(|c| {
                ["val_probs.npy", "test_probs.npy"]
                    .map(|f| std::fs::read(dir.join(&c.name).join(f)).unwrap())
            })
            .collect()
    };
    let base_dir = tempfile::tempdir().unwrap();
    let (base, base_metrics) =
        run_sweep(&cfgs, &split, 1, 1, Some(base_dir.path()), &Control::new());
    assert!(base.iter().all(|r| r.status == Status::Done));
    assert!(base
        .iter()
        .all(|r| r.averaged.is_some_and(|s| s.members == 1)));
    let base_probs = read(base_dir.path());
    let check = |dir: &std::path::Path, done: &[RunResult], metrics: &[Vec<u8>], what: &str| {
        for (a, b) in base.iter().zip(done) {
            assert_eq!(common::numbers(a), common::numbers(b), "{} {what}", a.name);
            assert_eq!(a.averaged, b.averaged, "{} snapshot {what}", a.name);
        }
        assert_eq!(base_metrics, metrics, "metrics.csv {what}");
        assert!(base_probs == read(dir), "probabilities {what}");
    };
    let dir = tempfile::tempdir().unwrap();
    let (other, metrics) = run_sweep(&cfgs, &split, 2, 2, Some(dir.path()), &Control::new());
    check(dir.path(), &other, &metrics, "with --jobs 2 --threads 2");
    for stop in [7, 33, 45] {
        let dir = tempfile::tempdir().unwrap();
        run_sweep(
            &cfgs,
            &split,
            2,
            2,
            Some(dir.path()),
            &Control::stop_at(stop),
        );
        let (done, metrics) = run_sweep(&cfgs, &split, 1, 2, Some(dir.path()), &Control::new());
        check(dir.path(), &done, &metrics, &format!("stopped at {stop}"));
    }
}

/// Mixed precision keeps the bits too: `--precision bf16` (layer 0's products
/// in the AVX512-BF16 kernel, plain and with momentum) gives the same numbers
/// whatever the jobs, threads or interruptions, and other numbers than f32.
#[test]
fn bf16_sweeps_are_the_same_bits_whatever_the_jobs_threads_or_interruptions() {
    if !shallow::linalg::bf16::available() {
        eprintln!("skipped: this CPU has no AVX512-BF16 (avx512_bf16 in /proc/cpuinfo)");
        return;
    }
    let split = common::generated_split::<f32>(400, 100, 7);
    let f32_cfgs = sweep_configs();
    let mut cfgs = sweep_configs();
    for (i, c) in cfgs.iter_mut().enumerate() {
        c.precision = Precision::Bf16;
        c.momentum = if i >= 3 { 0.5 } else { 0.0 };
    }
    let (base, base_metrics) = run_sweep(&cfgs, &split, 1, 1, None, &Control::new());
    assert!(base.iter().all(|r| r.status == Status::Done));
    let (plain, _) = run_sweep(&f32_cfgs[..3], &split, 1, 1, None, &Control::new());
    for (a, b) in base.iter().zip(&plain) {
        assert_ne!(
            common::numbers(a),
            common::numbers(b),
            "{}: bf16 ran",
            a.name
        );
        assert!(
            (a.val_acc - b.val_acc).abs() < 0.05,
            "{}: {} vs {}",
            a.name,
            a.val_acc,
            b.val_acc
        );
    }
    assert_same_bits_on_any_jobs_threads_or_resume(&cfgs, &split, (&base, &base_metrics), &[7, 33]);
}

/// Integer products keep the bits too: `--precision int16` (layer 0's
/// products as 16-bit integer products of the bytes, plain and with
/// momentum, on consecutive and on shuffled, flipped batches) gives the same
/// numbers whatever the jobs, threads or interruptions, and other numbers
/// than f32, close to them.
#[test]
fn int16_sweeps_are_the_same_bits_whatever_the_jobs_threads_or_interruptions() {
    if shallow::linalg::int16::isa().is_none() {
        eprintln!("skipped: this CPU has no AVX2 (avx2 in /proc/cpuinfo)");
        return;
    }
    let split = common::generated_split::<f32>(400, 100, 7);
    let f32_cfgs = sweep_configs();
    let mut cfgs = sweep_configs();
    for (i, c) in cfgs.iter_mut().enumerate() {
        c.precision = Precision::Int16;
        c.momentum = if i >= 3 { 0.5 } else { 0.0 };
    }
    let (base, base_metrics) = run_sweep(&cfgs, &split, 1, 1, None, &Control::new());
    assert!(base.iter().all(|r| r.status == Status::Done));
    let (plain, _) = run_sweep(&f32_cfgs[..3], &split, 1, 1, None, &Control::new());
    for (a, b) in base.iter().zip(&plain) {
        assert_ne!(
            common::numbers(a),
            common::numbers(b),
            "{}: int16 ran",
            a.name
        );
        assert!(
            (a.val_acc - b.val_acc).abs() < 0.02,
            "{}: {} vs {}",
            a.name,
            a.val_acc,
            b.val_acc
        );
    }
    assert_same_bits_on_any_jobs_threads_or_resume(&cfgs, &split, (&base, &base_metrics), &[7, 33]);
    // Shuffled and flipped batches, converted to bytes each step.
    for c in cfgs.iter_mut() {
        c.shuffle = true;
        c.augment.flip = true;
    }
    let (base, base_metrics) = run_sweep(&cfgs, &split, 1, 1, None, &Control::new());
    assert!(base.iter().all(|r| r.status == Status::Done));
    assert_same_bits_on_any_jobs_threads_or_resume(&cfgs, &split, (&base, &base_metrics), &[7]);
}
