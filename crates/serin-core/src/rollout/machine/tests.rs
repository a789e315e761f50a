use super::*;
use crate::canary::NewDeployment;
use crate::judge::{Verdict, combine};
use crate::rollout::RolloutSpec;
use chrono::{Duration, TimeZone, Utc};

fn t0() -> Timestamp {
    Utc.timestamp_opt(1_757_851_200, 0).unwrap()
}

fn dep(steps: &str, auto: bool) -> Deployment {
    let spec: RolloutSpec = serde_json::from_str(&format!(r#"{{"steps": {steps}}}"#)).unwrap();
    NewDeployment {
        queue_name: "q".into(),
        stable_version: "v1".into(),
        canary_version: "v2".into(),
        auto_promotion: Some(auto),
        min_duration: Some(GoDuration::ZERO),
        rollout: Some(spec),
        ..Default::default()
    }
    .resolve("canary_t".into(), "ops", t0())
    .unwrap()
    .0
}

fn judged(outcome: Outcome) -> Observed {
    Observed {
        judgement: Some(combine(
            vec![Verdict::new("threshold", outcome, "figures", json!({}))],
            t0(),
        )),
        ..Default::default()
    }
}

fn kinds(ev: &[NewEvent]) -> Vec<&'static str> {
    ev.iter().map(|e| e.kind.as_str()).collect()
}

#[test]
fn weights_pauses_and_analyses_in_order_then_promotion() {
    let mut d = dep(
        r#"[{"set_weight": 10}, {"pause": {"duration": "30s"}}, {"analysis": {"window": "1m"}}, {"set_weight": 100}]"#,
        true,
    );
    let none = Observed::default();
    let ev = advance(&mut d, &none, &[], t0()).unwrap();
    assert_eq!(kinds(&ev), ["percentage_updated", "rollout_step_started"]);
    assert_eq!(
        (d.current_percent, d.rollout.as_ref().unwrap().step),
        (10, 1)
    );
    // The pause holds until its time is up; nothing is written meanwhile.
    assert!(
        advance(&mut d, &none, &[], t0() + Duration::seconds(29))
            .unwrap()
            .is_empty()
    );
    let t = t0() + Duration::seconds(30);
    let ev = advance(&mut d, &none, &[], t).unwrap();
    assert_eq!(kinds(&ev), ["rollout_step_started"]);
    assert_eq!(
        need(&d, t + Duration::seconds(5)),
        Need::Judgement { since: t }
    );
    // A pass before the window is over waits; at its end it moves on and promotes.
    assert!(
        advance(
            &mut d,
            &judged(Outcome::Pass),
            &[],
            t + Duration::seconds(10)
        )
        .unwrap()
        .is_empty()
    );
    let ev = advance(
        &mut d,
        &judged(Outcome::Pass),
        &[],
        t + Duration::seconds(60),
    )
    .unwrap();
    assert_eq!(
        kinds(&ev),
        [
            "analysis_completed",
            "rollout_step_started",
            "percentage_updated",
            "rollout_step_started",
            "auto_promotion_triggered",
            "deployment_promoted"
        ]
    );
    assert_eq!(
        (d.status, d.current_percent),
        (DeploymentStatus::Completed, 100)
    );
}

#[test]
fn a_settled_pass_ends_the_analysis_before_its_window() {
    let mut d = dep(
        r#"[{"set_weight": 20}, {"analysis": {"window": "10m"}}, {"set_weight": 50},
            {"analysis": {"window": "10m"}}]"#,
        true,
    );
    advance(&mut d, &Observed::default(), &[], t0()).unwrap();
    let t = t0() + Duration::seconds(30);
    // A plain pass waits for the window; a settled one (the sequential judge's
    // promotion evidence) moves on at once.
    assert!(
        advance(&mut d, &judged(Outcome::Pass), &[], t)
            .unwrap()
            .is_empty()
    );
    let mut settled = judged(Outcome::Pass);
    let j = settled.judgement.as_mut().unwrap();
    j.verdicts[0].settled = true;
    *j = combine(j.verdicts.clone(), t0());
    assert!(j.settled);
    let ev = advance(&mut d, &settled, &[], t).unwrap();
    assert_eq!(kinds(&ev)[0], "analysis_completed");
    assert_eq!(d.current_percent, 50);
    // A warning doesn't stop it settling; an inconclusive judge does.
    let mixed = combine(
        vec![
            Verdict {
                settled: true,
                ..Verdict::new("sequential", Outcome::Pass, "within", json!({}))
            },
            Verdict::new("threshold", Outcome::Inconclusive, "few", json!({})),
        ],
        t0(),
    );
    assert!(!mixed.settled);
}

#[test]
fn a_failing_analysis_rolls_back_at_once_with_its_evidence() {
    let mut d = dep(
        r#"[{"set_weight": 20}, {"analysis": {"window": "10m"}}, {"set_weight": 100}]"#,
        true,
    );
    advance(&mut d, &Observed::default(), &[], t0()).unwrap();
    let ev = advance(
        &mut d,
        &judged(Outcome::Fail),
        &[],
        t0() + Duration::seconds(3),
    )
    .unwrap();
    assert_eq!(kinds(&ev), ["deployment_rolled_back"]);
    assert_eq!((d.status, d.current_percent), (DeploymentStatus::Failed, 0));
    assert_eq!(ev[0].data["judgement"]["outcome"], "fail");
    assert_eq!(ev[0].data["automatic"], true);
    assert_eq!(d.status_reason.as_deref(), Some("threshold: figures"));
}

#[test]
fn inconclusive_pauses_never_promotes_nor_rolls_back() {
    let mut d = dep(
        r#"[{"set_weight": 20}, {"analysis": {"window": "1m"}}, {"set_weight": 100}]"#,
        true,
    );
    advance(&mut d, &Observed::default(), &[], t0()).unwrap();
    let mid = advance(
        &mut d,
        &judged(Outcome::Inconclusive),
        &[],
        t0() + Duration::seconds(30),
    )
    .unwrap();
    assert!(mid.is_empty());
    let ev = advance(
        &mut d,
        &judged(Outcome::Inconclusive),
        &[],
        t0() + Duration::seconds(60),
    )
    .unwrap();
    assert_eq!(kinds(&ev), ["deployment_paused"]);
    assert_eq!(
        (d.status, d.current_percent),
        (DeploymentStatus::Paused, 20)
    );
    assert!(d.status_reason.as_deref().unwrap().contains("inconclusive"));
    // Paused: the controller does nothing, whatever the judges say.
    assert!(
        advance(
            &mut d,
            &judged(Outcome::Fail),
            &[],
            t0() + Duration::seconds(90)
        )
        .unwrap()
        .is_empty()
    );
    // Resuming restarts the analysis window.
    d.resume(t0() + Duration::seconds(100)).unwrap();
    assert_eq!(
        need(&d, t0() + Duration::seconds(110)),
        Need::Judgement {
            since: t0() + Duration::seconds(100)
        }
    );
}

#[test]
fn without_auto_promotion_the_end_waits_for_a_person() {
    let mut d = dep(r#"[{"set_weight": 50}]"#, false);
    advance(&mut d, &Observed::default(), &[], t0()).unwrap();
    assert_eq!(d.rollout.as_ref().unwrap().step, 1);
    assert!(
        advance(&mut d, &Observed::default(), &[], t0() + Duration::hours(1))
            .unwrap()
            .is_empty()
    );
    assert_eq!(d.status, DeploymentStatus::Active);
}

#[test]
fn min_and_max_duration() {
    let mut d = dep(r#"[{"set_weight": 50}, {"pause": {}}]"#, true);
    d.config.min_canary_duration = GoDuration::from_mins(10);
    advance(&mut d, &Observed::default(), &[], t0()).unwrap();
    continue_step(&mut d, "ann", t0() + Duration::minutes(1)).unwrap();
    assert!(
        advance(
            &mut d,
            &Observed::default(),
            &[],
            t0() + Duration::minutes(2)
        )
        .unwrap()
        .is_empty()
    );
    let ev = advance(
        &mut d,
        &Observed::default(),
        &[],
        t0() + Duration::minutes(10),
    )
    .unwrap();
    assert_eq!(
        kinds(&ev),
        ["auto_promotion_triggered", "deployment_promoted"]
    );

    let mut d = dep(r#"[{"set_weight": 50}, {"pause": {}}]"#, true);
    advance(&mut d, &Observed::default(), &[], t0()).unwrap();
    let ev = advance(&mut d, &Observed::default(), &[], t0() + Duration::hours(2)).unwrap();
    assert_eq!(kinds(&ev), ["deployment_rolled_back"]);
    assert!(
        d.status_reason
            .as_deref()
            .unwrap()
            .contains("max_canary_duration 2h0m0s")
    );

    let mut d = dep(r#"[{"set_weight": 50}, {"pause": {}}]"#, true);
    d.rollout.as_mut().unwrap().spec.on_max_duration = MaxDurationAction::Pause;
    advance(&mut d, &Observed::default(), &[], t0() + Duration::hours(3)).unwrap();
    assert_eq!(d.status, DeploymentStatus::Paused);
}

#[test]
fn continue_passes_manual_pauses_and_approvals_only_when_there_is_a_step() {
    let mut d = dep(
        r#"[{"pause": {}}, {"gate": "approval"}, {"set_weight": 30}]"#,
        false,
    );
    assert!(
        advance(&mut d, &Observed::default(), &[], t0())
            .unwrap()
            .is_empty()
    );
    let ev = continue_step(&mut d, "ann", t0()).unwrap();
    assert!(ev[0].message.contains("continued by ann"));
    assert!(
        advance(&mut d, &Observed::default(), &[], t0())
            .unwrap()
            .is_empty()
    );
    let ev = continue_step(&mut d, "bob", t0()).unwrap();
    assert!(ev[0].message.contains("approved by bob"));
    advance(&mut d, &Observed::default(), &[], t0()).unwrap();
    assert_eq!(d.current_percent, 30);
    assert!(continue_step(&mut d, "ann", t0()).is_err());
}

#[test]
fn webhook_gates_wait_recording_each_new_refusal_once() {
    let mut d = dep(
        r#"[{"gate": {"webhook": {"url": "http://ci/ok"}}}, {"set_weight": 5}]"#,
        false,
    );
    assert_eq!(
        need(&d, t0()),
        Need::Gate {
            url: "http://ci/ok".into()
        }
    );
    let no = Observed {
        gate: Some((false, "503: tests running".into())),
        ..Default::default()
    };
    assert_eq!(
        kinds(&advance(&mut d, &no, &[], t0()).unwrap()),
        ["gate_waiting"]
    );
    assert!(advance(&mut d, &no, &[], t0()).unwrap().is_empty());
    let yes = Observed {
        gate: Some((true, "200".into())),
        ..Default::default()
    };
    advance(&mut d, &yes, &[], t0()).unwrap();
    assert_eq!(d.current_percent, 5);
}

#[test]
fn failing_health_rolls_back_at_any_step() {
    let mut d = dep(r#"[{"set_weight": 10}, {"pause": {}}]"#, false);
    advance(&mut d, &Observed::default(), &[], t0()).unwrap();
    let sick = Observed {
        health: Some(combine(
            vec![Verdict::new(
                "health:api",
                Outcome::Fail,
                "canary check fails",
                json!({}),
            )],
            t0(),
        )),
        ..Default::default()
    };
    advance(&mut d, &sick, &[], t0()).unwrap();
    assert_eq!(d.status, DeploymentStatus::Failed);
    assert_eq!(
        d.status_reason.as_deref(),
        Some("health:api: canary check fails")
    );
}

#[test]
fn groups_move_in_lock_step_and_fall_together() {
    let steps = r#"[{"set_weight": 10}, {"pause": {"duration": "10s"}}, {"set_weight": 50}]"#;
    let mut a = dep(steps, false);
    let mut b = dep(steps, false);
    b.id = "canary_b".into();
    for d in [&mut a, &mut b] {
        d.rollout.as_mut().unwrap().group = Some("group_1".into());
    }
    let view = |d: &Deployment| Sibling {
        id: d.id.clone(),
        status: d.status,
        step: d.rollout.as_ref().unwrap().step,
        ready: d.rollout.as_ref().unwrap().ready,
    };
    let none = Observed::default();
    // a finishes step 0 first: it is ready, but waits for b.
    let ev = advance(&mut a, &none, &[view(&b)], t0()).unwrap();
    assert_eq!(kinds(&ev), ["percentage_updated"]);
    assert!(a.rollout.as_ref().unwrap().ready);
    // b finishes step 0 and, a being ready, moves on; then a follows.
    advance(&mut b, &none, &[view(&a)], t0()).unwrap();
    assert_eq!(b.rollout.as_ref().unwrap().step, 1);
    advance(&mut a, &none, &[view(&b)], t0()).unwrap();
    assert_eq!(a.rollout.as_ref().unwrap().step, 1);
    // b is rolled back by hand: a follows it down.
    b.rollback("bad", t0()).unwrap();
    let ev = advance(&mut a, &none, &[view(&b)], t0() + Duration::seconds(1)).unwrap();
    assert_eq!(kinds(&ev), ["deployment_rolled_back"]);
    assert!(a.status_reason.as_deref().unwrap().contains("canary_b"));
}

fn with_hooks(d: &mut Deployment, hooks: &str) {
    d.rollout.as_mut().unwrap().spec.hooks = serde_json::from_str(hooks).unwrap();
    d.rollout.as_ref().unwrap().spec.validate().unwrap();
}

fn ran(kind: HookKind, ok: bool) -> Observed {
    Observed {
        hooks: Some((
            kind,
            vec![HookRun {
                name: "h".into(),
                kind,
                ok,
                attempts: 1,
                output: "said".into(),
            }],
        )),
        ..Default::default()
    }
}

#[test]
fn pre_rollout_hooks_run_first_and_their_failure_rolls_back() {
    let mut d = dep(r#"[{"set_weight": 10}]"#, false);
    with_hooks(
        &mut d,
        r#"[{"name": "migrate", "kind": "pre_rollout", "command": ["true"]}]"#,
    );
    assert_eq!(need(&d, t0()), Need::Hooks(HookKind::PreRollout));
    assert!(
        advance(&mut d, &Observed::default(), &[], t0())
            .unwrap()
            .is_empty()
    );
    let ev = advance(&mut d, &ran(HookKind::PreRollout, true), &[], t0()).unwrap();
    assert_eq!(
        kinds(&ev),
        [
            "hook_completed",
            "percentage_updated",
            "rollout_step_started"
        ]
    );
    assert_eq!(need(&d, t0()), Need::Clock);

    let mut d = dep(r#"[{"set_weight": 10}]"#, false);
    with_hooks(
        &mut d,
        r#"[{"name": "migrate", "kind": "pre_rollout", "command": ["false"]}]"#,
    );
    let ev = advance(&mut d, &ran(HookKind::PreRollout, false), &[], t0()).unwrap();
    assert_eq!(kinds(&ev), ["hook_completed", "deployment_rolled_back"]);
    assert!(
        d.status_reason
            .as_deref()
            .unwrap()
            .starts_with("pre-rollout hook h failed")
    );
}

#[test]
fn confirmations_hold_each_weight_and_the_promotion() {
    let mut d = dep(r#"[{"set_weight": 10}, {"set_weight": 50}]"#, true);
    with_hooks(
        &mut d,
        r#"[{"name": "ok-to-grow", "kind": "confirm_step", "webhook": "http://ci/step"},
            {"name": "ok-to-ship", "kind": "confirm_promotion", "webhook": "http://ci/ship"}]"#,
    );
    assert_eq!(need(&d, t0()), Need::Hooks(HookKind::ConfirmStep));
    let no = ran(HookKind::ConfirmStep, false);
    assert_eq!(
        kinds(&advance(&mut d, &no, &[], t0()).unwrap()),
        ["gate_waiting"]
    );
    assert!(advance(&mut d, &no, &[], t0()).unwrap().is_empty());
    let ev = advance(&mut d, &ran(HookKind::ConfirmStep, true), &[], t0()).unwrap();
    assert_eq!(
        kinds(&ev),
        [
            "hook_completed",
            "percentage_updated",
            "rollout_step_started"
        ]
    );
    // The next weight needs its own confirmation.
    assert_eq!(
        (d.current_percent, need(&d, t0())),
        (10, Need::Hooks(HookKind::ConfirmStep))
    );
    advance(&mut d, &ran(HookKind::ConfirmStep, true), &[], t0()).unwrap();
    assert_eq!(d.current_percent, 50);
    assert_eq!(need(&d, t0()), Need::Hooks(HookKind::ConfirmPromotion));
    assert!(
        advance(&mut d, &Observed::default(), &[], t0())
            .unwrap()
            .is_empty()
    );
    let ev = advance(&mut d, &ran(HookKind::ConfirmPromotion, true), &[], t0()).unwrap();
    assert_eq!(d.status, DeploymentStatus::Completed, "{:?}", kinds(&ev));
}

#[test]
fn ended_deployments_run_their_rollback_and_post_hooks_once() {
    let mut d = dep(r#"[{"set_weight": 10}]"#, false);
    with_hooks(
        &mut d,
        r#"[{"name": "page", "kind": "on_rollback", "webhook": "http://ops/page"},
            {"name": "report", "kind": "post_rollout", "webhook": "http://ops/report"}]"#,
    );
    d.rollback("bad", t0()).unwrap();
    assert_eq!(need(&d, t0()), Need::Hooks(HookKind::OnRollback));
    let names: Vec<String> = ending_hooks(&d).into_iter().map(|h| h.name).collect();
    assert_eq!(names, ["page", "report"]);
    let ev = advance(&mut d, &ran(HookKind::OnRollback, true), &[], t0()).unwrap();
    assert_eq!(kinds(&ev), ["hook_completed"]);
    assert_eq!(need(&d, t0()), Need::Clock);
    // A promoted deployment runs only the post-rollout hooks.
    let mut p = dep(r#"[{"set_weight": 10}]"#, false);
    with_hooks(
        &mut p,
        r#"[{"name": "page", "kind": "on_rollback", "webhook": "http://ops/page"}]"#,
    );
    p.promote(t0()).unwrap();
    assert_eq!(need(&p, t0()), Need::Clock);
}

#[test]
fn a_percentage_with_a_rollout_is_refused() {
    let e = NewDeployment {
        queue_name: "q".into(),
        stable_version: "v1".into(),
        canary_version: "v2".into(),
        percentage: Some(json!(5)),
        rollout: Some(RolloutSpec::of_steps(vec![Step::SetWeight(5)])),
        ..Default::default()
    }
    .resolve("x".into(), "ops", t0())
    .unwrap_err();
    assert!(e.to_string().starts_with("percentage:"));
}

/// A deployment an external engine splits reaches a weight step only when
/// the engine reports that weight in effect; one that doesn't within the
/// step's allowance pauses the rollout with the reason.
#[test]
fn an_engine_step_is_reached_when_the_engine_reports_its_weight() {
    let mut d = dep(
        r#"[{"set_weight": 10}, {"set_weight": 50}, {"pause": {}}]"#,
        true,
    );
    d.engine = Some(crate::traffic::engine::EngineTarget {
        engine: "edge".into(),
        backend: "app".into(),
        stable: vec!["s1".into()],
        canary: vec!["c1".into()],
        confirm_within: Some(GoDuration::from_secs(5)),
        mirror_percent: None,
        session_persistence: None,
    });
    let seen = |share| Observed {
        engine_share: Some(share),
        ..Default::default()
    };
    // The weight is set, but the step waits for the engine.
    let ev = advance(&mut d, &Observed::default(), &[], t0()).unwrap();
    assert_eq!(kinds(&ev), ["percentage_updated"]);
    assert_eq!(
        (d.current_percent, d.rollout.as_ref().unwrap().step),
        (10, 0)
    );
    assert!(
        advance(&mut d, &seen(0), &[], t0() + Duration::seconds(1))
            .unwrap()
            .is_empty()
    );
    // Reported: on to the next weight, which the engine never puts in effect.
    let t = t0() + Duration::seconds(2);
    let ev = advance(&mut d, &seen(10), &[], t).unwrap();
    assert_eq!(kinds(&ev), ["rollout_step_started", "percentage_updated"]);
    assert_eq!(
        (d.current_percent, d.rollout.as_ref().unwrap().step),
        (50, 1)
    );
    assert!(
        advance(&mut d, &seen(10), &[], t + Duration::seconds(4))
            .unwrap()
            .is_empty()
    );
    let ev = advance(&mut d, &seen(10), &[], t + Duration::seconds(5)).unwrap();
    assert_eq!(kinds(&ev), ["deployment_paused"]);
    assert_eq!(d.status, DeploymentStatus::Paused);
    let reason = d.status_reason.clone().unwrap_or_default();
    assert!(
        reason.contains("engine edge did not put 50% in effect within 5s: it reports 10%"),
        "{reason}"
    );
}

#[test]
fn a_mirror_step_copies_stables_requests_until_the_next_one_or_the_end() {
    use crate::traffic::proxy::ProxyRoute;
    let mut d = dep(
        r#"[{"mirror": {"percent": 50}}, {"analysis": {"window": "1m"}}, {"mirror": {"percent": 0}}, {"set_weight": 10}, {"mirror": {"percent": 100}}, {"pause": {"duration": "1m"}}, {"set_weight": 100}]"#,
        true,
    );
    d.upstreams.stable = vec!["http://127.0.0.1:1".into()];
    d.upstreams.canary = vec!["http://127.0.0.1:2".into()];
    let route = |d: &Deployment| ProxyRoute::of(d).unwrap().mirror_percent;
    let before = d.revision;
    let ev = advance(&mut d, &Observed::default(), &[], t0()).unwrap();
    assert_eq!(kinds(&ev), ["rollout_step_started"]);
    assert!(ev[0].message.contains("analysis"), "{}", ev[0].message);
    assert_eq!(ev[0].data["detail"]["mirror"], 50);
    let r = d.rollout.as_ref().unwrap();
    assert_eq!((r.mirror_percent, r.step, d.current_percent), (50, 1, 0));
    assert!(
        d.revision > before,
        "a mirror change is a change of the route"
    );
    assert_eq!(route(&d), 50);
    // The judges pass the mirrored answers; mirroring stops, the canary takes 10%.
    let t = t0() + Duration::seconds(60);
    advance(&mut d, &judged(Outcome::Pass), &[], t).unwrap();
    let r = d.rollout.as_ref().unwrap();
    assert_eq!((r.mirror_percent, d.current_percent), (100, 10));
    assert_eq!(route(&d), 100);
    // Promotion ends the mirroring on the route.
    advance(&mut d, &Observed::default(), &[], t + Duration::seconds(60)).unwrap();
    assert_eq!(d.status, DeploymentStatus::Completed);
    assert_eq!(route(&d), 0);
    assert_eq!(
        describe(&Step::Mirror { percent: 20 }),
        "mirror 20% of stable's requests to the canary"
    );
    let bad: Result<RolloutSpec, _> =
        serde_json::from_str(r#"{"steps": [{"mirror": {"percent": 101}}]}"#);
    assert_eq!(
        bad.unwrap().validate().unwrap_err().to_string(),
        "steps[0]: mirror 101 is not a percentage (0–100)"
    );
}
