//! The floating-point element type of arrays and networks, with its BLAS
//! entry point ([`GemmRaw`]: `cblas_sgemm` or `cblas_dgemm`).

use std::fmt::{Debug, Display};
use std::os::raw::c_int;

use cblas_sys::{CBLAS_LAYOUT, CBLAS_TRANSPOSE};

/// Floating-point element type of a network: `f32` to train, `f64` to check gradients.
pub trait Real:
    num_traits::Float
    + GemmRaw
    + Default
    + Send
    + Sync
    + Debug
    + Display
    + std::iter::Sum
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + 'static
{
    /// `"f32"` or `"f64"`.
    const NAME: &'static str;
    /// Converts from f64 (rounding for f32).
    fn of(x: f64) -> Self;
    /// Converts to f64 exactly.
    fn f64(self) -> f64;
    /// The same view as f32, when this type is f32 (the bf16 kernel's
    /// operands and results are f32); `None` for f64.
    fn f32_view(v: ndarray::ArrayView2<'_, Self>) -> Option<ndarray::ArrayView2<'_, f32>>;
    /// The same mutable view as f32, when this type is f32; `None` for f64.
    fn f32_view_mut(v: ndarray::ArrayViewMut2<'_, Self>)
        -> Option<ndarray::ArrayViewMut2<'_, f32>>;
}

impl Real for f32 {
    const NAME: &'static str = "f32";
    fn of(x: f64) -> Self {
        x as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
    fn f32_view(v: ndarray::ArrayView2<'_, Self>) -> Option<ndarray::ArrayView2<'_, f32>> {
        Some(v)
    }
    fn f32_view_mut(
        v: ndarray::ArrayViewMut2<'_, Self>,
    ) -> Option<ndarray::ArrayViewMut2<'_, f32>> {
        Some(v)
    }
}

impl Real for f64 {
    const NAME: &'static str = "f64";
    fn of(x: f64) -> Self {
        x
    }
    fn f64(self) -> f64 {
        self
    }
    fn f32_view(_: ndarray::ArrayView2<'_, Self>) -> Option<ndarray::ArrayView2<'_, f32>> {
        None
    }
    fn f32_view_mut(
        _: ndarray::ArrayViewMut2<'_, Self>,
    ) -> Option<ndarray::ArrayViewMut2<'_, f32>> {
        None
    }
}

/// Raw GEMM entry point per precision (`cblas_sgemm` or `cblas_dgemm`,
/// column-major); used only by `blas::gemm`.
pub trait GemmRaw: Sized {
    /// C (dims[0] x dims[1]) <- alpha op(A) op(B) + beta C, inner dimension dims[2];
    /// each matrix is a pointer and its leading dimension.
    ///
    /// # Safety
    /// Pointers and leading dimensions must describe valid column-major matrices
    /// of those shapes, dimensions must fit in `c_int`, and C must not alias A or B.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        ta: CBLAS_TRANSPOSE,
        tb: CBLAS_TRANSPOSE,
        dims: [usize; 3],
        alpha: Self,
        a: (*const Self, usize),
        b: (*const Self, usize),
        beta: Self,
        c: (*mut Self, usize),
    );
}

macro_rules! gemm_raw_impl {
    ($t:ty, $f:path) => {
        impl GemmRaw for $t {
            unsafe fn gemm_raw(
                ta: CBLAS_TRANSPOSE,
                tb: CBLAS_TRANSPOSE,
                [m, n, k]: [usize; 3],
                alpha: $t,
                a: (*const $t, usize),
                b: (*const $t, usize),
                beta: $t,
                c: (*mut $t, usize),
            ) {
                $f(
                    CBLAS_LAYOUT::CblasColMajor,
                    ta,
                    tb,
                    m as c_int,
                    n as c_int,
                    k as c_int,
                    alpha,
                    a.0,
                    a.1 as c_int,
                    b.0,
                    b.1 as c_int,
                    beta,
                    c.0,
                    c.1 as c_int,
                )
            }
        }
    };
}

gemm_raw_impl!(f32, cblas_sys::cblas_sgemm);
gemm_raw_impl!(f64, cblas_sys::cblas_dgemm);
