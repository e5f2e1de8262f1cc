//! The whole release on disk: finding its folder, reading and checking every
//! file (binary or Python version), and describing it (`shallow data info`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::batch::{Batch, Format, BIN_FOLDER, PIXELS, PY_FOLDER};
use super::{binary, pickle};

/// The whole data set as read from disk, checked, not yet converted.
#[derive(Clone, Debug)]
pub struct Cifar10 {
    /// Folder the files were read from.
    pub dir: PathBuf,
    /// Release format.
    pub format: Format,
    /// The five training batches, in order.
    pub train: Vec<Batch>,
    /// The test batch.
    pub test: Batch,
    /// The ten class names.
    pub class_names: Vec<String>,
    /// Seconds spent reading and checking.
    pub load_s: f64,
}

/// Resolves a folder given by the user to the folder that holds the batch files:
/// the folder itself, or its `cifar-10-batches-bin` / `cifar-10-batches-py` child.
pub fn resolve_dir(dir: &Path) -> Result<(PathBuf, Format)> {
    if !dir.exists() {
        bail!(
            "data folder {} does not exist: pass --data with the folder that holds data_batch_1.bin, \
             set CIFAR10_DIR, or run `shallow data fetch`",
            dir.display()
        );
    }
    if !dir.is_dir() {
        bail!(
            "data path {} is not a folder: pass the folder that holds data_batch_1.bin",
            dir.display()
        );
    }
    for (cand, fmt) in [
        (dir.to_path_buf(), None),
        (dir.join(BIN_FOLDER), Some(Format::Binary)),
        (dir.join(PY_FOLDER), Some(Format::Python)),
    ] {
        if cand.join("data_batch_1.bin").exists() || (fmt == Some(Format::Binary) && cand.is_dir())
        {
            return Ok((cand, Format::Binary));
        }
        if cand.join("data_batch_1").exists() || (fmt == Some(Format::Python) && cand.is_dir()) {
            return Ok((cand, Format::Python));
        }
    }
    // A folder without any batch: report the first missing binary file.
    Ok((dir.to_path_buf(), Format::Binary))
}

/// Where the data comes from, in order: `explicit` (`--data`), `$CIFAR10_DIR`,
/// `./data/cifar-10-batches-bin`. `Ok(None)` when none is given and the default is absent.
pub fn locate(explicit: Option<&Path>) -> Result<Option<PathBuf>> {
    if let Some(p) = explicit {
        return Ok(Some(p.to_path_buf()));
    }
    if let Some(env) = std::env::var_os("CIFAR10_DIR").filter(|v| !v.is_empty()) {
        return Ok(Some(PathBuf::from(env)));
    }
    let default = Path::new("data").join(BIN_FOLDER);
    Ok(default.exists().then_some(default))
}

/// Locates and loads the data, or explains how to get it.
pub fn load(explicit: Option<&Path>) -> Result<Cifar10> {
    match locate(explicit)? {
        Some(dir) => Cifar10::load(&dir),
        None => bail!(
            "no CIFAR-10 data found: pass --data DIR, set CIFAR10_DIR, or run `shallow data fetch` \
             to download it into ./data/{BIN_FOLDER}"
        ),
    }
}

impl Cifar10 {
    /// Reads and checks all six batch files of the folder (either release).
    pub fn load(dir: &Path) -> Result<Self> {
        let t0 = Instant::now();
        let (dir, format) = resolve_dir(dir)?;
        let names: Vec<String> = (1..=5)
            .map(|i| format!("data_batch_{i}"))
            .chain(std::iter::once("test_batch".to_string()))
            .map(|n| {
                if format == Format::Binary {
                    format!("{n}.bin")
                } else {
                    n
                }
            })
            .collect();
        let mut batches: Vec<Batch> = names
            .iter()
            .map(|n| {
                let p = dir.join(n);
                match format {
                    Format::Binary => binary::read_batch(&p),
                    Format::Python => pickle::read_batch(&p),
                }
            })
            .collect::<Result<_>>()?;
        let test = batches.pop().expect("six batches");
        let class_names = binary::read_class_names(&dir);
        Ok(Cifar10 {
            dir,
            format,
            train: batches,
            test,
            class_names,
            load_s: t0.elapsed().as_secs_f64(),
        })
    }

    /// Summary for `shallow data info`.
    pub fn info(&self) -> Info {
        let files = self
            .train
            .iter()
            .chain(std::iter::once(&self.test))
            .map(|b| FileInfo {
                name: b.name.clone(),
                n: b.len(),
                class_counts: b.class_counts().to_vec(),
            })
            .collect();
        let mut sums = [0u64; 3];
        let mut n = 0u64;
        for b in &self.train {
            for img in b.pixels.chunks_exact(PIXELS) {
                for (ch, plane) in img.chunks_exact(1024).enumerate() {
                    sums[ch] += plane.iter().map(|&v| v as u64).sum::<u64>();
                }
            }
            n += b.len() as u64 * 1024;
        }
        let mean = sums.map(|s| s as f64 / n.max(1) as f64);
        Info {
            dir: self.dir.display().to_string(),
            format: self.format,
            files,
            class_names: self.class_names.clone(),
            train_mean_rgb: mean.to_vec(),
            load_s: self.load_s,
        }
    }
}

/// Per-file summary.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileInfo {
    /// File name.
    pub name: String,
    /// Number of images.
    pub n: usize,
    /// Images per class, 10 entries.
    pub class_counts: Vec<usize>,
}

/// What `shallow data info` prints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Info {
    /// Folder read.
    pub dir: String,
    /// Release format.
    pub format: Format,
    /// One entry per batch file.
    pub files: Vec<FileInfo>,
    /// Class names.
    pub class_names: Vec<String>,
    /// Mean of the five training batches per channel, 0-255 scale.
    pub train_mean_rgb: Vec<f64>,
    /// Seconds to read and check the files.
    pub load_s: f64,
}

impl std::fmt::Display for Info {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "CIFAR-10 ({:?} version) in {}", self.format, self.dir)?;
        write!(f, "{:<18} {:>6}", "file", "images")?;
        for name in &self.class_names {
            write!(f, " {:>6}", &name[..name.len().min(6)])?;
        }
        writeln!(f)?;
        for file in &self.files {
            write!(f, "{:<18} {:>6}", file.name, file.n)?;
            for c in &file.class_counts {
                write!(f, " {c:>6}")?;
            }
            writeln!(f)?;
        }
        let m = &self.train_mean_rgb;
        writeln!(
            f,
            "training mean (0-255): R {:.2}  G {:.2}  B {:.2}",
            m[0], m[1], m[2]
        )?;
        write!(f, "read and checked in {:.3} s", self.load_s)
    }
}
