//! Custom policies: a team's own rule as a CEL expression.
//!
//! Operators want to write a decision function ("be stricter during
//! business hours"). Running people's code inside the controller is unsafe and
//! unportable, so Serin takes the same rule as an expression in CEL (the Common
//! Expression Language: side-effect free, always terminates, the language
//! Kubernetes uses for admission policies). It reads:
//!
//! - `canary`, `stable`: the lane figures of the window — `requests`, `errors`,
//!   `error_rate` and `success_rate` (percent), `avg_latency_ms`,
//!   `p50_latency_ms`, `p95_latency_ms`, `p99_latency_ms`, `max_latency_ms`,
//!   `requests_per_second`; a figure without data is `null`;
//! - `gauges`: the canary's named gauges;
//! - `traffic`: `percent` and `target_percent`;
//! - `step`: `index` and `elapsed` (a duration);
//! - `elapsed`: time since the deployment started; `now`: the clock, as a
//!   timestamp in the policy's `utc_offset` (default `+00:00`), so
//!   `now.getHours()` is the local hour.
//!
//! It answers `true` (pass) or `false` (fail), or one of the decisions as
//! a string: `"continue"` and `"promote"` pass, `"pause"` holds (inconclusive),
//! `"rollback"` fails. An expression that errors — typically by comparing a
//! `null` figure — is inconclusive, never a failure: a policy without data can't
//! blame the canary.

#[cfg(feature = "policies")]
use cel::{Context, Program, Value as Cel};
use chrono::FixedOffset;
use serde::{Deserialize, Serialize};
#[cfg(feature = "policies")]
use serde_json::Value;
use serde_json::json;

use super::{Inputs, Outcome, Verdict};
use crate::DomainError;
#[cfg(feature = "policies")]
use crate::canary::metrics::MetricsSnapshot;

/// Longest expression accepted.
pub const MAX_EXPRESSION: usize = 4096;

/// A custom policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Unique within the rollout.
    pub name: String,
    /// The CEL expression.
    pub expression: String,
    /// The offset `now` is given in, e.g. `+01:00` (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_offset: Option<String>,
}

impl Policy {
    /// Checks that the expression compiles and the offset reads.
    pub fn validate(&self) -> Result<(), DomainError> {
        crate::rollout::check_item_name(&self.name)?;
        if self.expression.len() > MAX_EXPRESSION {
            return Err(DomainError::invalid(
                "expression",
                format!("at most {MAX_EXPRESSION} characters"),
            ));
        }
        // Without the CEL evaluator (a client's build), the server checks it.
        #[cfg(feature = "policies")]
        compile(&self.expression).map_err(|e| DomainError::invalid("expression", e))?;
        self.offset()?;
        Ok(())
    }

    fn offset(&self) -> Result<FixedOffset, DomainError> {
        match &self.utc_offset {
            None => Ok(FixedOffset::east_opt(0).expect("zero offset")),
            Some(s) => s.parse::<FixedOffset>().map_err(|_| {
                DomainError::invalid("utc_offset", format!("`{s}` is not an offset like +01:00"))
            }),
        }
    }
}

#[cfg(feature = "policies")]
thread_local! {
    /// Set while a CEL call runs under [`quietly`].
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(feature = "policies")]
/// Runs `f` and catches a panic, without the panic hook printing it: a panic
/// inside the CEL library is reported as an error in its place, never as a
/// backtrace on stderr (nor as a line that isn't JSON in the server's JSON
/// logs). The hook is wrapped once; other threads' panics print as before.
fn quietly<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> std::thread::Result<T> {
    static WRAPPED: std::sync::Once = std::sync::Once::new();
    WRAPPED.call_once(|| {
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                before(info);
            }
        }));
    });
    let before = QUIET.with(|q| q.replace(true));
    let r = std::panic::catch_unwind(f);
    QUIET.with(|q| q.set(before));
    r
}

#[cfg(feature = "policies")]
fn compile(expression: &str) -> Result<Program, String> {
    // The parser reports errors; it must never bring the controller down, so a
    // panic inside it is caught and reported as a compile error too.
    let src = expression.to_string();
    match quietly(move || Program::compile(&src)) {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(format!("not a valid CEL expression: {e}")),
        Err(_) => Err("not a valid CEL expression".into()),
    }
}

#[cfg(feature = "policies")]
fn lane(s: &MetricsSnapshot) -> Value {
    json!({
        "requests": s.job_count,
        "errors": s.error_count,
        "error_rate": s.error_rate,
        "success_rate": s.success_rate,
        "avg_latency_ms": s.avg_latency,
        "p50_latency_ms": s.p50_latency,
        "p95_latency_ms": s.p95_latency,
        "p99_latency_ms": s.p99_latency,
        "max_latency_ms": s.max_latency,
        "requests_per_second": (s.job_count > 0).then_some(s.jobs_per_second),
    })
}

#[cfg(feature = "policies")]
fn evaluate(p: &Policy, inputs: &Inputs<'_>) -> Result<Cel, String> {
    let program = compile(&p.expression)?;
    let offset = p.offset().map_err(|e| e.to_string())?;
    let d = inputs.deployment;
    let mut ctx = Context::default();
    let vars = [
        ("canary", lane(inputs.canary)),
        ("stable", lane(inputs.stable)),
        ("gauges", json!(inputs.canary_gauges)),
        (
            "traffic",
            json!({"percent": d.current_percent, "target_percent": d.target_percent}),
        ),
    ];
    for (name, v) in vars {
        let v = cel::to_value(&v).map_err(|e| e.to_string())?;
        ctx.add_variable_from_value(name, v);
    }
    let step = [
        ("index".to_string(), Cel::Int(inputs.step_index as i64)),
        (
            "elapsed".to_string(),
            Cel::Duration(inputs.now - inputs.step_started_at),
        ),
    ];
    ctx.add_variable_from_value(
        "step",
        Cel::from(std::collections::HashMap::<String, Cel>::from(step)),
    );
    ctx.add_variable_from_value("elapsed", Cel::Duration(inputs.now - d.start_time));
    ctx.add_variable_from_value("now", Cel::Timestamp(inputs.now.with_timezone(&offset)));
    // Some expressions that compile reach unfinished parts of the interpreter,
    // which panic; a policy must never bring the controller down, so a panic is
    // an evaluation error (inconclusive) like any other.
    match quietly(std::panic::AssertUnwindSafe(|| program.execute(&ctx))) {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("the expression is not supported by the evaluator".into()),
    }
}

/// Judges one policy: inconclusive in a build without the CEL evaluator.
#[cfg(not(feature = "policies"))]
pub fn judge(p: &Policy, _inputs: &Inputs<'_>) -> Verdict {
    Verdict::new(
        format!("policy:{}", p.name),
        Outcome::Inconclusive,
        "this build has no CEL evaluator",
        json!({"expression": p.expression}),
    )
}

#[cfg(feature = "policies")]
/// Judges one policy.
pub fn judge(p: &Policy, inputs: &Inputs<'_>) -> Verdict {
    let name = format!("policy:{}", p.name);
    let evidence = |result: Value| json!({"expression": p.expression, "result": result});
    match evaluate(p, inputs) {
        Ok(Cel::Bool(true)) => {
            Verdict::new(name, Outcome::Pass, "policy holds", evidence(json!(true)))
        }
        Ok(Cel::Bool(false)) => Verdict::new(
            name,
            Outcome::Fail,
            "policy is false",
            evidence(json!(false)),
        ),
        Ok(Cel::String(s)) => {
            let s: &str = s.as_str();
            let outcome = match s {
                "continue" | "promote" => Some(Outcome::Pass),
                "pause" => Some(Outcome::Inconclusive),
                "rollback" => Some(Outcome::Fail),
                _ => None,
            };
            match outcome {
                Some(o) => Verdict::new(name, o, format!("policy says {s}"), evidence(json!(s))),
                None => Verdict::new(
                    name,
                    Outcome::Inconclusive,
                    format!("policy answered `{s}`; expected continue, promote, pause or rollback"),
                    evidence(json!(s)),
                ),
            }
        }
        Ok(other) => Verdict::new(
            name,
            Outcome::Inconclusive,
            format!(
                "policy answered a {}, not a bool or a decision",
                other.type_of()
            ),
            evidence(Value::Null),
        ),
        Err(e) => Verdict::new(
            name,
            Outcome::Inconclusive,
            format!("policy could not be evaluated: {e}"),
            evidence(json!({"error": e})),
        ),
    }
}

#[cfg(all(test, feature = "policies"))]
mod quiet_tests {
    #[test]
    fn a_caught_panic_is_an_error_and_prints_nothing() {
        let r = super::quietly(|| -> u8 { panic!("inside the CEL library") });
        assert!(r.is_err());
        // The flag is down again: other panics print as before.
        assert!(!super::QUIET.with(std::cell::Cell::get));
    }
}

#[cfg(all(test, feature = "policies"))]
mod tests {
    use super::*;
    use crate::canary::metrics::{LaneWindow, LaneWorkers, snapshot};
    use crate::canary::{Deployment, NewDeployment};
    use chrono::{TimeZone, Utc};
    use std::collections::BTreeMap;

    /// A custom business-hours decision policy, in CEL.
    const BUSINESS_HOURS: &str = "now.getHours() >= 9 && now.getHours() <= 17 && canary.error_rate > 0.5 ? 'rollback' \
        : (canary.success_rate < 95.0 || canary.error_rate > 1.0) ? 'rollback' \
        : traffic.percent >= 100 ? 'promote' : 'continue'";

    fn dep() -> Deployment {
        NewDeployment {
            queue_name: "q".into(),
            stable_version: "v1".into(),
            canary_version: "v2".into(),
            percentage: Some(json!(20)),
            ..Default::default()
        }
        .resolve("canary_t".into(), "ops", Utc.timestamp_opt(0, 0).unwrap())
        .unwrap()
        .0
    }

    fn run(p: &Policy, errors: u64, of: u64, hour_utc: u32) -> Verdict {
        let d = dep();
        let now = Utc.with_ymd_and_hms(2026, 11, 23, hour_utc, 30, 0).unwrap();
        let w = (now, now);
        let lane = |e: u64, n: u64| {
            let l = LaneWindow {
                success: n - e,
                errors: e,
                ..Default::default()
            };
            snapshot(&l, &LaneWorkers::default(), "v", w, now)
        };
        let (stable, canary) = (lane(0, 1000), lane(errors, of));
        let gauges = BTreeMap::new();
        let empty = LaneWindow::default();
        let inputs = Inputs {
            deployment: &d,
            stable: &stable,
            canary: &canary,
            lanes: [&empty, &empty],
            window_over: false,
            canary_gauges: &gauges,
            health: &[],
            step_index: 1,
            step_started_at: now,
            sequential: None,
            now,
        };
        judge(p, &inputs)
    }

    #[test]
    fn a_business_hours_policy_is_stricter_by_day() {
        let p = Policy {
            name: "business-hours".into(),
            expression: BUSINESS_HOURS.into(),
            utc_offset: None,
        };
        p.validate().unwrap();
        // 0.8% errors: rolled back at 10:30, fine at 20:30.
        assert_eq!(run(&p, 8, 1000, 10).outcome, Outcome::Fail);
        assert_eq!(run(&p, 8, 1000, 20).outcome, Outcome::Pass);
        // 2% errors fail at any hour.
        assert_eq!(run(&p, 20, 1000, 20).outcome, Outcome::Fail);
        // The hour is read in the policy's offset: 20:30 UTC is 09:30 at +13:00.
        let local = Policy {
            utc_offset: Some("+13:00".into()),
            ..p.clone()
        };
        assert_eq!(run(&local, 8, 1000, 20).outcome, Outcome::Fail);
    }

    #[test]
    fn a_null_figure_is_inconclusive_not_a_failure() {
        let p = Policy {
            name: "p".into(),
            expression: "canary.error_rate < 1.0".into(),
            utc_offset: None,
        };
        let v = run(&p, 0, 0, 12);
        assert_eq!(v.outcome, Outcome::Inconclusive, "{v:?}");
        assert!(v.summary.contains("could not be evaluated"));
    }

    #[test]
    fn answers_and_bad_expressions() {
        let p = |e: &str| Policy {
            name: "p".into(),
            expression: e.into(),
            utc_offset: None,
        };
        assert_eq!(run(&p("true"), 0, 10, 1).outcome, Outcome::Pass);
        assert_eq!(
            run(&p("stable.requests > canary.requests"), 0, 10, 1).outcome,
            Outcome::Pass
        );
        assert_eq!(run(&p("'pause'"), 0, 10, 1).outcome, Outcome::Inconclusive);
        assert_eq!(run(&p("'maybe'"), 0, 10, 1).outcome, Outcome::Inconclusive);
        assert_eq!(run(&p("42"), 0, 10, 1).outcome, Outcome::Inconclusive);
        assert_eq!(
            run(
                &p("step.elapsed < duration('1m') && elapsed > duration('1s')"),
                0,
                10,
                1
            )
            .outcome,
            Outcome::Pass
        );
        // Expressions the evaluator can't run (it panics inside) are inconclusive.
        for e in [
            "canary.requests.all(x, x > 0)",
            "canary.error_rate.exists(x, true)",
        ] {
            assert_eq!(run(&p(e), 0, 10, 1).outcome, Outcome::Inconclusive, "{e}");
        }
        let e = p("canary.error_rate >").validate().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("expression: not a valid CEL expression"),
            "{e}"
        );
        let e = Policy {
            utc_offset: Some("CET".into()),
            ..p("true")
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().starts_with("utc_offset:"));
    }
}
