//! The notifier: turns wanted events into deliveries and sends them.
//!
//! Once a second it reads the event log after its cursor, records one delivery
//! per event and target that wants it (moving the cursor in the same
//! transaction), then sends the deliveries that are due, a few at a time. A JSON
//! delivery is signed when the server has a secret (`--webhook-secret`):
//!
//! ```text
//! X-Serin-Timestamp: <unix seconds>
//! X-Serin-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
//! ```
//!
//! A receiver recomputes the HMAC over the timestamp, a dot and the raw body,
//! compares in constant time, and refuses old timestamps to stop replays.
//! Every request also carries `X-Serin-Delivery` (the delivery id, stable across
//! retries) and `X-Serin-Event` (the event type). The retry policy and the
//! payloads are `serin_core::notify`'s.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use hmac::{Hmac, Mac};
use serin_core::canary::Deployment;
use serin_core::rollout::notify::{self, Delivery, DeliveryStatus, Format};
use serin_store::StoreError;
use sha2::Sha256;

use crate::App;

/// Events read per pass.
const BATCH: u64 = 500;
/// Deliveries sent at once.
const PARALLEL: usize = 8;
/// How long a target may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed delivery waits before it is due again (its sender
/// died): the send's timeout and some.
const CLAIM: Duration = Duration::from_secs(15);

/// Runs until `shutdown` resolves.
pub async fn run(state: App, shutdown: impl Future<Output = ()>) {
    crate::every_second(shutdown, || async {
        if let Err(e) = enqueue(&state).await {
            tracing::warn!(error = %e, "notifier cannot read the event log");
        }
        if let Err(e) = deliver(&state).await {
            tracing::warn!(error = %e, "notifier cannot send deliveries");
        }
    })
    .await;
}

/// Records deliveries for the events after the cursor; returns how many. The
/// store's feed is commit-ordered (`serin_store::FeedCursor`): an event
/// committed late by a slow transaction still comes after the cursor, so
/// nothing is re-read and nothing is missed.
pub async fn enqueue(state: &App) -> Result<usize, StoreError> {
    let mut cursor = state.store.notifier_cursor().await?;
    let mut total = 0;
    loop {
        let events = state.store.events_after(cursor, BATCH).await?;
        let Some(last) = events.last().map(|(at, _)| *at) else {
            return Ok(total);
        };
        let mut deployments: HashMap<String, Option<Deployment>> = HashMap::new();
        let mut deliveries = Vec::new();
        let now = state.now();
        for (_, e) in &events {
            let Some(id) = &e.deployment_id else { continue };
            if !deployments.contains_key(id) {
                let d = match state.store.get_deployment(id).await {
                    Ok(d) => Some(d),
                    Err(StoreError::NotFound { .. }) => None,
                    Err(err) => return Err(err),
                };
                deployments.insert(id.clone(), d);
            }
            let Some(d) = deployments.get(id).and_then(Option::as_ref) else {
                continue;
            };
            let Some(r) = &d.rollout else { continue };
            for n in r.spec.notifications.iter().filter(|n| n.wants(e.kind)) {
                let did = format!("delivery_{}", uuid::Uuid::new_v4());
                deliveries.push(Delivery {
                    payload: notify::payload(n.format, &did, e, d),
                    id: did,
                    event_id: e.id.clone(),
                    deployment_id: d.id.clone(),
                    url: n.url.clone(),
                    format: n.format,
                    status: DeliveryStatus::Pending,
                    attempts: 0,
                    last_error: None,
                    next_attempt_at: now,
                    delivered_at: None,
                });
            }
        }
        total += deliveries.len();
        state.store.enqueue_deliveries(last, deliveries).await?;
        if events.len() < BATCH as usize {
            return Ok(total);
        }
        cursor = last;
    }
}

/// `sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>").
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Sends the due deliveries and records each outcome.
pub async fn deliver(state: &App) -> Result<(), StoreError> {
    let due = state.store.due_deliveries(state.now(), 50).await?;
    let results: Vec<Result<(), StoreError>> = futures::stream::iter(due)
        .map(|d| send(state, d))
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    results.into_iter().collect()
}

async fn send(state: &App, mut d: Delivery) -> Result<(), StoreError> {
    let body = serde_json::to_vec(&d.payload).unwrap_or_default();
    let kind = d
        .payload
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or_default()
        .to_string();
    // Claimed before it is sent: the attempt is counted and the delivery is
    // not due again until the send has had its time. The write goes through
    // the leader's fenced store, so a replaced leader stops here; a leader
    // that dies mid-send leaves the delivery due again after the claim, to be
    // sent by its successor with the same `X-Serin-Delivery` id.
    d.attempts += 1;
    let claim = Delivery {
        next_attempt_at: state.now() + chrono::Duration::from_std(CLAIM).unwrap_or_default(),
        ..d.clone()
    };
    state.store.update_delivery(&claim).await?;
    let outcome = match target(state, &d).await {
        Ok((url, secret)) => match state.outbound.request(reqwest::Method::POST, &url).await {
            Ok(req) => post(state, &d, req, &kind, body, secret.as_deref()).await,
            Err(e) => Err(format!("not sent: {e}")),
        },
        Err(e) => Err(format!("not sent: {e}")),
    };
    let now = state.now();
    state.telemetry.delivery(
        "notification",
        if outcome.is_ok() {
            "delivered"
        } else {
            "failed"
        },
    );
    match outcome {
        Ok(()) => {
            d.status = DeliveryStatus::Delivered;
            d.delivered_at = Some(now);
            d.last_error = None;
        }
        Err(e) => {
            tracing::info!(delivery = %d.id, url = %d.url, attempts = d.attempts, error = %e, "delivery failed");
            d.last_error = Some(e);
            if d.attempts >= notify::MAX_ATTEMPTS {
                d.status = DeliveryStatus::Failed;
            } else {
                let wait = notify::backoff_secs(d.attempts);
                d.next_attempt_at = now + chrono::Duration::seconds(wait as i64);
            }
        }
    }
    state.store.update_delivery(&d).await
}

/// Where a delivery goes and the key that signs it: the URL its plan wrote,
/// or the one the secret it names holds, and the target's own signing secret
/// if its plan names one (read from the deployment's plan at send time, so
/// neither the URL nor the key is ever stored with the delivery).
async fn target(state: &App, d: &Delivery) -> Result<(String, Option<String>), String> {
    let sealer = state.config.sealer.as_ref();
    let url = crate::secrets::resolve_url(&state.store, sealer, &d.url).await?;
    let deployment = state
        .store
        .get_deployment(&d.deployment_id)
        .await
        .map_err(|e| format!("cannot read the deployment: {e}"))?;
    let named = deployment.rollout.as_ref().and_then(|r| {
        r.spec
            .notifications
            .iter()
            .find(|n| n.url == d.url && n.format == d.format)
            .and_then(|n| n.signing_secret.clone())
    });
    let key = match named {
        Some(name) => Some(crate::secrets::value(&state.store, sealer, &name).await?),
        None => state.config.webhook_secret.clone(),
    };
    Ok((url, key))
}

/// Sends one delivery's body, signed when it is JSON and there is a key.
async fn post(
    state: &App,
    d: &Delivery,
    req: reqwest::RequestBuilder,
    kind: &str,
    body: Vec<u8>,
    key: Option<&str>,
) -> Result<(), String> {
    let mut req = req
        .timeout(TIMEOUT)
        .header("content-type", "application/json")
        .header("x-serin-delivery", &d.id);
    if !kind.is_empty() {
        req = req.header("x-serin-event", kind);
    }
    if let (Format::Json, Some(secret)) = (d.format, key) {
        let ts = state.now().timestamp();
        req = req
            .header("x-serin-timestamp", ts.to_string())
            .header("x-serin-signature", signature(secret.as_bytes(), ts, &body));
    }
    match req.body(body).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
        Err(e) => Err(crate::outbound::describe(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Reference value computed independently with Python's hmac module:
        // hmac.new(b"s3cret", b"1700000000.{\"a\":1}", hashlib.sha256).hexdigest()
        assert_eq!(
            signature(b"s3cret", 1_700_000_000, br#"{"a":1}"#),
            "sha256=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
    }
}
