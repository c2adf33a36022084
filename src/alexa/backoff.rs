//! Exponential back-off with full jitter: the delay after the n-th consecutive failure is drawn
//! uniformly from `[0, min(max, base * factor^(n-1))]`, so many objects failing at once spread
//! their retries out instead of hitting Amazon in waves. Used inside a call's bounded retries and
//! by the controllers' per-object requeue.

use std::time::Duration;

use rand::Rng;

/// Exponential back-off parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Upper bound of the first delay.
    pub base: Duration,
    /// Growth of the upper bound per further failure (2.0 doubles it).
    pub factor: f64,
    /// Cap of the upper bound.
    pub max: Duration,
}

impl Default for Backoff {
    /// 1 s doubling up to 5 min, the operator's documented defaults.
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The un-jittered upper bound of the delay after `failures` consecutive failures
    /// (0 failures → no delay). Never overflows, whatever the parameters.
    pub fn max_delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = if self.factor.is_finite() && self.factor >= 1.0 {
            self.factor
        } else {
            1.0
        };
        let exponent = i32::try_from(failures - 1).unwrap_or(i32::MAX);
        let bound = self.base.as_secs_f64() * factor.powi(exponent);
        match Duration::try_from_secs_f64(bound) {
            Ok(d) => d.min(self.max),
            Err(_) => self.max,
        }
    }

    /// A full-jitter delay after `failures` consecutive failures: uniform in
    /// `[0, max_delay(failures)]`.
    pub fn delay(&self, failures: u32) -> Duration {
        let unit: f64 = rand::rng().random_range(0.0..=1.0);
        self.delay_at(failures, unit)
    }

    /// The delay for a given point `unit` in `[0, 1]` of the jitter range (deterministic, for
    /// tests and callers with their own randomness).
    pub fn delay_at(&self, failures: u32, unit: f64) -> Duration {
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            1.0
        };
        self.max_delay(failures).mul_f64(unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            factor: 2.0,
            max: Duration::from_secs(1),
        };
        assert_eq!(b.max_delay(0), Duration::ZERO);
        assert_eq!(b.max_delay(1), Duration::from_millis(100));
        assert_eq!(b.max_delay(2), Duration::from_millis(200));
        assert_eq!(b.max_delay(4), Duration::from_millis(800));
        assert_eq!(b.max_delay(5), Duration::from_secs(1));
        assert_eq!(b.max_delay(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn full_jitter_stays_in_range() {
        let b = Backoff::default();
        for failures in 0..40 {
            for _ in 0..20 {
                assert!(b.delay(failures) <= b.max_delay(failures));
            }
        }
        assert_eq!(b.delay_at(3, 0.0), Duration::ZERO);
        assert_eq!(b.delay_at(3, 1.0), Duration::from_secs(4));
        assert_eq!(b.delay_at(3, 0.5), Duration::from_secs(2));
        assert_eq!(b.delay_at(3, f64::NAN), Duration::from_secs(4));
        assert_eq!(b.delay_at(3, 7.0), Duration::from_secs(4));
    }

    #[test]
    fn silly_parameters_do_not_panic() {
        for factor in [f64::NAN, f64::INFINITY, -3.0, 0.0, 0.5, 1e308] {
            let b = Backoff {
                base: Duration::MAX,
                factor,
                max: Duration::from_secs(10),
            };
            assert!(b.max_delay(1000) <= Duration::from_secs(10));
            let _ = b.delay(7);
        }
    }
}
