//! CIFAR-10 on disk: finding it, reading and checking it (binary and Python
//! versions), fetching it, and turning it into standardised, optionally
//! whitened splits. This file only declares and re-exports.

pub mod augment;
pub mod batch;
pub mod binary;
pub mod cifar10;
pub mod fetch;
pub mod generated;
pub mod pickle;
pub mod split;
pub mod whiten;

pub use augment::{Augment, Pad};
pub use batch::{
    Batch, Format, BIN_FOLDER, CLASSES, DEFAULT_CLASS_NAMES, PIXELS, PY_FOLDER, RECORDS_PER_FILE,
};
pub use cifar10::{load, locate, resolve_dir, Cifar10, FileInfo, Info};
pub use split::{DataSet, Preprocess, Split, SplitKind, SplitSpec};
pub use whiten::Whitening;
