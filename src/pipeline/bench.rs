//! The benchmark behind `shallow bench`: the machine's GEMM roofline through
//! the trainer's own BLAS path, then what training achieves against it (steps
//! with a per-phase profile, evaluation, the A2 sweep whole), as a report.

use std::time::Instant;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::data::{RawData, Split, SplitKind, SplitSpec};
use crate::nn::net::{Eval, LossStat};
use crate::nn::profile;
use ndarray::{Array2, ShapeBuilder};

use crate::nn::{blas, Arch, Loss, Net, Real};
use crate::sweep::{run_plan, RunnerOptions, SweepSpec};
use crate::train::Control;
use crate::ui::{Dashboard, DisplayMode};

/// What to measure.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchOptions {
    /// A run of a few seconds (shorter timings, a small sweep).
    pub quick: bool,
    /// Cores to use for the "all cores" figures.
    pub cores: usize,
    /// Also measure dgemm.
    pub f64: bool,
    /// Skip the sweep measurement.
    pub no_sweep: bool,
}

/// One GEMM shape's speed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GemmBench {
    /// What the shape is in the workload.
    pub role: String,
    /// `sgemm` or `dgemm`.
    pub kind: String,
    /// Rows of the output.
    pub m: usize,
    /// Columns of the output.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// GFLOP/s with one BLAS thread.
    pub gflops_1t: f64,
    /// GFLOP/s with every core: one call, OpenBLAS's own threads.
    pub gflops_all: f64,
    /// GFLOP/s with every core: the output's columns cut into the fixed
    /// single-threaded blocks of `nn::blas::gemm_blocks` (what training uses).
    pub gflops_split: f64,
}

/// A training step's speed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepBench {
    /// Network, e.g. `mlp 3072-50-10 (ce)`.
    pub model: String,
    /// Configurations stacked in lockstep.
    pub configs: usize,
    /// Cores used (BLAS single-threaded; with more than one, layer 0's fixed
    /// blocks run in parallel).
    pub threads: usize,
    /// Milliseconds per step (for the whole group).
    pub ms_per_step: f64,
    /// Achieved GFLOP/s (GEMM FLOPs counted from the shapes).
    pub gflops: f64,
    /// Time the step's GEMMs take at the measured GEMM speeds, ms.
    pub gemm_floor_ms: f64,
    /// gemm_floor_ms / ms_per_step: how close the step is to the roofline.
    pub roofline_fraction: f64,
    /// Per phase: (name, ms per step).
    pub phases: Vec<(String, f64)>,
}

/// The 8-lambda lockstep sweep, as `shallow sweep` runs it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepBench {
    /// f32, or bf16 (layer 0's products in the AVX512-BF16 kernel).
    #[serde(default)]
    pub precision: crate::nn::Precision,
    /// Configurations.
    pub configs: usize,
    /// Lockstep groups they train in.
    pub groups: usize,
    /// Steps per configuration.
    pub steps: usize,
    /// Logged points per cycle (0: the start and the end only).
    pub log_points: usize,
    /// Wall seconds of the sweep (training, curves and the final evaluation).
    pub wall_s: f64,
    /// Achieved GFLOP/s over the wall time, training GEMMs only.
    pub gflops: f64,
    /// The training GEMMs' time at the measured single-threaded speeds of the
    /// groups' shapes, spread over every core: no sweep can train faster.
    pub gemm_floor_s: f64,
}

/// Everything `shallow bench` measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchReport {
    /// BLAS build.
    pub blas: String,
    /// Who chose the BLAS kernel (OpenBLAS, the environment, or shallow).
    pub blas_kernel_source: String,
    /// Cores used for the "all cores" figures.
    pub cores: usize,
    /// Data used.
    pub data: String,
    /// GEMM roofline.
    pub gemm: Vec<GemmBench>,
    /// One core's f32 FMA and bf16 dot-product peaks (AVX512-BF16 CPUs only):
    /// whether bf16 can beat f32 on this CPU at all.
    #[serde(default)]
    pub peak: Option<crate::linalg::peak::Peaks>,
    /// Training steps.
    pub steps: Vec<StepBench>,
    /// Forward-only evaluation, images per second (m = 50, all cores).
    pub eval_images_per_s: f64,
    /// The sweep without and with its default curves, unless skipped.
    pub sweep: Vec<SweepBench>,
    /// Wall seconds of the whole benchmark.
    pub wall_s: f64,
}

/// Seconds per call of `f`, repeated for about `min_s` after a warm-up.
fn time_per_call(min_s: f64, mut f: impl FnMut()) -> f64 {
    f();
    let t0 = Instant::now();
    let mut calls = 0u64;
    while calls < 3 || t0.elapsed().as_secs_f64() < min_s {
        f();
        calls += 1;
    }
    t0.elapsed().as_secs_f64() / calls as f64
}

/// GFLOP/s of one m x n x k product with the current BLAS threads: one call, or
/// with `blocked` the fixed blocks of [`crate::nn::blas::gemm_blocks`] (call it
/// inside the rayon pool whose threads should run them).
fn gemm_gflops<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    trans_b: bool,
    blocked: bool,
    min_s: f64,
) -> f64 {
    let a = Array2::from_elem((m, k).f(), T::of(0.5));
    // op(B) is k x n: stored n x k and read transposed, as the gradient's X^T.
    let b = if trans_b {
        Array2::from_elem((n, k).f(), T::of(0.25))
    } else {
        Array2::from_elem((k, n).f(), T::of(0.25))
    };
    let bv = if trans_b { b.t() } else { b.view() };
    let mut c = Array2::<T>::zeros((m, n).f());
    let s = time_per_call(min_s, || {
        if blocked {
            blas::gemm_blocks(T::one(), a.view(), bv, T::one(), c.view_mut())
        } else {
            blas::gemm(T::one(), a.view(), bv, T::one(), c.view_mut())
        }
    });
    2.0 * (m * n * k) as f64 / s / 1e9
}

/// GFLOP/s of one m x n x k product in the bf16 kernel on one core, operands
/// packed beforehand; with `repack`, A is re-packed before every product (as
/// the weights are after every update).
fn bf16_gflops(m: usize, n: usize, k: usize, repack: bool, min_s: f64) -> Result<f64> {
    use crate::linalg::bf16;
    let a = Array2::from_elem((m, k).f(), 0.5f32);
    let b = Array2::from_elem((k, n).f(), 0.25f32);
    let mut pa = bf16::PackedA::of(a.view());
    let pb = bf16::PackedB::of(b.view());
    let mut c = Array2::<f32>::zeros((m, n).f());
    let mut err = Ok(());
    let s = time_per_call(min_s, || {
        if repack {
            pa.pack(a.view());
        }
        if let Err(e) = bf16::gemm(1.0, &pa, pb.view(), 1.0, c.view_mut()) {
            err = Err(e);
        }
    });
    err?;
    Ok(2.0 * (m * n * k) as f64 / s / 1e9)
}

/// GFLOP/s of one m x n x k product in the int16 kernel on one core (a
/// multiply-add counted as 2 FLOPs), B packed beforehand; with `requantise`,
/// A is quantised again before every product (as the weights are after
/// every update).
fn int16_gflops(m: usize, n: usize, k: usize, requantise: bool, min_s: f64) -> Result<f64> {
    use crate::linalg::int16;
    let isa = int16::require()?;
    let a = Array2::from_shape_fn((m, k).f(), |(i, j)| ((i * 7 + j * 3) % 17) as f32 - 8.0);
    let mut pa = int16::PackedA::new(m, k);
    pa.quantise(a.view(), None, None);
    let mut pb = int16::PackedB::new(k, n);
    pb.pack_ints(Array2::from_shape_fn((k, n), |(i, j)| ((i + j) % 255) as i16 - 128).view());
    let mut c = Array2::<f32>::zeros((m, n).f());
    let cols = int16::Columns::default();
    let s = time_per_call(min_s, || {
        if requantise {
            pa.quantise(a.view(), None, None);
        }
        int16::gemm_blocks_with(isa, 1.0, &pa, pb.view(), cols, 1.0, c.view_mut());
    });
    Ok(2.0 * (m * n * k) as f64 / s / 1e9)
}

/// The GEMM shapes of the workload: (role, m, n, k, B transposed).
fn shapes() -> Vec<(&'static str, usize, usize, usize, bool)> {
    vec![
        ("A2 forward W1 X", 50, 100, 3072, false),
        ("A2 gradient G X^T", 50, 3072, 100, true),
        ("A1 forward W X", 10, 100, 3072, false),
        ("A1 gradient G X^T", 10, 3072, 100, true),
        ("4 stacked forward", 200, 100, 3072, false),
        ("4 stacked gradient", 200, 3072, 100, true),
        ("8 stacked forward", 400, 100, 3072, false),
        ("8 stacked gradient", 400, 3072, 100, true),
        ("square 1024", 1024, 1024, 1024, false),
    ]
}

#[allow(clippy::too_many_arguments)]
fn step_bench<T: Real>(
    split: &Split<T>,
    hidden: &[usize],
    configs: usize,
    gather: Option<crate::data::Augment>,
    threads: usize,
    min_s: f64,
    roof: &dyn Fn(usize, usize, usize, bool, bool) -> f64,
    precision: crate::nn::Precision,
) -> Result<StepBench> {
    blas::set_threads(1);
    let arch = Arch::cifar(hidden, Loss::Ce);
    let batch = 100;
    let seeds: Vec<u64> = (0..configs as u64).collect();
    let mut net = Net::<T>::init(&arch, &seeds);
    // bf16 and int16 on consecutive batches read the images converted once, as the trainer does.
    let packed = crate::train::group::enable_kernel(precision, gather.is_none(), &mut net, split)?;
    let mut ws = net.workspace(batch);
    let mut stats = vec![LossStat::default(); configs];
    let etas = vec![T::of(0.01); configs];
    let lambdas = vec![T::of(0.01); configs];
    let regs = vec![crate::nn::net::StepRegs::default(); configs];
    let per_epoch = split.train.len() / batch;
    let mut t = 0usize;
    // With augmentation the batch is gathered image by image, flipped and
    // shifted, into a buffer allocated once, as the trainer does.
    let mut gathered = ndarray::Array2::<T>::zeros((arch.input, batch).f());
    let mut ids = vec![0usize; batch];
    let mut step = |net: &mut Net<T>| {
        let mut timer = profile::start();
        let pos = t % per_epoch;
        let y = &split.train.labels[pos * batch..(pos + 1) * batch];
        // A shuffled epoch's order, as the trainer gathers it.
        let image = |k: usize| (pos * batch + k) * 7919 % (per_epoch * batch);
        if let Some(augment) = gather {
            for (k, id) in ids.iter_mut().enumerate() {
                *id = image(k);
            }
            crate::data::augment::gather(
                &split.train,
                &ids,
                gathered.as_slice_memory_order_mut().expect("Fortran order"),
                &augment,
                1,
                t,
            );
        }
        let x = if gather.is_some() {
            gathered.view().into()
        } else {
            crate::nn::Input {
                x: split.train.cols(pos * batch, batch),
                packed: packed.and_then(|p| p.batch(pos * batch, batch)),
            }
        };
        profile::lap(&mut timer, profile::Phase::Batch);
        net.forward_train(x, y, &mut ws, &mut stats, t as u64, &regs);
        net.backward_update(x, y, &mut ws, &etas, &lambdas);
        t += 1;
    };
    let s = time_per_call(min_s, || step(&mut net));
    // Profile in a second pass (the timers are off during the timing above).
    profile::enable(true);
    let steps = 200;
    for _ in 0..steps {
        step(&mut net);
    }
    let phases = profile::totals();
    profile::enable(false);
    let flops = configs as f64 * arch.step_flops(batch);
    // GEMM floor: the step's GEMMs at the measured speeds of the path they take
    // (layer 0 in fixed blocks over the cores, later layers one single-threaded call).
    let w = arch.widths();
    let mut floor = 0.0;
    for l in 0..arch.layers() {
        let (m, k) = (configs * w[l + 1], w[l]);
        let (m1, per) = if l == 0 { (m, 1) } else { (w[l + 1], configs) };
        let first = l == 0;
        floor +=
            per as f64 * 2.0 * (m1 * batch * k) as f64 / (roof(m1, batch, k, false, first) * 1e9);
        floor +=
            per as f64 * 2.0 * (m1 * k * batch) as f64 / (roof(m1, k, batch, true, first) * 1e9);
        if l > 0 {
            floor += per as f64 * 2.0 * (m1 * k * batch) as f64
                / (roof(k, batch, m1, false, false) * 1e9);
        }
    }
    Ok(StepBench {
        model: match (gather, precision) {
            (_, crate::nn::Precision::Bf16 | crate::nn::Precision::Int16) => {
                format!("{}, {}", arch.describe(), precision.name())
            }
            (Some(a), _) if a.is_on() => format!("{}, shuffled+augmented", arch.describe()),
            (Some(_), _) => format!("{}, shuffled", arch.describe()),
            (None, _) => arch.describe(),
        },
        configs,
        threads,
        ms_per_step: s * 1e3,
        gflops: flops / s / 1e9,
        gemm_floor_ms: floor * 1e3,
        roofline_fraction: floor / s,
        phases: profile::NAMES
            .iter()
            .zip(phases)
            .map(|(n, v)| (n.to_string(), v * 1e3 / steps as f64))
            .collect(),
    })
}

/// Runs every measurement.
pub fn run(data: Option<&RawData>, opts: &BenchOptions) -> Result<BenchReport> {
    let t0 = Instant::now();
    let min_s = if opts.quick { 0.05 } else { 0.3 };
    let cores = opts.cores.max(1);
    let split_a1 = match data {
        Some(d) => Split::<f32>::new(d, SplitSpec::default())?,
        None => crate::data::generated::split_like(SplitKind::A1, 1),
    };
    // Every measurement runs in a pool of `cores` threads, as training does
    // (BLAS single-threaded, layer 0 in fixed blocks); `one` is the 1-core pool.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(cores).build()?;
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let gemm = gemm_benches(opts, &pool, cores, min_s)?;
    let peak = Some(crate::linalg::peak::Peaks::measure(min_s));
    let steps = step_benches(&split_a1, &pool, &one, cores, min_s)?;
    let eval_images_per_s = eval_throughput(&split_a1, &pool, min_s);
    drop(split_a1);
    let sweep = if opts.no_sweep {
        Vec::new()
    } else {
        sweep_benches(data, opts, &one, cores, min_s)?
    };
    Ok(BenchReport {
        blas: blas::describe(),
        blas_kernel_source: blas::kernel_source(),
        cores,
        data: data.map_or("generated (no CIFAR-10 found)".into(), |d| {
            d.dir.display().to_string()
        }),
        gemm,
        peak,
        steps,
        eval_images_per_s,
        sweep,
        wall_s: t0.elapsed().as_secs_f64(),
    })
}

/// The GEMM roofline: every workload shape in f32 (and f64 with `--f64`) on
/// one thread, on every core and in fixed blocks, then the bf16 kernel.
fn gemm_benches(
    opts: &BenchOptions,
    pool: &rayon::ThreadPool,
    cores: usize,
    min_s: f64,
) -> Result<Vec<GemmBench>> {
    let speeds = |m: usize, n: usize, k: usize, tb: bool, f64_: bool| {
        let measure = |threads: usize, blocked: bool| {
            blas::set_threads(threads);
            let g = pool.install(|| {
                if f64_ {
                    gemm_gflops::<f64>(m, n, k, tb, blocked, min_s)
                } else {
                    gemm_gflops::<f32>(m, n, k, tb, blocked, min_s)
                }
            });
            blas::set_threads(1);
            g
        };
        (measure(1, false), measure(cores, false), measure(1, true))
    };
    let mut gemms = Vec::new();
    for (role, m, n, k, tb) in shapes() {
        for (kind, f64_) in [("sgemm", false), ("dgemm", true)] {
            if f64_ && !opts.f64 {
                continue;
            }
            let (one_t, all, split) = speeds(m, n, k, tb, f64_);
            gemms.push(GemmBench {
                role: role.into(),
                kind: kind.into(),
                m,
                n,
                k,
                gflops_1t: one_t,
                gflops_all: all,
                gflops_split: split,
            });
        }
    }
    // The bf16 kernel (AVX512-BF16 only): one core; "all: BLAS" holds the
    // speed with A re-packed every call, "all: blocks" is not measured.
    if crate::linalg::bf16::available() {
        for (role, m, n, k, _) in shapes() {
            gemms.push(GemmBench {
                role: role.into(),
                kind: "bf16".into(),
                m,
                n,
                k,
                gflops_1t: bf16_gflops(m, n, k, false, min_s)?,
                gflops_all: bf16_gflops(m, n, k, true, min_s)?,
                gflops_split: f64::NAN,
            });
        }
    }
    // The int16 kernel (AVX2 and later), the same way; its "all: BLAS"
    // column quantises A before every product.
    if crate::linalg::int16::isa().is_some() {
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
        for (role, m, n, k, _) in shapes() {
            gemms.push(GemmBench {
                role: role.into(),
                kind: "int16".into(),
                m,
                n,
                k,
                gflops_1t: one.install(|| int16_gflops(m, n, k, false, min_s))?,
                gflops_all: one.install(|| int16_gflops(m, n, k, true, min_s))?,
                gflops_split: f64::NAN,
            });
        }
    }
    Ok(gemms)
}

/// Training steps of the workload's shapes (linear, m = 50, gathered and
/// augmented batches, groups of 4 and 8, bf16), on one core and on `cores`.
fn step_benches(
    split_a1: &Split<f32>,
    pool: &rayon::ThreadPool,
    one: &rayon::ThreadPool,
    cores: usize,
    min_s: f64,
) -> Result<Vec<StepBench>> {
    let mut steps = Vec::new();
    for threads in [1, cores] {
        let p = if threads == 1 { one } else { pool };
        let flips = crate::data::Augment {
            flip: true,
            translate: 2,
            pad: crate::data::Pad::Reflect,
        };
        let plain = crate::data::Augment::default();
        use crate::nn::Precision::{Bf16, Int16, F32};
        let bf16 = crate::linalg::bf16::available();
        let int16 = crate::linalg::int16::isa().is_some();
        for (hidden, configs, gather, precision) in [
            (vec![], 1, None, F32),
            (vec![50], 1, None, F32),
            (vec![50], 1, Some(plain), F32),
            (vec![50], 1, Some(flips), F32),
            (vec![50], 4, None, F32),
            (vec![50], 8, None, F32),
            (vec![50], 1, None, Bf16),
            (vec![50], 4, None, Bf16),
            (vec![50], 8, None, Bf16),
            (vec![50], 1, None, Int16),
            (vec![50], 1, Some(flips), Int16),
            (vec![50], 4, None, Int16),
            (vec![50], 8, None, Int16),
        ] {
            if (precision == Bf16 && !bf16) || (precision == Int16 && !int16) {
                continue;
            }
            // Each product at the speed of the path training takes for it.
            let roof = |m: usize, n: usize, k: usize, tb: bool, layer0: bool| {
                blas::set_threads(1);
                p.install(|| gemm_gflops::<f32>(m, n, k, tb, layer0, min_s / 3.0))
            };
            steps.push(p.install(|| {
                step_bench(
                    split_a1,
                    &hidden,
                    configs,
                    gather,
                    threads,
                    min_s * 3.0,
                    &roof,
                    precision,
                )
            })?);
        }
        if cores == 1 {
            break;
        }
    }
    Ok(steps)
}

/// Images per second of forward-only evaluation (m = 50, one configuration).
fn eval_throughput(split_a1: &Split<f32>, pool: &rayon::ThreadPool, min_s: f64) -> f64 {
    blas::set_threads(1);
    let arch = Arch::cifar(&[50], Loss::Ce);
    let net = Net::<f32>::init(&arch, &[1]);
    let mut ws = net.workspace(crate::train::group::EVAL_CHUNK);
    let mut out = [Eval::default()];
    let s = pool.install(|| {
        time_per_call(min_s, || {
            net.evaluate(
                split_a1.val.view(),
                &split_a1.val.labels,
                &[0.0],
                &mut ws,
                &mut out,
            )
        })
    });
    split_a1.val.len() as f64 / s
}

/// The A2 sweep of 8 lambdas, whole, in f32 and bf16, with and without
/// logged points, against its GEMM floor.
fn sweep_benches(
    data: Option<&RawData>,
    opts: &BenchOptions,
    one: &rayon::ThreadPool,
    cores: usize,
    min_s: f64,
) -> Result<Vec<SweepBench>> {
    let mut sweep = Vec::new();
    let base = SweepSpec {
        prefix: "bench".into(),
        base: crate::train::TrainSettings {
            cycles: if opts.quick { 1 } else { 3 },
            ns: if opts.quick { 100 } else { 900 },
            ..crate::train::TrainSettings::sweep_default()
        },
        ..SweepSpec::default()
    };
    let split = match data {
        Some(d) => Split::<f32>::new(d, base.base.split)?,
        None => crate::data::generated::split_like(SplitKind::Full, 1),
    };
    let mut variants = vec![
        (0, crate::nn::Precision::F32),
        (base.base.log_points, crate::nn::Precision::F32),
    ];
    if crate::linalg::bf16::available() {
        variants.push((0, crate::nn::Precision::Bf16));
        variants.push((base.base.log_points, crate::nn::Precision::Bf16));
    }
    if crate::linalg::int16::isa().is_some() {
        variants.push((0, crate::nn::Precision::Int16));
        variants.push((base.base.log_points, crate::nn::Precision::Int16));
    }
    for (log_points, precision) in variants {
        let mut spec = base.clone();
        spec.base.log_points = log_points;
        spec.base.precision = precision;
        let configs = spec.configs()?;
        let groups = crate::sweep::group_configs(&configs, crate::sweep::DEFAULT_MAX_GROUP);
        let tmp = std::env::temp_dir().join(format!("shallow-bench-{}", std::process::id()));
        let runner = RunnerOptions {
            jobs: cores,
            threads: cores,
            max_group: crate::sweep::DEFAULT_MAX_GROUP,
            out: tmp.clone(),
            ..Default::default()
        };
        let dash = Dashboard::new(&configs, DisplayMode::Quiet, |c| c.name.clone());
        let ids: Vec<usize> = (0..configs.len()).collect();
        let t = Instant::now();
        run_plan(&configs, &ids, &split, &runner, &Control::new(), &dash)?;
        let wall_s = t.elapsed().as_secs_f64();
        let _ = std::fs::remove_dir_all(&tmp);
        let steps_each = configs[0].steps;
        let flops = configs.len() as f64 * steps_each as f64 * configs[0].arch().step_flops(100);
        // Floor: each group's step GEMMs at the single-threaded blocked speeds.
        let mut floor = 0.0;
        for g in &groups {
            let rows = g.len() * 50;
            let fwd = one.install(|| gemm_gflops::<f32>(rows, 100, 3072, false, true, min_s));
            let grad = one.install(|| gemm_gflops::<f32>(rows, 3072, 100, true, true, min_s));
            let f0 = 2.0 * (rows * 100 * 3072) as f64;
            floor += steps_each as f64 * (f0 / (fwd * 1e9) + f0 / (grad * 1e9));
        }
        sweep.push(SweepBench {
            precision,
            configs: configs.len(),
            groups: groups.len(),
            steps: steps_each,
            log_points,
            wall_s,
            gflops: flops / wall_s / 1e9,
            gemm_floor_s: floor / cores as f64,
        });
    }
    Ok(sweep)
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "BLAS: {} [kernel {}]  |  cores: {}  |  data: {}",
            self.blas, self.blas_kernel_source, self.cores, self.data
        )?;
        self.fmt_gemm(f)?;
        self.fmt_steps(f)?;
        writeln!(
            f,
            "\nEvaluation (forward only, m = 50, all cores): {:.0} images/s",
            self.eval_images_per_s
        )?;
        for s in &self.sweep {
            writeln!(
                f,
                "Sweep, {}: {} lambdas x {} steps in {} groups (m = 50, split full, {} cores, {}): {:.2} s wall, {:.1} GFLOP/s; f32 GEMM floor {:.2} s ({:.0}%)",
                s.precision.name(),
                s.configs,
                s.steps,
                s.groups,
                self.cores,
                if s.log_points == 0 {
                    "curves: start and end".to_string()
                } else {
                    format!("curves: {} points per cycle", s.log_points)
                },
                s.wall_s,
                s.gflops,
                s.gemm_floor_s,
                100.0 * s.gemm_floor_s / s.wall_s
            )?;
        }
        write!(f, "benchmark took {:.1} s", self.wall_s)
    }
}

impl BenchReport {
    /// The GEMM roofline table and the instruction peak.
    fn fmt_gemm(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "\nGEMM roofline (GFLOP/s; FLOPs = 2 m n k)")?;
        writeln!(
            f,
            "{:<22} {:>6} {:>17} {:>10} {:>10} {:>10}",
            "shape", "kind", "m x n x k", "1 thread", "all: BLAS", "all: blocks"
        )?;
        let cell = |v: f64| {
            if v.is_finite() {
                format!("{v:.1}")
            } else {
                "-".into()
            }
        };
        for g in &self.gemm {
            writeln!(
                f,
                "{:<22} {:>6} {:>17} {:>10} {:>10} {:>10}",
                g.role,
                g.kind,
                format!("{}x{}x{}", g.m, g.n, g.k),
                cell(g.gflops_1t),
                cell(g.gflops_all),
                cell(g.gflops_split)
            )?;
        }
        if self.gemm.iter().any(|g| g.kind == "bf16") {
            writeln!(
                f,
                "(bf16: our AVX512-BF16 kernel, bf16 operands and f32 sums, one core; its \"all: BLAS\" column is one core with A re-packed before every product)"
            )?;
        }
        if self.gemm.iter().any(|g| g.kind == "int16") {
            writeln!(
                f,
                "(int16: our 16-bit integer kernel, a multiply-add counted as 2 FLOPs, one core; its \"all: BLAS\" column is one core with A quantised before every product)"
            )?;
        }
        writeln!(
            f,
            "(all: BLAS = one call on OpenBLAS's threads; all: blocks = the output's columns cut into fixed single-threaded blocks on a pool of every core, as training does)"
        )?;
        if let Some(p) = &self.peak {
            let cell = |r: Option<f64>| r.map_or("none".to_string(), |r| format!("{r:.1}"));
            let ratio = |r: Option<f64>| match (r, p.f32_fma) {
                (Some(r), Some(f)) => format!(" ({:.2}x)", r / f),
                _ => String::new(),
            };
            writeln!(
                f,
                "\nInstruction peak, one core, G-ops/s: f32 FMA {}, bf16 dot {}{}, int16 madd {}{}{}",
                cell(p.f32_fma),
                cell(p.bf16_dot),
                ratio(p.bf16_dot),
                cell(p.int16_madd),
                ratio(p.int16_madd),
                p.int16_isa.map_or(String::new(), |i| format!(" on {}", i.name()))
            )?;
            writeln!(f, "{}", p.fastest().1)?;
        }
        Ok(())
    }

    /// The training-step table and where a step's time goes.
    fn fmt_steps(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "\nTraining step (batch 100, f32)")?;
        writeln!(
            f,
            "{:<26} {:>7} {:>7} {:>9} {:>8} {:>10} {:>9}",
            "network", "configs", "threads", "ms/step", "GFLOP/s", "GEMM floor", "of roof"
        )?;
        for s in &self.steps {
            writeln!(
                f,
                "{:<26} {:>7} {:>7} {:>9.3} {:>8.1} {:>7.3} ms {:>8.0}%",
                s.model,
                s.configs,
                s.threads,
                s.ms_per_step,
                s.gflops,
                s.gemm_floor_ms,
                100.0 * s.roofline_fraction
            )?;
        }
        writeln!(f, "\nWhere a step's time goes (ms per step)")?;
        write!(f, "{:<26} {:>7} {:>7}", "network", "configs", "threads")?;
        for name in crate::nn::profile::SHORT_NAMES {
            write!(f, " {name:>11}")?;
        }
        writeln!(f, " {:>10}", "GEMM share")?;
        for s in &self.steps {
            write!(f, "{:<26} {:>7} {:>7}", s.model, s.configs, s.threads)?;
            let total: f64 = s.phases.iter().map(|p| p.1).sum();
            for (_, v) in &s.phases {
                write!(f, " {v:>11.4}")?;
            }
            let gemm = s.phases[1].1 + s.phases[3].1;
            writeln!(f, " {:>9.0}%", 100.0 * gemm / total.max(1e-12))?;
        }
        let legend: Vec<String> = crate::nn::profile::SHORT_NAMES
            .iter()
            .zip(crate::nn::profile::NAMES)
            .map(|(short, long)| format!("{short} = {long}"))
            .collect();
        writeln!(f, "({})", legend.join("; "))?;
        Ok(())
    }
}
