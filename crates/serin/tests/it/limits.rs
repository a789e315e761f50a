//! Connection limits on the API: a client that sends its headers slowly, or
//! holds connections open doing nothing, is closed after the header timeout,
//! and at the connection cap new connections wait instead of exhausting the
//! server. The bounds here are outcomes with generous margins, not timings.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::Server;

fn addr(s: &Server) -> String {
    s.url.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection; how long that took.
async fn closed_after(mut c: TcpStream) -> Duration {
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return t.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the server kept the connection open for 20 s"),
        }
    }
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed_and_the_cap_holds() {
    let s = Server::sqlite_with(&[
        ("SERIN_HEADER_TIMEOUT", "1s"),
        ("SERIN_CONNECTION_LIMIT", "3"),
    ]);
    // Half a request's headers, then nothing.
    let mut slow = TcpStream::connect(addr(&s)).await.unwrap();
    slow.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(closed_after(slow).await < Duration::from_secs(10));
    // A whole request, answered, then an idle kept-alive connection.
    let mut idle = TcpStream::connect(addr(&s)).await.unwrap();
    idle.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(closed_after(idle).await < Duration::from_secs(10));
    // Three silent connections fill the cap; a fourth client still gets its
    // answer once the timeout frees a slot, and the server stays up.
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(addr(&s)).await.unwrap());
    }
    let r = tokio::time::timeout(
        Duration::from_secs(15),
        reqwest::get(format!("{}/api/v1/health", s.url)),
    )
    .await
    .expect("answered within 15 s")
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    drop(silent);
}

/// A body sent a byte now and then is cut off at the body timeout with 408
/// and the connection closed, however steadily it drips; an unauthenticated
/// caller's body is never read at all.
#[tokio::test]
async fn a_dripping_body_is_answered_408_within_the_body_timeout() {
    let s = Server::sqlite_with(&[
        ("SERIN_BODY_TIMEOUT", "2s"),
        ("SERIN_HEADER_TIMEOUT", "30s"),
    ]);
    let mut c = TcpStream::connect(addr(&s)).await.unwrap();
    let head = format!(
        "POST /api/v1/products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        crate::harness::ADMIN
    );
    c.write_all(head.as_bytes()).await.unwrap();
    let start = Instant::now();
    let (mut rd, mut wr) = c.into_split();
    let drip = tokio::spawn(async move {
        // One byte a second: no read ever waits long, the whole never arrives.
        for _ in 0..60 {
            if wr.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut answer)).await;
    drip.abort();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("BODY_TIMEOUT"), "{text}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    // Without a credential, the guard answers before any body is read.
    let mut c = TcpStream::connect(addr(&s)).await.unwrap();
    c.write_all(b"POST /api/v1/products HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut first))
        .await
        .expect("answered at once")
        .unwrap();
    assert_eq!(&first, b"HTTP/1.1 401");
}
