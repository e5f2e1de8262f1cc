//! A group's logged points: every configuration's cost, loss and accuracy on
//! the training images (a fixed sample at intermediate points) and on the
//! validation set, chunk by chunk in buffers allocated once.

use ndarray::{Array2, ShapeBuilder};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::config::{RunConfig, EVAL_CHUNK};
use super::outcome::{Divergence, LogPoint, Observer};
use crate::data::Split;
use crate::linalg::Real;
use crate::nn::net::Eval;
use crate::nn::{Net, Workspace};

/// Evaluates a group's networks at its logged points and at the end.
///
/// `ws` holds chunks of up to [`EVAL_CHUNK`] images for every configuration;
/// `gather` (d x `ws.cap`, Fortran order) and `gather_labels` collect the
/// training sample's images chunk by chunk (d x 0 when the sample is the
/// whole set). Snapshot ensembles and the test set reuse `ws`.
pub struct Evaluator<'a, T> {
    split: &'a Split<T>,
    /// Told of every logged point, with the configurations' indices in the plan.
    observer: &'a dyn Observer,
    ids: &'a [usize],
    lambdas: Vec<f64>,
    steps: usize,
    per_epoch: usize,
    /// Training images an intermediate point evaluates, ascending.
    sample: Vec<usize>,
    /// Chunk buffers of the group's networks.
    pub ws: Workspace<T>,
    gather: Array2<T>,
    gather_labels: Vec<u8>,
    /// The last logged point's figures on the training images, per configuration.
    pub train: Vec<Eval>,
    /// The last logged point's figures on the validation set, per configuration.
    pub val: Vec<Eval>,
}

impl<'a, T: Real> Evaluator<'a, T> {
    /// The evaluator of `configs` (one lockstep group) training `net` on
    /// `split`, telling `observer` of each point (`ids`: the configurations'
    /// indices in the plan).
    pub fn new(
        net: &Net<T>,
        configs: &[RunConfig],
        split: &'a Split<T>,
        observer: &'a dyn Observer,
        ids: &'a [usize],
    ) -> Self {
        let first = &configs[0];
        let n_train = split.train.len();
        let ws = net.workspace(EVAL_CHUNK.min(n_train.max(split.val.len()).max(1)));
        let sample = eval_sample(n_train, first.eval_train.images(n_train), first.seed);
        let width = if sample.len() < n_train { ws.cap } else { 0 };
        Evaluator {
            split,
            observer,
            ids,
            lambdas: configs.iter().map(|c| c.lambda).collect(),
            steps: first.steps,
            per_epoch: first.steps_per_epoch(n_train),
            sample,
            gather: Array2::zeros((split.train.dim(), width).f()),
            gather_labels: vec![0u8; ws.cap],
            ws,
            train: vec![Eval::default(); configs.len()],
            val: vec![Eval::default(); configs.len()],
        }
    }

    /// Evaluates `net` after `t` steps and appends a point to the history of
    /// every configuration that has not diverged, telling the observer. The
    /// last step evaluates the whole training set.
    pub fn log(
        &mut self,
        net: &Net<T>,
        t: usize,
        etas: &[f64],
        history: &mut [Vec<LogPoint>],
        diverged: &[Option<Divergence>],
    ) {
        let train = &self.split.train;
        let whole = t == self.steps || self.sample.len() == train.len();
        if whole {
            let (x, y) = (train.view(), &train.labels);
            net.evaluate(x, y, &self.lambdas, &mut self.ws, &mut self.train);
        } else {
            net.evaluate_columns(
                train.view(),
                &train.labels,
                &self.sample,
                &self.lambdas,
                &mut self.ws,
                &mut self.gather,
                &mut self.gather_labels,
                &mut self.train,
            );
        }
        let val = &self.split.val;
        net.evaluate(
            val.view(),
            &val.labels,
            &self.lambdas,
            &mut self.ws,
            &mut self.val,
        );
        for c in (0..history.len()).filter(|&c| diverged[c].is_none()) {
            let point = LogPoint {
                step: t,
                epoch: t as f64 / self.per_epoch as f64,
                eta: etas[c],
                train: self.train[c],
                train_images: if whole {
                    train.len()
                } else {
                    self.sample.len()
                },
                val: self.val[c],
            };
            history[c].push(point);
            self.observer.on_log(self.ids[c], &point);
        }
    }

    /// Whether configuration c's last logged costs are finite (a run whose
    /// evaluated cost is not has diverged too).
    pub fn finite(&self, c: usize) -> bool {
        self.train[c].cost.is_finite() && self.val[c].cost.is_finite()
    }

    /// Every configuration's figures on the test set.
    pub fn test(&mut self, net: &Net<T>) -> Vec<Eval> {
        let mut out = vec![Eval::default(); self.lambdas.len()];
        let test = &self.split.test;
        net.evaluate(
            test.view(),
            &test.labels,
            &self.lambdas,
            &mut self.ws,
            &mut out,
        );
        out
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::outcome::Silent;

    #[test]
    fn a_sample_is_distinct_ascending_and_fixed_by_the_seed() {
        let s = eval_sample(1000, 100, 7);
        assert_eq!(s.len(), 100);
        assert!(s.windows(2).all(|w| w[0] < w[1]) && s[99] < 1000);
        assert_eq!(s, eval_sample(1000, 100, 7));
        assert_ne!(s, eval_sample(1000, 100, 8));
        assert_eq!(eval_sample(50, 100, 7), (0..50).collect::<Vec<_>>());
    }

    /// An intermediate point measures the sample, the last the whole set,
    /// each as the network's own evaluation of those images; a diverged
    /// configuration gets no point.
    #[test]
    fn points_evaluate_the_sample_then_the_whole_set() {
        let split: Split<f64> = crate::data::generated::split(40, 12, 8, 1);
        let configs = vec![
            RunConfig {
                eval_train: crate::train::EvalTrain::Sample(10),
                steps: 4,
                batch: 10,
                ..RunConfig::default()
            };
            2
        ];
        let net = Net::<f64>::init(&configs[0].arch(), &[1, 2]);
        let mut eval = Evaluator::new(&net, &configs, &split, &Silent, &[0, 1]);
        let mut history = vec![Vec::new(); 2];
        let diverged = [None, Some(Divergence { step: 1, eta: 0.1 })];
        eval.log(&net, 2, &[0.1, 0.2], &mut history, &diverged);
        eval.log(&net, 4, &[0.1, 0.2], &mut history, &diverged);
        assert!(history[1].is_empty());
        let [mid, last] = [history[0][0], history[0][1]];
        assert_eq!((mid.step, mid.epoch, mid.train_images), (2, 0.5, 10));
        assert_eq!((last.step, last.train_images), (4, 40));
        let sample = eval_sample(40, 10, configs[0].seed);
        let cols = split.train.x.select(ndarray::Axis(1), &sample);
        let labels: Vec<u8> = sample.iter().map(|&j| split.train.labels[j]).collect();
        let mut ws = net.workspace(40);
        let mut expect = vec![Eval::default(); 2];
        net.evaluate(cols.view(), &labels, &[0.01; 2], &mut ws, &mut expect);
        assert_eq!(mid.train, expect[0]);
        net.evaluate(
            split.train.view(),
            &split.train.labels,
            &[0.01; 2],
            &mut ws,
            &mut expect,
        );
        assert_eq!(last.train, expect[0]);
        assert!(eval.finite(0));
        assert_eq!(eval.test(&net).len(), 2);
    }
}
