//! `histogram_quantile` exactly as Prometheus computes it
//! (`promql/quantile.go`, `BucketQuantile`), over cumulative `_bucket`
//! counts keyed by their `le` upper bound.

/// One cumulative bucket: observations `<= upper_bound`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    /// The `le` label.
    pub upper_bound: f64,
    /// Cumulative count.
    pub count: f64,
}

/// The `q`-quantile of the observations counted in `buckets` (in any
/// order; buckets with the same bound are added up), as Prometheus's
/// `histogram_quantile(q, ...)`:
///
/// * `q < 0` is −∞, `q > 1` is +∞, a NaN `q` is NaN;
/// * no `+Inf` bucket, fewer than two buckets, or no observations: NaN;
/// * counts that decrease with the bound are raised to the running
///   maximum (Prometheus's monotonicity fix);
/// * the rank `q × total` falls in the first bucket whose count reaches
///   it; the result interpolates linearly between that bucket's lower
///   bound (the previous bound, or 0 for the first bucket) and its upper
///   bound;
/// * a rank in the `+Inf` bucket answers the highest finite bound; a rank
///   in a first bucket with a bound `<= 0` answers that bound.
pub fn histogram_quantile(q: f64, buckets: &[Bucket]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let mut sorted: Vec<Bucket> = buckets.to_vec();
    sorted.sort_by(|a, b| a.upper_bound.total_cmp(&b.upper_bound));
    // Coalesce equal bounds (series that differ only in other labels).
    let mut b: Vec<Bucket> = Vec::with_capacity(sorted.len());
    for bucket in sorted {
        match b.last_mut() {
            Some(last) if last.upper_bound == bucket.upper_bound => last.count += bucket.count,
            _ => b.push(bucket),
        }
    }
    match b.last() {
        Some(last) if last.upper_bound == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    let mut max = f64::NEG_INFINITY;
    for bucket in &mut b {
        if bucket.count > max {
            max = bucket.count;
        } else {
            bucket.count = max;
        }
    }
    if b.len() < 2 {
        return f64::NAN;
    }
    let observations = b[b.len() - 1].count;
    if observations == 0.0 || observations.is_nan() {
        return f64::NAN;
    }
    let mut rank = q * observations;
    // sort.Search over every bucket but +Inf: the first with count >= rank.
    let i = b[..b.len() - 1]
        .iter()
        .position(|x| x.count >= rank)
        .unwrap_or(b.len() - 1);
    if i == b.len() - 1 {
        return b[b.len() - 2].upper_bound;
    }
    if i == 0 && b[0].upper_bound <= 0.0 {
        return b[0].upper_bound;
    }
    let end = b[i].upper_bound;
    let mut start = 0.0;
    let mut count = b[i].count;
    if i > 0 {
        start = b[i - 1].upper_bound;
        count -= b[i - 1].count;
        rank -= b[i - 1].count;
    }
    start + (end - start) * (rank / count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(f64, f64)]) -> Vec<Bucket> {
        pairs
            .iter()
            .map(|&(upper_bound, count)| Bucket { upper_bound, count })
            .collect()
    }

    const INF: f64 = f64::INFINITY;

    // Expected values are computed by hand with Prometheus's algorithm and
    // match what `histogram_quantile` answers for the same buckets.
    #[test]
    fn interpolates_within_the_bucket() {
        // 10 observations: 2 <= 1, 8 <= 5 (so 6 in (1,5]), 10 <= 10.
        let b = h(&[(1.0, 2.0), (5.0, 8.0), (10.0, 10.0), (INF, 10.0)]);
        // rank 5 -> bucket (1,5]: 1 + 4 * (5-2)/6 = 3.
        assert_eq!(histogram_quantile(0.5, &b), 3.0);
        // rank 9.5 -> bucket (5,10]: 5 + 5 * (9.5-8)/2 = 8.75.
        assert_eq!(histogram_quantile(0.95, &b), 8.75);
        // rank 9.9 -> 5 + 5 * 1.9/2 = 9.75.
        assert!((histogram_quantile(0.99, &b) - 9.75).abs() < 1e-12);
        // rank 1 -> first bucket, lower bound 0: 0 + 1 * 1/2.
        assert_eq!(histogram_quantile(0.1, &b), 0.5);
        // q = 0: rank 0 -> first bucket with count >= 0 is the first: 0.
        assert_eq!(histogram_quantile(0.0, &b), 0.0);
        // q = 1: rank 10 -> bucket (5,10] at its top.
        assert_eq!(histogram_quantile(1.0, &b), 10.0);
    }

    #[test]
    fn inf_bucket_answers_the_highest_finite_bound() {
        // 4 observations, 2 of them above 10.
        let b = h(&[(5.0, 1.0), (10.0, 2.0), (INF, 4.0)]);
        assert_eq!(histogram_quantile(0.99, &b), 10.0);
        assert_eq!(histogram_quantile(0.75, &b), 10.0);
        // rank 2 reaches bucket (5,10] exactly at its top.
        assert_eq!(histogram_quantile(0.5, &b), 10.0);
    }

    #[test]
    fn unsorted_and_duplicate_bounds_are_merged() {
        // Two series (say two status codes) of the same histogram.
        let b = h(&[
            (INF, 4.0),
            (10.0, 4.0),
            (1.0, 0.0),
            (INF, 6.0),
            (1.0, 2.0),
            (10.0, 6.0),
        ]);
        // Merged: le=1: 2, le=10: 10, +Inf: 10. rank 5: 1 + 9*(3/8).
        assert_eq!(histogram_quantile(0.5, &b), 1.0 + 9.0 * 3.0 / 8.0);
    }

    #[test]
    fn edge_cases_follow_prometheus() {
        let b = h(&[(1.0, 1.0), (INF, 2.0)]);
        assert_eq!(histogram_quantile(-0.1, &b), f64::NEG_INFINITY);
        assert_eq!(histogram_quantile(1.1, &b), f64::INFINITY);
        assert!(histogram_quantile(f64::NAN, &b).is_nan());
        // No +Inf bucket.
        assert!(histogram_quantile(0.5, &h(&[(1.0, 1.0), (2.0, 2.0)])).is_nan());
        // Only the +Inf bucket.
        assert!(histogram_quantile(0.5, &h(&[(INF, 3.0)])).is_nan());
        // No observations.
        assert!(histogram_quantile(0.5, &h(&[(1.0, 0.0), (INF, 0.0)])).is_nan());
        assert!(histogram_quantile(0.5, &[]).is_nan());
        // A first bucket with a bound <= 0 answers its bound.
        assert_eq!(
            histogram_quantile(0.25, &h(&[(-1.0, 1.0), (1.0, 2.0), (INF, 2.0)])),
            -1.0
        );
        // Non-monotonic counts are raised to the running maximum:
        // le=1: 4, le=2: 4 (was 3), +Inf: 4. rank 2 -> 0 + 1 * 2/4.
        assert_eq!(
            histogram_quantile(0.5, &h(&[(1.0, 4.0), (2.0, 3.0), (INF, 4.0)])),
            0.5
        );
    }

    #[test]
    fn proxy_buckets() {
        // 100 responses: 90 in (10,20] ms, 10 in (100,200] ms.
        let mut pairs = Vec::new();
        for (le, n) in [
            (5.0, 0.0),
            (10.0, 0.0),
            (20.0, 90.0),
            (50.0, 90.0),
            (100.0, 90.0),
            (200.0, 100.0),
            (INF, 100.0),
        ] {
            pairs.push((le, n));
        }
        let b = h(&pairs);
        // rank 50 -> 10 + 10 * 50/90.
        assert!((histogram_quantile(0.5, &b) - (10.0 + 10.0 * 50.0 / 90.0)).abs() < 1e-9);
        // rank 95 -> 100 + 100 * 5/10 = 150.
        assert_eq!(histogram_quantile(0.95, &b), 150.0);
        // rank 99 -> 100 + 100 * 9/10 = 190.
        assert_eq!(histogram_quantile(0.99, &b), 190.0);
    }
}
