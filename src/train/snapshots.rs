//! Averaged predictions: a snapshot ensemble's sums of class probabilities
//! (the nets at the ends of the last cycles), with test-time flips adding each
//! image's mirror, and the final net's probabilities for runs that save them.

use serde::{Deserialize, Serialize};

use super::config::{RunConfig, EVAL_CHUNK};
use crate::data::{DataSet, Split};
use crate::linalg::Real;
use crate::nn::ensemble::add_probs;
use crate::nn::{Net, Workspace};

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

impl SnapshotSums {
    /// Empty sums sized for `split`'s validation and test sets with `classes` classes.
    fn zeros<T: Real>(classes: usize, split: &Split<T>) -> Self {
        SnapshotSums {
            count: 0,
            val: vec![0.0; classes * split.val.len()],
            test: vec![0.0; classes * split.test.len()],
        }
    }
}

/// When and how a lockstep group adds its configurations' predictions.
pub struct Snapshots<'a, T> {
    split: &'a Split<T>,
    classes: usize,
    /// Per configuration, the steps whose nets its ensemble averages.
    steps: Vec<Vec<usize>>,
    /// Per configuration, whether it adds mirror images (test-time flips).
    tta: Vec<bool>,
    /// Mirror images of the validation and test sets, when any configuration flips.
    mirrored: Option<(DataSet<T>, DataSet<T>)>,
    /// Label scratch of one evaluation chunk.
    labels: Vec<u8>,
}

impl<'a, T: Real> Snapshots<'a, T> {
    /// The snapshots of `configs` (one lockstep group) on `split`.
    pub fn new(configs: &[RunConfig], split: &'a Split<T>) -> Self {
        let tta: Vec<bool> = configs.iter().map(|c| c.tta).collect();
        let mirrored = tta.iter().any(|&f| f).then(|| {
            (
                crate::data::augment::mirrored(&split.val),
                crate::data::augment::mirrored(&split.test),
            )
        });
        Snapshots {
            split,
            classes: configs[0].arch().classes,
            steps: configs.iter().map(|c| c.snapshot_steps()).collect(),
            tta,
            mirrored,
            labels: vec![0u8; EVAL_CHUNK],
        }
    }

    /// After step `t`: adds the net of every configuration whose ensemble
    /// takes this step and that has not diverged (`live[c]`) to its sums.
    /// Only a cycle's end allocates (outside the step proper).
    pub fn add_due(
        &mut self,
        t: usize,
        live: impl Fn(usize) -> bool,
        net: &Net<T>,
        sums: &mut [SnapshotSums],
        ws: &mut Workspace<T>,
    ) {
        let due = |c: usize| live(c) && self.steps[c].contains(&t);
        if !(0..sums.len()).any(due) {
            return;
        }
        let due: Vec<usize> = (0..sums.len()).filter(|&c| due(c)).collect();
        for &c in &due {
            if sums[c].count == 0 {
                sums[c] = SnapshotSums::zeros(self.classes, self.split);
            }
            sums[c].count += 1;
        }
        self.add(net, &due, sums, ws);
    }

    /// The final net's probabilities for configurations `want` (runs that
    /// save them or flip test images and have no snapshot sums): one set of
    /// sums per configuration, empty for the others.
    pub fn finals(
        &mut self,
        net: &Net<T>,
        want: &[usize],
        ws: &mut Workspace<T>,
    ) -> Vec<SnapshotSums> {
        let mut sums = vec![SnapshotSums::default(); self.steps.len()];
        for &c in want {
            sums[c] = SnapshotSums {
                count: 1,
                ..SnapshotSums::zeros(self.classes, self.split)
            };
        }
        if !want.is_empty() {
            self.add(net, want, &mut sums, ws);
        }
        sums
    }

    /// Adds configurations `cs`' (ascending) class probabilities on the
    /// validation and test sets to `sums[c]`, and for those with test-time
    /// flips also their probabilities on the mirror images.
    fn add(
        &mut self,
        net: &Net<T>,
        cs: &[usize],
        sums: &mut [SnapshotSums],
        ws: &mut Workspace<T>,
    ) {
        let flipped: Vec<usize> = cs.iter().copied().filter(|&c| self.tta[c]).collect();
        for test in [false, true] {
            let (set, mirror) = if test {
                (&self.split.test, self.mirrored.as_ref().map(|m| &m.1))
            } else {
                (&self.split.val, self.mirrored.as_ref().map(|m| &m.0))
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
                        if test {
                            &mut s.test[..]
                        } else {
                            &mut s.val[..]
                        }
                    })
                    .collect();
                add_probs(net, data.view(), ws, views, &mut bufs, &mut self.labels);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sums are added at the cycles' ends only, for live configurations, and
    /// equal the softmax the net computes (with the mirror's added under tta).
    #[test]
    fn snapshots_sum_the_nets_probabilities_at_the_cycles_ends() {
        let split: Split<f64> = crate::data::generated::split(20, 6, 4, 1);
        let base = RunConfig {
            steps: 40,
            snapshots: 2,
            ..RunConfig::a2(10, 2)
        };
        let configs = vec![
            base.clone(),
            RunConfig {
                tta: true,
                ..base.clone()
            },
        ];
        assert_eq!(configs[0].snapshot_steps(), vec![20, 40]);
        let net = Net::<f64>::init(&base.arch(), &[1, 2]);
        let mut ws = net.workspace(6);
        let mut snaps = Snapshots::new(&configs, &split);
        let mut sums = vec![SnapshotSums::default(); 2];
        snaps.add_due(19, |_| true, &net, &mut sums, &mut ws);
        assert_eq!(sums[0], SnapshotSums::default());
        snaps.add_due(20, |c| c == 0, &net, &mut sums, &mut ws);
        assert_eq!((sums[0].count, sums[1].count), (1, 0));
        // The net's own probabilities of the validation images.
        let mut stats = vec![crate::nn::net::LossStat::default(); 2];
        net.forward_loss(split.val.view(), &split.val.labels, &mut ws, &mut stats);
        // Configuration 0's K x n block, column by column, in f32.
        let block = ws.output(6).slice(ndarray::s![0..10, ..]).to_owned();
        let p: Vec<f32> = block.t().iter().map(|&v| v as f32).collect();
        assert_eq!(sums[0].val, p);
        // With tta the final sums add each image's mirror too.
        let finals = snaps.finals(&net, &[1], &mut ws);
        assert_eq!(finals[0], SnapshotSums::default());
        assert_eq!(finals[1].count, 1);
        assert_ne!(finals[1].val, p);
        assert_eq!(finals[1].val.len(), 60);
    }
}
