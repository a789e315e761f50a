//! HAProxy through its runtime API (the admin socket of `stats socket …
//! level admin`): weights are set with `set server BACKEND/SERVER weight N`
//! and read back with `get weight BACKEND/SERVER`, with no reload. All of a
//! change's commands go in one line (`;`-separated) on one connection, so
//! HAProxy applies them back to back; it answers each command with its
//! output and an empty line, then closes.
//!
//! The names in the commands are the deployment's, checked by
//! `EngineTarget::validate` to hold only letters, digits, `.`, `_` and `-`:
//! no name can end a command or start another.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serin_core::traffic::engine::{EngineTarget, share};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Address, EngineError, TrafficEngine};

/// How long one command may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Most bytes read from one answer.
const MAX_ANSWER: u64 = 64 * 1024;

/// One HAProxy instance's runtime API.
#[derive(Debug, Clone)]
pub struct Haproxy {
    name: String,
    address: Address,
}

impl Haproxy {
    /// The runtime API at `address`, known as `name`.
    pub fn new(name: &str, address: Address) -> Self {
        Haproxy {
            name: name.to_string(),
            address,
        }
    }

    fn unreachable(&self, why: impl std::fmt::Display) -> EngineError {
        EngineError::Unreachable {
            engine: self.name.clone(),
            why: why.to_string(),
        }
    }

    /// Sends one line of commands; the answer of each, in order.
    async fn run(&self, line: &str) -> Result<Vec<String>, EngineError> {
        let talk = async {
            let mut answer = Vec::new();
            match &self.address {
                Address::Unix(path) => {
                    let mut s = tokio::net::UnixStream::connect(path).await?;
                    s.write_all(format!("{line}\n").as_bytes()).await?;
                    s.take(MAX_ANSWER).read_to_end(&mut answer).await?;
                }
                Address::Tcp(addr) => {
                    let mut s = tokio::net::TcpStream::connect(addr).await?;
                    s.write_all(format!("{line}\n").as_bytes()).await?;
                    s.take(MAX_ANSWER).read_to_end(&mut answer).await?;
                }
            }
            Ok::<_, std::io::Error>(answer)
        };
        let answer = tokio::time::timeout(TIMEOUT, talk)
            .await
            .map_err(|_| self.unreachable(format!("no answer within {TIMEOUT:?}")))?
            .map_err(|e| self.unreachable(e))?;
        let text = String::from_utf8_lossy(&answer);
        Ok(text.split("\n\n").map(|a| a.trim().to_string()).collect())
    }

    fn servers(target: &EngineTarget) -> impl Iterator<Item = (&str, bool)> {
        target
            .stable
            .iter()
            .map(|s| (s.as_str(), false))
            .chain(target.canary.iter().map(|s| (s.as_str(), true)))
    }
}

impl TrafficEngine for Haproxy {
    fn apply<'a>(
        &'a self,
        target: &'a EngineTarget,
        percent: u8,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        async move {
            let (ws, wc) = target.weights(percent);
            let line = Self::servers(target)
                .map(|(s, canary)| {
                    let w = if canary { wc } else { ws };
                    format!("set server {}/{s} weight {w}", target.backend)
                })
                .collect::<Vec<_>>()
                .join("; ");
            let answers = self.run(&line).await?;
            // Success is an empty answer to every command.
            match answers.iter().find(|a| !a.is_empty()) {
                None => Ok(()),
                Some(said) => Err(EngineError::Refused {
                    engine: self.name.clone(),
                    said: said.clone(),
                }),
            }
        }
        .boxed()
    }

    fn read_back<'a>(
        &'a self,
        target: &'a EngineTarget,
    ) -> BoxFuture<'a, Result<Option<u8>, EngineError>> {
        async move {
            let servers: Vec<(&str, bool)> = Self::servers(target).collect();
            let line = servers
                .iter()
                .map(|(s, _)| format!("get weight {}/{s}", target.backend))
                .collect::<Vec<_>>()
                .join("; ");
            let answers = self.run(&line).await?;
            let (mut stable, mut canary) = (0u32, 0u32);
            for (i, (_, is_canary)) in servers.iter().enumerate() {
                // "9 (initial 100)": the weight in effect first.
                let said = answers.get(i).map(String::as_str).unwrap_or("no answer");
                let weight: u32 = said
                    .split_whitespace()
                    .next()
                    .and_then(|w| w.parse().ok())
                    .ok_or_else(|| EngineError::Refused {
                        engine: self.name.clone(),
                        said: said.to_string(),
                    })?;
                if *is_canary {
                    canary += weight;
                } else {
                    stable += weight;
                }
            }
            Ok(share(stable, canary))
        }
        .boxed()
    }
}
