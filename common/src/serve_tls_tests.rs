use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use proptest::prelude::*;

use crate::pki::{Authority, Issued};
use crate::tls::*;

struct Pki {
    ca: Authority,
    server_a: Issued,
    server_b: Issued,
    client: Issued,
}

fn pki() -> Pki {
    let ca = Authority::create("test CA").unwrap();
    let lo = ["127.0.0.1".parse().unwrap()];
    Pki {
        server_a: ca.issue_server("agent-a", &lo, &[], 30).unwrap(),
        server_b: ca.issue_server("agent-b", &lo, &[], 30).unwrap(),
        client: ca.issue_client("controller", 30).unwrap(),
        ca,
    }
}

fn server_pem(p: &Pki, s: &Issued) -> ServerPem {
    ServerPem {
        certificate: s.certificate.clone(),
        private_key: s.private_key.clone(),
        client_ca: p.ca.certificate_pem().to_string(),
    }
}

async fn start(tls: Arc<ServerTls>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/who",
        get(|ext: axum::http::Extensions| async move {
            ext.get::<PeerCertificate>()
                .map_or("none".to_string(), |p| p.0.clone())
        }),
    );
    tokio::spawn(crate::serve::serve_tls(
        listener,
        app,
        crate::serve::Limits::new(&["/echo"]),
        Some(tls),
        std::future::pending(),
    ));
    addr
}

/// The server's certificate subject and the answer to GET /who, or the
/// handshake's error.
async fn call(addr: SocketAddr, config: rustls::ClientConfig) -> Result<(String, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = connector
        .connect(server_name("127.0.0.1").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let server = subject_of(tls.get_ref().1.peer_certificates().unwrap()[0].as_ref());
    tls.write_all(b"GET /who HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    tls.read_to_string(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Ok((server, body))
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_of_the_ca_and_rotates() {
    let p = pki();
    let tls = ServerTls::from_pem(&server_pem(&p, &p.server_a)).unwrap();
    let addr = start(tls.clone()).await;
    let ca = p.ca.certificate_pem();
    let good = client_config(ca, &p.client.certificate, &p.client.private_key).unwrap();

    let (server, who) = call(addr, good.clone()).await.unwrap();
    assert_eq!(server, "CN=agent-a,O=vrctl");
    assert_eq!(
        who, "CN=controller,O=vrctl",
        "the peer's subject reaches the handler"
    );

    // No certificate; one of another CA; a server certificate as client.
    let none = client_config_without_certificate(ca).unwrap();
    assert!(call(addr, none).await.is_err());
    let other = Authority::create("other CA").unwrap();
    let foreign = other.issue_client("controller", 30).unwrap();
    let foreign = client_config(ca, &foreign.certificate, &foreign.private_key).unwrap();
    assert!(call(addr, foreign).await.is_err());
    let as_client = client_config(ca, &p.server_b.certificate, &p.server_b.private_key).unwrap();
    assert!(
        call(addr, as_client).await.is_err(),
        "a server certificate cannot act as a client"
    );

    // A key that does not match: refused, the old stays in force.
    let mut bad = server_pem(&p, &p.server_b);
    bad.private_key = p.server_a.private_key.clone();
    assert!(tls.replace(&bad).unwrap_err().to_string().contains("key"));
    assert_eq!(
        call(addr, good.clone()).await.unwrap().0,
        "CN=agent-a,O=vrctl"
    );

    // Rotation: the next handshake presents the new certificate.
    tls.replace(&server_pem(&p, &p.server_b)).unwrap();
    assert_eq!(call(addr, good).await.unwrap().0, "CN=agent-b,O=vrctl");
    assert_eq!(tls.subject(), "CN=agent-b,O=vrctl");
}

#[tokio::test]
async fn files_reload_when_they_change() {
    let p = pki();
    let dir = std::env::temp_dir().join(format!("common-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let files = ServerFiles {
        certificate: dir.join("cert.pem"),
        private_key: dir.join("key.pem"),
        client_ca: dir.join("ca.pem"),
    };
    let write = |s: &Issued| {
        std::fs::write(&files.certificate, &s.certificate).unwrap();
        std::fs::write(&files.private_key, &s.private_key).unwrap();
    };
    write(&p.server_a);
    std::fs::write(&files.client_ca, p.ca.certificate_pem()).unwrap();
    let tls = ServerTls::from_files(files.clone()).unwrap();
    let t = tls.clone();
    crate::reload::watch(
        "tls",
        files.paths().iter().map(|p| p.to_path_buf()).collect(),
        std::time::Duration::from_millis(50),
        move || t.reload().map_err(|e| e.to_string()),
    );
    // Half written (new certificate, old key): refused, old in force.
    std::fs::write(&files.certificate, &p.server_b.certificate).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(tls.subject(), "CN=agent-a,O=vrctl");
    write(&p.server_b);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while tls.subject() != "CN=agent-b,O=vrctl" {
        assert!(tokio::time::Instant::now() < deadline, "not reloaded");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_pem_is_named() {
    let p = pki();
    let mut pem = server_pem(&p, &p.server_a);
    pem.client_ca = "not a certificate".into();
    assert!(
        server_config(&pem)
            .unwrap_err()
            .to_string()
            .contains("client CA")
    );
    let mut pem = server_pem(&p, &p.server_a);
    pem.private_key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into();
    assert!(server_config(&pem).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// Any bytes, and any cut or bit flip of a real certificate: a text,
    /// never a panic.
    #[test]
    fn subject_of_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), cut in 0usize..2000, flip in 0usize..2000) {
        let _ = subject_of(&bytes);
        let der = CERT.with(|c| c.clone());
        let n = cut.min(der.len());
        let _ = subject_of(&der[..n]);
        let mut flipped = der.clone();
        let i = flip % flipped.len();
        flipped[i] ^= 0x5a;
        let _ = subject_of(&flipped);
        let _ = serial_of(&flipped);
        let _ = serial_of(&bytes);
    }
}

thread_local! {
    static CERT: Vec<u8> = {
        let ca = Authority::create("prop CA").unwrap();
        let c = ca.issue_client("client", 1).unwrap();
        certificates(&c.certificate, "c").unwrap()[0].as_ref().to_vec()
    };
}

#[tokio::test]
async fn a_saved_authority_issues_certificates_that_chain_to_its_file() {
    let p = pki();
    let dir = std::env::temp_dir().join(format!("common-pki-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    p.ca.save(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = |f: &str| std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(""), mode("ca.key")), (0o700, 0o600));
    let loaded = Authority::load(&dir).unwrap();
    let lo = ["127.0.0.1".parse().unwrap()];
    let server = loaded.issue_server("agent-c", &lo, &[], 30).unwrap();
    let tls = ServerTls::from_pem(&server_pem(&p, &server)).unwrap();
    let addr = start(tls).await;
    // The client trusts the original ca.pem and holds a certificate of
    // the original authority.
    let c = client_config(
        p.ca.certificate_pem(),
        &p.client.certificate,
        &p.client.private_key,
    )
    .unwrap();
    assert_eq!(call(addr, c).await.unwrap().0, "CN=agent-c,O=vrctl");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Under TLS, connections that never finish their handshake count as idle:
/// at the cap they are closed for new ones, and each is closed after the
/// header-read timeout anyway.
#[tokio::test]
async fn stalled_handshakes_neither_hold_the_server_nor_stay_open() {
    use tokio::io::AsyncReadExt;
    let p = pki();
    let tls = ServerTls::from_pem(&server_pem(&p, &p.server_a)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut limits = crate::serve::Limits::new(&["/echo"]);
    limits.max_connections = 20;
    limits.header_read_timeout = std::time::Duration::from_millis(700);
    let app = Router::new().route("/who", get(|| async { "ok" }));
    tokio::spawn(crate::serve::serve_tls(
        listener,
        app,
        limits,
        Some(tls),
        std::future::pending(),
    ));
    let mut stalled = Vec::new();
    for _ in 0..100 {
        stalled.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let good = client_config(
        p.ca.certificate_pem(),
        &p.client.certificate,
        &p.client.private_key,
    )
    .unwrap();
    let t = std::time::Instant::now();
    call(addr, good).await.unwrap();
    assert!(
        t.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        t.elapsed()
    );
    // The last stalled one (never evicted: newest) is closed by the timeout.
    let mut last = stalled.pop().unwrap();
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(std::time::Duration::from_secs(3), last.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
}
