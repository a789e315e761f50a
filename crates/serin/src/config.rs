//! Settings of `serin up` and `serin migrate`: flags and `SERIN_*` variables (clap),
//! then an optional YAML file, then defaults. Every bad setting is collected and
//! reported together before exit, so one run shows everything to fix.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use crate::cli::{DbArgs, UpArgs};

/// The default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://serin.db";
/// The default API address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The config file's keys; unknown keys are errors (a typo must not be ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database_url: Option<String>,
    max_connections: Option<usize>,
    log_format: Option<String>,
    log_level: Option<String>,
}

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
    let file = match &up.db.config {
        Some(path) => load_file(path).unwrap_or_else(|e| {
            errors.push(e);
            FileConfig::default()
        }),
        None => FileConfig::default(),
    };
    let listen_text = up
        .listen
        .clone()
        .or(file.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    let listen = listen_text.parse::<SocketAddr>().map_err(|_| {
        errors.push(format!(
            "listen: `{listen_text}` is not an address; use IP:PORT such as 127.0.0.1:8080 or 0.0.0.0:8080 (SERIN_LISTEN)"
        ))
    });
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
        errors.push(format!("log_level: `{log_level}` is not a log filter ({e}); try `info` or `serin_server=debug,info` (SERIN_LOG)"));
    }
    match (listen, log_format, errors.is_empty()) {
        (Ok(listen), Some(log_format), true) => Ok(Settings {
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
    let file = match &db.config {
        Some(path) => load_file(path).unwrap_or_else(|e| {
            errors.push(e);
            FileConfig::default()
        }),
        None => FileConfig::default(),
    };
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
    let ok_scheme = ["sqlite:", "postgres://", "postgresql://"]
        .iter()
        .any(|p| url.starts_with(p))
        || !url.contains("://");
    if url.trim().is_empty() {
        errors.push(
            "database_url: is empty; use sqlite://PATH or postgres://… (SERIN_DATABASE_URL)".into(),
        );
    } else if !ok_scheme {
        errors.push(format!(
            "database_url: `{}` has an unsupported scheme; use sqlite://PATH or postgres://USER@HOST:PORT/DB (SERIN_DATABASE_URL)",
            serin_store::redact_url(&url)
        ));
    }
    url
}

fn max_connections(db: &DbArgs, from_file: Option<usize>, errors: &mut Vec<String>) -> usize {
    let n = db.max_connections.or(from_file).unwrap_or(8);
    if !(1..=256).contains(&n) {
        errors.push(format!(
            "max_connections: {n} is out of range; use 1 to 256 (SERIN_MAX_CONNECTIONS)"
        ));
    }
    n
}

fn load_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("config: cannot read {}: {e}", path.display()))?;
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    serde_yaml::from_str(&text).map_err(|e| format!("config: {}: {e}", path.display()))
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
        assert_eq!(s.log_format, LogFormat::Text);
    }

    #[test]
    fn every_bad_setting_is_reported() {
        let mut a = up();
        a.listen = Some("nowhere".into());
        a.db.database_url = Some("mysql://x".into());
        a.db.max_connections = Some(0);
        a.log_format = Some("xml".into());
        a.log_level = Some("[".into());
        let errs = settings(&a).unwrap_err();
        assert_eq!(errs.len(), 5, "{errs:#?}");
    }

    #[test]
    fn file_under_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serin.yaml");
        std::fs::write(
            &path,
            "listen: 127.0.0.1:9999\ndatabase_url: sqlite://from-file.db\n",
        )
        .unwrap();
        let mut a = up();
        a.db.config = Some(path.clone());
        a.db.database_url = Some("sqlite://flag.db".into());
        let s = settings(&a).unwrap();
        assert_eq!(s.listen.port(), 9999);
        assert_eq!(s.database_url, "sqlite://flag.db");
        std::fs::write(&path, "listen: 127.0.0.1:9999\nlisten_port: 3\n").unwrap();
        let errs = settings(&a).unwrap_err();
        assert!(errs[0].contains("unknown field"), "{errs:?}");
    }
}
