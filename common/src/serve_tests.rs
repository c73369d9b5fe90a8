use std::time::Duration;

use axum::routing::post;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

fn limits() -> Limits {
    let mut l = Limits::new(&["/echo"]);
    l.header_read_timeout = Duration::from_millis(500);
    l.body_timeout = Duration::from_millis(800);
    l.max_connections = 4;
    l.priority_reserve = 2;
    l.body_caps = l.body_caps.with(&["/big"], 4 << 20);
    l
}

async fn start(limits: Limits) -> SocketAddr {
    let router = Router::new()
        .route("/echo", post(|| async { "echo" }))
        .route("/other", post(|| async { "other" }))
        .route(
            "/big",
            post(|b: axum::body::Bytes| async move { b.len().to_string() }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "slow"
            }),
        )
        .route(
            "/peer",
            post(|ConnectInfo(p): ConnectInfo<SocketAddr>| async move { p.ip().to_string() }),
        )
        .layer(axum::extract::DefaultBodyLimit::disable());
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(serve(l, router, limits, std::future::pending()));
    addr
}

/// Everything the server sends until it closes or `within` passes.
async fn answer(s: &mut TcpStream, within: Duration) -> String {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(within, s.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

async fn post_close(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    answer(&mut s, Duration::from_secs(2)).await
}

/// True when the server closed `s` within `within`.
async fn closed(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(within, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn slow_headers_and_idle_keep_alive_are_closed() {
    let addr = start(limits()).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    assert!(idle.read(&mut buf).await.unwrap() > 0);
    assert!(
        closed(&mut slow, Duration::from_secs(2)).await,
        "slow headers"
    );
    assert!(
        closed(&mut idle, Duration::from_secs(2)).await,
        "idle keep-alive"
    );
}

#[tokio::test]
async fn bodies_over_the_cap_are_refused_before_and_while_reading() {
    let addr = start(limits()).await;
    for (path, cap) in [("/other", "2 MiB"), ("/big", "4 MiB"), ("/echo", "64 KiB")] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let a = answer(&mut s, Duration::from_secs(1)).await;
        assert!(a.starts_with("HTTP/1.1 413"), "{path}: {a}");
        assert!(a.contains(&format!("{path} takes at most {cap}")), "{a}");
    }
    // Chunked: no length up front; cut once past the cap.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..5 {
        let _ = s
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await;
        let _ = s.write_all(&chunk).await;
        let _ = s.write_all(b"\r\n").await;
    }
    let a = answer(&mut s, Duration::from_secs(2)).await;
    assert!(a.starts_with("HTTP/1.1 413"), "{a:.200}");
    assert!(a.contains("/big takes at most 4 MiB"), "{a:.200}");
    // Within the cap: read whole.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let body = vec![b'a'; 3 << 20];
    s.write_all(
        format!(
            "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    s.write_all(&body).await.unwrap();
    let a = answer(&mut s, Duration::from_secs(2)).await;
    assert!(
        a.starts_with("HTTP/1.1 200") && a.ends_with("3145728"),
        "{a}"
    );
}

#[tokio::test]
async fn a_body_too_slow_is_408() {
    let addr = start(limits()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let a = answer(&mut s, Duration::from_secs(2)).await;
    assert!(a.starts_with("HTTP/1.1 408"), "{a}");
}

#[tokio::test]
async fn at_the_cap_the_longest_idle_connection_is_closed() {
    let addr = start(limits()).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(addr).await.unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let a = post_close(addr, "/other").await;
    assert!(a.starts_with("HTTP/1.1 200"), "{a}");
    assert!(
        closed(&mut idle[0], Duration::from_millis(300)).await,
        "the oldest is closed"
    );
    assert!(
        !closed(&mut idle[3], Duration::from_millis(100)).await,
        "the newest stays"
    );
}

#[tokio::test]
async fn when_every_connection_is_busy_the_reserve_serves_only_priority_paths() {
    let addr = start(limits()).await;
    let mut busy = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        busy.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let a = post_close(addr, "/echo").await;
    assert!(a.starts_with("HTTP/1.1 200") && a.ends_with("echo"), "{a}");
    let a = post_close(addr, "/other").await;
    assert!(a.starts_with("HTTP/1.1 503"), "{a}");
    assert!(a.contains("only /echo"), "{a}");
}

#[tokio::test]
async fn handlers_see_the_peer() {
    let addr = start(limits()).await;
    let a = post_close(addr, "/peer").await;
    assert!(a.ends_with("127.0.0.1"), "{a}");
}

#[test]
fn caps_by_path() {
    let l = Limits::vr_agent();
    assert_eq!(l.body_caps.cap("/synceip"), 48 << 20);
    assert_eq!(l.body_caps.cap("/echo"), 64 << 10);
    assert_eq!(l.body_caps.cap("/configurenic"), 2 << 20);
    assert_eq!(body::human(48 << 20), "48 MiB");
    assert_eq!(body::human(1000), "1000 bytes");
}
