//! CIFAR-10 on disk: the five training batches and the test batch, in the
//! binary or the Python version, read whole and checked.

use std::path::Path;

use anyhow::Result;

use super::batch::{Batch, Format};
use super::shape::ImageShape;
use super::source::Parts;
use super::{binary, pickle};

/// Reads and checks all six batch files of the folder `dir` (either release).
pub(crate) fn read(dir: &Path, format: Format) -> Result<Parts> {
    let names = (1..=5)
        .map(|i| format!("data_batch_{i}"))
        .chain(std::iter::once("test_batch".to_string()))
        .map(|n| match format {
            Format::Binary => format!("{n}.bin"),
            _ => n,
        });
    let mut batches: Vec<Batch> = names
        .map(|n| {
            let p = dir.join(n);
            match format {
                Format::Binary => binary::read_batch(&p),
                _ => pickle::read_batch(&p),
            }
        })
        .collect::<Result<_>>()?;
    let test = batches.pop().expect("six batches");
    Ok(Parts {
        train: batches,
        test,
        class_names: binary::read_class_names(dir),
        image: ImageShape::CIFAR,
    })
}
