//! Settings of `serin up` and `serin migrate`: flags and `SERIN_*` variables (clap),
//! then an optional YAML file, then defaults. Every bad setting is collected and
//! reported together before exit, so one run shows everything to fix: values are
//! taken as text and parsed here (not by clap, which would stop at the first), and
//! each key of the file is checked on its own.

use std::net::SocketAddr;
use std::path::Path;

use crate::cli::{DbArgs, UpArgs};

/// The default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://serin.db";
/// The default API address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// What the config file holds, as text; unknown keys are errors.
#[derive(Debug, Default)]
struct FileConfig {
    listen: Option<String>,
    database_url: Option<String>,
    max_connections: Option<String>,
    log_format: Option<String>,
    log_level: Option<String>,
}

const FILE_KEYS: &[&str] = &[
    "listen",
    "database_url",
    "max_connections",
    "log_format",
    "log_level",
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
    pub database_url: String,
    pub max_connections: usize,
    pub log_format: LogFormat,
    pub log_level: String,
}

/// Merges and checks everything; `Err` holds one line per problem.
pub fn settings(up: &UpArgs) -> Result<Settings, Vec<String>> {
    let mut errors = Vec::new();
    let file = up
        .db
        .config
        .as_deref()
        .map(|p| load_file(p, &mut errors))
        .unwrap_or_default();
    let listen_text = up
        .listen
        .clone()
        .or(file.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    let listen = listen_text.parse::<SocketAddr>().ok();
    if listen.is_none() {
        errors.push(format!(
            "listen: `{listen_text}` is not an address; use IP:PORT such as 127.0.0.1:8080 or 0.0.0.0:8080 (SERIN_LISTEN)"
        ));
    }
    let database_url = db_url(&up.db, file.database_url, &mut errors);
    let max_connections = max_connections(&up.db, file.max_connections, &mut errors);
    let format_text = up
        .log_format
        .clone()
        .or(file.log_format)
        .unwrap_or_else(|| "text".into());
    let log_format = match format_text.as_str() {
        "text" => Some(LogFormat::Text),
        "json" => Some(LogFormat::Json),
        other => {
            errors.push(format!(
                "log_format: `{other}` is not a format; use `text` or `json` (SERIN_LOG_FORMAT)"
            ));
            None
        }
    };
    let log_level = up
        .log_level
        .clone()
        .or(file.log_level)
        .unwrap_or_else(|| "info".into());
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_level) {
        errors.push(format!(
            "log_level: `{log_level}` is not a log filter ({e}); try `info` or `serin_server=debug,info` (SERIN_LOG)"
        ));
    }
    match (listen, log_format) {
        (Some(listen), Some(log_format)) if errors.is_empty() => Ok(Settings {
            listen,
            database_url,
            max_connections,
            log_format,
            log_level,
        }),
        _ => Err(errors),
    }
}

/// The database settings alone, for `serin migrate`.
pub fn db_settings(db: &DbArgs) -> Result<(String, usize), Vec<String>> {
    let mut errors = Vec::new();
    let file = db
        .config
        .as_deref()
        .map(|p| load_file(p, &mut errors))
        .unwrap_or_default();
    let url = db_url(db, file.database_url, &mut errors);
    let max = max_connections(db, file.max_connections, &mut errors);
    if errors.is_empty() {
        Ok((url, max))
    } else {
        Err(errors)
    }
}

fn db_url(db: &DbArgs, from_file: Option<String>, errors: &mut Vec<String>) -> String {
    let url = db
        .database_url
        .clone()
        .or(from_file)
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
    if url.trim().is_empty() {
        errors.push(
            "database_url: is empty; use sqlite://PATH or postgres://USER@HOST:PORT/DB (SERIN_DATABASE_URL)"
                .into(),
        );
    } else if let Err(e) = serin_store::check_url(&url) {
        errors.push(format!(
            "database_url: `{}`: {e} (SERIN_DATABASE_URL)",
            serin_store::redact_url(&url)
        ));
    }
    url
}

fn max_connections(db: &DbArgs, from_file: Option<String>, errors: &mut Vec<String>) -> usize {
    let text = db
        .max_connections
        .clone()
        .or(from_file)
        .unwrap_or_else(|| "8".into());
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=256).contains(&n) => n,
        _ => {
            errors.push(format!(
                "max_connections: `{text}` is not a number from 1 to 256 (SERIN_MAX_CONNECTIONS)"
            ));
            8
        }
    }
}

/// Reads the YAML file; every bad key or value is pushed to `errors`.
fn load_file(path: &Path, errors: &mut Vec<String>) -> FileConfig {
    let mut config = FileConfig::default();
    let shown = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(format!("config: cannot read {shown}: {e}"));
            return config;
        }
    };
    if text.trim().is_empty() {
        return config;
    }
    let map = match serde_yaml::from_str::<serde_yaml::Value>(&text) {
        Ok(serde_yaml::Value::Mapping(m)) => m,
        Ok(_) => {
            errors.push(format!(
                "config: {shown} must be a mapping of settings, such as `listen: 127.0.0.1:8080`"
            ));
            return config;
        }
        Err(e) => {
            errors.push(format!("config: {shown}: {e}"));
            return config;
        }
    };
    for (key, value) in map {
        let Some(key) = key.as_str().map(str::to_string) else {
            errors.push(format!("config: {shown}: setting names must be text"));
            continue;
        };
        let text = match &value {
            serde_yaml::Value::String(s) => s.clone(),
            serde_yaml::Value::Number(n) => n.to_string(),
            _ => {
                errors.push(format!(
                    "config: {shown}: `{key}` must be a single text or number"
                ));
                continue;
            }
        };
        let slot = match key.as_str() {
            "listen" => &mut config.listen,
            "database_url" => &mut config.database_url,
            "max_connections" => &mut config.max_connections,
            "log_format" => &mut config.log_format,
            "log_level" => &mut config.log_level,
            other => {
                errors.push(format!(
                    "config: {shown}: unknown setting `{other}`; known: {}",
                    FILE_KEYS.join(", ")
                ));
                continue;
            }
        };
        *slot = Some(text);
    }
    config
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
        }
    }

    #[test]
    fn defaults() {
        let s = settings(&up()).unwrap();
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.database_url, DEFAULT_DATABASE_URL);
        assert_eq!((s.max_connections, s.log_format), (8, LogFormat::Text));
    }

    #[test]
    fn every_bad_setting_is_reported() {
        let mut a = up();
        a.listen = Some("nowhere".into());
        a.db.database_url = Some("mysql://x".into());
        a.db.max_connections = Some("lots".into());
        a.log_format = Some("xml".into());
        a.log_level = Some("[".into());
        let errs = settings(&a).unwrap_err();
        assert_eq!(errs.len(), 5, "{errs:#?}");
        a = up();
        a.db.database_url = Some("postgres://u@h:notaport/db".into());
        assert!(settings(&a).unwrap_err()[0].starts_with("database_url:"));
    }

    #[test]
    fn file_under_flags_and_checked_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serin.yaml");
        std::fs::write(
            &path,
            "listen: 127.0.0.1:9999\ndatabase_url: sqlite://from-file.db\nmax_connections: 4\n",
        )
        .unwrap();
        let mut a = up();
        a.db.config = Some(path.clone());
        a.db.database_url = Some("sqlite://flag.db".into());
        let s = settings(&a).unwrap();
        assert_eq!((s.listen.port(), s.max_connections), (9999, 4));
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
