//! `shallow data fetch`: download a data set's official release (or copy it
//! from a local path or `file://` URL, for machines without internet), check
//! every file's md5, and put it in place so that an interrupted or failed
//! fetch never leaves a half-written data folder (temporary names, one
//! rename at the end).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use md5::{Digest, Md5};

use super::batch::BIN_FOLDER;
use super::source::DatasetKind;

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

/// MNIST's and Fashion-MNIST's four files.
const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// Where a data set's release is and what it holds.
#[derive(Clone, Debug)]
pub struct Release {
    /// The data set.
    pub kind: DatasetKind,
    /// A tarball's URL, or the URL of the folder of `files`.
    pub url: String,
    /// Each file to download with its md5: one tarball, or the data's files.
    pub files: Vec<(String, String)>,
    /// For a tarball: the folder it extracts to, and the files that folder must hold.
    pub unpacks_to: Option<(String, Vec<String>)>,
}

impl Release {
    /// The official release of `kind` (CIFAR's binary versions; MNIST from
    /// the copy PyTorch downloads, since its home site refuses scripts;
    /// Fashion-MNIST from Zalando's), with the md5s everyone checks.
    pub fn official(kind: DatasetKind) -> Result<Release> {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let idx = |url: &str, md5s: [&str; 4]| Release {
            kind,
            url: url.to_string(),
            files: IDX_FILES
                .iter()
                .zip(md5s)
                .map(|(f, m)| (f.to_string(), m.to_string()))
                .collect(),
            unpacks_to: None,
        };
        Ok(match kind {
            DatasetKind::Cifar10 => Release {
                kind,
                url: URL.to_string(),
                files: vec![("cifar-10-binary.tar.gz".into(), MD5.into())],
                unpacks_to: Some((BIN_FOLDER.into(), strings(&EXPECTED_FILES))),
            },
            DatasetKind::Cifar100 => Release {
                kind,
                url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz".into(),
                files: vec![(
                    "cifar-100-binary.tar.gz".into(),
                    "03b5dce01913d631647c71ecec9e9cb8".into(),
                )],
                unpacks_to: Some((
                    super::cifar100::BIN_FOLDER.into(),
                    strings(&[
                        "train.bin",
                        "test.bin",
                        "fine_label_names.txt",
                        "coarse_label_names.txt",
                    ]),
                )),
            },
            DatasetKind::Mnist => idx(
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                [
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "d53e105ee54ea40749a09fcbcd1e9432",
                    "9fb629c4189551a2d022fa330f9573f3",
                    "ec29112dd5afa0611ce80d1b7f02629c",
                ],
            ),
            DatasetKind::FashionMnist => idx(
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                [
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "25c81989df183df01b3e8a0aad5dffbe",
                    "bef4ecab320f06d8554ea6380940ec79",
                    "bb300cfdad3c16e7a12a480ee83cd310",
                ],
            ),
            DatasetKind::Npz => bail!(
                "--dataset npz has no official release: write your arrays with numpy.savez and pass --data FILE.npz"
            ),
        })
    }

    /// This release fetched from `url` instead: a tarball's URL, local path
    /// or `file://` URL, or (for MNIST's files) the folder that holds them;
    /// `md5` replaces a tarball's checksum.
    pub fn from(mut self, url: Option<&str>, md5: Option<&str>) -> Release {
        if let Some(u) = url {
            self.url = u.to_string();
        }
        if let (Some(m), [(_, sum)]) = (md5, &mut self.files[..]) {
            *sum = m.to_string();
        }
        self
    }

    /// The folder under `dest` the data ends up in.
    pub fn target(&self, dest: &Path) -> PathBuf {
        match &self.unpacks_to {
            Some((folder, _)) => dest.join(folder),
            None => dest.join(self.kind.default_folder()),
        }
    }

    /// Where file `name` of the release is.
    fn location(&self, name: &str) -> String {
        if self.unpacks_to.is_some() {
            self.url.clone()
        } else if self.url.ends_with('/') {
            format!("{}{name}", self.url)
        } else {
            format!("{}/{name}", self.url)
        }
    }
}

/// Downloads `url` into `dest/cifar-10-batches-bin`, checking the tarball's md5
/// against `md5`. Returns the data folder. Does nothing when the folder already
/// holds every expected file. `progress` shows a progress bar on stderr.
pub fn fetch(dest: &Path, url: &str, md5: &str, progress: bool) -> Result<PathBuf> {
    let release = Release::official(DatasetKind::Cifar10)?.from(Some(url), Some(md5));
    fetch_release(dest, &release, progress)
}

/// Fetches `release` into `dest` (see [`Release::target`]) and returns the
/// data folder; does nothing when that folder already holds every file.
pub fn fetch_release(dest: &Path, release: &Release, progress: bool) -> Result<PathBuf> {
    let target = release.target(dest);
    let expected: Vec<String> = match &release.unpacks_to {
        Some((_, files)) => files.clone(),
        None => release.files.iter().map(|f| f.0.clone()).collect(),
    };
    if expected.iter().all(|f| target.join(f).exists()) {
        return Ok(target);
    }
    if target.exists() {
        bail!(
            "{} exists but lacks some {} files: remove it and run `shallow data fetch` again",
            target.display(),
            release.kind.title()
        );
    }
    let created = !dest.exists();
    fs::create_dir_all(dest)
        .with_context(|| format!("cannot create {}: choose a writable --dest", dest.display()))?;
    let result = fetch_into(dest, &target, release, progress);
    if result.is_err() && created {
        // A failed fetch leaves no empty folder behind (only if it is empty).
        let _ = fs::remove_dir(dest);
    }
    result
}

fn fetch_into(dest: &Path, target: &Path, release: &Release, progress: bool) -> Result<PathBuf> {
    // Temporaries with unique names beside the target, removed when dropped.
    let staging = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(dest)
        .with_context(|| {
            format!(
                "cannot write in {}: choose a writable --dest",
                dest.display()
            )
        })?;
    let staging = staging.path();
    for (name, md5) in &release.files {
        let from = release.location(name);
        let part = staging.join(name);
        let got = copy_or_download(&from, &part, progress)?;
        if !got.eq_ignore_ascii_case(md5) {
            bail!(
                "checksum mismatch for {from}: md5 {got}, expected {md5}; the file is corrupt or not {}'s {name}. \
                 Nothing was kept; try again, or pass --url with a mirror or a local copy",
                release.kind.title()
            );
        }
    }
    let Some((folder, files)) = &release.unpacks_to else {
        fs::create_dir(staging.join("files"))?;
        for (name, _) in &release.files {
            fs::rename(staging.join(name), staging.join("files").join(name))?;
        }
        fs::rename(staging.join("files"), target)
            .with_context(|| format!("cannot move the data into {}", target.display()))?;
        return Ok(target.to_path_buf());
    };
    let tarball = staging.join(&release.files[0].0);
    let unpacked = staging.join("unpacked");
    let file = fs::File::open(&tarball)?;
    tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)))
        .unpack(&unpacked)
        .with_context(|| format!("cannot extract the tarball from {}", release.url))?;
    let inner = unpacked.join(folder);
    for f in files {
        if !inner.join(f).exists() {
            bail!(
                "the tarball from {} has no {folder}/{f}: not the {} binary release",
                release.url,
                release.kind.title()
            );
        }
    }
    fs::rename(&inner, target)
        .with_context(|| format!("cannot move the data into {}", target.display()))?;
    Ok(target.to_path_buf())
}

/// The local file `from` names (a path, or a `file://` URL), if it names one.
fn local_path(from: &str) -> Option<PathBuf> {
    if let Some(rest) = from.strip_prefix("file://") {
        // file:///abs/path, or file://localhost/abs/path.
        let rest = rest.strip_prefix("localhost").unwrap_or(rest);
        return Some(PathBuf::from(rest));
    }
    (!from.contains("://")).then(|| PathBuf::from(from))
}

/// Copies (a local path or `file://` URL) or downloads `from` into `path`,
/// returning the md5 of what was received.
fn copy_or_download(from: &str, path: &Path, progress: bool) -> Result<String> {
    let Some(local) = local_path(from) else {
        return download(from, path, progress);
    };
    let file = fs::File::open(&local).with_context(|| {
        format!(
            "cannot read {}: give --url the path (or file:// URL) of the release's file as downloaded",
            local.display()
        )
    })?;
    if !file.metadata()?.is_file() {
        bail!(
            "{} is not a file: give --url the path of the release's tarball (or, for MNIST, the folder of its .gz files)",
            local.display()
        );
    }
    copy_hashing(file, path, &ProgressBar::hidden(), from)
}

/// Copies `reader` into `path`, returning the md5 of the bytes.
fn copy_hashing(
    mut reader: impl Read,
    path: &Path,
    bar: &ProgressBar,
    from: &str,
) -> Result<String> {
    let mut out = std::io::BufWriter::new(
        fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?,
    );
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("reading {from} was interrupted"))?;
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
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
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
        b
    } else {
        ProgressBar::hidden()
    };
    let name = url.rsplit('/').next().unwrap_or(url).to_string();
    bar.set_message(name);
    let got = copy_hashing(resp.into_reader(), path, &bar, url)?;
    let received = fs::metadata(path)?.len();
    if let Some(t) = total {
        if received != t {
            bail!("download of {url} stopped after {received} of {t} bytes");
        }
    }
    Ok(got)
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

    /// A copied tarball, by path and by file:// URL: checked and extracted
    /// like a download; a wrong file is refused and leaves nothing.
    #[test]
    fn local_tarball_by_path_and_file_url() {
        let body = tarball();
        let sum = md5_hex(&body);
        let src = tempfile::tempdir().unwrap();
        let file = src.path().join("cifar-10-binary.tar.gz");
        fs::write(&file, &body).unwrap();
        for url in [
            file.display().to_string(),
            format!("file://{}", file.display()),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let got = fetch(dir.path(), &url, &sum, false).unwrap();
            assert_eq!(
                fs::read_to_string(got.join("data_batch_3.bin")).unwrap(),
                "contents of data_batch_3.bin"
            );
            let err = fetch(&dir.path().join("other"), &url, MD5, false).unwrap_err();
            assert!(format!("{err:#}").contains("checksum mismatch"), "{err:#}");
            assert!(!dir.path().join("other").exists());
        }
        let dir = tempfile::tempdir().unwrap();
        let err = fetch(dir.path(), "file:///nonexistent/c.tar.gz", &sum, false).unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot read /nonexistent/c.tar.gz"),
            "{err:#}"
        );
    }

    /// MNIST's four files from a local folder, each checked by its md5.
    #[test]
    fn local_idx_files_are_checked_one_by_one() {
        let src = tempfile::tempdir().unwrap();
        let mut release = Release::official(DatasetKind::Mnist).unwrap();
        for (name, sum) in &mut release.files {
            let body = format!("bytes of {name}");
            fs::write(src.path().join(&*name), &body).unwrap();
            *sum = md5_hex(body.as_bytes());
        }
        let dir = tempfile::tempdir().unwrap();
        let local = release
            .clone()
            .from(Some(&src.path().display().to_string()), None);
        let got = fetch_release(dir.path(), &local, false).unwrap();
        assert_eq!(got, dir.path().join("mnist"));
        assert_eq!(fs::read_dir(&got).unwrap().count(), 4);
        // One file altered: refused, naming it, and nothing kept.
        fs::write(src.path().join("t10k-labels-idx1-ubyte.gz"), "other").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = fetch_release(dir.path(), &local, false).unwrap_err();
        assert!(
            format!("{err:#}").contains("t10k-labels-idx1-ubyte.gz: md5"),
            "{err:#}"
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
