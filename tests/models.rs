//! Models out of shallow, checked by someone else's code: `model.safetensors`
//! loaded with the safetensors package and applied in NumPy, `model.onnx` run
//! in onnxruntime (scripts/check_model.py, in target/pyenv), both within
//! 1e-5 of the probabilities shallow gave on real test images; `predict` on
//! PNGs of CIFAR-10 test images gives the run's class; `evaluate` gives the
//! run's accuracy; bad input to both is refused clearly.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use ndarray::{Array2, Array4};
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

fn run(args: &[&str], cwd: &Path) -> (i32, String, String) {
    common::shallow_checked(args, cwd)
}

fn ok(args: &[&str], cwd: &Path) -> String {
    let (code, out, err) = run(args, cwd);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

/// The first `n` test images of `data` as n x C x H x W bytes, written to `path`.
fn test_pixels(data: &shallow::data::RawData, n: usize, path: &Path) -> PathBuf {
    let i = data.shape.image;
    let px = data.test.pixels[..n * i.pixels()].to_vec();
    let a = Array4::from_shape_vec((n, i.channels, i.height, i.width), px).unwrap();
    a.write_npy(fs::File::create(path).unwrap()).unwrap();
    path.to_path_buf()
}

/// The first `n` rows of a run's test_probs.npy (n x K), or their mean over runs.
fn run_probs(runs: &[&Path], n: usize, path: &Path) -> (PathBuf, Array2<f32>) {
    let mut sum: Option<Array2<f32>> = None;
    for r in runs {
        let p = Array2::<f32>::read_npy(fs::File::open(r.join("test_probs.npy")).unwrap()).unwrap();
        let p = p.slice(ndarray::s![..n, ..]).to_owned();
        sum = Some(match sum {
            Some(s) => s + p,
            None => p,
        });
    }
    let mean = sum.unwrap() / runs.len() as f32;
    mean.write_npy(fs::File::create(path).unwrap()).unwrap();
    (path.to_path_buf(), mean)
}

/// Runs scripts/check_model.py and asserts both runtimes within 1e-5.
fn check_in_python(py: &Path, models: &[PathBuf], onnx: &Path, pixels: &Path, probs: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_model.py");
    let list: Vec<String> = models
        .iter()
        .map(|m| m.join("model.safetensors").display().to_string())
        .collect();
    let out = std::process::Command::new(py)
        .arg(script)
        .arg(list.join(","))
        .args([onnx, pixels, probs])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    for key in ["numpy_max_diff", "onnx_max_diff"] {
        let diff = r[key].as_f64().unwrap();
        assert!(diff < 1e-5, "{key} {diff}: {r}");
    }
}

/// The real digits: a network with ZCA whitening, batch norm and test-time
/// flips, and a seed ensemble of two, in NumPy and onnxruntime.
#[test]
fn digits_models_match_in_numpy_and_onnxruntime() {
    let Some(digits) = common::digits_npz("digits_models_match_in_numpy_and_onnxruntime") else {
        return;
    };
    let py = common::python("digits_models_match_in_numpy_and_onnxruntime").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = digits.to_str().unwrap();
    let mut runs = Vec::new();
    for seed in ["1", "2"] {
        let out = t.join(format!("seed{seed}"));
        ok(
            &[
                "train",
                "--data",
                data,
                "--out",
                out.to_str().unwrap(),
                "--model",
                "mlp",
                "--hidden",
                "30",
                "--split",
                "full",
                "--cycles",
                "2",
                "--whiten",
                "zca",
                "--batch-norm",
                "--tta",
                "--seed",
                seed,
                "--save-weights",
                "--save-probs",
                "--quiet",
            ],
            t,
        );
        runs.push(out);
    }
    let raw = shallow::data::RawData::load(&digits).unwrap();
    let n = raw.test.len();
    let px = test_pixels(&raw, n, &t.join("px.npy"));
    // One model.
    ok(
        &["export", runs[0].to_str().unwrap(), "--onnx", "one.onnx"],
        t,
    );
    let (probs, _) = run_probs(&[&runs[0]], n, &t.join("one.npy"));
    check_in_python(&py, &runs[..1], &t.join("one.onnx"), &px, &probs);
    // The seed ensemble, averaged in one graph.
    ok(
        &[
            "export",
            runs[0].to_str().unwrap(),
            runs[1].to_str().unwrap(),
            "--onnx",
            "two.onnx",
        ],
        t,
    );
    let (probs, _) = run_probs(&[&runs[0], &runs[1]], n, &t.join("two.npy"));
    check_in_python(&py, &runs, &t.join("two.onnx"), &px, &probs);
    // evaluate gives the run's measured (flip-averaged) test accuracy.
    let e: serde_json::Value = serde_json::from_str(&ok(
        &[
            "evaluate",
            runs[0].to_str().unwrap(),
            "--data",
            data,
            "--json",
        ],
        t,
    ))
    .unwrap();
    let r: serde_json::Value =
        serde_json::from_slice(&fs::read(runs[0].join("result.json")).unwrap()).unwrap();
    assert_eq!(e["accuracy"], r["averaged"]["test"]["acc"], "{e} {r}");
    assert_eq!(e["confusion"].as_array().unwrap().len(), 10);
    assert!(runs[0].join("confusion.png").exists());
}

/// A CIFAR-10 network: NumPy and onnxruntime give its probabilities on real
/// test images, and predict on PNGs of test images gives the run's classes.
#[test]
fn cifar10_model_matches_elsewhere_and_predicts_its_classes_from_pngs() {
    let test = "cifar10_model_matches_elsewhere_and_predicts_its_classes_from_pngs";
    let Some(raw) = common::real_data(test) else {
        return;
    };
    let Some(py) = common::python(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = raw.dir.to_str().unwrap();
    let out = t.join("run");
    ok(
        &[
            "train",
            "--data",
            data,
            "--out",
            out.to_str().unwrap(),
            "--model",
            "mlp",
            "--hidden",
            "50",
            "--cycles",
            "1",
            "--ns",
            "200",
            "--lambda",
            "0.01",
            "--save-weights",
            "--save-probs",
            "--quiet",
        ],
        t,
    );
    let n = 2000;
    let px = test_pixels(&raw, n, &t.join("px.npy"));
    ok(&["export", out.to_str().unwrap(), "--onnx", "run.onnx"], t);
    let (probs, p) = run_probs(&[&out], n, &t.join("probs.npy"));
    check_in_python(
        &py,
        std::slice::from_ref(&out),
        &t.join("run.onnx"),
        &px,
        &probs,
    );
    // PNGs of test images: predict gives the class the run gave each.
    let mut files = Vec::new();
    for j in 0..8 {
        let img = &raw.test.pixels[j * 3072..(j + 1) * 3072];
        let rgb = image::RgbImage::from_fn(32, 32, |x, y| {
            let at = |c: usize| img[c * 1024 + y as usize * 32 + x as usize];
            image::Rgb([at(0), at(1), at(2)])
        });
        let f = t.join(format!("test{j}.png"));
        rgb.save(&f).unwrap();
        files.push(f.display().to_string());
    }
    let mut args = vec!["predict", out.to_str().unwrap(), "--json", "--top", "2"];
    args.extend(files.iter().map(String::as_str));
    let preds: serde_json::Value = serde_json::from_str(&ok(&args, t)).unwrap();
    for j in 0..8 {
        let want = (0..10)
            .max_by(|&a, &b| p[[j, a]].total_cmp(&p[[j, b]]))
            .unwrap();
        let got = &preds[j]["top"][0];
        assert_eq!(got["index"].as_u64(), Some(want as u64), "image {j}: {got}");
        assert_eq!(got["class"].as_str(), Some(raw.class_names[want].as_str()));
        let prob = got["probability"].as_f64().unwrap();
        assert!(
            (prob - p[[j, want]] as f64).abs() < 1e-5,
            "image {j}: {prob} vs {}",
            p[[j, want]]
        );
    }
    // The text form names the class.
    let text = ok(&["predict", out.to_str().unwrap(), &files[0]], t);
    assert!(text.starts_with(&format!("{}: ", files[0])), "{text}");
}

/// Bad input to predict, evaluate and export: clear messages, exit 2.
#[test]
fn predict_evaluate_and_export_refuse_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = common::generated_release();
    let d = data.to_str().unwrap();
    ok(
        &[
            "train",
            "--out",
            "lin",
            "--save-weights",
            "--epochs",
            "1",
            "--quiet",
        ],
        t,
    );
    ok(&["train", "--out", "plain", "--epochs", "1", "--quiet"], t);
    // A 16 x 16 PNG: refused without --resize, read with it.
    let small = image::RgbImage::from_pixel(16, 16, image::Rgb([200, 10, 10]));
    small.save(t.join("small.png")).unwrap();
    let jpeg = image::RgbImage::from_pixel(32, 32, image::Rgb([10, 200, 10]));
    jpeg.save(t.join("green.jpg")).unwrap();
    fs::write(t.join("not.png"), b"hello").unwrap();
    for (args, want) in [
        (
            vec!["predict", "lin", "small.png"],
            "small.png is 16 x 16 pixels and the model takes 32 x 32: give --resize",
        ),
        (
            vec!["predict", "lin", "not.png"],
            "not.png: not a PNG or JPEG image",
        ),
        (
            vec!["predict", "lin", "missing.png"],
            "cannot open missing.png",
        ),
        (vec!["predict", "lin", "green.jpg", "--top", "0"], "--top 0"),
        (
            vec!["predict", "plain", "green.jpg"],
            "plain has no model.safetensors: train the run with --save-weights",
        ),
        (
            vec!["predict", "not.png", "green.jpg"],
            "not.png: not a shallow model",
        ),
        (
            vec!["export", "plain", "--onnx", "x.onnx"],
            "plain has no model.safetensors",
        ),
    ] {
        let (code, _, err) = run(&args, t);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert!(!t.join("x.onnx").exists());
    let out = ok(
        &[
            "predict",
            "lin",
            "small.png",
            "green.jpg",
            "--resize",
            "--top",
            "3",
        ],
        t,
    );
    assert_eq!(out.lines().count(), 2, "{out}");
    // Evaluate on data of another shape: refused.
    let other = t.join("other.npz");
    let mut w = ndarray_npy::NpzWriter::new(fs::File::create(&other).unwrap());
    w.add_array("x_train", &ndarray::Array3::<u8>::zeros((20, 8, 8)))
        .unwrap();
    w.add_array(
        "y_train",
        &ndarray::Array1::<i64>::from_iter((0..20).map(|i| i % 2)),
    )
    .unwrap();
    w.add_array("x_test", &ndarray::Array3::<u8>::zeros((5, 8, 8)))
        .unwrap();
    w.add_array("y_test", &ndarray::Array1::<i64>::zeros(5))
        .unwrap();
    w.finish().unwrap();
    let (code, _, err) = run(&["evaluate", "lin", "--data", other.to_str().unwrap()], t);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the model takes images of 32x32x3 in 10 classes"),
        "{err}"
    );
    // On its own data: the run's test accuracy.
    let e: serde_json::Value =
        serde_json::from_str(&ok(&["evaluate", "lin", "--data", d, "--json"], t)).unwrap();
    let r: serde_json::Value =
        serde_json::from_slice(&fs::read(t.join("lin/result.json")).unwrap()).unwrap();
    assert_eq!(e["accuracy"], r["test_acc"]);
}
