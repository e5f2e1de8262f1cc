//! The training loop: one loop over a group of C >= 1 configurations that share
//! architecture, batch size, step count and data order. `shallow train` is a group
//! of one; a sweep is a set of groups. Each step is forward, backward, update, with
//! every configuration's first layer in one stacked GEMM.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{bail, Result};

use super::batches::BatchSource;
use super::config::{LockstepKey, RunConfig};
use super::evaluator::Evaluator;
use super::probs::ClassProbs;
use super::snapshots::Snapshots;
use crate::data::Split;
use crate::nn::ensemble::{eval_probs, EnsembleEval};
use crate::nn::net::{Eval, LossStat, StepRegs, MAX_GROUP};
use crate::nn::profile;
use crate::nn::{Net, Real};

pub use super::batches::shuffle_epoch;
pub use super::config::EVAL_CHUNK;
pub use super::evaluator::eval_sample;
pub use super::outcome::{Divergence, LogPoint, Observer, RunOutcome, Silent, Status};
pub use super::snapshots::SnapshotSums;

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

impl Control {
    /// Whether a group that has done `t` steps stops here: a signal, or the
    /// tests' step to stop at.
    pub fn stops_at(&self, t: usize) -> bool {
        let at = self.stop_at_step.load(Ordering::Relaxed);
        self.stopped() || (at > 0 && t >= at)
    }
}

impl<T: Real> GroupState<T> {
    /// The state before the first step: initial weights from each
    /// configuration's seed, the group's momentum, empty histories.
    fn start(configs: &[RunConfig]) -> Self {
        let seeds: Vec<u64> = configs.iter().map(|c| c.init_seed()).collect();
        let mut net = Net::init(&configs[0].arch(), &seeds);
        net.set_momentum(configs[0].momentum);
        let cfgs = configs.len();
        GroupState {
            step: 0,
            net,
            history: vec![Vec::new(); cfgs],
            diverged: vec![None; cfgs],
            train_s: 0.0,
            wall_s: 0.0,
            snapshots: vec![SnapshotSums::default(); cfgs],
        }
    }

    /// Marks configuration c diverged at step `t` (learning rate `eta`) and
    /// zeroes its parameters, so that it costs nothing to carry along.
    fn diverge(&mut self, c: usize, t: usize, eta: f64) {
        self.diverged[c] = Some(Divergence { step: t, eta });
        self.net.reset_config(c);
    }
}

/// Each configuration's learning rate at a step, in f64 (logged) and in the
/// network's type (the update); 0 for a diverged configuration.
struct Etas<T> {
    logged: Vec<f64>,
    step: Vec<T>,
}

impl<T: Real> Etas<T> {
    fn new(cfgs: usize) -> Self {
        Etas {
            logged: vec![0.0; cfgs],
            step: vec![T::zero(); cfgs],
        }
    }

    /// The rates of step `t`.
    fn at(&mut self, configs: &[RunConfig], diverged: &[Option<Divergence>], t: usize) {
        for (c, cfg) in configs.iter().enumerate() {
            self.set(
                c,
                if diverged[c].is_some() {
                    0.0
                } else {
                    cfg.schedule.eta(t)
                },
            );
        }
    }

    fn set(&mut self, c: usize, eta: f64) {
        self.logged[c] = eta;
        self.step[c] = T::of(eta);
    }
}

/// One lockstep group: 1 to [`MAX_GROUP`] configurations that share their
/// [`LockstepKey`] (what may differ, like lambda, differs per configuration).
/// [`Group::new`] is the only way to one and refuses a mixed group, so
/// [`train_group`] never receives one.
#[derive(Clone, Debug)]
pub struct Group {
    configs: Vec<RunConfig>,
    /// Step at which training stops with every configuration paused (a rung
    /// of successive halving), if before the configurations' own steps.
    pause: Option<usize>,
}

impl Group {
    /// The group of `configs`, refused when empty, too large or mixed.
    pub fn new(configs: Vec<RunConfig>) -> Result<Group> {
        let Some(first) = configs.first() else {
            bail!("a lockstep group needs at least one configuration");
        };
        if configs.len() > MAX_GROUP {
            bail!("at most {MAX_GROUP} configurations can train in one group");
        }
        let key: LockstepKey = first.lockstep_key();
        if let Some(other) = configs.iter().find(|c| c.lockstep_key() != key) {
            bail!(
                "{} and {} cannot train in one lockstep group: they must share architecture, batch, \
                 steps, data order, augmentation, split, precision, logging, batch norm and momentum",
                first.name,
                other.name
            );
        }
        Ok(Group {
            configs,
            pause: None,
        })
    }

    /// The group trained only to step `step` (a rung of successive halving):
    /// the loop logs a point there and returns every configuration paused,
    /// with the state to continue from. A step at or past the configurations'
    /// own steps changes nothing.
    pub fn paused_at(mut self, step: usize) -> Group {
        self.pause = (step < self.configs[0].steps).then_some(step);
        self
    }

    /// The configurations, in the order their results come back.
    pub fn configs(&self) -> &[RunConfig] {
        &self.configs
    }
}

/// Trains `group` in lockstep on `split`. `ids` are its configurations'
/// indices for the observer. `resume` continues from a saved state. The
/// training data is borrowed, never copied; a step allocates nothing.
pub fn train_group<T: Real>(
    group: &Group,
    ids: &[usize],
    split: &Split<T>,
    control: &Control,
    observer: &dyn Observer,
    resume: Option<GroupState<T>>,
) -> Result<GroupOutcome<T>> {
    let configs = group.configs();
    for c in configs {
        c.validate(split.train.len())?;
    }
    let first = &configs[0];
    let cfgs = configs.len();
    let lambdas: Vec<T> = configs.iter().map(|c| T::of(c.lambda)).collect();
    let regs: Vec<StepRegs> = configs.iter().map(|c| c.step_regs()).collect();
    let mut state = resume.unwrap_or_else(|| GroupState::start(configs));
    let packed = enable_kernel(first.precision, first.reads_packed(), &mut state.net, split)?;
    let mut batches = BatchSource::new(first, &split.train, packed, state.step);
    let mut eval = Evaluator::new(&state.net, configs, split, observer, ids);
    let mut snapshots = Snapshots::new(configs, split);
    let mut ws = state.net.workspace(first.batch);
    let mut stats = vec![LossStat::default(); cfgs];
    let mut etas = Etas::new(cfgs);

    // The start is always logged (with --log-points 0 too: curves need two points).
    if state.step == 0 && state.history.iter().all(|h| h.is_empty()) {
        etas.at(configs, &state.diverged, 0);
        let (net, history) = (&state.net, &mut state.history);
        eval.log(net, 0, &etas.logged, history, &state.diverged);
    }
    let t_start = Instant::now();
    let mut eval_s = 0.0;
    let mut t = state.step;
    let end = group.pause.unwrap_or(first.steps);
    let interrupted = loop {
        if t >= end {
            break false;
        }
        if control.stops_at(t) {
            break true;
        }
        // Take the batch.
        let mut timer = profile::start();
        let (x, y) = batches.take(t);
        profile::lap(&mut timer, profile::Phase::Batch);
        // Forward, and a configuration whose loss is not finite has diverged.
        etas.at(configs, &state.diverged, t);
        state
            .net
            .forward_train(x, y, &mut ws, &mut stats, t as u64, &regs);
        for (c, stat) in stats.iter().enumerate() {
            if state.diverged[c].is_none() && !stat.loss_sum.is_finite() {
                state.diverge(c, t, etas.logged[c]);
                etas.set(c, 0.0);
            }
        }
        // Backward and update; a configuration that diverged at this step is
        // zeroed again after it (its NaN gradient reached its weights), so
        // that it costs nothing to carry and its checkpoint holds numbers.
        state
            .net
            .backward_update(x, y, &mut ws, &etas.step, &lambdas);
        for c in 0..cfgs {
            if state.diverged[c].is_some_and(|d| d.step == t) {
                state.net.reset_config(c);
            }
        }
        t += 1;
        observer.on_step(ids, t, &etas.logged);
        // Snapshots at the ends of the last cycles, then the logged points.
        let e0 = Instant::now();
        let live = |c: usize| state.diverged[c].is_none();
        snapshots.add_due(t, live, &state.net, &mut state.snapshots, &mut eval.ws);
        if (first.log_every > 0 && t.is_multiple_of(first.log_every)) || t == end {
            let (net, history) = (&state.net, &mut state.history);
            eval.log(net, t, &etas.logged, history, &state.diverged);
            for c in 0..cfgs {
                if state.diverged[c].is_none() && !eval.finite(c) {
                    state.diverge(c, t, etas.logged[c]);
                }
            }
        }
        eval_s += e0.elapsed().as_secs_f64();
    };
    let elapsed = t_start.elapsed().as_secs_f64();
    state.train_s += elapsed - eval_s;
    state.wall_s += elapsed;
    state.step = t;
    let stop = match () {
        _ if interrupted => Some(Status::Interrupted),
        _ if t < first.steps => Some(Status::Paused),
        _ => None,
    };
    let runs = finish(configs, split, &mut state, &mut eval, &mut snapshots, stop);
    for (run, &id) in runs.iter().zip(ids) {
        observer.on_done(id, run);
    }
    Ok(GroupOutcome {
        runs,
        state: stop.map(|_| state),
    })
}

/// Every configuration's outcome once the loop has ended at `state.step`:
/// test figures, averaged predictions and saved probabilities of done runs,
/// their weights with the scales folded. `stop` is how live configurations
/// stopped before their last step (interrupted or paused), if they did.
fn finish<T: Real>(
    configs: &[RunConfig],
    split: &Split<T>,
    state: &mut GroupState<T>,
    eval: &mut Evaluator<'_, T>,
    snapshots: &mut Snapshots<'_, T>,
    stop: Option<Status>,
) -> Vec<RunOutcome> {
    let cfgs = configs.len();
    let (test, finals) = if stop.is_some() {
        (Vec::new(), vec![SnapshotSums::default(); cfgs])
    } else {
        // The final net's class probabilities, for runs that save them or
        // flip their test images and have no snapshot sums.
        let want: Vec<usize> = (0..cfgs)
            .filter(|&c| {
                (configs[c].save_probs || configs[c].tta)
                    && state.diverged[c].is_none()
                    && state.snapshots[c].count == 0
            })
            .collect();
        let test = eval.test(&state.net);
        (test, snapshots.finals(&state.net, &want, &mut eval.ws))
    };
    let mut folded = state.net.clone();
    folded.fold_scales();
    let ms_per_step = state.train_s * 1000.0 / state.step.max(1) as f64;
    let classes = configs[0].arch().classes;
    let nan = Eval {
        cost: f64::NAN,
        loss: f64::NAN,
        acc: f64::NAN,
    };
    configs
        .iter()
        .enumerate()
        .map(|(c, cfg)| {
            let status = match (state.diverged[c], stop) {
                (Some(_), _) => Status::Diverged,
                (None, Some(stop)) => stop,
                (None, None) => Status::Done,
            };
            let done = status == Status::Done;
            let sums = if state.snapshots[c].count > 0 {
                &state.snapshots[c]
            } else {
                &finals[c]
            };
            let members = sums.count * if cfg.tta { 2 } else { 1 };
            let averaged =
                (done && sums.count > 0 && (cfg.snapshots > 0 || cfg.tta)).then(|| EnsembleEval {
                    members,
                    val: eval_probs(&sums.val, classes, &split.val.labels),
                    test: eval_probs(&sums.test, classes, &split.test.labels),
                });
            let probs = (done && cfg.save_probs && sums.count > 0).then(|| {
                let scale = 1.0 / members as f32;
                ClassProbs {
                    classes,
                    val: sums.val.iter().map(|v| v * scale).collect(),
                    test: sums.test.iter().map(|v| v * scale).collect(),
                    val_labels: split.val.labels.clone(),
                    test_labels: split.test.labels.clone(),
                }
            });
            let last = state.history[c].last().copied();
            RunOutcome {
                config: cfg.clone(),
                status,
                history: state.history[c].clone(),
                steps_done: state.diverged[c].map(|d| d.step).unwrap_or(state.step),
                train: last.map(|p| p.train).unwrap_or(nan),
                val: last.map(|p| p.val).unwrap_or(nan),
                test: if done { test[c] } else { nan },
                diverged: state.diverged[c],
                wall_s: state.wall_s,
                ms_per_step,
                group_size: cfgs,
                weights: if done { folded.params(c) } else { Vec::new() },
                averaged,
                probs,
            }
        })
        .collect()
}

/// Turns `net` to `precision`'s layer-0 kernel, and returns the training
/// images converted for it when the batches are read as views (`reads`).
pub fn enable_kernel<'a, T: Real>(
    precision: crate::nn::Precision,
    reads: bool,
    net: &mut Net<T>,
    split: &'a Split<T>,
) -> Result<Option<crate::nn::kernel::PackedImages<'a>>> {
    use crate::nn::kernel::PackedImages;
    use crate::nn::Precision;
    let whitened = split.preprocess.matrix.is_some();
    Ok(match precision.resolved(whitened) {
        Precision::Bf16 => {
            net.enable_bf16()?;
            split
                .train
                .packed_bf16()
                .filter(|_| reads)
                .map(PackedImages::Bf16)
        }
        Precision::Int16 => {
            let pixels = split.preprocess.int16_pixels()?;
            let set = if reads {
                split.train.packed_int16(&pixels)?.map(PackedImages::Int16)
            } else {
                None
            };
            net.enable_int16(pixels)?;
            set
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_one_lockstep_key_of_one_to_max_group_configurations() {
        let a = RunConfig::default();
        let lambdas: Vec<RunConfig> = (0..MAX_GROUP)
            .map(|i| RunConfig {
                lambda: 0.001 * i as f64,
                ..a.clone()
            })
            .collect();
        assert_eq!(Group::new(lambdas.clone()).unwrap().configs(), &lambdas[..]);
        let too_many = [lambdas.clone(), vec![a.clone()]].concat();
        assert!(Group::new(too_many).is_err());
        assert!(Group::new(Vec::new()).is_err());
        let mixed = vec![
            a.clone(),
            RunConfig {
                name: "wider".into(),
                hidden: vec![100],
                ..a.clone()
            },
        ];
        let e = Group::new(mixed).unwrap_err().to_string();
        assert!(e.contains("wider") && e.contains("architecture"), "{e}");
    }
}
