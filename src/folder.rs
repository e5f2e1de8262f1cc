//! An output folder: one kind of results, written by one process at a time.
//!
//! Every command that writes a folder first [`claim`]s it: an OS file lock
//! (`flock` on `.shallow.lock`, which dies with the process, so a kill -9 never
//! leaves a stale lock) refuses a second process, naming the first; the
//! folder's manifest (`shallow.json`, its kind) refuses another command's folder unless
//! `--force`; and temporary files that a killed process left are removed. The
//! shards of one plan (`--shard K/N`) share the folder, each holding the lock
//! of its own shard.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

/// The lock file of a folder.
pub const LOCK_FILE: &str = ".shallow.lock";
/// The folder's manifest ([`Manifest`]): which command's results it holds.
pub const MANIFEST_FILE: &str = "shallow.json";

/// Version of the manifest's layout, raised when a field changes meaning.
pub const MANIFEST_SCHEMA: u32 = 1;

/// What a folder says it is (`shallow.json`), written when a command first
/// claims it and kept by `--resume`: `shallow report` and every later claim
/// read the kind from it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// The command's kind of results: `sweep`, `search`, `experiment`,
    /// `bonus`, `train` or `lr-range`.
    pub kind: String,
    /// [`MANIFEST_SCHEMA`] of the shallow that wrote it.
    pub schema: u32,
    /// The command line that made the folder.
    pub command: String,
    /// shallow's version then.
    pub version: String,
    /// When, e.g. `2026-12-02 18:40 UTC`.
    pub created: String,
}

impl Manifest {
    /// The manifest of `dir`, if it has a readable one.
    pub fn read(dir: &Path) -> Option<Manifest> {
        serde_json::from_slice(&fs::read(dir.join(MANIFEST_FILE)).ok()?).ok()
    }

    /// A manifest of `kind` made by this process's command, now.
    pub fn now(kind: FolderKind) -> Manifest {
        Manifest {
            kind: kind.word().into(),
            schema: MANIFEST_SCHEMA,
            command: crate::util::command_line(),
            version: env!("CARGO_PKG_VERSION").into(),
            created: crate::util::utc_now(),
        }
    }

    /// Writes it into `dir` (atomically).
    pub fn write(&self, dir: &Path) -> Result<()> {
        crate::util::write_json(&dir.join(MANIFEST_FILE), self)
    }
}

/// Records that `dir`, a folder inside a claimed one (a sweep's run, a
/// search's stage, an experiment's part), holds results of `kind`, unless
/// it already says what it holds: `shallow report` can then be pointed at it.
pub fn record(dir: &Path, kind: FolderKind) -> Result<()> {
    if Manifest::read(dir).is_none() {
        Manifest::now(kind).write(dir)?;
    }
    Ok(())
}

/// What kind of results a folder holds: the command that writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FolderKind {
    /// `shallow experiment all` (or a1, a2).
    Experiment,
    /// `shallow search`.
    Search,
    /// `shallow sweep` (and `sweep merge`).
    Sweep,
    /// One run of `shallow train`.
    Run,
    /// `shallow experiment bonus`.
    Bonus,
    /// `shallow lr-range`.
    LrRange,
}

impl FolderKind {
    const ALL: [FolderKind; 6] = [
        FolderKind::Experiment,
        FolderKind::Search,
        FolderKind::Sweep,
        FolderKind::Run,
        FolderKind::Bonus,
        FolderKind::LrRange,
    ];

    /// The word recorded in the manifest ([`Manifest::kind`]).
    pub fn word(self) -> &'static str {
        match self {
            FolderKind::Experiment => "experiment",
            FolderKind::Search => "search",
            FolderKind::Sweep => "sweep",
            FolderKind::Run => "train",
            FolderKind::Bonus => "bonus",
            FolderKind::LrRange => "lr-range",
        }
    }

    /// What such a folder holds, for messages: `a sweep (shallow sweep)`.
    pub fn describe(self) -> &'static str {
        match self {
            FolderKind::Experiment => "an experiment (shallow experiment)",
            FolderKind::Search => "a search (shallow search)",
            FolderKind::Sweep => "a sweep (shallow sweep)",
            FolderKind::Run => "a training run (shallow train)",
            FolderKind::Bonus => "the bonus experiment (shallow experiment bonus)",
            FolderKind::LrRange => "a learning-rate range test (shallow lr-range)",
        }
    }
}

/// What `dir` holds: the kind recorded when it was claimed, else (a folder
/// written before kinds were recorded) the kind its files show, else `None`.
pub fn kind_of(dir: &Path) -> Option<FolderKind> {
    if let Some(m) = Manifest::read(dir) {
        if let Some(k) = FolderKind::ALL.iter().find(|k| k.word() == m.kind) {
            return Some(*k);
        }
    }
    let has = |f: &str| dir.join(f).exists();
    if has("bonus.json") {
        Some(FolderKind::Bonus)
    } else if has("gradcheck.json")
        || has("a1/summary.json")
        || has("a2/summary.json")
        || has("timings.json")
    {
        Some(FolderKind::Experiment)
    } else if has("summary.json") && has("coarse") {
        Some(FolderKind::Search)
    } else if has("sweep.json") || has("plan.json") {
        Some(FolderKind::Sweep)
    } else if has("lr_range.json") {
        Some(FolderKind::LrRange)
    } else if has("config.json") && (has("result.json") || has("checkpoint.json")) {
        Some(FolderKind::Run)
    } else if has("summary.json") {
        Some(FolderKind::Experiment)
    } else {
        None
    }
}

/// How a command claims its folder.
#[derive(Clone, Debug)]
pub struct Claim<'a> {
    /// What the command writes there.
    pub kind: FolderKind,
    /// `--force`: take a folder of another kind.
    pub force: bool,
    /// `--shard K/N`: share the folder with the plan's other shards, holding
    /// this shard's own lock (the label, e.g. `1/4`).
    pub shard: Option<&'a str>,
    /// The flag that named the folder, for messages (`--out`; empty where
    /// the folder is an argument, as in `shallow report DIR`).
    pub flag: &'a str,
}

impl<'a> Claim<'a> {
    /// A whole-folder claim for `kind`, named by `--out`.
    pub fn new(kind: FolderKind, force: bool) -> Self {
        Claim {
            kind,
            force,
            shard: None,
            flag: "--out",
        }
    }
}

/// A claimed folder: held until dropped (or until the process ends, however
/// it ends). Dropping the claim of a folder it created and nothing was written
/// to removes the folder again, so a refusal leaves no empty `--out` behind.
#[derive(Debug)]
pub struct FolderLock {
    dir: PathBuf,
    canonical: PathBuf,
    created: bool,
    _lock: File,
    _shard: Option<(File, PathBuf)>,
}

/// Folders this process holds, and whether as a shard (so that its own
/// claims of folders inside them do not refuse each other).
static HELD: Mutex<Vec<(PathBuf, bool)>> = Mutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<(PathBuf, bool)>> {
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

/// Who holds a lock: written into its file once taken.
fn holder_line() -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this machine".into());
    format!(
        "process {} on {host}, since {}: {}",
        std::process::id(),
        crate::util::utc_now(),
        crate::util::command_line()
    )
}

fn read_holder(path: &Path) -> String {
    let mut s = String::new();
    let _ = File::open(path).and_then(|mut f| f.read_to_string(&mut s));
    let s = s.trim();
    if s.is_empty() {
        "another process".into()
    } else {
        s.to_string()
    }
}

fn open_lock(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))
}

/// Whether the lock of `file` was taken (`Ok(false)`: another process holds it).
/// A lock taken on a file that its holder removed meanwhile (the path now
/// names another file, or none) counts as not taken.
fn took(file: &File, r: std::result::Result<(), fs::TryLockError>, path: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    match r {
        Ok(()) => {
            let same = match (file.metadata(), fs::metadata(path)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if !same {
                let _ = file.unlock();
            }
            Ok(same)
        }
        Err(fs::TryLockError::WouldBlock) => Ok(false),
        Err(fs::TryLockError::Error(e)) => Err(e).with_context(|| {
            format!(
                "cannot lock {}: the file system refuses locks; use an --out on a local or NFS disk",
                path.display()
            )
        }),
    }
}

/// The shard locks of `dir` that a process holds now, with their holders.
fn live_shards(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".shard-") && name.ends_with(".lock") {
            if let Ok(f) = File::open(e.path()) {
                if matches!(f.try_lock_shared(), Err(fs::TryLockError::WouldBlock)) {
                    out.push(read_holder(&e.path()));
                }
            }
        }
    }
    out.sort();
    out
}

fn in_use(dir: &Path, lock: &Path, flag: &str) -> anyhow::Error {
    let shards = live_shards(dir);
    let who = if shards.is_empty() {
        read_holder(lock)
    } else {
        format!("the shards of a plan:\n  {}", shards.join("\n  "))
    };
    anyhow::anyhow!(
        "{} is in use by {who}\nTwo processes never write one folder: {}",
        named(flag, dir),
        advice(flag)
    )
}

/// `--out DIR`, or the folder alone where no flag named it.
fn named(flag: &str, dir: &Path) -> String {
    if flag.is_empty() {
        dir.display().to_string()
    } else {
        format!("{flag} {}", dir.display())
    }
}

/// What to do about a folder in use.
fn advice(flag: &str) -> String {
    if flag.is_empty() {
        "wait for it to finish (or stop it), then run this command again".into()
    } else {
        format!("wait for it to finish (or stop it), or choose another {flag}")
    }
}

/// Claims `dir` for one command (see the module's text): creates it,
/// refuses it while another process holds it or a folder around it, refuses a
/// folder of another kind unless `claim.force`, records the kind, and removes
/// temporary files a killed process left there. Nothing is written on a refusal.
pub fn claim(dir: &Path, claim: &Claim) -> Result<FolderLock> {
    let existed = dir.exists();
    if existed && !dir.is_dir() {
        bail!(
            "{} is a file, not a folder: choose a folder for the results",
            named(claim.flag, dir)
        );
    }
    // Kind first: a refusal must not create or lock anything.
    if existed {
        if let Some(k) = kind_of(dir) {
            if k != claim.kind && !claim.force {
                bail!(
                    "{} holds {}, and this command writes {}: one folder holds one kind of results. \
                     Choose another folder, or give --force to write there anyway",
                    named(claim.flag, dir),
                    k.describe(),
                    claim.kind.describe()
                );
            }
        }
    }
    crate::util::create_dir(dir)?;
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let result = take(dir, &canonical, claim, !existed);
    if result.is_err() && !existed {
        let _ = fs::remove_file(dir.join(LOCK_FILE));
        let _ = fs::remove_dir(dir);
    }
    result
}

fn take(dir: &Path, canonical: &Path, claim: &Claim, created: bool) -> Result<FolderLock> {
    // A folder around this one that another process holds whole.
    for outer in canonical.ancestors().skip(1) {
        let path = outer.join(LOCK_FILE);
        if !path.is_file() || held().iter().any(|h| h.0 == outer) {
            continue;
        }
        if let Ok(f) = File::open(&path) {
            if matches!(f.try_lock_shared(), Err(fs::TryLockError::WouldBlock)) {
                bail!(
                    "{} is inside {}, which is in use by {}\nTwo processes never write one folder: {}",
                    named(claim.flag, dir),
                    outer.display(),
                    read_holder(&path),
                    advice(claim.flag)
                );
            }
        }
    }
    let shard = claim.shard.is_some();
    if held().iter().any(|h| h.0 == canonical && !(h.1 && shard)) {
        bail!(
            "{} is already in use by this command: give each part its own folder",
            named(claim.flag, dir)
        );
    }
    if claim.shard.is_none() {
        if let Some((inner, who)) = held_below(dir, 4) {
            bail!(
                "{} holds {}, which is in use by {who}\nTwo processes never write one folder: {}",
                named(claim.flag, dir),
                inner.display(),
                advice(claim.flag)
            );
        }
    }
    let path = dir.join(LOCK_FILE);
    let mut lock = open_lock(&path)?;
    let whole = match claim.shard {
        None => took(&lock, lock.try_lock(), &path)?,
        Some(_) => took(&lock, lock.try_lock_shared(), &path)?,
    };
    if !whole {
        return Err(in_use(dir, &path, claim.flag));
    }
    let shard = match claim.shard {
        None => {
            write_holder(&mut lock)?;
            None
        }
        Some(label) => {
            let spath = dir.join(format!(".shard-{}.lock", label.replace('/', "-of-")));
            let mut f = open_lock(&spath)?;
            if !took(&f, f.try_lock(), &spath)? {
                bail!(
                    "--shard {label}: {} is in use by another process of the same shard: {}\n\
                     Give each process its own shard",
                    named(claim.flag, dir),
                    read_holder(&spath)
                );
            }
            write_holder(&mut f)?;
            Some((f, spath))
        }
    };
    if Manifest::read(dir).is_none_or(|m| m.kind != claim.kind.word()) {
        Manifest::now(claim.kind).write(dir)?;
    }
    if claim.shard.is_none() {
        remove_temporaries(dir, 4);
    }
    held().push((canonical.to_path_buf(), claim.shard.is_some()));
    Ok(FolderLock {
        dir: dir.to_path_buf(),
        canonical: canonical.to_path_buf(),
        created,
        _lock: lock,
        _shard: shard,
    })
}

fn write_holder(f: &mut File) -> Result<()> {
    f.set_len(0)?;
    f.rewind()?;
    f.write_all(holder_line().as_bytes())?;
    Ok(())
}

/// A folder below `dir` (`depth` levels down) that another process holds,
/// with its holder.
fn held_below(dir: &Path, depth: usize) -> Option<(PathBuf, String)> {
    for e in fs::read_dir(dir).ok()?.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let inner = e.path();
        let lock = inner.join(LOCK_FILE);
        if lock.is_file() {
            if let Ok(f) = File::open(&lock) {
                if matches!(f.try_lock_shared(), Err(fs::TryLockError::WouldBlock)) {
                    return Some((inner, read_holder(&lock)));
                }
            }
        }
        if depth > 1 {
            if let Some(found) = held_below(&inner, depth - 1) {
                return Some(found);
            }
        }
    }
    None
}

/// Removes the temporary files of [`crate::util::write_atomic`] (`.NAME.XXXXXX.tmp`)
/// that a killed process left in `dir` and its sub-folders, `depth` levels down.
fn remove_temporaries(dir: &Path, depth: usize) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(t) = e.file_type() else { continue };
        if t.is_file() && name.starts_with('.') && name.ends_with(".tmp") {
            let _ = fs::remove_file(e.path());
        } else if t.is_dir() && depth > 1 {
            remove_temporaries(&e.path(), depth - 1);
        }
    }
}

impl FolderLock {
    /// The folder, as the command named it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        let mut held = held();
        if let Some(k) = held.iter().position(|h| h.0 == self.canonical) {
            held.remove(k);
        }
        drop(held);
        if let Some((_, p)) = &self._shard {
            let _ = fs::remove_file(p);
        }
        if self.created {
            // Nothing but this claim's own files: leave no empty folder behind.
            let only_ours = fs::read_dir(&self.dir).is_ok_and(|entries| {
                entries.flatten().all(|e| {
                    let n = e.file_name();
                    n == LOCK_FILE || n == MANIFEST_FILE
                })
            });
            if only_ours {
                let _ = fs::remove_file(self.dir.join(MANIFEST_FILE));
                let _ = fs::remove_file(self.dir.join(LOCK_FILE));
                let _ = fs::remove_dir(&self.dir);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sweep");
        let first = claim(&out, &Claim::new(FolderKind::Sweep, false)).unwrap();
        fs::write(out.join("results.csv"), "x").unwrap();
        let e = format!(
            "{:#}",
            claim(&out, &Claim::new(FolderKind::Sweep, false)).unwrap_err()
        );
        assert!(e.contains("already in use by this command"), "{e}");
        drop(first);
        let again = claim(&out, &Claim::new(FolderKind::Sweep, false)).unwrap();
        // An inner folder of a held one: allowed for the holder itself.
        let inner = claim(&out.join("coarse"), &Claim::new(FolderKind::Sweep, false)).unwrap();
        drop((inner, again));
        assert_eq!(fs::read_to_string(out.join("results.csv")).unwrap(), "x");
    }

    #[test]
    fn a_folder_around_or_inside_a_held_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sweep");
        let inner = out.join("run03");
        fs::create_dir_all(&inner).unwrap();
        // Another process holds the inner folder: flock sees a second open
        // file as another holder, so a child process is not needed.
        let f = File::create(inner.join(LOCK_FILE)).unwrap();
        f.lock().unwrap();
        fs::write(inner.join(LOCK_FILE), "process 99 on elsewhere").unwrap();
        let e = format!(
            "{:#}",
            claim(&out, &Claim::new(FolderKind::Sweep, false)).unwrap_err()
        );
        assert!(
            e.contains("run03") && e.contains("process 99 on elsewhere"),
            "{e}"
        );
        drop(f);
        let outer = File::create(out.join(LOCK_FILE)).unwrap();
        outer.lock().unwrap();
        let e = format!(
            "{:#}",
            claim(&inner, &Claim::new(FolderKind::Run, false)).unwrap_err()
        );
        assert!(e.contains("is inside"), "{e}");
    }

    #[test]
    fn the_manifest_says_what_a_folder_is_and_a_later_claim_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sweep");
        fs::create_dir(&out).unwrap();
        drop(claim(&out, &Claim::new(FolderKind::Sweep, false)).unwrap());
        let first = Manifest::read(&out).unwrap();
        assert_eq!(
            (first.kind.as_str(), first.schema),
            ("sweep", MANIFEST_SCHEMA)
        );
        assert_eq!(first.command, crate::util::command_line());
        fs::write(
            out.join(MANIFEST_FILE),
            serde_json::to_vec(&Manifest {
                command: "shallow sweep --first".into(),
                ..first
            })
            .unwrap(),
        )
        .unwrap();
        drop(claim(&out, &Claim::new(FolderKind::Sweep, false)).unwrap());
        assert_eq!(
            Manifest::read(&out).unwrap().command,
            "shallow sweep --first"
        );
        assert_eq!(kind_of(&out), Some(FolderKind::Sweep));
    }

    #[test]
    fn shards_share_a_folder_each_holding_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sweep");
        let shard = |label| Claim {
            shard: Some(label),
            ..Claim::new(FolderKind::Sweep, false)
        };
        let a = claim(&out, &shard("0/2")).unwrap();
        let b = claim(&out, &shard("1/2")).unwrap();
        let e = format!("{:#}", claim(&out, &shard("1/2")).unwrap_err());
        assert!(e.contains("--shard 1/2") && e.contains("same shard"), "{e}");
        assert!(
            e.contains(&format!("process {}", std::process::id())),
            "{e}"
        );
        drop(b);
        let b = claim(&out, &shard("1/2")).unwrap();
        drop((a, b));
        // Whole once the shards are gone; a shard is refused meanwhile.
        let whole = claim(&out, &Claim::new(FolderKind::Sweep, false)).unwrap();
        assert!(claim(&out, &shard("0/2")).is_err());
        drop(whole);
    }

    #[test]
    fn another_kind_is_refused_unless_forced_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("s");
        fs::create_dir(&out).unwrap();
        drop(claim(&out, &Claim::new(FolderKind::Sweep, false)).unwrap());
        fs::write(out.join("sweep.json"), "{}").unwrap();
        let files = || {
            let mut f: Vec<_> = fs::read_dir(&out)
                .unwrap()
                .flatten()
                .map(|e| (e.file_name(), fs::read(e.path()).unwrap()))
                .collect();
            f.sort();
            f
        };
        let before = files();
        let e = format!(
            "{:#}",
            claim(&out, &Claim::new(FolderKind::Search, false)).unwrap_err()
        );
        assert!(
            e.contains("holds a sweep (shallow sweep), and this command writes a search"),
            "{e}"
        );
        assert!(e.contains("--force"), "{e}");
        assert_eq!(before, files(), "a refusal wrote to the folder");
        drop(claim(&out, &Claim::new(FolderKind::Search, true)).unwrap());
        assert_eq!(kind_of(&out), Some(FolderKind::Search));
    }

    #[test]
    fn a_refused_or_unused_new_folder_is_removed_and_temporaries_go() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("new");
        drop(claim(&out, &Claim::new(FolderKind::Run, false)).unwrap());
        assert!(!out.exists(), "an unused new folder stays");
        fs::create_dir_all(out.join("run1")).unwrap();
        fs::write(out.join("run1/.result.json.abc123.tmp"), "half").unwrap();
        fs::write(out.join("run1/result.json"), "{}").unwrap();
        drop(claim(&out, &Claim::new(FolderKind::Sweep, false)).unwrap());
        assert!(!out.join("run1/.result.json.abc123.tmp").exists());
        assert!(out.join("run1/result.json").exists());
    }
}
