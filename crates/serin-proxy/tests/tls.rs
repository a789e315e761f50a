//! TLS against real sockets: certificates made here by rcgen (a CA and
//! leaves), a listener that chooses its certificate by SNI and takes renewed
//! files without a restart, and `https://` upstreams verified against a CA
//! the operator gives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serin_core::canary::{DeploymentStatus, Route, Upstreams};
use serin_core::traffic::proxy::{ProxyRoute, RouteSet};
use serin_proxy::tls::{CertFiles, Certificates, UpstreamTls};
use serin_proxy::{Proxy, ProxyConfig};
use tokio::net::TcpListener;

struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

fn ca() -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A leaf for `names` signed by `ca`, written as `dir/stem.crt` and `dir/stem.key`.
fn leaf(ca: &Ca, names: &[&str], dir: &Path, stem: &str) -> CertFiles {
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let files = CertFiles {
        cert: dir.join(format!("{stem}.crt")),
        key: dir.join(format!("{stem}.key")),
    };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    files
}

/// A plain HTTP upstream answering the `X-Forwarded-Proto` it was sent.
async fn upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let proto = req
                        .headers()
                        .get("x-forwarded-proto")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(proto))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// An HTTPS upstream with `files`' certificate, answering `secure`.
async fn tls_upstream(files: &CertFiles) -> SocketAddr {
    let certs = Certificates::load(vec![files.clone()]).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(certs.server_config());
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(s) = acceptor.accept(s).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("secure"))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

fn route(stable: &str) -> ProxyRoute {
    ProxyRoute {
        deployment_id: "d".into(),
        name: "web".into(),
        tenant_id: None,
        status: DeploymentStatus::Active,
        percent: 0,
        stable_version: "v1".into(),
        canary_version: "v2".into(),
        route: Route::default(),
        upstreams: Upstreams {
            stable: vec![stable.to_string()],
            canary: vec![],
        },
        traffic: Default::default(),
        revision: 1,
        mirror_percent: 0,
    }
}

/// A client that trusts only `ca` and finds every name at `addr`.
fn client_trusting(ca: &Ca, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert.pem().as_bytes()).unwrap())
        .resolve("a.test", addr)
        .resolve("b.test", addr)
        .no_proxy()
        .build()
        .unwrap()
}

async fn answer(c: &reqwest::Client, url: &str) -> Result<String, String> {
    let r = c.get(url).send().await.map_err(|e| format!("{e:?}"))?;
    r.text().await.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_chooses_by_sni_and_takes_renewed_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca1 = ca();
    let a = leaf(&ca1, &["a.test"], dir.path(), "a");
    let b = leaf(&ca1, &["b.test"], dir.path(), "b");
    let certs = Certificates::load(vec![a.clone(), b]).unwrap();
    let up = upstream().await;
    let proxy = Proxy::new(&ProxyConfig::default());
    assert!(
        proxy
            .set_routes(&RouteSet::new(vec![route(&format!("http://{up}"))]))
            .is_empty()
    );
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(serin_proxy::run_with(
        l,
        proxy,
        Some(certs.server_config()),
        std::future::pending(),
    ));
    let c1 = client_trusting(&ca1, addr);
    let port = addr.port();
    // Each name gets its own certificate (the client checks the name), and
    // the upstream is told the client came over TLS.
    for name in ["a.test", "b.test"] {
        assert_eq!(
            answer(&c1, &format!("https://{name}:{port}/"))
                .await
                .as_deref(),
            Ok("https"),
            "{name}"
        );
    }
    // a.test renewed by another CA: served once the files are read again.
    let ca2 = ca();
    leaf(&ca2, &["a.test"], dir.path(), "a");
    assert_eq!(certs.reload_if_changed(), Ok(true));
    assert_eq!(
        certs.reload_if_changed(),
        Ok(false),
        "nothing changed since"
    );
    let c2 = client_trusting(&ca2, addr);
    assert_eq!(
        answer(&c2, &format!("https://a.test:{port}/"))
            .await
            .as_deref(),
        Ok("https")
    );
    // New connections (a kept-alive one keeps the certificate it shook hands with).
    let c1 = client_trusting(&ca1, addr);
    assert!(
        answer(&c1, &format!("https://a.test:{port}/"))
            .await
            .is_err()
    );
    assert_eq!(
        answer(&c1, &format!("https://b.test:{port}/"))
            .await
            .as_deref(),
        Ok("https"),
        "b.test's certificate is unchanged"
    );
    // A key that doesn't parse: refused, and the certificates in use stay.
    std::fs::write(&a.key, "not a key").unwrap();
    assert!(certs.reload_if_changed().is_err());
    let c2 = client_trusting(&ca2, addr);
    assert_eq!(
        answer(&c2, &format!("https://a.test:{port}/"))
            .await
            .as_deref(),
        Ok("https")
    );
    assert!(Certificates::load(vec![]).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_verified_against_the_given_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    let files = leaf(&ca, &["localhost"], dir.path(), "up");
    let up = tls_upstream(&files).await;
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert.pem()).unwrap();
    let url = format!("https://localhost:{}", up.port());
    let serve = |config: ProxyConfig| {
        let url = url.clone();
        async move {
            let proxy = Proxy::new(&config);
            assert!(
                proxy
                    .set_routes(&RouteSet::new(vec![route(&url)]))
                    .is_empty()
            );
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            tokio::spawn(serin_proxy::run(l, proxy.clone(), std::future::pending()));
            (proxy, addr)
        }
    };
    let trusted = UpstreamTls {
        ca: Some(ca_file),
        client: None,
    }
    .client_config()
    .unwrap();
    let (_p, addr) = serve(ProxyConfig {
        upstream_tls: Some(Arc::clone(&trusted)),
        ..ProxyConfig::default()
    })
    .await;
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..3 {
        let r = c.get(format!("http://{addr}/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "secure");
    }
    // Without the CA the upstream's certificate is not trusted: 502, counted
    // as a failed connection in the stable lane.
    let (untrusting, addr) = serve(ProxyConfig::default()).await;
    let r = c.get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let (buckets, _) = untrusting.registry().drain(i64::MAX);
    assert_eq!(buckets.iter().map(|b| b.errors_connect).sum::<u64>(), 1);
    // A CA file that isn't one is refused up front.
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "nothing").unwrap();
    assert!(
        UpstreamTls {
            ca: Some(bad),
            client: None
        }
        .client_config()
        .is_err()
    );
}
