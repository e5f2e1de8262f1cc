//! `.npz` archives in Keras's convention (`keras.datasets.*.load_data()`
//! saved with `np.savez`): `x_train`, `y_train`, `x_test`, `y_test`. Images
//! are n x h x w (grey), n x h x w x c (channels last, turned into planes
//! here) or n x d (flat), as bytes or as floats holding bytes (0-255) or
//! fractions (0-1); labels are integers 0..K-1, n or n x 1. Class names come
//! from a `classes.txt` beside the archive when there is one (one per line).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::NpzReader;

use super::batch::Batch;
use super::binary;
use super::shape::ImageShape;
use super::source::Parts;

/// The one `.npz` file of a folder, if it has exactly one.
pub fn find(dir: &Path) -> Option<PathBuf> {
    let mut found = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "npz") && p.is_file());
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// Reads and checks the archive `path` (or the one `.npz` of the folder `path`).
pub(crate) fn read(path: &Path) -> Result<Parts> {
    let file = if path.is_dir() {
        find(path).ok_or_else(|| {
            anyhow!(
                "{}: no single .npz file in the folder: pass --data FILE.npz",
                path.display()
            )
        })?
    } else {
        path.to_path_buf()
    };
    let name = file.display().to_string();
    let f = std::fs::File::open(&file).with_context(|| format!("{name}: cannot open the file"))?;
    let mut npz = NpzReader::new(f).map_err(|e| {
        anyhow!("{name}: not a .npz archive ({e}): write it with numpy.savez or savez_compressed")
    })?;
    let names = npz.names().map_err(|e| anyhow!("{name}: {e}"))?;
    for key in ["x_train", "y_train", "x_test", "y_test"] {
        if !names.iter().any(|n| n == key || n == &format!("{key}.npy")) {
            bail!(
                "{name} has no `{key}` (it holds {}): a .npz data set needs x_train, y_train, x_test and y_test, as Keras's load_data() returns them",
                names.join(", ")
            );
        }
    }
    let (train_px, image) = images(&mut npz, &name, "x_train")?;
    let (test_px, test_image) = images(&mut npz, &name, "x_test")?;
    if test_image != image {
        bail!(
            "{name}: x_test's images are {} and x_train's {}: they must be the same size",
            test_image.describe(),
            image.describe()
        );
    }
    let train_y = labels(&mut npz, &name, "y_train")?;
    let test_y = labels(&mut npz, &name, "y_test")?;
    for (key, y, px) in [("train", &train_y, &train_px), ("test", &test_y, &test_px)] {
        if y.len() * image.pixels() != px.len() {
            bail!(
                "{name}: y_{key} has {} labels and x_{key} {} images: they must match",
                y.len(),
                px.len() / image.pixels()
            );
        }
    }
    let classes = train_y
        .iter()
        .chain(&test_y)
        .max()
        .map_or(0, |&m| m as usize + 1);
    if classes < 2 {
        bail!("{name}: the labels name {classes} class: a classifier needs at least 2");
    }
    let names_file = file.with_file_name("classes.txt");
    let class_names = binary::read_names(&names_file, classes)
        .unwrap_or_else(|| (0..classes).map(|k| k.to_string()).collect());
    let stem = file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let batch = |part: &str, labels, pixels| Batch {
        name: format!("{stem}:{part}"),
        labels,
        pixels,
    };
    Ok(Parts {
        train: vec![batch("train", train_y, train_px)],
        test: batch("test", test_y, test_px),
        class_names,
        image,
    })
}

/// One array of the archive as `T`, or `None` when it holds another type.
fn array<T: ndarray_npy::ReadableElement>(
    npz: &mut NpzReader<std::fs::File>,
    key: &str,
) -> Option<ArrayD<T>> {
    npz.by_name::<ndarray::OwnedRepr<T>, IxDyn>(key)
        .or_else(|_| npz.by_name(&format!("{key}.npy")))
        .ok()
}

/// The images of `key` as bytes, plane after plane, and their shape.
fn images(
    npz: &mut NpzReader<std::fs::File>,
    name: &str,
    key: &str,
) -> Result<(Vec<u8>, ImageShape)> {
    let values: ArrayD<f64> = if let Some(a) = array::<u8>(npz, key) {
        a.mapv(f64::from)
    } else if let Some(a) = array::<f32>(npz, key) {
        a.mapv(f64::from)
    } else if let Some(a) = array::<f64>(npz, key) {
        a
    } else if let Some(a) = array::<i64>(npz, key) {
        a.mapv(|v| v as f64)
    } else {
        bail!("{name}: `{key}` is not an array of uint8, float32, float64 or int64 pixels");
    };
    let shape = values.shape().to_vec();
    let (n, image) = match shape[..] {
        [n, d] => (n, ImageShape::guess(d)),
        [n, h, w] => (n, ImageShape { channels: 1, height: h, width: w }),
        [n, h, w, c] if c <= 4 => (n, ImageShape { channels: c, height: h, width: w }),
        _ => bail!(
            "{name}: `{key}` has shape {shape:?}: images must be n x h x w, n x h x w x c (channels last, c at most 4) or n x d"
        ),
    };
    if n == 0 || image.pixels() == 0 {
        bail!("{name}: `{key}` holds no image (shape {shape:?})");
    }
    let (lo, hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let whole = values.iter().all(|v| v.fract() == 0.0);
    let scale = if lo >= 0.0 && hi <= 255.0 && whole {
        1.0
    } else if lo >= 0.0 && hi <= 1.0 {
        255.0
    } else {
        bail!(
            "{name}: `{key}` holds values from {lo} to {hi}: pixels must be bytes 0-255 (or fractions 0-1); scale them first"
        );
    };
    // Channels last (h, w, c) to planes (c, h, w).
    let (c, plane) = (image.channels, image.plane());
    let flat = values.as_standard_layout();
    let flat = flat.as_slice().expect("standard layout");
    let mut px = vec![0u8; flat.len()];
    for (src, dst) in flat
        .chunks_exact(image.pixels())
        .zip(px.chunks_exact_mut(image.pixels()))
    {
        for (i, &v) in src.iter().enumerate() {
            let (pixel, channel) = if shape.len() == 4 {
                (i / c, i % c)
            } else {
                (i, 0)
            };
            dst[channel * plane + pixel] = (v * scale).round() as u8;
        }
    }
    Ok((px, image))
}

/// The labels of `key`, checked to be whole numbers 0-255.
fn labels(npz: &mut NpzReader<std::fs::File>, name: &str, key: &str) -> Result<Vec<u8>> {
    let values: ArrayD<i64> = if let Some(a) = array::<u8>(npz, key) {
        a.mapv(i64::from)
    } else if let Some(a) = array::<i64>(npz, key) {
        a
    } else if let Some(a) = array::<i32>(npz, key) {
        a.mapv(i64::from)
    } else if let Some(a) = array::<u16>(npz, key) {
        a.mapv(i64::from)
    } else if let Some(a) = array::<i16>(npz, key) {
        a.mapv(i64::from)
    } else if let Some(a) = array::<u32>(npz, key) {
        a.mapv(i64::from)
    } else if let Some(a) = array::<u64>(npz, key) {
        a.mapv(|v| v.min(i64::MAX as u64) as i64)
    } else {
        bail!("{name}: `{key}` is not an array of integer labels");
    };
    let shape = values.shape().to_vec();
    if !(shape.len() == 1 || (shape.len() == 2 && shape[1] == 1)) {
        bail!("{name}: `{key}` has shape {shape:?}: labels must be n or n x 1");
    }
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            u8::try_from(v).map_err(|_| {
                anyhow!("{name}: `{key}`[{i}] is {v}: labels must be 0 to 255 (one per class)")
            })
        })
        .collect()
}
