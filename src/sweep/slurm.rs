//! Slurm job scripts for sharded sweeps and searches (`--slurm N`): an sbatch
//! job array with one task per shard, and the jobs that wait on it
//! (`--dependency=afterok`), written into the sweep folder and optionally
//! submitted with `sbatch --parsable`.
//!
//! The scripts re-run the user's own command line (less the Slurm flags),
//! with an absolute `--out` and `--data`, `--shard $SLURM_ARRAY_TASK_ID/N`
//! and `--threads` from the allocation, from the folder it was typed in. So
//! every shard computes the same plan, and refuses to run if it changed.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Resources of the jobs, from `--cpus-per-task`, `--time`, `--mem`,
/// `--partition` and `--account`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    /// Cores of each array task (and `--threads` of its shard).
    pub cpus_per_task: usize,
    /// Time limit per task, in Slurm's form (`1:00:00`, `30`).
    pub time: Option<String>,
    /// Memory per task (`4G`).
    pub mem: Option<String>,
    /// Partition.
    pub partition: Option<String>,
    /// Account charged.
    pub account: Option<String>,
    /// The `OPENBLAS_CORETYPE` the user set, exported by the scripts so that
    /// every node runs the same kernel (None: each node's own choice).
    pub coretype: Option<String>,
}

impl Resources {
    /// The `OPENBLAS_CORETYPE` a user set for this process, if any: not one
    /// shallow set itself after OpenBLAS failed to recognise this CPU, which
    /// another node's CPU may not run.
    pub fn user_coretype() -> Option<String> {
        if std::env::var_os(crate::linalg::blas::KERNEL_CHOSEN_VAR).is_some() {
            return None;
        }
        std::env::var("OPENBLAS_CORETYPE")
            .ok()
            .filter(|v| !v.is_empty())
    }
}

/// One job: a script file, run as an array of `tasks` or once, after the job
/// at index `after` of the same list succeeded.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// Script file name in the folder, e.g. `sweep.sbatch`.
    pub file: String,
    /// Slurm job name.
    pub name: String,
    /// Array tasks (one per shard), or `None` for a single task.
    pub tasks: Option<usize>,
    /// Index of the job in the list that must finish successfully first.
    pub after: Option<usize>,
    /// Cores of each task.
    pub cpus: usize,
    /// The shallow arguments, quoted for the shell when written.
    pub args: Vec<String>,
    /// Shell text appended unquoted (e.g. `--shard "$SLURM_ARRAY_TASK_ID/4"`).
    pub raw: String,
}

/// Quotes `s` for a POSIX shell (bare when it is safe).
pub fn quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `args` without the flags in `valued` (with their value, as `--f v` or
/// `--f=v`) and those in `bare`.
pub fn without_flags(args: &[String], valued: &[&str], bare: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let name = a.split_once('=').map_or(a.as_str(), |(n, _)| n);
        if valued.contains(&name) {
            i += if a.contains('=') { 1 } else { 2 };
            continue;
        }
        if bare.contains(&a.as_str()) {
            i += 1;
            continue;
        }
        out.push(a.clone());
        i += 1;
    }
    out
}

/// The text of `job`'s sbatch script: `exe` runs in `cwd`, logs go to `logs`.
pub fn script(job: &Job, res: &Resources, exe: &Path, cwd: &Path, logs: &Path) -> String {
    let mut s = String::from("#!/bin/bash\n");
    s.push_str(&format!(
        "# Written by `shallow --slurm`: {}.\n",
        match job.tasks {
            Some(n) => format!("{n} array tasks, one per shard"),
            None => "one task".into(),
        }
    ));
    let mut directive = |d: String| s.push_str(&format!("#SBATCH {d}\n"));
    directive(format!("--job-name={}", job.name));
    if let Some(n) = job.tasks {
        directive(format!("--array=0-{}", n.max(1) - 1));
    }
    directive("--ntasks=1".into());
    directive(format!("--cpus-per-task={}", job.cpus));
    let log = match job.tasks {
        Some(_) => "%x-%A_%a.out",
        None => "%x-%j.out",
    };
    directive(format!("--output={}", logs.join(log).display()));
    if job.after.is_some() {
        // A failed step cancels what waits on it instead of leaving it pending forever.
        directive("--kill-on-invalid-dep=yes".into());
    }
    if let Some(t) = &res.time {
        directive(format!("--time={t}"));
    }
    if let Some(m) = &res.mem {
        directive(format!("--mem={m}"));
    }
    if let Some(p) = &res.partition {
        directive(format!("--partition={p}"));
    }
    if let Some(a) = &res.account {
        directive(format!("--account={a}"));
    }
    s.push_str("set -euo pipefail\n");
    if let Some(k) = &res.coretype {
        s.push_str(&format!(
            "export OPENBLAS_CORETYPE={}   # as set when the scripts were written\n",
            quote(k)
        ));
    }
    s.push_str(&format!("cd {}\n", quote(&cwd.display().to_string())));
    let args: Vec<String> = job.args.iter().map(|a| quote(a)).collect();
    s.push_str(&format!(
        "exec {} {}{}{}\n",
        quote(&exe.display().to_string()),
        args.join(" "),
        if job.raw.is_empty() { "" } else { " " },
        job.raw
    ));
    s
}

/// The text of `submit.sh`: submits `jobs` in order, each dependent one with
/// `--dependency=afterok:` on the job it waits for, and prints their ids.
pub fn submit_script(jobs: &[Job]) -> String {
    let mut s = String::from(
        "#!/bin/bash\n# Submits this folder's Slurm jobs in order, each after the one it waits on.\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\n",
    );
    for (i, j) in jobs.iter().enumerate() {
        let dep = j
            .after
            .map(|a| format!(" --dependency=afterok:$j{a}"))
            .unwrap_or_default();
        s.push_str(&format!(
            "j{i}=$(sbatch --parsable{dep} {})\nj{i}=${{j{i}%%;*}}\necho \"{}: job $j{i}\"\n",
            j.file, j.name
        ));
    }
    let ids: Vec<String> = (0..jobs.len()).map(|i| format!("$j{i}")).collect();
    s.push_str(&format!("echo \"watch: squeue -j {}\"\n", ids.join(",")));
    s
}

/// Folder of the scripts in a sweep or search folder.
pub const DIR: &str = "slurm";

/// Writes the scripts of `jobs` and `submit.sh` into `out`/slurm (creating
/// `out`/slurm/logs, which sbatch needs to exist), atomically each. Returns the folder.
pub fn write(out: &Path, jobs: &[Job], res: &Resources, exe: &Path, cwd: &Path) -> Result<PathBuf> {
    let dir = out.join(DIR);
    let logs = dir.join("logs");
    crate::util::create_dir(&logs)?;
    for j in jobs {
        write_executable(&dir.join(&j.file), &script(j, res, exe, cwd, &logs))?;
    }
    write_executable(&dir.join("submit.sh"), &submit_script(jobs))?;
    Ok(dir)
}

fn write_executable(path: &Path, text: &str) -> Result<()> {
    crate::util::write_atomic(path, text.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", path.display()))?;
    }
    Ok(())
}

/// Submits the scripts of `jobs` in `dir` with `sbatch --parsable`, each
/// dependent job after its job's id. Returns the job ids in order.
pub fn submit(dir: &Path, jobs: &[Job]) -> Result<Vec<String>> {
    let mut ids: Vec<String> = Vec::new();
    for j in jobs {
        let mut cmd = std::process::Command::new("sbatch");
        cmd.arg("--parsable");
        if std::env::var_os(crate::linalg::blas::KERNEL_CHOSEN_VAR).is_some() {
            // shallow chose this machine's kernel itself: the jobs' nodes choose their own.
            cmd.env_remove("OPENBLAS_CORETYPE")
                .env_remove(crate::linalg::blas::KERNEL_CHOSEN_VAR);
        }
        if let Some(a) = j.after {
            cmd.arg(format!("--dependency=afterok:{}", ids[a]));
        }
        cmd.arg(dir.join(&j.file));
        let out = match cmd.output() {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "--submit: sbatch is not installed here: run this on the cluster's login node, \
                 or submit the scripts later with `bash {}`",
                dir.join("submit.sh").display()
            ),
            Err(e) => return Err(e).context("--submit: cannot run sbatch"),
        };
        if !out.status.success() {
            bail!(
                "--submit: sbatch refused {}{}: {}\nFix the Slurm flags (--partition, --account, --time, --mem, --cpus-per-task) and write the scripts again",
                dir.join(&j.file).display(),
                if ids.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (jobs {} were submitted already: scancel them)",
                        ids.join(",")
                    )
                },
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let id = text
            .lines()
            .next()
            .and_then(|l| l.split(';').next())
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()))
            .with_context(|| format!("--submit: sbatch printed no job id: {text:?}"))?;
        ids.push(id.to_string());
    }
    Ok(ids)
}

/// The arguments of this process after the command word `command` (`sweep`,
/// `search`), as typed.
pub fn own_args(command: &str) -> Vec<String> {
    let all: Vec<String> = std::env::args().collect();
    match all.iter().position(|a| a == command) {
        Some(i) => all[i + 1..].to_vec(),
        None => all.into_iter().skip(2).collect(),
    }
}

/// This program's absolute path (for the scripts to run the same build).
pub fn exe() -> Result<PathBuf> {
    let p =
        std::env::current_exe().context("cannot find shallow's own path for the Slurm scripts")?;
    Ok(p.canonicalize().unwrap_or(p))
}

/// Flags of `--slurm` that the job scripts must not pass on, with a value.
pub const SLURM_VALUED: [&str; 11] = [
    "--slurm",
    "--cpus-per-task",
    "--time",
    "--mem",
    "--partition",
    "--account",
    "--out",
    "--threads",
    "--data",
    "--shard",
    "--stage",
];

/// Flags of `--slurm` that the job scripts must not pass on, without a value.
pub const SLURM_BARE: [&str; 5] = ["--submit", "--quiet", "--json", "--resume", "--force"];

/// What to print once the scripts are written (and submitted: `ids`).
pub fn summary(dir: &Path, jobs: &[Job], ids: Option<&[String]>, results: &str) -> String {
    let mut s = String::new();
    match ids {
        Some(ids) => {
            for (j, id) in jobs.iter().zip(ids) {
                s.push_str(&format!(
                    "submitted {}: job {id}{}{}\n",
                    j.name,
                    j.tasks
                        .map(|n| format!(", {n} array task{}", if n == 1 { "" } else { "s" }))
                        .unwrap_or_default(),
                    j.after
                        .map(|a| format!(", after job {}", ids[a]))
                        .unwrap_or_default()
                ));
            }
            s.push_str(&format!(
                "watch: squeue -j {}\nlogs:  {}\n{results}\n",
                ids.join(","),
                dir.join("logs").display()
            ));
        }
        None => {
            s.push_str(&format!(
                "wrote {} and submit.sh in {}\nsubmit: bash {}   (or add --submit)\n{results}\n",
                jobs.iter()
                    .map(|j| j.file.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                dir.display(),
                dir.join("submit.sh").display()
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_slurm_flags_are_dropped_in_both_forms_and_the_rest_kept_in_order() {
        let args = strings(&[
            "--grid",
            "lambda=1e-5,1e-3",
            "--slurm",
            "4",
            "--time=1:00:00",
            "--submit",
            "--cycles",
            "3",
            "--out",
            "o",
            "--partition=gpu",
            "--quiet",
        ]);
        assert_eq!(
            without_flags(&args, &SLURM_VALUED, &SLURM_BARE),
            strings(&["--grid", "lambda=1e-5,1e-3", "--cycles", "3"])
        );
    }

    #[test]
    fn scripts_hold_the_directives_the_command_and_the_dependencies() {
        let res = Resources {
            cpus_per_task: 4,
            time: Some("0:30:00".into()),
            mem: Some("8G".into()),
            partition: Some("short".into()),
            account: None,
            coretype: Some("Haswell".into()),
        };
        let array = Job {
            file: "sweep.sbatch".into(),
            name: "shallow-sweep".into(),
            tasks: Some(3),
            after: None,
            cpus: 4,
            args: strings(&["sweep", "--grid", "hidden=50,100", "--out", "/r/o ut"]),
            raw: "--shard \"$SLURM_ARRAY_TASK_ID/3\"".into(),
        };
        let s = script(
            &array,
            &res,
            Path::new("/opt/shallow"),
            Path::new("/home/me"),
            Path::new("/r/logs"),
        );
        for want in [
            "#SBATCH --job-name=shallow-sweep\n",
            "#SBATCH --array=0-2\n",
            "#SBATCH --cpus-per-task=4\n",
            "#SBATCH --output=/r/logs/%x-%A_%a.out\n",
            "#SBATCH --time=0:30:00\n",
            "#SBATCH --mem=8G\n",
            "#SBATCH --partition=short\n",
            "cd /home/me\n",
            "export OPENBLAS_CORETYPE=Haswell ",
            "exec /opt/shallow sweep --grid hidden=50,100 --out '/r/o ut' --shard \"$SLURM_ARRAY_TASK_ID/3\"\n",
        ] {
            assert!(s.contains(want), "{want:?} not in\n{s}");
        }
        assert!(
            !s.contains("--account") && !s.contains("kill-on-invalid-dep"),
            "{s}"
        );
        let merge = Job {
            file: "merge.sbatch".into(),
            name: "shallow-merge".into(),
            tasks: None,
            after: Some(0),
            cpus: 1,
            args: strings(&["sweep", "merge", "/r/o"]),
            raw: String::new(),
        };
        let m = script(
            &merge,
            &res,
            Path::new("/opt/shallow"),
            Path::new("/home/me"),
            Path::new("/r/logs"),
        );
        assert!(
            m.contains("#SBATCH --kill-on-invalid-dep=yes\n") && !m.contains("--array"),
            "{m}"
        );
        assert!(m.contains("#SBATCH --output=/r/logs/%x-%j.out\n"), "{m}");
        let sub = submit_script(&[array, merge]);
        assert!(
            sub.contains("j0=$(sbatch --parsable sweep.sbatch)\n"),
            "{sub}"
        );
        assert!(
            sub.contains("j1=$(sbatch --parsable --dependency=afterok:$j0 merge.sbatch)\n"),
            "{sub}"
        );
        assert!(sub.contains("squeue -j $j0,$j1"), "{sub}");
    }

    #[test]
    fn quoting_keeps_every_argument_one_word() {
        assert_eq!(quote("lambda=1e-5:1e-1:8:log"), "lambda=1e-5:1e-1:8:log");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$HOME"), "'$HOME'");
        assert_eq!(quote(""), "''");
    }
}
