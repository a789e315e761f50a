//! The README's Quickstart, run as written: its `sh` blocks are taken from
//! the file in order and run against a fresh server started with the first
//! block's command, in one shell (as in one terminal: exports and background
//! jobs carry over), from the repository's root. The only changes are the
//! ones a reader makes: the key the server printed instead of `srn_3f9c…`,
//! and the binary this test built instead of `cargo run --release -p serin --`
//! and `target/release/serin`. The server runs with its default settings
//! (rate limits included) on the README's ports, so a busy port fails the
//! test with a clear message rather than running something else.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::BIN;

/// The key the server is started with (`SERIN_ADMIN_TOKEN`, as the README offers).
const KEY: &str = "srn_quickstart_admin_key_0123456789";

/// The `sh` blocks of the README's Quickstart section, in order.
fn quickstart_blocks(readme: &str) -> Vec<String> {
    let start = readme
        .find("\n## Quickstart")
        .expect("a Quickstart section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    let section = &rest[..end];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```sh" {
            let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            blocks.push(body.join("\n"));
        }
    }
    blocks
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

#[test]
fn the_readme_quickstart_runs_as_written() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = quickstart_blocks(&readme);
    assert!(blocks.len() >= 5, "{} sh blocks", blocks.len());
    for port in [8080, 8000, 9001, 9002, 9003] {
        assert!(
            port_is_free(port),
            "port {port} is busy: the Quickstart runs on the README's ports"
        );
    }

    // The first block starts the server; the lines after it (comments) show
    // what it prints.
    let up = blocks[0]
        .lines()
        .next()
        .unwrap()
        .replace("cargo run --release -p serin --", "");
    let up_args: Vec<&str> = up.split_whitespace().collect();
    assert_eq!(up_args.first(), Some(&"up"), "{up}");
    let dir = tempfile::tempdir().unwrap();
    let mut server = Command::new(BIN)
        .args(&up_args)
        .current_dir(dir.path())
        .env("SERIN_ADMIN_TOKEN", KEY)
        .env("SERIN_LOG", "warn")
        .env_remove("SERIN_RATE_LIMIT")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = server.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.starts_with("serin: listening on") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the server's ready line");

    // The rest in one shell, as the reader's second terminal. `serin`
    // within it is this test's binary; its sessions go to a home of its own.
    let home = tempfile::tempdir().unwrap();
    let script: String = blocks[1..]
        .iter()
        .map(|b| {
            b.replace("srn_3f9c…", KEY)
                .replace("alias serin=target/release/serin", "")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let prelude = format!(
        "set -euo pipefail\nserin() {{ {BIN:?} \"$@\"; }}\n\
         trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\nset -x\n"
    );
    let t0 = Instant::now();
    let run = Command::new("bash")
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .current_dir(&root)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .env_remove("SERIN_URL")
        .env_remove("SERIN_API_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    eprintln!(
        "quickstart: exit {:?} after {:?}\n--- stdout\n{stdout}\n--- stderr (the commands, as run)\n{stderr}",
        run.status.code(),
        t0.elapsed()
    );
    assert!(run.status.success(), "a Quickstart command failed (above)");
    // What the README says the commands show.
    assert!(
        stdout.contains(r#""version":"1.4.0","status":"released""#),
        "latest stable by curl"
    );
    assert!(
        stdout.contains("exit 1: rolled back"),
        "the failing canary was rolled back, and --watch said so with exit 1"
    );
    let answers: Vec<&str> = stdout.lines().filter(|l| *l == "v2").collect();
    assert_eq!(answers.len(), 2, "the proxy answered v2 after each rollout");
}
