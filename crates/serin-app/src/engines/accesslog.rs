//! nginx's access log, tailed: each request nginx proxied becomes part of its
//! lane's second, with its status and its time, so the judges and the
//! sequential tests read an nginx lane as they read the proxy's — latency
//! included, which no counter of nginx's gives.
//!
//! The operator adds a JSON log format to nginx's `http` block and points an
//! access log at a file the leader can read:
//!
//! ```text
//! log_format serin escape=json '{"msec":$msec,"upstream_addr":"$upstream_addr",'
//!     '"upstream_status":"$upstream_status","request_time":$request_time}';
//! access_log /var/log/nginx/serin.json serin;
//! ```
//!
//! A line belongs to the lane whose server address is its `upstream_addr`
//! (nginx's servers are `host:port`). When nginx tried several servers
//! (`"10.0.0.2:80, 10.0.0.1:80"`, statuses `"502, 200"`), every attempt but
//! the last is a failed connection in its own lane, and the last is the
//! request, with the status and time the client saw. A line without an
//! upstream (nginx answered itself) or with a server no deployment names is
//! skipped.
//!
//! Reading starts at the end of the file (a new leader doesn't judge the
//! past), follows appends, and starts over at the beginning when the file was
//! rotated (another inode, or shorter than what was read). Seconds are those
//! of `$msec`, nginx's own clock; a second is handed over once it is over, and
//! seconds nobody asked for within two minutes are dropped.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serin_core::Lane;
use serin_core::stats::histogram::Histogram;

/// Most bytes read from the log in one go.
const MOST_READ: u64 = 16 * 1024 * 1024;
/// Seconds older than this (behind the newest line) are dropped.
const KEEP_SECONDS: i64 = 120;

/// One server's second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Second {
    /// Requests (and failed attempts).
    pub requests: u64,
    /// Answers with a 5xx status.
    pub errors_5xx: u64,
    /// Attempts nginx gave up on and passed to another server.
    pub errors_connect: u64,
    /// The requests' times (`$request_time`).
    pub latency: Histogram,
}

impl Second {
    fn merge(&mut self, o: &Second) {
        self.requests += o.requests;
        self.errors_5xx += o.errors_5xx;
        self.errors_connect += o.errors_connect;
        self.latency.merge(&o.latency);
    }
}

#[derive(Deserialize)]
struct Line {
    msec: f64,
    #[serde(default)]
    upstream_addr: String,
    #[serde(default)]
    upstream_status: String,
    #[serde(default)]
    request_time: Option<f64>,
}

#[derive(Debug, Default)]
struct Tail {
    /// The file's inode and how far it was read; `None` before the first read.
    at: Option<(u64, u64)>,
    /// The end of a line still being written.
    partial: Vec<u8>,
    /// Per server address, its seconds.
    seconds: HashMap<String, BTreeMap<i64, Second>>,
    newest: i64,
    skipped: u64,
}

/// A tailed access log.
#[derive(Debug, Clone)]
pub struct AccessLog {
    path: PathBuf,
    tail: Arc<Mutex<Tail>>,
}

impl AccessLog {
    /// The log at `path` (read from its end at the first call).
    pub fn new(path: PathBuf) -> Self {
        AccessLog {
            path,
            tail: Arc::default(),
        }
    }

    /// Reads what was appended, then hands over the seconds before `before`
    /// of the servers in `stable` and `canary`: `(lane, second, figures)`.
    pub async fn take(
        &self,
        stable: &[String],
        canary: &[String],
        before: i64,
    ) -> Result<Vec<(Lane, i64, Second)>, String> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.read_new())
            .await
            .map_err(|e| e.to_string())??;
        let mut tail = self.tail.lock().expect("access log lock");
        // Keyed by (second, is the canary's).
        let mut out: BTreeMap<(i64, bool), Second> = BTreeMap::new();
        for (is_canary, servers) in [(false, stable), (true, canary)] {
            for server in servers {
                let Some(seconds) = tail.seconds.get_mut(server) else {
                    continue;
                };
                let later = seconds.split_off(&before);
                for (second, s) in std::mem::replace(seconds, later) {
                    out.entry((second, is_canary)).or_default().merge(&s);
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|((second, is_canary), s)| {
                let lane = if is_canary {
                    Lane::Canary
                } else {
                    Lane::Stable
                };
                (lane, second, s)
            })
            .collect())
    }

    /// Reads the lines appended since the last read.
    fn read_new(&self) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt;
        let why = |e: std::io::Error| format!("{}: {e}", self.path.display());
        let mut file = std::fs::File::open(&self.path).map_err(why)?;
        let meta = file.metadata().map_err(why)?;
        let (inode, len) = (meta.ino(), meta.len());
        let mut tail = self.tail.lock().expect("access log lock");
        let from = match tail.at {
            // The first read: only what comes from now on.
            None => len,
            Some((i, at)) if i == inode && at <= len => at,
            // Rotated, or truncated: the new file from its start.
            Some(_) => {
                tail.partial.clear();
                0
            }
        };
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(from)).map_err(why)?;
        file.take(MOST_READ).read_to_end(&mut bytes).map_err(why)?;
        tail.at = Some((inode, from + bytes.len() as u64));
        let mut text = std::mem::take(&mut tail.partial);
        text.extend_from_slice(&bytes);
        let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        tail.partial = text.split_off(complete);
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if !tail.fold(line) {
                tail.skipped += 1;
            }
        }
        let oldest = tail.newest - KEEP_SECONDS;
        tail.seconds.retain(|_, s| {
            *s = s.split_off(&oldest);
            !s.is_empty()
        });
        Ok(())
    }
}

impl Tail {
    /// Counts one log line; false when it isn't one of ours.
    fn fold(&mut self, raw: &[u8]) -> bool {
        let Ok(line) = serde_json::from_slice::<Line>(raw) else {
            return false;
        };
        if !line.msec.is_finite() || line.msec <= 0.0 {
            return false;
        }
        let second = line.msec.floor() as i64;
        self.newest = self.newest.max(second);
        // Attempts, in order: "a, b" within a group, "a : b" across groups.
        let split = |s: &str| -> Vec<String> {
            s.split([',', ':'])
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        };
        // `host:port` holds a ':', so addresses split on ", " and " : " only.
        let addrs: Vec<String> = line
            .upstream_addr
            .split(", ")
            .flat_map(|g| g.split(" : "))
            .map(str::trim)
            .filter(|a| !a.is_empty() && *a != "-")
            .map(str::to_string)
            .collect();
        let statuses = split(&line.upstream_status);
        let Some((last, tried)) = addrs.split_last() else {
            return false;
        };
        for addr in tried {
            let s = self.at(addr, second);
            s.requests += 1;
            s.errors_connect += 1;
        }
        let status: u16 = statuses
            .get(addrs.len() - 1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let s = self.at(last, second);
        s.requests += 1;
        // No status from the last server: it never answered.
        if status == 0 {
            s.errors_connect += 1;
        } else if status >= 500 {
            s.errors_5xx += 1;
        }
        if let Some(t) = line.request_time.filter(|t| t.is_finite() && *t >= 0.0) {
            s.latency.record_ms(t * 1000.0);
        }
        true
    }

    fn at(&mut self, addr: &str, second: i64) -> &mut Second {
        self.seconds
            .entry(addr.to_string())
            .or_default()
            .entry(second)
            .or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(msec: f64, addr: &str, status: &str, t: f64) -> String {
        format!(
            "{{\"msec\":{msec},\"upstream_addr\":\"{addr}\",\"upstream_status\":\"{status}\",\"request_time\":{t}}}\n"
        )
    }

    #[tokio::test]
    async fn lines_become_lane_seconds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.json");
        std::fs::write(&path, line(99.0, "10.0.0.1:80", "200", 0.001)).unwrap();
        let log = AccessLog::new(path.clone());
        let (s, c) = (
            vec!["10.0.0.1:80".to_string()],
            vec!["10.0.0.2:80".to_string()],
        );
        // The first read starts at the end: the old line isn't judged.
        assert!(log.take(&s, &c, 200).await.unwrap().is_empty());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(line(100.2, "10.0.0.1:80", "200", 0.010).as_bytes())
            .unwrap();
        f.write_all(line(100.5, "10.0.0.2:80", "503", 0.020).as_bytes())
            .unwrap();
        // A retry: the canary refused, stable answered.
        f.write_all(line(100.7, "10.0.0.2:80, 10.0.0.1:80", "502, 200", 0.030).as_bytes())
            .unwrap();
        f.write_all(b"not json\n").unwrap();
        f.write_all(line(101.1, "10.0.0.2:80", "200", 0.040).as_bytes())
            .unwrap();
        // Half a line: kept until its end arrives.
        f.write_all(b"{\"msec\":101.2,").unwrap();
        let got = log.take(&s, &c, 101).await.unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        let (lane, second, st) = &got[0];
        assert_eq!(
            (*lane, *second, st.requests, st.errors_5xx),
            (Lane::Stable, 100, 2, 0)
        );
        assert_eq!(st.latency.count_at_most(u64::MAX), 2);
        let (lane, _, ca) = &got[1];
        assert_eq!(
            (*lane, ca.requests, ca.errors_5xx, ca.errors_connect),
            (Lane::Canary, 2, 1, 1)
        );
        f.write_all(b"\"upstream_addr\":\"10.0.0.2:80\",\"upstream_status\":\"200\"}\n")
            .unwrap();
        let got = log.take(&s, &c, 102).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].0, got[0].1, got[0].2.requests),
            (Lane::Canary, 101, 2)
        );
        // Rotated: the new file is read from its start.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, line(103.0, "10.0.0.1:80", "200", 0.001)).unwrap();
        let got = log.take(&s, &c, 104).await.unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, 103);
    }
}
