//! Data sets beyond CIFAR-10, written here in their official layouts
//! (CIFAR-100's 3,074-byte records and pickles, MNIST's IDX files byte by
//! byte, gzipped; Keras-style .npz through ndarray-npy), plus scikit-learn's
//! real digits: read, described, trained on by every command, and bad files
//! refused with a message that names the file and the fault.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::{RngExt, SeedableRng};
use shallow::data::{idx, pickle};

/// `n` images of `d` bytes whose class `k` shows as a pattern under noise.
fn images(n: usize, d: usize, classes: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    let labels: Vec<u8> = (0..n).map(|_| rng.random_range(0..classes) as u8).collect();
    let mut px = vec![0u8; n * d];
    for (img, &k) in px.chunks_exact_mut(d).zip(&labels) {
        for (i, p) in img.iter_mut().enumerate() {
            let pattern = ((i * (k as usize + 3) * 37) % 180) as u8;
            *p = pattern + rng.random_range(0..60u8);
        }
    }
    (labels, px)
}

fn gz(path: &Path, bytes: &[u8]) {
    let mut e =
        flate2::write::GzEncoder::new(fs::File::create(path).unwrap(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap();
}

/// An MNIST-layout folder (28 x 28 grey, gzipped IDX files).
fn mnist(dir: &Path, n_train: usize, n_test: usize) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    for (stem, n, seed) in [("train", n_train, 1), ("t10k", n_test, 2)] {
        let (labels, px) = images(n, 784, 10, seed);
        gz(
            &dir.join(format!("{stem}-images-idx3-ubyte.gz")),
            &idx::encode(&[n, 28, 28], &px),
        );
        gz(
            &dir.join(format!("{stem}-labels-idx1-ubyte.gz")),
            &idx::encode(&[n], &labels),
        );
    }
    dir.to_path_buf()
}

/// A CIFAR-100 binary folder: records of coarse label, fine label, 3,072 pixels.
fn cifar100_bin(dir: &Path, n_train: usize, n_test: usize) -> PathBuf {
    let dir = dir.join("cifar-100-binary");
    fs::create_dir_all(&dir).unwrap();
    for (name, n, seed) in [("train.bin", n_train, 3), ("test.bin", n_test, 4)] {
        let (fine, px) = images(n, 3072, 100, seed);
        let mut bytes = Vec::new();
        for (j, &f) in fine.iter().enumerate() {
            bytes.extend_from_slice(&[f / 5, f]);
            bytes.extend_from_slice(&px[j * 3072..(j + 1) * 3072]);
        }
        fs::write(dir.join(name), bytes).unwrap();
    }
    let fine: Vec<String> = (0..100).map(|k| format!("fine{k}")).collect();
    let coarse: Vec<String> = (0..20).map(|k| format!("coarse{k}")).collect();
    fs::write(dir.join("fine_label_names.txt"), fine.join("\n")).unwrap();
    fs::write(dir.join("coarse_label_names.txt"), coarse.join("\n")).unwrap();
    dir
}

/// A CIFAR-100 Python folder: pickles of `data`, `fine_labels`, `coarse_labels`, and `meta`.
fn cifar100_py(dir: &Path, n_train: usize, n_test: usize) -> PathBuf {
    let dir = dir.join("cifar-100-python");
    fs::create_dir_all(&dir).unwrap();
    for (name, n, seed) in [("train", n_train, 3), ("test", n_test, 4)] {
        let (fine, px) = images(n, 3072, 100, seed);
        let fine: Vec<i64> = fine.iter().map(|&f| f as i64).collect();
        let coarse: Vec<i64> = fine.iter().map(|f| f / 5).collect();
        let labels: [(&str, &[i64]); 2] = [("fine_labels", &fine), ("coarse_labels", &coarse)];
        fs::write(
            dir.join(name),
            pickle::encode_labelled(&labels, (n, 3072), &px),
        )
        .unwrap();
    }
    let fine: Vec<String> = (0..100).map(|k| format!("fine{k}")).collect();
    let coarse: Vec<String> = (0..20).map(|k| format!("coarse{k}")).collect();
    let meta = pickle::encode_string_lists(&[
        ("fine_label_names", &fine),
        ("coarse_label_names", &coarse),
    ]);
    fs::write(dir.join("meta"), meta).unwrap();
    dir
}

/// A Keras-style .npz of colour images, n x 12 x 10 x 3 bytes (channels last).
fn npz_colour(path: &Path, n_train: usize, n_test: usize) -> PathBuf {
    let mut w = ndarray_npy::NpzWriter::new(fs::File::create(path).unwrap());
    for (part, n, seed) in [("train", n_train, 5), ("test", n_test, 6)] {
        let (labels, px) = images(n, 360, 4, seed);
        let x = ndarray::Array4::from_shape_vec((n, 12, 10, 3), px).unwrap();
        w.add_array(format!("x_{part}"), &x).unwrap();
        w.add_array(
            format!("y_{part}"),
            &ndarray::Array1::from(labels.iter().map(|&l| l as i64).collect::<Vec<_>>()),
        )
        .unwrap();
    }
    w.finish().unwrap();
    path.to_path_buf()
}

fn run(args: &[&str], cwd: &Path) -> (i32, String, String) {
    common::shallow_checked(args, cwd)
}

fn info(data: &Path, extra: &[&str], cwd: &Path) -> serde_json::Value {
    let mut args = vec!["data", "info", "--json", "--data", data.to_str().unwrap()];
    args.extend(extra);
    let (code, out, err) = run(&args, cwd);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn result(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(dir.join("result.json")).unwrap()).unwrap()
}

/// Trains the linear classifier on `data` and returns its test accuracy.
fn train_linear(data: &Path, extra: &[&str], cwd: &Path, name: &str) -> f64 {
    let out = cwd.join(name);
    let mut args = vec![
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--split",
        "full",
        "--epochs",
        "8",
        "--eta",
        "0.01",
        "--quiet",
        "--save-weights",
    ];
    args.extend(extra);
    let (code, _, err) = run(&args, cwd);
    assert_eq!(code, 0, "{err}");
    assert!(out.join("weights.png").exists());
    result(&out)["test_acc"].as_f64().unwrap()
}

#[test]
fn every_format_is_detected_described_and_trained_on() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // MNIST: 28 x 28 grey, 10 classes, digits for names.
    let m = mnist(&t.join("mnist"), 1000, 200);
    let i = info(&m, &[], t);
    assert_eq!(i["dataset"], "MNIST");
    assert_eq!(
        i["image"],
        serde_json::json!({"channels": 1, "height": 28, "width": 28})
    );
    assert_eq!(i["files"][0]["n"], 1000);
    assert_eq!(i["class_names"][3], "3");
    let i = info(&m, &["--dataset", "fashion-mnist"], t);
    assert_eq!(
        (&i["dataset"], &i["class_names"][9]),
        (&"Fashion-MNIST".into(), &"Ankle boot".into())
    );
    assert!(train_linear(&m, &[], t, "mnist-run") > 0.5);

    // CIFAR-100, both versions, both label sets.
    for dir in [
        cifar100_bin(&t.join("c100b"), 2000, 300),
        cifar100_py(&t.join("c100p"), 2000, 300),
    ] {
        let fine = info(&dir, &[], t);
        assert_eq!(
            (
                fine["dataset"].as_str(),
                fine["class_names"].as_array().unwrap().len()
            ),
            (Some("CIFAR-100"), 100)
        );
        assert_eq!(fine["class_names"][42], "fine42");
        let coarse = info(&dir, &["--labels", "coarse"], t);
        assert_eq!(coarse["class_names"].as_array().unwrap().len(), 20);
        assert_eq!(
            coarse["files"][0]["class_counts"].as_array().unwrap().len(),
            20
        );
    }
    let c100 = t.join("c100b/cifar-100-binary");
    assert!(train_linear(&c100, &["--labels", "coarse"], t, "c100-run") > 2.0 / 20.0);

    // .npz, channels last: 12 x 10 x 3, 4 classes.
    let npz = npz_colour(&t.join("colour.npz"), 800, 200);
    let i = info(&npz, &[], t);
    assert_eq!(
        i["image"],
        serde_json::json!({"channels": 3, "height": 12, "width": 10})
    );
    assert_eq!(i["class_names"].as_array().unwrap().len(), 4);
    assert!(train_linear(&npz, &[], t, "npz-run") > 0.5);
    // Augmented (the pattern is not mirror-symmetric: it only has to run).
    assert!(train_linear(&npz, &["--flip", "--translate", "1"], t, "npz-aug") > 0.0);
    let cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(t.join("npz-run/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["split"]["data"]["classes"], 4, "{cfg}");
}

/// Flips on digits are refused: a mirrored 2 is no 2.
#[test]
fn flips_on_mnist_and_other_mistakes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let m = mnist(&t.join("mnist"), 500, 100);
    let data = m.to_str().unwrap();
    for (args, want) in [
        (
            vec!["train", "--data", data, "--out", "f", "--flip"],
            "a mirrored digit can show another class",
        ),
        (
            vec!["train", "--data", data, "--out", "l", "--labels", "coarse"],
            "--labels chooses CIFAR-100's",
        ),
        (
            vec![
                "train",
                "--data",
                data,
                "--out",
                "d",
                "--dataset",
                "cifar100",
            ],
            "--dataset cifar100 but",
        ),
        (
            vec!["train", "--data", data, "--out", "t", "--translate", "28"],
            "give 0 to 27",
        ),
        (
            vec!["experiment", "a1", "--data", data, "--out", "e"],
            "reproduce the CIFAR-10 assignments",
        ),
    ] {
        let (code, _, err) = run(&args, t);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!t.join(args[4]).exists(), "{args:?} wrote {}", args[4]);
    }
}

/// Each reader refuses a damaged file, naming it and the fault.
#[test]
fn bad_files_of_every_format_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let check = |data: &Path, want: &[&str]| {
        let (code, _, err) = run(&["data", "info", "--data", data.to_str().unwrap()], t);
        assert_ne!(code, 0, "{err}");
        for w in want {
            assert!(err.contains(w), "want {w:?} in: {err}");
        }
    };
    // IDX: a wrong magic number, a truncated file, a label out of range, counts that differ.
    let m = mnist(&t.join("m1"), 100, 20);
    let (labels, px) = images(100, 784, 10, 1);
    let mut bad = idx::encode(&[100, 28, 28], &px);
    bad[3] = 0x01;
    fs::remove_file(m.join("train-images-idx3-ubyte.gz")).unwrap();
    fs::write(m.join("train-images-idx3-ubyte"), &bad).unwrap();
    check(
        &m,
        &[
            "train-images-idx3-ubyte",
            "magic number 0x00000801, expected 0x00000803",
        ],
    );
    let good = idx::encode(&[100, 28, 28], &px);
    fs::write(m.join("train-images-idx3-ubyte"), &good[..good.len() - 100]).unwrap();
    check(&m, &["train-images-idx3-ubyte", "truncated"]);
    fs::write(m.join("train-images-idx3-ubyte"), &good).unwrap();
    let mut l = labels.clone();
    l[7] = 10;
    gz(
        &m.join("train-labels-idx1-ubyte.gz"),
        &idx::encode(&[100], &l),
    );
    check(
        &m,
        &["train-labels-idx1-ubyte.gz", "label 7 is 10, expected 0-9"],
    );
    gz(
        &m.join("train-labels-idx1-ubyte.gz"),
        &idx::encode(&[99], &labels[..99]),
    );
    check(&m, &["99 labels and", "100 images"]);
    fs::write(m.join("train-labels-idx1-ubyte.gz"), b"not gzip").unwrap();
    check(&m, &["train-labels-idx1-ubyte.gz", "cannot read the file"]);

    // CIFAR-100 binary: a truncated record, a fine label out of range.
    let c = cifar100_bin(&t.join("c"), 50, 10);
    let mut bytes = fs::read(c.join("train.bin")).unwrap();
    fs::write(c.join("train.bin"), &bytes[..bytes.len() - 5]).unwrap();
    check(
        &c,
        &[
            "train.bin",
            "not a multiple of the 3074-byte record (2 labels + 3072 pixels)",
        ],
    );
    bytes[3074 + 1] = 100;
    fs::write(c.join("train.bin"), &bytes).unwrap();
    check(&c, &["train.bin", "record 1 has label 100, expected 0-99"]);
    // CIFAR-100 Python: a missing label list.
    let p = cifar100_py(&t.join("p"), 50, 10);
    let (_, px) = images(50, 3072, 100, 3);
    fs::write(
        p.join("train"),
        pickle::encode_batch(&[0; 50], (50, 3072), &px),
    )
    .unwrap();
    check(&p, &["cifar-100-python/train", "no `fine_labels` entry"]);

    // .npz: a missing array, labels that do not match, images of two sizes, floats out of range.
    let write = |name: &str, f: &dyn Fn(&mut ndarray_npy::NpzWriter<fs::File>)| {
        let path = t.join(name);
        let mut w = ndarray_npy::NpzWriter::new(fs::File::create(&path).unwrap());
        f(&mut w);
        w.finish().unwrap();
        path
    };
    let x = |n: usize, h: usize| ndarray::Array3::<u8>::from_elem((n, h, 8), 7);
    let y = |n: usize| ndarray::Array1::<i64>::from_iter((0..n as i64).map(|i| i % 3));
    let f = write("a.npz", &|w| {
        w.add_array("x_train", &x(10, 8)).unwrap();
        w.add_array("y_train", &y(10)).unwrap();
        w.add_array("x_test", &x(5, 8)).unwrap();
    });
    check(
        &f,
        &[
            "a.npz has no `y_test`",
            "x_train, y_train, x_test and y_test",
        ],
    );
    let f = write("b.npz", &|w| {
        w.add_array("x_train", &x(10, 8)).unwrap();
        w.add_array("y_train", &y(9)).unwrap();
        w.add_array("x_test", &x(5, 8)).unwrap();
        w.add_array("y_test", &y(5)).unwrap();
    });
    check(&f, &["b.npz", "y_train has 9 labels and x_train 10 images"]);
    let f = write("c.npz", &|w| {
        w.add_array("x_train", &x(10, 8)).unwrap();
        w.add_array("y_train", &y(10)).unwrap();
        w.add_array("x_test", &x(5, 9)).unwrap();
        w.add_array("y_test", &y(5)).unwrap();
    });
    check(
        &f,
        &[
            "c.npz",
            "x_test's images are 9x8 grey and x_train's 8x8 grey",
        ],
    );
    let f = write("d.npz", &|w| {
        w.add_array("x_train", &x(10, 8).mapv(|v| v as f32 * 3.0 - 100.0))
            .unwrap();
        w.add_array("y_train", &y(10)).unwrap();
        w.add_array("x_test", &x(5, 8)).unwrap();
        w.add_array("y_test", &y(5)).unwrap();
    });
    check(
        &f,
        &[
            "d.npz",
            "`x_train` holds values from -79 to -79",
            "scale them first",
        ],
    );
    fs::write(t.join("e.npz"), b"PK not really").unwrap();
    check(&t.join("e.npz"), &["e.npz: not a .npz archive"]);
}

/// scikit-learn's 1,797 real 8 x 8 digits (written by scripts/digits_npz.py):
/// a two-layer network learns them well, and the bonus runs without flips.
#[test]
fn real_digits_train_and_the_quick_bonus_runs_without_flips() {
    let Some(digits) =
        common::digits_npz("real_digits_train_and_the_quick_bonus_runs_without_flips")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = digits.to_str().unwrap();
    let i = info(&digits, &[], t);
    assert_eq!(
        (i["files"][0]["n"].as_u64(), i["files"][1]["n"].as_u64()),
        (Some(1437), Some(360))
    );
    let (code, _, err) = run(
        &[
            "train", "--data", data, "--out", "mlp", "--model", "mlp", "--split", "full",
            "--cycles", "4", "--quiet",
        ],
        t,
    );
    assert_eq!(code, 0, "{err}");
    let acc = result(&t.join("mlp"))["test_acc"].as_f64().unwrap();
    assert!(acc > 0.88, "test accuracy {acc} on the digits");
    let (code, _, err) = run(
        &[
            "experiment",
            "bonus",
            "--quick",
            "--data",
            data,
            "--out",
            "bonus",
        ],
        t,
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("no flips"), "{err}");
    let b: serde_json::Value =
        serde_json::from_slice(&fs::read(t.join("bonus/bonus.json")).unwrap()).unwrap();
    assert!(b.to_string().contains("(no flips)"), "{b}");
    assert!(t.join("bonus/report.html").exists() || t.join("bonus/report.md").exists());
}

/// A PNG of test image `j` of `data` (grey or colour, as the data is).
fn test_png(data: &shallow::data::RawData, j: usize, path: &Path) {
    let i = data.shape.image;
    let img = &data.test.pixels[j * i.pixels()..(j + 1) * i.pixels()];
    let (w, h) = (i.width as u32, i.height as u32);
    let at = |c: usize, x: u32, y: u32| img[c * i.plane() + (y * w + x) as usize];
    if i.channels == 1 {
        image::GrayImage::from_fn(w, h, |x, y| image::Luma([at(0, x, y)]))
            .save(path)
            .unwrap();
    } else {
        image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([at(0, x, y), at(1, x, y), at(2, x, y)])
        })
        .save(path)
        .unwrap();
    }
}

/// Every command of the path on each generated format: train (saving the
/// model), report, evaluate (the run's accuracy), predict on a PNG of a test
/// image (the run's class), sweep, search and the quick bonus.
#[test]
fn every_command_runs_on_each_generated_format() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let sets = [
        ("mnist", mnist(&t.join("mnist"), 1200, 200), vec![]),
        (
            "c100",
            cifar100_bin(&t.join("c100"), 1200, 200),
            vec!["--labels", "coarse"],
        ),
        ("npz", npz_colour(&t.join("colour.npz"), 1200, 200), vec![]),
    ];
    for (name, dir, flags) in &sets {
        let data = dir.to_str().unwrap();
        let with = |args: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            v.extend(["--data".to_string(), data.to_string()]);
            v.extend(flags.iter().map(|s| s.to_string()));
            v
        };
        let go = |args: &[String]| {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let (code, out, err) = run(&a, t);
            assert_eq!(code, 0, "{name} {a:?}: {err}");
            out
        };
        let out = format!("{name}-run");
        go(&with(&[
            "train",
            "--out",
            &out,
            "--model",
            "mlp",
            "--hidden",
            "20",
            "--split",
            "full",
            "--cycles",
            "1",
            "--save-weights",
            "--save-probs",
            "--quiet",
        ]));
        go(&["report".into(), out.clone()]);
        assert!(t.join(&out).join("report.html").exists());
        let e: serde_json::Value =
            serde_json::from_str(&go(&with(&["evaluate", &out, "--json"]))).unwrap();
        assert_eq!(e["accuracy"], result(&t.join(&out))["test_acc"], "{name}");
        let raw = shallow::data::RawData::load_as(
            dir,
            &shallow::data::Source {
                labels: (*name == "c100").then_some(shallow::data::Labels::Coarse),
                ..Default::default()
            },
        )
        .unwrap();
        let probs = <ndarray::Array2<f32> as ndarray_npy::ReadNpyExt>::read_npy(
            fs::File::open(t.join(&out).join("test_probs.npy")).unwrap(),
        )
        .unwrap();
        let png = t.join(format!("{name}.png"));
        test_png(&raw, 0, &png);
        let p: serde_json::Value = serde_json::from_str(&go(&[
            "predict".into(),
            out.clone(),
            png.display().to_string(),
            "--json".into(),
        ]))
        .unwrap();
        let want = (0..probs.ncols())
            .max_by(|&a, &b| probs[[0, a]].total_cmp(&probs[[0, b]]))
            .unwrap();
        assert_eq!(
            p[0]["top"][0]["index"].as_u64(),
            Some(want as u64),
            "{name}: {p}"
        );
        go(&with(&[
            "sweep",
            "--out",
            &format!("{name}-sweep"),
            "--lambdas",
            "0,0.01",
            "--hidden",
            "20",
            "--cycles",
            "1",
            "--quiet",
        ]));
        if *name == "mnist" {
            let r = result(&t.join("mnist-sweep/lambda02_1.000e-2"));
            assert!(r["test_acc"].as_f64().unwrap() > 0.5, "{r}");
        }
        let s: serde_json::Value = serde_json::from_str(&go(&with(&[
            "search",
            "--out",
            &format!("{name}-search"),
            "--coarse",
            "1e-4:1e-1:2",
            "--fine-n",
            "2",
            "--top",
            "1",
            "--coarse-cycles",
            "1",
            "--fine-cycles",
            "1",
            "--final-cycles",
            "1",
            "--hidden",
            "10",
            "--json",
        ])))
        .unwrap();
        assert!(s.to_string().contains("test_acc"), "{name}: {s}");
        assert!(
            t.join(format!("{name}-search/report.html")).exists(),
            "{name}"
        );
        go(&with(&[
            "experiment",
            "bonus",
            "--quick",
            "--out",
            &format!("{name}-bonus"),
            "--quiet",
        ]));
        assert!(
            t.join(format!("{name}-bonus/report.html")).exists(),
            "{name}"
        );
    }
}
