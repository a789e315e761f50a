//! Which release of a product is stable: what a deploy script or an
//! application asks at start.
//!
//! ```sh
//! SERIN_URL=http://127.0.0.1:8080 SERIN_API_KEY=srn_… \
//!     cargo run -p serin-client --example latest_stable -- web
//! ```

use serin_client::{Client, ClientError};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let product = std::env::args().nth(1).unwrap_or_else(|| "web".into());
    match latest(&product).await {
        Ok(version) => {
            println!("{version}");
            std::process::ExitCode::SUCCESS
        }
        // The server's code says what went wrong: no such product, nothing
        // released yet, a bad key.
        Err(e @ ClientError::Api { .. }) => {
            eprintln!("{e} [{}]", e.code().unwrap_or_default());
            std::process::ExitCode::from(4)
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::from(4)
        }
    }
}

async fn latest(product: &str) -> Result<String, ClientError> {
    let url = std::env::var("SERIN_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let mut client = Client::new(&url)?;
    if let Ok(key) = std::env::var("SERIN_API_KEY") {
        client = client.with_api_key(key);
    }
    Ok(client.latest_stable(product).await?.version)
}
