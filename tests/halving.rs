//! Successive halving and Hyperband in lockstep: the brackets' decisions, and
//! the same bits whatever the jobs, threads, interruptions and resumes.

mod common;

use std::path::Path;

use shallow::data::SplitSpec;
use shallow::nn::Precision;
use shallow::sweep::halving::{run_halving, HalvingMode, RungRecord};
use shallow::sweep::ladder::{BudgetUnit, Ladder};
use shallow::sweep::RunnerOptions;
use shallow::train::output::RunResult;
use shallow::train::{Control, RunConfig, Schedule, Status};
use shallow::ui::{Dashboard, DisplayMode};

/// `n` f32 configurations of the A2 kind on 600 generated images: lambda and
/// eta_max vary, 10-step half cycles, 9 cycles at the top budget.
fn configs(n: usize) -> Vec<RunConfig> {
    (0..n)
        .map(|i| RunConfig {
            name: format!("run{i:02}"),
            hidden: vec![16],
            lambda: [0.0, 1e-3, 1e-2, 0.05, 0.2][i % 5],
            schedule: Schedule::Cyclic {
                eta_min: 1e-5,
                eta_max: [0.02, 0.05, 0.1, 0.3][i % 4],
                ns: 10,
            },
            batch: 50,
            steps: 9 * 20,
            shuffle: true,
            seed: 11,
            split: SplitSpec {
                n_train: Some(600),
                ..SplitSpec::default()
            },
            precision: Precision::F32,
            log_every: 20,
            eval_train: shallow::train::EvalTrain::Sample(200),
            ..RunConfig::default()
        })
        .collect()
}

/// Runs the pruned search of `ladder` into `dir` (resuming what is there when
/// `resume`); returns the results, every metrics.csv and the rung record.
fn search(
    cfgs: &[RunConfig],
    ladder: &Ladder,
    dir: &Path,
    (jobs, threads): (usize, usize),
    resume: bool,
    control: &Control,
) -> (Vec<RunResult>, Vec<Vec<u8>>, Option<RungRecord>) {
    let data = shallow::data::generated::cifar10(1000, 3);
    let opts = RunnerOptions {
        jobs,
        threads,
        max_group: 3,
        out: dir.to_path_buf(),
        resume,
        guard: true,
        ladder: Some(ladder.clone()),
        ..Default::default()
    };
    let dash = Dashboard::new(cfgs, DisplayMode::Quiet, |c| c.name.clone());
    let results = run_halving(cfgs, Some(&data), &opts, control, &dash, HalvingMode::All).unwrap();
    let metrics = cfgs
        .iter()
        .map(|c| std::fs::read(dir.join(&c.name).join("metrics.csv")).unwrap_or_default())
        .collect();
    (results, metrics, RungRecord::read(dir).unwrap())
}

/// `other` ends as `base` did, run by run: status, steps and every figure,
/// bit for bit (`how` names the way it was run).
fn assert_same_results(base: &[RunResult], other: &[RunResult], how: &str) {
    assert_eq!(base.len(), other.len(), "{how}");
    let bits = |r: &RunResult| common::numbers(r).map(f64::to_bits);
    for (a, b) in base.iter().zip(other) {
        assert_eq!((a.status, a.steps), (b.status, b.steps), "{} {how}", a.name);
        assert_eq!(bits(a), bits(b), "{} {how}", a.name);
    }
}

/// A record's decisions without the timing: who reached which rung with
/// which figures, and who went on.
fn decisions(r: &RungRecord) -> String {
    serde_json::to_string(&r.rungs).unwrap()
}

#[test]
fn halving_keeps_a_third_at_each_rung_and_the_same_bits_on_any_jobs_threads_or_stop() {
    let cfgs = configs(9);
    let ladder = Ladder::halving(9, 3, BudgetUnit::Cycles, 1, 9).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (base, base_metrics, record) =
        search(&cfgs, &ladder, tmp.path(), (1, 1), false, &Control::new());
    let record = record.expect("rungs.json is written");
    // 9 at 1 cycle, 3 at 3, 1 at 9; the rest pruned where they stopped.
    let count = |s: Status| base.iter().filter(|r| r.status == s).count();
    assert_eq!((count(Status::Done), count(Status::Pruned)), (1, 8));
    let steps: Vec<usize> = record.rungs.iter().map(|r| r.entries.len()).collect();
    assert_eq!(steps, vec![9, 3, 1]);
    for (rung, (budget, kept)) in record.rungs.iter().zip([(1, 3), (3, 1), (9, 1)]) {
        assert_eq!(rung.budget, budget);
        assert_eq!(rung.entries.iter().filter(|e| e.kept).count(), kept);
        // Ranked best first, every entry at the rung's step.
        for w in rung.entries.windows(2) {
            assert!(w[0].val_acc >= w[1].val_acc, "{rung:?}");
        }
        for e in &rung.entries {
            assert_eq!(e.steps, budget * 20, "{}", e.name);
            let r = &base[e.index];
            if !e.kept {
                assert_eq!(
                    (r.status, r.steps, r.val_acc),
                    (Status::Pruned, e.steps, e.val_acc)
                );
                assert!(r.test_acc.is_nan(), "a pruned run is not tested");
            }
        }
    }
    let winner = &base[record.rungs[2].entries[0].index];
    assert_eq!((winner.status, winner.steps), (Status::Done, 180));
    assert!(winner.val_acc > 0.3, "learns: {}", winner.val_acc);

    let same = |(other, metrics, rec): (Vec<RunResult>, Vec<Vec<u8>>, Option<RungRecord>),
                how: &str| {
        assert_same_results(&base, &other, how);
        assert_eq!(base_metrics, metrics, "metrics.csv {how}");
        assert_eq!(decisions(&record), decisions(&rec.unwrap()), "rungs {how}");
    };
    for (jobs, threads) in [(2, 2), (3, 2)] {
        let dir = tempfile::tempdir().unwrap();
        let run = search(
            &cfgs,
            &ladder,
            dir.path(),
            (jobs, threads),
            false,
            &Control::new(),
        );
        same(run, &format!("with --jobs {jobs} --threads {threads}"));
    }
    // Inside the first rung, on it, inside the second, on it, inside the last.
    for stop in [7, 20, 45, 60, 121] {
        let dir = tempfile::tempdir().unwrap();
        let (part, _, _) = search(
            &cfgs,
            &ladder,
            dir.path(),
            (2, 2),
            false,
            &Control::stop_at(stop),
        );
        assert!(
            part.iter().any(|r| r.status == Status::Interrupted),
            "stopped at {stop}"
        );
        let run = search(&cfgs, &ladder, dir.path(), (1, 2), true, &Control::new());
        same(run, &format!("stopped at step {stop} and resumed"));
    }
}

#[test]
fn hyperband_runs_the_papers_brackets_side_by_side() {
    let cfgs = configs(17);
    let ladder = Ladder::hyperband(17, 3, BudgetUnit::Cycles, 1, 9).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (results, _, record) = search(&cfgs, &ladder, tmp.path(), (2, 2), false, &Control::new());
    let record = record.unwrap();
    // Bracket 0: 9 at 1, 3 at 3, 1 at 9; bracket 1: 5 at 3, 1 at 9; bracket 2: 3 at 9.
    let shape: Vec<(usize, usize, usize, usize)> = record
        .rungs
        .iter()
        .map(|r| {
            let kept = r.entries.iter().filter(|e| e.kept).count();
            (r.bracket, r.budget, r.entries.len(), kept)
        })
        .collect();
    let mut sorted = shape.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![
            (0, 1, 9, 3),
            (0, 3, 3, 1),
            (0, 9, 1, 1),
            (1, 3, 5, 1),
            (1, 9, 1, 1),
            (2, 9, 3, 3)
        ]
    );
    let done: Vec<usize> = (0..17)
        .filter(|&i| results[i].status == Status::Done)
        .collect();
    assert_eq!(done.len(), 5);
    assert!(done.iter().all(|&i| results[i].steps == 180));
    assert!(
        done.contains(&14) && done.contains(&15) && done.contains(&16),
        "bracket 2 trains all"
    );
    assert_eq!(
        results
            .iter()
            .filter(|r| r.status == Status::Pruned)
            .count(),
        12
    );
}

#[test]
fn a_resume_with_other_rungs_is_refused_and_changes_nothing() {
    let cfgs = configs(9);
    let ladder = Ladder::halving(9, 3, BudgetUnit::Cycles, 1, 9).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    search(
        &cfgs,
        &ladder,
        tmp.path(),
        (2, 2),
        false,
        &Control::stop_at(30),
    );
    let before = std::fs::read(tmp.path().join("rungs.json")).unwrap();
    let other = Ladder::halving(9, 9, BudgetUnit::Cycles, 1, 9).unwrap();
    let data = shallow::data::generated::cifar10(1000, 3);
    let opts = RunnerOptions {
        jobs: 1,
        threads: 1,
        max_group: 3,
        out: tmp.path().to_path_buf(),
        resume: true,
        guard: true,
        ladder: Some(other),
        ..Default::default()
    };
    let dash = Dashboard::new(&cfgs, DisplayMode::Quiet, |c| c.name.clone());
    let e = run_halving(
        &cfgs,
        Some(&data),
        &opts,
        &Control::new(),
        &dash,
        HalvingMode::All,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("would mix two experiments") && e.contains("pruning:"),
        "{e}"
    );
    assert!(
        e.contains("reduction 3") && e.contains("reduction 9"),
        "{e}"
    );
    assert_eq!(
        before,
        std::fs::read(tmp.path().join("rungs.json")).unwrap()
    );
}

#[test]
fn shards_of_each_rung_and_the_merges_between_equal_one_process_bit_for_bit() {
    let cfgs = configs(9);
    let ladder = Ladder::halving(9, 3, BudgetUnit::Cycles, 1, 9).unwrap();
    let one = tempfile::tempdir().unwrap();
    let (base, base_metrics, record) =
        search(&cfgs, &ladder, one.path(), (2, 2), false, &Control::new());
    let data = shallow::data::generated::cifar10(1000, 3);
    let dir = tempfile::tempdir().unwrap();
    let opts = |shard: Option<&str>| RunnerOptions {
        jobs: 1,
        threads: 1,
        max_group: 3,
        out: dir.path().to_path_buf(),
        guard: true,
        shard: shard.map(|s| shallow::sweep::Shard::parse(s).unwrap()),
        ladder: Some(ladder.clone()),
        ..Default::default()
    };
    let dash = Dashboard::new(&cfgs, DisplayMode::Quiet, |c| c.name.clone());
    let control = Control::new();
    let decide = || {
        run_halving(
            &cfgs,
            None,
            &opts(None),
            &control,
            &dash,
            HalvingMode::Decide,
        )
    };
    // Three rungs: each needs both shards before its merge decides it.
    for rung in 1..=3 {
        run_halving(
            &cfgs,
            Some(&data),
            &opts(Some("1/2")),
            &control,
            &dash,
            HalvingMode::Shard,
        )
        .unwrap();
        let e = decide().unwrap_err().to_string();
        assert!(e.contains(&format!("rung {rung} is not finished")), "{e}");
        assert!(e.contains("--shard K/N"), "{e}");
        run_halving(
            &cfgs,
            Some(&data),
            &opts(Some("0/2")),
            &control,
            &dash,
            HalvingMode::Shard,
        )
        .unwrap();
        let results = decide().unwrap();
        let decided = RungRecord::read(dir.path()).unwrap().unwrap().rungs.len();
        assert_eq!(decided, rung);
        if rung == 3 {
            assert_same_results(&base, &results, "sharded");
        }
    }
    let metrics: Vec<Vec<u8>> = cfgs
        .iter()
        .map(|c| std::fs::read(dir.path().join(&c.name).join("metrics.csv")).unwrap_or_default())
        .collect();
    assert_eq!(base_metrics, metrics);
    let sharded = RungRecord::read(dir.path()).unwrap().unwrap();
    assert_eq!(decisions(&record.unwrap()), decisions(&sharded));
}

#[test]
fn sweep_and_search_pruned_from_the_command_line_give_tables_pictures_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    let mut args = common::pruned_sweep();
    args.extend(["--json", "--out", out.to_str().unwrap()].map(String::from));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, err) = common::shallow_cli(&argv, None, &[]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let rungs = json["pruning"]["rungs"]
        .as_array()
        .expect("--json gives the rungs");
    assert_eq!(rungs.len(), 2);
    assert_eq!(rungs[0]["entries"].as_array().unwrap().len(), 6);
    let statuses: Vec<&str> = json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "pruned").count(),
        4,
        "{statuses:?}"
    );
    for f in ["rungs.json", "rungs.png", "results.csv", "report.html"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(csv.lines().next().unwrap().contains("budget"), "{csv}");
    assert!(
        csv.contains(",1 cycle,") && csv.contains(",3 cycles,"),
        "{csv}"
    );
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("## Pruning") && report.contains("rungs.png"),
        "{report}"
    );

    let search = tmp.path().join("search");
    let mut args = common::small_search("1e-4:1e-1:6");
    args.extend(
        [
            "--method",
            "halving",
            "--max-cycles",
            "3",
            "--out",
            search.to_str().unwrap(),
            "--quiet",
        ]
        .map(String::from),
    );
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, err) = common::shallow_cli(&argv, None, &[]);
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(search.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["pruning"], "halving");
    assert_eq!(summary["final_values"].as_array().unwrap().len(), 2);
    assert!(search.join("halving/rungs.json").exists());
    let report = std::fs::read_to_string(search.join("report.md")).unwrap();
    assert!(
        report.starts_with("# Search over lambda by halving"),
        "{report}"
    );
    assert!(report.contains("halving/rungs.png"), "{report}");
}

#[test]
fn a_diverging_configuration_is_ranked_last_and_stops_at_its_rung() {
    let mut cfgs = configs(9);
    cfgs[4].schedule = Schedule::Cyclic {
        eta_min: 1e-5,
        eta_max: 80.0,
        ns: 10,
    };
    cfgs[4].lambda = 0.0;
    cfgs[4].name = "run04".into();
    let ladder = Ladder::halving(9, 3, BudgetUnit::Cycles, 1, 9).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // Interrupted inside the first rung (after the divergence) and resumed.
    let (part, _, _) = search(
        &cfgs,
        &ladder,
        tmp.path(),
        (2, 2),
        false,
        &Control::stop_at(15),
    );
    assert_eq!(part[4].status, Status::Diverged, "{:?}", part[4]);
    let (results, _, record) = search(&cfgs, &ladder, tmp.path(), (1, 1), true, &Control::new());
    let first = &record.unwrap().rungs[0];
    let last = first.entries.last().unwrap();
    assert_eq!((last.index, last.diverged, last.kept), (4, true, false));
    assert_eq!(results[4].status, Status::Diverged);
    assert!(results[4].diverged.is_some());
    assert_eq!(
        results.iter().filter(|r| r.status == Status::Done).count(),
        1
    );
}

#[test]
fn momentum_and_batch_norm_carry_over_rungs_to_the_same_bits() {
    let cfgs: Vec<RunConfig> = configs(9)
        .into_iter()
        .map(|c| RunConfig {
            momentum: 0.9,
            batch_norm: true,
            hidden: vec![16, 12],
            ..c
        })
        .collect();
    let ladder = Ladder::halving(9, 3, BudgetUnit::Cycles, 1, 9).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (base, base_metrics, record) =
        search(&cfgs, &ladder, tmp.path(), (1, 1), false, &Control::new());
    assert_eq!(base.iter().filter(|r| r.status == Status::Done).count(), 1);
    for (stop, jobs) in [(20, (2, 2)), (70, (3, 2))] {
        let dir = tempfile::tempdir().unwrap();
        search(
            &cfgs,
            &ladder,
            dir.path(),
            (2, 2),
            false,
            &Control::stop_at(stop),
        );
        let (other, metrics, rec) = search(&cfgs, &ladder, dir.path(), jobs, true, &Control::new());
        assert_same_results(&base, &other, &format!("stopped at {stop}"));
        assert_eq!(base_metrics, metrics, "stopped at {stop}");
        assert_eq!(
            decisions(record.as_ref().unwrap()),
            decisions(&rec.unwrap())
        );
    }
}
