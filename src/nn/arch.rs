//! What a network is: its architecture ([`Arch`]), kind and precision.

use serde::{Deserialize, Serialize};

use super::loss::Loss;

/// Floating-point precision chosen on the command line.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Single precision (training default).
    #[default]
    F32,
    /// Double precision (gradient checks).
    F64,
    /// Mixed precision on CPUs with AVX512-BF16: layer 0's two big products
    /// (W X and G X^T) in bf16 with f32 sums, everything else f32.
    Bf16,
    /// Layer 0's two big products as 16-bit integer products of the exact
    /// pixels with 32-bit integer sums (AVX2; AVX-VNNI and AVX512-VNNI where
    /// present), everything else f32. Not with whitening.
    Int16,
    /// The fastest of f32, bf16 and int16 on this CPU, chosen from the
    /// instruction peaks `shallow bench` measures; config.json records the
    /// one taken.
    Fast,
}

impl Precision {
    /// What computes layer 0's products, for config.json: OpenBLAS, or the bf16 kernel.
    pub fn layer0_kernel(self) -> &'static str {
        match self {
            Precision::F32 => "OpenBLAS sgemm",
            Precision::F64 => "OpenBLAS dgemm",
            Precision::Bf16 => "shallow's AVX512-BF16 kernel (VDPBF16PS: bf16 products, f32 sums)",
            Precision::Int16 => {
                "shallow's int16 kernel (VPMADDWD or VPDPWSSD: 16-bit products of exact pixels, i32 sums)"
            }
            Precision::Fast => "the fastest kernel of this CPU (--precision fast)",
        }
    }

    /// The name the command line and config.json use.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
            Precision::Bf16 => "bf16",
            Precision::Int16 => "int16",
            Precision::Fast => "fast",
        }
    }

    /// The precision a run trains in: `fast` becomes the kernel
    /// [`crate::linalg::peak::fastest`] takes on this CPU (never int16 for
    /// `whitened` inputs, which are not bytes); the rest stay.
    pub fn resolved(self, whitened: bool) -> Precision {
        use crate::linalg::peak::{fastest, Layer0Kind};
        match self {
            Precision::Fast => match fastest(!whitened).0 {
                Layer0Kind::F32 => Precision::F32,
                Layer0Kind::Bf16 => Precision::Bf16,
                Layer0Kind::Int16 => Precision::Int16,
            },
            p => p,
        }
    }

    /// Whether networks of this precision hold f32 (every one but f64).
    pub fn is_f32(self) -> bool {
        self != Precision::F64
    }
}

/// Which network: the linear classifier (Assignment 1) or the MLP (Assignment 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Softmax (or BCE) on W x + b, no hidden layer.
    Linear,
    /// Hidden ReLU layers (`--hidden`), then the output layer.
    Mlp,
}

/// Network architecture shared by every configuration of a group.
///
/// `hidden` empty is the linear softmax classifier of Assignment 1; `[50]` is the
/// two-layer ReLU network of Assignment 2; `[100, 50]` adds a hidden layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arch {
    /// Input dimension d (3072 for CIFAR-10).
    pub input: usize,
    /// Hidden layer widths, input side first.
    pub hidden: Vec<usize>,
    /// Number of classes K.
    pub classes: usize,
    /// Output loss.
    pub loss: Loss,
    /// Batch normalisation after every hidden layer's scores, before the ReLU
    /// (learned gamma and beta per unit, running averages for evaluation).
    #[serde(default)]
    pub batch_norm: bool,
}

impl Arch {
    /// A CIFAR-10 network (d = 3072 inputs, K = 10 classes) with these hidden
    /// widths (none: linear) and loss.
    pub fn cifar(hidden: &[usize], loss: Loss) -> Self {
        Arch {
            input: crate::data::PIXELS,
            hidden: hidden.to_vec(),
            classes: crate::data::CLASSES,
            loss,
            batch_norm: false,
        }
    }

    /// A network for images of `data`'s size and classes with these hidden
    /// widths (none: linear) and loss.
    pub fn for_data(data: &crate::data::DataShape, hidden: &[usize], loss: Loss) -> Self {
        Arch {
            input: data.pixels(),
            classes: data.classes,
            ..Arch::cifar(hidden, loss)
        }
    }

    /// This architecture with batch normalisation on (`on`) or off.
    pub fn with_batch_norm(mut self, on: bool) -> Self {
        self.batch_norm = on && !self.hidden.is_empty();
        self
    }
    /// Layer widths `[d, h1, ..., K]`; layer l maps `widths[l]` to `widths[l + 1]`.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = vec![self.input];
        w.extend(&self.hidden);
        w.push(self.classes);
        w
    }
    /// Number of dense layers (hidden layers + 1).
    pub fn layers(&self) -> usize {
        self.hidden.len() + 1
    }
    /// Number of weights and biases of one configuration.
    pub fn parameters(&self) -> usize {
        self.widths().windows(2).map(|p| p[0] * p[1] + p[1]).sum()
    }
    /// Floating-point operations of one training step on a batch of `n`, counted
    /// from the GEMMs (2 m n k each): forward, backward to hidden inputs, weight gradients.
    pub fn step_flops(&self, n: usize) -> f64 {
        let w = self.widths();
        let mut f = 0.0;
        for l in 0..self.layers() {
            let mk = (w[l] * w[l + 1]) as f64;
            f += 2.0 * mk * n as f64 * if l == 0 { 2.0 } else { 3.0 };
        }
        f
    }
    /// Floating-point operations of a forward pass over `n` samples.
    pub fn forward_flops(&self, n: usize) -> f64 {
        let w = self.widths();
        (0..self.layers())
            .map(|l| 2.0 * (w[l] * w[l + 1] * n) as f64)
            .sum()
    }
    /// Short human description, e.g. `linear` or `mlp 3072-50-10`.
    pub fn describe(&self) -> String {
        let w: Vec<String> = self.widths().iter().map(|v| v.to_string()).collect();
        let kind = if self.hidden.is_empty() {
            "linear"
        } else {
            "mlp"
        };
        let bn = if self.batch_norm { ", batch norm" } else { "" };
        format!("{kind} {} ({}{bn})", w.join("-"), self.loss.name())
    }
}
