//! Reproducibility: same seed, same numbers; lockstep equals alone; threads do not matter.

mod common;

use shallow::data::SplitSpec;
use shallow::nn::{blas, Loss, Precision};
use shallow::train::{RunConfig, Schedule, Status};

fn config(lambda: f64, eta_max: f64) -> RunConfig {
    RunConfig {
        name: format!("l{lambda}"),
        hidden: vec![16],
        loss: Loss::Ce,
        lambda,
        schedule: Schedule::Cyclic {
            eta_min: 1e-5,
            eta_max,
            ns: 20,
        },
        batch: 25,
        steps: 80,
        shuffle: true,
        seed: 7,
        split: SplitSpec::default(),
        precision: Precision::F64,
        log_every: 20,
        save_weights: false,
    }
}

#[test]
fn same_seed_same_result_bit_for_bit() {
    let split = common::generated_split::<f32>(300, 100, 1);
    let cfgs = [config(0.01, 0.05)];
    let a = common::train(&cfgs, &split);
    let b = common::train(&cfgs, &split);
    assert_eq!(a.runs[0].history, b.runs[0].history);
    assert_eq!(a.runs[0].weights, b.runs[0].weights);
    assert!(
        a.runs[0].val.acc > 0.2,
        "learns something: {}",
        a.runs[0].val.acc
    );
    let mut other = cfgs[0].clone();
    other.seed = 8;
    let c = common::train(&[other], &split);
    assert_ne!(a.runs[0].weights, c.runs[0].weights, "the seed matters");
}

#[test]
fn lockstep_group_equals_each_configuration_alone() {
    let split = common::generated_split::<f64>(300, 100, 2);
    let cfgs = [config(0.0, 0.05), config(0.05, 0.02), config(0.5, 0.1)];
    let group = common::train(&cfgs, &split);
    for (c, cfg) in cfgs.iter().enumerate() {
        let alone = common::train(std::slice::from_ref(cfg), &split);
        let (g, a) = (&group.runs[c], &alone.runs[0]);
        for (p, q) in g.history.iter().zip(&a.history) {
            assert!(
                (p.val.cost - q.val.cost).abs() < 1e-9,
                "config {c}: {} vs {}",
                p.val.cost,
                q.val.cost
            );
            assert_eq!(p.val.acc, q.val.acc);
        }
        for (lg, la) in g.weights.iter().zip(&a.weights) {
            for (x, y) in lg.2.iter().zip(&la.2) {
                assert!((x - y).abs() < 1e-9);
            }
        }
    }
}

#[test]
fn one_and_two_blas_threads_agree() {
    let split = common::generated_split::<f32>(300, 100, 3);
    let mut cfg = config(0.01, 0.05);
    cfg.precision = Precision::F32;
    blas::set_threads(1);
    let a = common::train(std::slice::from_ref(&cfg), &split);
    blas::set_threads(2);
    let b = common::train(std::slice::from_ref(&cfg), &split);
    for (p, q) in a.runs[0].history.iter().zip(&b.runs[0].history) {
        assert!((p.train.cost - q.train.cost).abs() < 1e-4 * p.train.cost.abs().max(1.0));
    }
}

#[test]
fn a_diverging_configuration_stops_alone() {
    let split = common::generated_split::<f32>(300, 100, 4);
    let mut wild = config(0.0, 0.05);
    wild.schedule = Schedule::Cyclic {
        eta_min: 50.0,
        eta_max: 90.0,
        ns: 20,
    };
    wild.precision = Precision::F32;
    let mut calm = config(0.01, 0.05);
    calm.precision = Precision::F32;
    let out = common::train(&[wild, calm.clone()], &split);
    assert_eq!(out.runs[0].status, Status::Diverged);
    let d = out.runs[0].diverged.expect("where it diverged");
    assert!(d.step < 80 && d.eta >= 50.0);
    assert_eq!(out.runs[1].status, Status::Done);
    let alone = common::train(&[calm], &split);
    assert_eq!(
        out.runs[1].val.acc, alone.runs[0].val.acc,
        "the other configuration is unaffected"
    );
}
