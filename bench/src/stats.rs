//! Percentiles of samples and medians of runs.

use serde::{Deserialize, Serialize};

/// The shape of a latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `samples` (any unit), scaled by `to_ms` into milliseconds.
    pub fn of(mut samples: Vec<f64>, to_ms: f64) -> Spread {
        if samples.is_empty() {
            return Spread::default();
        }
        samples.sort_by(f64::total_cmp);
        Spread {
            count: samples.len(),
            p50: percentile(&samples, 0.50) * to_ms,
            p99: percentile(&samples, 0.99) * to_ms,
            max: samples[samples.len() - 1] * to_ms,
        }
    }

    /// The run whose p99 is the median of the runs' p99s (so that its p50, p99 and max belong
    /// together), or none for no runs.
    pub fn median_run(runs: &[Spread]) -> Option<Spread> {
        let mut sorted = runs.to_vec();
        sorted.sort_by(|a, b| a.p99.total_cmp(&b.p99));
        sorted.get(sorted.len().checked_sub(1)? / 2).copied()
    }
}

/// The nearest-rank percentile `q` (0..=1) of sorted samples.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of values (the lower middle one for an even count), or 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n => sorted[(n - 1) / 2],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 0.5), 50.0);
        assert_eq!(percentile(&samples, 0.99), 99.0);
        assert_eq!(percentile(&samples, 1.0), 100.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
    }

    #[test]
    fn a_spread_scales_into_milliseconds() {
        let spread = Spread::of(vec![3e6, 1e6, 2e6], 1e-6);
        assert_eq!(spread.count, 3);
        assert_eq!(spread.p50, 2.0);
        assert_eq!(spread.max, 3.0);
    }

    #[test]
    fn the_median_run_is_the_one_with_the_middle_p99() {
        let run = |p99| Spread {
            count: 1,
            p50: p99 / 2.0,
            p99,
            max: p99 * 2.0,
        };
        let median = Spread::median_run(&[run(30.0), run(10.0), run(20.0)]).unwrap();
        assert_eq!(median, run(20.0));
        assert_eq!(median_of_three(), 2.0);
        assert!(Spread::median_run(&[]).is_none());
    }

    fn median_of_three() -> f64 {
        median(&[3.0, 1.0, 2.0])
    }
}
