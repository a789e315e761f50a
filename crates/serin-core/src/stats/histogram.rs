//! Latency histograms with log-linear buckets.
//!
//! The proxy sees every request, so it cannot keep every latency; it keeps counts
//! in buckets whose width grows with the value, the shape HDR histograms use:
//! values below 64 µs get a bucket each, and above that every power of two is cut
//! into 64 equal buckets. A bucket's width is then at most 1/64 of its lower edge,
//! so any quantile read back is within 1.6% of the true value (we report the
//! bucket's midpoint: within 0.8%), from 1 µs to hours, in about 64 buckets per
//! doubling. Histograms of different seconds, lanes or proxies merge by adding
//! counts, which is what the per-second buckets and the judges need: a window's
//! p95 is computed from the merged counts, never by averaging per-second p95s.
//!
//! The wire form is sparse (`[[index, count], …]`), so a second with a few hundred
//! distinct latencies costs a few hundred pairs, whatever its range.

use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Largest index: that of `u64::MAX` µs.
const MAX_INDEX: usize = (SUB + (63 - SUB_BITS as u64 + 1) * SUB) as usize - 1;

/// The bucket index of a value in microseconds.
pub fn index_of(us: u64) -> usize {
    if us < SUB {
        return us as usize;
    }
    let msb = 63 - us.leading_zeros();
    let e = msb - SUB_BITS;
    let mantissa = us >> e; // in [SUB, 2·SUB)
    (SUB + u64::from(e) * SUB + (mantissa - SUB)) as usize
}

/// The lowest value of bucket `i` and its width, in microseconds.
pub fn bounds_of(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < SUB {
        return (i, 1);
    }
    let e = (i - SUB) / SUB;
    let mantissa = SUB + (i - SUB) % SUB;
    (mantissa << e, 1 << e)
}

/// Counts of latencies by bucket, with their exact count, sum and maximum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Histogram {
    /// Values recorded.
    pub count: u64,
    /// Their sum, µs.
    pub sum_us: u64,
    /// The largest, µs.
    pub max_us: u64,
    /// Non-empty buckets as `[index, count]`, by index.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Vec<u64>>))]
    #[serde(with = "sparse")]
    counts: Vec<u64>,
}

impl Histogram {
    /// Records one latency in microseconds.
    pub fn record(&mut self, us: u64) {
        self.record_n(us, 1);
    }

    /// Records `n` latencies of `us` microseconds.
    pub fn record_n(&mut self, us: u64, n: u64) {
        if n == 0 {
            return;
        }
        let i = index_of(us).min(MAX_INDEX);
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += n;
        self.count += n;
        self.sum_us = self.sum_us.saturating_add(us.saturating_mul(n));
        self.max_us = self.max_us.max(us);
    }

    /// Records a latency in milliseconds (negative and non-finite values are
    /// clamped to 0).
    pub fn record_ms(&mut self, ms: f64) {
        let us = if ms.is_finite() && ms > 0.0 {
            (ms * 1000.0).round().min(u64::MAX as f64) as u64
        } else {
            0
        };
        self.record(us);
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The nearest-rank `q` quantile (0 < q ≤ 1) in milliseconds: the midpoint
    /// of the bucket holding it, never above the recorded maximum.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let (lo, width) = bounds_of(self.quantile_index(q)?);
        let mid = lo as f64 + (width as f64 - 1.0) / 2.0;
        Some(mid.min(self.max_us as f64) / 1000.0)
    }

    /// The mean in milliseconds.
    pub fn mean_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_us as f64 / self.count as f64 / 1000.0)
    }

    /// The largest value in milliseconds.
    pub fn max_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.max_us as f64 / 1000.0)
    }

    /// How many recorded values are at most `us` microseconds, counting a bucket
    /// only when it lies wholly at or below `us` (so never an overcount).
    pub fn count_at_most(&self, us: u64) -> u64 {
        self.counts
            .iter()
            .enumerate()
            .take_while(|(i, _)| {
                let (lo, w) = bounds_of(*i);
                lo + (w - 1) <= us
            })
            .map(|(_, c)| c)
            .sum()
    }

    /// The index of the bucket holding the nearest-rank `q` quantile.
    pub fn quantile_index(&self, q: f64) -> Option<usize> {
        self.quantile_indices([q]).map(|[i]| i)
    }

    /// [`Histogram::quantile_index`] of several levels (ascending) in one pass.
    pub fn quantile_indices<const N: usize>(&self, levels: [f64; N]) -> Option<[usize; N]> {
        if self.count == 0 {
            return None;
        }
        let ranks = levels.map(|q| ((q * self.count as f64).ceil() as u64).clamp(1, self.count));
        let mut out = [self.counts.len().saturating_sub(1); N];
        let (mut k, mut seen) = (0, 0);
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            while k < N && seen >= ranks[k] {
                out[k] = i;
                k += 1;
            }
            if k == N {
                break;
            }
        }
        Some(out)
    }

    /// How many recorded values lie in buckets above bucket `i`.
    pub fn count_above(&self, i: usize) -> u64 {
        self.counts.iter().skip(i + 1).sum()
    }

    /// Non-empty buckets as (index, count).
    pub fn buckets(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (i, *c))
    }
}

mod sparse {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(counts: &[u64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| [i as u64, *c]),
        )
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        let pairs = Vec::<(u64, u64)>::deserialize(d)?;
        let mut counts: Vec<u64> = Vec::new();
        for (i, c) in pairs {
            let i = usize::try_from(i)
                .ok()
                .filter(|i| *i <= super::MAX_INDEX)
                .ok_or_else(|| D::Error::custom(format!("bucket index {i} is out of range")))?;
            if counts.len() <= i {
                counts.resize(i + 1, 0);
            }
            counts[i] = counts[i]
                .checked_add(c)
                .ok_or_else(|| D::Error::custom("bucket counts overflow"))?;
        }
        Ok(counts)
    }
}

impl Histogram {
    /// Checks that a histogram read from outside is consistent (counts add up).
    pub fn check(&self) -> Result<(), String> {
        let total = self
            .counts
            .iter()
            .try_fold(0u64, |a, c| a.checked_add(*c))
            .ok_or("bucket counts overflow")?;
        if total != self.count {
            return Err(format!(
                "bucket counts add up to {total}, not count {}",
                self.count
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn indices_and_bounds_agree() {
        for us in (0..5000).chain([1 << 20, (1 << 20) + 12345, u64::MAX / 3]) {
            let (lo, w) = bounds_of(index_of(us));
            assert!(lo <= us && us < lo + w, "{us} not in [{lo}, {})", lo + w);
            assert!(us < SUB || w * SUB <= lo, "bucket of {us} too wide");
        }
        assert_eq!(index_of(u64::MAX), MAX_INDEX);
        let (lo, w) = bounds_of(MAX_INDEX);
        assert_eq!(lo.checked_add(w - 1), Some(u64::MAX));
    }

    #[test]
    fn quantiles_are_within_one_percent() {
        let mut h = Histogram::default();
        for ms in 1..=1000 {
            h.record_ms(f64::from(ms));
        }
        for (q, exact) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)] {
            let got = h.quantile_ms(q).unwrap();
            assert!((got - exact).abs() / exact < 0.01, "q{q}: {got} vs {exact}");
        }
        assert_eq!(h.max_ms(), Some(1000.0));
        assert!((h.mean_ms().unwrap() - 500.5).abs() < 1e-9);
        assert_eq!(Histogram::default().quantile_ms(0.5), None);
    }

    #[test]
    fn sparse_round_trip_and_merge() {
        let mut a = Histogram::default();
        a.record(3);
        a.record(70_000);
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains("\"counts\":[[3,1],"), "{json}");
        let back: Histogram = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
        back.check().unwrap();
        let mut b = Histogram::default();
        b.record_n(3, 4);
        b.merge(&a);
        assert_eq!((b.count, b.max_us, b.sum_us), (6, 70_000, 70_015));
        assert_eq!(b.count_at_most(3), 5);
        let bad: Histogram =
            serde_json::from_str(r#"{"count": 5, "sum_us": 1, "max_us": 1, "counts": [[1, 1]]}"#)
                .unwrap();
        assert!(bad.check().is_err());
        let wraps: Histogram = serde_json::from_str(&format!(
            r#"{{"count": 0, "sum_us": 0, "max_us": 0, "counts": [[0, {h}], [1, {h}]]}}"#,
            h = 1u64 << 63
        ))
        .unwrap();
        assert!(wraps.check().is_err(), "counts that wrap to 0 are refused");
        assert!(
            serde_json::from_str::<Histogram>(
                r#"{"count": 1, "sum_us": 1, "max_us": 1, "counts": [[99999999, 1]]}"#
            )
            .is_err()
        );
    }

    proptest! {
        #[test]
        fn quantile_indices_match_one_at_a_time(values in proptest::collection::vec(1u64..10_000_000, 1..300)) {
            let mut h = Histogram::default();
            for v in &values {
                h.record(*v);
            }
            let levels = [0.5, 0.75, 0.9, 0.95, 0.99];
            let all = h.quantile_indices(levels).unwrap();
            for (q, i) in levels.iter().zip(all) {
                prop_assert_eq!(Some(i), h.quantile_index(*q));
                let above = h.count_above(i);
                prop_assert_eq!(above, values.iter().filter(|v| index_of(**v) > i).count() as u64);
            }
        }

        #[test]
        fn quantile_error_is_bounded(values in proptest::collection::vec(1u64..10_000_000, 1..500), q in 0.01f64..1.0) {
            let mut h = Histogram::default();
            for v in &values { h.record(*v); }
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            let exact = sorted[rank - 1] as f64;
            let got = h.quantile_ms(q).unwrap() * 1000.0;
            prop_assert!((got - exact).abs() <= exact / 64.0 + 1.0, "{} vs {}", got, exact);
        }
    }
}
