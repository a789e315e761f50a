//! The one place where a failed proxying becomes a response.
//!
//! | failure                                   | status | counted as        |
//! |-------------------------------------------|--------|-------------------|
//! | no route for the host and path            | 404    | nothing (no lane) |
//! | the chosen lane has no endpoints          | 503    | lane `connect`    |
//! | connect refused, reset, protocol error    | 502    | lane `connect`    |
//! | no response headers within the timeout    | 504    | lane `timeout`    |
//! | the client's request body broke off       | 400    | nothing (client)  |
//!
//! The body is Serin's error body (`{"error", "code", "details"}`) with a message a
//! client can show; the underlying error goes to the log only. Nothing is retried:
//! a canary's failures must reach the analysis, not be hidden by a second try on
//! another endpoint.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use serin_core::Lane;

use crate::stats::Outcome;

/// Why a request could not be proxied.
#[derive(Debug)]
pub enum ProxyError {
    /// No deployment serves this host and path.
    NoRoute,
    /// The lane chosen has no endpoints.
    NoEndpoint(Lane),
    /// The upstream could not be reached or broke the exchange.
    Connect(Lane, String),
    /// The upstream didn't answer in time.
    Timeout(Lane, std::time::Duration),
    /// The client broke off its own request (its body stopped): not the lane's fault.
    ClientAborted(String),
}

impl ProxyError {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::ClientAborted(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoEndpoint(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect(..) => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout(..) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// How it is counted against its lane (`None`: no lane was chosen).
    pub fn outcome(&self) -> Option<Outcome> {
        let code = self.status().as_u16();
        match self {
            ProxyError::NoRoute | ProxyError::ClientAborted(_) => None,
            ProxyError::NoEndpoint(_) | ProxyError::Connect(..) => {
                Some(Outcome::ConnectError(code))
            }
            ProxyError::Timeout(..) => Some(Outcome::Timeout(code)),
        }
    }

    fn code_and_message(&self) -> (&'static str, String) {
        match self {
            ProxyError::NoRoute => ("NO_ROUTE", "no deployment serves this host and path".into()),
            ProxyError::ClientAborted(_) => (
                "CLIENT_ABORTED",
                "the request body ended before it was complete".into(),
            ),
            ProxyError::NoEndpoint(l) => (
                "NO_UPSTREAM",
                format!("the {l} lane of this service has no endpoints"),
            ),
            ProxyError::Connect(l, _) => (
                "UPSTREAM_UNAVAILABLE",
                format!("the {l} upstream could not be reached"),
            ),
            ProxyError::Timeout(l, t) => (
                "UPSTREAM_TIMEOUT",
                format!(
                    "the {l} upstream did not answer within {} ms",
                    t.as_millis()
                ),
            ),
        }
    }

    /// The response.
    pub fn response(&self) -> Response<Full<Bytes>> {
        let (code, message) = self.code_and_message();
        let lane = match self {
            ProxyError::NoRoute | ProxyError::ClientAborted(_) => String::from("null"),
            ProxyError::NoEndpoint(l) | ProxyError::Connect(l, _) | ProxyError::Timeout(l, _) => {
                format!("\"{l}\"")
            }
        };
        let body = format!(
            "{{\"error\":\"{message}\",\"code\":\"{code}\",\"details\":{{\"lane\":{lane}}}}}"
        );
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = self.status();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_bodies() {
        let e = ProxyError::Timeout(Lane::Canary, std::time::Duration::from_millis(250));
        assert_eq!(e.status(), 504);
        assert_eq!(e.outcome(), Some(Outcome::Timeout(504)));
        let r = e.response();
        assert_eq!(r.status(), 504);
        assert_eq!(
            ProxyError::Connect(Lane::Stable, "refused".into()).status(),
            502
        );
        assert_eq!(ProxyError::NoEndpoint(Lane::Canary).status(), 503);
        assert_eq!(ProxyError::NoRoute.outcome(), None);
    }
}
