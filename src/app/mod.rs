//! The commands, one module each: `train`, `sweep`, `search`, `experiment`,
//! `lr-range`, `ensemble`, `bench`, `gradcheck`, `data`, and `predict`,
//! `evaluate` and `export` (`model`). Each holds its
//! command's flags (clap `Args`), turns them into the library's settings,
//! validates them, calls the library (a pipeline of [`crate::pipeline`] for
//! the longer jobs), prints, and says how it ended as a `Finish`; `main.rs`
//! only parses and dispatches.
//! It is the top layer: it imports everything below, nothing imports it.

pub mod args;
pub mod bench;

pub mod common;
pub mod data;
pub mod ensemble;
pub mod experiment;
pub mod gradcheck;
pub mod lr_range;
pub mod model;
pub mod search;
pub mod sweep;
pub mod train;

pub use common::{
    cores, interrupted, load_or_fetch, print_json, print_summary, report, run_and_write,
    runner_options, Finish,
};
