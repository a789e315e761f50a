//! The rollout-spec parser `serin lint` and `serin apply` use: any text, read
//! as YAML (JSON is YAML) into JSON's data model, then as seed 002's config or
//! a plain plan. It must answer or refuse, never panic; an accepted plan
//! validates, serializes, and reads back as the same plan.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serin_core::rollout::{RolloutSpec, SpecFile};

/// libFuzzer's panic hook aborts on every panic, even one the code catches.
/// Serin catches a panic of the CEL library (its antlr4rust parser has hit
/// "unreachable" on some inputs,
/// see `serin_core::judge::policy`) and reports an invalid expression; this
/// hook lets those pass and prints any other panic, which the fuzz target's
/// own guard then turns into a crash.
fn hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let file = info.location().map(|l| l.file()).unwrap_or_default();
            if !(file.contains("antlr4rust") || file.contains("/cel-")) {
                eprintln!("{info}");
            }
        }));
    });
}

fuzz_target!(init: hook(), |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(value) = serde_norway::from_str::<serde_json::Value>(text) else { return };
    if let Ok(file) = SpecFile::from_value(value) {
        file.spec.validate().expect("an accepted plan validates");
        let json = serde_json::to_value(&file.spec).expect("a plan serializes");
        let back: RolloutSpec = serde_json::from_value(json).expect("a plan reads back");
        assert_eq!(back, file.spec);
        let _ = file.spec.outbound_targets();
    }
});
