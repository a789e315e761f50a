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
