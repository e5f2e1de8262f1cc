//! The CIFAR-10 release's shapes and one batch file's contents: what the
//! readers (binary, pickle) produce and everything above consumes.

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

/// Which release of CIFAR-10 a folder holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `data_batch_N.bin`: 10,000 records of 1 label byte + 3,072 pixel bytes.
    Binary,
    /// `data_batch_N`: Python pickles of a dict with `data` (10000 x 3072 uint8) and `labels`.
    Python,
}

/// One batch file: labels and pixels.
#[derive(Clone, Debug)]
pub struct Batch {
    /// File name, e.g. `data_batch_1.bin`.
    pub name: String,
    /// One label 0..9 per image.
    pub labels: Vec<u8>,
    /// Pixels, 3072 x n column-major: image j is `pixels[j*3072..(j+1)*3072]`.
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
    /// Images per class.
    pub fn class_counts(&self) -> [usize; CLASSES] {
        let mut c = [0; CLASSES];
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
            "{}: {} bytes, larger than a batch file (at most {max_bytes}): it is not a CIFAR-10 batch; fetch it again",
            path.display(),
            meta.len()
        );
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(max_bytes + 1).read_to_end(&mut bytes))
        .with_context(|| format!("{}: cannot read the file", path.display()))?;
    if bytes.len() as u64 > max_bytes {
        bail!(
            "{}: grew past {max_bytes} bytes while being read: it is not a CIFAR-10 batch",
            path.display()
        );
    }
    Ok((name, bytes))
}
