//! The `serin` binary: `serin up`, `serin migrate`, and the client commands.
//!
//! Layout:
//! - `cli`: the clap declarations.
//! - `config`: settings from flags, `SERIN_*` variables, a YAML file, defaults.
//! - `up`: the server and migrations.
//! - `commands`: product, release and signal subcommands over `serin-client`.
//! - `canary`: canary, worker and API key subcommands.
//! - `manage`: the release manager's: login, users, environments, deploy, approvals.
//! - `output`: tables and JSON.
//! - `docs`: the generated CLI reference, `docs/cli.md`.
#![forbid(unsafe_code)]

/// The process allocates through jemalloc (with background purging). With
/// glibc's allocator a long-lived control plane kept the high-water mark of
/// every thread's arena: 80 MB of anonymous memory after 3,000 deployments
/// against 21 MB with one arena (`MALLOC_ARENA_MAX=1`), the same work; 107 MB
/// against 68 MB with jemalloc at 10,000 (`docs/benchmarks.md`).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod canary;
mod cli;
mod commands;
mod config;
#[cfg(test)]
mod docs;
mod lint;
mod manage;
mod output;
mod proxy;
mod rollout;
mod simulate;
mod up;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use cli::{Cli, Command, SignalCmd};

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    serin_metrics::set_build(env!("CARGO_PKG_VERSION"), env!("SERIN_GIT_COMMIT"));
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            // A reader that went away (`| head`) ends the command quietly.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::from(BROKEN_PIPE);
            }
            eprintln!("error: {e:#}");
            if let Some(serin_client::ClientError::Api { status: 401, .. }) = e
                .chain()
                .find_map(|c| c.downcast_ref::<serin_client::ClientError>())
            {
                eprintln!(
                    "hint: sign in with `serin login`, or give a key with SERIN_API_KEY or --api-key"
                );
            }
            exit_code_of(&e)
        }
    }
}

/// The exit code of a command that failed (see docs/cli.md): 4 when the
/// server refused or couldn't be reached, so a pipeline never reads an API
/// error as the 1 of "rolled back"; 2 for anything else (bad input, a bad
/// server URL, a file that can't be read).
fn exit_code_of(e: &anyhow::Error) -> ExitCode {
    match e
        .chain()
        .find_map(|c| c.downcast_ref::<serin_client::ClientError>())
    {
        Some(serin_client::ClientError::InvalidUrl(_)) | None => ExitCode::from(2),
        Some(_) => ExitCode::from(4),
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let args = &cli.client;
    match cli.command {
        Command::Up(up_args) => match config::settings(&up_args) {
            Ok(settings) => up::up(settings).await?,
            Err(errors) => return Ok(settings_failed(&errors)),
        },
        Command::Migrate(db) => match config::db_settings(&db) {
            Ok((url, max)) => up::migrate(&url, max, args.output.is_data()).await?,
            Err(errors) => return Ok(settings_failed(&errors)),
        },
        Command::Proxy(p) => proxy::proxy(args, p).await?,
        Command::Proxies => proxy::list(args).await?,
        Command::Rollout(cmd) => return rollout::rollout(args, cmd).await,
        Command::Apply(s) => return rollout::start(args, *s).await,
        Command::Lint { file } => return Ok(lint::lint(&file, args.output)),
        Command::Simulate(a) => return simulate::simulate(*a),
        Command::Audit(a) => commands::audit(args, a).await?,
        Command::Login(a) => manage::login(args, a).await?,
        Command::Logout => manage::logout(args).await?,
        Command::Whoami => manage::whoami(args).await?,
        Command::Cluster => manage::cluster(args).await?,
        Command::User(cmd) => manage::user(args, cmd).await?,
        Command::Env(cmd) => manage::env(args, cmd).await?,
        Command::Deploy(a) => return manage::deploy(args, a).await,
        Command::Approve(a) => manage::decide(args, a, "approved").await?,
        Command::Reject(a) => manage::decide(args, a, "rejected").await?,
        Command::Deployment(cmd) => manage::deployment(args, cmd).await?,
        Command::Product(cmd) => commands::product(args, cmd).await?,
        Command::Canary(cmd) => canary::canary(args, cmd).await?,
        Command::Worker(cmd) => canary::worker(args, cmd).await?,
        Command::Apikey(cmd) => canary::apikey(args, cmd).await?,
        Command::AddProduct(a) => commands::product_add(args, a).await?,
        Command::Release(cmd) => commands::release(args, cmd).await?,
        Command::AddRelease(a) => commands::release_add(args, a).await?,
        Command::GetLatestRelease(p) => commands::latest(args, p).await?,
        Command::Signal(SignalCmd::Send(s)) | Command::AddSignal(s) => {
            commands::signal_send(args, s).await?
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "serin", &mut script);
            write_out(&script)?;
        }
        Command::Man { dir } => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir).map_err(|e| {
                anyhow::anyhow!("cannot write the man pages into {}: {e}", dir.display())
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The exit status of a command whose reader went away: a shell's for a
/// process ended by SIGPIPE (128 + 13), so `set -o pipefail` doesn't read it
/// as success.
const BROKEN_PIPE: u8 = 141;

/// Writes `bytes` to stdout; a reader that went away (`| head`) ends the
/// command quietly.
fn write_out(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            std::process::exit(i32::from(BROKEN_PIPE))
        }
        r => Ok(r?),
    }
}

/// Output piped into a reader that stops early (`serin … | head`) ends the
/// command quietly, as other command-line tools do, instead of with the
/// panic `println!` raises on a closed stdout (Rust ignores SIGPIPE, and
/// this crate has no unsafe code to restore it).
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let said = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if said.starts_with("failed printing to stdout") && said.contains("Broken pipe") {
            std::process::exit(i32::from(BROKEN_PIPE));
        }
        default(info);
    }));
}

fn settings_failed(errors: &[String]) -> ExitCode {
    for e in errors {
        eprintln!("error: {e}");
    }
    eprintln!(
        "serin: {} setting(s) to fix; see `serin up --help`",
        errors.len()
    );
    ExitCode::from(2)
}
