//! Checkpoints of interrupted runs: a configuration's parameters (exactly, with
//! its first-layer scale), step, history and timing, so that a resumed run
//! continues to the same numbers as an uninterrupted one. The data order needs
//! no saved generator state: each epoch's order is rebuilt from the seed.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::group::{Divergence, GroupState, LogPoint, SnapshotSums};
use super::RunConfig;
use crate::nn::{Net, Real};

/// File name of a run's checkpoint inside its folder.
pub const FILE: &str = "checkpoint.json";

/// One configuration's resumable state.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    /// The configuration (a resume must match it).
    pub config: RunConfig,
    /// Update steps done.
    pub step: usize,
    /// History so far.
    pub history: Vec<LogPoint>,
    /// Divergence, if any.
    pub diverged: Option<Divergence>,
    /// Training seconds so far.
    pub train_s: f64,
    /// Wall seconds so far (absent in older checkpoints).
    #[serde(default)]
    pub wall_s: f64,
    /// First-layer scale s (W1 = s V1).
    pub scale: f64,
    /// Per layer, the weights in the configuration's block order (V for layer 0).
    pub weights: Vec<Vec<f64>>,
    /// Per layer, the biases.
    pub biases: Vec<Vec<f64>>,
    /// Per hidden layer with batch norm: gamma, beta, running mean, running
    /// variance (empty without batch norm).
    #[serde(default)]
    pub norm: Vec<[Vec<f64>; 4]>,
    /// Velocities of SGD with momentum, per layer in the order of `weights` and
    /// `biases` (empty without momentum).
    #[serde(default)]
    pub velocity: Vec<Vec<f64>>,
    /// Velocities of the biases.
    #[serde(default)]
    pub velocity_b: Vec<Vec<f64>>,
    /// The snapshot ensemble's sums so far.
    #[serde(default)]
    pub snapshots: SnapshotSums,
}

impl Checkpoint {
    /// Extracts configuration `c` of a group state.
    pub fn from_state<T: Real>(state: &GroupState<T>, c: usize, config: &RunConfig) -> Self {
        let net = &state.net;
        let weights = (0..net.layers())
            // Column-major order: the transpose's logical order.
            .map(|l| net.weight(l, c).t().iter().map(|v| v.f64()).collect())
            .collect();
        let biases = (0..net.layers())
            .map(|l| net.bias(l, c).iter().map(|v| v.f64()).collect())
            .collect();
        let (velocity, velocity_b) = if !net.optimizer.has_momentum() {
            (Vec::new(), Vec::new())
        } else {
            (0..net.layers())
                .map(|l| {
                    let (v, vb) = net.velocity(l, c);
                    (
                        v.t().iter().map(|x| x.f64()).collect(),
                        vb.iter().map(|x| x.f64()).collect(),
                    )
                })
                .unzip()
        };
        let norm = (0..net.gamma.len())
            .map(|l| net.norm(l, c).map(|v| v.iter().map(|x| x.f64()).collect()))
            .collect();
        Checkpoint {
            config: config.clone(),
            step: state.step,
            history: state.history[c].clone(),
            diverged: state.diverged[c],
            train_s: state.train_s,
            wall_s: state.wall_s,
            scale: net.scale[c].f64(),
            weights,
            biases,
            norm,
            velocity,
            velocity_b,
            snapshots: state.snapshots[c].clone(),
        }
    }

    /// Stacks checkpoints taken at the same step into one group state.
    pub fn stack<T: Real>(cks: &[Checkpoint]) -> Result<GroupState<T>> {
        let first = &cks[0];
        if cks
            .iter()
            .any(|c| c.step != first.step || c.config.lockstep_key() != first.config.lockstep_key())
        {
            bail!("checkpoints of one group must share step and lockstep settings");
        }
        let arch = first.config.arch();
        let mut net = Net::<T>::zeros(&arch, cks.len());
        net.set_momentum(first.config.momentum);
        for (c, ck) in cks.iter().enumerate() {
            for l in 0..net.layers() {
                let (w_in, w_out) = (net.widths[l], net.widths[l + 1]);
                if ck.weights[l].len() != w_in * w_out || ck.biases[l].len() != w_out {
                    bail!(
                        "checkpoint of {} does not match its architecture",
                        ck.config.name
                    );
                }
                for ((i, j), w) in net.weight_mut(l, c).indexed_iter_mut() {
                    *w = T::of(ck.weights[l][i + j * w_out]);
                }
                for (b, v) in net.bias_mut(l, c).iter_mut().zip(&ck.biases[l]) {
                    *b = T::of(*v);
                }
            }
            net.scale[c] = T::of(ck.scale);
            if net.optimizer.has_momentum() {
                if ck.velocity.len() != net.layers() || ck.velocity_b.len() != net.layers() {
                    bail!(
                        "checkpoint of {} has no momentum velocities",
                        ck.config.name
                    );
                }
                for l in 0..net.layers() {
                    let w_out = net.widths[l + 1];
                    let (mut v, vb) = net.velocity_mut(l, c);
                    if ck.velocity[l].len() != v.len() || ck.velocity_b[l].len() != vb.len() {
                        bail!(
                            "checkpoint of {} does not match its architecture",
                            ck.config.name
                        );
                    }
                    for ((i, j), x) in v.indexed_iter_mut() {
                        *x = T::of(ck.velocity[l][i + j * w_out]);
                    }
                    for (x, y) in vb.iter_mut().zip(&ck.velocity_b[l]) {
                        *x = T::of(*y);
                    }
                }
            }
            if ck.norm.len() != net.gamma.len() {
                bail!(
                    "checkpoint of {} does not match its batch normalisation",
                    ck.config.name
                );
            }
            for (l, saved) in ck.norm.iter().enumerate() {
                for (part, values) in net.norm_mut(l, c).into_iter().zip(saved) {
                    if part.len() != values.len() {
                        bail!(
                            "checkpoint of {} does not match its architecture",
                            ck.config.name
                        );
                    }
                    for (p, v) in part.iter_mut().zip(values) {
                        *p = T::of(*v);
                    }
                }
            }
        }
        Ok(GroupState {
            step: first.step,
            net,
            history: cks.iter().map(|c| c.history.clone()).collect(),
            diverged: cks.iter().map(|c| c.diverged).collect(),
            train_s: first.train_s,
            wall_s: first.wall_s,
            snapshots: cks.iter().map(|c| c.snapshots.clone()).collect(),
        })
    }

    /// Writes the checkpoint atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::util::write_atomic(path, &serde_json::to_vec(self)?)
    }

    /// Reads a checkpoint.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not a shallow checkpoint: delete it to start that run again",
                path.display()
            )
        })
    }
}
