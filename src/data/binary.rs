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
    if !bytes.len().is_multiple_of(RECORD) {
        bail!(
            "size {} bytes is not a multiple of the {RECORD}-byte record (1 label + 3072 pixels): \
             the file is truncated or not a CIFAR-10 binary batch; fetch it again",
            bytes.len()
        );
    }
    let n = bytes.len() / RECORD;
    if n != RECORDS_PER_FILE {
        bail!("holds {n} records, expected {RECORDS_PER_FILE}: the file is truncated or padded; fetch it again");
    }
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * PIXELS);
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] as usize >= CLASSES {
            bail!(
                "record {i} has label {}, expected 0-9: the file is corrupt; fetch it again",
                rec[0]
            );
        }
        labels.push(rec[0]);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok(Batch {
        name: name.to_string(),
        labels,
        pixels,
    })
}

/// Class names from `batches.meta.txt` (one per line), or the standard names.
pub fn read_class_names(dir: &Path) -> Vec<String> {
    let names: Vec<String> = fs::read_to_string(dir.join("batches.meta.txt"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if names.len() == CLASSES {
        names
    } else {
        DEFAULT_CLASS_NAMES.iter().map(|s| s.to_string()).collect()
    }
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
