//! Small shared helpers: atomic file writes and seeds.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Standard output was closed by its reader (`shallow ... | head -1`): the
/// command ends quietly, as other Unix tools do (`main` exits with 141, the
/// status of a process ended by SIGPIPE).
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Writes `text` to standard output and flushes it: a closed pipe is
/// [`StdoutClosed`], any other failure (a full disk, `>/dev/full`) an error
/// that says so; never the panic of `println!`.
pub fn write_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::anyhow!(
            "cannot write to standard output: {e}; redirect it to a file on a disk with free space"
        )),
    }
}

/// `println!` through [`write_stdout`]: evaluates to a `Result` to `?`.
#[macro_export]
macro_rules! outln {
    ($($t:tt)*) => {
        $crate::util::write_stdout(&format!("{}\n", format_args!($($t)*)))
    };
}

/// `print!` through [`write_stdout`]: evaluates to a `Result` to `?`.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => {
        $crate::util::write_stdout(&format!($($t)*))
    };
}

/// Writes `bytes` to `path` atomically: a uniquely named temporary file in the
/// same folder (`tempfile`, so two threads or processes writing one path never
/// share a temporary), flushed to disk, then renamed over `path`. A crash never
/// leaves `path` truncated, and a failed write leaves no temporary behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let res = (|| -> std::io::Result<()> {
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        // What `File::create` gives (0666 less the umask), not tempfile's
        // private 0600: results are shared with a group on clusters.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(fs::Permissions::from_mode(0o666));
        }
        let mut tmp = builder.tempfile_in(dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    })();
    res.with_context(|| {
        format!(
            "cannot write {}: check that the folder exists and is writable",
            path.display()
        )
    })
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    write_atomic(path, s.as_bytes())
}

/// Reads a number that JSON wrote as `null`: serde_json writes NaN and the
/// infinities (a diverged run's cost) so.
pub fn nan_from_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    use serde::Deserialize;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Creates `dir` (and parents), with an error that names it and suggests a fix.
pub fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create output folder {}: choose a writable --out folder",
            dir.display()
        )
    })?;
    // Probe writability now, so a long run does not fail at its end.
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    fs::write(&probe, b"").with_context(|| {
        format!(
            "output folder {} is not writable: choose another --out",
            dir.display()
        )
    })?;
    let _ = fs::remove_file(probe);
    Ok(())
}

/// A Markdown table: the one renderer of every table shallow writes
/// (results.md, summaries, report.md). A column whose cells are all numbers
/// (or `-`, empty) is right-aligned.
pub fn markdown_table<S: AsRef<str>>(header: &[S], rows: &[Vec<String>]) -> String {
    let numeric = |c: usize| {
        rows.iter().all(|r| {
            let v = r.get(c).map_or("", |v| v.trim());
            v.is_empty()
                || v == "-"
                || v.trim_end_matches('%')
                    .trim_matches('*')
                    .parse::<f64>()
                    .is_ok()
        }) && rows
            .iter()
            .any(|r| r.get(c).is_some_and(|v| !v.trim().is_empty()))
    };
    let cell = |v: &str| v.replace('|', "\\|");
    let mut s = String::new();
    let head: Vec<String> = header.iter().map(|h| cell(h.as_ref())).collect();
    s.push_str(&format!("| {} |\n|", head.join(" | ")));
    for c in 0..header.len() {
        s.push_str(if numeric(c) { "---:|" } else { "---|" });
    }
    s.push('\n');
    for r in rows {
        let cells: Vec<String> = (0..header.len())
            .map(|c| cell(r.get(c).map_or("", |v| v.as_str())))
            .collect();
        s.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    s
}

/// The same table as [`markdown_table`], for a terminal: columns padded to
/// their widest cell, numbers right-aligned, no Markdown syntax.
pub fn text_table<S: AsRef<str>>(header: &[S], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let cell = |r: &Vec<String>, c: usize| r.get(c).map_or(String::new(), |v| v.clone());
    let numeric = |c: usize| {
        rows.iter().all(|r| {
            let v = cell(r, c);
            let v = v.trim();
            v.is_empty() || v == "-" || v.trim_end_matches('%').parse::<f64>().is_ok()
        })
    };
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| cell(r, c).chars().count())
                .chain(std::iter::once(header[c].as_ref().chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let right: Vec<bool> = (0..cols).map(numeric).collect();
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if right[c] {
                    format!("{v:>w$}", w = widths[c])
                } else {
                    format!("{v:<w$}", w = widths[c])
                }
            })
            .collect();
        parts.join("  ").trim_end().to_string() + "\n"
    };
    let mut s = line(header.iter().map(|h| h.as_ref().to_string()).collect());
    for r in rows {
        s.push_str(&line((0..cols).map(|c| cell(r, c)).collect()));
    }
    s
}

/// [`text_table`] made to fit `width` columns: while it is wider, the column
/// named first in `drop_order` (header names) that is still there is left out
/// whole, so no line wraps and no number is cut.
pub fn text_table_fit(
    header: &[String],
    rows: &[Vec<String>],
    width: usize,
    drop_order: &[&str],
) -> String {
    let mut keep: Vec<usize> = (0..header.len()).collect();
    let render = |keep: &[usize]| {
        let h: Vec<String> = keep.iter().map(|&c| header[c].clone()).collect();
        let r: Vec<Vec<String>> = rows
            .iter()
            .map(|row| {
                keep.iter()
                    .map(|&c| row.get(c).cloned().unwrap_or_default())
                    .collect()
            })
            .collect();
        text_table(&h, &r)
    };
    let mut table = render(&keep);
    for name in drop_order {
        let fits = table.lines().all(|l| l.chars().count() <= width);
        if fits {
            break;
        }
        if let Some(pos) = keep.iter().position(|&c| header[c] == *name) {
            keep.remove(pos);
            table = render(&keep);
        }
    }
    table
}

/// Columns of the terminal on standard output, if it is one.
pub fn terminal_width() -> Option<usize> {
    console::Term::stdout()
        .size_checked()
        .map(|(_, w)| w as usize)
}

/// This process's command line, as typed (arguments with spaces or shell
/// characters in quotes).
pub fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if a.is_empty() || a.contains([' ', '"', '\'', '*', '$']) {
                format!("'{a}'")
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// SplitMix64 mixing step: turns any 64-bit value into a well-spread one.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Derives a seed from a base seed and a text key (e.g. a configuration's
/// hyperparameters), independent of scheduling and grouping.
pub fn derive_seed(base: u64, key: &str) -> u64 {
    // FNV-1a over the key, then mixed with the base seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix64(base ^ mix64(h))
}

/// The CPU model from /proc/cpuinfo, or "unknown".
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The date and time now, e.g. `2026-12-02 18:40 UTC`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// A number for titles, tables and names, rounded to 3 significant digits:
/// `0.00225`, `0.1`, `1e-5`, `2.25e-5`, `900`, `49000`. Whole numbers stay whole.
pub fn short_number(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return "0".into();
    }
    if v.fract() == 0.0 && v.abs() < 1e9 {
        return format!("{}", v as i64);
    }
    let a = v.abs();
    if (1e-3..1e4).contains(&a) {
        // Three significant digits, trailing zeros dropped.
        let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.decimals$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        return s;
    }
    let s = format!("{v:.2e}");
    // 2.50e-5 -> 2.5e-5, 1.00e-5 -> 1e-5
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let m = if m.contains('.') {
        m.trim_end_matches('0').trim_end_matches('.')
    } else {
        m
    };
    format!("{m}e{e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_drop_whole_columns_to_fit() {
        let header: Vec<String> = ["name", "val %", "seconds", "status"]
            .map(String::from)
            .to_vec();
        let rows = vec![vec![
            "a-long-run-name".into(),
            "51.90".into(),
            "11.2".into(),
            "done".into(),
        ]];
        let full = text_table_fit(&header, &rows, 200, &["status", "seconds"]);
        assert!(full.contains("status") && full.contains("11.2"));
        let narrow = text_table_fit(&header, &rows, 30, &["status", "seconds"]);
        assert!(
            !narrow.contains("status") && !narrow.contains("11.2"),
            "{narrow}"
        );
        assert!(narrow.contains("51.90") && narrow.lines().all(|l| l.chars().count() <= 30));
    }

    #[test]
    fn short_numbers_keep_three_significant_digits() {
        for (v, want) in [
            (0.0022512345, "0.00225"),
            (0.1, "0.1"),
            (1e-5, "1e-5"),
            (2.2512e-5, "2.25e-5"),
            (900.0, "900"),
            (0.01, "0.01"),
            (1.23456, "1.23"),
            (0.0, "0"),
            (12345.6, "1.23e4"),
        ] {
            assert_eq!(short_number(v), want, "{v}");
        }
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(
                mode & 0o044,
                0o044,
                "readable by group and others (mode {mode:o})"
            );
        }
    }

    /// Threads writing one path at once each use their own temporary: every
    /// write succeeds, the file holds one whole write, and no temporary is left.
    #[test]
    fn concurrent_writes_to_one_path_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("results.md");
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let p = &p;
                s.spawn(move || {
                    let body = vec![b'a' + t; 100_000];
                    for _ in 0..20 {
                        write_atomic(p, &body).unwrap();
                    }
                });
            }
        });
        let got = fs::read(&p).unwrap();
        assert_eq!(got.len(), 100_000);
        assert!(got.iter().all(|&b| b == got[0]), "a torn write");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn unwritable_folder_is_a_clear_error() {
        let err = write_atomic(Path::new("/nonexistent-dir/x.json"), b"x").unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent-dir/x.json"));
    }

    #[test]
    fn markdown_tables_align_numbers_right_and_escape_pipes() {
        let t = markdown_table(
            &["run", "acc %"],
            &[
                vec!["a|b".into(), "51.20".into()],
                vec!["c".into(), "-".into()],
            ],
        );
        assert_eq!(
            t,
            "| run | acc % |\n|---|---:|\n| a\\|b | 51.20 |\n| c | - |\n"
        );
    }

    #[test]
    fn text_tables_align_columns_without_markdown() {
        let t = text_table(
            &["run", "acc %"],
            &[
                vec!["long name".into(), "5.2".into()],
                vec!["b".into(), "51.20".into()],
            ],
        );
        assert_eq!(t, "run        acc %\nlong name    5.2\nb          51.20\n");
    }

    #[test]
    fn seeds_depend_on_key_and_base() {
        assert_ne!(derive_seed(1, "lambda=0.1"), derive_seed(1, "lambda=0.01"));
        assert_ne!(derive_seed(1, "a"), derive_seed(2, "a"));
        assert_eq!(derive_seed(7, "a"), derive_seed(7, "a"));
    }
}
