use super::checks::check_url;
use super::*;
use chrono::TimeZone;

fn now() -> Timestamp {
    Utc.timestamp_opt(1_757_851_200, 0).unwrap()
}

fn new() -> NewDeployment {
    NewDeployment {
        queue_name: "payment-processing".into(),
        stable_version: "v1.2.0".into(),
        canary_version: "v1.3.0".into(),
        ..Default::default()
    }
}

fn make(n: NewDeployment) -> Deployment {
    n.resolve("canary_x".into(), "ops", now()).unwrap().0
}

#[test]
fn upstreams_are_never_metadata_or_link_local() {
    for bad in [
        "http://169.254.169.254",
        "http://169.254.169.254:80/",
        "http://[fd00:ec2::254]",
        "http://[fe80::1]:8080",
        "http://[::ffff:169.254.169.254]",
        "http://0.0.0.0:9000",
        "http://100.100.100.200",
        "https://169.254.169.254",
        "https://",
        "ftp://api.internal",
    ] {
        assert!(check_url("u", bad).is_err(), "{bad}");
    }
    for good in [
        "http://127.0.0.1:9001",
        "http://10.0.0.4",
        "http://[::1]:80",
        "http://api.internal:8080",
        "https://api.internal:8443",
    ] {
        check_url("u", good).unwrap();
    }
}

#[test]
fn profiles_apply_and_fields_override() {
    let d = make(NewDeployment {
        profile: Some("conservative".into()),
        max_duration: Some("4h".parse().unwrap()),
        min_duration: Some("15m".parse().unwrap()),
        ..new()
    });
    assert_eq!(d.config.max_canary_duration.to_string(), "4h0m0s");
    assert_eq!(d.config.rollback_thresholds.max_error_rate_increase, 2.0);
    assert_eq!(
        d.config.metrics_window.to_string(),
        "5m0s",
        "falls back to default's"
    );
    let d = make(NewDeployment {
        profile: Some("aggressive".into()),
        auto_promotion: Some(false),
        ..new()
    });
    assert!(!d.config.auto_promotion, "explicit field beats profile");
    assert_eq!(d.config.rollback_thresholds.required_sample_size, 5);
    let err = new_with_profile("bold");
    assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "profile"));
}

fn new_with_profile(p: &str) -> DomainError {
    NewDeployment {
        profile: Some(p.into()),
        ..new()
    }
    .resolve("x".into(), "a", now())
    .unwrap_err()
}

#[test]
fn profile_json_matches_the_documented_values() {
    let v = serde_json::to_value(PROFILES).unwrap();
    assert_eq!(v["default"]["max_canary_duration"], "2h0m0s");
    assert_eq!(v["default"]["drain_timeout"], "5m0s");
    assert!(v["conservative"].get("drain_timeout").is_none());
    assert_eq!(v["aggressive"]["min_canary_duration"], "2m0s");
    assert_eq!(
        v["aggressive"]["rollback_thresholds"]["max_latency_increase"],
        200.0
    );
    assert_eq!(v["aggressive"]["sticky_routing"], false);
}

#[test]
fn percentages() {
    assert_eq!(parse_percentage(&json!(50)), Ok(50));
    assert_eq!(parse_percentage(&json!(100.0)), Ok(100));
    for bad in [json!(101), json!(-1), json!(50.5), json!("50"), json!(null)] {
        assert!(
            matches!(
                parse_percentage(&bad),
                Err(DomainError::InvalidPercentage { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn life_cycle() {
    let mut d = make(new());
    assert_eq!(
        (d.status, d.current_percent, d.revision),
        (DeploymentStatus::Active, 0, 1)
    );
    let ev = d.set_percentage(25, now()).unwrap();
    assert_eq!(
        ev[0].data,
        json!({"old_percentage": 0, "new_percentage": 25, "revision": 2})
    );
    assert!(
        d.set_percentage(25, now()).unwrap().is_empty(),
        "no-op, no event"
    );
    assert!(d.deletion().is_err());
    d.pause(Some("looking"), now()).unwrap();
    d.set_percentage(30, now()).unwrap();
    d.resume(now()).unwrap();
    let ev = d.promote(now()).unwrap();
    assert_eq!(
        (d.status, d.current_percent, d.completed_at),
        (DeploymentStatus::Completed, 100, Some(now()))
    );
    assert_eq!(ev[0].kind, EventType::DeploymentPromoted);
    for res in [
        d.clone().set_percentage(5, now()),
        d.clone().promote(now()),
        d.clone().rollback("x", now()),
    ] {
        assert!(matches!(res, Err(DomainError::NotActive { .. })));
    }
    assert!(d.deletion().is_ok());
}

#[test]
fn rollback_records_the_reason() {
    let mut d = make(NewDeployment {
        percentage: Some(json!(10)),
        ..new()
    });
    let ev = d.rollback("High error rate detected", now()).unwrap();
    assert_eq!((d.status, d.current_percent), (DeploymentStatus::Failed, 0));
    assert_eq!(d.status_reason.as_deref(), Some("High error rate detected"));
    assert_eq!(
        ev[0].message,
        "Deployment rolled back: High error rate detected"
    );
}

#[test]
fn bad_requests_name_the_field() {
    let field = |n: NewDeployment| match n.resolve("x".into(), "a", now()).unwrap_err() {
        DomainError::Invalid { field, .. } => field,
        other => panic!("{other}"),
    };
    assert_eq!(
        field(NewDeployment {
            queue_name: String::new(),
            ..new()
        }),
        "queue_name"
    );
    assert_eq!(
        field(NewDeployment {
            canary_version: "v1.2.0".into(),
            ..new()
        }),
        "canary_version"
    );
    assert_eq!(
        field(NewDeployment {
            min_duration: Some("3h".parse().unwrap()),
            ..new()
        }),
        "min_duration"
    );
    assert_eq!(
        field(NewDeployment {
            upstreams: Some(Upstreams {
                stable: vec!["ftp://x".into()],
                canary: vec![]
            }),
            ..new()
        }),
        "upstreams.stable[0]"
    );
    assert_eq!(
        field(NewDeployment {
            route: Some(Route {
                host: None,
                path_prefix: Some("api".into())
            }),
            ..new()
        }),
        "route.path_prefix"
    );
}

#[test]
fn a_release_plan_holds_traffic_until_its_pre_deploy_hook_ran_and_a_request_cannot() {
    use crate::rollout::hooks::{Hook, HookKind};
    use crate::rollout::{RolloutSpec, Step};
    let spec = || {
        let mut s = RolloutSpec::of_steps(vec![Step::SetWeight(10), Step::SetWeight(100)]);
        s.hooks.push(Hook {
            name: "migrate".into(),
            kind: HookKind::PreRollout,
            webhook: Some("http://127.0.0.1:9/hook".into()),
            command: None,
            timeout_seconds: 5,
            retry_count: 0,
        });
        s
    };
    // Planned by the release manager: held until the hook has run.
    let mut held = make(NewDeployment {
        rollout: Some(spec()),
        hold_for_pre_rollout: true,
        ..new()
    });
    assert_eq!(
        held.held().as_deref(),
        Some("waits for its pre-deploy hook")
    );
    match held.set_percentage(50, now()) {
        Err(DomainError::Refused { code, .. }) => assert_eq!(code, "DEPLOYMENT_HELD"),
        other => panic!("{other:?}"),
    }
    held.rollout.as_mut().unwrap().pre_rollout_done = true;
    assert_eq!(held.held(), None);
    assert!(held.set_percentage(50, now()).is_ok());
    // The flag is never read from a request, and an ordinary plan with the
    // same hook is not held (its hook runs when the controller starts it).
    let body = serde_json::json!({
        "queue_name": "q", "stable_version": "a", "canary_version": "b",
        "hold_for_pre_rollout": true,
    });
    assert!(serde_json::from_value::<NewDeployment>(body).is_err());
    let free = make(NewDeployment {
        rollout: Some(spec()),
        ..new()
    });
    assert_eq!(free.held(), None);
    // It survives the store: the progress is part of the stored body.
    let back: Deployment = serde_json::from_value(serde_json::to_value(&held).unwrap()).unwrap();
    assert!(back.rollout.unwrap().hold_for_pre_rollout);
}
