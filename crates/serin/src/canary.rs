//! `serin canary`, `serin worker` and `serin apikey`, on `serin-client`.

use anyhow::{Context, anyhow};
use futures::StreamExt;
use serde_json::Value;
use serin_core::Lane;
use serin_core::canary::worker::{NewWorker, WorkerStatus};
use serin_core::canary::{NewDeployment, Route, RoutingStrategy, Upstreams};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::cli::{ApiKeyCmd, CanaryCmd, CanaryCreate, ClientArgs, Output, WorkerCmd};
use crate::commands::client;
use crate::output::{print, print_value};

pub(crate) fn duration(
    field: &str,
    v: Option<String>,
) -> anyhow::Result<Option<serin_core::duration::GoDuration>> {
    v.map(|s| s.parse().map_err(|e| anyhow!("--{field}: {e}")))
        .transpose()
}

pub(crate) fn new_deployment(c: CanaryCreate) -> anyhow::Result<NewDeployment> {
    let strategy = c
        .strategy
        .map(|s| {
            serde_json::from_value::<RoutingStrategy>(Value::String(s.clone())).map_err(|_| {
                anyhow!("--strategy `{s}`: use split_queue, stream_group or hash_ring")
            })
        })
        .transpose()?;
    let upstreams =
        (!c.stable_upstreams.is_empty() || !c.canary_upstreams.is_empty()).then_some(Upstreams {
            stable: c.stable_upstreams,
            canary: c.canary_upstreams,
        });
    let route = (c.host.is_some() || c.path_prefix.is_some()).then_some(Route {
        host: c.host,
        path_prefix: c.path_prefix,
    });
    Ok(NewDeployment {
        queue_name: c.queue_name,
        tenant_id: c.tenant,
        stable_version: c.stable_version,
        canary_version: c.canary_version,
        percentage: c.percent.map(Value::from),
        routing_strategy: strategy,
        sticky_routing: c.sticky,
        auto_promotion: c.auto_promotion,
        max_duration: duration("max-duration", c.max_duration)?,
        min_duration: duration("min-duration", c.min_duration)?,
        metrics_window: duration("metrics-window", c.metrics_window)?,
        profile: c.profile,
        product: c.product,
        environment: c.environment,
        upstreams,
        route,
        ..Default::default()
    })
}

pub async fn canary(args: &ClientArgs, cmd: CanaryCmd) -> anyhow::Result<()> {
    let c = client(args)?;
    match cmd {
        CanaryCmd::Create(create) => print(
            args.output,
            &[c.create_deployment(&new_deployment(*create)?).await?],
            true,
        ),
        CanaryCmd::List => print(args.output, &c.list_deployments().await?, false),
        CanaryCmd::Get(d) => print(args.output, &[c.get_deployment(&d.id).await?], true),
        CanaryCmd::SetPercent { id, percent } => {
            answer(args.output, &id, &c.set_percentage(&id, percent).await?)
        }
        CanaryCmd::Promote(d) => answer(args.output, &d.id, &c.promote(&d.id).await?),
        CanaryCmd::Rollback { id, reason } => {
            answer(args.output, &id, &c.rollback(&id, &reason).await?)
        }
        CanaryCmd::Pause { id, reason } => {
            answer(args.output, &id, &c.pause(&id, reason.as_deref()).await?)
        }
        CanaryCmd::Resume(d) => answer(args.output, &d.id, &c.resume(&d.id).await?),
        CanaryCmd::Delete(d) => {
            c.delete_deployment(&d.id).await?;
            if args.output == Output::Table {
                println!("deleted {}", d.id);
            }
            Ok(())
        }
        CanaryCmd::Health(d) => {
            let h = c.deployment_health(&d.id).await?;
            match args.output {
                o @ (Output::Json | Output::Yaml) => crate::output::emit(o, &h)?,
                Output::Table => {
                    println!(
                        "overall: {}",
                        serde_json::to_value(h.overall_status)?
                            .as_str()
                            .unwrap_or("?")
                    );
                    print(
                        Output::Table,
                        &[
                            h.error_rate_check,
                            h.latency_check,
                            h.throughput_check,
                            h.sample_size_check,
                            h.duration_check,
                        ],
                        false,
                    )?;
                }
            }
            Ok(())
        }
        CanaryCmd::Metrics(d) => {
            let m = c.metrics(&d.id).await?;
            match args.output {
                o @ (Output::Json | Output::Yaml) => crate::output::emit(o, &m)?,
                Output::Table => print(
                    Output::Table,
                    &[("stable", m.stable), ("canary", m.canary)],
                    false,
                )?,
            }
            Ok(())
        }
        CanaryCmd::Events { id, follow } => {
            let mut events = c.events(&id, 1, 100).await?;
            events.reverse();
            if follow && args.output.is_data() {
                // One JSON object a line (a YAML document each), the history
                // first, as the stream goes on.
                for e in &events {
                    crate::output::emit_line(args.output, e)?;
                }
            } else {
                print(args.output, &events, false)?;
            }
            if follow {
                let d = c.get_deployment(&id).await?;
                if !d.status.is_live() {
                    eprintln!("{id} is {}: nothing more will happen", d.status.as_str());
                    return Ok(());
                }
                follow_events(args, &c, &id).await?;
            }
            Ok(())
        }
        CanaryCmd::Profiles => {
            let p = serde_json::to_value(c.profiles().await?)?;
            if args.output.is_data() {
                return print_value(args.output, &p);
            }
            // One row a profile, named.
            let rows: Vec<Value> = ["default", "conservative", "aggressive"]
                .iter()
                .map(|name| {
                    let mut r = p[*name].clone();
                    r["name"] = Value::from(*name);
                    r
                })
                .collect();
            crate::manage::rows(
                args.output,
                &rows,
                &[
                    ("PROFILE", "name"),
                    ("ROUTING", "routing_strategy"),
                    ("STICKY", "sticky_routing"),
                    ("AUTO-PROMOTE", "auto_promotion"),
                    ("MIN", "min_canary_duration"),
                    ("MAX", "max_canary_duration"),
                    ("WINDOW", "metrics_window"),
                ],
            )
        }
    }
}

/// Prints an action's answer: one line for people (`ID: message`), the
/// answer itself as data.
fn answer(output: Output, id: &str, v: &Value) -> anyhow::Result<()> {
    if output.is_data() {
        return print_value(output, v);
    }
    match (v["message"].as_str(), v["reason"].as_str()) {
        (Some(m), Some(r)) => println!("{id}: {m} ({r})"),
        (Some(m), None) => println!("{id}: {m}"),
        _ => print_value(output, v)?,
    }
    Ok(())
}

/// The WebSocket stream of a deployment's live events.
pub(crate) type EventSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a deployment's live event stream with the client's credentials (a
/// key, or the session); a failure is a transport error (exit 4).
pub(crate) async fn events_socket(
    args: &ClientArgs,
    c: &serin_client::Client,
    id: &str,
) -> anyhow::Result<EventSocket> {
    let base = args.url.trim_end_matches('/');
    let ws_url = format!(
        "{}/api/v1/canary/deployments/{id}/events",
        base.replacen("http", "ws", 1)
    );
    let mut request = ws_url
        .as_str()
        .into_client_request()
        .context("bad server URL")?;
    if let Some(key) = c.api_key() {
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {key}").parse().context("bad API key")?,
        );
    }
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| serin_client::ClientError::Transport {
            url: ws_url.clone(),
            reason: e.to_string(),
        })?;
    Ok(socket)
}

/// Streams a deployment's live events until it ends (promoted or rolled
/// back), the server closes, or Ctrl-C: one readable line an event (NDJSON
/// with `-o json`).
async fn follow_events(
    args: &ClientArgs,
    c: &serin_client::Client,
    id: &str,
) -> anyhow::Result<()> {
    let mut socket = events_socket(args, c, id).await?;
    // It may have ended between the check before and the stream's start.
    let d = c.get_deployment(id).await?;
    if !d.status.is_live() {
        eprintln!("{id} is {}: nothing more will happen", d.status.as_str());
        return Ok(());
    }
    eprintln!("following {id} until it ends (Ctrl-C to stop)…");
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            msg = socket.next() => match msg {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    match args.output {
                        o @ (Output::Json | Output::Yaml) => crate::output::emit_line(o, &v)?,
                        _ => {
                            if let Some(line) = describe(&v) {
                                println!(
                                    "{}  {:<26} {line}",
                                    crate::output::when_str(v["timestamp"].as_str().unwrap_or_default()),
                                    v["type"].as_str().unwrap_or("")
                                );
                            }
                        }
                    }
                    let ended = v["type"] == "deployment_status_changed"
                        && matches!(v["data"]["new_status"].as_str(), Some("completed" | "failed"));
                    if ended {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    return Err(serin_client::ClientError::Transport {
                        url: format!("{}/api/v1/canary/deployments/{id}/events", args.url),
                        reason: format!("the event stream broke: {e}"),
                    }
                    .into());
                }
                None => return Ok(()),
            }
        }
    }
}

/// One readable line for a stream message (`None`: nothing worth a line).
fn describe(v: &Value) -> Option<String> {
    let d = &v["data"];
    let s = |k: &str| d[k].as_str().unwrap_or("?").to_string();
    Some(match v["type"].as_str()? {
        "deployment_status_changed" => {
            let reason = d["reason"]
                .as_str()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            match d["old_status"].as_str() {
                Some(old) => format!("{old} → {}{reason}", s("new_status")),
                None => format!("{}{reason}", s("new_status")),
            }
        }
        "percentage_updated" => {
            format!("canary {}% → {}%", d["old_percentage"], d["new_percentage"])
        }
        "promotion_triggered" => "promoted".into(),
        "rollback_triggered" => format!("rolled back: {}", s("reason")),
        "health_status_changed" => format!(
            "health {} → {}",
            d["old_status"].as_str().unwrap_or("unknown"),
            s("new_status")
        ),
        "metrics_updated" => {
            let lane = |l: &Value| {
                let pct = |x: &Value| x.as_f64().map_or("–".into(), |p| format!("{p:.1}%"));
                let ms = |x: &Value| x.as_f64().map_or("–".into(), |p| format!("{p:.0} ms"));
                format!(
                    "{} requests, errors {}, p95 {}",
                    l["job_count"],
                    pct(&l["error_rate"]),
                    ms(&l["p95_latency"])
                )
            };
            format!(
                "canary {} | stable {}",
                lane(&d["canary"]),
                lane(&d["stable"])
            )
        }
        _ => return None,
    })
}

pub async fn worker(args: &ClientArgs, cmd: WorkerCmd) -> anyhow::Result<()> {
    let c = client(args)?;
    let lane = |l: Option<String>| -> anyhow::Result<Option<Lane>> {
        l.map(|s| Lane::parse(&s).ok_or_else(|| anyhow!("--lane `{s}`: use stable or canary")))
            .transpose()
    };
    match cmd {
        WorkerCmd::List { lane: l } => print(args.output, &c.list_workers(lane(l)?).await?, false),
        WorkerCmd::Register {
            id,
            worker_version,
            lane: l,
            queues,
        } => {
            let w = NewWorker {
                id,
                version: worker_version,
                lane: lane(l)?,
                queues,
                metadata: Default::default(),
            };
            print(args.output, &[c.register_worker(&w).await?], true)
        }
        WorkerCmd::Status { id, status } => {
            let s = WorkerStatus::parse(&status).ok_or_else(|| {
                anyhow!("`{status}`: use healthy, degraded, unhealthy or unreachable")
            })?;
            print_value(args.output, &c.set_worker_status(&id, s).await?)
        }
    }
}

pub async fn apikey(args: &ClientArgs, cmd: ApiKeyCmd) -> anyhow::Result<()> {
    let c = client(args)?;
    match cmd {
        ApiKeyCmd::Create { name, role } => {
            let role = serin_core::auth::Role::parse(&role).map_err(|e| anyhow!("--{e}"))?;
            let k = c.create_api_key(&name, role).await?;
            match args.output {
                o @ (Output::Json | Output::Yaml) => crate::output::emit(o, &k)?,
                Output::Table => {
                    println!(
                        "created {} ({}), id {}",
                        k["name"].as_str().unwrap_or(""),
                        k["role"].as_str().unwrap_or(""),
                        k["id"].as_str().unwrap_or("")
                    );
                    println!(
                        "key (shown once, store it now): {}",
                        k["key"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(())
        }
        ApiKeyCmd::List => crate::manage::rows(
            args.output,
            &c.list_api_keys().await?,
            &[
                ("ID", "id"),
                ("NAME", "name"),
                ("ROLE", "role"),
                ("PREFIX", "prefix"),
                ("CREATED", "created_at"),
                ("BY", "created_by"),
                ("REVOKED", "revoked_at"),
            ],
        ),
        ApiKeyCmd::Revoke { id } => print_value(args.output, &c.revoke_api_key(&id).await?),
    }
}
