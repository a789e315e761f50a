//! The plans a run uses: the default plan and the canary-config.yaml file, with
//! their maximum durations fitted to the run.

#[allow(unused_imports)]
use super::*;

/// A plan, as sent to `POST /api/v1/canary/deployments`.
#[derive(Debug, Clone)]
pub(super) struct PlanSpec {
    pub(super) rollout: Value,
    pub(super) auto_promotion: bool,
    pub(super) max_duration: Option<GoDuration>,
    /// How long a run lasts when nothing ends it early.
    pub(super) length: Duration,
    /// A run still live this long after it started is ended and counted as
    /// "still running" (not rolled back).
    pub(super) cap: Duration,
    pub(super) about: String,
}

/// What `serin rollout start` and `serin apply` do when no `--max-duration` is
/// given: a plan whose timed steps outlast the default profile's
/// `max_canary_duration` gets a maximum of its length plus one hour.
pub(super) fn fitted_max_duration(spec: &RolloutSpec) -> Option<GoDuration> {
    let p = &PROFILES.default;
    let window = p.metrics_window.unwrap_or(GoDuration::from_mins(5));
    let timed = spec.timed_length(window);
    (timed > p.max_canary_duration).then(|| {
        GoDuration::from_nanos(
            timed
                .as_nanos()
                .saturating_add(GoDuration::from_hours(1).as_nanos()),
        )
    })
}

/// `serin rollout start --steps 10,25,50,100 --wait W` with auto-promotion on.
pub(super) fn default_plan(window: GoDuration) -> anyhow::Result<PlanSpec> {
    let spec = RolloutSpec::from_traffic_steps(&[10, 25, 50, 100], window);
    let timed = spec.timed_length(GoDuration::from_mins(5)).to_std();
    Ok(PlanSpec {
        rollout: serde_json::to_value(&spec)?,
        auto_promotion: true,
        max_duration: fitted_max_duration(&spec),
        length: timed,
        // The plan's own length plus a minute for the controller's ticks.
        cap: timed + Duration::from_secs(60),
        about: format!("steps 10,25,50,100, analysis {window} each, default judges"),
    })
}

/// The example `canary-config.yaml` through the same code as `serin apply -f` (YAML read into
/// JSON's data model, then `CanaryConfigSection::spec`).
pub(super) fn canary_config_plan(cap: Duration) -> anyhow::Result<PlanSpec> {
    let value: Value = serde_norway::from_str(serin_core::rollout::CANARY_CONFIG_EXAMPLE)?;
    let file: CanaryConfigFile = serde_json::from_value(value)?;
    let spec = file
        .canary
        .spec()
        .map_err(|e| anyhow::anyhow!("the canary-config.yaml example: {e}"))?;
    let auto = file
        .canary
        .auto_progression
        .as_ref()
        .is_some_and(|a| a.enabled);
    Ok(PlanSpec {
        rollout: serde_json::to_value(&spec)?,
        auto_promotion: auto,
        max_duration: fitted_max_duration(&spec),
        length: cap,
        cap,
        about: format!(
            "the example canary-config.yaml (steps 5,25,50,100, 24h waits, thresholds and safety checks), capped at {}s",
            cap.as_secs()
        ),
    })
}
