//! The command line, declared with clap. Every flag that configures the server also
//! reads a `SERIN_*` environment variable; `serin up --help` lists them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `serin --version`: the version and the git commit built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SERIN_GIT_COMMIT"),
    ")"
);

/// Serin: canary releases in one binary.
#[derive(Debug, Parser)]
#[command(
    name = "serin",
    version = VERSION,
    about,
    max_term_width = 100,
    after_help = "Exit codes: 0 success (a rollout promoted); 1 a rollout rolled back; 2 bad input \
                  (flags, a file, settings); 3 a wait's --timeout passed; 4 the server refused \
                  the call or could not be reached; 141 the output's reader went away (`| head`). \
                  A call the server's rate limit refuses (429 with Retry-After) is sent again \
                  after that wait, up to 30 s per call."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// How a client command reaches the server and prints answers.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The Serin server to talk to.
    #[arg(
        long,
        env = "SERIN_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// API key, sent as `Authorization: Bearer KEY`.
    #[arg(long, env = "SERIN_API_KEY", global = true, hide_env_values = true)]
    pub api_key: Option<String>,
    /// How to print answers.
    #[arg(long, short = 'o', env = "SERIN_OUTPUT", value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
}

/// How to print answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// The server's JSON, for scripts.
    Json,
    /// The same as YAML.
    Yaml,
}

impl Output {
    /// Whether this is data for a program (JSON or YAML) rather than text for people.
    pub fn is_data(self) -> bool {
        matches!(self, Output::Json | Output::Yaml)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane: the HTTP API over an embedded SQLite file or PostgreSQL.
    Up(Box<UpArgs>),
    /// Apply the database migrations this binary embeds, then exit.
    Migrate(DbArgs),
    /// Run a proxy (data plane) that takes its routes from a control plane and
    /// keeps serving them when it is unreachable.
    Proxy(ProxyArgs),
    /// Products: add, list, show.
    #[command(subcommand)]
    Product(ProductCmd),
    /// Releases: add, list, show, latest, approve, release, cancel, rollback.
    #[command(subcommand)]
    Release(ReleaseCmd),
    /// Signals: send one, or a batch from a file or stdin.
    #[command(subcommand)]
    Signal(SignalCmd),
    /// Canary deployments: create, list, get, set-percent, pause, resume, promote, rollback, delete, health, metrics, events, profiles.
    #[command(subcommand)]
    Canary(CanaryCmd),
    /// Workers: list, register, status.
    #[command(subcommand)]
    Worker(WorkerCmd),
    /// API keys (admin): create, list, revoke.
    #[command(subcommand)]
    Apikey(ApiKeyCmd),
    /// Rollouts driven by the controller: start, status, watch, pause, resume, continue, promote, rollback, abort.
    #[command(subcommand)]
    Rollout(RolloutCmd),
    /// Start a rollout from a spec file (a canary-config.yaml with `canary:` settings, or a plan
    /// `{"steps": [...]}`), on the target the flags name.
    Apply(Box<RolloutStart>),
    /// Proxies the control plane has heard from, with their route version and last contact.
    Proxies,
    /// Check a rollout spec (a canary-config.yaml, or `{"steps": [...]}` in
    /// YAML or JSON) without applying it; prints the steps it expands to.
    Lint {
        /// The file (`-` for standard input).
        #[arg(long, short = 'f', value_name = "FILE")]
        file: PathBuf,
    },
    /// The audit log: every change, who made it, newest last; `--follow` keeps
    /// printing new entries.
    Audit(AuditArgs),
    /// Log in as a user; the session is kept in the config directory (mode 0600)
    /// and used by every command that has no `--api-key`.
    Login(LoginArgs),
    /// End the stored session and forget it.
    Logout,
    /// Who the server thinks you are (the stored session, or the API key).
    Whoami,
    /// The replicas on the server's database: which one leads, at which epoch,
    /// and how recently each was heard from.
    Cluster,
    /// Users (admin): add, list, set-role, disable, enable.
    #[command(subcommand)]
    User(UserCmd),
    /// A product's environments: list, add, set.
    #[command(subcommand)]
    Env(EnvCmd),
    /// Deploy a release to an environment (`--wait` follows it to the end).
    Deploy(DeployArgs),
    /// Approve a release for an environment.
    Approve(DecisionArgs),
    /// Reject a release for an environment (a waiting deployment is rolled back).
    Reject(DecisionArgs),
    /// Deployments of releases to environments: list, show, rollback.
    #[command(subcommand)]
    Deployment(DeploymentCmd),
    /// Simulate rollouts with the real judges and controller in virtual time over
    /// synthetic (or recorded) traffic; prints one JSON report.
    Simulate(Box<SimulateArgs>),
    /// Alias of `product add` (the original CanaryPy CLI's name).
    AddProduct(ProductAdd),
    /// Alias of `release add` (the original CanaryPy CLI's name).
    AddRelease(ReleaseAdd),
    /// Alias of `release latest` (the original CanaryPy CLI's name).
    GetLatestRelease(ProductRef),
    /// Alias of `signal send` (the original CanaryPy CLI's name).
    AddSignal(SignalSend),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (serin.1 and one per command) into DIR.
    Man {
        /// The directory (created if missing).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Database URL: `sqlite://PATH` (default `sqlite://serin.db` in the working
    /// directory) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, env = "SERIN_DATABASE_URL")]
    pub database_url: Option<String>,
    /// A YAML file with any of: listen, database_url, max_connections, log_format, log_level.
    #[arg(long, short = 'c', env = "SERIN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Most database connections (PostgreSQL pool size; SQLite readers). Default 8.
    #[arg(long, env = "SERIN_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<String>,
}

/// Settings of `serin up`. A flag beats its environment variable, which beats the
/// config file, which beats the default.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Address of the HTTP API (default 127.0.0.1:8080; port 0 picks a free port).
    #[arg(long, env = "SERIN_LISTEN")]
    pub listen: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
    /// Log format: `text` (default) or `json`.
    #[arg(long, env = "SERIN_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. `info` (default) or `serin_server=debug,info`.
    #[arg(long, env = "SERIN_LOG")]
    pub log_level: Option<String>,
    /// Requests per minute per API key (default 100; 0 turns rate limiting off).
    #[arg(long, env = "SERIN_RATE_LIMIT", value_name = "N")]
    pub rate_limit: Option<String>,
    /// Requests an API key may make at once before the per-minute rate applies (default 20).
    #[arg(long, env = "SERIN_RATE_BURST", value_name = "N")]
    pub rate_burst: Option<String>,
    /// Failed authentications allowed per client address per minute (default 30; 0 turns the limit off).
    #[arg(long, env = "SERIN_AUTH_FAILURE_LIMIT", value_name = "N")]
    pub auth_failure_limit: Option<String>,
    /// Most active canary deployments per tenant (default 50; 0 for no limit).
    #[arg(long, env = "SERIN_MAX_ACTIVE_DEPLOYMENTS", value_name = "N")]
    pub max_active_deployments: Option<String>,
    /// The target (queue or service) that the `/admin/canary/*` endpoints act on (default `default`).
    #[arg(long, env = "SERIN_DEFAULT_QUEUE", value_name = "NAME")]
    pub default_queue: Option<String>,
    /// The tenant of that target (default none).
    #[arg(long, env = "SERIN_DEFAULT_TENANT", value_name = "TENANT")]
    pub default_tenant: Option<String>,
    /// A worker without a heartbeat for this long becomes `unreachable` (default 60s).
    #[arg(long, env = "SERIN_WORKER_TIMEOUT", value_name = "DURATION")]
    pub worker_timeout: Option<String>,
    /// How often the rollout controller looks at every live deployment (default 1s).
    #[arg(long, env = "SERIN_CONTROLLER_INTERVAL", value_name = "DURATION")]
    pub controller_interval: Option<String>,
    /// Let rollout hooks run commands on this machine (e.g. a database migration
    /// before a rollout); off by default, since a command runs with the server's rights.
    #[arg(long, env = "SERIN_ALLOW_HOOK_COMMANDS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub allow_hook_commands: Option<String>,
    /// The secret that signs JSON notification webhooks (HMAC-SHA256; unsigned when unset).
    #[arg(
        long,
        env = "SERIN_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub webhook_secret: Option<String>,
    /// This replica's name in `serin cluster` (default: host name and process id).
    #[arg(long, env = "SERIN_NAME", value_name = "NAME")]
    pub name: Option<String>,
    /// Also run the traffic-splitting proxy on this address (off unless set).
    #[arg(long, env = "SERIN_PROXY_LISTEN", value_name = "ADDR")]
    pub proxy_listen: Option<String>,
    /// How long a user's login session lasts (default 12h).
    #[arg(long, env = "SERIN_SESSION_TTL", value_name = "DURATION")]
    pub session_ttl: Option<String>,
    /// Time an API client has to send a request's headers, and the longest a
    /// kept-alive connection may sit idle (default 10s).
    #[arg(long, env = "SERIN_HEADER_TIMEOUT", value_name = "DURATION")]
    pub header_timeout: Option<String>,
    /// How long a request's body may take to arrive after its headers; a slower
    /// one is answered 408 and its connection closed (default 30s).
    #[arg(long, env = "SERIN_BODY_TIMEOUT", value_name = "DURATION")]
    pub body_timeout: Option<String>,
    /// API connections open at once; more wait in the listen backlog (default:
    /// the process's hard file-descriptor limit less 256, from 64 to 16,384).
    #[arg(long, env = "SERIN_CONNECTION_LIMIT", value_name = "N")]
    pub connection_limit: Option<String>,
    /// A product's git repository on this machine, for commit subjects in its
    /// release notes (repeat, or comma-separate in the variable).
    #[arg(
        long = "git-repository",
        env = "SERIN_GIT_REPOSITORIES",
        value_name = "PRODUCT=PATH",
        value_delimiter = ','
    )]
    pub git_repositories: Vec<String>,
    /// A database or broker that health checks may reach, by name: plans say
    /// `endpoint: target:NAME`, and the URL with its credentials stays on the
    /// server (postgres://, redis:// or nats://; repeat, or comma-separate in
    /// the variable). Give a database target a role that can read only what the
    /// checks need.
    #[arg(
        long = "check-target",
        env = "SERIN_CHECK_TARGETS",
        value_name = "NAME=URL",
        value_delimiter = ','
    )]
    pub check_targets: Vec<String>,
    /// An external traffic engine deployments may name, as NAME=KIND:ADDRESS:
    /// `edge=haproxy:unix:/run/haproxy/admin.sock` or
    /// `edge=haproxy:tcp:127.0.0.1:9999` (HAProxy's runtime API at admin
    /// level; `?backends=a+b` limits the backends deployments may name,
    /// `&prometheus=URL` reads lane counters from its exporter there);
    /// `web=nginx:/etc/nginx/serin?probe=127.0.0.1:8099&backends=app` (files
    /// nginx includes, the listener of its probe locations and the upstreams
    /// Serin may write; add `&conf=PATH` for a configuration other than
    /// nginx's default, `&access_log=PATH` for lane metrics from its JSON
    /// access log, `&split=njs` to change weights and rules through Serin's
    /// njs module without reloading nginx); `gw=gateway-api:in-cluster?namespace=prod&routes=web`
    /// (Kubernetes HTTPRoutes; `kubeconfig[:PATH]` or an API server URL
    /// instead of `in-cluster`; `&prometheus=URL&queries=FILE` for lane
    /// metrics from the operator's PromQL). Repeat the flag for several.
    #[arg(
        long = "traffic-engine",
        env = "SERIN_TRAFFIC_ENGINES",
        value_name = "NAME=KIND:ADDRESS",
        value_delimiter = ','
    )]
    pub traffic_engines: Vec<String>,
    /// Addresses (CIDRs) or host names (`*.domain` for a domain) the server
    /// may call although the outbound policy denies them by default: loopback,
    /// link-local, cloud metadata (repeat, or comma-separate in the variable).
    /// The server's own listeners stay denied.
    #[arg(
        long = "outbound-allow",
        env = "SERIN_OUTBOUND_ALLOW",
        value_name = "CIDR|HOST",
        value_delimiter = ','
    )]
    pub outbound_allow: Vec<String>,
    /// Addresses or host names the server must never call for a plan (gates,
    /// hooks, notifications, health checks, Prometheus); beats an allow.
    #[arg(
        long = "outbound-deny",
        env = "SERIN_OUTBOUND_DENY",
        value_name = "CIDR|HOST",
        value_delimiter = ','
    )]
    pub outbound_deny: Vec<String>,
    /// Load balancers or proxies in front of Serin (CIDRs) whose
    /// `X-Forwarded-For` names the client that failed authentication limits
    /// and the login throttle count by (repeat, or comma-separate in the
    /// variable). From any other peer the header is ignored.
    #[arg(
        long = "trusted-proxy",
        env = "SERIN_TRUSTED_PROXIES",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,
    /// A file holding the key that seals stored secrets (64 hex digits, e.g.
    /// `openssl rand -hex 32`); or set SERIN_SECRET_KEY. Without a key the
    /// secrets API refuses to store anything.
    #[arg(long, env = "SERIN_SECRET_KEY_FILE", value_name = "PATH")]
    pub secret_key_file: Option<PathBuf>,
}

/// Settings of `serin proxy`. The API key is the global `--api-key`: a `proxy`
/// key (`serin apikey create --role proxy`), which reads routes and reports lane
/// metrics and can change nothing else.
#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    /// Address to serve traffic on.
    #[arg(long, env = "SERIN_PROXY_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: std::net::SocketAddr,
    /// The control plane's URL (`serin up`), e.g. http://serin.internal:8080.
    #[arg(long, env = "SERIN_CONTROL_PLANE", value_name = "URL")]
    pub control_plane: Option<String>,
    /// Serve the routes of this file instead (a route set as `GET /api/v1/proxy/routes` returns it).
    #[arg(long, env = "SERIN_PROXY_ROUTES_FILE", value_name = "FILE")]
    pub routes_file: Option<PathBuf>,
    /// Where the last routes are kept, to serve after a restart without the control plane.
    #[arg(
        long,
        env = "SERIN_PROXY_STATE_DIR",
        default_value = "serin-proxy-state",
        value_name = "DIR"
    )]
    pub state_dir: PathBuf,
    /// The name shown in `GET /api/v1/proxies` (default: the host name).
    #[arg(long, env = "SERIN_PROXY_NAME")]
    pub name: Option<String>,
    /// Serve the admin endpoints on this address: Prometheus `/metrics`,
    /// `/healthz` (alive) and `/readyz` (200 once it has routes).
    #[arg(long, env = "SERIN_PROXY_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Most lane-seconds kept while the control plane is unreachable (oldest dropped first, and counted).
    #[arg(
        long,
        env = "SERIN_PROXY_BUFFER",
        default_value_t = 100_000,
        value_name = "N"
    )]
    pub buffer: usize,
    /// Log filter (default `info`).
    #[arg(long, env = "SERIN_LOG")]
    pub log_level: Option<String>,
    /// Log format: `text` (colours only on a terminal) or `json` (one object per line).
    #[arg(long, env = "SERIN_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: ProxyLogFormat,
    /// Write one JSON line per request to FILE (appended; `-` for standard
    /// output): time, route, deployment, lane, upstream, status, duration.
    #[arg(long, env = "SERIN_PROXY_ACCESS_LOG", value_name = "FILE")]
    pub access_log: Option<PathBuf>,
    /// Terminate TLS on the listener with this certificate chain (PEM).
    /// Repeat with --tls-key for several; each handshake gets the one whose
    /// names match the name the client asks for (SNI), else the first. The
    /// files are read again when they change.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        value_delimiter = ',',
        env = "SERIN_PROXY_TLS_CERT"
    )]
    pub tls_cert: Vec<PathBuf>,
    /// The private key (PEM) of each --tls-cert, in the same order.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        value_delimiter = ',',
        env = "SERIN_PROXY_TLS_KEY"
    )]
    pub tls_key: Vec<PathBuf>,
    /// CA certificates (PEM) trusted for `https://` upstreams, besides the Mozilla roots.
    #[arg(long, value_name = "FILE", env = "SERIN_PROXY_UPSTREAM_CA")]
    pub upstream_ca: Option<PathBuf>,
    /// A client certificate (PEM) to present to `https://` upstreams.
    #[arg(
        long,
        value_name = "FILE",
        requires = "upstream_client_key",
        env = "SERIN_PROXY_UPSTREAM_CLIENT_CERT"
    )]
    pub upstream_client_cert: Option<PathBuf>,
    /// The key (PEM) of --upstream-client-cert.
    #[arg(
        long,
        value_name = "FILE",
        requires = "upstream_client_cert",
        env = "SERIN_PROXY_UPSTREAM_CLIENT_KEY"
    )]
    pub upstream_client_key: Option<PathBuf>,
}

/// `serin proxy --log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProxyLogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum ProductCmd {
    /// Create a product.
    Add(ProductAdd),
    /// List products.
    List,
    /// Show one product.
    Show(ProductRef),
}

/// A product to create.
#[derive(Debug, Args)]
pub struct ProductAdd {
    /// The product's name.
    pub name: Option<String>,
    /// The product's name (instead of the positional NAME).
    #[arg(
        long = "name",
        visible_alias = "product",
        value_name = "NAME",
        conflicts_with = "name"
    )]
    pub name_flag: Option<String>,
    /// Free text.
    #[arg(long, short = 'd')]
    pub description: Option<String>,
}

/// A product, by name.
#[derive(Debug, Args)]
pub struct ProductRef {
    /// The product's name.
    pub product: Option<String>,
    /// The product's name (instead of the positional PRODUCT).
    #[arg(
        long = "product",
        visible_alias = "name",
        value_name = "NAME",
        conflicts_with = "product"
    )]
    pub product_flag: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ReleaseCmd {
    /// Create a draft release.
    Add(ReleaseAdd),
    /// List a product's releases, newest first.
    List(ProductRef),
    /// Show one release.
    Show(ReleaseId),
    /// Show the latest stable release of a product.
    Latest(ProductRef),
    /// Approve a draft release.
    Approve(ReleaseId),
    /// Mark an approved release as released (it may become the stable one).
    Release(ReleaseId),
    /// Cancel a draft or approved release.
    Cancel(ReleaseId),
    /// Mark a released release as rolled back (it is never stable again).
    Rollback(ReleaseId),
    /// Release notes in Markdown: the release's notes, those of the releases
    /// since the one running in the environment, and the commits between their
    /// tags when the server knows the product's repository.
    Notes {
        /// The product.
        product: String,
        /// The release's version.
        version: String,
        /// For this environment (default: against the latest stable release).
        #[arg(long = "env")]
        environment: Option<String>,
        /// Publish them: announce them to the environment's notification targets.
        #[arg(long)]
        publish: bool,
    },
}

/// A release to create.
#[derive(Debug, Args)]
pub struct ReleaseAdd {
    /// The product.
    pub product: Option<String>,
    /// The version (semver recommended).
    pub version: Option<String>,
    /// The product (instead of the positional PRODUCT).
    #[arg(long = "product", value_name = "NAME", conflicts_with = "product")]
    pub product_flag: Option<String>,
    /// The version (instead of the positional VERSION).
    #[arg(long = "version", value_name = "VERSION", conflicts_with = "version")]
    pub version_flag: Option<String>,
    /// Release notes.
    #[arg(long, short = 'd')]
    pub description: Option<String>,
}

/// A release, by id or by product and version.
#[derive(Debug, Args)]
pub struct ReleaseId {
    /// The release's id (see `serin release list PRODUCT`), or its product
    /// followed by VERSION.
    #[arg(value_name = "ID|PRODUCT")]
    pub id: String,
    /// The version, when the first argument is a product.
    pub version: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SignalCmd {
    /// Send one signal, or a batch with --file.
    Send(SignalSend),
}

/// A signal to send, or a file of them.
#[derive(Debug, Args)]
pub struct SignalSend {
    /// A JSON file of signals (`-` for stdin): an array, `{"signals": [...]}`, or one object per line.
    #[arg(long, short = 'f', conflicts_with_all = ["product", "version", "lane", "name", "value"])]
    pub file: Option<PathBuf>,
    /// The release's product.
    #[arg(long, required_unless_present = "file")]
    pub product: Option<String>,
    /// The release's version.
    #[arg(long, required_unless_present = "file")]
    pub version: Option<String>,
    /// `stable` or `canary`.
    #[arg(long, required_unless_present = "file")]
    pub lane: Option<String>,
    /// What was observed, e.g. `http.request`.
    #[arg(long, required_unless_present = "file")]
    pub name: Option<String>,
    /// The observed value.
    #[arg(long, required_unless_present = "file", allow_negative_numbers = true)]
    pub value: Option<f64>,
    /// `outcome`, `latency`, `counter` or `gauge` (default).
    #[arg(long)]
    pub kind: Option<String>,
    /// A tag as KEY=VALUE; repeat for more.
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// When it was observed (RFC 3339); now when absent.
    #[arg(long)]
    pub timestamp: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CanaryCmd {
    /// Start a canary deployment.
    Create(Box<CanaryCreate>),
    /// List deployments, newest first.
    List,
    /// Show one deployment.
    Get(DeploymentId),
    /// Set the canary's share of traffic (0–100).
    SetPercent {
        /// The deployment's id.
        id: String,
        /// The new share.
        percent: u8,
    },
    /// Promote the canary to 100%.
    Promote(DeploymentId),
    /// Roll the canary back to 0%.
    Rollback {
        /// The deployment's id.
        id: String,
        /// Why.
        #[arg(long, short = 'r', default_value = "manual rollback from the CLI")]
        reason: String,
    },
    /// Pause a deployment's automation (manual changes stay allowed).
    Pause {
        /// The deployment's id.
        id: String,
        /// Why.
        #[arg(long, short = 'r')]
        reason: Option<String>,
    },
    /// Resume a paused deployment.
    Resume(DeploymentId),
    /// Delete a completed or failed deployment.
    Delete(DeploymentId),
    /// Health checks against the deployment's thresholds.
    Health(DeploymentId),
    /// Both lanes' metrics over the metrics window.
    Metrics(DeploymentId),
    /// The deployment's events; `--follow` streams them live.
    Events {
        /// The deployment's id.
        id: String,
        /// Keep streaming until interrupted.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// The configuration profiles.
    Profiles,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCmd {
    /// Start a deployment with a plan: `--steps 5,25,50,100 --wait 1m`, or `-f FILE`.
    Start(Box<RolloutStart>),
    /// Where a rollout is: its steps, what it waits for, the latest judgement.
    Status(DeploymentId),
    /// Follow a rollout live until it ends: exits 0 when promoted, 1 when rolled
    /// back (usable as a CI gate).
    Watch {
        /// The deployment's id.
        id: String,
        /// Give up (exit 3) after this long, e.g. `30m` (default: never).
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
    },
    /// Pause the controller on this deployment.
    Pause {
        /// The deployment's id.
        id: String,
        /// Why.
        #[arg(long, short = 'r')]
        reason: Option<String>,
    },
    /// Resume a paused rollout (a running analysis starts its window afresh).
    Resume(DeploymentId),
    /// Continue past a pause that waits for a person, or approve an approval gate.
    Continue(DeploymentId),
    /// Promote now, skipping the remaining steps.
    Promote(DeploymentId),
    /// Roll back now.
    Rollback {
        /// The deployment's id.
        id: String,
        /// Why.
        #[arg(long, short = 'r', default_value = "manual rollback from the CLI")]
        reason: String,
    },
    /// Abort: all traffic to stable now.
    Abort {
        /// The deployment's id.
        id: String,
        /// Why.
        #[arg(long, short = 'r')]
        reason: Option<String>,
    },
}

/// A deployment to start with a plan.
#[derive(Debug, Args)]
pub struct RolloutStart {
    /// The plan: a canary-config.yaml or `{"steps": [...]}` (YAML or JSON; `-` for stdin).
    #[arg(long, short = 'f', value_name = "FILE", conflicts_with = "steps")]
    pub file: Option<PathBuf>,
    /// The plan as weights, e.g. `5,25,50,100` (each followed by an analysis of `--wait`).
    #[arg(long, value_delimiter = ',', value_name = "WEIGHTS")]
    pub steps: Vec<u8>,
    /// With `--steps`: how long each analysis watches, e.g. `1m` (absent: each step then waits for `continue`).
    #[arg(long, value_name = "DURATION", requires = "steps")]
    pub wait: Option<String>,
    /// Follow the rollout after starting it (as `rollout watch`).
    #[arg(long)]
    pub watch: bool,
    /// With `--watch`: give up (exit 3) after this long, e.g. `30m` (default: never).
    #[arg(long, value_name = "DURATION", requires = "watch")]
    pub timeout: Option<String>,
    /// The target and its settings.
    #[command(flatten)]
    pub target: CanaryCreate,
}

/// A deployment, by id.
#[derive(Debug, Args)]
pub struct DeploymentId {
    /// The deployment's id (`canary_…`).
    pub id: String,
}

/// A deployment to start.
#[derive(Debug, Args)]
pub struct CanaryCreate {
    /// The target queue (or service name).
    #[arg(long = "queue")]
    pub queue_name: String,
    /// The version now stable.
    #[arg(long = "stable")]
    pub stable_version: String,
    /// The version to try.
    #[arg(long = "canary")]
    pub canary_version: String,
    /// Tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// `default`, `conservative` or `aggressive`.
    #[arg(long)]
    pub profile: Option<String>,
    /// Initial canary share.
    #[arg(long)]
    pub percent: Option<u8>,
    /// `split_queue`, `stream_group` or `hash_ring`.
    #[arg(long)]
    pub strategy: Option<String>,
    /// Same key, same lane (`true`/`false`).
    #[arg(long)]
    pub sticky: Option<bool>,
    /// Promote automatically when checks pass (`true`/`false`).
    #[arg(long)]
    pub auto_promotion: Option<bool>,
    /// Longest run, e.g. `2h`.
    #[arg(long)]
    pub max_duration: Option<String>,
    /// Shortest run before promotion, e.g. `5m`.
    #[arg(long)]
    pub min_duration: Option<String>,
    /// Metrics window, e.g. `5m`.
    #[arg(long)]
    pub metrics_window: Option<String>,
    /// The product deployed (its release is marked released on promotion).
    #[arg(long)]
    pub product: Option<String>,
    /// The environment deployed to.
    #[arg(long)]
    pub environment: Option<String>,
    /// A stable upstream URL (repeat for more).
    #[arg(long = "stable-upstream")]
    pub stable_upstreams: Vec<String>,
    /// A canary upstream URL (repeat for more).
    #[arg(long = "canary-upstream")]
    pub canary_upstreams: Vec<String>,
    /// Route: match this Host header.
    #[arg(long)]
    pub host: Option<String>,
    /// Route: match paths starting with this.
    #[arg(long)]
    pub path_prefix: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum WorkerCmd {
    /// List workers.
    List {
        /// Only this lane.
        #[arg(long)]
        lane: Option<String>,
    },
    /// Register a worker.
    Register {
        /// Unique id.
        #[arg(long)]
        id: String,
        /// The version it runs.
        #[arg(long = "version")]
        worker_version: String,
        /// `stable` (default) or `canary`.
        #[arg(long)]
        lane: Option<String>,
        /// A queue it consumes (repeat for more).
        #[arg(long = "queue", required = true)]
        queues: Vec<String>,
    },
    /// Set a worker's status.
    Status {
        /// The worker's id.
        id: String,
        /// `healthy`, `degraded`, `unhealthy` or `unreachable`.
        status: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCmd {
    /// Create a key; it is printed once.
    Create {
        /// A name (the actor in the audit log): unique, without `@`.
        #[arg(long)]
        name: String,
        /// `admin`, `engineer`, `viewer`, or `proxy` (a remote `serin proxy`:
        /// reads routes and reports metrics, nothing else).
        #[arg(long)]
        role: String,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key.
    Revoke {
        /// The key's id (`key_…`).
        id: String,
    },
}

mod simulate;
pub use simulate::*;

/// `serin audit`: filters of the audit log.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// Only this kind of resource (`deployment`, `release`, `product`, `worker`, `api_key`).
    #[arg(long)]
    pub resource_type: Option<String>,
    /// Only this resource (an id or name).
    #[arg(long)]
    pub resource_id: Option<String>,
    /// Only this actor's changes.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this action (event type, e.g. `percentage_updated`).
    #[arg(long)]
    pub action: Option<String>,
    /// At or after this RFC 3339 instant.
    #[arg(long)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Before this RFC 3339 instant.
    #[arg(long)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// How many of the newest entries to show (1–100).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub limit: u32,
    /// Keep printing new entries (polled every second) until interrupted.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

mod manager;
pub use manager::*;
