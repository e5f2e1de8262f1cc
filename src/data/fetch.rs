//! `shallow data fetch`: download the official binary tarball, check its md5,
//! and extract it so that an interrupted or failed fetch never leaves a
//! half-written data folder (temporary names, one rename at the end).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use md5::{Digest, Md5};

use super::batch::BIN_FOLDER;

/// The official binary release.
pub const URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// md5 of the official `cifar-10-binary.tar.gz`.
pub const MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
/// Files an extracted folder must hold.
pub const EXPECTED_FILES: [&str; 7] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
    "batches.meta.txt",
];

/// Downloads `url` into `dest/cifar-10-batches-bin`, checking the tarball's md5
/// against `md5`. Returns the data folder. Does nothing when the folder already
/// holds every expected file. `progress` shows a progress bar on stderr.
pub fn fetch(dest: &Path, url: &str, md5: &str, progress: bool) -> Result<PathBuf> {
    let target = dest.join(BIN_FOLDER);
    if EXPECTED_FILES.iter().all(|f| target.join(f).exists()) {
        return Ok(target);
    }
    if target.exists() {
        bail!(
            "{} exists but lacks some CIFAR-10 files: remove it and run `shallow data fetch` again",
            target.display()
        );
    }
    let created = !dest.exists();
    fs::create_dir_all(dest)
        .with_context(|| format!("cannot create {}: choose a writable --dest", dest.display()))?;
    let result = fetch_into(dest, &target, url, md5, progress);
    if result.is_err() && created {
        // A failed fetch leaves no empty folder behind (only if it is empty).
        let _ = fs::remove_dir(dest);
    }
    result
}

fn fetch_into(dest: &Path, target: &Path, url: &str, md5: &str, progress: bool) -> Result<PathBuf> {
    // Temporaries with unique names beside the target, removed when dropped.
    let part = tempfile::Builder::new()
        .prefix(".cifar-10-binary.tar.gz.part-")
        .tempfile_in(dest)
        .with_context(|| {
            format!(
                "cannot write in {}: choose a writable --dest",
                dest.display()
            )
        })?;
    let got = download(url, part.path(), progress)?;
    if !got.eq_ignore_ascii_case(md5) {
        bail!(
            "checksum mismatch for {url}: md5 {got}, expected {md5}; the download is corrupt or not the \
             CIFAR-10 binary tarball. Nothing was kept; try again, or pass --url with a mirror"
        );
    }
    let staging = tempfile::Builder::new()
        .prefix(".cifar-10-extract-")
        .tempdir_in(dest)?;
    let staging = staging.path();
    let file = fs::File::open(part.path())?;
    tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)))
        .unpack(staging)
        .with_context(|| format!("cannot extract the tarball downloaded from {url}"))?;
    let inner = staging.join(BIN_FOLDER);
    for f in EXPECTED_FILES {
        if !inner.join(f).exists() {
            bail!(
                "the tarball from {url} has no {BIN_FOLDER}/{f}: not the CIFAR-10 binary release"
            );
        }
    }
    fs::rename(&inner, target)
        .with_context(|| format!("cannot move the data into {}", target.display()))?;
    Ok(target.to_path_buf())
}

/// Streams `url` into `path`, returning the md5 of what was received.
fn download(url: &str, path: &Path, progress: bool) -> Result<String> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(20))
        .timeout_read(Duration::from_secs(60))
        .build();
    let resp = match agent.get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(code, _)) => bail!("download of {url} failed: HTTP status {code}"),
        Err(e) => {
            bail!("download of {url} failed: {e}; check the network, or pass --url with a mirror")
        }
    };
    let total: Option<u64> = resp.header("Content-Length").and_then(|v| v.parse().ok());
    let bar = if progress {
        let b = ProgressBar::new(total.unwrap_or(0));
        b.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b.set_message("cifar-10-binary.tar.gz");
        b
    } else {
        ProgressBar::hidden()
    };
    let mut reader = resp.into_reader();
    let mut out = std::io::BufWriter::new(
        fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?,
    );
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("download of {url} was interrupted"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        received += n as u64;
        bar.set_position(received);
    }
    out.flush()?;
    bar.finish_and_clear();
    if let Some(t) = total {
        if received != t {
            bail!("download of {url} stopped after {received} of {t} bytes");
        }
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

    /// A tarball with the expected layout and small files.
    fn tarball() -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for f in EXPECTED_FILES {
            let body = format!("contents of {f}");
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            builder
                .append_data(&mut h, format!("{BIN_FOLDER}/{f}"), body.as_bytes())
                .unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    /// Serves `body` to every request on a fresh 127.0.0.1 port; returns the URL.
    fn serve(body: Vec<u8>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let mut s = stream;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&body);
            }
        });
        format!("http://{addr}/cifar-10-binary.tar.gz")
    }

    fn md5_hex(b: &[u8]) -> String {
        Md5::digest(b).iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn fetch_checks_md5_and_extracts_atomically() {
        let body = tarball();
        let sum = md5_hex(&body);
        let url = serve(body);
        let dir = tempfile::tempdir().unwrap();
        let got = fetch(dir.path(), &url, &sum, false).unwrap();
        assert_eq!(got, dir.path().join(BIN_FOLDER));
        assert_eq!(
            fs::read_to_string(got.join("test_batch.bin")).unwrap(),
            "contents of test_batch.bin"
        );
        // Only the final folder remains: no partial download, no staging folder.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(BIN_FOLDER)]);
        // A second fetch finds it and does nothing.
        assert_eq!(
            fetch(dir.path(), "http://127.0.0.1:9/unused", &sum, false).unwrap(),
            got
        );
    }

    #[test]
    fn wrong_md5_leaves_nothing_behind() {
        let url = serve(tarball());
        let dir = tempfile::tempdir().unwrap();
        let err = fetch(dir.path(), &url, "00000000000000000000000000000000", false).unwrap_err();
        assert!(format!("{err:#}").contains("checksum mismatch"), "{err:#}");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no partial files or folders"
        );
    }

    #[test]
    fn unreachable_server_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        // Port 9 (discard) on loopback: connection refused.
        let err = fetch(dir.path(), "http://127.0.0.1:9/x.tar.gz", MD5, false).unwrap_err();
        assert!(
            format!("{err:#}").contains("download of http://127.0.0.1:9/x.tar.gz failed"),
            "{err:#}"
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
