//! Phase timers for `shallow bench`: off by default, when they cost one relaxed
//! atomic load per phase per step. When on, each phase's nanoseconds accumulate
//! in global counters.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Phases of a training step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Taking the batch (a view, or a gather when shuffling).
    Batch = 0,
    /// The forward GEMMs.
    ForwardGemm = 1,
    /// Bias, ReLU and softmax / loss (element-wise forward work).
    Activation = 2,
    /// The backward GEMMs, including the fused weight updates.
    BackwardGemm = 3,
    /// Element-wise backward work: G = P - Y, ReLU masks, bias updates, scaling G.
    Update = 4,
}

/// Number of phases.
pub const PHASES: usize = 5;
/// Phase names, in order.
pub const NAMES: [&str; PHASES] = [
    "taking the batch",
    "forward GEMMs",
    "bias, ReLU, softmax",
    "backward GEMMs (fused update)",
    "element-wise backward",
];

/// Column headers for the phases in tables (at most 11 characters), same order.
pub const SHORT_NAMES: [&str; PHASES] =
    ["batch", "fwd GEMMs", "bias+act", "bwd GEMMs", "elementwise"];

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; PHASES] = [const { AtomicU64::new(0) }; PHASES];

/// Turns the timers on or off and clears them.
pub fn enable(on: bool) {
    for n in &NANOS {
        n.store(0, Ordering::Relaxed);
    }
    ENABLED.store(on, Ordering::Relaxed);
}

/// Starts timing (None when the timers are off).
#[inline]
pub fn start() -> Option<Instant> {
    if ENABLED.load(Ordering::Relaxed) {
        Some(Instant::now())
    } else {
        None
    }
}

/// Adds the time since `t` to `phase` and restarts the clock.
#[inline]
pub fn lap(t: &mut Option<Instant>, phase: Phase) {
    if let Some(s) = t {
        let now = Instant::now();
        NANOS[phase as usize].fetch_add((now - *s).as_nanos() as u64, Ordering::Relaxed);
        *s = now;
    }
}

/// Seconds accumulated per phase.
pub fn totals() -> [f64; PHASES] {
    let mut out = [0.0; PHASES];
    for (o, n) in out.iter_mut().zip(&NANOS) {
        *o = n.load(Ordering::Relaxed) as f64 * 1e-9;
    }
    out
}
