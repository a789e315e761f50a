//! The client subcommands, built on `serin-client`.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, anyhow, bail};
use serin_client::Client;
use serin_core::{Lane, NewProduct, NewRelease, NewSignal, ReleaseStatus, SignalBatch, SignalKind};

use crate::cli::{
    ClientArgs, Output, ProductAdd, ProductCmd, ProductRef, ReleaseAdd, ReleaseCmd, ReleaseId,
    SignalSend,
};
use crate::output::print;

/// A client for the server the flags name, with the API key, else the session
/// stored by `serin login` for that server.
/// A 429 is waited out per its `Retry-After` (up to 30 s in all per call),
/// saying so on stderr.
pub(crate) fn client(args: &ClientArgs) -> anyhow::Result<Client> {
    let c = Client::new(&args.url)?.on_rate_limited(std::sync::Arc::new(|wait| {
        eprintln!(
            "serin: the server's rate limit for this key was reached; retrying in {}s",
            wait.as_secs()
        );
    }));
    // A key (`--api-key` or SERIN_API_KEY) first, saying so when a live
    // session from `serin login` is stored too: a key exported long ago must
    // not silently stand in for the person who just logged in.
    let session = crate::manage::stored(&args.url).filter(|s| {
        chrono::DateTime::parse_from_rfc3339(&s.expires_at)
            .map_or(true, |at| at > chrono::Utc::now())
    });
    Ok(match (&args.api_key, session) {
        (Some(k), Some(s)) => {
            eprintln!(
                "note: using the API key (--api-key or SERIN_API_KEY), not the session of {} from `serin login`; unset SERIN_API_KEY to act as {}",
                s.email, s.email
            );
            c.with_api_key(k)
        }
        (Some(k), None) => c.with_api_key(k),
        (None, Some(s)) => c.with_api_key(s.token),
        (None, None) => c,
    })
}

fn one_of(
    positional: &Option<String>,
    flag: &Option<String>,
    what: &str,
) -> anyhow::Result<String> {
    positional
        .clone()
        .or_else(|| flag.clone())
        .ok_or_else(|| anyhow!("give the {what}"))
}

pub async fn product(args: &ClientArgs, cmd: ProductCmd) -> anyhow::Result<()> {
    match cmd {
        ProductCmd::Add(a) => product_add(args, a).await,
        ProductCmd::List => print(args.output, &client(args)?.list_products().await?, false),
        ProductCmd::Show(p) => {
            let name = product_name(&p)?;
            print(
                args.output,
                &[client(args)?.get_product(&name).await?],
                true,
            )
        }
    }
}

pub async fn product_add(args: &ClientArgs, a: ProductAdd) -> anyhow::Result<()> {
    let name = one_of(&a.name, &a.name_flag, "product name (NAME or --name)")?;
    let p = client(args)?
        .create_product(&NewProduct {
            name,
            description: a.description,
        })
        .await?;
    print(args.output, &[p], true)
}

/// The id of the release `r` names: an id, or a product and a version
/// (looked up among the product's releases).
async fn release_id(c: &Client, r: &ReleaseId) -> anyhow::Result<i64> {
    match &r.version {
        None => r.id.parse().map_err(|_| {
            anyhow::anyhow!("{}: a release is its numeric id, or PRODUCT VERSION", r.id)
        }),
        Some(version) => Ok(c.find_release(&r.id, version).await?.id),
    }
}

fn product_name(p: &ProductRef) -> anyhow::Result<String> {
    one_of(
        &p.product,
        &p.product_flag,
        "product name (PRODUCT or --product)",
    )
}

pub async fn release(args: &ClientArgs, cmd: ReleaseCmd) -> anyhow::Result<()> {
    let c = client(args)?;
    let status = |id: i64, s: ReleaseStatus| {
        let c = c.clone();
        async move { c.set_release_status(id, s).await }
    };
    let r = match cmd {
        ReleaseCmd::Add(a) => return release_add(args, a).await,
        ReleaseCmd::List(p) => {
            return print(
                args.output,
                &c.list_releases(&product_name(&p)?).await?,
                false,
            );
        }
        ReleaseCmd::Latest(p) => return latest(args, p).await,
        ReleaseCmd::Show(r) => c.get_release(release_id(&c, &r).await?).await?,
        ReleaseCmd::Approve(r) => {
            status(release_id(&c, &r).await?, ReleaseStatus::Approved).await?
        }
        ReleaseCmd::Release(r) => {
            status(release_id(&c, &r).await?, ReleaseStatus::Released).await?
        }
        ReleaseCmd::Cancel(r) => {
            status(release_id(&c, &r).await?, ReleaseStatus::Cancelled).await?
        }
        ReleaseCmd::Rollback(r) => {
            status(release_id(&c, &r).await?, ReleaseStatus::RolledBack).await?
        }
        ReleaseCmd::Notes {
            product,
            version,
            environment,
            publish,
        } => {
            let r = c.find_release(&product, &version).await?;
            let notes = c
                .release_notes(r.id, environment.as_deref(), publish)
                .await?;
            match args.output {
                o @ (Output::Json | Output::Yaml) => crate::output::emit(o, &notes)?,
                Output::Table => print!("{}", notes["markdown"].as_str().unwrap_or_default()),
            }
            return Ok(());
        }
    };
    print(args.output, &[r], true)
}

pub async fn release_add(args: &ClientArgs, a: ReleaseAdd) -> anyhow::Result<()> {
    let new = NewRelease {
        product_name: one_of(
            &a.product,
            &a.product_flag,
            "product (PRODUCT or --product)",
        )?,
        version: one_of(
            &a.version,
            &a.version_flag,
            "version (VERSION or --version)",
        )?,
        description: a.description,
    };
    print(
        args.output,
        &[client(args)?.create_release(&new).await?],
        true,
    )
}

pub async fn latest(args: &ClientArgs, p: ProductRef) -> anyhow::Result<()> {
    let r = client(args)?.latest_stable(&product_name(&p)?).await?;
    print(args.output, &[r], true)
}

pub async fn signal_send(args: &ClientArgs, s: SignalSend) -> anyhow::Result<()> {
    let c = client(args)?;
    if let Some(path) = &s.file {
        let signals = read_signals(path)?;
        let n = signals.len();
        let accepted = c.send_signals(signals).await?;
        match args.output {
            o @ (Output::Json | Output::Yaml) => {
                crate::output::emit(o, &serde_json::json!({"accepted": accepted}))?
            }
            Output::Table => println!("accepted {accepted} of {n} signals"),
        }
        return Ok(());
    }
    let lane_text = s.lane.unwrap_or_default();
    let lane = Lane::parse(&lane_text)
        .ok_or_else(|| anyhow!("--lane: `{lane_text}` is not a lane; use stable or canary"))?;
    let kind = match &s.kind {
        None => SignalKind::default(),
        Some(k) => SignalKind::parse(k)
            .ok_or_else(|| anyhow!("--kind: `{k}`; use outcome, latency, counter or gauge"))?,
    };
    let mut tags = BTreeMap::new();
    for t in &s.tags {
        let (k, v) = t
            .split_once('=')
            .ok_or_else(|| anyhow!("--tag `{t}`: write KEY=VALUE"))?;
        tags.insert(k.to_string(), v.to_string());
    }
    let timestamp = match &s.timestamp {
        None => None,
        Some(t) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .with_context(|| {
                    format!("--timestamp `{t}`: use RFC 3339, e.g. 2026-01-02T03:04:05Z")
                })?
                .to_utc(),
        ),
    };
    let new = NewSignal {
        release_id: None,
        product_name: s.product,
        version: s.version,
        lane,
        name: s.name.unwrap_or_default(),
        value: s.value.unwrap_or_default(),
        kind,
        tags,
        timestamp,
    };
    print(args.output, &[c.send_signal(&new).await?], true)
}

/// Reads signals as a JSON array, a `{"signals": [...]}` object, or JSON lines.
fn read_signals(path: &std::path::Path) -> anyhow::Result<Vec<NewSignal>> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return serde_json::from_str(&text).context("the file is not a JSON array of signals");
    }
    if let Ok(batch) = serde_json::from_str::<SignalBatch>(&text) {
        return Ok(batch.signals);
    }
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        out.push(
            serde_json::from_str(line).with_context(|| format!("line {}: not a signal", i + 1))?,
        );
    }
    if out.is_empty() {
        bail!("no signals in {}", path.display());
    }
    Ok(out)
}

/// `serin audit`: the newest entries that match, oldest first; with `--follow`,
/// then every new one as it appears (polled every second) until Ctrl-C. Table
/// output is one line per entry; JSON output one object per line.
pub async fn audit(args: &ClientArgs, a: crate::cli::AuditArgs) -> anyhow::Result<()> {
    let c = client(args)?;
    let mut q = serin_client::AuditQuery {
        resource_type: a.resource_type,
        resource_id: a.resource_id,
        actor: a.actor,
        action: a.action,
        since: a.since,
        until: a.until,
        page: Some(1),
        page_size: Some(a.limit),
    };
    let entries = |v: serde_json::Value| -> Vec<serde_json::Value> {
        let mut list = v["audit_logs"].as_array().cloned().unwrap_or_default();
        list.reverse();
        list
    };
    let mut seen = std::collections::HashSet::new();
    let mut last = None;
    if args.output == Output::Table {
        println!("TIME                  ACTOR  ACTION  RESOURCE  MESSAGE");
    }
    for e in entries(c.audit_logs(&q).await?) {
        show_audit(args.output, &e)?;
        last = e["created_at"].as_str().map(str::to_string);
        seen.insert(e["id"].as_str().unwrap_or_default().to_string());
    }
    if !a.follow {
        return Ok(());
    }
    q.page_size = Some(100);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
        // Entries at or after the last one shown; those already shown are skipped.
        q.since = match &last {
            Some(t) => Some(t.parse().context("the server sent a bad timestamp")?),
            None => q.since,
        };
        for e in entries(c.audit_logs(&q).await?) {
            let id = e["id"].as_str().unwrap_or_default().to_string();
            if seen.insert(id) {
                show_audit(args.output, &e)?;
                last = e["created_at"].as_str().map(str::to_string);
            }
        }
    }
}

fn show_audit(output: Output, e: &serde_json::Value) -> anyhow::Result<()> {
    match output {
        o @ (Output::Json | Output::Yaml) => crate::output::emit_line(o, e)?,
        Output::Table => println!(
            "{}  {}  {}  {}/{}  {}",
            crate::output::when_str(e["created_at"].as_str().unwrap_or_default()),
            e["actor"].as_str().unwrap_or_default(),
            e["action"].as_str().unwrap_or_default(),
            e["resource_type"].as_str().unwrap_or_default(),
            e["resource_id"].as_str().unwrap_or_default(),
            e["message"].as_str().unwrap_or_default()
        ),
    }
    Ok(())
}
