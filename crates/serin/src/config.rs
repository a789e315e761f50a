//! Settings of `serin up` and `serin migrate`: flags and `SERIN_*` variables (clap),
//! then an optional YAML file, then defaults. Every bad setting is collected and
//! reported together before exit, so one run shows everything to fix: values are
//! taken as text and parsed here (not by clap, which would stop at the first), and
//! each key of the file is checked on its own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serin_core::duration::GoDuration;
use serin_server::ServerConfig;
use serin_server::rate::RateLimit;

use crate::cli::{DbArgs, UpArgs};

/// The default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://serin.db";
/// The default API address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The keys a config file may hold (the flags' long names with `_`).
const FILE_KEYS: &[&str] = &[
    "listen",
    "database_url",
    "max_connections",
    "log_format",
    "log_level",
    "rate_limit",
    "rate_burst",
    "auth_failure_limit",
    "max_active_deployments",
    "default_queue",
    "default_tenant",
    "worker_timeout",
    "controller_interval",
    "allow_hook_commands",
    "webhook_secret",
    "name",
    "proxy_listen",
    "session_ttl",
    "header_timeout",
    "connection_limit",
    "body_timeout",
    "git_repositories",
    "check_targets",
    "traffic_engines",
    "outbound_allow",
    "outbound_deny",
    "trusted_proxies",
    "secret_key_file",
];

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub proxy_listen: Option<SocketAddr>,
    pub database_url: String,
    pub max_connections: usize,
    pub log_format: LogFormat,
    pub log_level: String,
    pub server: ServerConfig,
    pub limits: serin_server::Limits,
}

/// Flag (or variable), else file, else nothing.
struct Layers {
    file: HashMap<String, String>,
    errors: Vec<String>,
}

impl Layers {
    fn new(config: Option<&Path>) -> Self {
        let mut errors = Vec::new();
        let file = config
            .map(|p| load_file(p, &mut errors))
            .unwrap_or_default();
        Layers { file, errors }
    }

    fn get(&self, flag: &Option<String>, key: &str) -> Option<String> {
        flag.clone().or_else(|| self.file.get(key).cloned())
    }

    /// A list: the flag's entries, else the file's (a YAML list or a
    /// comma-separated string).
    fn list(&self, flag: &[String], key: &str) -> Vec<String> {
        if !flag.is_empty() {
            return flag.to_vec();
        }
        self.file
            .get(key)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn number(
        &mut self,
        flag: &Option<String>,
        key: &str,
        env: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> u64 {
        let Some(text) = self.get(flag, key) else {
            return default;
        };
        match text.trim().parse::<u64>() {
            Ok(n) if range.contains(&n) => n,
            _ => {
                self.errors.push(format!(
                    "{key}: `{text}` is not a whole number from {} to {} ({env})",
                    range.start(),
                    range.end()
                ));
                default
            }
        }
    }
}

/// Merges and checks everything; `Err` holds one line per problem.
pub fn settings(up: &UpArgs) -> Result<Settings, Vec<String>> {
    let mut l = Layers::new(up.db.config.as_deref());
    let listen_text = l
        .get(&up.listen, "listen")
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    let listen = listen_text.parse::<SocketAddr>().ok();
    if listen.is_none() {
        l.errors.push(format!(
            "listen: `{listen_text}` is not an address; use IP:PORT such as 127.0.0.1:8080 or 0.0.0.0:8080 (SERIN_LISTEN)"
        ));
    }
    let proxy_listen = l.get(&up.proxy_listen, "proxy_listen").and_then(|t| {
        let a = t.parse::<SocketAddr>().ok();
        if a.is_none() {
            l.errors.push(format!(
                "proxy_listen: `{t}` is not an address; use IP:PORT such as 0.0.0.0:8000 (SERIN_PROXY_LISTEN)"
            ));
        }
        a
    });
    let (database_url, max_connections) = db(&up.db, &mut l);
    let format_text = l
        .get(&up.log_format, "log_format")
        .unwrap_or_else(|| "text".into());
    let log_format = match format_text.as_str() {
        "text" => Some(LogFormat::Text),
        "json" => Some(LogFormat::Json),
        other => {
            l.errors.push(format!(
                "log_format: `{other}` is not a format; use `text` or `json` (SERIN_LOG_FORMAT)"
            ));
            None
        }
    };
    let log_level = l
        .get(&up.log_level, "log_level")
        .unwrap_or_else(|| "info".into());
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_level) {
        l.errors.push(format!(
            "log_level: `{log_level}` is not a log filter ({e}); try `info` or `serin_server=debug,info` (SERIN_LOG)"
        ));
    }
    let per_minute = l.number(
        &up.rate_limit,
        "rate_limit",
        "SERIN_RATE_LIMIT",
        100,
        0..=1_000_000_000,
    );
    let burst = l.number(
        &up.rate_burst,
        "rate_burst",
        "SERIN_RATE_BURST",
        20,
        1..=1_000_000_000,
    );
    let auth_failures = l.number(
        &up.auth_failure_limit,
        "auth_failure_limit",
        "SERIN_AUTH_FAILURE_LIMIT",
        30,
        0..=1_000_000,
    );
    let max_active = l.number(
        &up.max_active_deployments,
        "max_active_deployments",
        "SERIN_MAX_ACTIVE_DEPLOYMENTS",
        50,
        0..=1_000_000,
    );
    let default_queue = l
        .get(&up.default_queue, "default_queue")
        .unwrap_or_else(|| "default".into());
    if default_queue.trim().is_empty() || default_queue.contains(':') {
        l.errors.push(format!("default_queue: `{default_queue}` must be a non-empty name without ':' (SERIN_DEFAULT_QUEUE)"));
    }
    let default_tenant = l
        .get(&up.default_tenant, "default_tenant")
        .filter(|t| !t.is_empty());
    let worker_timeout = duration_setting(&mut l, &up.worker_timeout, "worker_timeout", 60);
    let controller_interval =
        duration_setting(&mut l, &up.controller_interval, "controller_interval", 1);
    let session_ttl = duration_setting(&mut l, &up.session_ttl, "session_ttl", 12 * 3600);
    let header_timeout = duration_setting(&mut l, &up.header_timeout, "header_timeout", 10);
    let body_timeout = duration_setting(&mut l, &up.body_timeout, "body_timeout", 30);
    let connection_limit = l.number(
        &up.connection_limit,
        "connection_limit",
        "SERIN_CONNECTION_LIMIT",
        default_connection_limit(),
        1..=1_000_000,
    );
    let mut git_repositories = std::collections::BTreeMap::new();
    for entry in &l.list(&up.git_repositories, "git_repositories") {
        match entry.split_once('=') {
            Some((product, path))
                if serin_core::release::product::validate_name("product", product).is_ok()
                    && !path.is_empty() =>
            {
                git_repositories.insert(product.to_string(), std::path::PathBuf::from(path));
            }
            _ => l.errors.push(format!(
                "git_repository: `{entry}` is not PRODUCT=PATH (SERIN_GIT_REPOSITORIES)"
            )),
        }
    }
    let mut check_targets = std::collections::BTreeMap::new();
    for entry in &l.list(&up.check_targets, "check_targets") {
        match entry.split_once('=') {
            Some((name, url))
                if serin_core::judge::health::is_target_name(name)
                    && ["postgres://", "postgresql://", "redis://", "nats://"]
                        .iter()
                        .any(|s| url.starts_with(s)) =>
            {
                check_targets.insert(name.to_string(), url.to_string());
            }
            // The URL may hold a password: never echo it.
            _ => l.errors.push(format!(
                "check_target: `{}=…` is not NAME=URL (postgres://, redis:// or nats://) with NAME of a-z, 0-9, _ and - (SERIN_CHECK_TARGETS)",
                entry.split_once('=').map_or(entry.as_str(), |(n, _)| n)
            )),
        }
    }
    let mut engines = serin_server::engines::Engines::default();
    for entry in &l.list(&up.traffic_engines, "traffic_engines") {
        if let Err(e) = engines.add_spec(entry) {
            l.errors
                .push(format!("traffic_engine: {e} (SERIN_TRAFFIC_ENGINES)"));
        }
    }
    let mut rules = |flag: &[String], key: &str| -> Vec<serin_server::outbound::policy::Rule> {
        let env = format!("SERIN_{}", key.to_uppercase());
        let mut out = Vec::new();
        for entry in l.list(flag, key) {
            match entry.parse() {
                Ok(r) => out.push(r),
                Err(e) => l.errors.push(format!("{key}: {e} ({env})")),
            }
        }
        out
    };
    let outbound = serin_server::outbound::Policy::new(
        rules(&up.outbound_allow, "outbound_allow"),
        rules(&up.outbound_deny, "outbound_deny"),
    );
    let mut trusted_proxies = Vec::new();
    for entry in l.list(&up.trusted_proxies, "trusted_proxies") {
        match entry
            .parse::<ipnet::IpNet>()
            .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        {
            Ok(n) => trusted_proxies.push(n.trunc()),
            Err(_) => l.errors.push(format!(
                "trusted_proxies: `{entry}` is not a CIDR or an address (SERIN_TRUSTED_PROXIES)"
            )),
        }
    }
    // The key itself only from the environment or a file: never a flag, which
    // `ps` shows, and never echoed in an error.
    let key_file = up
        .secret_key_file
        .clone()
        .or_else(|| l.file.get("secret_key_file").map(std::path::PathBuf::from));
    let key_text = match (&key_file, std::env::var("SERIN_SECRET_KEY")) {
        (Some(path), _) => match std::fs::read_to_string(path) {
            Ok(t) => Some(t),
            Err(e) => {
                l.errors.push(format!(
                    "secret_key_file: cannot read {}: {e}",
                    path.display()
                ));
                None
            }
        },
        (None, Ok(t)) if !t.trim().is_empty() => Some(t),
        _ => None,
    };
    let sealer = match key_text.map(|t| serin_server::secrets::Sealer::from_hex(&t)) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            l.errors.push(format!(
                "secret key: {e} (SERIN_SECRET_KEY or --secret-key-file)"
            ));
            None
        }
        None => None,
    };
    let webhook_secret = l
        .get(&up.webhook_secret, "webhook_secret")
        .filter(|s| !s.is_empty());
    let replica_name = l
        .get(&up.name, "name")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(serin_server::config::default_replica_name);
    let allow_hook_commands = match l
        .get(&up.allow_hook_commands, "allow_hook_commands")
        .as_deref()
    {
        None | Some("false" | "0" | "no") => false,
        Some("true" | "1" | "yes") => true,
        Some(other) => {
            l.errors.push(format!(
                "allow_hook_commands: `{other}` is not true or false (SERIN_ALLOW_HOOK_COMMANDS)"
            ));
            false
        }
    };
    match (listen, log_format) {
        (Some(listen), Some(log_format)) if l.errors.is_empty() => Ok(Settings {
            listen,
            proxy_listen,
            database_url,
            max_connections,
            log_format,
            log_level,
            limits: serin_server::Limits {
                header_timeout,
                max_connections: connection_limit as usize,
            },
            server: ServerConfig {
                max_live_deployments: u32::try_from(max_active).ok().filter(|n| *n > 0),
                rate_limit: RateLimit {
                    per_minute: per_minute as u32,
                    burst: burst as u32,
                },
                auth_failures_per_minute: auth_failures as u32,
                default_queue,
                default_tenant,
                worker_timeout,
                controller_interval,
                allow_hook_commands,
                webhook_secret,
                session_ttl,
                git_repositories,
                check_targets,
                outbound,
                trusted_proxies,
                body_timeout,
                sealer,
                replica_name,
                lease: serin_server::leadership::LeaseTerms::default(),
                engines,
            },
        }),
        _ => Err(l.errors),
    }
}

/// The connection cap when none is set: what the process may open (its hard
/// file-descriptor limit, to which `serin up` raises its soft one) less 256
/// for the database, outbound calls and the proxy, at most 16,384 and at
/// least 64. Thousands of connections that send nothing then wait out the
/// header timeout without making anyone else queue.
pub fn default_connection_limit() -> u64 {
    let hard = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(_, hard)| hard);
    hard.saturating_sub(256).clamp(64, 16_384)
}

/// A duration setting of at least 1s (`default_secs` when unset).
fn duration_setting(
    l: &mut Layers,
    flag: &Option<String>,
    key: &str,
    default_secs: u64,
) -> Duration {
    let env = format!("SERIN_{}", key.to_uppercase());
    let text = l
        .get(flag, key)
        .unwrap_or_else(|| format!("{default_secs}s"));
    match text.parse::<GoDuration>() {
        Ok(d) if d >= GoDuration::from_secs(1) => d.to_std(),
        Ok(_) => {
            l.errors.push(format!("{key}: must be at least 1s ({env})"));
            Duration::from_secs(default_secs)
        }
        Err(e) => {
            l.errors.push(format!("{key}: {e} ({env})"));
            Duration::from_secs(default_secs)
        }
    }
}

/// The database settings alone, for `serin migrate`.
pub fn db_settings(args: &DbArgs) -> Result<(String, usize), Vec<String>> {
    let mut l = Layers::new(args.config.as_deref());
    let (url, max) = db(args, &mut l);
    if l.errors.is_empty() {
        Ok((url, max))
    } else {
        Err(l.errors)
    }
}

fn db(args: &DbArgs, l: &mut Layers) -> (String, usize) {
    let url = l
        .get(&args.database_url, "database_url")
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
    if url.trim().is_empty() {
        l.errors.push("database_url: is empty; use sqlite://PATH or postgres://USER@HOST:PORT/DB (SERIN_DATABASE_URL)".into());
    } else if let Err(e) = serin_store::check_url(&url) {
        l.errors.push(format!(
            "database_url: `{}`: {e} (SERIN_DATABASE_URL)",
            serin_store::redact_url(&url)
        ));
    }
    let max = l.number(
        &args.max_connections,
        "max_connections",
        "SERIN_MAX_CONNECTIONS",
        8,
        1..=256,
    );
    (url, max as usize)
}

/// Reads the YAML file into text values; every bad key or value is pushed to `errors`.
fn load_file(path: &Path, errors: &mut Vec<String>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let shown = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(format!("config: cannot read {shown}: {e}"));
            return out;
        }
    };
    if text.trim().is_empty() {
        return out;
    }
    let map = match serde_norway::from_str::<serde_norway::Value>(&text) {
        Ok(serde_norway::Value::Mapping(m)) => m,
        Ok(_) => {
            errors.push(format!(
                "config: {shown} must be a mapping of settings, such as `listen: 127.0.0.1:8080`"
            ));
            return out;
        }
        Err(e) => {
            errors.push(format!("config: {shown}: {e}"));
            return out;
        }
    };
    for (key, value) in map {
        let Some(key) = key.as_str().map(str::to_string) else {
            errors.push(format!("config: {shown}: setting names must be text"));
            continue;
        };
        if !FILE_KEYS.contains(&key.as_str()) {
            errors.push(format!(
                "config: {shown}: unknown setting `{key}`; known: {}",
                FILE_KEYS.join(", ")
            ));
            continue;
        }
        match value {
            serde_norway::Value::String(s) => {
                out.insert(key, s);
            }
            serde_norway::Value::Number(n) => {
                out.insert(key, n.to_string());
            }
            serde_norway::Value::Sequence(items)
                if items
                    .iter()
                    .all(|i| matches!(i, serde_norway::Value::String(_))) =>
            {
                let items: Vec<&str> = items.iter().filter_map(|i| i.as_str()).collect();
                out.insert(key, items.join(","));
            }
            _ => errors.push(format!(
                "config: {shown}: `{key}` must be a text, a number or a list of texts"
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up() -> UpArgs {
        UpArgs {
            listen: None,
            db: DbArgs {
                database_url: None,
                config: None,
                max_connections: None,
            },
            log_format: None,
            log_level: None,
            rate_limit: None,
            rate_burst: None,
            auth_failure_limit: None,
            max_active_deployments: None,
            default_queue: None,
            default_tenant: None,
            worker_timeout: None,
            controller_interval: None,
            allow_hook_commands: None,
            webhook_secret: None,
            name: None,
            proxy_listen: None,
            session_ttl: None,
            header_timeout: None,
            connection_limit: None,
            git_repositories: Vec::new(),
            check_targets: Vec::new(),
            traffic_engines: Vec::new(),
            outbound_allow: Vec::new(),
            outbound_deny: Vec::new(),
            trusted_proxies: Vec::new(),
            body_timeout: None,
            secret_key_file: None,
        }
    }

    #[test]
    fn proxy_listen_is_optional_and_checked() {
        assert_eq!(settings(&up()).unwrap().proxy_listen, None);
        let mut a = up();
        a.proxy_listen = Some("127.0.0.1:8000".into());
        assert_eq!(settings(&a).unwrap().proxy_listen.unwrap().port(), 8000);
        a.proxy_listen = Some("here".into());
        let errors = settings(&a).unwrap_err();
        assert!(
            errors.iter().any(|e| e.contains("proxy_listen: `here`")),
            "{errors:?}"
        );
    }

    #[test]
    fn traffic_engines_are_named_with_their_backends() {
        let mut a = up();
        a.traffic_engines = vec![
            "edge=haproxy:unix:/run/haproxy/admin.sock?backends=app+api".into(),
            "web=nginx:/etc/nginx/serin?probe=127.0.0.1:8099&backends=app".into(),
        ];
        let s = settings(&a).unwrap();
        assert_eq!(s.server.engines.names(), ["edge", "web"]);
        for bad in [
            "edge=traefik:x",
            "edge=haproxy:unix:/x?backends=a/b",
            "web=nginx:/etc/nginx/serin?probe=127.0.0.1:8099",
            "no equals",
        ] {
            a.traffic_engines = vec![bad.into()];
            let errors = settings(&a).unwrap_err();
            assert!(
                errors.iter().any(|e| e.starts_with("traffic_engine: ")),
                "{bad}: {errors:?}"
            );
        }
    }

    #[test]
    fn check_targets_are_named_urls_whose_secrets_are_never_echoed() {
        let mut a = up();
        a.check_targets = vec!["main=postgres://monitor:pw@db:5432/app".into()];
        let s = settings(&a).unwrap();
        assert_eq!(
            s.server.check_targets.get("main").map(String::as_str),
            Some("postgres://monitor:pw@db:5432/app")
        );
        a.check_targets = vec!["Main=mysql://root:hunter2@db".into()];
        let errors = settings(&a).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("check_target: `Main=…`")),
            "{errors:?}"
        );
        assert!(!errors.iter().any(|e| e.contains("hunter2")), "{errors:?}");
    }

    #[test]
    fn defaults() {
        let s = settings(&up()).unwrap();
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.database_url, DEFAULT_DATABASE_URL);
        assert_eq!((s.max_connections, s.log_format), (8, LogFormat::Text));
        assert_eq!(
            s.server.rate_limit,
            RateLimit {
                per_minute: 100,
                burst: 20
            }
        );
        assert_eq!(
            (s.server.max_live_deployments, s.server.worker_timeout),
            (Some(50), Duration::from_secs(60))
        );
    }

    #[test]
    fn every_bad_setting_is_reported() {
        let mut a = up();
        a.listen = Some("nowhere".into());
        a.db.database_url = Some("mysql://x".into());
        a.db.max_connections = Some("lots".into());
        a.log_format = Some("xml".into());
        a.log_level = Some("[".into());
        a.rate_limit = Some("-1".into());
        a.worker_timeout = Some("soon".into());
        let errs = settings(&a).unwrap_err();
        assert_eq!(errs.len(), 7, "{errs:#?}");
        a = up();
        a.db.database_url = Some("postgres://u@h:notaport/db".into());
        assert!(settings(&a).unwrap_err()[0].starts_with("database_url:"));
    }

    #[test]
    fn file_under_flags_and_checked_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serin.yaml");
        std::fs::write(&path, "listen: 127.0.0.1:9999\ndatabase_url: sqlite://from-file.db\nmax_connections: 4\nrate_limit: 0\n").unwrap();
        let mut a = up();
        a.db.config = Some(path.clone());
        a.db.database_url = Some("sqlite://flag.db".into());
        let s = settings(&a).unwrap();
        assert_eq!(
            (
                s.listen.port(),
                s.max_connections,
                s.server.rate_limit.per_minute
            ),
            (9999, 4, 0)
        );
        assert_eq!(s.database_url, "sqlite://flag.db", "a flag beats the file");
        std::fs::write(
            &path,
            "listen: nowhere\nlisten_port: 3\nmax_connections: [1]\nlog_format: 7\n",
        )
        .unwrap();
        let errs = settings(&a).unwrap_err();
        assert_eq!(errs.len(), 4, "each bad key on its own: {errs:#?}");
        assert!(
            errs.iter()
                .any(|e| e.contains("unknown setting `listen_port`")),
            "{errs:?}"
        );
    }
}
