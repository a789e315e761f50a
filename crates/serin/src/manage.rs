//! The release manager's commands: `login`, `logout`, `whoami`, `user`, `env`,
//! `deploy`, `approve`, `reject` and `deployment`.
//!
//! A session from `serin login` is stored per server URL in
//! `credentials.json` in the config directory (`SERIN_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/serin`, else `~/.config/serin`), created with mode 0600,
//! and sent by every command that has no `--api-key`.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use serin_client::Client;

use crate::cli::{
    ClientArgs, DecisionArgs, DeployArgs, DeploymentCmd, EnvArgs, EnvCmd, LoginArgs, Output,
    UserCmd,
};
use crate::commands::client;
use crate::output::print_value;

/// A stored session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    /// The bearer token.
    pub token: String,
    /// Whose.
    pub email: String,
    /// When it stops working.
    pub expires_at: String,
}

/// The config directory.
fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("SERIN_CONFIG_DIR") {
        return Ok(d.into());
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("serin"));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set"))?;
    Ok(PathBuf::from(home).join(".config").join("serin"))
}

fn credentials_path() -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("credentials.json"))
}

/// Every stored session; an unreadable file is an error, never silently
/// replaced (that would lose the other servers' sessions).
fn read_all() -> anyhow::Result<BTreeMap<String, Stored>> {
    let path = credentials_path()?;
    match std::fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t)
            .with_context(|| format!("{} is not a credentials file; move it away", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The stored session for a server, if any.
pub fn stored(url: &str) -> Option<Stored> {
    read_all().ok()?.remove(url.trim_end_matches('/'))
}

/// Writes the sessions file, readable by its owner only: a new file made
/// exclusively (0600) beside it, then renamed over it, in a 0700 directory.
fn write_all(all: &BTreeMap<String, Stored>) -> anyhow::Result<()> {
    use std::io::Write;
    let path = credentials_path()?;
    let dir = path.parent().expect("a file in a directory");
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(serde_json::to_string_pretty(all)?.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// A password from stdin's first line, `SERIN_PASSWORD`, or a prompt.
fn password(from_stdin: bool, prompt: &str) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    if let Ok(p) = std::env::var("SERIN_PASSWORD") {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("give the password with --password-stdin or SERIN_PASSWORD");
    }
    Ok(rpassword::prompt_password(prompt)?)
}

/// `serin login`.
pub async fn login(args: &ClientArgs, a: LoginArgs) -> anyhow::Result<()> {
    let pw = password(a.password_stdin, "Password: ")?;
    let s = Client::new(&args.url)?.login(&a.email, &pw).await?;
    let stored = Stored {
        token: s["token"].as_str().unwrap_or_default().to_string(),
        email: s["user"]["email"].as_str().unwrap_or(&a.email).to_string(),
        expires_at: s["expires_at"].as_str().unwrap_or_default().to_string(),
    };
    let mut all = read_all()?;
    all.insert(args.url.trim_end_matches('/').to_string(), stored.clone());
    write_all(&all)?;
    match args.output {
        Output::Json | Output::Yaml => print_value(
            args.output,
            &json!({"email": stored.email, "role": s["user"]["role"], "expires_at": stored.expires_at}),
        ),
        Output::Table => {
            println!(
                "logged in to {} as {} ({}) until {}",
                args.url,
                stored.email,
                s["user"]["role"].as_str().unwrap_or("?"),
                stored.expires_at
            );
            Ok(())
        }
    }
}

/// `serin logout`.
pub async fn logout(args: &ClientArgs) -> anyhow::Result<()> {
    let key = args.url.trim_end_matches('/').to_string();
    let mut all = read_all()?;
    let Some(s) = all.remove(&key) else {
        bail!("not logged in to {}", args.url);
    };
    match Client::new(&args.url)?
        .with_api_key(&s.token)
        .logout()
        .await
    {
        // Forgotten only once the server has ended it (an expired session is as
        // good as ended): otherwise it would stay valid with no way to end it here.
        Ok(()) | Err(serin_client::ClientError::Api { status: 401, .. }) => {
            write_all(&all)?;
            println!("logged out of {}", args.url);
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// `serin whoami`.
pub async fn whoami(args: &ClientArgs) -> anyhow::Result<()> {
    let me = client(args)?.me().await?;
    match args.output {
        Output::Json | Output::Yaml => print_value(args.output, &me),
        Output::Table => {
            println!(
                "{} ({}, {})",
                me["name"].as_str().unwrap_or("?"),
                me["role"].as_str().unwrap_or("?"),
                me["kind"].as_str().unwrap_or("?")
            );
            Ok(())
        }
    }
}

/// `serin cluster`: the leader, then one line per replica.
pub async fn cluster(args: &ClientArgs) -> anyhow::Result<()> {
    let c = client(args)?.cluster().await?;
    if args.output.is_data() {
        return print_value(args.output, &c);
    }
    let leader = &c["leader"];
    match leader["replica"].as_str() {
        Some(id) => println!(
            "leader: {} ({id}), epoch {}, renewed {:.1}s ago{}",
            leader["name"].as_str().unwrap_or("?"),
            leader["epoch"],
            leader["lease_age_seconds"].as_f64().unwrap_or(0.0),
            if leader["expired"] == true {
                ", LAPSED"
            } else {
                ""
            }
        ),
        None => println!("leader: none yet"),
    }
    let replicas = c["replicas"].as_array().cloned().unwrap_or_default();
    rows(
        args.output,
        &replicas,
        &[
            ("NAME", "name"),
            ("ID", "id"),
            ("LEADER", "leader"),
            ("THIS", "this"),
            ("VERSION", "version"),
            ("STARTED", "started_at"),
            ("LAG_S", "lag_seconds"),
        ],
    )
}

/// Prints JSON rows as a table of the given (header, field) columns.
pub(crate) fn rows(output: Output, items: &[Value], cols: &[(&str, &str)]) -> anyhow::Result<()> {
    if output.is_data() {
        return crate::output::emit(output, items);
    }
    let cell = |v: &Value, f: &str| -> String {
        let x = f.split('.').fold(v, |v, k| &v[k]);
        match x {
            Value::Null => "-".into(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    };
    let table: Vec<Vec<String>> = items
        .iter()
        .map(|v| cols.iter().map(|(_, f)| cell(v, f)).collect())
        .collect();
    let mut widths: Vec<usize> = cols.iter().map(|(h, _)| h.len()).collect();
    for r in &table {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!(
        "{}",
        line(cols.iter().map(|(h, _)| h.to_string()).collect())
    );
    for r in table {
        println!("{}", line(r));
    }
    Ok(())
}

async fn user_id(c: &Client, who: &str) -> anyhow::Result<String> {
    if who.starts_with("user_") {
        return Ok(who.to_string());
    }
    let email = who.trim().to_lowercase();
    c.list_users()
        .await?
        .into_iter()
        .find(|u| u["email"] == json!(email))
        .and_then(|u| u["id"].as_str().map(str::to_string))
        .ok_or_else(|| anyhow!("no user {who}"))
}

/// `serin user …`.
pub async fn user(args: &ClientArgs, cmd: UserCmd) -> anyhow::Result<()> {
    let c = client(args)?;
    let cols = [
        ("EMAIL", "email"),
        ("NAME", "name"),
        ("ROLE", "role"),
        ("LAST LOGIN", "last_login"),
        ("DISABLED", "disabled_at"),
        ("FAILED", "failed_logins"),
    ];
    let changed = match cmd {
        UserCmd::Add {
            email,
            name,
            role,
            password_stdin,
        } => {
            let pw = password(password_stdin, &format!("Password for {email}: "))?;
            c.create_user(&json!({"email": email, "name": name, "role": role, "password": pw}))
                .await?
        }
        UserCmd::List => return rows(args.output, &c.list_users().await?, &cols),
        UserCmd::SetRole { user, role } => {
            let id = user_id(&c, &user).await?;
            c.update_user(&id, &json!({"role": role})).await?
        }
        UserCmd::Disable { user } => {
            let id = user_id(&c, &user).await?;
            c.update_user(&id, &json!({"disabled": true})).await?
        }
        UserCmd::Enable { user } => {
            let id = user_id(&c, &user).await?;
            c.update_user(&id, &json!({"disabled": false})).await?
        }
    };
    rows(args.output, &[changed], &cols)
}

fn env_spec(a: &EnvArgs, create: bool) -> Value {
    let mut spec = serde_json::Map::new();
    if create {
        spec.insert("name".into(), json!(a.name));
    }
    if let Some(p) = a.position {
        spec.insert("position".into(), json!(p));
    }
    if let Some(r) = a.require_previous {
        spec.insert("require_previous".into(), json!(r));
    }
    if a.approvals.is_some() || a.approver_role.is_some() || a.author_may_approve {
        spec.insert(
            "approvals".into(),
            json!({
                "required": a.approvals.unwrap_or(0),
                "min_role": a.approver_role.as_deref().unwrap_or("engineer"),
                "author_may_approve": a.author_may_approve,
            }),
        );
    }
    if !a.pre_deploy.is_empty() || a.pre_deploy_webhook.is_some() {
        let mut hook = serde_json::Map::new();
        if !a.pre_deploy.is_empty() {
            hook.insert("command".into(), json!(a.pre_deploy));
        }
        if let Some(w) = &a.pre_deploy_webhook {
            hook.insert("webhook".into(), json!(w));
        }
        if let Some(t) = a.hook_timeout {
            hook.insert("timeout_seconds".into(), json!(t));
        }
        spec.insert("pre_deploy_hook".into(), Value::Object(hook));
    }
    Value::Object(spec)
}

const ENV_COLS: [(&str, &str); 5] = [
    ("#", "position"),
    ("ENVIRONMENT", "name"),
    ("AFTER PREVIOUS", "require_previous"),
    ("APPROVALS", "approvals.required"),
    ("PRE-DEPLOY", "pre_deploy_hook.command"),
];

/// `serin env …`.
pub async fn env(args: &ClientArgs, cmd: EnvCmd) -> anyhow::Result<()> {
    let c = client(args)?;
    match cmd {
        EnvCmd::List { product } => {
            let v = c.environments(&product).await?;
            let items = v["items"].as_array().cloned().unwrap_or_default();
            rows(args.output, &items, &ENV_COLS)
        }
        EnvCmd::Add(a) => {
            let e = c.add_environment(&a.product, &env_spec(&a, true)).await?;
            rows(args.output, &[e], &ENV_COLS)
        }
        EnvCmd::Set(a) => {
            let e = c
                .update_environment(&a.product, &a.name, &env_spec(&a, false))
                .await?;
            rows(args.output, &[e], &ENV_COLS)
        }
    }
}

const DEPLOYMENT_COLS: [(&str, &str); 8] = [
    ("ID", "id"),
    ("PRODUCT", "product"),
    ("ENVIRONMENT", "environment"),
    ("VERSION", "version"),
    ("STRATEGY", "strategy"),
    ("STATUS", "status"),
    ("STARTED", "started_at"),
    ("BY", "deployed_by"),
];

/// `serin deploy`.
pub async fn deploy(args: &ClientArgs, a: DeployArgs) -> anyhow::Result<ExitCode> {
    // Read before anything is deployed: a typo must not leave a deployment.
    let timeout = crate::canary::duration("timeout", a.timeout.clone())?.map(|d| d.to_std());
    let c = client(args)?;
    let release = c.find_release(&a.product, &a.version).await?;
    let mut req = json!({
        "environment": a.to,
        "strategy": a.strategy,
        "endpoints": a.endpoints,
    });
    if let Some(path) = &a.rollout {
        let spec = crate::lint::load(path).map_err(|e| anyhow!(e))?;
        req["rollout"] = serde_json::to_value(spec.spec)?;
    }
    if let Some(p) = &a.profile {
        req["profile"] = json!(p);
    }
    if let Some(b) = &a.bake_time {
        req["bake_time"] = json!(b);
    }
    let d = c.deploy(release.id, &req).await?;
    rows(args.output, std::slice::from_ref(&d), &DEPLOYMENT_COLS)?;
    if !a.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let id = d["id"].as_str().unwrap_or_default().to_string();
    crate::rollout::watch(args, &id, timeout).await
}

/// `serin approve` / `serin reject`.
pub async fn decide(args: &ClientArgs, a: DecisionArgs, decision: &str) -> anyhow::Result<()> {
    let c = client(args)?;
    let release = c.find_release(&a.product, &a.version).await?;
    let v = c
        .decide(release.id, &a.environment, decision, a.comment.as_deref())
        .await?;
    match args.output {
        Output::Json | Output::Yaml => print_value(args.output, &v),
        Output::Table => {
            let t = &v["tally"];
            let approved = t["approved_by"].as_array().map_or(0, Vec::len);
            println!(
                "{decision} {}@{} for {}: {approved} of {} approval(s){}",
                a.product,
                a.version,
                a.environment,
                t["required"],
                if t["met"] == json!(true) {
                    ", policy met"
                } else {
                    ""
                }
            );
            Ok(())
        }
    }
}

/// `serin deployment …`.
pub async fn deployment(args: &ClientArgs, cmd: DeploymentCmd) -> anyhow::Result<()> {
    let c = client(args)?;
    match cmd {
        DeploymentCmd::List {
            product,
            environment,
        } => {
            let v = c
                .release_deployments(product.as_deref(), environment.as_deref())
                .await?;
            let items = v["items"].as_array().cloned().unwrap_or_default();
            rows(args.output, &items, &DEPLOYMENT_COLS)
        }
        DeploymentCmd::Show { id } => print_value(args.output, &c.release_deployment(&id).await?),
        DeploymentCmd::Rollback { id, reason } => {
            let d = c.rollback_deployment(&id, reason.as_deref()).await?;
            rows(args.output, &[d], &DEPLOYMENT_COLS)
        }
    }
}
