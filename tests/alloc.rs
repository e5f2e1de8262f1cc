//! A training step allocates nothing on the heap.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{s, Array2, ShapeBuilder};
use shallow::nn::net::{LossStat, StepRegs};
use shallow::nn::{Arch, Loss, Net};
use shallow::train::group::shuffle_epoch;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One test (not several) so that no other test allocates while this one counts.
#[test]
fn a_training_step_allocates_nothing() {
    shallow::nn::blas::set_threads(1);
    // As the runner does it: layer 0's fixed blocks as rayon tasks, on one
    // thread and on two.
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        // Every pool thread started (their start-up allocates) before anything is counted.
        pool.broadcast(|_| ());
        pool.install(|| steps_allocate_nothing(threads));
    }
}

fn steps_allocate_nothing(threads: usize) {
    for hidden in [vec![], vec![50], vec![30, 20]] {
        let arch = Arch::cifar(&hidden, Loss::Ce);
        let n = 100;
        let data = Array2::from_shape_fn((3072, 1000).f(), |(i, j)| {
            ((i * 7919 + j * 31) % 255) as f32 / 255.0 - 0.5
        });
        // A shuffled batch is gathered column by column into a buffer, as the trainer does.
        let mut x = Array2::<f32>::zeros((3072, n).f());
        let y: Vec<u8> = (0..n).map(|j| (j % 10) as u8).collect();
        let mut net = Net::<f32>::init(&arch, &[1, 2, 3, 4]);
        let mut ws = net.workspace(n);
        let mut stats = [LossStat::default(); 4];
        let mut order: Vec<usize> = (0..1000).collect();
        let etas = [0.01f32, 0.02, 0.05, 0.1];
        let lambdas = [0.0f32, 0.01, 0.1, 0.2];
        let set = shallow::data::DataSet::new(data.clone(), vec![0; 1000]);
        let augment = shallow::data::Augment {
            flip: true,
            translate: 3,
            pad: shallow::data::Pad::Reflect,
        };
        // The bonus pieces: batch norm and momentum in the net, dropout and
        // label smoothing in the training pass.
        let mut bonus = Net::<f32>::init(
            &Arch::cifar(&hidden, Loss::Ce).with_batch_norm(true),
            &[1, 2, 3, 4],
        );
        bonus.set_momentum(0.9);
        let mut bonus_ws = bonus.workspace(n);
        // Mixed precision where the CPU has AVX512-BF16: layer 0 packed and
        // multiplied in bf16, in buffers allocated with the workspace.
        let mut mixed = Net::<f32>::init(&arch, &[5, 6]);
        let bf16 = mixed.enable_bf16().is_ok();
        let mut mixed_ws = mixed.workspace(n);
        // int16 where the CPU has AVX2: the data are (p / 255 - 0.5) / 1 for
        // bytes p, so these statistics map them back to their bytes.
        let pixels = shallow::linalg::int16::Pixels::new(&[0.5; 3072], &[1.0; 3072]);
        let mut int = Net::<f32>::init(&arch, &[7, 8, 9]);
        int.set_momentum(0.9);
        let int16 = int.enable_int16(pixels.clone()).is_ok();
        let mut int_ws = int.workspace(n);
        let regs: Vec<StepRegs> = (0..4)
            .map(|c| StepRegs {
                drop: if hidden.is_empty() {
                    0.0
                } else {
                    0.1 * c as f64
                },
                smoothing: 0.1,
                mask_seed: c as u64,
            })
            .collect();
        // Warm-up step (BLAS allocates its buffers on first use).
        net.forward_loss(x.view(), &y, &mut ws, &mut stats);
        net.backward_update(x.view(), &y, &mut ws, &etas, &lambdas);
        bonus.forward_train(x.view(), &y, &mut bonus_ws, &mut stats, 0, &regs);
        bonus.backward_update(x.view(), &y, &mut bonus_ws, &etas, &lambdas);
        if bf16 {
            mixed.forward_loss(x.view(), &y, &mut mixed_ws, &mut stats[..2]);
            mixed.backward_update(x.view(), &y, &mut mixed_ws, &etas[..2], &lambdas[..2]);
        }
        if int16 {
            int.forward_loss(x.view(), &y, &mut int_ws, &mut stats[..3]);
            int.backward_update(x.view(), &y, &mut int_ws, &etas[..3], &lambdas[..3]);
        }
        // The set in bf16 and int16, converted once before the steps (where the CPU has the feature).
        let packed = if bf16 { set.packed_bf16() } else { None };
        let packed_int16 = if int16 {
            set.packed_int16(&pixels).unwrap()
        } else {
            None
        };
        let before = ALLOCS.load(Ordering::SeqCst);
        for step in 0..20 {
            shuffle_epoch(&mut order, 9, step);
            for (k, &j) in order[..n].iter().enumerate() {
                x.column_mut(k).assign(&data.column(j));
            }
            net.forward_loss(x.view(), &y, &mut ws, &mut stats);
            net.backward_update(x.view(), &y, &mut ws, &etas, &lambdas);
            // Augmented as it is gathered (flips, translations, reflect
            // padding), as the trainer does.
            shallow::data::augment::gather(
                &set,
                &order[..n],
                x.as_slice_memory_order_mut().unwrap(),
                &augment,
                9,
                step,
            );
            net.forward_loss(x.view(), &y, &mut ws, &mut stats);
            net.backward_update(x.view(), &y, &mut ws, &etas, &lambdas);
            bonus.forward_train(x.view(), &y, &mut bonus_ws, &mut stats, step as u64, &regs);
            bonus.backward_update(x.view(), &y, &mut bonus_ws, &etas, &lambdas);
            if bf16 {
                mixed.forward_loss(x.view(), &y, &mut mixed_ws, &mut stats[..2]);
                mixed.backward_update(x.view(), &y, &mut mixed_ws, &etas[..2], &lambdas[..2]);
            }
            if int16 {
                int.forward_loss(x.view(), &y, &mut int_ws, &mut stats[..3]);
                int.backward_update(x.view(), &y, &mut int_ws, &etas[..3], &lambdas[..3]);
            }
            // A view of consecutive images, as without shuffling.
            let block = data.slice(s![.., 100..100 + n]);
            net.forward_loss(block, &y, &mut ws, &mut stats);
            net.backward_update(block, &y, &mut ws, &etas, &lambdas);
            // bf16 on consecutive images: views of the set converted once.
            if let Some(packed) = packed {
                let input = shallow::nn::Input {
                    x: block,
                    packed: packed.batch(100, n).map(shallow::nn::kernel::Packed::Bf16),
                };
                mixed.forward_loss(input, &y, &mut mixed_ws, &mut stats[..2]);
                mixed.backward_update(input, &y, &mut mixed_ws, &etas[..2], &lambdas[..2]);
            }
            // int16 on consecutive images (with momentum: the weights are
            // quantised again after the momentum step).
            if let Some(packed) = packed_int16 {
                let input = shallow::nn::Input {
                    x: block,
                    packed: packed.batch(100, n).map(shallow::nn::kernel::Packed::Int16),
                };
                int.forward_loss(input, &y, &mut int_ws, &mut stats[..3]);
                int.backward_update(input, &y, &mut int_ws, &etas[..3], &lambdas[..3]);
            }
        }
        assert_eq!(
            ALLOCS.load(Ordering::SeqCst) - before,
            0,
            "heap allocations during training steps ({threads} threads)"
        );
    }
}
