//! Outbound HTTP: the one client Serin uses to call webhooks, gates, health
//! endpoints and Prometheus, and how its failures are described.
//!
//! Redirects are not followed (a gate or a webhook answers itself), there is no
//! proxy from the environment, and every call sets its own timeout. Failure text
//! names the kind of failure — timeout, refused, DNS — without internal detail.

use std::time::Duration;

/// The shared client.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("serin/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds with static settings")
}

/// A failure in words.
pub fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else if e.is_request() {
        "the request could not be sent".into()
    } else if e.is_body() || e.is_decode() {
        "the answer could not be read".into()
    } else {
        "the call failed".into()
    }
}

/// POSTs `body` as JSON; yes when the answer is 2xx. The text kept is the status
/// and the first 500 characters of the answer's body, or why there was none.
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    timeout: Duration,
) -> (bool, String) {
    match http.post(url).timeout(timeout).json(body).send().await {
        Ok(resp) => {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let text: String = text.trim().chars().take(500).collect();
            (
                status.is_success(),
                format!("HTTP {}: {text}", status.as_u16()),
            )
        }
        Err(e) => (false, format!("no answer: {}", describe(&e))),
    }
}
