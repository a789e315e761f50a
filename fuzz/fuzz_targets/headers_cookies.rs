//! Cookie headers as clients send them, read by the proxy's request view: any
//! header set yields a cookie value or none, and the affinity cookie the proxy
//! sets reads back as the lane it names.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serin_core::Lane;
use serin_core::duration::GoDuration;
use serin_core::traffic::{Headers, RequestView, TrafficRules};

#[derive(Debug, Arbitrary)]
struct Input {
    headers: Vec<(String, String)>,
    name: String,
    path: String,
    canary: bool,
    percent: u8,
}

fuzz_target!(|input: Input| {
    let request = Headers(input.headers);
    let _ = request.cookie(&input.name);
    let _ = request.header(&input.name);
    let chooser = TrafficRules::default()
        .chooser("canary_fuzz")
        .expect("the default rules compile");
    let lane = if input.canary {
        Lane::Canary
    } else {
        Lane::Stable
    };
    let path: String = input
        .path
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != ';')
        .collect();
    let Some(cookie) =
        chooser.affinity_cookie(lane, &format!("/{path}"), GoDuration::from_secs(60))
    else {
        return;
    };
    // The browser sends back `name=value`, the part before the attributes.
    let pair = cookie.split(';').next().unwrap().to_string();
    let back = Headers(vec![("cookie".into(), format!("other=1; {pair}"))]);
    let percent = input.percent % 99 + 1;
    let choice = chooser.choose(&back, percent, if input.canary { 9_999 } else { 0 });
    assert_eq!(choice.lane, lane, "{cookie} at {percent}%");
});
