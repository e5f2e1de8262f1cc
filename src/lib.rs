//! shallow: a fast trainer for shallow neural networks on CIFAR-10.
//!
//! Data flows `data` (read, check, standardise once) -> `train` (one loop over a
//! group of C >= 1 configurations trained in lockstep) -> `sweep` (groups on a
//! rayon pool, results tables) -> `report` (plots, weight images, Markdown/HTML);
//! `pipeline` chains them into whole jobs (the search, `experiment all`, the
//! bonus, the benchmark), and `app` turns command lines into those calls.
//! Matrices are column-major, features x samples, so one image is one contiguous
//! column and a mini-batch of consecutive images is one contiguous block.

#![warn(missing_docs)]

// Links Debian's system OpenBLAS (BLAS, CBLAS and LAPACK), see README "Set-up".
extern crate openblas_src;

pub mod app;
pub mod data;
pub mod folder;
pub mod linalg;
pub mod nn;
pub mod pipeline;
pub mod report;
pub mod sweep;
pub mod train;
pub mod ui;
pub mod util;
