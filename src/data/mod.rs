//! Image data sets on disk: finding them, reading and checking them
//! (CIFAR-10 and CIFAR-100 binary and Python versions, MNIST's IDX files,
//! `.npz` arrays), fetching them, and turning them into standardised,
//! optionally whitened splits. This file only declares and re-exports.

pub mod augment;
pub mod batch;
pub mod binary;
pub mod cifar10;
pub mod cifar100;
pub mod fetch;
pub mod generated;
pub mod idx;
pub mod npz;
pub mod pickle;
pub mod shape;
pub mod source;
pub mod split;
pub mod whiten;

pub use augment::{Augment, Pad};
pub use batch::{
    Batch, Format, BIN_FOLDER, CLASSES, DEFAULT_CLASS_NAMES, PIXELS, PY_FOLDER, RECORDS_PER_FILE,
};
pub use shape::{DataShape, ImageShape};
pub use source::{
    load, locate, probe, resolve, DatasetKind, FileInfo, Info, Labels, RawData, Source,
};
pub use split::{DataSet, Preprocess, Split, SplitKind, SplitSpec};
pub use whiten::Whitening;
