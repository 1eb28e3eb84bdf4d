//! Medians and percentiles.

/// The median of `values` (sorts them).
pub fn median(values: &mut [f64]) -> f64 {
    percentile(values, 50.0)
}

/// The `p`th percentile of `values` by nearest rank (sorts them); NaN for
/// no values.
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = (p / 100.0 * (values.len() - 1) as f64).round() as usize;
    values[rank.min(values.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).rev().collect();
        assert_eq!(median(&mut v), 51.0);
        assert_eq!(percentile(&mut v, 99.0), 99.0);
        assert!(percentile(&mut [], 50.0).is_nan());
    }
}
