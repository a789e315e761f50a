//! The CLI against a real server: subcommands, seed aliases, output, failures.

use crate::harness::{BIN, Server, cli_at, json, stdout};

#[test]
fn quickstart_through_the_cli() {
    let server = Server::sqlite();
    let out = stdout(&server.cli(&["product", "add", "web", "--description", "storefront"]));
    assert!(out.starts_with("NAME") && out.contains("web"), "{out}");
    let r1 = json(&server.cli(&[
        "add-release",
        "--product",
        "web",
        "--version",
        "1.2.0",
        "-o",
        "json",
    ]));
    let r2 = json(&server.cli(&["release", "add", "web", "1.3.0-rc.1", "-o", "json"]));
    assert_eq!(r1["status"], "draft");
    for r in [&r1, &r2] {
        let id = r["id"].to_string();
        stdout(&server.cli(&["release", "approve", &id]));
        stdout(&server.cli(&["release", "release", &id]));
    }
    let latest = json(&server.cli(&["get-latest-release", "web", "--output", "json"]));
    assert_eq!(
        latest["version"], "1.3.0-rc.1",
        "semver precedence: 1.3.0-rc.1 > 1.2.0"
    );
    let table = stdout(&server.cli(&["release", "latest", "--product", "web"]));
    assert!(
        table.lines().nth(1).unwrap().contains("1.3.0-rc.1"),
        "{table}"
    );
    let list = json(&server.cli(&["release", "list", "web", "-o", "json"]));
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let products = stdout(&server.cli(&["product", "list"]));
    assert_eq!(products.lines().count(), 2, "{products}");

    let sig = json(&server.cli(&[
        "signal",
        "send",
        "--product",
        "web",
        "--version",
        "1.2.0",
        "--lane",
        "canary",
        "--name",
        "latency",
        "--kind",
        "latency",
        "--value",
        "12.5",
        "--tag",
        "region=eu",
        "-o",
        "json",
    ]));
    assert_eq!(
        (sig["lane"].as_str(), sig["value"].as_f64()),
        (Some("canary"), Some(12.5))
    );
    let lines = "{\"product_name\":\"web\",\"version\":\"1.2.0\",\"lane\":\"stable\",\"name\":\"x\",\"value\":1}\n".repeat(25);
    let out = stdout(&server.cli_stdin(&["add-signal", "--file", "-"], &lines));
    assert_eq!(out.trim(), "accepted 25 of 25 signals");
}

#[test]
fn failures_print_the_server_message_and_exit_non_zero() {
    let server = Server::sqlite();
    let out = server.cli(&["release", "latest", "ghost"]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("product `ghost` does not exist") && err.contains("PRODUCT_NOT_FOUND"),
        "{err}"
    );
    let out = server.cli(&[
        "signal",
        "send",
        "--product",
        "p",
        "--version",
        "1",
        "--lane",
        "blue",
        "--name",
        "x",
        "--value",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = cli_at("http://127.0.0.1:1", &["product", "list"], None);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach Serin"));
}

#[test]
fn bad_settings_are_all_reported_before_exit() {
    let out = std::process::Command::new(BIN)
        .args([
            "up",
            "--listen",
            "nowhere",
            "--database-url",
            "mysql://db",
            "--log-format",
            "xml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for what in ["listen:", "database_url:", "log_format:", "3 setting(s)"] {
        assert!(err.contains(what), "{what} in {err}");
    }
    let out = std::process::Command::new(BIN)
        .args(["up", "--listen", "127.0.0.1:0"])
        .env("SERIN_DATABASE_URL", "sqlite:///no/such/dir/serin.db")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/no/such/dir"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn migrate_applies_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/m.db", dir.path().display());
    let first = json(&cli_at(
        "",
        &["migrate", "--database-url", &url, "-o", "json"],
        None,
    ));
    let all: Vec<u64> = (1..=first["latest"].as_u64().unwrap()).collect();
    assert_eq!(
        first["applied"],
        serde_json::json!(all),
        "a new database gets every migration"
    );
    let again = stdout(&cli_at("", &["migrate", "--database-url", &url], None));
    assert!(again.contains("up to date"), "{again}");
}

#[test]
fn completions_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = stdout(&cli_at("", &["completions", shell], None));
        assert!(out.contains("get-latest-release"), "{shell}");
    }
}

#[test]
fn canary_worker_and_apikey_commands() {
    let server = Server::sqlite();
    let d = json(&server.cli(&[
        "canary",
        "create",
        "--queue",
        "payments",
        "--stable",
        "v1.2.0",
        "--canary",
        "v1.3.0",
        "--profile",
        "conservative",
        "--percent",
        "5",
        "--stable-upstream",
        "http://127.0.0.1:9001",
        "--canary-upstream",
        "http://127.0.0.1:9002",
        "--path-prefix",
        "/api",
        "-o",
        "json",
    ]));
    let id = d["id"].as_str().unwrap().to_string();
    assert_eq!(
        (
            d["current_percent"].as_u64(),
            d["config"]["min_canary_duration"].as_str()
        ),
        (Some(5), Some("15m0s"))
    );
    assert_eq!(d["upstreams"]["canary"][0], "http://127.0.0.1:9002");
    assert_eq!(d["route"]["path_prefix"], "/api");
    let table = stdout(&server.cli(&["canary", "list"]));
    assert!(
        table.starts_with("ID") && table.contains(&id) && table.contains("5%"),
        "{table}"
    );
    let set = stdout(&server.cli(&["canary", "set-percent", &id, "20"]));
    assert!(set.contains("percentage: 20"), "{set}");
    let paused = stdout(&server.cli(&["canary", "pause", &id, "--reason", "looking at p95"]));
    assert!(
        paused.contains("Deployment paused") && paused.contains("looking at p95"),
        "{paused}"
    );
    assert_eq!(
        json(&server.cli(&["canary", "get", &id, "-o", "json"]))["status"],
        "paused"
    );
    stdout(&server.cli(&["canary", "resume", &id]));
    let health = stdout(&server.cli(&["canary", "health", &id]));
    assert!(
        health.starts_with("overall: unknown") && health.contains("Sample Size"),
        "{health}"
    );
    let metrics = stdout(&server.cli(&["canary", "metrics", &id]));
    assert!(
        metrics.contains("stable") && metrics.contains("canary"),
        "{metrics}"
    );
    let events = stdout(&server.cli(&["canary", "events", &id]));
    assert!(
        events.contains("deployment_created") && events.contains("percentage_updated"),
        "{events}"
    );
    stdout(&server.cli(&["canary", "promote", &id]));
    let got = json(&server.cli(&["canary", "get", &id, "-o", "json"]));
    assert_eq!(got["status"], "completed");
    let out = server.cli(&["canary", "rollback", &id]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DEPLOYMENT_NOT_ACTIVE"));
    assert!(stdout(&server.cli(&["canary", "delete", &id])).contains("deleted"));
    let profiles = json(&server.cli(&["canary", "profiles", "-o", "json"]));
    assert_eq!(profiles["aggressive"]["max_canary_duration"], "30m0s");
    // For people, a table: a header, one row a profile.
    let table = stdout(&server.cli(&["canary", "profiles"]));
    assert!(table.starts_with("PROFILE"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("aggressive") && l.contains("30m0s")),
        "{table}"
    );
    // YAML where asked.
    let yaml = stdout(&server.cli(&["canary", "profiles", "-o", "yaml"]));
    assert!(yaml.contains("max_canary_duration: 30m0s"), "{yaml}");

    stdout(&server.cli(&[
        "worker",
        "register",
        "--id",
        "w1",
        "--version",
        "v1.3.0",
        "--lane",
        "canary",
        "--queue",
        "payments",
    ]));
    let workers = stdout(&server.cli(&["worker", "list", "--lane", "canary"]));
    assert!(
        workers.contains("w1") && workers.contains("canary"),
        "{workers}"
    );
    assert!(stdout(&server.cli(&["worker", "status", "w1", "degraded"])).contains("degraded"));

    let created = stdout(&server.cli(&["apikey", "create", "--name", "ci", "--role", "engineer"]));
    assert!(
        created.contains("key (shown once, store it now): srn_"),
        "{created}"
    );
    let keys = json(&server.cli(&["apikey", "list", "-o", "json"]));
    let ci = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "ci")
        .unwrap();
    assert!(ci.get("key").is_none(), "a listed key never shows the key");
    let revoked =
        json(&server.cli(&["apikey", "revoke", ci["id"].as_str().unwrap(), "-o", "json"]));
    assert!(revoked["revoked_at"].is_string());
}

/// `serin lint -f` checks a rollout spec without a server: seed 002's example file
/// passes as written; a bad plan exits 2 naming the field.
#[test]
fn lint_checks_rollout_specs_offline() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("canary-config.yaml");
    std::fs::write(
        &good,
        "canary:\n  auto_progression:\n    enabled: true\n    wait_time: \"24h\"\n  traffic_steps: [5, 25, 50, 100]\n  safety_checks:\n    - name: \"Total Latency\"\n      metric: \"p95_latency_ms\"\n      threshold: 1000\n      alert_level: \"critical\"\n",
    )
    .unwrap();
    let out = cli_at(
        "http://127.0.0.1:9",
        &["lint", "-f", good.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("valid, 7 steps") && text.contains("analysis over 24h0m0s"),
        "{text}"
    );
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "steps:\n  - set_weight: 50\n  - set_weight: 20\n").unwrap();
    let out = cli_at(
        "http://127.0.0.1:9",
        &["lint", "-f", bad.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("steps[1]"),
        "{out:?}"
    );
}

/// `serin apply -f` takes seed 002's file as written; `serin rollout` starts,
/// shows, continues, watches (exit 0 on promotion, 1 on rollback) and aborts.
#[test]
fn rollout_commands_and_watch_exit_codes() {
    let server = Server::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("canary-config.yaml");
    std::fs::write(
        &config,
        "canary:\n  auto_progression:\n    enabled: true\n    wait_time: \"24h\"\n    thresholds:\n      max_latency: \"1000ms\"\n      min_success_rate: 0.85\n      max_error_rate: 0.15\n  traffic_steps: [5, 25, 50, 100]\n  safety_checks:\n    - name: \"Total Latency\"\n      metric: \"p95_latency_ms\"\n      threshold: 1000\n      alert_level: \"critical\"\n",
    )
    .unwrap();
    let out = server.cli(&[
        "apply",
        "-f",
        config.to_str().unwrap(),
        "--queue",
        "council",
        "--stable",
        "2.6.0",
        "--canary",
        "2.7.0",
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let id = text.split_whitespace().nth(1).unwrap().to_string();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("max_duration set to 73h0m0s"),
        "{out:?}"
    );
    // Applying the same again changes nothing; another plan on the target is refused.
    let args = |canary: &'static str| {
        vec![
            "apply".to_string(),
            "-f".into(),
            config.to_str().unwrap().into(),
            "--queue".into(),
            "council".into(),
            "--stable".into(),
            "2.6.0".into(),
            "--canary".into(),
            canary.into(),
        ]
    };
    let again = args("2.7.0");
    let out = server.cli(&again.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), format!("unchanged {id} (2.6.0 → 2.7.0)\n"));
    let other = args("2.8.0");
    let out = server.cli(&other.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("with another plan"),
        "{out:?}"
    );
    // The controller sets the first weight and starts the 24h analysis.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        let status = json(&server.cli(&["rollout", "status", &id, "-o", "json"]));
        if status["current_percent"] == 5 || std::time::Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(status["current_percent"], 5, "{status}");
    assert_eq!(status["steps"][1]["state"], "running");
    assert_eq!(
        status["rollout"]["spec"]["safety_checks"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert!(status["auto_promotion"].as_bool().unwrap());
    let table = stdout(&server.cli(&["rollout", "status", &id]));
    assert!(
        table.contains("[>] analysis over 24h0m0s") && table.contains("[ ] set weight 25%"),
        "{table}"
    );
    // Abort: traffic back to stable; watch then exits 1.
    let out = server.cli(&["rollout", "abort", &id, "-r", "wrong build"]);
    assert!(out.status.success(), "{out:?}");
    let out = server.cli(&["rollout", "watch", &id]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("aborted by"),
        "{out:?}"
    );

    // A plan with a manual pause: continue passes it; watch follows to promotion, exit 0.
    let plan = dir.path().join("plan.yaml");
    std::fs::write(&plan, "steps:\n  - set_weight: 30\n  - pause: {}\n  - set_weight: 100\njudges:\n  threshold: false\n").unwrap();
    let out = server.cli(&[
        "rollout",
        "start",
        "-f",
        plan.to_str().unwrap(),
        "--queue",
        "web",
        "--stable",
        "v1",
        "--canary",
        "v2",
        "--auto-promotion",
        "true",
        "--min-duration",
        "0s",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let id = json(&out)["id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let s = json(&server.cli(&["rollout", "status", &id, "-o", "json"]));
        if s["waiting_for"] == "a person to continue" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{s}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let out = server.cli(&["rollout", "continue", &id]);
    assert!(out.status.success(), "{out:?}");
    let out = server.cli(&["rollout", "watch", &id, "--timeout", "30s"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        stdout(&out).contains("[x] set weight 100%") || stdout(&out).contains("completed"),
        "{out:?}"
    );
}

#[test]
fn simulate_reports_the_same_for_the_same_seed_whatever_the_threads_and_refuses_bad_flags() {
    let run = |threads: &str, seed: &str| {
        cli_at(
            "http://127.0.0.1:9",
            &[
                "simulate",
                "--runs",
                "40",
                "--horizon",
                "300",
                "--canary-error-rate",
                "0.05",
                "--seed",
                seed,
                "--threads",
                threads,
            ],
            None,
        )
    };
    let one = json(&run("1", "7"));
    assert_eq!(one, json(&run("2", "7")));
    assert_eq!(one["runs"], 40);
    assert_eq!(
        one["rollbacks"].as_u64().unwrap()
            + one["promotions"].as_u64().unwrap()
            + one["inconclusive"].as_u64().unwrap(),
        40
    );
    assert!(one["rollbacks"].as_u64().unwrap() >= 35, "{one}");
    for key in ["median", "p90", "max"] {
        assert!(
            one["time_to_rollback_s"][key].as_f64().unwrap() > 0.0,
            "{one}"
        );
        assert!(one["canary_requests_to_rollback"][key].is_number(), "{one}");
    }
    assert!(
        one["false_rollback_upper95"].as_f64().unwrap()
            >= one["false_rollback_rate"].as_f64().unwrap()
    );
    assert_ne!(one, json(&run("2", "8")), "another seed, other traffic");
    // Bad figures are refused naming the flag, before anything runs.
    let bad = cli_at(
        "http://127.0.0.1:9",
        &["simulate", "--canary-error-rate", "1.5"],
        None,
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("canary_error_rate"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let bad = cli_at("http://127.0.0.1:9", &["simulate", "--steps", "100"], None);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn audit_lists_filters_and_follows_the_log() {
    let server = Server::sqlite();
    stdout(&server.cli(&["product", "add", "web"]));
    stdout(&server.cli(&["product", "add", "api"]));
    // Table: a header, then one line per entry, oldest first.
    let table = stdout(&server.cli(&["audit", "--resource-type", "product"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("TIME"), "{table}");
    assert!(
        lines[1].contains("product/web") && lines[2].contains("product/api"),
        "{table}"
    );
    // JSON: one object per line; filters narrow it.
    let one = stdout(&server.cli(&["audit", "--resource-id", "api", "-o", "json"]));
    let entries: Vec<serde_json::Value> = one
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 1, "{one}");
    assert_eq!(entries[0]["resource_id"], "api");
    assert!(!entries[0]["actor"].as_str().unwrap().is_empty());
    let limited = stdout(&server.cli(&["audit", "--limit", "1"]));
    assert_eq!(
        limited.lines().count(),
        2,
        "a header and one entry: {limited}"
    );
    let bad = server.cli(&["audit", "--limit", "0"]);
    assert!(!bad.status.success());
    // --follow prints what is added after it started.
    let mut follow = std::process::Command::new(BIN)
        .args([
            "audit",
            "--resource-type",
            "product",
            "--follow",
            "-o",
            "json",
        ])
        .env("SERIN_URL", &server.url)
        .env("SERIN_API_KEY", crate::harness::ADMIN)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A watchdog: if the entry never shows, end the process so the read below ends.
    let pid = follow.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(30));
        let _ = std::process::Command::new("kill").arg(&pid).status();
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    stdout(&server.cli(&["product", "add", "jobs"]));
    let reader = std::io::BufReader::new(follow.stdout.take().unwrap());
    let mut got = Vec::new();
    for line in std::io::BufRead::lines(reader) {
        let line = line.unwrap();
        got.push(line.clone());
        if line.contains("\"jobs\"") {
            break;
        }
        assert!(got.len() < 10, "{got:?}");
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(got.len(), 3, "two old entries, then the new one: {got:?}");
}

/// 40 quick calls on one key with the server's default limits (100 a
/// minute, bursts of 20): the calls past the burst wait out the 429 per its
/// `Retry-After` and succeed, saying so on stderr.
#[test]
fn quick_calls_wait_out_the_rate_limit() {
    let server = Server::sqlite_with(&[("SERIN_AUTH_FAILURE_LIMIT", "0")]);
    let mut waited = 0;
    for i in 0..40 {
        let out = server.cli(&["product", "list", "-o", "json"]);
        assert_eq!(out.status.code(), Some(0), "call {i}: {out:?}");
        waited += usize::from(String::from_utf8_lossy(&out.stderr).contains("retrying in"));
    }
    assert!(waited > 0, "the default burst is 20: some calls waited");
}

/// `rollout watch` when the server goes away mid-watch: exit 4 (the server
/// could not be reached), never the 1 of a rolled-back rollout.
#[test]
fn watch_exits_4_when_the_server_goes_away() {
    let mut server = Server::sqlite();
    let out = server.cli(&[
        "rollout", "start", "--queue", "web", "--stable", "1", "--canary", "2", "--steps", "10,100",
    ]);
    assert!(out.status.success(), "{out:?}");
    let id = stdout(&out)
        .split_whitespace()
        .find(|w| w.starts_with("canary_"))
        .unwrap()
        .to_string();
    // A wait with --timeout gives up with 3.
    let out = server.cli(&[
        "rollout",
        "start",
        "--queue",
        "web2",
        "--stable",
        "1",
        "--canary",
        "2",
        "--steps",
        "10,100",
        "--watch",
        "--timeout",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let mut watch = std::process::Command::new(BIN)
        .args(["rollout", "watch", &id])
        .env("SERIN_URL", &server.url)
        .env("SERIN_API_KEY", crate::harness::ADMIN)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(watch.try_wait().unwrap().is_none(), "still watching");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(s) = watch.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "watch never ended");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(4));
}

/// Output piped into a reader that stops early ends the command quietly.
#[test]
fn a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(BIN)
        .args(["completions", "zsh"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("#compdef"), "{first}");
    // The reader is gone (`| head -1`): the shell's status for SIGPIPE, quietly.
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(141));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// No credentials: the error says how to get some.
#[test]
fn no_credentials_says_how_to_sign_in() {
    let server = Server::sqlite();
    let out = std::process::Command::new(BIN)
        .args(["product", "list"])
        .env("SERIN_URL", &server.url)
        .env_remove("SERIN_API_KEY")
        .env("HOME", server.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("serin login") && err.contains("SERIN_API_KEY"),
        "{err}"
    );
}

/// `canary events --follow`: one readable line an event, and it ends when
/// the deployment does; on an ended deployment it doesn't wait at all.
#[test]
fn events_follow_reads_as_lines_and_stops_at_the_end() {
    let server = Server::sqlite();
    let made = json(&server.cli(&[
        "canary", "create", "--queue", "events", "--stable", "1", "--canary", "2", "-o", "json",
    ]));
    let id = made["id"].as_str().unwrap().to_string();
    let follow = std::process::Command::new(BIN)
        .args(["canary", "events", &id, "--follow"])
        .env("SERIN_URL", &server.url)
        .env("SERIN_API_KEY", crate::harness::ADMIN)
        .env_remove("SERIN_OUTPUT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let out = server.cli(&["canary", "promote", &id]);
    assert!(out.status.success(), "{out:?}");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(follow.wait_with_output());
    });
    let out = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("--follow ends when the deployment does")
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("promoted"), "{text}");
    assert!(text.contains("active → completed"), "{text}");
    assert!(!text.contains("{\""), "no raw JSON in table mode: {text}");
    // Ended: the history, and no waiting.
    let again = server.cli(&["canary", "events", &id, "--follow", "-o", "json"]);
    assert!(again.status.success(), "{again:?}");
    for line in String::from_utf8_lossy(&again.stdout).lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("one JSON object a line");
    }
}

/// The CEL example as the docs first show it (`"…"`): a clear error, no
/// panic or backtrace on stderr.
#[test]
fn lint_reports_a_bad_cel_expression_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "steps:\n  - analysis: {window: 1m}\npolicies:\n  - {name: business-hours, utc_offset: \"+01:00\", expression: \"…\"}\n",
    )
    .unwrap();
    let out = cli_at(
        "http://127.0.0.1:9",
        &["lint", "-f", plan.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a valid CEL expression"), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}
