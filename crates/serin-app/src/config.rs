//! The settings of a control-plane process.

/// Requests a key (or a login session, three times this) may make.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per minute; 0 turns limiting off.
    pub per_minute: u32,
    /// Requests allowed at once.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_minute: 100,
            burst: 20,
        }
    }
}

/// Settings of one control-plane process (flags, environment, config file).
#[derive(Debug, Clone)]
pub struct Config {
    /// Most live deployments per tenant (`CONCURRENCY_LIMIT` beyond); `None`: no limit.
    pub max_live_deployments: Option<u32>,
    /// Per-key rate limits.
    pub rate_limit: RateLimit,
    /// Failed authentications allowed per client address (a burst of a third of
    /// the per-minute figure); beyond, 429 without a database lookup. 0: off.
    pub auth_failures_per_minute: u32,
    /// The target of the operator endpoints (`/admin/canary/*`).
    pub default_queue: String,
    /// Its tenant.
    pub default_tenant: Option<String>,
    /// A worker silent for this long becomes `unreachable`.
    pub worker_timeout: std::time::Duration,
    /// How often the rollout controller ticks.
    pub controller_interval: std::time::Duration,
    /// Whether rollout hooks may run commands on this machine.
    pub allow_hook_commands: bool,
    /// The secret that signs JSON notifications (none: unsigned).
    pub webhook_secret: Option<String>,
    /// How long a login session lasts.
    pub session_ttl: std::time::Duration,
    /// Products' git repositories on this machine, for release notes.
    pub git_repositories: std::collections::BTreeMap<String, std::path::PathBuf>,
    /// Databases `postgres` health checks may query, by name (URLs with their
    /// credentials: never returned by the API).
    pub check_targets: std::collections::BTreeMap<String, String>,
    /// Where the server may connect on a plan's behalf.
    pub outbound: crate::outbound::Policy,
    /// Proxies whose `X-Forwarded-For` names the client (see `peer`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long a request's body may take to arrive, from the end of its headers.
    pub body_timeout: std::time::Duration,
    /// Seals secrets with the operator's key; none: the secrets API refuses.
    pub sealer: Option<crate::secrets::Sealer>,
    /// This replica's name in the cluster's list (`--name`).
    pub replica_name: String,
    /// The leader lease's term and renewal (see `leadership`).
    pub lease: crate::leadership::LeaseTerms,
    /// The external traffic engines deployments may name (`--traffic-engine`).
    pub engines: crate::engines::Engines,
}

/// A replica's default name: the host's, and the process id.
pub fn default_replica_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "serin".to_string());
    format!("{host}:{}", std::process::id())
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_live_deployments: Some(50),
            rate_limit: RateLimit::default(),
            auth_failures_per_minute: 30,
            default_queue: "default".into(),
            default_tenant: None,
            worker_timeout: std::time::Duration::from_secs(60),
            controller_interval: std::time::Duration::from_secs(1),
            allow_hook_commands: false,
            webhook_secret: None,
            session_ttl: std::time::Duration::from_secs(12 * 3600),
            git_repositories: std::collections::BTreeMap::new(),
            check_targets: std::collections::BTreeMap::new(),
            outbound: crate::outbound::Policy::default(),
            trusted_proxies: Vec::new(),
            body_timeout: std::time::Duration::from_secs(30),
            sealer: None,
            replica_name: default_replica_name(),
            lease: crate::leadership::LeaseTerms::default(),
            engines: crate::engines::Engines::default(),
        }
    }
}
