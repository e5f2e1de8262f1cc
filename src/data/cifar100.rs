//! CIFAR-100 on disk: `train` (50,000 images) and `test` (10,000), each image
//! with a coarse label (20 superclasses) and a fine one (100 classes). The
//! binary version's records are 1 coarse + 1 fine label byte + 3,072 pixels;
//! the Python version pickles `data`, `fine_labels` and `coarse_labels`, and
//! its `meta` file the class names.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::batch::{read_batch_file, Batch, Format, PIXELS};
use super::shape::ImageShape;
use super::source::{Labels, Parts};
use super::{binary, pickle};

/// The folder the official binary tarball extracts to.
pub const BIN_FOLDER: &str = "cifar-100-binary";
/// The folder the official Python tarball extracts to.
pub const PY_FOLDER: &str = "cifar-100-python";
/// Fine classes.
pub const FINE: usize = 100;
/// Coarse classes (superclasses).
pub const COARSE: usize = 20;
/// Training images in the official release (a file may hold any number).
pub const TRAIN_IMAGES: usize = 50_000;

/// What a CIFAR-100 folder holds, for messages about a missing file.
const HINT: &str = "a CIFAR-100 folder holds train.bin, test.bin, fine_label_names.txt and \
                    coarse_label_names.txt (binary version) or train, test and meta (Python version); \
                    run `shallow data fetch --dataset cifar100`";

/// Reads and checks the training and test files of the folder `dir`,
/// keeping the `labels` asked for.
pub(crate) fn read(dir: &Path, format: Format, labels: Labels) -> Result<Parts> {
    let classes = match labels {
        Labels::Fine => FINE,
        Labels::Coarse => COARSE,
    };
    let (train, test, names) = match format {
        Format::Binary => {
            let keep = if labels == Labels::Coarse { 0 } else { 1 };
            let read = |name: &str, n: usize| -> Result<Batch> {
                let path = dir.join(name);
                let (file, bytes) = read_batch_file(&path, HINT, (n * (PIXELS + 2)) as u64)?;
                binary::parse_records(&file, &bytes, &[COARSE, FINE], keep, None)
                    .with_context(|| format!("{}", path.display()))
            };
            let names_file = match labels {
                Labels::Fine => "fine_label_names.txt",
                Labels::Coarse => "coarse_label_names.txt",
            };
            let names = binary::read_names(&dir.join(names_file), classes);
            (
                read("train.bin", TRAIN_IMAGES)?,
                read("test.bin", TRAIN_IMAGES)?,
                names,
            )
        }
        _ => {
            let key = match labels {
                Labels::Fine => "fine",
                Labels::Coarse => "coarse",
            };
            let read = |name: &str, n: usize| -> Result<Batch> {
                let path = dir.join(name);
                let (file, bytes) =
                    read_batch_file(&path, HINT, (n * PIXELS * 2 + (1 << 20)) as u64)?;
                parse_python(&file, &bytes, key, classes)
                    .with_context(|| format!("{}: not a CIFAR-100 Python file", path.display()))
            };
            let meta = dir.join("meta");
            let (_, bytes) = read_batch_file(&meta, HINT, 1 << 20)?;
            let names = pickle::string_list(&bytes, &format!("{key}_label_names"))
                .with_context(|| format!("{}: not CIFAR-100's meta file", meta.display()))?;
            if names.len() != classes {
                bail!(
                    "{}: {} {key} class names, expected {classes}",
                    meta.display(),
                    names.len()
                );
            }
            (
                read("train", TRAIN_IMAGES)?,
                read("test", TRAIN_IMAGES)?,
                Some(names),
            )
        }
    };
    let class_names = names.unwrap_or_else(|| (0..classes).map(|k| format!("class {k}")).collect());
    Ok(Parts {
        train: vec![train],
        test,
        class_names,
        image: ImageShape::CIFAR,
    })
}

/// One Python-version file: `data` of n x 3072 bytes and `{key}_labels`.
fn parse_python(name: &str, bytes: &[u8], key: &str, classes: usize) -> Result<Batch> {
    let images = pickle::parse_labelled(bytes, &format!("{key}_labels"), classes)?;
    let n = images.shape.first().copied().unwrap_or(0);
    if images.shape != [n, PIXELS] || images.pixels.len() != n * PIXELS || n == 0 {
        bail!(
            "`data` has shape {:?} ({} bytes), expected [n, {PIXELS}]: the file is truncated or not CIFAR-100's",
            images.shape,
            images.pixels.len()
        );
    }
    if images.labels.len() != n {
        bail!(
            "`{key}_labels` has {} entries, expected {n}",
            images.labels.len()
        );
    }
    Ok(Batch {
        name: name.to_string(),
        labels: images.labels,
        pixels: images.pixels,
    })
}
