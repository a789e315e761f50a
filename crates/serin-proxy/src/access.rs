//! The proxy's access log: one JSON line per request — when it was answered,
//! the deployment and its route, the lane and upstream it went to, the
//! status the client got and how long the upstream took.
//!
//! Writing never slows a request: [`AccessLog::record`] hands the line to a
//! bounded queue and a thread of its own writes it (buffered, flushed
//! whenever the queue runs empty). When the disk can't keep up and the queue
//! is full, the line is dropped and counted
//! (`serin_proxy_access_log_dropped_total`), never waited for.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};

/// Lines waiting for the writer before new ones are dropped.
const QUEUE: usize = 65_536;

/// One request, as its line says it.
#[derive(Debug, serde::Serialize)]
pub struct Entry<'a> {
    /// When it was answered (RFC 3339, milliseconds, UTC).
    pub time: String,
    /// The deployment's route (`host/prefix`, `*` for any host).
    pub route: &'a str,
    /// The deployment's name.
    pub deployment: &'a str,
    /// Its id.
    pub deployment_id: &'a str,
    /// `stable` or `canary`.
    pub lane: &'a str,
    /// The upstream's `host:port` (empty when the lane had none).
    pub upstream: &'a str,
    /// The status the client got.
    pub status: u16,
    /// Milliseconds from sending the request upstream to its response headers.
    pub duration_ms: f64,
}

/// A JSON-lines access log written by a thread of its own.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

impl AccessLog {
    /// Appends to `out` (a file opened for appending, or stdout).
    pub fn new(out: Box<dyn Write + Send>) -> std::io::Result<AccessLog> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(QUEUE);
        std::thread::Builder::new()
            .name("serin-access-log".into())
            .spawn(move || {
                let mut w = std::io::BufWriter::new(out);
                while let Ok(line) = rx.recv() {
                    let mut ok = w.write_all(line.as_bytes()).is_ok();
                    // Everything queued now, then one flush.
                    while let Ok(line) = rx.try_recv() {
                        ok &= w.write_all(line.as_bytes()).is_ok();
                    }
                    ok &= w.flush().is_ok();
                    if !ok {
                        tracing::warn!("the access log could not be written");
                    }
                }
            })?;
        Ok(AccessLog {
            tx,
            dropped: Arc::default(),
        })
    }

    /// Opens `path` for appending (`-`: standard output).
    pub fn open(path: &std::path::Path) -> std::io::Result<AccessLog> {
        if path == std::path::Path::new("-") {
            return AccessLog::new(Box::new(std::io::stdout()));
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        AccessLog::new(Box::new(file))
    }

    /// Queues one line; drops and counts it when the queue is full.
    pub fn record(&self, entry: &Entry<'_>) {
        let Ok(mut line) = serde_json::to_string(entry) else {
            return;
        };
        line.push('\n');
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Now, as the access log writes it.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_json_line_per_request() {
        let dir = std::env::temp_dir().join(format!("serin-access-{}", std::process::id()));
        let log = AccessLog::open(&dir).unwrap();
        log.record(&Entry {
            time: now(),
            route: "shop.example/api",
            deployment: "checkout",
            deployment_id: "canary_1",
            lane: "canary",
            upstream: "10.0.0.3:80",
            status: 502,
            duration_ms: 1.25,
        });
        let t0 = std::time::Instant::now();
        let text = loop {
            let text = std::fs::read_to_string(&dir).unwrap_or_default();
            if text.ends_with('\n') || t0.elapsed() > std::time::Duration::from_secs(5) {
                break text;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let _ = std::fs::remove_file(&dir);
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["lane"], "canary");
        assert_eq!(v["upstream"], "10.0.0.3:80");
        assert_eq!(v["status"], 502);
        assert_eq!(v["route"], "shop.example/api");
        assert!(v["time"].as_str().unwrap().ends_with('Z'), "{v}");
        assert_eq!(log.dropped(), 0);
    }
}
