//! The API's JSON extractor on any body, for the request types with the most
//! structure: it deserializes or answers one of the documented errors (400,
//! 413, 415 or 422 with a code), never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serin_server::extract::parse;

fn check<T: serde::de::DeserializeOwned>(data: &[u8]) {
    if let Err(e) = parse::<T>(data) {
        let status = e.status().as_u16();
        assert!(matches!(status, 400 | 413 | 415 | 422), "status {status}");
    }
}

fuzz_target!(|data: &[u8]| {
    check::<serin_core::canary::NewDeployment>(data);
    check::<serin_core::rollout::RolloutSpec>(data);
    check::<serin_core::ReleasePatch>(data);
    check::<serin_core::traffic::TrafficRules>(data);
    check::<serin_core::release::environment::EnvironmentSpec>(data);
});
