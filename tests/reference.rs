//! shallow against an independent NumPy implementation of both assignments
//! (tests/fixtures/reference/make.py, written from the assignments' formulas),
//! as llm.c's test_gpt2.c checks itself against PyTorch: standardisation,
//! initialisation scale, probabilities, gradients, the schedule's learning
//! rates, the update order (the cost after each of the first 10 steps) and
//! the weights after them. Finite differences cannot catch a wrong scale,
//! schedule or order; this does. Everything runs in f64, so agreement is to
//! rounding (1e-10 relative), not to f32.

use std::path::PathBuf;

use ndarray::{s, Array1, Array2, ArrayView2, Ix1, Ix2};
use ndarray_npy::{ReadNpyExt, ReadableElement};
use shallow::data::{Split, SplitSpec};
use shallow::nn::{Arch, Loss, Net};
use shallow::train::group::{GroupState, Silent};
use shallow::train::{train_group, Control, Group, RunConfig, Schedule};

fn fixture<A: ReadableElement, D: ndarray::Dimension>(name: &str) -> ndarray::Array<A, D> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/fixtures/reference", name]
        .iter()
        .collect();
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ndarray::Array::<A, D>::read_npy(file).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn matrix(name: &str) -> Array2<f64> {
    fixture::<f64, Ix2>(name)
}

fn vector(name: &str) -> Array1<f64> {
    fixture::<f64, Ix1>(name)
}

/// Largest |a - b| / (1 + |b|) over two arrays of one shape.
fn worst<'a>(a: impl IntoIterator<Item = &'a f64>, b: impl IntoIterator<Item = &'a f64>) -> f64 {
    a.into_iter()
        .zip(b)
        .map(|(p, q)| (p - q).abs() / (1.0 + q.abs()))
        .fold(0.0, f64::max)
}

fn close(what: &str, ours: ArrayView2<'_, f64>, theirs: &Array2<f64>, tol: f64) {
    assert_eq!(ours.dim(), theirs.dim(), "{what}: shapes differ");
    let w = worst(ours.iter(), theirs.iter());
    assert!(w <= tol, "{what}: differs from NumPy by {w:e} (relative)");
}

/// The 100 generated images as a split whose training, validation and test
/// sets are all of them (the reference trains and measures on the same set).
fn split() -> Split<f64> {
    let pixels = fixture::<u8, Ix2>("pixels.npy"); // one image per row: shallow's d x n
    let labels = fixture::<u8, Ix1>("labels.npy").to_vec();
    let px = pixels.as_standard_layout().as_slice().unwrap().to_vec();
    let set = (labels, px);
    Split::from_pixels(
        set.clone(),
        set.clone(),
        set,
        3072,
        SplitSpec::default(),
        vec![],
    )
    .unwrap()
}

#[test]
fn standardisation_matches_numpy() {
    let split = split();
    close(
        "standardised features",
        split.train.x.slice(s![.., ..5]),
        &matrix("x_first5.npy"),
        1e-12,
    );
}

/// The initial weights' scale: N(0, 0.01^2) for the linear model,
/// N(0, 1/fan_in) for the hidden network, as the reference draws them.
#[test]
fn initialisation_scale_matches_the_assignments() {
    let sd = |w: ArrayView2<'_, f64>| {
        let n = w.len() as f64;
        let m = w.sum() / n;
        ((w.mapv(|v| (v - m) * (v - m)).sum() / n).sqrt(), m)
    };
    let a1 = Net::<f64>::init(&Arch::cifar(&[], Loss::Ce), &[3]);
    let a2 = Net::<f64>::init(&Arch::cifar(&[10], Loss::Ce), &[3]);
    let theirs = [
        sd(matrix("a1_W1_init.npy").view()).0,
        sd(matrix("a2_W1_init.npy").view()).0,
    ];
    for (ours, want, theirs, tol) in [
        (sd(a1.weight(0, 0)), 0.01, theirs[0], 0.02),
        (sd(a2.weight(0, 0)), 1.0 / 3072f64.sqrt(), theirs[1], 0.02),
        (
            sd(a2.weight(1, 0)),
            1.0 / 10f64.sqrt(),
            1.0 / 10f64.sqrt(),
            0.25,
        ),
    ] {
        assert!(
            (ours.0 / want - 1.0).abs() < tol,
            "std {} for {want}",
            ours.0
        );
        assert!(
            (theirs / want - 1.0).abs() < tol,
            "the reference's std {theirs}"
        );
        assert!(ours.1.abs() < 0.05 * want, "mean {}", ours.1);
    }
}

/// A network with the reference's initial weights (biases zero).
fn net_from(prefix: &str, hidden: &[usize]) -> Net<f64> {
    let arch = Arch::cifar(hidden, Loss::Ce);
    let mut net = Net::<f64>::zeros(&arch, 1);
    for l in 0..net.layers() {
        let w = matrix(&format!("{prefix}_W{}_init.npy", l + 1));
        net.weight_mut(l, 0).assign(&w);
    }
    net
}

fn config(prefix: &str, hidden: &[usize], lambda: f64, schedule: Schedule) -> RunConfig {
    RunConfig {
        name: prefix.into(),
        hidden: hidden.to_vec(),
        lambda,
        schedule,
        batch: 10,
        steps: 10,
        precision: shallow::nn::Precision::F64,
        log_every: 1,
        ..RunConfig::default()
    }
}

fn compare(prefix: &str, hidden: &[usize], lambda: f64, schedule: Schedule) {
    let split = split();
    let net = net_from(prefix, hidden);
    let (x, y) = (split.train.cols(0, 10), &split.train.labels[..10]);
    // Probabilities of the first batch.
    let mut ws = net.workspace(10);
    let mut stats = [shallow::nn::net::LossStat::default()];
    net.forward_loss(x, y, &mut ws, &mut stats);
    close(
        &format!("{prefix} probabilities"),
        ws.output(10),
        &matrix(&format!("{prefix}_P_init.npy")),
        1e-12,
    );
    // Gradients of the cost on it.
    let grads = net.gradients(x, y, &[lambda]);
    for l in 0..net.layers() {
        let n = l + 1;
        close(
            &format!("{prefix} dW{n}"),
            grads.weight(l, 0),
            &matrix(&format!("{prefix}_dW{n}_init.npy")),
            1e-10,
        );
        let db = vector(&format!("{prefix}_db{n}_init.npy"));
        let w = worst(grads.bias(l, 0).iter(), db.iter());
        assert!(w <= 1e-10, "{prefix} db{n}: differs by {w:e}");
    }
    // Ten steps of the real training loop from those weights.
    let cfg = config(prefix, hidden, lambda, schedule);
    let state = GroupState {
        step: 0,
        net,
        history: vec![Vec::new()],
        diverged: vec![None],
        train_s: 0.0,
        wall_s: 0.0,
        snapshots: vec![Default::default()],
    };
    let group = Group::new(vec![cfg]).unwrap();
    let out = train_group(&group, &[0], &split, &Control::new(), &Silent, Some(state)).unwrap();
    let run = &out.runs[0];
    let costs: Vec<f64> = run.history.iter().map(|p| p.train.cost).collect();
    let want = vector(&format!("{prefix}_costs.npy"));
    assert_eq!(
        costs.len(),
        want.len(),
        "{prefix}: a cost per step and the start"
    );
    let w = worst(costs.iter(), want.iter());
    assert!(
        w <= 1e-10,
        "{prefix} costs {costs:?}\n  NumPy {want}\n  differ by {w:e}"
    );
    let etas: Vec<f64> = run.history[1..].iter().map(|p| p.eta).collect();
    let want_etas = vector(&format!("{prefix}_etas.npy"));
    let w = worst(etas.iter(), want_etas.iter());
    assert!(
        w <= 1e-15,
        "{prefix} learning rates {etas:?}\n  NumPy {want_etas}"
    );
    for (l, p) in run.weights.iter().enumerate() {
        let n = l + 1;
        close(
            &format!("{prefix} W{n} after 10 steps"),
            p.w.view(),
            &matrix(&format!("{prefix}_W{n}_final.npy")),
            1e-10,
        );
        let b = vector(&format!("{prefix}_b{n}_final.npy"));
        let w = worst(p.b.iter(), b.iter());
        assert!(w <= 1e-10, "{prefix} b{n} after 10 steps: differs by {w:e}");
    }
}

#[test]
fn assignment1_linear_model_matches_numpy_step_by_step() {
    compare("a1", &[], 0.1, Schedule::Fixed { eta: 0.01 });
}

#[test]
fn assignment2_network_with_cyclical_rate_matches_numpy_step_by_step() {
    let cyclic = Schedule::Cyclic {
        eta_min: 1e-5,
        eta_max: 1e-1,
        ns: 5,
    };
    compare("a2", &[10], 0.01, cyclic);
}
