//! Traffic rules (header, cookie, user and country matches, affinity, sticky
//! keys) as a client sends them in `PUT …/routing`, compiled and asked to
//! choose a lane for arbitrary requests. Compiling refuses or succeeds; a
//! chooser always answers, and never sends traffic to the canary at 0% except
//! by an explicit rule or override.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serin_core::Lane;
use serin_core::traffic::{Headers, Reason, TrafficRules};

#[derive(Debug, Arbitrary)]
struct Input {
    rules: String,
    headers: Vec<(String, String)>,
    percent: u8,
    bucket: u32,
}

fuzz_target!(|input: Input| {
    let Ok(rules) = serde_json::from_str::<TrafficRules>(&input.rules) else {
        return;
    };
    let Ok(chooser) = rules.chooser("canary_fuzz") else {
        return;
    };
    let request = Headers(input.headers);
    let percent = input.percent % 101;
    let choice = chooser.choose(&request, percent, input.bucket % 10_000);
    if percent == 0 && choice.lane == Lane::Canary {
        assert!(
            matches!(choice.reason, Reason::Override | Reason::Rule(_)),
            "canary at 0% for {:?}",
            choice.reason
        );
    }
    let _ = chooser.header_names();
});
