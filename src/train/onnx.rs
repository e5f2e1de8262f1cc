//! `shallow export --onnx`: a saved model (or several, averaged) as an ONNX
//! graph that takes raw pixels and returns class probabilities, for any ONNX
//! runtime. The protobuf messages are the subset of the published
//! `onnx.proto` (IR version 8, opset 13) this graph needs, with its field
//! numbers, encoded by prost.
//!
//! The graph: `pixels` (uint8, batch x C x H x W: the data's own layout, an
//! image's planes of rows) -> Cast to float -> Reshape to batch x d ->
//! (x / 255 - mean) / std as one Mul and one Add -> the whitening as a MatMul
//! -> per layer a Gemm (batch norm folded into its W and b) and a Relu ->
//! Softmax (Sigmoid for loss bce) = `probabilities` (float, batch x K). An
//! ensemble averages its members' probabilities (Sum, then Mul by 1/m); a
//! member with test-time flips adds a branch whose preprocessed features are
//! mirrored (a Slice that steps backwards along the width), as training flips.

use anyhow::Result;
use ndarray::{Array1, Array2};
use prost::Message;

use super::model::Model;

/// ONNX's `TensorProto.DataType` values used here.
const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT64: i32 = 7;
/// `AttributeProto.AttributeType`'s INT.
const ATTR_INT: i32 = 2;

#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(int64, tag = "1")]
    ir_version: i64,
    #[prost(string, tag = "2")]
    producer_name: String,
    #[prost(string, tag = "3")]
    producer_version: String,
    #[prost(string, tag = "6")]
    doc_string: String,
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    opset_import: Vec<OperatorSetIdProto>,
    #[prost(message, repeated, tag = "14")]
    metadata_props: Vec<StringStringEntryProto>,
}

#[derive(Clone, PartialEq, Message)]
struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    domain: String,
    #[prost(int64, tag = "2")]
    version: i64,
}

#[derive(Clone, PartialEq, Message)]
struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    output: Vec<String>,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    op_type: String,
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<AttributeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct AttributeProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int64, tag = "3")]
    i: i64,
    #[prost(int32, tag = "20")]
    r#type: i32,
}

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(string, tag = "8")]
    name: String,
    #[prost(bytes = "vec", tag = "9")]
    raw_data: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct ValueInfoProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TypeProto {
    #[prost(message, optional, tag = "1")]
    tensor_type: Option<TensorTypeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorTypeProto {
    #[prost(int32, tag = "1")]
    elem_type: i32,
    #[prost(message, optional, tag = "2")]
    shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    dim: Vec<Dimension>,
}

#[derive(Clone, PartialEq, Message)]
struct Dimension {
    #[prost(int64, optional, tag = "1")]
    dim_value: Option<i64>,
    #[prost(string, optional, tag = "2")]
    dim_param: Option<String>,
}

/// A graph under construction: nodes and initializers.
#[derive(Default)]
struct Builder {
    nodes: Vec<NodeProto>,
    init: Vec<TensorProto>,
}

impl Builder {
    fn constant(
        &mut self,
        name: &str,
        dims: &[usize],
        values: impl Iterator<Item = f64>,
    ) -> String {
        self.init.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            name: name.to_string(),
            raw_data: values.flat_map(|v| (v as f32).to_le_bytes()).collect(),
        });
        name.to_string()
    }
    fn ints(&mut self, name: &str, values: &[i64]) -> String {
        self.init.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: INT64,
            name: name.to_string(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        name.to_string()
    }
    fn node(&mut self, op: &str, inputs: &[&str], out: &str, attrs: Vec<AttributeProto>) -> String {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.to_string()],
            name: format!("{op}_{}", self.nodes.len()),
            op_type: op.to_string(),
            attribute: attrs,
        });
        out.to_string()
    }
}

fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i,
        r#type: ATTR_INT,
    }
}

/// Layer l's W and b with batch norm folded in: W' = diag(a) W,
/// b' = a (b - mean) + beta, a = gamma / sqrt(var + eps).
fn folded(p: &crate::nn::LayerParams) -> (Array2<f64>, Array1<f64>) {
    let Some([gamma, beta, mean, var]) = &p.norm else {
        return (p.w.clone(), p.b.clone());
    };
    let eps = crate::nn::layers::BN_EPS;
    let a: Array1<f64> = gamma
        .iter()
        .zip(var)
        .map(|(g, v)| g / (v + eps).sqrt())
        .collect();
    let mut w = p.w.clone();
    for (mut row, &ai) in w.rows_mut().into_iter().zip(&a) {
        row *= ai;
    }
    let b = (&p.b - mean) * &a + beta;
    (w, b)
}

/// One member's branch from the float pixels `x` (batch x d) to its
/// probabilities; returns the output's name.
fn member(g: &mut Builder, m: &Model, x: &str, tag: &str, flip: bool) -> String {
    let pre = &m.preprocess;
    let scale = g.constant(
        &format!("{tag}_scale"),
        &[pre.std.len()],
        pre.std.iter().map(|s| 1.0 / (255.0 * s)),
    );
    let shift = g.constant(
        &format!("{tag}_shift"),
        &[pre.mean.len()],
        pre.mean.iter().zip(&pre.std).map(|(m, s)| -m / s),
    );
    let h = g.node("Mul", &[x, &scale], &format!("{tag}_scaled"), vec![]);
    let mut h = g.node("Add", &[&h, &shift], &format!("{tag}_standard"), vec![]);
    if let Some(w) = &pre.matrix {
        // Rows are images: x W^T.
        let d = w.nrows();
        let wt = g.constant(
            &format!("{tag}_whiten_t"),
            &[d, d],
            w.t().iter().copied().collect::<Vec<_>>().into_iter(),
        );
        h = g.node("MatMul", &[&h, &wt], &format!("{tag}_whitened"), vec![]);
    }
    if flip {
        // Test-time flips mirror the preprocessed features, as training does.
        let i = m.image;
        let planes = g.ints(
            &format!("{tag}_planes"),
            &[-1, i.channels as i64, i.height as i64, i.width as i64],
        );
        let flat = g.ints(&format!("{tag}_flat"), &[-1, i.pixels() as i64]);
        let starts = g.ints(&format!("{tag}_flip_starts"), &[-1]);
        let ends = g.ints(&format!("{tag}_flip_ends"), &[i64::MIN]);
        let axes = g.ints(&format!("{tag}_flip_axes"), &[3]);
        let steps = g.ints(&format!("{tag}_flip_steps"), &[-1]);
        let p = g.node(
            "Reshape",
            &[&h, &planes],
            &format!("{tag}_as_planes"),
            vec![],
        );
        let f = g.node(
            "Slice",
            &[&p, &starts, &ends, &axes, &steps],
            &format!("{tag}_mirrored"),
            vec![],
        );
        h = g.node(
            "Reshape",
            &[&f, &flat],
            &format!("{tag}_mirrored_flat"),
            vec![],
        );
    }
    let last = m.layers.len() - 1;
    for (l, p) in m.layers.iter().enumerate() {
        let (w, b) = folded(p);
        let wn = g.constant(
            &format!("{tag}_W{l}"),
            &[w.nrows(), w.ncols()],
            w.iter().copied(),
        );
        let bn = g.constant(&format!("{tag}_b{l}"), &[b.len()], b.iter().copied());
        h = g.node(
            "Gemm",
            &[&h, &wn, &bn],
            &format!("{tag}_scores{l}"),
            vec![int_attr("transB", 1)],
        );
        if l < last {
            h = g.node("Relu", &[&h], &format!("{tag}_hidden{l}"), vec![]);
        }
    }
    match m.arch.loss {
        crate::nn::Loss::Ce => g.node(
            "Softmax",
            &[&h],
            &format!("{tag}_probs"),
            vec![int_attr("axis", 1)],
        ),
        crate::nn::Loss::Bce => g.node("Sigmoid", &[&h], &format!("{tag}_probs"), vec![]),
    }
}

/// The ONNX file's bytes for `members` (one model, or an ensemble whose
/// probabilities are averaged; each with test-time flips when it was
/// measured with them).
pub fn export(members: &[Model]) -> Result<Vec<u8>> {
    let first = &members[0];
    let image = first.image;
    for m in members {
        anyhow::ensure!(
            m.image == image && m.class_names == first.class_names,
            "the members take different images or classes: an ensemble needs models of one data set"
        );
    }
    let mut g = Builder::default();
    let x = g.node(
        "Cast",
        &["pixels"],
        "pixels_float",
        vec![int_attr("to", FLOAT as i64)],
    );
    let shape = g.ints("flat_shape", &[-1, image.pixels() as i64]);
    let flat = g.node("Reshape", &[&x, &shape], "x", vec![]);
    let mut outs = Vec::new();
    for (i, m) in members.iter().enumerate() {
        outs.push(member(&mut g, m, &flat, &format!("m{i}"), false));
        if m.tta {
            outs.push(member(&mut g, m, &flat, &format!("m{i}_flip"), true));
        }
    }
    let names: Vec<&str> = outs.iter().map(String::as_str).collect();
    if outs.len() == 1 {
        g.node("Identity", &names, "probabilities", vec![]);
    } else {
        let sum = g.node("Sum", &names, "probability_sum", vec![]);
        let inv = g.constant(
            "one_over_members",
            &[],
            std::iter::once(1.0 / outs.len() as f64),
        );
        g.node("Mul", &[&sum, &inv], "probabilities", vec![]);
    }
    let dim = |v: Option<i64>, p: Option<&str>| Dimension {
        dim_value: v,
        dim_param: p.map(String::from),
    };
    let tensor = |name: &str, elem: i32, dims: Vec<Dimension>| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: elem,
                shape: Some(TensorShapeProto { dim: dims }),
            }),
        }),
    };
    let c = |v: usize| dim(Some(v as i64), None);
    let input = tensor(
        "pixels",
        UINT8,
        vec![
            dim(None, Some("batch")),
            c(image.channels),
            c(image.height),
            c(image.width),
        ],
    );
    let output = tensor(
        "probabilities",
        FLOAT,
        vec![dim(None, Some("batch")), c(first.arch.classes)],
    );
    let meta = |k: &str, v: String| StringStringEntryProto {
        key: k.into(),
        value: v,
    };
    let model = ModelProto {
        ir_version: 8,
        producer_name: "shallow".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "{} ({} member{}): raw pixels (uint8, batch x C x H x W) to class probabilities",
            first.arch.describe(),
            outs.len(),
            if outs.len() == 1 { "" } else { "s" }
        ),
        graph: Some(GraphProto {
            node: g.nodes,
            name: "shallow".into(),
            initializer: g.init,
            input: vec![input],
            output: vec![output],
        }),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        metadata_props: vec![
            meta("class_names", serde_json::to_string(&first.class_names)?),
            meta("members", outs.len().to_string()),
        ],
    };
    Ok(model.encode_to_vec())
}
