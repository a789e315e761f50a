//! A pipeline gate: start a canary deployment of the version just built,
//! with a plan the controller drives, and wait for its end: exit 0 when it
//! is promoted, 1 when it is rolled back (as `serin rollout watch` does).
//!
//! ```sh
//! SERIN_URL=http://127.0.0.1:8080 SERIN_API_KEY=srn_… \
//!     cargo run -p serin-client --example canary_gate -- shop v1 v2 \
//!     http://127.0.0.1:9001 http://127.0.0.1:9002
//! ```

use std::process::ExitCode;
use std::time::Duration;

use serin_client::Client;
use serin_core::canary::{DeploymentStatus, NewDeployment, Upstreams};
use serin_core::rollout::RolloutSpec;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [queue, stable, canary, stable_url, canary_url] = <[String; 5]>::try_from(args)
        .map_err(|_| "usage: canary_gate QUEUE STABLE CANARY STABLE_URL CANARY_URL")?;
    let url = std::env::var("SERIN_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let mut client = Client::new(&url)?;
    if let Ok(key) = std::env::var("SERIN_API_KEY") {
        client = client.with_api_key(key);
    }
    // 10% watched for a minute, then half, then all; the sequential judge
    // rolls back as soon as the canary is proven worse.
    let plan: RolloutSpec = serde_json::from_value(serde_json::json!({"steps": [
        {"set_weight": 10}, {"analysis": {"window": "1m"}},
        {"set_weight": 50}, {"analysis": {"window": "1m"}},
        {"set_weight": 100}]}))?;
    let d = client
        .create_deployment(&NewDeployment {
            queue_name: queue,
            stable_version: stable,
            canary_version: canary,
            upstreams: Some(Upstreams {
                stable: vec![stable_url],
                canary: vec![canary_url],
            }),
            rollout: Some(plan),
            ..Default::default()
        })
        .await?;
    eprintln!("started {}", d.id);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = client.get_deployment(&d.id).await?;
        match now.status {
            DeploymentStatus::Completed => return Ok(ExitCode::SUCCESS),
            DeploymentStatus::Failed => {
                eprintln!("rolled back: {}", now.status_reason.unwrap_or_default());
                return Ok(ExitCode::from(1));
            }
            _ => eprintln!("{} at {}%", now.status.as_str(), now.current_percent),
        }
    }
}
