//! What one core's multiply-add units can do: the f32 FMA peak, the bf16 dot
//! product's and the 16-bit integer multiply-add's, each measured in a loop of
//! independent instructions with no memory traffic. `shallow bench` prints
//! them, and `--precision fast` picks layer 0's kernel from them
//! ([`Peaks::fastest`]): a kernel can only beat f32 OpenBLAS where its
//! instruction outruns the f32 FMA.

use serde::{Deserialize, Serialize};

use super::int16::Isa;
use super::timing::rate;

/// One core's f32 FMA peak in GFLOP/s (512-bit FMAs where the CPU has
/// AVX-512, 256-bit with AVX2 and FMA), or `None` on a CPU with neither.
pub fn f32_fma(min_s: f64) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") {
            // SAFETY: the feature was detected.
            return Some(rate(min_s, 16.0 * 16.0 * 2.0, |t| {
                std::hint::black_box(unsafe { kernel::fma512_turns(t) });
            }));
        }
        if has!("avx2") && has!("fma") {
            // SAFETY: the features were detected.
            return Some(rate(min_s, 12.0 * 8.0 * 2.0, |t| {
                std::hint::black_box(unsafe { kernel::fma256_turns(t) });
            }));
        }
    }
    let _ = min_s;
    None
}

/// Layer 0's kernels, as `--precision fast` chooses among them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer0Kind {
    /// OpenBLAS sgemm.
    F32,
    /// bf16 products, f32 sums (AVX512-BF16).
    Bf16,
    /// 16-bit integer products on exact pixels.
    Int16,
}

/// One core's instruction peaks (see the module); `None` where the CPU lacks
/// the instruction.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Peaks {
    /// f32 FMA, GFLOP/s.
    pub f32_fma: Option<f64>,
    /// bf16 dot product (`VDPBF16PS`), GFLOP/s.
    pub bf16_dot: Option<f64>,
    /// The int16 kernel's instruction set on this CPU.
    pub int16_isa: Option<Isa>,
    /// Its 16-bit multiply-add, G-ops/s (a multiply-add counted as 2).
    pub int16_madd: Option<f64>,
}

/// Rounds of [`Peaks::measure`], each peak keeping its best.
pub const MEASURE_ROUNDS: usize = 3;

/// How much faster than the f32 FMA a kernel's instruction must be for
/// `--precision fast` to take it: below, what it saves on products is lost
/// to its other passes (packing, quantising).
pub const FAST_MIN_RATIO: f64 = 1.25;

/// How much faster bf16 must be than int16 to be taken over it (int16 is
/// some 250 times more accurate).
pub const BF16_OVER_INT16: f64 = 1.15;

impl Peaks {
    /// Measures every peak this CPU has, about `min_s` seconds each.
    pub fn measure(min_s: f64) -> Self {
        let isa = super::int16::isa();
        let best = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        // The best of rounds taken in turn: another process's load only ever
        // lowers a figure, and rarely every round of it.
        let mut peaks = Peaks {
            f32_fma: None,
            bf16_dot: None,
            int16_isa: isa,
            int16_madd: None,
        };
        for _ in 0..MEASURE_ROUNDS {
            peaks.f32_fma = best(peaks.f32_fma, f32_fma(min_s));
            peaks.bf16_dot = best(peaks.bf16_dot, super::bf16::dot_peak(min_s));
            let int16 = isa.and_then(|i| super::int16::instruction_peak(i, min_s));
            peaks.int16_madd = best(peaks.int16_madd, int16);
        }
        peaks
    }

    /// The kernel `--precision fast` takes, and why, in one line of at most
    /// 80 columns: the faster of int16 and bf16 (int16 unless bf16 is
    /// [`BF16_OVER_INT16`] times faster) when it is at least
    /// [`FAST_MIN_RATIO`] times the f32 FMA, else f32.
    pub fn fastest(&self) -> (Layer0Kind, String) {
        self.fastest_for(true)
    }

    /// [`Self::fastest`] for inputs that are standardised bytes (`bytes`), or
    /// not (whitened: int16 cannot take them, so it is left out).
    pub fn fastest_for(&self, bytes: bool) -> (Layer0Kind, String) {
        let Some(f) = self.f32_fma else {
            return (
                Layer0Kind::F32,
                "fast = f32: no FMA peak measured on this CPU".into(),
            );
        };
        let int16 = self
            .int16_madd
            .filter(|_| bytes)
            .map(|r| (Layer0Kind::Int16, r));
        let bf16 = self.bf16_dot.map(|r| (Layer0Kind::Bf16, r));
        let best = match (int16, bf16) {
            (Some(i), Some(b)) if b.1 > BF16_OVER_INT16 * i.1 => Some(b),
            (Some(i), _) => Some(i),
            (None, b) => b,
        };
        let name = |k: Layer0Kind| match k {
            Layer0Kind::F32 => "f32",
            Layer0Kind::Bf16 => "bf16",
            Layer0Kind::Int16 => "int16",
        };
        match best {
            Some((k, r)) if r >= FAST_MIN_RATIO * f => (
                k,
                format!("fast = {}: its products run {:.2}x the f32 FMA peak here", name(k), r / f),
            ),
            Some((k, r)) => (
                Layer0Kind::F32,
                format!(
                    "fast = f32: {} runs only {:.2}x the f32 FMA peak here (needs {FAST_MIN_RATIO}x)",
                    name(k),
                    r / f
                ),
            ),
            None if !bytes => (
                Layer0Kind::F32,
                "fast = f32: whitened inputs rule out int16, and bf16 does not run here".into(),
            ),
            None => (
                Layer0Kind::F32,
                "fast = f32: no int16 or bf16 kernel runs here".into(),
            ),
        }
    }
}

static PEAKS: std::sync::OnceLock<Peaks> = std::sync::OnceLock::new();
static SAID: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The kernel `--precision fast` takes on this CPU for inputs that are
/// standardised bytes (`bytes`) or not, and why; the peaks are measured once
/// per process (about 0.1 s, the best of three rounds).
pub fn fastest(bytes: bool) -> (Layer0Kind, String) {
    let choice = PEAKS
        .get_or_init(|| Peaks::measure(0.01))
        .fastest_for(bytes);
    SAID.get_or_init(|| choice.1.clone());
    choice
}

/// What [`fastest`] chose first, if this process asked it (a configuration
/// said `--precision fast`): for the line that tells the user.
pub fn fast_choice() -> Option<&'static str> {
    SAID.get().map(String::as_str)
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use std::arch::x86_64::*;

    /// `turns` rounds of 16 independent 512-bit f32 FMAs.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma512_turns(turns: usize) -> f32 {
        let a = _mm512_set1_ps(std::hint::black_box(0.5));
        let mut acc = [_mm512_setzero_ps(); 16];
        for _ in 0..turns {
            for r in acc.iter_mut() {
                *r = _mm512_fmadd_ps(a, a, *r);
            }
            // Keeps the loop from being folded into one multiplication.
            std::arch::asm!("", options(nomem, nostack));
        }
        let mut s = _mm512_setzero_ps();
        for r in acc {
            s = _mm512_add_ps(s, r);
        }
        _mm512_reduce_add_ps(s)
    }

    /// `turns` rounds of 12 independent 256-bit f32 FMAs.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma256_turns(turns: usize) -> f32 {
        let a = _mm256_set1_ps(std::hint::black_box(0.5));
        let mut acc = [_mm256_setzero_ps(); 12];
        for _ in 0..turns {
            for r in acc.iter_mut() {
                *r = _mm256_fmadd_ps(a, a, *r);
            }
            std::arch::asm!("", options(nomem, nostack));
        }
        let mut s = [0.0f32; 8];
        let mut v = _mm256_setzero_ps();
        for r in acc {
            v = _mm256_add_ps(v, r);
        }
        _mm256_storeu_ps(s.as_mut_ptr(), v);
        s.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peaks(f: f64, b: Option<f64>, i: Option<f64>) -> Peaks {
        Peaks {
            f32_fma: Some(f),
            bf16_dot: b,
            int16_isa: i.map(|_| Isa::Avx2),
            int16_madd: i,
        }
    }

    /// The choice on the CPUs the thresholds were set for, and its line fits 80 columns.
    #[test]
    fn fast_takes_the_kernel_whose_instruction_outruns_f32() {
        let cases = [
            // Zen 3: AVX2 only, 16-bit madds 1.65x.
            (peaks(100.0, None, Some(165.0)), Layer0Kind::Int16),
            // Zen 4: both about 2x; int16 is the more accurate.
            (peaks(100.0, Some(200.0), Some(195.0)), Layer0Kind::Int16),
            // bf16 far ahead.
            (peaks(100.0, Some(250.0), Some(150.0)), Layer0Kind::Bf16),
            // Sapphire Rapids: nothing beats the FMA.
            (peaks(100.0, Some(50.0), Some(100.0)), Layer0Kind::F32),
            (peaks(100.0, None, None), Layer0Kind::F32),
        ];
        for (p, want) in cases {
            let (got, line) = p.fastest();
            assert_eq!(got, want, "{line}");
            assert!(line.len() <= 80, "{line}");
        }
        // Whitened inputs are not bytes: the next best, never int16.
        let zen4 = peaks(100.0, Some(200.0), Some(195.0));
        assert_eq!(zen4.fastest_for(false).0, Layer0Kind::Bf16);
        let zen3 = peaks(100.0, None, Some(165.0));
        let (got, line) = zen3.fastest_for(false);
        assert_eq!(got, Layer0Kind::F32);
        assert!(line.len() <= 80 && line.contains("whitened"), "{line}");
    }

    #[test]
    fn peaks_are_measured_where_the_cpu_has_the_instructions() {
        let p = Peaks::measure(0.005);
        assert_eq!(p.int16_isa, crate::linalg::int16::isa());
        assert_eq!(p.int16_madd.is_some(), p.int16_isa.is_some());
        assert_eq!(p.bf16_dot.is_some(), crate::linalg::bf16::available());
        for r in [p.f32_fma, p.bf16_dot, p.int16_madd].into_iter().flatten() {
            assert!(r > 1.0 && r < 1e5, "{r} G-ops/s");
        }
    }
}
