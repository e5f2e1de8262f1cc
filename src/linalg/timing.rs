//! Timing a loop of instructions: what the instruction-peak measurements of
//! [`super::peak`], [`super::bf16`] and [`super::int16`] share.

/// Operations per second of `turn(turns)` (which does `ops_per_turn` x
/// `turns` operations), in G-ops/s, timed over at least `min_s` seconds.
pub fn rate(min_s: f64, ops_per_turn: f64, mut turn: impl FnMut(usize)) -> f64 {
    let mut turns = 1usize << 12;
    loop {
        let t = std::time::Instant::now();
        turn(turns);
        let s = t.elapsed().as_secs_f64();
        if s >= min_s {
            return ops_per_turn * turns as f64 / s / 1e9;
        }
        turns *= 2;
    }
}
