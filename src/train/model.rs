//! A trained network as a file other programs can load: `model.safetensors`,
//! written beside a run's weights (`--save-weights`). It holds every layer's
//! weights and biases, batch norm's vectors and running statistics, and the
//! preprocessing that turns raw pixels into the network's inputs, with
//! metadata saying how to put them together. Tensors (f32 for the trained
//! parameters, f64 for the preprocessing):
//!
//! - `layers.L.weight` (w_out x w_in) and `layers.L.bias` (w_out), L from 0;
//! - `layers.L.norm.weight`, `.bias`, `.running_mean`, `.running_var` (w_out
//!   each) for a hidden layer with batch norm;
//! - `preprocess.mean`, `preprocess.std` (d) and `preprocess.whiten` (d x d, when whitened).
//!
//! With x the raw pixels (d bytes, planes of rows: `input_shape` C x H x W):
//! `x = whiten @ ((x / 255 - mean) / std)`, then per hidden layer
//! `h = relu(norm(W h + b))` with `norm(s) = (s - running_mean) / sqrt(running_var + eps) * weight + bias`,
//! and the last layer's scores through softmax (sigmoid for `loss` bce);
//! with `test_time_flips` the mean of that and of the same with x mirrored
//! (each row of each plane of the preprocessed x reversed, as training flips).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ndarray::{Array1, Array2, ShapeBuilder};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use crate::data::{ImageShape, Preprocess, Whitening};
use crate::nn::{Arch, LayerParams, Net};

/// The file name in a run folder.
pub const MODEL_FILE: &str = "model.safetensors";

/// A trained network with what applying it to raw images needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Layer widths, loss, batch norm.
    pub arch: Arch,
    /// Parameters per layer (f32 values as trained, held in f64).
    pub layers: Vec<LayerParams>,
    /// Raw pixels to inputs.
    pub preprocess: Preprocess,
    /// One name per class.
    pub class_names: Vec<String>,
    /// The input images' layout.
    pub image: ImageShape,
    /// The precision it trained in (`f32`, `bf16`, ...).
    pub precision: String,
    /// Test-time flips: a prediction averages the image's and its mirror's
    /// probabilities, as the run measured it.
    pub tta: bool,
    /// Snapshots the run averaged (0: none). Their weights are not saved:
    /// the model is the run's final net.
    pub snapshots: usize,
}

/// A tensor to write: its name, dtype, shape and little-endian bytes.
struct Tensor(String, Dtype, Vec<usize>, Vec<u8>);

fn f32_tensor(name: String, shape: Vec<usize>, values: impl Iterator<Item = f64>) -> Tensor {
    let bytes = values.flat_map(|v| (v as f32).to_le_bytes()).collect();
    Tensor(name, Dtype::F32, shape, bytes)
}

fn f64_tensor(name: &str, shape: Vec<usize>, values: impl Iterator<Item = f64>) -> Tensor {
    let bytes = values.flat_map(|v| v.to_le_bytes()).collect();
    Tensor(name.to_string(), Dtype::F64, shape, bytes)
}

impl Model {
    /// The safetensors file's bytes.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let mut tensors = Vec::new();
        for (l, p) in self.layers.iter().enumerate() {
            let (rows, cols) = p.w.dim();
            // Row-major (C order) as every reader expects.
            let w = (0..rows).flat_map(|i| (0..cols).map(move |j| (i, j)));
            tensors.push(f32_tensor(
                format!("layers.{l}.weight"),
                vec![rows, cols],
                w.map(|ij| p.w[ij]),
            ));
            tensors.push(f32_tensor(
                format!("layers.{l}.bias"),
                vec![rows],
                p.b.iter().copied(),
            ));
            if let Some(norm) = &p.norm {
                for (name, v) in ["weight", "bias", "running_mean", "running_var"]
                    .iter()
                    .zip(norm)
                {
                    tensors.push(f32_tensor(
                        format!("layers.{l}.norm.{name}"),
                        vec![rows],
                        v.iter().copied(),
                    ));
                }
            }
        }
        let pre = &self.preprocess;
        let d = pre.mean.len();
        tensors.push(f64_tensor(
            "preprocess.mean",
            vec![d],
            pre.mean.iter().copied(),
        ));
        tensors.push(f64_tensor(
            "preprocess.std",
            vec![d],
            pre.std.iter().copied(),
        ));
        if let Some(w) = &pre.matrix {
            let it = (0..d).flat_map(|i| (0..d).map(move |j| w[[i, j]]));
            tensors.push(f64_tensor("preprocess.whiten", vec![d, d], it));
        }
        let views: Vec<(String, TensorView<'_>)> = tensors
            .iter()
            .map(|Tensor(n, t, s, b)| Ok((n.clone(), TensorView::new(*t, s.clone(), b)?)))
            .collect::<Result<_, safetensors::SafeTensorError>>()?;
        let json = |v: &dyn erased::Json| v.to_json();
        let image = self.image;
        let metadata: HashMap<String, String> = [
            ("format", "shallow".to_string()),
            ("shallow_version", env!("CARGO_PKG_VERSION").to_string()),
            ("architecture", self.arch.describe()),
            ("widths", json(&self.arch.widths())),
            ("hidden", json(&self.arch.hidden)),
            ("loss", self.arch.loss.name().to_string()),
            ("batch_norm", self.arch.batch_norm.to_string()),
            ("bn_eps", crate::nn::layers::BN_EPS.to_string()),
            ("class_names", json(&self.class_names)),
            ("input_shape", json(&vec![image.channels, image.height, image.width])),
            ("input_layout", "raw pixel bytes 0-255, planes of rows (C x H x W), flattened".into()),
            ("whiten", pre.whiten.name().to_string()),
            ("whiten_eps", pre.whiten_eps.to_string()),
            ("precision", self.precision.clone()),
            ("test_time_flips", self.tta.to_string()),
            ("snapshots_averaged_by_the_run_not_included", self.snapshots.to_string()),
            (
                "apply",
                "x = preprocess.whiten @ ((pixels / 255 - preprocess.mean) / preprocess.std); \
                 per layer L: s = layers.L.weight @ x + layers.L.bias; hidden layers: \
                 s = (s - norm.running_mean) / sqrt(norm.running_var + bn_eps) * norm.weight + norm.bias \
                 (with batch norm), x = relu(s); last: softmax(s) (sigmoid for loss bce)"
                    .into(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        sorted_header(safetensors::serialize(views, Some(metadata))?)
    }

    /// A note for people using a model of a run that averaged snapshots.
    pub fn snapshot_note(&self) -> Option<String> {
        (self.snapshots > 0).then(|| {
            format!(
                "note: the run averaged its last {} snapshots, whose weights are not saved: this model is its final net, \
                 so its figures are the run's final ones (train_acc, val_acc, test_acc), not the averaged ones",
                self.snapshots
            )
        })
    }

    /// Reads a model from a run folder (its `model.safetensors`) or a file.
    pub fn load(path: &Path) -> Result<Model> {
        let file: PathBuf = if path.is_dir() {
            let f = path.join(MODEL_FILE);
            if !f.exists() {
                bail!(
                    "{} has no {MODEL_FILE}: train the run with --save-weights (runs saved before shallow wrote models have only W*.npy)",
                    path.display()
                );
            }
            f
        } else {
            path.to_path_buf()
        };
        let bytes =
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        Self::from_safetensors(&bytes)
            .with_context(|| format!("{}: not a shallow model", file.display()))
    }

    /// Parses what [`Self::to_safetensors`] wrote.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Model> {
        let (_, meta) = SafeTensors::read_metadata(bytes)?;
        let st = SafeTensors::deserialize(bytes)?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let get = |k: &str| {
            meta.get(k)
                .ok_or_else(|| anyhow!("its metadata has no `{k}`"))
        };
        if get("format")? != "shallow" {
            bail!("its metadata's format is {:?}, not shallow", get("format")?);
        }
        let widths: Vec<usize> = serde_json::from_str(get("widths")?)?;
        let shape: Vec<usize> = serde_json::from_str(get("input_shape")?)?;
        let class_names: Vec<String> = serde_json::from_str(get("class_names")?)?;
        let [channels, height, width] = shape[..] else {
            bail!("input_shape {shape:?} is not [C, H, W]");
        };
        let loss = match get("loss")?.as_str() {
            "ce" => crate::nn::Loss::Ce,
            "bce" => crate::nn::Loss::Bce,
            other => bail!("unknown loss {other:?}"),
        };
        if widths.len() < 2 || widths[widths.len() - 1] != class_names.len() {
            bail!(
                "widths {widths:?} do not end in its {} classes",
                class_names.len()
            );
        }
        let arch = Arch {
            input: widths[0],
            hidden: widths[1..widths.len() - 1].to_vec(),
            classes: widths[widths.len() - 1],
            loss,
            batch_norm: get("batch_norm")? == "true",
        };
        let read = |name: &str, want: &[usize]| read_tensor(&st, name, want);
        let mut layers = Vec::new();
        for l in 0..arch.layers() {
            let (rows, cols) = (widths[l + 1], widths[l]);
            let w = Array2::from_shape_vec(
                (rows, cols),
                read(&format!("layers.{l}.weight"), &[rows, cols])?,
            )?;
            let b = Array1::from(read(&format!("layers.{l}.bias"), &[rows])?);
            let norm = if arch.batch_norm && l + 1 < arch.layers() {
                let v = |n: &str| read(&format!("layers.{l}.norm.{n}"), &[rows]).map(Array1::from);
                Some([
                    v("weight")?,
                    v("bias")?,
                    v("running_mean")?,
                    v("running_var")?,
                ])
            } else {
                None
            };
            layers.push(LayerParams { w, b, norm });
        }
        let d = widths[0];
        let whiten: Whitening =
            serde_json::from_value(serde_json::Value::String(get("whiten")?.clone()))
                .map_err(|_| anyhow!("unknown whitening {:?}", get("whiten")))?;
        let matrix = if whiten == Whitening::None {
            None
        } else {
            Some(Array2::from_shape_vec(
                (d, d),
                read("preprocess.whiten", &[d, d])?,
            )?)
        };
        let preprocess = Preprocess {
            mean: Array1::from(read("preprocess.mean", &[d])?),
            std: Array1::from(read("preprocess.std", &[d])?),
            whiten,
            whiten_eps: get("whiten_eps")?.parse()?,
            matrix,
        };
        let image = ImageShape {
            channels,
            height,
            width,
        };
        if image.pixels() != d {
            bail!(
                "input_shape {shape:?} has {} pixels, and the first layer takes {d}",
                image.pixels()
            );
        }
        Ok(Model {
            arch,
            layers,
            preprocess,
            class_names,
            image,
            precision: get("precision")?.clone(),
            tta: meta.get("test_time_flips").is_some_and(|v| v == "true"),
            snapshots: meta
                .get("snapshots_averaged_by_the_run_not_included")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        })
    }

    /// Class probabilities of raw images (`pixels`: d bytes per image, one
    /// after another, planes of rows), computed in f64 by shallow's own
    /// forward pass: K x n, one column per image.
    pub fn probabilities(&self, pixels: &[u8]) -> Array2<f64> {
        let x = self.preprocess.apply::<f64>(pixels);
        let p = self.net_probabilities(&x);
        if !self.tta {
            return p;
        }
        // As training flips them: the preprocessed features mirrored, each
        // row of each plane reversed.
        let mut mirrored = x;
        let w = self.image.width;
        for mut col in mirrored.columns_mut() {
            let col = col.as_slice_mut().expect("column-major features");
            col.chunks_exact_mut(w).for_each(|row| row.reverse());
        }
        (p + self.net_probabilities(&mirrored)) * 0.5
    }

    /// The network's probabilities of preprocessed features `x` (d x n),
    /// without test-time flips.
    fn net_probabilities(&self, x: &Array2<f64>) -> Array2<f64> {
        let n = x.ncols();
        let k = self.arch.classes;
        let net = Net::<f64>::from_params(&self.arch, &self.layers);
        let mut ws = net.workspace(n.clamp(1, 500));
        let mut out = Array2::<f64>::zeros((k, n).f());
        let mut stats = [crate::nn::net::LossStat::default(); 1];
        let labels = vec![0u8; ws.cap];
        let mut j0 = 0;
        while j0 < n {
            let m = ws.cap.min(n - j0);
            net.forward_loss(
                x.slice(ndarray::s![.., j0..j0 + m]),
                &labels[..m],
                &mut ws,
                &mut stats,
            );
            out.slice_mut(ndarray::s![.., j0..j0 + m])
                .assign(&ws.output(m));
            j0 += m;
        }
        out
    }
}

/// Serialising small values as JSON for the metadata.
mod erased {
    /// A value written as JSON text.
    pub trait Json {
        fn to_json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            serde_json::to_string(self).expect("plain values")
        }
    }
}

/// Tensor `name` of `st` as f64 values, checked to have the shape `want`.
fn read_tensor(st: &SafeTensors<'_>, name: &str, want: &[usize]) -> Result<Vec<f64>> {
    let t = st
        .tensor(name)
        .map_err(|_| anyhow!("it has no tensor {name}"))?;
    if t.shape() != want {
        bail!("{name} has shape {:?}, expected {want:?}", t.shape());
    }
    Ok(match t.dtype() {
        Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
            .collect(),
        Dtype::F64 => t
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        other => bail!("{name} is {other:?}, expected F32 or F64"),
    })
}

/// `bytes` (a safetensors file) with its JSON header's keys in sorted order:
/// the crate writes the metadata from a `HashMap`, whose order changes from
/// one process to the next, and a model must be the same bytes whoever
/// writes it. The data and its offsets are unchanged.
fn sorted_header(bytes: Vec<u8>) -> Result<Vec<u8>> {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    // serde_json's own map is ordered by key.
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n])?;
    let mut json = serde_json::to_vec(&header)?;
    // The data starts on an 8-byte boundary, as the crate writes it.
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

/// A model's figures on a data set's test split (`shallow evaluate`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// The data read.
    pub data: String,
    /// Test images.
    pub images: usize,
    /// Share classified right.
    pub accuracy: f64,
    /// Mean cross-entropy of the true class.
    pub loss: f64,
    /// Class names, in label order.
    pub class_names: Vec<String>,
    /// `confusion[true][predicted]`: image counts, K x K.
    pub confusion: Vec<Vec<usize>>,
}

impl Model {
    /// Refuses data whose images or classes are not the model's.
    pub fn check_data(&self, data: &crate::data::RawData) -> Result<()> {
        if data.shape.image != self.image || data.shape.classes != self.arch.classes {
            bail!(
                "the model takes images of {} in {} classes, and {} holds {} in {}: evaluate it on the data it was trained for",
                self.image.describe(),
                self.arch.classes,
                data.dir.display(),
                data.shape.image.describe(),
                data.shape.classes
            );
        }
        Ok(())
    }

    /// Accuracy, loss and confusion matrix on `data`'s test split.
    pub fn evaluate(&self, data: &crate::data::RawData) -> Result<Evaluation> {
        self.check_data(data)?;
        let k = self.arch.classes;
        let p = self.probabilities(&data.test.pixels);
        let mut confusion = vec![vec![0usize; k]; k];
        let mut loss = 0.0;
        for (j, &y) in data.test.labels.iter().enumerate() {
            let col = p.column(j);
            let total: f64 = col.sum();
            let guess = argmax(col.iter().copied());
            confusion[y as usize][guess] += 1;
            loss -= (col[y as usize] / total).max(1e-300).ln();
        }
        let n = data.test.len();
        let right: usize = (0..k).map(|i| confusion[i][i]).sum();
        Ok(Evaluation {
            data: data.dir.display().to_string(),
            images: n,
            accuracy: right as f64 / n.max(1) as f64,
            loss: loss / n.max(1) as f64,
            class_names: self.class_names.clone(),
            confusion,
        })
    }
}

/// Index of the largest value (the first of equals).
pub fn argmax(values: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        let arch = Arch::for_data(
            &crate::data::DataShape::default(),
            &[4],
            crate::nn::Loss::Ce,
        )
        .with_batch_norm(true);
        let net = Net::<f64>::init(&arch, &[3]);
        let d = arch.input;
        Model {
            layers: net.params(0),
            arch,
            preprocess: Preprocess {
                mean: Array1::from_elem(d, 0.5),
                std: Array1::from_elem(d, 0.25),
                whiten: Whitening::None,
                whiten_eps: 10.0,
                matrix: None,
            },
            class_names: (0..10).map(|k| format!("c{k}")).collect(),
            image: ImageShape::CIFAR,
            precision: "f32".into(),
            tta: true,
            snapshots: 0,
        }
    }

    /// The same model is the same bytes, whatever order the crate's map
    /// gives its metadata, and reads back as it was (f32 parameters).
    #[test]
    fn a_model_is_the_same_bytes_every_time_and_reads_back() {
        let m = model();
        let first = m.to_safetensors().unwrap();
        for _ in 0..20 {
            assert_eq!(m.to_safetensors().unwrap(), first);
        }
        let back = Model::from_safetensors(&first).unwrap();
        let f32s = |a: &Array2<f64>| a.mapv(|v| v as f32 as f64);
        assert_eq!(back.layers[0].w, f32s(&m.layers[0].w));
        assert_eq!(
            back.layers[0].norm.as_ref().unwrap()[3],
            m.layers[0].norm.as_ref().unwrap()[3].mapv(|v| v as f32 as f64)
        );
        assert_eq!(
            (back.preprocess, back.class_names, back.tta),
            (m.preprocess, m.class_names, m.tta)
        );
    }
}
