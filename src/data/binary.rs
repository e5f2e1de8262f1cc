//! Reader for the binary version: records of 1 label byte + 3,072 pixel bytes.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::batch::{
    read_batch_file, Batch, CLASSES, DEFAULT_CLASS_NAMES, PIXELS, RECORDS_PER_FILE,
};

/// Bytes per record.
pub const RECORD: usize = PIXELS + 1;

/// Reads one batch file and checks its size, record count and labels.
pub fn read_batch(path: &Path) -> Result<Batch> {
    let (name, bytes) = read_batch_file(
        path,
        "a CIFAR-10 binary folder holds data_batch_1.bin..data_batch_5.bin and \
         test_batch.bin (run `shallow data fetch` to download them)",
        (RECORDS_PER_FILE * RECORD) as u64,
    )?;
    parse_batch(&name, &bytes).with_context(|| format!("{}", path.display()))
}

/// Parses the bytes of one batch file (`name` is used in messages only).
pub fn parse_batch(name: &str, bytes: &[u8]) -> Result<Batch> {
    parse_records(name, bytes, &[CLASSES], 0, Some(RECORDS_PER_FILE))
}

/// Parses records of one label byte per entry of `classes` (each checked to
/// be below its count), then 3,072 pixel bytes; keeps label `keep` of each.
/// CIFAR-10 has one label, CIFAR-100 two (coarse of 20, fine of 100).
/// `expect`: the number of records the file must hold.
pub fn parse_records(
    name: &str,
    bytes: &[u8],
    classes: &[usize],
    keep: usize,
    expect: Option<usize>,
) -> Result<Batch> {
    let record = classes.len() + PIXELS;
    if !bytes.len().is_multiple_of(record) {
        let labels = match classes.len() {
            1 => "1 label".to_string(),
            n => format!("{n} labels"),
        };
        bail!(
            "size {} bytes is not a multiple of the {record}-byte record ({labels} + 3072 pixels): \
             the file is truncated or not a CIFAR binary batch; fetch it again",
            bytes.len()
        );
    }
    let n = bytes.len() / record;
    if n == 0 {
        bail!("holds no record: the file is empty; fetch it again");
    }
    if let Some(want) = expect.filter(|&w| w != n) {
        bail!(
            "holds {n} records, expected {want}: the file is truncated or padded; fetch it again"
        );
    }
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * PIXELS);
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        for (j, &k) in classes.iter().enumerate() {
            if rec[j] as usize >= k {
                bail!(
                    "record {i} has label {}, expected 0-{}: the file is corrupt; fetch it again",
                    rec[j],
                    k - 1
                );
            }
        }
        labels.push(rec[keep]);
        pixels.extend_from_slice(&rec[classes.len()..]);
    }
    Ok(Batch {
        name: name.to_string(),
        labels,
        pixels,
    })
}

/// Class names from `batches.meta.txt` (one per line), or the standard names.
pub fn read_class_names(dir: &Path) -> Vec<String> {
    read_names(&dir.join("batches.meta.txt"), CLASSES)
        .unwrap_or_else(|| DEFAULT_CLASS_NAMES.iter().map(|s| s.to_string()).collect())
}

/// The non-empty lines of a names file when there are exactly `count`.
pub fn read_names(path: &Path, count: usize) -> Option<Vec<String>> {
    let names: Vec<String> = fs::read_to_string(path)
        .ok()?
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    (names.len() == count).then_some(names)
}

/// Encodes a batch in the binary format (for tests and generated data).
pub fn encode_batch(labels: &[u8], pixels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(labels.len() * RECORD);
    for (l, img) in labels.iter().zip(pixels.chunks_exact(PIXELS)) {
        out.push(*l);
        out.extend_from_slice(img);
    }
    out
}
