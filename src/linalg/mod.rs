//! The bottom layer: the floating-point element type (`Real`) and the one
//! checked GEMM over ndarray views with OpenBLAS thread and kernel control
//! (`blas`). Everything that multiplies matrices (whitening in `data`, the
//! networks in `nn`, the benches) goes through it; it imports nothing of ours.

pub mod bf16;
pub mod blas;
pub mod int16;
pub mod peak;
pub mod real;
pub mod timing;

pub use real::Real;
