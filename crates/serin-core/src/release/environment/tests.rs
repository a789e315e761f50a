use super::*;
use chrono::TimeZone;

fn release(status: ReleaseStatus) -> Release {
    Release {
        id: 7,
        product_id: 1,
        product_name: "shop".into(),
        version: "1.1.0".into(),
        description: None,
        status,
        created_at: Utc.timestamp_opt(1_757_851_200, 0).unwrap(),
        updated_at: Utc.timestamp_opt(1_757_851_200, 0).unwrap(),
        released_at: None,
        created_by: Some("ada@example.com".into()),
    }
}

fn approval(actor: &str, d: Decision, secs: i64) -> Approval {
    Approval {
        id: format!("a{secs}"),
        release_id: 7,
        environment: "production".into(),
        actor: actor.into(),
        role: Role::Engineer,
        decision: d,
        comment: None,
        created_at: Utc.timestamp_opt(1_757_851_200 + secs, 0).unwrap(),
    }
}

#[test]
fn tallies_count_latest_decisions_of_distinct_people() {
    let policy = default_environments("shop")[2].approvals.clone();
    let a = [
        approval("bob", Decision::Approved, 1),
        approval("bob", Decision::Approved, 2),
    ];
    assert!(!tally(&policy, &a).met, "one person twice is one approval");
    let b = [
        approval("bob", Decision::Approved, 1),
        approval("cy", Decision::Rejected, 2),
        approval("dee", Decision::Approved, 3),
    ];
    let t = tally(&policy, &b);
    assert!(!t.met && t.rejected_by == ["cy"], "a rejection stands");
    let c = [
        approval("cy", Decision::Approved, 4),
        approval("bob", Decision::Approved, 1),
        approval("cy", Decision::Rejected, 2),
    ];
    assert!(tally(&policy, &c).met, "cy changed her mind");
}

#[test]
fn authors_and_viewers_may_not_approve() {
    let policy = default_environments("shop")[2].approvals.clone();
    let r = release(ReleaseStatus::Draft);
    let refused = |actor, role| match may_decide(&policy, &r, actor, role) {
        Err(DomainError::Refused { code, .. }) => code,
        other => panic!("{other:?}"),
    };
    assert_eq!(refused("ADA@example.com", Role::Admin), "SELF_APPROVAL");
    assert_eq!(refused("vic@example.com", Role::Viewer), "APPROVER_ROLE");
    assert!(may_decide(&policy, &r, "bob@example.com", Role::Engineer).is_ok());
}

#[test]
fn plans_follow_the_strategy() {
    let envs = default_environments("shop");
    let r = release(ReleaseStatus::Draft);
    let first = DeployRequest {
        environment: "development".into(),
        endpoints: vec!["http://127.0.0.1:9001".into()],
        ..DeployRequest::default()
    };
    let d = plan(&r, &envs[0], &first, None, false).unwrap();
    assert_eq!(d.queue_name, "shop.development");
    assert_eq!(d.stable_version, NOTHING);
    assert_eq!(d.rollout.unwrap().steps, vec![Step::SetWeight(100)]);
    let canary_first = DeployRequest {
        strategy: Strategy::Canary,
        ..first.clone()
    };
    assert!(plan(&r, &envs[0], &canary_first, None, false).is_err());
    let now = Current {
        version: "1.0.0".into(),
        endpoints: vec!["http://127.0.0.1:9000".into()],
        route: Route::default(),
    };
    let d = plan(&r, &envs[2], &canary_first, Some(&now), true).unwrap();
    let steps = d.rollout.unwrap().steps;
    assert!(matches!(
        steps[0],
        Step::Gate(Gate::ReleaseApproval { required: 2, .. })
    ));
    assert_eq!(steps[1], Step::SetWeight(10));
    assert_eq!(d.upstreams.unwrap().stable, now.endpoints);
    let same = Current {
        version: "1.1.0".into(),
        ..now.clone()
    };
    assert!(plan(&r, &envs[0], &first, Some(&same), false).is_err());
    let cancelled = release(ReleaseStatus::Cancelled);
    assert!(plan(&cancelled, &envs[0], &first, None, false).is_err());
}

#[test]
fn environments_keep_their_order() {
    let envs = default_environments("shop");
    let spec = EnvironmentSpec {
        position: Some(1),
        ..EnvironmentSpec::default()
    };
    let (list, qa) = upsert(envs.clone(), "shop", "qa", &spec, true).unwrap();
    let names: Vec<_> = list.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["development", "qa", "staging", "production"]);
    assert_eq!(qa.position, 1);
    assert!(list.iter().all(|e| e.configured));
    assert!(upsert(list.clone(), "shop", "qa", &spec, true).is_err());
    assert!(upsert(list, "shop", "uat", &spec, false).is_err());
    let bad = EnvironmentSpec {
        approvals: Some(ApprovalPolicy {
            required: 1,
            min_role: Role::Viewer,
            author_may_approve: false,
        }),
        ..EnvironmentSpec::default()
    };
    assert!(upsert(envs, "shop", "production", &bad, false).is_err());
}

#[test]
fn promotion_needs_success_in_the_previous_environment() {
    let envs = default_environments("shop");
    let r = release(ReleaseStatus::Draft);
    assert!(check_previous(&envs[0], None, &r, None).is_ok());
    let err = check_previous(&envs[2], Some(&envs[1]), &r, None).unwrap_err();
    assert!(err.to_string().contains("staging"), "{err}");
}
