//! The CLI reference (`docs/cli.md`), generated from the clap declarations so it
//! can't drift from the binary. A test compares the file with what the code
//! generates; `UPDATE_GOLDEN=1 cargo test -p serin` rewrites it.

use clap::CommandFactory;

use crate::cli::Cli;

/// The whole reference as Markdown: one section per command, with its full help.
pub fn cli_markdown() -> String {
    let mut out = String::from(
        "# `serin` command-line reference\n\n\
         Generated from the code by `UPDATE_GOLDEN=1 cargo test -p serin`; do not edit by hand.\n\
         Every setting of `serin up` and `serin migrate` also reads the `SERIN_*` variable shown\n\
         beside it; client commands read `SERIN_URL`, `SERIN_API_KEY` and `SERIN_OUTPUT`.\n",
    );
    let mut root = Cli::command().term_width(100);
    root.build(); // gives each subcommand its full name for the usage lines
    section(&mut out, root, "serin");
    out
}

fn section(out: &mut String, cmd: clap::Command, path: &str) {
    // Environment values of the machine that generates the file must not leak into it.
    let mut cmd = cmd.term_width(100).mut_args(|a| a.hide_env_values(true));
    let help = cmd.render_long_help().to_string();
    out.push_str(&format!(
        "\n## `{path}`\n\n```text\n{}\n```\n",
        help.trim_end()
    ));
    let subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .cloned()
        .collect();
    for sub in subs {
        let name = format!("{path} {}", sub.get_name());
        section(out, sub, &name);
    }
}

#[cfg(test)]
mod tests {
    const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cli.md");

    #[test]
    fn cli_reference_matches_golden_file() {
        let generated = super::cli_markdown();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(GOLDEN, &generated).unwrap();
            return;
        }
        let golden = std::fs::read_to_string(GOLDEN).unwrap_or_default();
        assert!(
            golden == generated,
            "docs/cli.md differs from the CLI; if intended, run `UPDATE_GOLDEN=1 cargo test -p serin` and commit it"
        );
    }

    #[test]
    fn every_command_is_documented() {
        let doc = super::cli_markdown();
        for cmd in [
            "serin up",
            "serin migrate",
            "serin release latest",
            "serin signal send",
            "serin add-product",
            "serin completions",
        ] {
            assert!(doc.contains(&format!("## `{cmd}`")), "{cmd}");
        }
        assert!(doc.contains("SERIN_DATABASE_URL"));
    }
}
