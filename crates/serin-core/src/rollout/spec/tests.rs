use super::*;

#[test]
fn urls_in_plans_carry_no_credentials() {
    for url in [
        "https://ops:hunter2@ci.example/gate",
        "http://token@hooks.example/x",
    ] {
        let e = check_http_url("url", url).unwrap_err().to_string();
        assert!(
            e.contains("credentials") && !e.contains("hunter2") && !e.contains("token@"),
            "{e}"
        );
    }
    check_http_url("url", "https://ci.example/gate?user=a@b").unwrap();
    for leaky in [
        "https://ci.example/gate?token=abc",
        "https://ci.example/gate?x=1&API_KEY=abc",
        "https://hooks.slack.com/services/T000/B000/XXXX",
        "https://discord.com/api/webhooks/1/abc",
    ] {
        let e = check_http_url("url", leaky).unwrap_err().to_string();
        assert!(
            e.contains("secret:NAME") && !e.contains("abc") && !e.contains("XXXX"),
            "{e}"
        );
    }
    check_http_url("url", "secret:slack-ops").unwrap();
    assert!(check_http_url("url", "secret:Slack Ops").is_err());
    check_http_url("url", "https://hooks.slack.com/").unwrap();
    assert!(has_credentials("redis://:pw@cache:6379"));
    assert!(!has_credentials("nats://broker:4222"));
    let mut s = RolloutSpec::of_steps(vec![Step::Gate(Gate::Webhook {
        url: "https://a:b@ci.example/ok".into(),
    })]);
    assert!(s.validate().is_err());
    s.steps = vec![Step::SetWeight(10)];
    s.notifications = vec![
        serde_json::from_value(serde_json::json!({"url": "https://u:p@ops.example/n"})).unwrap(),
    ];
    assert!(s.validate().is_err());
}

#[test]
fn traffic_steps_expand_with_waits_and_analyses() {
    let s = RolloutSpec::from_traffic_steps(&[5, 25, 100], GoDuration::from_mins(10));
    let ten = Some(GoDuration::from_mins(10));
    assert_eq!(
        s.steps,
        vec![
            Step::SetWeight(5),
            Step::Analysis { window: ten },
            Step::SetWeight(25),
            Step::Analysis { window: ten },
            Step::SetWeight(100),
        ]
    );
    let manual = RolloutSpec::from_traffic_steps(&[50, 100], GoDuration::ZERO);
    assert_eq!(
        manual.steps,
        vec![
            Step::SetWeight(50),
            Step::Analysis { window: None },
            Step::Pause { duration: None },
            Step::SetWeight(100),
        ]
    );
    s.validate().unwrap();
    assert_eq!(s.final_weight(), 100);
}

#[test]
fn steps_read_and_write_as_json() {
    let json = r#"{"steps": [
        {"set_weight": 10},
        {"pause": {"duration": "5m"}},
        {"pause": {}},
        {"analysis": {"window": "2m"}},
        {"gate": {"webhook": {"url": "https://ci.example/ok"}}},
        {"gate": "approval"},
        {"set_weight": 50}
    ]}"#;
    let s: RolloutSpec = serde_json::from_str(json).unwrap();
    s.validate().unwrap();
    assert_eq!(s.steps[2], Step::Pause { duration: None });
    let back: RolloutSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
    assert!(serde_json::from_str::<RolloutSpec>(r#"{"steps": [{"jump": 1}]}"#).is_err());
}

#[test]
fn bad_plans_name_their_step() {
    let bad = |json: &str| {
        serde_json::from_str::<RolloutSpec>(json)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string()
    };
    assert!(bad(r#"{"steps": []}"#).contains("at least one step"));
    assert!(bad(r#"{"steps": [{"set_weight": 101}]}"#).contains("steps[0]"));
    assert!(bad(r#"{"steps": [{"set_weight": 50}, {"set_weight": 10}]}"#).contains("steps[1]"));
    assert!(bad(r#"{"steps": [{"pause": {"duration": "0s"}}]}"#).contains("pause"));
    assert!(bad(r#"{"steps": [{"gate": {"webhook": {"url": "ftp://x"}}}]}"#).contains("steps[0]"));
}

#[test]
fn the_canary_config_example_parses_as_written() {
    // The canary-config.yaml example, parsed from its JSON equivalent (the YAML reader
    // lives in the binary; this checks the model and the expansion).
    let f: CanaryConfigFile = serde_json::from_str(
        r#"{"canary": {
            "auto_progression": {"enabled": true, "wait_time": "24h",
                "thresholds": {"max_latency": "1000ms", "min_success_rate": 0.85, "max_error_rate": 0.15}},
            "traffic_steps": [5, 25, 50, 100],
            "safety_checks": [
                {"name": "Total Latency", "metric": "p95_latency_ms", "threshold": 1000, "alert_level": "critical"},
                {"name": "Memory Queries", "metric": "memory_query_latency_ms", "threshold": 50, "alert_level": "warning"}
            ]}}"#,
    )
    .unwrap();
    let spec = f.canary.spec().unwrap();
    assert_eq!(spec.steps.len(), 3 * 2 + 1);
    assert_eq!(
        spec.steps[1],
        Step::Analysis {
            window: Some(GoDuration::from_hours(24))
        }
    );
    // The two safety checks of the file, then the three thresholds as critical checks.
    let checks: Vec<(&str, f64)> = spec
        .safety_checks
        .iter()
        .map(|c| (c.metric.as_str(), c.threshold))
        .collect();
    assert_eq!(
        checks,
        [
            ("p95_latency_ms", 1000.0),
            ("memory_query_latency_ms", 50.0),
            ("p95_latency_ms", 1000.0),
            ("success_rate", 85.0),
            ("error_rate", 15.0)
        ]
    );
    assert_eq!(f.canary.safety_checks[1].alert_level, AlertLevel::Warning);
    let thresholds = f.canary.auto_progression.unwrap().thresholds.unwrap();
    assert_eq!(thresholds.max_latency, Some(GoDuration::from_secs(1)));
}
