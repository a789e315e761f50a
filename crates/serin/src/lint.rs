//! `serin lint -f FILE`: checks a rollout spec without applying it.
//!
//! Two forms are understood: a `canary-config.yaml` (a `canary:` section
//! with `traffic_steps`, `auto_progression` and `safety_checks`), and a plain plan
//! `{"steps": [...]}` in YAML or JSON (JSON is YAML). A valid file prints the steps
//! it expands to and exits 0; an invalid one prints every problem found and exits 2.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use serin_core::rollout::SpecFile;

use crate::cli::Output;

fn read(path: &Path) -> Result<String, String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        return Ok(s);
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The plan a file describes, or why it describes none.
pub fn parse(text: &str) -> Result<SpecFile, String> {
    // Through JSON's data model: serde_norway reads enums only from YAML tags, while
    // specs write steps as one-key maps (`- set_weight: 10`), as JSON would.
    let value: serde_json::Value =
        serde_norway::from_str(text).map_err(|e| format!("not YAML or JSON: {e}"))?;
    SpecFile::from_value(value)
}

/// Reads and parses a spec file (`-` is standard input).
pub fn load(path: &Path) -> Result<SpecFile, String> {
    read(path).and_then(|t| parse(&t))
}

/// Runs the command.
pub fn lint(path: &Path, output: Output) -> ExitCode {
    match load(path) {
        Ok(SpecFile { spec, .. }) => {
            match output {
                o @ (Output::Json | Output::Yaml) => {
                    let _ = crate::output::emit(o, &spec);
                }
                Output::Table => {
                    println!("{}: valid, {} steps", path.display(), spec.steps.len());
                    for (i, s) in spec.steps.iter().enumerate() {
                        println!("{:>3}. {}", i + 1, serin_core::rollout::describe(s));
                    }
                    // What the file can't say: the deployment's own minimum.
                    let profile = &serin_core::canary::PROFILES.default;
                    let window = profile
                        .metrics_window
                        .unwrap_or(serin_core::duration::GoDuration::from_mins(5));
                    println!(
                        "timed steps: at least {} (analyses without a window use the deployment's metrics window, {window} by default); promotion also waits for the deployment's minimum duration ({} by default, --min-duration)",
                        spec.timed_length(window),
                        profile.min_canary_duration
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_core::rollout::describe;

    #[test]
    fn the_canary_config_example_works_as_written() {
        let file = parse(serin_core::rollout::CANARY_CONFIG_EXAMPLE).unwrap();
        let spec = &file.spec;
        assert_eq!(spec.steps.len(), 7);
        assert_eq!(describe(&spec.steps[0]), "set weight 5%");
        assert_eq!(describe(&spec.steps[1]), "analysis over 24h0m0s");
        assert_eq!(spec.final_weight(), 100);
        assert_eq!(spec.safety_checks.len(), 5);
        assert_eq!(file.auto_promotion, Some(true));
    }

    #[test]
    fn plain_plans_and_problems() {
        let spec = parse("steps:\n  - set_weight: 10\n  - pause: {}\n  - gate: approval\n")
            .unwrap()
            .spec;
        assert_eq!(describe(&spec.steps[1]), "pause until continued");
        assert!(
            parse("steps: []")
                .unwrap_err()
                .contains("at least one step")
        );
        assert!(
            parse("canary:\n  traffic_steps: [50, 10]\n")
                .unwrap_err()
                .contains("canary.traffic_steps[1]")
        );
        assert!(parse("hello: 1").unwrap_err().contains("neither"));
        assert!(
            parse("canary: {traffic_steps: [5], surprise: 1}")
                .unwrap_err()
                .contains("surprise")
        );
    }
}
