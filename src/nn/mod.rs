//! Networks: dense layers as forward/backward function pairs, losses, a
//! stacked multi-configuration network ([`Net`]) with its optimizer
//! ([`optimizer`]) and layer 0's kernel ([`kernel`]), and gradient checks. The
//! GEMM they are built on is [`crate::linalg::blas`], re-exported here.

pub mod arch;
pub mod ensemble;
pub mod gradcheck;
pub mod kernel;
pub mod layers;
pub mod loss;
pub mod net;
pub mod optimizer;
pub mod profile;

pub use crate::linalg::blas::{self, gemm, try_gemm, GemmError};
pub use crate::linalg::Real;
pub use arch::{Arch, ModelKind, Precision};
pub use loss::Loss;
pub use net::{Input, LayerParams, Net, Workspace};
