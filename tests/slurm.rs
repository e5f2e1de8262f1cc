//! A real Slurm cluster: starts a one-node cluster on localhost with
//! `scripts/local-slurm.sh` (Debian's slurmctld, slurmd, slurm-client and
//! munge, installed with apt-get when missing), submits a sharded sweep with
//! its merge and a search's chain of stages with `--slurm N --submit`, waits
//! for them, checks that they equal the same sweep and search run in one
//! process bit for bit, and stops the cluster, leaving nothing running.
//!
//! One test, so that the cluster is installed and started once. It needs
//! root (the daemons run as root) and, where the packages are missing,
//! apt-get; elsewhere it skips, saying why (as it does with
//! SHALLOW_SKIP_SLURM set).

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/local-slurm.sh");

/// The running cluster; stopped when dropped, also when an assertion fails.
struct Cluster {
    dir: PathBuf,
    port: u16,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    fn script(&self, args: &[&str]) -> std::process::Output {
        Command::new("bash")
            .arg(SCRIPT)
            .args(args)
            .env("LOCAL_SLURM_DIR", &self.dir)
            .env("LOCAL_SLURM_PORT", self.port.to_string())
            .output()
            .expect("bash runs")
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("etc/slurm.conf")
    }

    fn logs(&self) -> String {
        String::from_utf8_lossy(&self.script(&["logs"]).stdout).into_owned()
    }

    /// Waits until job `id` has left the queue; panics with every log unless
    /// each of its tasks COMPLETED.
    fn wait(&self, id: &str, out: &Path) -> String {
        let o = self.script(&["wait", id, "300"]);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        if !o.status.success() {
            panic!(
                "job {id} failed: {said}\njob logs:\n{}\ndaemons:\n{}",
                job_logs(out),
                self.logs()
            );
        }
        said
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let o = self.script(&["stop"]);
        if !o.status.success() {
            eprintln!(
                "local-slurm.sh stop: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

fn job_logs(out: &Path) -> String {
    let mut s = String::new();
    for e in std::fs::read_dir(out.join("slurm/logs"))
        .into_iter()
        .flatten()
        .flatten()
    {
        s += &format!(
            "== {}\n{}\n",
            e.path().display(),
            std::fs::read_to_string(e.path()).unwrap_or_default()
        );
    }
    s
}

fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .chain(["/usr/sbin".into(), "/sbin".into()])
                .any(|d| d.join(program).is_file())
        })
        .unwrap_or(false)
}

/// Why this machine cannot run the cluster, if it cannot.
fn cannot_run() -> Option<String> {
    if std::env::var_os("SHALLOW_SKIP_SLURM").is_some() {
        return Some("SHALLOW_SKIP_SLURM is set".into());
    }
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root: the Slurm and munge daemons run as root".into());
    }
    let installed = ["slurmctld", "slurmd", "sbatch", "munged"]
        .iter()
        .all(|p| have(p));
    if !installed && !have("apt-get") {
        return Some(
            "Slurm and munge are not installed and there is no apt-get to install them".into(),
        );
    }
    None
}

/// Two free ports in a row on 127.0.0.1 (slurmctld's and slurmd's).
fn free_ports() -> u16 {
    (16817..17817)
        .step_by(2)
        .find(|&p| {
            std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
        })
        .expect("a free pair of ports")
}

/// Live processes named `name` (zombies left aside).
fn running(name: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            let p = e.path();
            std::fs::read_to_string(p.join("comm")).is_ok_and(|c| c.trim() == name)
                && std::fs::read_to_string(p.join("stat"))
                    .is_ok_and(|s| s.rsplit(") ").next().is_some_and(|r| !r.starts_with('Z')))
        })
        .count()
}

fn shallow(conf: &Path, cwd: &Path, args: &[String]) -> (i32, String, String) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::shallow_cli(&args, Some(cwd), &[("SLURM_CONF", conf.as_os_str())])
}

fn ok(conf: &Path, cwd: &Path, args: &[String]) -> String {
    let (code, out, err) = shallow(conf, cwd, args);
    assert_eq!(code, 0, "{args:?}\nstdout: {out}\nstderr: {err}");
    out
}

/// The ids of the jobs `--submit` recorded in `out`/slurm/jobs.json, in order.
fn job_ids(out: &Path) -> Vec<String> {
    let jobs: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(out.join("slurm/jobs.json")).unwrap()).unwrap();
    jobs.iter()
        .map(|j| j["job"].as_str().unwrap().to_string())
        .collect()
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn sweeps_and_searches_on_a_real_slurm_cluster_equal_one_process_bit_for_bit() {
    if let Some(why) = cannot_run() {
        eprintln!("skipped: {why}");
        return;
    }
    let before = ["slurmctld", "slurmd", "munged", "slurmstepd"].map(running);
    let t0 = std::time::Instant::now();
    let tmp = tempfile::Builder::new().prefix("slurm").tempdir().unwrap();
    let cluster = Cluster {
        dir: tmp.path().join("cluster"),
        port: free_ports(),
        _tmp: tempfile::tempdir().unwrap(),
    };
    let o = cluster.script(&["start"]);
    assert!(
        o.status.success(),
        "local-slurm.sh start failed (set SHALLOW_SKIP_SLURM=1 to skip this test on a machine \
         that cannot install or run Slurm):\n{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        cluster.logs()
    );
    eprintln!("cluster up in {:.1} s", t0.elapsed().as_secs_f64());
    let conf = cluster.conf();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();

    // A sweep of six configurations in four lockstep groups, as three array tasks.
    let mut sweep = args(&common::SHARDED_SWEEP);
    sweep.push("--save-weights".into());
    let single = work.join("single");
    ok(
        &conf,
        &work,
        &[sweep.clone(), args(&["--out", "single", "--quiet"])].concat(),
    );
    let t1 = std::time::Instant::now();
    let said = ok(
        &conf,
        &work,
        &[
            sweep.clone(),
            args(&[
                "--out",
                "on-slurm",
                "--slurm",
                "3",
                "--submit",
                "--cpus-per-task",
                "1",
            ]),
        ]
        .concat(),
    );
    let out = work.join("on-slurm");
    assert!(
        said.contains("submitted shallow-sweep: job") && said.contains("3 array tasks"),
        "{said}"
    );
    let ids = job_ids(&out);
    assert_eq!(ids.len(), 2, "{said}");
    assert!(
        said.contains(&format!("squeue -j {},{}", ids[0], ids[1])),
        "{said}"
    );
    cluster.wait(&ids[1], &out);
    let states = cluster.wait(&ids[0], &out);
    assert_eq!(states.matches("JobState=COMPLETED").count(), 3, "{states}");
    eprintln!(
        "sweep array and merge done in {:.1} s",
        t1.elapsed().as_secs_f64()
    );
    assert_eq!(common::assert_same_runs(&single, &out), 6);
    for f in ["results.csv", "summary.png", "report.html"] {
        assert!(out.join(f).exists(), "{f}: {}", job_logs(&out));
    }
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let shards = info["shards"]
        .as_array()
        .expect("run.json lists the shards");
    assert_eq!(shards.len(), 3);
    for (k, s) in shards.iter().enumerate() {
        assert_eq!(s["slurm_job"], format!("{}_{k}", ids[0]), "{s}");
        assert_eq!(s["cores"], 1, "--threads from the allocation: {s}");
    }

    // A search as the chain coarse -> fine -> final -> report.
    let search = common::small_search("1e-4:1e-1:6");
    let single_search = work.join("search-single");
    ok(
        &conf,
        &work,
        &[search.clone(), args(&["--out", "search-single", "--quiet"])].concat(),
    );
    let t2 = std::time::Instant::now();
    let said = ok(
        &conf,
        &work,
        &[
            search,
            args(&[
                "--out",
                "search-slurm",
                "--slurm",
                "2",
                "--submit",
                "--cpus-per-task=1",
            ]),
        ]
        .concat(),
    );
    let out = work.join("search-slurm");
    let ids = job_ids(&out);
    assert_eq!(ids.len(), 4, "{said}");
    cluster.wait(&ids[3], &out);
    eprintln!("search chain done in {:.1} s", t2.elapsed().as_secs_f64());
    for (stage, n) in [("coarse", 6), ("fine", 4), ("final", 2)] {
        assert_eq!(
            common::assert_same_runs(&single_search.join(stage), &out.join(stage)),
            n,
            "{stage}"
        );
    }
    let summary = |d: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.join("summary.json")).unwrap()).unwrap()
    };
    assert_eq!(
        summary(&single_search)["final_values"],
        summary(&out)["final_values"]
    );
    assert!(out.join("report.html").exists());

    // Successive halving over two widths as the chain rung 1 -> decide -> rung 2 -> merge.
    let halving = common::pruned_sweep();
    ok(
        &conf,
        &work,
        &[
            halving.clone(),
            args(&["--out", "halving-single", "--quiet"]),
        ]
        .concat(),
    );
    let t3 = std::time::Instant::now();
    let said = ok(
        &conf,
        &work,
        &[
            halving,
            args(&[
                "--out",
                "halving-slurm",
                "--slurm",
                "2",
                "--submit",
                "--cpus-per-task=1",
            ]),
        ]
        .concat(),
    );
    let out = work.join("halving-slurm");
    let ids = job_ids(&out);
    assert_eq!(
        ids.len(),
        4,
        "rung 1, its decision, rung 2, the merge: {said}"
    );
    cluster.wait(&ids[3], &out);
    eprintln!("halving chain done in {:.1} s", t3.elapsed().as_secs_f64());
    let single = work.join("halving-single");
    assert_eq!(common::assert_same_runs(&single, &out), 6);
    let rungs = |d: &Path| -> serde_json::Value {
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("rungs.json")).unwrap()).unwrap();
        r["rungs"].clone()
    };
    assert_eq!(rungs(&single), rungs(&out));
    for f in ["results.csv", "rungs.png", "report.html"] {
        assert!(out.join(f).exists(), "{f}: {}", job_logs(&out));
    }

    // A search by successive halving: rung 1, its decision, rung 2, its decision, final, report.
    let mut pruned = common::small_search("1e-4:1e-1:6");
    pruned.extend(args(&["--method", "halving", "--max-cycles", "3"]));
    ok(
        &conf,
        &work,
        &[pruned.clone(), args(&["--out", "pruned-single", "--quiet"])].concat(),
    );
    let t4 = std::time::Instant::now();
    let said = ok(
        &conf,
        &work,
        &[
            pruned,
            args(&[
                "--out",
                "pruned-slurm",
                "--slurm",
                "2",
                "--submit",
                "--cpus-per-task=1",
            ]),
        ]
        .concat(),
    );
    let out = work.join("pruned-slurm");
    let ids = job_ids(&out);
    assert_eq!(ids.len(), 6, "{said}");
    cluster.wait(&ids[5], &out);
    eprintln!(
        "pruned search chain done in {:.1} s",
        t4.elapsed().as_secs_f64()
    );
    let single = work.join("pruned-single");
    for (stage, n) in [("halving", 6), ("final", 2)] {
        assert_eq!(
            common::assert_same_runs(&single.join(stage), &out.join(stage)),
            n,
            "{stage}"
        );
    }
    assert_eq!(
        summary(&single)["final_values"],
        summary(&out)["final_values"]
    );
    assert!(out.join("report.html").exists());

    // Stopping leaves nothing running.
    drop(cluster);
    let after = ["slurmctld", "slurmd", "munged", "slurmstepd"].map(running);
    assert_eq!(
        before, after,
        "daemons left running (slurmctld, slurmd, munged, slurmstepd)"
    );
    assert!(
        !tmp.path().join("cluster").exists(),
        "the cluster's folder is removed"
    );
    eprintln!("whole test {:.1} s", t0.elapsed().as_secs_f64());
}
