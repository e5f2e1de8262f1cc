//! `shallow predict MODEL IMAGE...`, `shallow evaluate MODEL --data DIR` and
//! `shallow export MODEL... --onnx FILE`: a saved model (a run folder or its
//! `model.safetensors`) applied to image files, or to a data set's test split
//! with its confusion matrix, or written as an ONNX graph.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;

use super::args::DataArgs;
use super::common::{print_json, Finish};
use crate::train::model::{argmax, Model};

/// Flags of `shallow predict`.
#[derive(Args)]
pub struct PredictArgs {
    /// A run folder trained with --save-weights, or its model.safetensors.
    pub model: PathBuf,
    /// PNG or JPEG files, of the model's image size (else give --resize).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// Scale images of another size to the model's (bilinear) instead of refusing them.
    #[arg(long)]
    pub resize: bool,
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `shallow evaluate`.
#[derive(Args)]
pub struct EvaluateArgs {
    /// A run folder trained with --save-weights, or its model.safetensors.
    pub model: PathBuf,
    /// The data set whose test split to classify.
    #[command(flatten)]
    pub data: DataArgs,
    /// Where to write evaluation.json and confusion.png [default: the run folder,
    /// or the model file's folder].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

/// One class and its probability.
#[derive(Serialize)]
struct Guess {
    class: String,
    index: usize,
    probability: f64,
}

/// What `predict` says about one image.
#[derive(Serialize)]
struct Prediction {
    image: String,
    top: Vec<Guess>,
    probabilities: Vec<f64>,
}

/// The pixels of the image file `path` as the model reads them: bytes, planes
/// of rows, of the model's size (scaled when `resize`, else refused).
pub fn read_image(path: &Path, model: &Model, resize: bool) -> Result<Vec<u8>> {
    let img = image::ImageReader::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("cannot read {}", path.display()))?
        .decode()
        .with_context(|| {
            format!(
                "{}: not a PNG or JPEG image shallow can read",
                path.display()
            )
        })?;
    let shape = model.image;
    let (w, h) = (shape.width as u32, shape.height as u32);
    let img = if (img.width(), img.height()) == (w, h) {
        img
    } else if resize {
        img.resize_exact(w, h, image::imageops::FilterType::Triangle)
    } else {
        bail!(
            "{} is {} x {} pixels and the model takes {} x {}: give --resize to scale it",
            path.display(),
            img.width(),
            img.height(),
            w,
            h
        );
    };
    let plane = shape.plane();
    let mut px = vec![0u8; shape.pixels()];
    match shape.channels {
        1 => px.copy_from_slice(img.to_luma8().as_raw()),
        3 => {
            for (i, rgb) in img.to_rgb8().as_raw().chunks_exact(3).enumerate() {
                for c in 0..3 {
                    px[c * plane + i] = rgb[c];
                }
            }
        }
        c => bail!("the model takes images of {c} channels: only grey or colour images can be read from files"),
    }
    Ok(px)
}

/// `shallow predict`: the top classes of each image.
pub fn predict(a: &PredictArgs) -> Result<Finish> {
    if a.top == 0 {
        bail!("--top 0: print at least one class, e.g. --top 3");
    }
    let model = Model::load(&a.model)?;
    if let Some(note) = model.snapshot_note() {
        eprintln!("{note}");
    }
    let mut pixels = Vec::new();
    for path in &a.images {
        pixels.extend(read_image(path, &model, a.resize)?);
    }
    let p = model.probabilities(&pixels);
    let top = a.top.min(model.arch.classes);
    let predictions: Vec<Prediction> = a
        .images
        .iter()
        .zip(p.columns())
        .map(|(path, col)| {
            let mut order: Vec<usize> = (0..col.len()).collect();
            order.sort_by(|&i, &j| col[j].total_cmp(&col[i]).then(i.cmp(&j)));
            Prediction {
                image: path.display().to_string(),
                top: order[..top]
                    .iter()
                    .map(|&k| Guess {
                        class: model.class_names[k].clone(),
                        index: k,
                        probability: col[k],
                    })
                    .collect(),
                probabilities: col.to_vec(),
            }
        })
        .collect();
    if a.json {
        print_json(&predictions)?;
    } else {
        for p in &predictions {
            let guesses: Vec<String> = p
                .top
                .iter()
                .map(|g| format!("{} {:.1}%", g.class, 100.0 * g.probability))
                .collect();
            crate::outln!("{}: {}", p.image, guesses.join("  "))?;
        }
    }
    Ok(Finish::Done)
}

/// `shallow evaluate`: accuracy and confusion matrix on a test split.
pub fn evaluate(a: &EvaluateArgs) -> Result<Finish> {
    let model = Model::load(&a.model)?;
    if let Some(note) = model.snapshot_note() {
        eprintln!("{note}");
    }
    let out = match &a.out {
        Some(o) => o.clone(),
        None if a.model.is_dir() => a.model.clone(),
        None => a
            .model
            .parent()
            .map_or(PathBuf::from("."), Path::to_path_buf),
    };
    let data = crate::data::load(&a.data.source())?;
    let e = model.evaluate(&data)?;
    crate::util::create_dir(&out)?;
    crate::util::write_json(&out.join("evaluation.json"), &e)?;
    crate::report::confusion::draw(&out.join("confusion.png"), &e)?;
    if crate::folder::kind_of(&out) == Some(crate::folder::FolderKind::Run) {
        // The run's report shows the evaluation and its picture.
        crate::report::build::build(&out)?;
    }
    if a.json {
        print_json(&e)?;
        return Ok(Finish::Done);
    }
    crate::outln!(
        "{} test images of {}: accuracy {:.2}%, loss {:.4}",
        e.images,
        e.data,
        100.0 * e.accuracy,
        e.loss
    )?;
    let k = e.class_names.len();
    let per_class: Vec<String> = (0..k)
        .map(|i| {
            let n: usize = e.confusion[i].iter().sum();
            let worst = argmax((0..k).map(|j| {
                if j == i {
                    -1.0
                } else {
                    e.confusion[i][j] as f64
                }
            }));
            let mistake = if e.confusion[i][worst] == 0 {
                String::new()
            } else {
                format!("  (most often taken for {})", e.class_names[worst])
            };
            format!(
                "  {:<14} {:>6.2}%{mistake}",
                e.class_names[i],
                100.0 * e.confusion[i][i] as f64 / n.max(1) as f64,
            )
        })
        .collect();
    crate::outln!("per class:\n{}", per_class.join("\n"))?;
    crate::outln!("confusion matrix: {}", out.join("confusion.png").display())?;
    Ok(Finish::Done)
}

/// Flags of `shallow export`.
#[derive(Args)]
pub struct ExportArgs {
    /// Run folders trained with --save-weights (or their model.safetensors);
    /// several make one graph that averages their probabilities (a seed ensemble).
    #[arg(required = true)]
    pub models: Vec<PathBuf>,
    /// The ONNX file to write.
    #[arg(long, value_name = "FILE")]
    pub onnx: PathBuf,
}

/// `shallow export --onnx`: the model(s) as one ONNX graph.
pub fn export(a: &ExportArgs) -> Result<Finish> {
    let members: Vec<Model> = a
        .models
        .iter()
        .map(|p| Model::load(p))
        .collect::<Result<_>>()?;
    if let Some(note) = members.iter().find_map(Model::snapshot_note) {
        eprintln!("{note}");
    }
    let bytes = crate::train::onnx::export(&members)?;
    crate::util::write_atomic(&a.onnx, &bytes)?;
    let flips = members.iter().filter(|m| m.tta).count();
    eprintln!(
        "wrote {}: {} model{}{}, raw pixels (uint8, batch x {} x {} x {}) to class probabilities",
        a.onnx.display(),
        members.len(),
        if members.len() == 1 { "" } else { "s averaged" },
        if flips > 0 {
            ", with test-time flips"
        } else {
            ""
        },
        members[0].image.channels,
        members[0].image.height,
        members[0].image.width
    );
    Ok(Finish::Done)
}
