//! Go-style durations (`1h30m`, `90s`, `250ms`): any text parses or is
//! refused with a message; a parsed duration prints as text that parses back
//! to the same duration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serin_core::duration::GoDuration;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = text.parse::<GoDuration>() {
        let shown = d.to_string();
        let again: GoDuration = shown.parse().expect("a printed duration parses");
        assert_eq!(again, d, "{text:?} → {shown:?}");
    }
});
