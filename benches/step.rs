//! Criterion benches of the hot pieces: one training step per network, lockstep
//! group steps for 1/2/4/8 configurations, evaluation, and data loading.
//! Run with `cargo bench`; uses CIFAR10_DIR for the loading bench when set.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shallow::nn::net::{Eval, LossStat};
use shallow::nn::{blas, Arch, Loss, Net};

fn data(n: usize) -> (ndarray::Array2<f32>, Vec<u8>) {
    shallow::data::generated::features(3072, n)
}

fn step(c: &mut Criterion) {
    blas::set_threads(1);
    let (x, y) = data(100);
    let xv = x.view();
    let mut g = c.benchmark_group("train_step_1_thread");
    for (name, hidden) in [("linear", vec![]), ("mlp50", vec![50])] {
        let arch = Arch::cifar(&hidden, Loss::Ce);
        let mut net = Net::<f32>::init(&arch, &[1]);
        let mut ws = net.workspace(100);
        let mut st = [LossStat::default()];
        g.throughput(Throughput::Elements(100));
        g.bench_function(name, |b| {
            b.iter(|| {
                net.forward_loss(xv, &y, &mut ws, &mut st);
                net.backward_update(xv, &y, &mut ws, &[0.01], &[0.01]);
            })
        });
    }
    g.finish();
}

fn lockstep(c: &mut Criterion) {
    blas::set_threads(1);
    let (x, y) = data(100);
    let xv = x.view();
    let mut g = c.benchmark_group("lockstep_group_step_mlp50");
    for configs in [1usize, 2, 4, 8] {
        let arch = Arch::cifar(&[50], Loss::Ce);
        let seeds: Vec<u64> = (0..configs as u64).collect();
        let mut net = Net::<f32>::init(&arch, &seeds);
        let mut ws = net.workspace(100);
        let mut st = vec![LossStat::default(); configs];
        let etas = vec![0.01f32; configs];
        let lambdas = vec![0.01f32; configs];
        g.throughput(Throughput::Elements(configs as u64));
        g.bench_with_input(BenchmarkId::from_parameter(configs), &configs, |b, _| {
            b.iter(|| {
                net.forward_loss(xv, &y, &mut ws, &mut st);
                net.backward_update(xv, &y, &mut ws, &etas, &lambdas);
            })
        });
    }
    g.finish();
}

fn evaluation(c: &mut Criterion) {
    blas::set_threads(1);
    let (x, y) = data(2000);
    let arch = Arch::cifar(&[50], Loss::Ce);
    let net = Net::<f32>::init(&arch, &[1]);
    let mut ws = net.workspace(2000);
    let mut out = [Eval::default()];
    let mut g = c.benchmark_group("evaluation");
    g.throughput(Throughput::Elements(2000));
    g.bench_function("mlp50_2000_images", |b| {
        b.iter(|| net.evaluate(x.view(), &y, &[0.01], &mut ws, &mut out))
    });
    g.finish();
}

fn loading(c: &mut Criterion) {
    let Some(dir) = std::env::var_os("CIFAR10_DIR") else {
        eprintln!("loading bench skipped: CIFAR10_DIR is not set");
        return;
    };
    let mut g = c.benchmark_group("data");
    g.sample_size(10);
    g.bench_function("load_60000_and_standardise_a1_and_full", |b| {
        b.iter(|| {
            let d = shallow::data::RawData::load(std::path::Path::new(&dir)).unwrap();
            let full = shallow::data::SplitSpec {
                kind: shallow::data::SplitKind::Full,
                ..Default::default()
            };
            shallow::data::Split::<f32>::new(&d, full).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, step, lockstep, evaluation, loading);
criterion_main!(benches);
