//! Traffic engines: the traffic layers a team already runs, driven by the
//! controller for the deployments that name one (`serin_core::traffic::engine`).
//!
//! Each kind of engine is one module behind [`TrafficEngine`]: put a canary
//! share in effect, and read back the share that *is* in effect. The
//! controller reads back every tick, applies when the two differ, and the
//! rollout's weight step is reached only once the read-back says so — a
//! weight Serin only believes it set never counts.
//!
//! The operator names the engines when starting the server
//! (`--traffic-engine NAME=KIND:ADDRESS`): a request can only choose among
//! them, never say where to connect.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serin_core::canary::Deployment;
use serin_core::traffic::engine::EngineTarget;

use crate::App;

pub mod haproxy;

/// What went wrong talking to an engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// It could not be reached, or it hung up.
    #[error("cannot reach {engine}: {why}")]
    Unreachable {
        /// The engine's name.
        engine: String,
        /// Why.
        why: String,
    },
    /// It answered with an error.
    #[error("{engine} refused: {said}")]
    Refused {
        /// The engine's name.
        engine: String,
        /// What it said.
        said: String,
    },
    /// The deployment names an engine this server doesn't have.
    #[error("no traffic engine named {0} on this server")]
    Unknown(String),
}

/// One kind of external engine.
pub trait TrafficEngine: Send + Sync + std::fmt::Debug {
    /// Puts the canary share `percent` in effect for `target`.
    fn apply<'a>(
        &'a self,
        target: &'a EngineTarget,
        percent: u8,
    ) -> BoxFuture<'a, Result<(), EngineError>>;

    /// The canary share in effect for `target` (`None`: every server's weight is 0).
    fn read_back<'a>(
        &'a self,
        target: &'a EngineTarget,
    ) -> BoxFuture<'a, Result<Option<u8>, EngineError>>;
}

/// Where an engine listens: `unix:/path` or `tcp:host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A Unix socket.
    Unix(std::path::PathBuf),
    /// A TCP address.
    Tcp(String),
}

impl std::str::FromStr for Address {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err("unix: needs a socket path".into());
            }
            Ok(Address::Unix(p.into()))
        } else if let Some(a) = s.strip_prefix("tcp:") {
            if !a.contains(':') {
                return Err("tcp: needs host:port".into());
            }
            Ok(Address::Tcp(a.into()))
        } else {
            Err(format!("{s}: an address is unix:/path or tcp:host:port"))
        }
    }
}

/// The engines this server drives, by name.
#[derive(Debug, Clone, Default)]
pub struct Engines(BTreeMap<String, Arc<dyn TrafficEngine>>);

impl Engines {
    /// Parses `NAME=KIND:ADDRESS` (kinds: `haproxy`).
    pub fn add_spec(&mut self, spec: &str) -> Result<(), String> {
        let (name, rest) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec}: a traffic engine is NAME=KIND:ADDRESS"))?;
        serin_core::validate::validate_name("traffic engine", name).map_err(|e| e.to_string())?;
        let (kind, address) = rest
            .split_once(':')
            .ok_or_else(|| format!("{spec}: a traffic engine is NAME=KIND:ADDRESS"))?;
        let engine: Arc<dyn TrafficEngine> = match kind {
            "haproxy" => Arc::new(haproxy::Haproxy::new(name, address.parse()?)),
            other => return Err(format!("{other}: the traffic engines are: haproxy")),
        };
        if self.0.insert(name.to_string(), engine).is_some() {
            return Err(format!("traffic engine {name} is named twice"));
        }
        Ok(())
    }

    /// The engine a deployment names.
    pub fn get(&self, name: &str) -> Result<&Arc<dyn TrafficEngine>, EngineError> {
        self.0
            .get(name)
            .ok_or_else(|| EngineError::Unknown(name.to_string()))
    }

    /// Names of the engines, for messages.
    pub fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Puts a deployment's canary share in effect on its engine, in the
/// background: after it starts, after a change by hand, and after it ends
/// (promoted: 100%, rolled back: 0%). A live rollout's share is also read
/// back and put right every tick by the leader's controller.
pub fn follow(app: &App, d: &Deployment) {
    let Some(target) = d.engine.clone() else {
        return;
    };
    let (engines, percent, id) = (app.config.engines.clone(), d.current_percent, d.id.clone());
    tokio::spawn(async move {
        let done = match engines.get(&target.engine) {
            Ok(engine) => engine.apply(&target, percent).await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            tracing::warn!(deployment = %id, error = %e, "cannot put a deployment's share in effect");
        }
    });
}
