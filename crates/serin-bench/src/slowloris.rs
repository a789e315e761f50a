//! `slowloris BIN`: can a crowd of connections that never finish their headers
//! keep a health check from being answered? N connections (5,000 by default)
//! each send half of a request's headers and then nothing; meanwhile a prober
//! sends `GET /api/v1/health` on a fresh connection every few milliseconds, as
//! a load balancer would, and its latencies are compared with the same probes
//! before the crowd arrived. Then each crowd connection is watched until the
//! server closes it: all should be closed once the header timeout (10 s by
//! default) has passed. nginx, with the same header timeout, serving a fixed
//! `/health`, is measured the same way in the same run.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::stats::quantile;

/// One target's figures.
struct Figures {
    before: Vec<f64>,
    during: Vec<f64>,
    failed_probes: usize,
    opened: usize,
    closed_by: Vec<f64>,
    still_open: usize,
}

/// A health probe on a new connection: milliseconds to the status line.
async fn probe(addr: &str, path: &str) -> anyhow::Result<f64> {
    let t = Instant::now();
    let mut c = TcpStream::connect(addr).await?;
    c.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = [0u8; 12];
    c.read_exact(&mut buf).await?;
    if &buf[9..12] != b"200" {
        bail!("answered {}", String::from_utf8_lossy(&buf));
    }
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

async fn probes(addr: &str, path: &str, n: usize, failed: &mut usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        match tokio::time::timeout(Duration::from_secs(5), probe(addr, path)).await {
            Ok(Ok(ms)) => out.push(ms),
            _ => *failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    out
}

async fn measure(
    addr: &str,
    path: &str,
    crowd: usize,
    n_probes: usize,
    header_timeout: Duration,
) -> anyhow::Result<Figures> {
    let mut failed = 0;
    let before = probes(addr, path, n_probes, &mut failed).await;
    let mut held = Vec::with_capacity(crowd);
    let t_open = Instant::now();
    for i in 0..crowd {
        match TcpStream::connect(addr).await {
            Ok(mut c) => {
                if c.write_all(
                    format!("GET {path} HTTP/1.1\r\nHost: bench\r\nX-Slow: {i}\r\n").as_bytes(),
                )
                .await
                .is_ok()
                {
                    held.push((c, Instant::now()));
                }
            }
            Err(e) => {
                eprintln!("  connection {i} failed: {e}");
                break;
            }
        }
        if i % 1000 == 999 {
            eprintln!(
                "  {} slow connections open ({:.1}s)",
                i + 1,
                t_open.elapsed().as_secs_f64()
            );
        }
    }
    let opened = held.len();
    // Watch every crowd connection until the server closes it.
    let watch = held
        .into_iter()
        .map(|(mut c, since)| {
            tokio::spawn(async move {
                let mut buf = [0u8; 512];
                let limit = header_timeout + Duration::from_secs(20);
                loop {
                    match tokio::time::timeout(
                        limit.saturating_sub(since.elapsed()),
                        c.read(&mut buf),
                    )
                    .await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) => return Some(since.elapsed().as_secs_f64()),
                        Ok(Ok(_)) => {}
                        Err(_) => return None,
                    }
                }
            })
        })
        .collect::<Vec<_>>();
    let mut failed_probes = 0;
    let during = probes(addr, path, n_probes, &mut failed_probes).await;
    failed_probes += failed;
    let mut closed_by = Vec::new();
    let mut still_open = 0;
    for w in watch {
        match w.await? {
            Some(s) => closed_by.push(s),
            None => still_open += 1,
        }
    }
    Ok(Figures {
        before,
        during,
        failed_probes,
        opened,
        closed_by,
        still_open,
    })
}

fn report(name: &str, f: &mut Figures) -> f64 {
    f.before.sort_by(f64::total_cmp);
    f.during.sort_by(f64::total_cmp);
    f.closed_by.sort_by(f64::total_cmp);
    let q = |v: &[f64], p| {
        if v.is_empty() {
            f64::NAN
        } else {
            quantile(v, p)
        }
    };
    println!(
        "{name}: {} slow connections held; health probes alone p50 {:.2} ms p99 {:.2} ms; with the crowd p50 {:.2} ms p99 {:.2} ms max {:.2} ms ({} probes, {} failed); crowd closed after p50 {:.1} s max {:.1} s, {} never closed",
        f.opened,
        q(&f.before, 0.5),
        q(&f.before, 0.99),
        q(&f.during, 0.5),
        q(&f.during, 0.99),
        f.during.last().copied().unwrap_or(f64::NAN),
        f.during.len(),
        f.failed_probes,
        q(&f.closed_by, 0.5),
        f.closed_by.last().copied().unwrap_or(f64::NAN),
        f.still_open,
    );
    q(&f.during, 0.99)
}

/// An nginx in a temporary prefix with the same header timeout; its address.
fn nginx(dir: &std::path::Path, port: u16, crowd: usize) -> anyhow::Result<std::process::Child> {
    std::fs::create_dir_all(dir.join("logs"))?;
    let conf = format!(
        "daemon off;\nworker_processes 2;\nerror_log {d}/logs/error.log crit;\npid {d}/nginx.pid;\nworker_rlimit_nofile {files};\nevents {{ worker_connections {conns}; }}\nhttp {{\n  access_log off;\n  client_header_timeout 10s;\n  server {{\n    listen 127.0.0.1:{port} backlog=4096;\n    location = /health {{ return 200 'ok'; }}\n  }}\n}}\n",
        d = dir.display(),
        files = crowd * 2 + 1024,
        conns = crowd + 1024,
    );
    std::fs::write(dir.join("nginx.conf"), conf)?;
    std::process::Command::new("nginx")
        .args([
            "-p",
            &dir.display().to_string(),
            "-c",
            &dir.join("nginx.conf").display().to_string(),
        ])
        .spawn()
        .context("cannot start nginx (Debian package nginx)")
}

pub async fn main(bin: &str, crowd: usize, n_probes: usize) -> anyhow::Result<()> {
    let files = rlimit::increase_nofile_limit(u64::MAX)?;
    println!(
        "slowloris: {crowd} connections sending half their headers; {n_probes} health probes before and during; this process may open {files} files"
    );
    let header_timeout = Duration::from_secs(10);
    let (server, _) = crate::start(bin)?;
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut s = measure(&addr, "/api/v1/health", crowd, n_probes, header_timeout).await?;
    let serin_p99 = report("serin", &mut s);
    drop(server);
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = nginx(dir.path(), port, crowd)?;
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if TcpStream::connect(&addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let n = measure(&addr, "/health", crowd, n_probes, header_timeout).await;
    // SIGTERM: the master stops its workers (SIGKILL would orphan them).
    let _ = std::process::Command::new("nginx")
        .args([
            "-p",
            &dir.path().display().to_string(),
            "-c",
            &dir.path().join("nginx.conf").display().to_string(),
            "-s",
            "stop",
        ])
        .status();
    let _ = child.wait();
    let mut n = n?;
    let nginx_p99 = report("nginx", &mut n);
    println!(
        "ratio: serin's health p99 with the crowd is {:.2}× nginx's",
        serin_p99 / nginx_p99
    );
    Ok(())
}
