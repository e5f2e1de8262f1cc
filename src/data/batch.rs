//! The CIFAR-10 release's constants and one batch of images: what every
//! reader (CIFAR binary and pickle, IDX, .npz) produces and everything above consumes.

use std::path::Path;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Pixels per image: 32 x 32 x 3, red plane then green then blue, row-major.
pub const PIXELS: usize = 3072;
/// Images per CIFAR-10 batch file.
pub const RECORDS_PER_FILE: usize = 10_000;
/// Number of classes.
pub const CLASSES: usize = 10;
/// Class names used when the data folder has no `batches.meta.txt`.
pub const DEFAULT_CLASS_NAMES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
/// The folder the official binary tarball extracts to.
pub const BIN_FOLDER: &str = "cifar-10-batches-bin";
/// The folder the official Python tarball extracts to.
pub const PY_FOLDER: &str = "cifar-10-batches-py";

/// How a data set's files are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// CIFAR's binary version: records of label bytes + 3,072 pixel bytes
    /// (`data_batch_N.bin`; CIFAR-100's `train.bin`, `test.bin`).
    Binary,
    /// CIFAR's Python version: pickles of a dict with `data` (n x 3072 uint8)
    /// and its labels.
    Python,
    /// MNIST's IDX files (`train-images-idx3-ubyte`, gzipped or not).
    Idx,
    /// A NumPy `.npz` archive with `x_train`, `y_train`, `x_test`, `y_test`.
    Npz,
}

/// One batch file: labels and pixels.
#[derive(Clone, Debug)]
pub struct Batch {
    /// File name, e.g. `data_batch_1.bin`.
    pub name: String,
    /// One label 0..K-1 per image.
    pub labels: Vec<u8>,
    /// Pixels, d x n column-major: image j is `pixels[j*d..(j+1)*d]`, in the
    /// plane-after-plane order of [`super::ImageShape`].
    pub pixels: Vec<u8>,
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Images per class, `classes` entries.
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut c = vec![0; classes];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }
}

/// Reads a batch file whole: (its file name, its bytes). A missing file's error
/// says what the folder should hold (`missing_hint`). Only a regular file of
/// at most `max_bytes` is read (after links): a FIFO, a device such as
/// /dev/zero, or a file far larger than a batch is refused before reading.
/// A `.gz` file is unpacked, to at most `max_bytes` too.
pub(crate) fn read_batch_file(
    path: &Path,
    missing_hint: &str,
    max_bytes: u64,
) -> Result<(String, Vec<u8>)> {
    use anyhow::Context;
    use std::io::Read;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Ok(meta) = std::fs::metadata(path) else {
        bail!("{}: file missing; {missing_hint}", path.display());
    };
    if !meta.is_file() {
        bail!(
            "{}: not a regular file (a folder, pipe or device); {missing_hint}",
            path.display()
        );
    }
    if meta.len() > max_bytes {
        bail!(
            "{}: {} bytes, larger than a batch file (at most {max_bytes}): it is not a data set's batch; fetch it again",
            path.display(),
            meta.len()
        );
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    let file = std::fs::File::open(path)
        .with_context(|| format!("{}: cannot read the file", path.display()))?;
    let read = if name.ends_with(".gz") {
        flate2::read::GzDecoder::new(file)
            .take(max_bytes + 1)
            .read_to_end(&mut bytes)
    } else {
        file.take(max_bytes + 1).read_to_end(&mut bytes)
    };
    read.with_context(|| {
        format!(
            "{}: cannot read the file (a truncated or corrupt archive?)",
            path.display()
        )
    })?;
    if bytes.len() as u64 > max_bytes {
        bail!(
            "{}: grew past {max_bytes} bytes while being read: it is not a data set's batch",
            path.display()
        );
    }
    Ok((name, bytes))
}
