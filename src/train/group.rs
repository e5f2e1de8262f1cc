//! The training loop: one loop over a group of C >= 1 configurations that share
//! architecture, batch size, step count and data order. `shallow train` is a group
//! of one; a sweep is a set of groups. Each step is forward, backward, update, with
//! every configuration's first layer in one stacked GEMM.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{bail, Result};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use super::config::RunConfig;
use super::probs::ClassProbs;
use crate::data::Split;
use crate::nn::ensemble::{add_probs, eval_probs, EnsembleEval};
use crate::nn::net::{Eval, LossStat, StepRegs, MAX_GROUP};
use ndarray::{Array2, ShapeBuilder};

use crate::nn::{LayerParams, Net, Real};
use crate::util::mix64;

pub use super::config::EVAL_CHUNK;

/// One logged point of a run's history.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogPoint {
    /// Update steps done.
    pub step: usize,
    /// Epochs done (fractional).
    pub epoch: f64,
    /// Learning rate of the last step (of the first step at step 0).
    pub eta: f64,
    /// Cost, loss and accuracy on the training set (on `train_images` of it).
    pub train: Eval,
    /// Training images `train` was evaluated on: a fixed sample at intermediate
    /// points (`--eval-train`), the whole set at the last one.
    #[serde(default)]
    pub train_images: usize,
    /// Cost, loss and accuracy on the validation set.
    pub val: Eval,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Trained every step.
    Done,
    /// The cost became NaN or infinite; training of this run stopped.
    Diverged,
    /// Stopped by a signal before the end; a checkpoint holds its state.
    Interrupted,
}

/// Where a run diverged.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    /// Update step at which the loss was not finite.
    pub step: usize,
    /// Learning rate at that step.
    pub eta: f64,
}

/// Everything one configuration's training produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunOutcome {
    /// The configuration.
    pub config: RunConfig,
    /// How it ended.
    pub status: Status,
    /// Logged points.
    pub history: Vec<LogPoint>,
    /// Update steps done.
    pub steps_done: usize,
    /// Final figures on the training set.
    pub train: Eval,
    /// Final figures on the validation set.
    pub val: Eval,
    /// Final figures on the test set.
    pub test: Eval,
    /// Divergence point, when diverged.
    pub diverged: Option<Divergence>,
    /// Wall time of the group this run trained in, seconds.
    pub wall_s: f64,
    /// Milliseconds per update step of the group (training only, without evaluation).
    pub ms_per_step: f64,
    /// Configurations trained in lockstep with this one (C).
    pub group_size: usize,
    /// Trained parameters per layer (W: w_out x w_in, b: w_out), empty unless done.
    #[serde(skip)]
    pub weights: Vec<LayerParams>,
    /// The run's averaged prediction (done runs with `snapshots` > 0 or `tta`):
    /// its snapshots' probabilities, each on the images and their mirrors with
    /// test-time flips.
    #[serde(default)]
    pub averaged: Option<EnsembleEval>,
    /// Validation and test class probabilities (`save_probs`, done runs): the
    /// averaged prediction's when there is one, else the final net's.
    #[serde(skip)]
    pub probs: Option<ClassProbs>,
}

/// A snapshot ensemble's running sums of class probabilities.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotSums {
    /// Snapshots added so far.
    pub count: usize,
    /// Sum over the snapshots, K x n_val column-major (empty until the first).
    pub val: Vec<f32>,
    /// Sum over the snapshots, K x n_test column-major.
    pub test: Vec<f32>,
}

/// A group's resumable state: parameters and history at a step.
#[derive(Clone, Debug)]
pub struct GroupState<T> {
    /// Steps done.
    pub step: usize,
    /// Parameters of every configuration.
    pub net: Net<T>,
    /// History so far, per configuration.
    pub history: Vec<Vec<LogPoint>>,
    /// Divergence per configuration.
    pub diverged: Vec<Option<Divergence>>,
    /// Seconds of training already spent.
    pub train_s: f64,
    /// Wall seconds already spent (training and evaluation), so that a resumed
    /// run reports its whole time.
    pub wall_s: f64,
    /// Snapshot-ensemble sums per configuration (empty sums without one).
    pub snapshots: Vec<SnapshotSums>,
}

/// What a group returns: one outcome per configuration, and the state to
/// resume from when interrupted.
pub struct GroupOutcome<T> {
    /// Outcomes, in the order of the configurations.
    pub runs: Vec<RunOutcome>,
    /// State at the interruption, if interrupted.
    pub state: Option<GroupState<T>>,
}

/// Shared stop flag: set by a signal handler, checked between steps.
#[derive(Debug, Default)]
pub struct Control {
    /// When set, groups stop at the next step and return their state.
    pub stop: AtomicBool,
    /// When above 0, every group stops (as if interrupted) once it has done
    /// this many steps: an interruption at an exact step, for tests of resume.
    pub stop_at_step: AtomicUsize,
}

impl Control {
    /// A control that is not stopped (usable in a `static`).
    pub const fn new() -> Self {
        Control {
            stop: AtomicBool::new(false),
            stop_at_step: AtomicUsize::new(0),
        }
    }

    /// Whether Ctrl-C or SIGTERM asked to stop.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// A control that interrupts every group once it has done `step` steps.
    pub fn stop_at(step: usize) -> Self {
        Control {
            stop: AtomicBool::new(false),
            stop_at_step: AtomicUsize::new(step),
        }
    }
}

/// Receives progress from the loop; implementations must be cheap (atomics).
pub trait Observer: Sync {
    /// After each step; `ids` are the configurations' indices in the caller's plan.
    fn on_step(&self, _ids: &[usize], _steps_done: usize, _etas: &[f64]) {}
    /// After each logged point of configuration `id`.
    fn on_log(&self, _id: usize, _point: &LogPoint) {}
    /// When configuration `id` finished (any status).
    fn on_done(&self, _id: usize, _outcome: &RunOutcome) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// Trains `configs` (which must share [`RunConfig::lockstep_key`]) in lockstep
/// on `split`. `ids` are their indices for the observer. `resume` continues from a
/// saved state. The training data is borrowed, never copied; a step allocates nothing.
pub fn train_group<T: Real>(
    configs: &[RunConfig],
    ids: &[usize],
    split: &Split<T>,
    control: &Control,
    observer: &dyn Observer,
    resume: Option<GroupState<T>>,
) -> Result<GroupOutcome<T>> {
    let first = configs
        .first()
        .expect("a group has at least one configuration");
    if configs.len() > MAX_GROUP {
        bail!("at most {MAX_GROUP} configurations can train in one group");
    }
    if configs
        .iter()
        .any(|c| c.lockstep_key() != first.lockstep_key())
    {
        bail!("configurations of one group must share architecture, batch, steps, data order and split");
    }
    let n_train = split.train.len();
    for c in configs {
        c.validate(n_train)?;
    }
    let cfgs = configs.len();
    let arch = first.arch();
    let batch = first.batch;
    let per_epoch = first.steps_per_epoch(n_train);
    let lambdas_t: Vec<T> = configs.iter().map(|c| T::of(c.lambda)).collect();
    let lambdas: Vec<f64> = configs.iter().map(|c| c.lambda).collect();
    let seeds: Vec<u64> = configs.iter().map(|c| c.init_seed()).collect();

    let mut state = resume.unwrap_or_else(|| GroupState {
        step: 0,
        net: {
            let mut net = Net::init(&arch, &seeds);
            net.set_momentum(first.momentum);
            net
        },
        history: vec![Vec::new(); cfgs],
        diverged: vec![None; cfgs],
        train_s: 0.0,
        wall_s: 0.0,
        snapshots: vec![SnapshotSums::default(); cfgs],
    });
    let regs: Vec<StepRegs> = configs.iter().map(|c| c.step_regs()).collect();
    let snapshot_steps: Vec<Vec<usize>> = configs.iter().map(|c| c.snapshot_steps()).collect();
    // Mirror images of the validation and test sets, for test-time flips.
    let mirrored = configs.iter().any(|c| c.tta).then(|| {
        (
            crate::data::augment::mirrored(&split.val),
            crate::data::augment::mirrored(&split.test),
        )
    });
    let classes = arch.classes;
    let mut prob_labels = vec![0u8; EVAL_CHUNK];
    let net = &mut state.net;
    if first.precision == crate::nn::Precision::Bf16 {
        net.enable_bf16()?;
    }
    let mut ws = net.workspace(batch);
    let mut eval_ws = net.workspace(EVAL_CHUNK.min(n_train.max(split.val.len()).max(1)));
    let mut stats = vec![LossStat::default(); cfgs];
    let mut etas_t = vec![T::zero(); cfgs];
    let mut etas = vec![0.0f64; cfgs];
    let mut evals_train = vec![Eval::default(); cfgs];
    let mut evals_val = vec![Eval::default(); cfgs];
    // Shuffled order: an index permutation and a batch buffer, allocated once.
    let mut order: Vec<usize> = (0..n_train).collect();
    let augment = first.augment;
    let gathers = first.shuffle || augment.is_on();
    let mut batch_x = if gathers {
        Array2::zeros((arch.input, batch).f())
    } else {
        Array2::zeros((arch.input, 0).f())
    };
    let mut batch_y = vec![0u8; batch];
    let data_seed = first.data_seed();
    // bf16 on consecutive batches: the training images in bf16, converted once
    // per process and shared by every run, so a step packs no images.
    let packed_set = if net.uses_bf16() && first.reads_packed_bf16() {
        split.train.packed_bf16()
    } else {
        None
    };

    // Intermediate points evaluate a fixed sample of the training set (chosen
    // once from the seed), gathered chunk by chunk into a reused buffer.
    let sample = eval_sample(n_train, first.eval_train.images(n_train), first.seed);
    let mut gather = if sample.len() < n_train {
        Array2::zeros((arch.input, eval_ws.cap).f())
    } else {
        Array2::zeros((arch.input, 0).f())
    };
    let mut gather_labels = vec![0u8; eval_ws.cap];

    #[allow(clippy::too_many_arguments)]
    let log = |net: &Net<T>,
               t: usize,
               etas: &[f64],
               eval_ws: &mut crate::nn::Workspace<T>,
               gather: &mut Array2<T>,
               gather_labels: &mut [u8],
               et: &mut [Eval],
               ev: &mut [Eval],
               history: &mut [Vec<LogPoint>],
               diverged: &[Option<Divergence>]| {
        let whole = t == first.steps || sample.len() == n_train;
        if whole {
            net.evaluate(
                split.train.view(),
                &split.train.labels,
                &lambdas,
                eval_ws,
                et,
            );
        } else {
            net.evaluate_columns(
                split.train.view(),
                &split.train.labels,
                &sample,
                &lambdas,
                eval_ws,
                gather,
                gather_labels,
                et,
            );
        }
        net.evaluate(split.val.view(), &split.val.labels, &lambdas, eval_ws, ev);
        for c in 0..cfgs {
            if diverged[c].is_some() {
                continue;
            }
            let p = LogPoint {
                step: t,
                epoch: t as f64 / per_epoch as f64,
                eta: etas[c],
                train: et[c],
                train_images: if whole { n_train } else { sample.len() },
                val: ev[c],
            };
            history[c].push(p);
            observer.on_log(ids[c], &p);
        }
    };

    // The start is always logged (with --log-points 0 too: curves need two points).
    if state.step == 0 && state.history.iter().all(|h| h.is_empty()) {
        for (c, cfg) in configs.iter().enumerate() {
            etas[c] = cfg.schedule.eta(0);
        }
        log(
            net,
            0,
            &etas,
            &mut eval_ws,
            &mut gather,
            &mut gather_labels,
            &mut evals_train,
            &mut evals_val,
            &mut state.history,
            &state.diverged,
        );
    }

    let t_start = Instant::now();
    let mut eval_s = 0.0;
    let mut interrupted = false;
    let mut t = state.step;
    if first.shuffle && t > 0 {
        shuffle_epoch(&mut order, data_seed, t / per_epoch);
    }
    while t < first.steps {
        let stop_at = control.stop_at_step.load(Ordering::Relaxed);
        if control.stop.load(Ordering::Relaxed) || (stop_at > 0 && t >= stop_at) {
            interrupted = true;
            break;
        }
        let mut timer = crate::nn::profile::start();
        let pos = t % per_epoch;
        // Take the batch: a view of consecutive columns, or a gather when
        // shuffling or augmenting (each image flipped and shifted as it is copied).
        let (x, y): (crate::nn::Input<'_, T>, &[u8]) = if gathers {
            if first.shuffle && pos == 0 {
                shuffle_epoch(&mut order, data_seed, t / per_epoch);
            }
            let ids = &order[pos * batch..(pos + 1) * batch];
            crate::data::augment::gather(
                &split.train,
                ids,
                batch_x
                    .as_slice_memory_order_mut()
                    .expect("Fortran-order batch"),
                &augment,
                data_seed,
                t,
            );
            for (k, &j) in ids.iter().enumerate() {
                batch_y[k] = split.train.labels[j];
            }
            (batch_x.view().into(), &batch_y)
        } else {
            (
                crate::nn::Input {
                    x: split.train.cols(pos * batch, batch),
                    packed: packed_set.and_then(|p| p.batch(pos * batch, batch)),
                },
                &split.train.labels[pos * batch..(pos + 1) * batch],
            )
        };
        crate::nn::profile::lap(&mut timer, crate::nn::profile::Phase::Batch);
        for (c, cfg) in configs.iter().enumerate() {
            etas[c] = if state.diverged[c].is_some() {
                0.0
            } else {
                cfg.schedule.eta(t)
            };
            etas_t[c] = T::of(etas[c]);
        }
        net.forward_train(x, y, &mut ws, &mut stats, t as u64, &regs);
        for c in 0..cfgs {
            if state.diverged[c].is_none() && !stats[c].loss_sum.is_finite() {
                state.diverged[c] = Some(Divergence {
                    step: t,
                    eta: etas[c],
                });
                net.reset_config(c);
                etas[c] = 0.0;
                etas_t[c] = T::zero();
            }
        }
        net.backward_update(x, y, &mut ws, &etas_t, &lambdas_t);
        t += 1;
        observer.on_step(ids, t, &etas);
        // Snapshot ensembles: add the nets at the ends of the last cycles.
        let snapshot_now = |c: usize| state.diverged[c].is_none() && snapshot_steps[c].contains(&t);
        // Only a cycle's end allocates (outside the step proper): the list of snapshots.
        if (0..cfgs).any(snapshot_now) {
            let snap: Vec<usize> = (0..cfgs).filter(|&c| snapshot_now(c)).collect();
            let e0 = Instant::now();
            for &c in &snap {
                let sums = &mut state.snapshots[c];
                if sums.count == 0 {
                    sums.val = vec![0.0; classes * split.val.len()];
                    sums.test = vec![0.0; classes * split.test.len()];
                }
                sums.count += 1;
            }
            add_views(
                net,
                split,
                mirrored.as_ref(),
                configs,
                &snap,
                &mut state.snapshots,
                &mut eval_ws,
                &mut prob_labels,
            );
            eval_s += e0.elapsed().as_secs_f64();
        }
        let log_now =
            (first.log_every > 0 && t.is_multiple_of(first.log_every)) || t == first.steps;
        if log_now {
            let e0 = Instant::now();
            log(
                net,
                t,
                &etas,
                &mut eval_ws,
                &mut gather,
                &mut gather_labels,
                &mut evals_train,
                &mut evals_val,
                &mut state.history,
                &state.diverged,
            );
            eval_s += e0.elapsed().as_secs_f64();
            // A run whose evaluated cost is not finite has diverged too.
            for c in 0..cfgs {
                if state.diverged[c].is_none()
                    && !(evals_train[c].cost.is_finite() && evals_val[c].cost.is_finite())
                {
                    state.diverged[c] = Some(Divergence {
                        step: t,
                        eta: etas[c],
                    });
                    net.reset_config(c);
                }
            }
        }
    }
    let elapsed = t_start.elapsed().as_secs_f64();
    state.train_s += elapsed - eval_s;
    state.step = t;
    let steps_here = t.max(1);
    let ms_per_step = state.train_s * 1000.0 / steps_here as f64;
    state.wall_s += elapsed;
    let wall_s = state.wall_s;

    let mut test = vec![Eval::default(); cfgs];
    if !interrupted {
        net.evaluate(
            split.test.view(),
            &split.test.labels,
            &lambdas,
            &mut eval_ws,
            &mut test,
        );
    }
    // The final net's class probabilities, for runs that save them or flip
    // their test images and have no snapshot sums.
    let mut finals = vec![SnapshotSums::default(); cfgs];
    if !interrupted {
        let want: Vec<usize> = (0..cfgs)
            .filter(|&c| {
                (configs[c].save_probs || configs[c].tta)
                    && state.diverged[c].is_none()
                    && state.snapshots[c].count == 0
            })
            .collect();
        for &c in &want {
            finals[c] = SnapshotSums {
                count: 1,
                val: vec![0.0; classes * split.val.len()],
                test: vec![0.0; classes * split.test.len()],
            };
        }
        if !want.is_empty() {
            add_views(
                net,
                split,
                mirrored.as_ref(),
                configs,
                &want,
                &mut finals,
                &mut eval_ws,
                &mut prob_labels,
            );
        }
    }
    let mut folded = net.clone();
    folded.fold_scales();
    let mut runs = Vec::with_capacity(cfgs);
    for (c, cfg) in configs.iter().enumerate() {
        let hist = &state.history[c];
        let last = hist.last().copied();
        let status = if state.diverged[c].is_some() {
            Status::Diverged
        } else if interrupted {
            Status::Interrupted
        } else {
            Status::Done
        };
        let weights = if status == Status::Done {
            folded.params(c)
        } else {
            Vec::new()
        };
        let sums = if state.snapshots[c].count > 0 {
            &state.snapshots[c]
        } else {
            &finals[c]
        };
        let members = sums.count * if cfg.tta { 2 } else { 1 };
        let averaged = (status == Status::Done && sums.count > 0 && (cfg.snapshots > 0 || cfg.tta))
            .then(|| EnsembleEval {
                members,
                val: eval_probs(&sums.val, classes, &split.val.labels),
                test: eval_probs(&sums.test, classes, &split.test.labels),
            });
        let probs = (status == Status::Done && cfg.save_probs && sums.count > 0).then(|| {
            let scale = 1.0 / members as f32;
            ClassProbs {
                classes,
                val: sums.val.iter().map(|v| v * scale).collect(),
                test: sums.test.iter().map(|v| v * scale).collect(),
                val_labels: split.val.labels.clone(),
                test_labels: split.test.labels.clone(),
            }
        });
        let nan = Eval {
            cost: f64::NAN,
            loss: f64::NAN,
            acc: f64::NAN,
        };
        let run = RunOutcome {
            config: cfg.clone(),
            status,
            history: hist.clone(),
            steps_done: state.diverged[c].map(|d| d.step).unwrap_or(t),
            train: last.map(|p| p.train).unwrap_or(nan),
            val: last.map(|p| p.val).unwrap_or(nan),
            test: if status == Status::Done { test[c] } else { nan },
            diverged: state.diverged[c],
            wall_s,
            ms_per_step,
            group_size: cfgs,
            weights,
            averaged,
            probs,
        };
        observer.on_done(ids[c], &run);
        runs.push(run);
    }
    Ok(GroupOutcome {
        runs,
        state: interrupted.then_some(state),
    })
}

/// The training images an intermediate logged point evaluates: `n` of the
/// `n_train`, drawn without replacement from the base seed (so every
/// configuration of a sweep is measured on the same images), in ascending order.
/// All of them when `n >= n_train`.
pub fn eval_sample(n_train: usize, n: usize, seed: u64) -> Vec<usize> {
    if n >= n_train {
        return (0..n_train).collect();
    }
    let mut order: Vec<usize> = (0..n_train).collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(crate::util::derive_seed(seed, "eval-train"));
    for i in 0..n {
        let j = rng.random_range(i..n_train);
        order.swap(i, j);
    }
    let mut out = order[..n].to_vec();
    out.sort_unstable();
    out
}

/// Resets `order` to the permutation of epoch `epoch`: the identity shuffled by a
/// generator seeded from the data seed and the epoch, so that any epoch's order can
/// be rebuilt on resume without saving generator state. Allocates nothing.
pub fn shuffle_epoch(order: &mut [usize], data_seed: u64, epoch: usize) {
    for (i, v) in order.iter_mut().enumerate() {
        *v = i;
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(mix64(data_seed ^ mix64(epoch as u64)));
    for i in (1..order.len()).rev() {
        let j = rng.random_range(0..=i);
        order.swap(i, j);
    }
}

/// Adds configurations `cs`' class probabilities on the validation and test
/// sets to `sums[c]`, and for those with test-time flips (`tta`) also their
/// probabilities on the mirror images (`mirrored`: validation, test).
#[allow(clippy::too_many_arguments)]
fn add_views<T: Real>(
    net: &Net<T>,
    split: &Split<T>,
    mirrored: Option<&(crate::data::DataSet<T>, crate::data::DataSet<T>)>,
    configs: &[RunConfig],
    cs: &[usize],
    sums: &mut [SnapshotSums],
    ws: &mut crate::nn::Workspace<T>,
    labels: &mut [u8],
) {
    let flipped: Vec<usize> = cs.iter().copied().filter(|&c| configs[c].tta).collect();
    for pick in 0..2 {
        let (set, mirror) = if pick == 0 {
            (&split.val, mirrored.map(|m| &m.0))
        } else {
            (&split.test, mirrored.map(|m| &m.1))
        };
        for (views, data) in [(cs, Some(set)), (&flipped[..], mirror)] {
            let Some(data) = data else { continue };
            if views.is_empty() {
                continue;
            }
            // `views` ascends, so the buffers come in its order.
            let mut bufs: Vec<&mut [f32]> = sums
                .iter_mut()
                .enumerate()
                .filter(|(c, _)| views.contains(c))
                .map(|(_, s)| {
                    if pick == 0 {
                        &mut s.val[..]
                    } else {
                        &mut s.test[..]
                    }
                })
                .collect();
            add_probs(net, data.view(), ws, views, &mut bufs, labels);
        }
    }
}
