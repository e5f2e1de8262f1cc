//! MNIST and Fashion-MNIST on disk: IDX files, gzipped or not. An IDX file is
//! a big-endian header (two zero bytes, the type 0x08 for unsigned bytes, the
//! number of dimensions, then each dimension as a u32) and the bytes:
//! `train-images-idx3-ubyte` holds n x 28 x 28 pixels, `train-labels-idx1-ubyte`
//! n labels, and `t10k-*` the test split.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::batch::{read_batch_file, Batch};
use super::shape::ImageShape;
use super::source::{DatasetKind, Parts};

/// Training images' file name (without `.gz`).
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
/// Training labels' file name.
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
/// Test images' file name.
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
/// Test labels' file name.
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";
/// Classes of both data sets.
pub const CLASSES: usize = 10;
/// Fashion-MNIST's class names, in label order.
pub const FASHION_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
/// The largest file read: 256 MB, beyond any IDX file of these data sets.
const MAX_BYTES: u64 = 256 << 20;

/// `dir/name`, or `dir/name.gz`, whichever exists (the unpacked one first);
/// also the `name.idx3-ubyte` spelling some copies use.
pub fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    let dotted = name.replacen("-idx", ".idx", 1);
    [
        name.to_string(),
        format!("{name}.gz"),
        dotted.clone(),
        format!("{dotted}.gz"),
    ]
    .into_iter()
    .map(|n| dir.join(n))
    .find(|p| p.is_file())
}

/// Reads and checks the four files of the folder `dir`.
pub(crate) fn read(dir: &Path, kind: DatasetKind) -> Result<Parts> {
    let (train, image) = read_pair(dir, TRAIN_IMAGES, TRAIN_LABELS)?;
    let (test, test_image) = read_pair(dir, TEST_IMAGES, TEST_LABELS)?;
    if test_image != image {
        bail!(
            "{}: test images are {}, training images {}: the two splits must match",
            dir.display(),
            test_image.describe(),
            image.describe()
        );
    }
    let class_names = match kind {
        DatasetKind::FashionMnist => FASHION_NAMES.iter().map(|s| s.to_string()).collect(),
        _ => (0..CLASSES).map(|k| k.to_string()).collect(),
    };
    Ok(Parts {
        train: vec![train],
        test,
        class_names,
        image,
    })
}

/// One split: its images file and its labels file, checked against each other.
fn read_pair(dir: &Path, images: &str, labels: &str) -> Result<(Batch, ImageShape)> {
    let open = |name: &str| -> Result<(String, Vec<u8>, PathBuf)> {
        let Some(path) = find(dir, name) else {
            bail!(
                "{}: file missing; an MNIST folder holds {TRAIN_IMAGES}, {TRAIN_LABELS}, \
                 {TEST_IMAGES} and {TEST_LABELS} (each may end in .gz); \
                 run `shallow data fetch --dataset mnist`",
                dir.join(format!("{name}.gz")).display()
            );
        };
        let (file, bytes) = read_batch_file(&path, "", MAX_BYTES)?;
        Ok((file, bytes, path))
    };
    let (file, bytes, path) = open(images)?;
    let (dims, pixels) =
        parse(&bytes, 3).with_context(|| format!("{}: not an IDX image file", path.display()))?;
    let image = ImageShape {
        channels: 1,
        height: dims[1],
        width: dims[2],
    };
    let (_, lbytes, lpath) = open(labels)?;
    let (ldims, labels) =
        parse(&lbytes, 1).with_context(|| format!("{}: not an IDX label file", lpath.display()))?;
    if ldims[0] != dims[0] {
        bail!(
            "{} holds {} labels and {} {} images: the files belong to different sets; fetch them again",
            lpath.display(),
            ldims[0],
            path.display(),
            dims[0]
        );
    }
    if let Some(i) = labels.iter().position(|&l| l as usize >= CLASSES) {
        bail!(
            "{}: label {i} is {}, expected 0-9: the file is corrupt; fetch it again",
            lpath.display(),
            labels[i]
        );
    }
    Ok((
        Batch {
            name: file,
            labels: labels.to_vec(),
            pixels: pixels.to_vec(),
        },
        image,
    ))
}

/// The dimensions and the data of an unsigned-byte IDX file of `rank`
/// dimensions, checked: magic number, rank, size against the header.
pub fn parse(bytes: &[u8], rank: usize) -> Result<(Vec<usize>, &[u8])> {
    if bytes.len() < 4 {
        bail!(
            "{} bytes, shorter than the 4-byte magic number",
            bytes.len()
        );
    }
    let magic = u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes"));
    let want = 0x0800 + rank as u32;
    if magic != want {
        bail!(
            "magic number 0x{magic:08x}, expected 0x{want:08x} (unsigned bytes, {rank} dimension{}): \
             the file is not an IDX file of this kind, or it is still compressed",
            if rank == 1 { "" } else { "s" }
        );
    }
    let head = 4 + 4 * rank;
    if bytes.len() < head {
        bail!("{} bytes, shorter than its {head}-byte header", bytes.len());
    }
    let dims: Vec<usize> = bytes[4..head]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes")) as usize)
        .collect();
    let size = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if dims.contains(&0) || size.is_none_or(|s| s > MAX_BYTES as usize) {
        bail!("header dimensions {dims:?} are empty or too large: the file is corrupt");
    }
    let size = size.expect("checked");
    if bytes.len() - head != size {
        bail!(
            "holds {} bytes after its header, and its dimensions {dims:?} need {size}: the file is {}; fetch it again",
            bytes.len() - head,
            if bytes.len() - head < size { "truncated" } else { "padded" }
        );
    }
    Ok((dims, &bytes[head..]))
}

/// Encodes an unsigned-byte IDX file (for tests and generated data).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = (0x0800u32 + dims.len() as u32).to_be_bytes().to_vec();
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}
