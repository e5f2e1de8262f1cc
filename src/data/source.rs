//! Which data set a folder holds, reading it whole and checked, and describing
//! it (`shallow data info`): CIFAR-10 and CIFAR-100 (binary or Python
//! version), MNIST and Fashion-MNIST (IDX files) and Keras-style `.npz` arrays.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::batch::{Batch, Format, BIN_FOLDER, PY_FOLDER};
use super::shape::{DataShape, ImageShape};
use super::{cifar10, cifar100, idx, npz};

/// The data sets shallow reads (`--dataset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// CIFAR-10: 32 x 32 colour images, 10 classes (binary or Python version).
    Cifar10,
    /// CIFAR-100: 32 x 32 colour images, 100 fine or 20 coarse classes.
    Cifar100,
    /// MNIST: 28 x 28 grey handwritten digits (IDX files).
    Mnist,
    /// Fashion-MNIST: 28 x 28 grey clothes, MNIST's file layout.
    FashionMnist,
    /// A `.npz` archive with `x_train`, `y_train`, `x_test`, `y_test`.
    Npz,
}

impl DatasetKind {
    /// The name people know it by, e.g. `CIFAR-100`.
    pub fn title(&self) -> &'static str {
        match self {
            DatasetKind::Cifar10 => "CIFAR-10",
            DatasetKind::Cifar100 => "CIFAR-100",
            DatasetKind::Mnist => "MNIST",
            DatasetKind::FashionMnist => "Fashion-MNIST",
            DatasetKind::Npz => ".npz arrays",
        }
    }
    /// Its `--dataset` value, e.g. `fashion-mnist`.
    pub fn flag(&self) -> &'static str {
        match self {
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Npz => "npz",
        }
    }
    /// The folder under `./data` that `shallow data fetch --dataset` fills.
    pub fn default_folder(&self) -> &'static str {
        match self {
            DatasetKind::Cifar10 => BIN_FOLDER,
            DatasetKind::Cifar100 => cifar100::BIN_FOLDER,
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Npz => "npz",
        }
    }
    /// Whether a left-right mirror image can show another class (digits).
    pub fn mirror_changes_class(&self) -> bool {
        *self == DatasetKind::Mnist
    }
}

/// Which of CIFAR-100's two labels to learn (`--labels`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Labels {
    /// The 100 classes.
    #[default]
    Fine,
    /// The 20 superclasses.
    Coarse,
}

/// Where the data is and how to read it: `--data`, `--dataset`, `--labels`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Source {
    /// Folder (or `.npz` file) given with `--data`.
    pub dir: Option<PathBuf>,
    /// The data set named with `--dataset` (else detected from the files).
    pub dataset: Option<DatasetKind>,
    /// CIFAR-100's labels (`--labels`); `None` when not given.
    pub labels: Option<Labels>,
}

impl Source {
    /// The source of `--data DIR` alone.
    pub fn dir(dir: &Path) -> Source {
        Source {
            dir: Some(dir.to_path_buf()),
            ..Default::default()
        }
    }
}

/// The whole data set as read from disk, checked, not yet converted.
#[derive(Clone, Debug)]
pub struct RawData {
    /// Folder (or file) the data was read from.
    pub dir: PathBuf,
    /// Which data set.
    pub kind: DatasetKind,
    /// How its files are written.
    pub format: Format,
    /// The training images, in order, in the files they came from (CIFAR-10's five batches).
    pub train: Vec<Batch>,
    /// The test images.
    pub test: Batch,
    /// One name per class.
    pub class_names: Vec<String>,
    /// Image layout, classes and training images.
    pub shape: DataShape,
    /// Seconds spent reading and checking.
    pub load_s: f64,
}

/// A reader's result: the training batches, the test batch, the class names
/// and the image layout.
pub(crate) struct Parts {
    pub train: Vec<Batch>,
    pub test: Batch,
    pub class_names: Vec<String>,
    pub image: ImageShape,
}

/// What a folder holds, from its file names: the data set, its format and
/// the folder (or file) of its files. `None`: nothing known.
fn detect(dir: &Path) -> Option<(DatasetKind, Format, PathBuf)> {
    use DatasetKind::*;
    if dir.is_file() && dir.extension().is_some_and(|e| e == "npz") {
        return Some((Npz, Format::Npz, dir.to_path_buf()));
    }
    let children = [
        (dir.to_path_buf(), None),
        (dir.join(BIN_FOLDER), Some((Cifar10, Format::Binary))),
        (dir.join(PY_FOLDER), Some((Cifar10, Format::Python))),
        (
            dir.join(cifar100::BIN_FOLDER),
            Some((Cifar100, Format::Binary)),
        ),
        (
            dir.join(cifar100::PY_FOLDER),
            Some((Cifar100, Format::Python)),
        ),
    ];
    for (cand, named) in children {
        let found = if cand.join("data_batch_1.bin").exists() {
            Some((Cifar10, Format::Binary))
        } else if cand.join("data_batch_1").exists() {
            Some((Cifar10, Format::Python))
        } else if cand.join("train.bin").exists() {
            Some((Cifar100, Format::Binary))
        } else if cand.join("train").is_file() && cand.join("meta").is_file() {
            Some((Cifar100, Format::Python))
        } else if idx::find(&cand, idx::TRAIN_IMAGES).is_some() {
            let fashion = cand.to_string_lossy().to_lowercase().contains("fashion");
            Some((if fashion { FashionMnist } else { Mnist }, Format::Idx))
        } else if let Some(file) = npz::find(&cand) {
            return Some((Npz, Format::Npz, file));
        } else {
            named.filter(|_| cand.is_dir())
        };
        if let Some((kind, format)) = found {
            return Some((kind, format, cand));
        }
    }
    None
}

/// The folder `dir` resolved for `dataset` (when named): the data set, its
/// format and the folder of its files. Without a name and without any known
/// file, CIFAR-10's binary version, so that the first missing file is named.
pub fn resolve(dir: &Path, dataset: Option<DatasetKind>) -> Result<(DatasetKind, Format, PathBuf)> {
    if !dir.exists() {
        bail!(
            "data folder {} does not exist: pass --data with the folder that holds the data set \
             (CIFAR-10's data_batch_1.bin, CIFAR-100's train.bin, MNIST's train-images-idx3-ubyte, \
             or a .npz file), set CIFAR10_DIR, or run `shallow data fetch`",
            dir.display()
        );
    }
    let found = detect(dir);
    match (dataset, found) {
        (None, Some(f)) => Ok(f),
        (None, None) if dir.is_dir() => Ok((DatasetKind::Cifar10, Format::Binary, dir.into())),
        (None, None) => bail!(
            "data path {} is not a folder or a .npz file: pass the folder that holds the data set",
            dir.display()
        ),
        // MNIST and Fashion-MNIST share their files: the name decides.
        (Some(want), Some((kind, format, at)))
            if want == kind
                || (format == Format::Idx
                    && matches!(want, DatasetKind::Mnist | DatasetKind::FashionMnist)) =>
        {
            Ok((want, format, at))
        }
        (Some(want), Some((kind, _, at))) => bail!(
            "--dataset {} but {} holds {}: drop --dataset, or point --data at the {} files",
            want.flag(),
            at.display(),
            kind.title(),
            want.title()
        ),
        (Some(want), None) => {
            let format = match want {
                DatasetKind::Cifar10 | DatasetKind::Cifar100 => Format::Binary,
                DatasetKind::Mnist | DatasetKind::FashionMnist => Format::Idx,
                DatasetKind::Npz => Format::Npz,
            };
            Ok((want, format, dir.to_path_buf()))
        }
    }
}

/// Where the data comes from, in order: `--data`, `$CIFAR10_DIR` (when no
/// other data set is named), `./data/<the data set's folder>`. `Ok(None)`
/// when none is given and the default is absent.
pub fn locate(source: &Source) -> Result<Option<PathBuf>> {
    if let Some(p) = &source.dir {
        return Ok(Some(p.clone()));
    }
    let cifar10 = source.dataset.is_none_or(|d| d == DatasetKind::Cifar10);
    if let Some(env) = std::env::var_os("CIFAR10_DIR").filter(|v| !v.is_empty() && cifar10) {
        return Ok(Some(PathBuf::from(env)));
    }
    let folder = source
        .dataset
        .unwrap_or(DatasetKind::Cifar10)
        .default_folder();
    let default = Path::new("data").join(folder);
    Ok(default.exists().then_some(default))
}

/// Locates and loads the data, or explains how to get it.
pub fn load(source: &Source) -> Result<RawData> {
    match locate(source)? {
        Some(dir) => RawData::load_as(&dir, source),
        None => {
            let kind = source.dataset.unwrap_or(DatasetKind::Cifar10);
            let flag = source
                .dataset
                .map(|d| format!(" --dataset {}", d.flag()))
                .unwrap_or_default();
            bail!(
                "no {} data found: pass --data DIR, set CIFAR10_DIR, or run `shallow data fetch{flag}` \
                 to download it into ./data/{}",
                kind.title(),
                kind.default_folder()
            )
        }
    }
}

/// The sizes of the data `source` names, for planning before the data is
/// read: CIFAR-10's without reading (its readers insist on them), any
/// other data set's by reading it; CIFAR-10's when there is no data yet (it
/// is fetched, or its absence explained, when the data is loaded).
pub fn probe(source: &Source) -> Result<DataShape> {
    let Some(dir) = locate(source)? else {
        return Ok(DataShape::default());
    };
    if !dir.exists() {
        return Ok(DataShape::default());
    }
    let (kind, _, _) = resolve(&dir, source.dataset)?;
    if kind == DatasetKind::Cifar10 && source.labels.is_none() {
        return Ok(DataShape::default());
    }
    Ok(RawData::load_as(&dir, source)?.shape)
}

impl RawData {
    /// Reads and checks the data set in `dir` (any format, detected).
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_as(dir, &Source::dir(dir))
    }

    /// Reads and checks the data set in `dir`, as `source` names it.
    pub fn load_as(dir: &Path, source: &Source) -> Result<Self> {
        let t0 = Instant::now();
        let (kind, format, at) = resolve(dir, source.dataset)?;
        if source.labels.is_some() && kind != DatasetKind::Cifar100 {
            bail!(
                "--labels chooses CIFAR-100's fine or coarse classes, and {} holds {}: drop --labels",
                at.display(),
                kind.title()
            );
        }
        let parts = match kind {
            DatasetKind::Cifar10 => cifar10::read(&at, format)?,
            DatasetKind::Cifar100 => {
                cifar100::read(&at, format, source.labels.unwrap_or_default())?
            }
            DatasetKind::Mnist | DatasetKind::FashionMnist => idx::read(&at, kind)?,
            DatasetKind::Npz => npz::read(&at)?,
        };
        let shape = DataShape {
            image: parts.image,
            classes: parts.class_names.len(),
            train_images: parts.train.iter().map(|b| b.len()).sum(),
        };
        Ok(RawData {
            dir: at,
            kind,
            format,
            train: parts.train,
            test: parts.test,
            class_names: parts.class_names,
            shape,
            load_s: t0.elapsed().as_secs_f64(),
        })
    }

    /// Whether a left-right mirror image can show another class: for MNIST,
    /// and for grey `.npz` images (digits, most likely).
    pub fn mirror_changes_class(&self) -> bool {
        self.kind.mirror_changes_class()
            || (self.kind == DatasetKind::Npz && self.shape.image.channels == 1)
    }

    /// Refuses configurations planned for other data (another image size or
    /// class count), and flips where a mirror image shows another class;
    /// says when flips meet grey images that may be digits.
    pub fn check_fits(&self, configs: &[(String, DataShape, bool)]) -> Result<()> {
        for (name, planned, flips) in configs {
            if (planned.image, planned.classes) != (self.shape.image, self.shape.classes) {
                bail!(
                    "{name} was planned for images of {} in {} classes, and {} holds {} in {}: \
                     plan it again with this --data (a resume needs the data it started on)",
                    planned.image.describe(),
                    planned.classes,
                    self.dir.display(),
                    self.shape.image.describe(),
                    self.shape.classes
                );
            }
            if *flips && self.kind.mirror_changes_class() {
                bail!(
                    "{name} flips images (--flip or --tta), and a mirrored digit can show another class \
                     (a mirrored 2 or 7 is no digit): drop --flip and --tta on {}",
                    self.kind.title()
                );
            }
        }
        if configs.iter().any(|c| c.2) && self.mirror_changes_class() {
            eprintln!(
                "warning: flips on grey images: if they are digits or letters, a mirror image can show another class"
            );
        }
        Ok(())
    }

    /// Summary for `shallow data info`.
    pub fn info(&self) -> Info {
        let k = self.shape.classes;
        let files = self
            .train
            .iter()
            .chain(std::iter::once(&self.test))
            .map(|b| FileInfo {
                name: b.name.clone(),
                n: b.len(),
                class_counts: b.class_counts(k),
            })
            .collect();
        let (d, plane) = (self.shape.pixels(), self.shape.image.plane());
        let mut sums = vec![0u64; self.shape.image.channels];
        let mut n = 0u64;
        for b in &self.train {
            for img in b.pixels.chunks_exact(d) {
                for (ch, plane) in img.chunks_exact(plane).enumerate() {
                    sums[ch] += plane.iter().map(|&v| v as u64).sum::<u64>();
                }
            }
            n += (b.len() * plane) as u64;
        }
        Info {
            dir: self.dir.display().to_string(),
            dataset: self.kind.title().to_string(),
            format: self.format,
            image: self.shape.image,
            files,
            class_names: self.class_names.clone(),
            train_mean: sums.iter().map(|&s| s as f64 / n.max(1) as f64).collect(),
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
    /// Images per class, one entry per class.
    pub class_counts: Vec<usize>,
}

/// What `shallow data info` prints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Info {
    /// Folder read.
    pub dir: String,
    /// Data set, e.g. `CIFAR-10`.
    pub dataset: String,
    /// File format.
    pub format: Format,
    /// Image layout.
    pub image: ImageShape,
    /// One entry per batch file.
    pub files: Vec<FileInfo>,
    /// Class names.
    pub class_names: Vec<String>,
    /// Mean of the training images per channel, 0-255 scale (R, G, B or grey).
    pub train_mean: Vec<f64>,
    /// Seconds to read and check the files.
    pub load_s: f64,
}

impl std::fmt::Display for Info {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let k = self.class_names.len();
        writeln!(
            f,
            "{} ({:?} format) in {}: images {}, {k} classes",
            self.dataset,
            self.format,
            self.dir,
            self.image.describe()
        )?;
        // Up to 10 classes get a column each; more get their smallest and largest count.
        write!(f, "{:<28} {:>6}", "file", "images")?;
        if k <= 10 {
            for name in &self.class_names {
                let short: String = name.chars().take(6).collect();
                write!(f, " {short:>6}")?;
            }
        } else {
            write!(f, "  per class (fewest-most)")?;
        }
        writeln!(f)?;
        for file in &self.files {
            write!(f, "{:<28} {:>6}", file.name, file.n)?;
            if k <= 10 {
                for c in &file.class_counts {
                    write!(f, " {c:>6}")?;
                }
            } else {
                let lo = file.class_counts.iter().min().unwrap_or(&0);
                let hi = file.class_counts.iter().max().unwrap_or(&0);
                write!(f, "  {lo}-{hi}")?;
            }
            writeln!(f)?;
        }
        let m = &self.train_mean;
        if m.len() == 3 {
            writeln!(
                f,
                "training mean (0-255): R {:.2}  G {:.2}  B {:.2}",
                m[0], m[1], m[2]
            )?;
        } else {
            let v: Vec<String> = m.iter().map(|v| format!("{v:.2}")).collect();
            writeln!(f, "training mean (0-255): {}", v.join("  "))?;
        }
        write!(f, "read and checked in {:.3} s", self.load_s)
    }
}
