//! The verdicts benchmark's scenarios: which upstreams, which plan, how much
//! traffic, and whether the canary is worse.

use crate::upstream::{Behaviour, Shape};

/// What a scenario measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The canary is not worse than stable: every rollback is a false one.
    AA,
    /// The canary is worse: how often and how fast is it rolled back?
    Regression,
}

/// Which rollout plan the deployments follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// `serin rollout start --steps 10,25,50,100 --wait W`, default judges.
    Default,
    /// The example `canary-config.yaml` as written (24 h waits; runs are capped).
    CanaryConfig,
}

/// One scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name for `--only`.
    pub name: String,
    /// What it is, in a few words.
    pub about: String,
    /// A/A or regression.
    pub kind: Kind,
    /// The plan.
    pub plan: Plan,
    /// Requests per second sent to each deployment.
    pub rps: f64,
    /// Stable and canary served by one and the same process.
    pub same_process: bool,
    /// Stable's upstream.
    pub stable: Behaviour,
    /// Canary's upstream (equal to `stable` when `same_process`).
    pub canary: Behaviour,
    /// A CPU-burning neighbour runs beside it (and nothing else does).
    pub neighbour: bool,
}

impl Scenario {
    /// A name usable in a host name and a queue name (`reg100-latency-x1.5` →
    /// `reg100-latency-x1p5`).
    pub fn slug(&self) -> String {
        self.name.replace('.', "p")
    }
}

/// Figures the scenarios are built from (flags of `serin-bench verdicts`).
#[derive(Debug, Clone, Copy)]
pub struct Knobs {
    /// Median latency of every upstream, ms.
    pub median_ms: f64,
    /// Requests per second per deployment in A/A scenarios.
    pub aa_rps: f64,
}

/// Every scenario, in the order they are listed and reported.
pub fn all(k: Knobs) -> Vec<Scenario> {
    let m = k.median_ms;
    let aa =
        |name: &str, about: String, plan, same, stable: Behaviour, canary: Behaviour| Scenario {
            name: name.into(),
            about,
            kind: Kind::AA,
            plan,
            rps: k.aa_rps,
            same_process: same,
            stable,
            canary,
            neighbour: false,
        };
    let mut v = Vec::new();
    for same in [false, true] {
        for shape in [Shape::LogNormal, Shape::Heavy, Shape::Bimodal] {
            let b = Behaviour::new(shape, m);
            let place = if same { "same" } else { "separate" };
            v.push(aa(
                &format!("aa-{place}-{}", shape.name()),
                format!(
                    "A/A, {place} process{}, {}",
                    if same { "" } else { "es" },
                    b.describe()
                ),
                Plan::Default,
                same,
                b,
                b,
            ));
        }
    }
    let ln = Behaviour::new(Shape::LogNormal, m);
    for pct in [1, 3] {
        let b = ln.errors(f64::from(pct) / 100.0);
        v.push(aa(
            &format!("aa-separate-lognormal-errors{pct}"),
            format!("A/A, separate processes, {}", b.describe()),
            Plan::Default,
            false,
            b,
            b,
        ));
    }
    let irrelevant = ln.slower(1.03, 0.3);
    v.push(aa(
        "aa-separate-lognormal-irrelevant",
        format!(
            "canary differs irrelevantly: stable {}, canary {}",
            ln.describe(),
            irrelevant.describe()
        ),
        Plan::Default,
        false,
        ln,
        irrelevant,
    ));
    v.push(Scenario {
        neighbour: true,
        ..aa(
            "aa-separate-lognormal-neighbour",
            format!(
                "A/A, separate processes, {}, +neighbour burning 70% of a core",
                ln.describe()
            ),
            Plan::Default,
            false,
            ln,
            ln,
        )
    });
    for shape in [Shape::LogNormal, Shape::Heavy] {
        let b = Behaviour::new(shape, m);
        v.push(aa(
            &format!("aa-canary-config-separate-{}", shape.name()),
            format!(
                "A/A, canary-config.yaml plan, separate processes, {}",
                b.describe()
            ),
            Plan::CanaryConfig,
            false,
            b,
            b,
        ));
    }
    let reg = |name: &str, rps: f64, stable: Behaviour, canary: Behaviour| Scenario {
        name: name.into(),
        about: format!(
            "regression at {rps} req/s: stable {}, canary {}",
            stable.describe(),
            canary.describe()
        ),
        kind: Kind::Regression,
        plan: Plan::Default,
        rps,
        same_process: false,
        stable,
        canary,
        neighbour: false,
    };
    let e1 = ln.errors(0.01);
    v.push(reg("reg100-errors-1-10", 100.0, e1, ln.errors(0.10)));
    v.push(reg("reg100-errors-1-5", 100.0, e1, ln.errors(0.05)));
    v.push(reg("reg100-latency-x3", 100.0, ln, ln.slower(3.0, 0.0)));
    v.push(reg("reg100-latency-x1.5", 100.0, ln, ln.slower(1.5, 0.0)));
    v.push(reg("reg40-errors-1-5", 40.0, e1, ln.errors(0.05)));
    v.push(reg("reg40-latency-x2", 40.0, ln, ln.slower(2.0, 0.0)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_slugs_are_host_labels() {
        let all = all(Knobs {
            median_ms: 20.0,
            aa_rps: 30.0,
        });
        let mut names: Vec<_> = all.iter().map(|s| s.slug()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        for n in names {
            assert!(n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        }
        assert!(
            all.iter()
                .filter(|s| s.same_process)
                .all(|s| s.stable == s.canary)
        );
    }
}
