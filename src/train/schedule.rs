//! Learning-rate schedules as plain functions of the update step t (0-based).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// How eta changes with the update step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// eta_t = eta.
    Fixed {
        /// Learning rate.
        eta: f64,
    },
    /// eta_t = eta * factor^floor(t / every_steps) (Assignment 1 bonus).
    StepDecay {
        /// Initial learning rate.
        eta: f64,
        /// Multiplier applied every `every_steps`.
        factor: f64,
        /// Steps between decays (an epoch count times the steps per epoch).
        every_steps: usize,
    },
    /// Cyclical triangular schedule (Smith 2015; Assignment 2): up from eta_min to
    /// eta_max in n_s steps, back down in n_s steps, repeated.
    Cyclic {
        /// Lowest learning rate.
        eta_min: f64,
        /// Highest learning rate.
        eta_max: f64,
        /// Half-cycle length in steps.
        ns: usize,
    },
    /// eta grown exponentially from eta_lo at step 0 to eta_hi at step
    /// `steps - 1`: the learning-rate range test (`shallow lr-range`).
    Exponential {
        /// First learning rate.
        eta_lo: f64,
        /// Last learning rate.
        eta_hi: f64,
        /// Steps of the range test.
        steps: usize,
    },
}

impl Schedule {
    /// Learning rate at update step t.
    pub fn eta(&self, t: usize) -> f64 {
        match *self {
            Schedule::Fixed { eta } => eta,
            Schedule::StepDecay {
                eta,
                factor,
                every_steps,
            } => eta * factor.powi((t / every_steps.max(1)) as i32),
            Schedule::Cyclic {
                eta_min,
                eta_max,
                ns,
            } => {
                let pos = t % (2 * ns);
                let frac = if pos <= ns {
                    pos as f64 / ns as f64
                } else {
                    (2 * ns - pos) as f64 / ns as f64
                };
                eta_min + frac * (eta_max - eta_min)
            }
            Schedule::Exponential {
                eta_lo,
                eta_hi,
                steps,
            } => {
                let frac = t.min(steps.saturating_sub(1)) as f64 / (steps.max(2) - 1) as f64;
                eta_lo * (eta_hi / eta_lo).powf(frac)
            }
        }
    }

    /// Largest learning rate the schedule reaches.
    pub fn eta_peak(&self) -> f64 {
        match *self {
            Schedule::Fixed { eta } | Schedule::StepDecay { eta, .. } => eta,
            Schedule::Cyclic {
                eta_max, eta_min, ..
            } => eta_max.max(eta_min),
            Schedule::Exponential { eta_lo, eta_hi, .. } => eta_hi.max(eta_lo),
        }
    }

    /// Checks the values, with messages that name the flag.
    pub fn validate(&self) -> Result<()> {
        let ok = |v: f64| v.is_finite() && v > 0.0 && v < 100.0;
        match *self {
            Schedule::Fixed { eta } | Schedule::StepDecay { eta, .. } if !ok(eta) => {
                bail!("--eta {eta} is not a usable learning rate: need 0 < eta < 100, e.g. 0.001")
            }
            Schedule::StepDecay { factor, .. } if !(factor > 0.0 && factor <= 1.0) => {
                bail!("--decay-factor {factor} must be in (0, 1], e.g. 0.9")
            }
            Schedule::Cyclic {
                eta_min,
                eta_max,
                ns,
            } => {
                if !ok(eta_min) || !ok(eta_max) || eta_min > eta_max {
                    bail!("--eta-min {eta_min} / --eta-max {eta_max}: need 0 < eta-min <= eta-max < 100, e.g. 1e-5 and 1e-1")
                }
                if ns == 0 {
                    bail!("--ns must be at least 1 step")
                }
                Ok(())
            }
            Schedule::Exponential { eta_lo, eta_hi, .. } => {
                if !ok(eta_lo) || !ok(eta_hi) || eta_lo >= eta_hi {
                    bail!("--eta-lo {eta_lo} / --eta-hi {eta_hi}: need 0 < eta-lo < eta-hi < 100, e.g. 1e-5 and 1")
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The schedule as the initial-weight seed hashes it (encoding
    /// [`super::config::INIT_SEED_ENCODING`]): the variant and its values
    /// written out by hand, numbers as Rust's shortest round-trip form, so that
    /// renaming a field or a variant in the code changes no weight.
    pub fn seed_key(&self) -> String {
        match *self {
            Schedule::Fixed { eta } => format!("Fixed {{ eta: {eta:?} }}"),
            Schedule::StepDecay {
                eta,
                factor,
                every_steps,
            } => format!(
                "StepDecay {{ eta: {eta:?}, factor: {factor:?}, every_steps: {every_steps} }}"
            ),
            Schedule::Cyclic {
                eta_min,
                eta_max,
                ns,
            } => format!("Cyclic {{ eta_min: {eta_min:?}, eta_max: {eta_max:?}, ns: {ns} }}"),
            Schedule::Exponential {
                eta_lo,
                eta_hi,
                steps,
            } => {
                format!("Exponential {{ eta_lo: {eta_lo:?}, eta_hi: {eta_hi:?}, steps: {steps} }}")
            }
        }
    }

    /// Short description with 3 significant digits, e.g. `eta 0.001`,
    /// `eta 0.1 x0.9 every 1000 steps` or `cyclic 1e-5..0.1, ns 500`.
    pub fn describe(&self) -> String {
        use crate::util::short_number as n;
        match *self {
            Schedule::Fixed { eta } => format!("eta {}", n(eta)),
            Schedule::StepDecay {
                eta,
                factor,
                every_steps,
            } => {
                format!("eta {} x{} every {every_steps} steps", n(eta), n(factor))
            }
            Schedule::Cyclic {
                eta_min,
                eta_max,
                ns,
            } => format!("cyclic {}..{}, ns {ns}", n(eta_min), n(eta_max)),
            Schedule::Exponential {
                eta_lo,
                eta_hi,
                steps,
            } => format!(
                "exponential {}..{} over {steps} steps",
                n(eta_lo),
                n(eta_hi)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cyclic_values_at_key_points_and_across_cycles() {
        let s = Schedule::Cyclic {
            eta_min: 1e-5,
            eta_max: 1e-1,
            ns: 500,
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-15;
        assert!(close(s.eta(0), 1e-5));
        assert!(close(s.eta(250), 1e-5 + 0.5 * (1e-1 - 1e-5)));
        assert!(close(s.eta(500), 1e-1));
        assert!(close(s.eta(750), 1e-5 + 0.5 * (1e-1 - 1e-5)));
        assert!(close(s.eta(1000), 1e-5));
        // Second and third cycles repeat the first.
        for t in [0, 1, 137, 499, 500, 501, 999] {
            assert!(close(s.eta(t + 1000), s.eta(t)));
            assert!(close(s.eta(t + 2000), s.eta(t)));
        }
        // Formula of the assignment on the way down: eta_max - (t - (2l+1) ns)/ns (eta_max - eta_min).
        let t = 2 * 1000 + 500 + 123;
        assert!(close(s.eta(t), 1e-1 - 123.0 / 500.0 * (1e-1 - 1e-5)));
    }

    #[test]
    fn exponential_range_test_goes_from_lo_to_hi() {
        let s = Schedule::Exponential {
            eta_lo: 1e-5,
            eta_hi: 1.0,
            steps: 101,
        };
        assert_eq!(s.eta(0), 1e-5);
        assert!((s.eta(50) / 10f64.powf(-2.5) - 1.0).abs() < 1e-12);
        assert!((s.eta(100) - 1.0).abs() < 1e-12);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn step_decay_and_fixed() {
        let s = Schedule::StepDecay {
            eta: 0.1,
            factor: 0.5,
            every_steps: 100,
        };
        assert_eq!(s.eta(99), 0.1);
        assert_eq!(s.eta(100), 0.05);
        assert_eq!(s.eta(250), 0.025);
        assert_eq!(Schedule::Fixed { eta: 0.01 }.eta(12345), 0.01);
    }

    #[test]
    fn nonsense_values_are_rejected_with_the_flag_named() {
        let e = Schedule::Fixed { eta: -1.0 }
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("--eta -1"));
        let e = Schedule::Cyclic {
            eta_min: 0.1,
            eta_max: 0.01,
            ns: 5,
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("--eta-min"));
    }
}
