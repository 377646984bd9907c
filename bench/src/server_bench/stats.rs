//! The arithmetic of the server benchmark: percentiles of latencies, the
//! median of repeated ratios, and the open-loop schedule.

use std::time::Duration;

/// The `percentile`-th percentile of `sorted` by the nearest-rank method:
/// the smallest value such that at least `percentile` % of the values are
/// at most it. `None` for no values.
///
/// `sorted` must be in ascending order; `percentile` is clamped to
/// `0.0..=100.0` (0 gives the minimum, 100 the maximum).
#[must_use]
pub fn percentile(sorted: &[u64], percentile: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let fraction = percentile.clamp(0.0, 100.0) / 100.0;
    // Nearest rank: ceil(p * n), 1-based; the minimum for p = 0.
    let rank = (fraction * sorted.len() as f64).ceil();
    // `rank` is a whole number in 0..=len, so the cast is exact.
    #[allow(clippy::cast_possible_truncation)]
    let index = (rank as usize).clamp(1, sorted.len()) - 1;
    sorted.get(index).copied()
}

/// The median of `values` (the mean of the two middle ones for an even
/// count); `None` for none. NaNs sort last.
#[must_use]
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted.get(middle).copied()
    } else {
        Some((sorted[middle - 1] + sorted[middle]) / 2.0)
    }
}

/// A fixed request rate, as an open-loop generator sends it: request `i`
/// is due at `i / rate` seconds after the start, whatever happened to the
/// requests before it, and its latency is measured from that due time, so
/// a server that stalls is charged for every request that queued behind
/// the stall (no coordinated omission).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate: f64,
    requests: u64,
}

impl Schedule {
    /// `rate` requests per second for `duration`: `rate x duration`
    /// requests, rounded down, at least one.
    ///
    /// # Panics
    ///
    /// Never; a zero or negative rate is taken as one request per second.
    #[must_use]
    pub fn new(rate: f64, duration: Duration) -> Self {
        let rate = if rate.is_finite() && rate >= 1.0 {
            rate
        } else {
            1.0
        };
        // A whole, positive number of requests (rate and duration are
        // finite), far below u64::MAX for any run that ends.
        #[allow(clippy::cast_possible_truncation)]
        let requests = (rate * duration.as_secs_f64()).floor().max(1.0) as u64;
        Schedule { rate, requests }
    }

    /// How many requests the schedule sends.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// When request `index` is due, from the start. Computed from the
    /// index, not by adding intervals, so rounding never accumulates.
    #[must_use]
    pub fn due(&self, index: u64) -> Duration {
        Duration::from_secs_f64(index as f64 / self.rate)
    }

    /// The latency of a request that is due at `due` and completed at
    /// `completed` (both from the start): from the due time, never from
    /// when it was actually sent. Zero if it completed before it was due,
    /// which a correct generator never sees.
    #[must_use]
    pub fn latency(due: Duration, completed: Duration) -> Duration {
        completed.saturating_sub(due)
    }
}

/// Latencies of one run, in nanoseconds, with the summary the report
/// prints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Latencies {
    sorted: Vec<u64>,
}

impl Latencies {
    /// Sorts `nanos` once.
    #[must_use]
    pub fn new(mut nanos: Vec<u64>) -> Self {
        nanos.sort_unstable();
        Latencies { sorted: nanos }
    }

    /// How many were recorded.
    #[must_use]
    pub fn count(&self) -> usize {
        self.sorted.len()
    }

    /// The `p`-th percentile in microseconds (see [`percentile`]).
    #[must_use]
    pub fn micros(&self, p: f64) -> Option<f64> {
        percentile(&self.sorted, p).map(|nanos| nanos as f64 / 1e3)
    }
}
