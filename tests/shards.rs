//! Sweeps and searches cut into shards (`--shard K/N`, `--stage`), through the
//! command line on a generated release: the merged sweep equals the same
//! sweep run in one process, bit for bit, whether the shards share a folder
//! or write their own; merges refuse mixed plans and name what is missing.

use std::path::{Path, PathBuf};

mod common;

fn shallow(args: &[&str]) -> (i32, String, String) {
    common::shallow_cli(args, None, &[])
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = shallow(args);
    assert_eq!(code, 0, "{args:?}\nstdout: {out}\nstderr: {err}");
    out
}

fn refused(args: &[&str]) -> String {
    let (code, out, err) = shallow(args);
    assert_eq!(
        code, 2,
        "{args:?} should be refused\nstdout: {out}\nstderr: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn sweep(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = common::SHARDED_SWEEP
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend(["--out".into(), out.display().to_string(), "--quiet".into()]);
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn shards_in_one_folder_or_in_their_own_merge_to_the_single_process_sweep_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let single = tmp.path().join("single");
    ok(&strs(&sweep(&single, &["--threads=2"])));

    // Three shards into one shared folder, each on one core.
    let shared = tmp.path().join("shared");
    let mut trained = 0;
    for k in 0..3 {
        let shard = format!("{k}/3");
        let out = ok(&strs(&sweep(&shared, &["--threads=1", "--shard", &shard])));
        assert!(out.is_empty(), "--quiet prints nothing: {out}");
        let rec: serde_json::Value = serde_json::from_slice(
            &std::fs::read(shared.join(format!("shards/shard-{k}-of-3.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(rec["finished"], true);
        trained += rec["runs"].as_array().unwrap().len();
    }
    assert_eq!(trained, 6, "every configuration in exactly one shard");
    assert!(
        !shared.join("results.csv").exists(),
        "a shard writes no tables"
    );
    let table = ok(&["sweep", "merge", shared.to_str().unwrap()]);
    assert!(
        table.contains("merged 6 runs from 3 shards (0 folders copied)"),
        "{table}"
    );
    assert_eq!(common::assert_same_runs(&single, &shared), 6);
    for f in ["results.csv", "results.md", "summary.png", "report.html"] {
        assert!(shared.join(f).exists(), "{f}");
    }
    let report = std::fs::read_to_string(shared.join("report.md")).unwrap();
    assert!(report.contains("Trained in 3 shards"), "{report}");
    // The results rows are those of the single sweep, but for wall times.
    let rows = |d: &Path| -> Vec<String> {
        std::fs::read_to_string(d.join("results.csv"))
            .unwrap()
            .lines()
            .map(|l| l.split(',').take(9).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert_eq!(rows(&single), rows(&shared));

    // Two shards in folders of their own, merged into a third.
    let (a, b, merged) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("merged"),
    );
    ok(&strs(&sweep(&a, &["--shard", "0/2"])));
    // Shard 1 is missing: the merge names its runs and its shard.
    let e = refused(&[
        "sweep",
        "merge",
        a.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(e.contains("configurations have no finished run"), "{e}");
    assert!(
        e.contains("shard 1/2") && e.contains("left no record"),
        "{e}"
    );
    assert!(!merged.exists(), "a refused merge writes nothing");
    ok(&strs(&sweep(&b, &["--shard", "1/2"])));
    let out = ok(&[
        "sweep",
        "merge",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(
        out.contains("merged 6 runs from 2 shards (6 folders copied)"),
        "{out}"
    );
    assert_eq!(common::assert_same_runs(&single, &merged), 6);

    // Another plan in the same folder: the shard refuses, and so does a merge.
    let other = sweep(&shared, &["--shard", "0/3", "--cycles", "2"]);
    let other: Vec<&str> = strs(&other)
        .into_iter()
        .enumerate()
        .filter(|&(i, _)| !(i == 5 || i == 6)) // drop the first --cycles 1
        .map(|(_, s)| s)
        .collect();
    let e = refused(&other);
    assert!(
        e.contains("--shard 0/3:") && e.contains("would mix two experiments"),
        "{e}"
    );
    assert!(e.contains("steps: 40 in the folder, 80 now"), "{e}");
    let c = tmp.path().join("c");
    let other_c: Vec<String> = other
        .iter()
        .map(|s| {
            if *s == shared.to_str().unwrap() {
                c.display().to_string()
            } else {
                s.to_string()
            }
        })
        .collect();
    ok(&strs(&other_c));
    let e = refused(&["sweep", "merge", a.to_str().unwrap(), c.to_str().unwrap()]);
    assert!(
        e.contains("hold different plans") && e.contains("steps: 40 in"),
        "{e}"
    );
}

#[test]
fn a_search_run_stage_by_stage_in_shards_equals_the_search_in_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let mut base = common::small_search("1e-4:1e-1:4");
    base.push("--quiet".into());
    let with = |out: &PathBuf, extra: &[&str]| -> Vec<String> {
        let mut a = base.clone();
        a.extend(["--out".into(), out.display().to_string()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let single = tmp.path().join("single");
    ok(&strs(&with(&single, &[])));
    let sharded = tmp.path().join("sharded");
    // The fine stage cannot start before the coarse one has finished.
    let e = refused(&strs(&with(
        &sharded,
        &["--stage", "fine", "--shard", "0/2"],
    )));
    assert!(
        e.contains("the coarse stage is not finished") && e.contains("4 of 4 runs"),
        "{e}"
    );
    for stage in ["coarse", "fine", "final"] {
        for k in ["0/2", "1/2"] {
            ok(&strs(&with(&sharded, &["--stage", stage, "--shard", k])));
        }
    }
    assert!(
        !sharded.join("summary.json").exists(),
        "shards write no summary"
    );
    ok(&strs(&with(&sharded, &["--resume"])));
    for stage in ["coarse", "fine", "final"] {
        assert_eq!(
            common::assert_same_runs(&single.join(stage), &sharded.join(stage)),
            if stage == "final" { 2 } else { 4 },
            "{stage}"
        );
    }
    let finals = |d: &Path| -> serde_json::Value {
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("summary.json")).unwrap()).unwrap();
        s["final_values"].clone()
    };
    assert_eq!(finals(&single), finals(&sharded));
    assert!(sharded.join("report.html").exists());
}

#[test]
fn slurm_scripts_rerun_the_command_with_absolute_paths_and_chain_the_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sw");
    let mut a = sweep(&out, &[]);
    // --quiet is dropped from the jobs' command and added back once.
    a.extend(
        [
            "--slurm",
            "8",
            "--cpus-per-task=2",
            "--time",
            "0:20:00",
            "--partition=short",
        ]
        .map(String::from),
    );
    let (code, stdout, stderr) = shallow(&strs(&a));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains("--slurm 8: the plan has 4 lockstep groups")
            && stderr.contains("4 array tasks"),
        "{stderr}"
    );
    assert!(stdout.contains("submit.sh"), "{stdout}");
    let script = std::fs::read_to_string(out.join("slurm/sweep.sbatch")).unwrap();
    let data = common::generated_release().canonicalize().unwrap();
    let out_abs = out.canonicalize().unwrap();
    for want in [
        "#SBATCH --array=0-3\n".to_string(),
        "#SBATCH --cpus-per-task=2\n".into(),
        "#SBATCH --time=0:20:00\n".into(),
        "#SBATCH --partition=short\n".into(),
        format!(
            "sweep --grid lambda=1e-4,1e-3,1e-2 --grid hidden=20,40 --cycles 1 --ns 20 --n-train 1000 --n-val 300 --log-points 2 --max-group=2 --data {} --out {} --quiet --threads \"${{SLURM_CPUS_PER_TASK:-1}}\" --shard \"$SLURM_ARRAY_TASK_ID/4\"\n",
            data.display(),
            out_abs.display()
        ),
    ] {
        assert!(script.contains(&want), "{want:?} not in\n{script}");
    }
    assert_eq!(script.matches("--quiet").count(), 1, "{script}");
    let merge = std::fs::read_to_string(out.join("slurm/merge.sbatch")).unwrap();
    assert!(
        merge.contains(&format!("sweep merge {} --quiet", out_abs.display())),
        "{merge}"
    );
    assert!(
        out.join("plan.json").exists(),
        "the plan is recorded for the shards to check"
    );
    assert!(
        out.join("slurm/logs").is_dir(),
        "sbatch needs the log folder to exist"
    );
    // Written again: the same plan is an earlier run of it.
    let e = refused(&strs(&a));
    assert!(e.contains("--resume") && e.contains("--force"), "{e}");
    // Bad Slurm flags are refused before anything is written.
    let mut bad = sweep(&tmp.path().join("bad"), &[]);
    bad.extend(["--slurm", "2", "--mem", "8 G"].map(String::from));
    let e = refused(&strs(&bad));
    assert!(e.contains("--mem \"8 G\": give one word"), "{e}");
    let (code, _, e) = shallow(&["sweep", "--submit"]);
    assert_eq!(code, 2);
    assert!(e.contains("--slurm"), "{e}");

    // A search writes the chain coarse -> fine -> final -> report.
    let s = tmp.path().join("search");
    let (code, stdout, stderr) = shallow(&[
        "search",
        "--coarse",
        "1e-4:1e-1:4",
        "--n-train",
        "1000",
        "--out",
        s.to_str().unwrap(),
        "--slurm",
        "2",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let submit = std::fs::read_to_string(s.join("slurm/submit.sh")).unwrap();
    for want in [
        "j0=$(sbatch --parsable coarse.sbatch)",
        "j1=$(sbatch --parsable --dependency=afterok:$j0 fine.sbatch)",
        "j2=$(sbatch --parsable --dependency=afterok:$j1 final.sbatch)",
        "j3=$(sbatch --parsable --dependency=afterok:$j2 report.sbatch)",
    ] {
        assert!(submit.contains(want), "{want} not in\n{submit}");
    }
    let fine = std::fs::read_to_string(s.join("slurm/fine.sbatch")).unwrap();
    assert!(
        fine.contains("--stage fine") && fine.contains("#SBATCH --kill-on-invalid-dep=yes"),
        "{fine}"
    );
    let report = std::fs::read_to_string(s.join("slurm/report.sbatch")).unwrap();
    assert!(
        report.contains("--resume") && !report.contains("--shard"),
        "{report}"
    );
}
