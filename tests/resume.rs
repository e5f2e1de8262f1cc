//! Interrupt and resume: a resumed run gives the same numbers as an
//! uninterrupted one; finished runs are not redone; workers and grouping do not
//! change results.

mod common;

use std::sync::atomic::Ordering;

use shallow::sweep::{run_plan, RunnerOptions};
use shallow::train::checkpoint::{self, Checkpoint};
use shallow::train::{
    train_group, Control, Group, LogPoint, Observer, RunConfig, Schedule, Status,
};
use shallow::ui::{Dashboard, DisplayMode};

fn config(name: &str, lambda: f64) -> RunConfig {
    RunConfig {
        name: name.into(),
        hidden: vec![12],
        lambda,
        schedule: Schedule::Cyclic {
            eta_min: 1e-5,
            eta_max: 0.05,
            ns: 15,
        },
        batch: 20,
        steps: 90,
        shuffle: true,
        seed: 3,
        log_every: 10,
        eval_train: shallow::train::EvalTrain::Sample(100),
        ..RunConfig::default()
    }
}

/// Sets the stop flag once `at` steps are done.
struct StopAt<'a> {
    control: &'a Control,
    at: usize,
}

impl Observer for StopAt<'_> {
    fn on_step(&self, _ids: &[usize], steps_done: usize, _etas: &[f64]) {
        if steps_done >= self.at {
            self.control.stop.store(true, Ordering::SeqCst);
        }
    }
    fn on_log(&self, _id: usize, _p: &LogPoint) {}
}

#[test]
fn a_resumed_group_equals_an_uninterrupted_one_bit_for_bit() {
    let split = common::generated_split::<f32>(400, 100, 5);
    let cfgs = [config("a", 0.0), config("b", 0.01), config("c", 0.1)];
    let ids = [0, 1, 2];
    let group = Group::new(cfgs.to_vec()).unwrap();
    let full = train_group(
        &group,
        &ids,
        &split,
        &Control::new(),
        &shallow::train::group::Silent,
        None,
    )
    .unwrap();
    for stop_at in [7, 20, 41] {
        let control = Control::new();
        let part = train_group(
            &group,
            &ids,
            &split,
            &control,
            &StopAt {
                control: &control,
                at: stop_at,
            },
            None,
        )
        .unwrap();
        assert!(part.runs.iter().all(|r| r.status == Status::Interrupted));
        let state = part.state.expect("interrupted state");
        assert_eq!(state.step, stop_at);
        // Through the checkpoint files, one per configuration.
        let dir = tempfile::tempdir().unwrap();
        let cks: Vec<Checkpoint> = (0..3)
            .map(|c| {
                let p = dir.path().join(format!("{c}-{}", checkpoint::FILE));
                Checkpoint::from_state(&state, c, &cfgs[c])
                    .save(&p)
                    .unwrap();
                let mut ck = Checkpoint::load(&p).unwrap();
                assert_eq!(ck.wall_s, part.runs[c].wall_s);
                ck.wall_s = 1000.0; // a marker: the resumed run must count it
                ck
            })
            .collect();
        let resumed = Checkpoint::stack::<f32>(&cks).unwrap();
        let done = train_group(
            &group,
            &ids,
            &split,
            &Control::new(),
            &shallow::train::group::Silent,
            Some(resumed),
        )
        .unwrap();
        for c in 0..3 {
            assert_eq!(done.runs[c].status, Status::Done);
            assert_eq!(
                done.runs[c].history, full.runs[c].history,
                "stop at {stop_at}, config {c}"
            );
            assert_eq!(done.runs[c].weights, full.runs[c].weights);
            assert_eq!(done.runs[c].test, full.runs[c].test);
            assert!(
                done.runs[c].wall_s > 1000.0,
                "a resumed run counts the time before the interruption"
            );
        }
    }
}

fn runner(out: &std::path::Path, jobs: usize, max_group: usize, resume: bool) -> RunnerOptions {
    RunnerOptions {
        jobs,
        threads: jobs,
        max_group,
        out: out.to_path_buf(),
        data_dir: "generated".into(),
        resume,
        ..Default::default()
    }
}

#[test]
fn resume_skips_finished_runs_and_workers_do_not_change_results() {
    let split = common::generated_split::<f32>(400, 100, 6);
    let cfgs: Vec<RunConfig> = [0.0, 1e-3, 1e-2, 1e-1]
        .iter()
        .enumerate()
        .map(|(i, &l)| config(&format!("r{i}"), l))
        .collect();
    let ids: Vec<usize> = (0..cfgs.len()).collect();
    let dash = Dashboard::new(&cfgs, DisplayMode::Quiet, |c| c.name.clone());
    let out1 = tempfile::tempdir().unwrap();
    let one = run_plan(
        &cfgs,
        &ids,
        &split,
        &runner(out1.path(), 1, 8, false),
        &Control::new(),
        &dash,
    )
    .unwrap();
    let out2 = tempfile::tempdir().unwrap();
    let two = run_plan(
        &cfgs,
        &ids,
        &split,
        &runner(out2.path(), 2, 8, false),
        &Control::new(),
        &dash,
    )
    .unwrap();
    for (a, b) in one.iter().zip(&two) {
        assert_eq!(a.status, Status::Done);
        assert_eq!(
            (a.val_cost, a.val_acc, a.test_acc),
            (b.val_cost, b.val_acc, b.test_acc)
        );
    }
    // Mark one finished result: a resume must keep it, not retrain it.
    let marked = out1.path().join("r1/result.json");
    let mut r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&marked).unwrap()).unwrap();
    r["wall_s"] = serde_json::json!(1234.5);
    std::fs::write(&marked, serde_json::to_vec(&r).unwrap()).unwrap();
    std::fs::remove_file(out1.path().join("r2/result.json")).unwrap();
    let again = run_plan(
        &cfgs,
        &ids,
        &split,
        &runner(out1.path(), 2, 8, true),
        &Control::new(),
        &dash,
    )
    .unwrap();
    assert_eq!(again[1].wall_s, 1234.5, "finished run kept");
    assert_eq!(
        again[2].val_acc, one[2].val_acc,
        "missing run retrained to the same numbers"
    );
    assert!(!out1.path().join("r2").join(checkpoint::FILE).exists());
}
