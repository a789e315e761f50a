//! The release manager's commands: login, users, environments, deploy, approve
//! and reject, deployments.

#[allow(unused_imports)]
use super::*;

/// `serin login`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoginArgs {
    /// The user's email.
    #[arg(long, env = "SERIN_EMAIL")]
    pub email: String,
    /// Read the password from the first line of standard input (else
    /// `SERIN_PASSWORD`, else a prompt).
    #[arg(long)]
    pub password_stdin: bool,
}

/// `serin user`.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create a user; the password comes from `--password-stdin`, `SERIN_PASSWORD` or a prompt.
    Add {
        /// Their email (what they log in with).
        #[arg(long)]
        email: String,
        /// Their name.
        #[arg(long)]
        name: String,
        /// `admin`, `engineer` or `viewer`.
        #[arg(long)]
        role: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Change a user's role (ends their sessions).
    SetRole {
        /// The user's email or id.
        user: String,
        /// `admin`, `engineer` or `viewer`.
        role: String,
    },
    /// Disable a user: they can't log in, and their sessions end.
    Disable {
        /// The user's email or id.
        user: String,
    },
    /// Enable a disabled user.
    Enable {
        /// The user's email or id.
        user: String,
    },
}

/// `serin env`.
#[derive(Debug, Subcommand)]
pub enum EnvCmd {
    /// A product's environments, in promotion order.
    List {
        /// The product.
        product: String,
    },
    /// Add an environment.
    Add(EnvArgs),
    /// Change an environment (flags left out stay as they are).
    Set(EnvArgs),
}

/// An environment's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct EnvArgs {
    /// The product.
    pub product: String,
    /// The environment.
    pub name: String,
    /// Where in the order, from 0 (default: last).
    #[arg(long)]
    pub position: Option<u32>,
    /// Require success in the previous environment first.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub require_previous: Option<bool>,
    /// Approvals needed from distinct people (0: none).
    #[arg(long, value_name = "N")]
    pub approvals: Option<u32>,
    /// The least role that may approve (default engineer).
    #[arg(long, value_name = "ROLE")]
    pub approver_role: Option<String>,
    /// Let a release's author approve it.
    #[arg(long)]
    pub author_may_approve: bool,
    /// A command run before traffic moves (no shell; the server needs
    /// `--allow-hook-commands`), e.g. `--pre-deploy alembic --pre-deploy upgrade --pre-deploy head`.
    #[arg(long = "pre-deploy", value_name = "ARG")]
    pub pre_deploy: Vec<String>,
    /// Or a webhook called before traffic moves.
    #[arg(long, value_name = "URL")]
    pub pre_deploy_webhook: Option<String>,
    /// Seconds the pre-deploy hook may take (default 300).
    #[arg(long, value_name = "SECONDS")]
    pub hook_timeout: Option<u32>,
}

/// `serin deploy`.
#[derive(Debug, Clone, clap::Args)]
pub struct DeployArgs {
    /// The product.
    pub product: String,
    /// The release's version.
    pub version: String,
    /// The environment.
    #[arg(long)]
    pub to: String,
    /// `direct`, `canary` or `blue_green`.
    #[arg(long, default_value = "direct")]
    pub strategy: String,
    /// Where the new version runs (`http://host:port`; repeat for several).
    #[arg(long = "endpoint", value_name = "URL")]
    pub endpoints: Vec<String>,
    /// A canary plan (`{"steps": [...]}` in JSON or YAML) for `--strategy canary`.
    #[arg(long, value_name = "FILE")]
    pub rollout: Option<PathBuf>,
    /// The deployment profile.
    #[arg(long)]
    pub profile: Option<String>,
    /// How long blue_green bakes before and after the switch (e.g. 30s).
    #[arg(long, value_name = "DURATION")]
    pub bake_time: Option<String>,
    /// Follow the deployment until it succeeds (exit 0) or fails (exit 1).
    #[arg(long)]
    pub wait: bool,
    /// With `--wait`: give up (exit 3) after this long, e.g. `30m` (default: never).
    #[arg(long, value_name = "DURATION", requires = "wait")]
    pub timeout: Option<String>,
}

/// `serin approve` and `serin reject`.
#[derive(Debug, Clone, clap::Args)]
pub struct DecisionArgs {
    /// The product.
    pub product: String,
    /// The release's version.
    pub version: String,
    /// The environment.
    #[arg(long = "env")]
    pub environment: String,
    /// Why.
    #[arg(long, short = 'm')]
    pub comment: Option<String>,
}

/// `serin deployment`.
#[derive(Debug, Subcommand)]
pub enum DeploymentCmd {
    /// Deployments, newest first.
    List {
        /// Only this product's.
        #[arg(long)]
        product: Option<String>,
        /// Only to this environment.
        #[arg(long = "env")]
        environment: Option<String>,
    },
    /// One deployment, with its hooks' output and approvals.
    Show {
        /// Its id.
        id: String,
    },
    /// One-click rollback to the previous release of its environment.
    Rollback {
        /// Its id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
}
