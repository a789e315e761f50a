//! The sequential judge: anytime-valid evidence about error rate and latency.
//!
//! The statistics are in [`crate::stats::sequential`]; this turns a rollout's running
//! tests into a verdict. Each metric's rollback test runs on one path for the
//! whole rollout with its share of the rollout's α ([`super::Budget`]), so
//! crossing its `1/α` is a `fail` whose sentence says what was seen and the
//! margin it was judged against ("canary error rate 4.8% vs 1.0% (margin ×1.25
//! and a 0.1% floor), Bayes factor 210 > 200 after 412 canary requests"). An
//! error-rate failure also needs the canary's rate proven above the floor (the
//! intersection-union test of the module docs of [`crate::stats::sequential`]).
//! Without enough canary requests for the profile's sample size it is
//! `inconclusive`, like the threshold judge; otherwise `pass` — and a *settled*
//! pass when both of the step's promotion tests have crossed their bar (α over
//! the analysis steps; error rate below `error_tolerance` × stable's, p95 below
//! `latency_tolerance` × stable's) and `promote_early` is on, which lets the
//! step end before its window is up.

use serde_json::json;

use super::{Outcome, Verdict};
use crate::rollout::Judges;
use crate::stats::sequential::Evidence;

/// The α of one step's promotion evidence: the rollout's α over its analysis
/// steps (both `within` tests must reject, so the metrics need no split).
pub fn promotion_alpha(judges: &Judges, analysis_steps: usize) -> f64 {
    judges.alpha / analysis_steps.max(1) as f64
}

fn pct(n: u64, of: u64) -> String {
    if of == 0 {
        "n/a".into()
    } else {
        format!("{:.1}%", n as f64 / of as f64 * 100.0)
    }
}

fn num(v: f64) -> String {
    if v >= 1e6 {
        format!("{v:.2e}")
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The verdict on a rollout's evidence, each metric tested at `alpha`.
pub fn judge(
    evidence: Option<&Evidence>,
    judges: &Judges,
    alpha: f64,
    analysis_steps: usize,
    min_samples: u64,
) -> Verdict {
    let bar = 1.0 / alpha;
    let Some(ev) = evidence else {
        return Verdict::new(
            "sequential",
            Outcome::Inconclusive,
            "no lane data read yet",
            json!({"alpha": alpha, "threshold": bar}),
        );
    };
    let e = ev.error_summary();
    let l = ev.latency.summary();
    let [stable_n, canary_n] = e.requests;
    // The floor's bound matters only once the ratio has crossed its bar.
    let (floor_passed, canary_low) = if e.bayes_factor >= bar {
        ev.error_floor_passed()
    } else {
        (false, 0.0)
    };
    let promote_bar = 1.0 / promotion_alpha(judges, analysis_steps);
    let settled = e.within_evidence >= promote_bar && l.within_evidence >= promote_bar;
    let data = json!({
        "alpha": alpha,
        "threshold": bar,
        "promotion_threshold": promote_bar,
        "errors": e,
        "latency": l,
        "settled": settled,
    });
    let rates = format!(
        "canary error rate {} vs {} ({})",
        pct(e.errors[1], canary_n),
        pct(e.errors[0], stable_n),
        ev.margins.describe_errors()
    );
    if e.bayes_factor >= bar && floor_passed {
        return Verdict::new(
            "sequential",
            Outcome::Fail,
            format!(
                "{rates}, Bayes factor {} > {} after {canary_n} canary requests",
                num(e.bayes_factor),
                num(bar)
            ),
            data,
        );
    }
    if l.evidence >= bar {
        let why = l.strongest.as_ref().map_or_else(String::new, |s| {
            format!(
                "{:.1}% of canary requests above {:.1} ms vs {:.1}% of stable's above its p{:.0} ({:.1} ms), ",
                s.canary_above * 100.0,
                s.canary_cut_ms,
                s.stable_above * 100.0,
                s.level * 100.0,
                s.point_ms
            )
        });
        return Verdict::new(
            "sequential",
            Outcome::Fail,
            format!(
                "canary slower ({}): {why}Bayes factor {} > {} after {canary_n} canary requests",
                ev.margins.describe_latency(),
                num(l.evidence),
                num(bar)
            ),
            data,
        );
    }
    if canary_n < min_samples.max(1) || stable_n == 0 {
        return Verdict::new(
            "sequential",
            Outcome::Inconclusive,
            format!("not enough data: {canary_n} canary and {stable_n} stable requests"),
            data,
        );
    }
    let summary = if settled {
        format!(
            "canary within tolerance: error rate below {}× stable's and p95 below {}× (evidence {} and {} ≥ {}) after {canary_n} canary requests",
            e.tolerance,
            l.tolerance,
            num(e.within_evidence),
            num(l.within_evidence),
            num(promote_bar)
        )
    } else if e.bayes_factor >= bar {
        format!(
            "{rates}: the ratio is past its margin but the canary's error rate isn't proven above {}% (at least {canary_low:.2}%); Bayes factor {} (latency) < {} after {canary_n} canary requests",
            e.margin_points,
            num(l.evidence),
            num(bar)
        )
    } else {
        format!(
            "no evidence the canary is worse: {rates}, Bayes factors {} (errors) and {} (latency) < {} after {canary_n} canary requests",
            num(e.bayes_factor),
            num(l.evidence),
            num(bar)
        )
    };
    let mut v = Verdict::new("sequential", Outcome::Pass, summary, data);
    v.settled = settled && judges.promote_early;
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::metrics::LaneWindow;
    use crate::stats::histogram::Histogram;

    /// A lane whose latencies are spread evenly over [us, 1.5 × us].
    fn lane(ok: u64, errors: u64, us: u64) -> LaneWindow {
        let mut latency = Histogram::default();
        let n = ok + errors;
        for k in 0..n {
            latency.record(us + us / 2 * k / n.max(1));
        }
        LaneWindow {
            success: ok,
            errors,
            latency,
            ..Default::default()
        }
    }

    #[test]
    fn fails_with_a_readable_sentence_and_settles_when_within_tolerance() {
        let judges = Judges::default();
        let margins = crate::stats::sequential::Margins::default();
        let mut ev = Evidence::new(1.2, 1.1, margins, 0.005);
        for _ in 0..60 {
            ev.observe(&lane(891, 9, 20_000), &lane(95, 5, 20_000));
        }
        let v = judge(Some(&ev), &judges, 0.005, 1, 20);
        assert_eq!(v.outcome, Outcome::Fail, "{}", v.summary);
        assert!(
            v.summary.starts_with(
                "canary error rate 5.0% vs 1.0% (margin ×1.25 and a 0.1% floor), Bayes factor"
            ),
            "{}",
            v.summary
        );
        assert!(
            v.summary.ends_with("> 200 after 6000 canary requests"),
            "{}",
            v.summary
        );

        let mut ev = Evidence::new(1.2, 1.1, margins, 0.005);
        for _ in 0..600 {
            ev.observe(&lane(891, 9, 20_000), &lane(99, 1, 20_000));
        }
        let v = judge(Some(&ev), &judges, 0.005, 1, 20);
        assert_eq!(v.outcome, Outcome::Pass, "{}", v.summary);
        assert!(v.settled, "{}", v.summary);

        let mut ev = Evidence::new(1.2, 1.1, margins, 0.005);
        ev.observe(&lane(900, 9, 20_000), &lane(5, 0, 20_000));
        let v = judge(Some(&ev), &judges, 0.005, 1, 20);
        assert_eq!(v.outcome, Outcome::Inconclusive);
        assert_eq!(
            judge(None, &judges, 0.005, 1, 20).outcome,
            Outcome::Inconclusive
        );
    }

    #[test]
    fn a_ratio_past_the_margin_needs_a_gap_past_the_floor() {
        // 0.05% vs 0.01% errors: five times stable's rate, but under the
        // 0.1% floor: never a regression.
        let judges = Judges::default();
        let mut ev = Evidence::new(
            1.2,
            1.1,
            crate::stats::sequential::Margins::default(),
            0.005,
        );
        for _ in 0..2000 {
            ev.observe(&lane(9_999, 1, 20_000), &lane(9_995, 5, 20_000));
        }
        assert!(ev.error_summary().bayes_factor > 200.0);
        let v = judge(Some(&ev), &judges, 0.005, 1, 20);
        assert_eq!(v.outcome, Outcome::Pass, "{}", v.summary);
        assert!(
            v.summary.contains("isn't proven above 0.1%"),
            "{}",
            v.summary
        );
    }
}
