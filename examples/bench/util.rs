//! Small numeric helpers for the analyses.

use std::time::{Duration, Instant};

/// Most events in any window of length `window` (times need not be sorted).
pub fn max_in_window(times: &[Instant], window: Duration) -> usize {
    let mut t: Vec<Instant> = times.to_vec();
    t.sort();
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..t.len() {
        while t[hi].duration_since(t[lo]) >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// Seconds with 2 decimals.
pub fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}

/// Rounds to `places` decimals.
pub fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// The `p`-th percentile (0..=100) of `values` (nearest rank).
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Counts of `values` in buckets `[edges[i], edges[i+1])`, plus one for `>= last edge`.
pub fn histogram(values: &[f64], edges: &[f64]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for w in edges.windows(2) {
        let n = values.iter().filter(|v| **v >= w[0] && **v < w[1]).count();
        out.push((format!("{}–{}", fmt_num(w[0]), fmt_num(w[1])), n));
    }
    if let Some(last) = edges.last() {
        let n = values.iter().filter(|v| **v >= *last).count();
        out.push((format!("≥{}", fmt_num(*last)), n));
    }
    out
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

/// Counts of integer values, value → count, sorted by value.
pub fn int_histogram(values: impl IntoIterator<Item = usize>) -> Vec<(usize, usize)> {
    let mut map = std::collections::BTreeMap::new();
    for v in values {
        *map.entry(v).or_insert(0usize) += 1;
    }
    map.into_iter().collect()
}

/// Mean of `values` (0 when empty).
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}
