use super::*;

#[test]
fn the_plans_are_what_the_cli_makes() {
    let d = default_plan(GoDuration::from_secs(60)).unwrap();
    let steps = d.rollout["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 7);
    assert_eq!(steps[0], json!({"set_weight": 10}));
    assert_eq!(steps[1]["analysis"]["window"], "1m0s");
    assert_eq!(d.max_duration, None, "3 minutes fit the default 2 h");
    let s = canary_config_plan(Duration::from_secs(180)).unwrap();
    assert_eq!(s.rollout["steps"][0], json!({"set_weight": 5}));
    assert_eq!(s.rollout["safety_checks"].as_array().unwrap().len(), 5);
    assert!(s.auto_promotion);
    // Three 24 h analyses: 72 h, plus the hour `serin apply` adds.
    assert_eq!(s.max_duration, Some(GoDuration::from_hours(73)));
}

#[test]
fn options_parse() {
    let args: Vec<String> = ["--bin", "x", "--only", "a,b", "--window", "20s", "--list"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let o = Opts::parse(&args).unwrap();
    assert_eq!(o.only, Some(vec!["a".to_string(), "b".to_string()]));
    assert_eq!(o.window, GoDuration::from_secs(20));
    assert!(o.list);
    assert!(Opts::parse(&["--nope".to_string()]).is_err());
}
