//! Where a training step's batch comes from: a view of consecutive images (in
//! a kernel's form too, from the set converted once), or a gather into a reused buffer
//! when the group shuffles or augments. Allocated once per group; taking a
//! batch allocates nothing.

use ndarray::{Array2, ShapeBuilder};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::config::RunConfig;
use crate::data::{Augment, DataSet};
use crate::linalg::Real;
use crate::nn::kernel::PackedImages;
use crate::nn::Input;
use crate::util::mix64;

/// The batches of a lockstep group, step by step.
///
/// - Without shuffling or augmentation, step t's batch is images
///   `pos*b..(pos+1)*b` (pos = t mod steps per epoch) as a view, with their
///   packed copy when the kernel reads one (`packed`).
/// - Otherwise it is gathered into `x` (d x b, Fortran order): images in the
///   epoch's shuffled order, each flipped and shifted as `augment` draws.
pub struct BatchSource<'a, T> {
    train: &'a DataSet<T>,
    batch: usize,
    per_epoch: usize,
    shuffle: bool,
    augment: Augment,
    data_seed: u64,
    /// The epoch's permutation of the training images (identity without shuffling).
    order: Vec<usize>,
    /// Gathered images, d x b (d x 0 when batches are views).
    x: Array2<T>,
    /// Gathered labels, b.
    y: Vec<u8>,
    /// The training images in the kernel's form, when consecutive batches
    /// are read that way.
    packed: Option<PackedImages<'a>>,
}

impl<'a, T: Real> BatchSource<'a, T> {
    /// The batches of the group whose first configuration is `first`, on
    /// `train`; `packed`: the images converted for the network's layer-0
    /// kernel, read when batches are views. `start` is the step training
    /// starts at (a resume rebuilds that epoch's order).
    pub fn new(
        first: &RunConfig,
        train: &'a DataSet<T>,
        packed: Option<PackedImages<'a>>,
        start: usize,
    ) -> Self {
        let n_train = train.len();
        let batch = first.batch;
        let gathers = first.shuffle || first.augment.is_on();
        let width = if gathers { batch } else { 0 };
        let mut source = BatchSource {
            train,
            batch,
            per_epoch: first.steps_per_epoch(n_train),
            shuffle: first.shuffle,
            augment: first.augment,
            data_seed: first.data_seed(),
            order: (0..n_train).collect(),
            x: Array2::zeros((train.dim(), width).f()),
            y: vec![0u8; batch],
            packed: packed.filter(|_| !gathers),
        };
        if source.shuffle && start > 0 {
            shuffle_epoch(
                &mut source.order,
                source.data_seed,
                start / source.per_epoch,
            );
        }
        source
    }

    /// Whether batches are gathered (shuffled or augmented) rather than views.
    pub fn gathers(&self) -> bool {
        self.x.ncols() > 0
    }

    /// Step t's batch: the images (d x b) and their labels (b). Allocates nothing.
    pub fn take(&mut self, t: usize) -> (Input<'_, T>, &[u8]) {
        let (b, pos) = (self.batch, t % self.per_epoch);
        if !self.gathers() {
            return (
                Input {
                    x: self.train.cols(pos * b, b),
                    packed: self.packed.and_then(|p| p.batch(pos * b, b)),
                },
                &self.train.labels[pos * b..(pos + 1) * b],
            );
        }
        if self.shuffle && pos == 0 {
            shuffle_epoch(&mut self.order, self.data_seed, t / self.per_epoch);
        }
        let ids = &self.order[pos * b..(pos + 1) * b];
        let out = self
            .x
            .as_slice_memory_order_mut()
            .expect("Fortran-order batch");
        crate::data::augment::gather(self.train, ids, out, &self.augment, self.data_seed, t);
        for (k, &j) in ids.iter().enumerate() {
            self.y[k] = self.train.labels[j];
        }
        (self.x.view().into(), &self.y)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize) -> DataSet<f32> {
        let x = Array2::from_shape_fn((3072, n).f(), |(i, j)| (i * 1000 + j) as f32);
        DataSet::new(x, (0..n).map(|j| (j % 10) as u8).collect())
    }

    fn config(shuffle: bool) -> RunConfig {
        RunConfig {
            batch: 4,
            shuffle,
            ..RunConfig::default()
        }
    }

    #[test]
    fn consecutive_batches_are_views_that_wrap_each_epoch() {
        let data = set(10);
        let mut source = BatchSource::new(&config(false), &data, None, 0);
        assert!(!source.gathers());
        // Two steps per epoch (the last partial batch is dropped): step 2 is step 0.
        for (t, first) in [(0, 0), (1, 4), (2, 0), (3, 4)] {
            let (input, y) = source.take(t);
            assert_eq!(input.x, data.cols(first, 4));
            assert_eq!(y, &data.labels[first..first + 4]);
            assert!(input.packed.is_none());
        }
    }

    #[test]
    fn shuffled_batches_follow_the_epochs_permutation_and_resume_to_it() {
        let data = set(12);
        let mut source = BatchSource::new(&config(true), &data, None, 0);
        assert!(source.gathers());
        let mut order = vec![0; 12];
        let seed = config(true).data_seed();
        let mut seen = Vec::new();
        for t in 0..6 {
            shuffle_epoch(&mut order, seed, t / 3);
            let ids = order[(t % 3) * 4..(t % 3 + 1) * 4].to_vec();
            let (input, y) = source.take(t);
            for (k, &j) in ids.iter().enumerate() {
                assert_eq!(input.x.column(k), data.x.column(j));
                assert_eq!(y[k], data.labels[j]);
            }
            seen.push((input.x.to_owned(), y.to_vec()));
        }
        // A source started at step 4 (a resume mid-epoch) gives steps 4 and 5 again.
        let mut resumed = BatchSource::new(&config(true), &data, None, 4);
        for (t, seen) in seen.iter().enumerate().skip(4) {
            let (input, y) = resumed.take(t);
            assert_eq!(&(input.x.to_owned(), y.to_vec()), seen);
        }
        // Each epoch is a permutation, and the two epochs differ.
        let epoch = |e: usize| {
            let mut o = vec![0; 12];
            shuffle_epoch(&mut o, seed, e);
            o
        };
        let mut sorted = epoch(0);
        sorted.sort_unstable();
        assert_eq!(sorted, (0..12).collect::<Vec<_>>());
        assert_ne!(epoch(0), epoch(1));
    }
}
