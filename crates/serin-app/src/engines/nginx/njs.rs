//! The reload-free way to drive nginx (`split=njs`): a small njs module,
//! [`MODULE`], picks each request's upstream server from a state file per
//! backend, `DIR/BACKEND.json`, that Serin replaces on every change.
//!
//! Why: every `nginx -s reload` starts new workers and has the old ones
//! close their idle kept-alive client connections; a client that sends a
//! request on one of them at that instant sees it reset. Measured with the
//! rendered-file way, about 1 request in 2,800 during a run of weight
//! changes failed so. njs 0.8 has shared dictionaries for state that
//! changes at run time, but Debian 12 ships njs 0.7.9; reading a small file
//! that the page cache holds is the way both versions share. A change is in
//! effect from the next request on.
//!
//! What it costs: nginx resolves `proxy_pass http://$serin_route` per
//! request to an address, so the upstream connections are not kept alive
//! (an `upstream` block's `keepalive` needs the block); servers must be
//! `IP:port` (a name in a variable would need a `resolver`).

use serde_json::json;
use serin_core::traffic::engine::{EngineTarget, Pattern, RouteState, RuleSource};

/// The njs module Serin writes to `DIR/serin.js`.
pub const MODULE: &str = include_str!("serin.js");

/// The state files' format [`MODULE`] reads; its probe answers `njs1`.
pub const FORMAT: u32 = 1;

/// The state file for `target` in `state`: the servers with their weights
/// (each lane's weight split over its servers as the upstream block would),
/// each lane's servers for the rules, the rules in order, and what the probe
/// answers: the lanes' total weights and the rules' digest.
pub fn state_file(target: &EngineTarget, state: &RouteState) -> String {
    let (ws, wc) = target.weights(state.percent);
    let lane = |servers: &[String], w: u32| -> Vec<serde_json::Value> {
        servers.iter().map(|s| json!([s, w])).collect()
    };
    let mut weighted = lane(&target.stable, ws);
    weighted.extend(lane(&target.canary, wc));
    weighted.retain(|s| s[1] != 0);
    let rules: Vec<serde_json::Value> = state
        .rules
        .iter()
        .map(|r| {
            let mut rule = serde_json::Map::new();
            match &r.source {
                RuleSource::Header(h) => rule.insert("header".into(), json!(h)),
                RuleSource::Cookie(c) => rule.insert("cookie".into(), json!(c)),
            };
            match &r.pattern {
                Pattern::Exact(v) => rule.insert("equals".into(), json!(v)),
                Pattern::Regex(re) => rule.insert("regex".into(), json!(re)),
            };
            rule.insert("lane".into(), json!(r.lane.as_str()));
            serde_json::Value::Object(rule)
        })
        .collect();
    json!({
        "format": FORMAT,
        "stable_weight": ws * target.stable.len() as u32,
        "canary_weight": wc * target.canary.len() as u32,
        "digest": state.rules_digest(),
        "weighted": weighted,
        "stable": lane(&target.stable, 1),
        "canary": lane(&target.canary, 1),
        "rules": rules,
    })
    .to_string()
}

/// Why nginx can't reach `target`'s servers through a variable, if it
/// can't: each must be an `IP:port`.
pub fn check_servers(target: &EngineTarget) -> Result<(), (&'static str, String)> {
    for (field, servers) in [
        ("engine.stable", &target.stable),
        ("engine.canary", &target.canary),
    ] {
        if let Some(s) = servers
            .iter()
            .find(|s| s.parse::<std::net::SocketAddr>().is_err())
        {
            return Err((
                field,
                format!(
                    "{s}: with split=njs a server is IP:port (nginx would need a resolver for a name)"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_core::traffic::engine::EngineRule;

    #[test]
    fn the_state_file_carries_weights_lanes_and_rules() {
        let t = EngineTarget {
            engine: "web".into(),
            backend: "app".into(),
            stable: vec!["10.0.0.1:80".into(), "10.0.0.2:80".into()],
            canary: vec!["10.0.0.3:80".into()],
            confirm_within: None,
            mirror_percent: None,
            session_persistence: None,
        };
        let state = RouteState {
            percent: 10,
            live: true,
            mirror_percent: 0,
            rules: vec![EngineRule {
                source: RuleSource::Cookie("tier".into()),
                pattern: Pattern::Exact("gold\"}".into()),
                lane: serin_core::Lane::Canary,
            }],
        };
        let s: serde_json::Value = serde_json::from_str(&state_file(&t, &state)).unwrap();
        assert_eq!(
            (s["stable_weight"].as_u64(), s["canary_weight"].as_u64()),
            (Some(18), Some(2))
        );
        assert_eq!(
            s["weighted"],
            json!([["10.0.0.1:80", 9], ["10.0.0.2:80", 9], ["10.0.0.3:80", 2]])
        );
        assert_eq!(s["canary"], json!([["10.0.0.3:80", 1]]));
        assert_eq!(
            s["rules"],
            json!([{"cookie": "tier", "equals": "gold\"}", "lane": "canary"}])
        );
        assert_eq!(s["digest"], json!(state.rules_digest()));
        // At 0% the canary is left out of the weighted choice.
        let s: serde_json::Value =
            serde_json::from_str(&state_file(&t, &RouteState::share_only(0))).unwrap();
        assert_eq!(s["weighted"].as_array().unwrap().len(), 2);
        assert!(check_servers(&t).is_ok());
        let named = EngineTarget {
            canary: vec!["canary.internal:80".into()],
            ..t
        };
        assert_eq!(check_servers(&named).unwrap_err().0, "engine.canary");
    }
}
