//! Shared helpers for integration tests: generated data and the real-data switch.
#![allow(dead_code)]

use rand::{RngExt, SeedableRng};
use shallow::data::{Cifar10, Split, SplitSpec};
use shallow::nn::Real;
use shallow::train::group::Silent;
use shallow::train::{train_group, Control, GroupOutcome, RunConfig};

/// A small generated split (d = 3072, classes separable by a colour bias), so
/// training does something meaningful without the real data.
pub fn generated_split<T: Real>(n_train: usize, n_val: usize, seed: u64) -> Split<T> {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut make = |n: usize| {
        let labels: Vec<u8> = (0..n).map(|_| rng.random_range(0..10u8)).collect();
        let mut px = vec![0u8; n * 3072];
        for (j, &l) in labels.iter().enumerate() {
            for i in 0..3072 {
                let bias = if (i / 307) as u8 == l { 60 } else { 0 };
                px[j * 3072 + i] = rng.random_range(0..160u8) + bias;
            }
        }
        (labels, px)
    };
    let train = make(n_train);
    let val = make(n_val);
    let test = make(n_val);
    Split::from_pixels(train, val, test, 3072, SplitSpec::default(), vec![])
}

/// The real data when CIFAR10_DIR is set; otherwise prints why the test is skipped.
pub fn real_data(test: &str) -> Option<Cifar10> {
    match std::env::var_os("CIFAR10_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => {
            Some(Cifar10::load(std::path::Path::new(&dir)).expect("CIFAR10_DIR holds CIFAR-10"))
        }
        None => {
            eprintln!("skipping {test}: CIFAR10_DIR is not set (point it at cifar-10-batches-bin to run it)");
            None
        }
    }
}

/// Trains `cfgs` as one lockstep group (ids 0..n), silently, to the end.
pub fn train<T: Real>(cfgs: &[RunConfig], split: &Split<T>) -> GroupOutcome<T> {
    let ids: Vec<usize> = (0..cfgs.len()).collect();
    train_group(cfgs, &ids, split, &Control::new(), &Silent, None).expect("trains")
}

/// The numbers of a result.json (accuracies and costs on train, validation and
/// test), wall times aside: what determinism tests compare bit for bit.
pub fn numbers(r: &shallow::train::output::RunResult) -> [f64; 6] {
    [
        r.train_acc,
        r.val_acc,
        r.test_acc,
        r.train_cost,
        r.val_cost,
        r.test_cost,
    ]
}
