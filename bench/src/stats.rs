//! Small helpers shared by the areas: milliseconds, median, max, MB.

use std::time::Duration;

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

/// kB (as /proc reports, KiB) to MB (10^6 bytes).
pub fn mb_f(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1e6
}

pub fn mb(kb: u64) -> String {
    format!("{:.1} MB", mb_f(kb))
}

/// The `p`th percentile (nearest rank, 0 < p <= 100).
pub fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}
