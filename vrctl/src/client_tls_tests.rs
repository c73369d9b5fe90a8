//! What vrctl says when TLS or the token stops it, against common's TLS
//! server on loopback (the agents serve through it).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::json;

use super::{Client, ClientError};
use crate::credentials::Credentials;
use common::pki::{Authority, Issued};
use common::tls::{ServerPem, ServerTls};

/// `/echo` answers `{}`; `/secret` wants the token "s" x 32.
fn app() -> Router {
    Router::new().route("/echo", post(|| async { "{}" })).route(
        "/secret",
        post(|h: HeaderMap| async move {
            let want = format!("Bearer {}", "s".repeat(32));
            if h.get("authorization").and_then(|v| v.to_str().ok()) == Some(want.as_str()) {
                (StatusCode::OK, "{}".to_string())
            } else {
                (StatusCode::UNAUTHORIZED, "no bearer token".to_string())
            }
        }),
    )
}

async fn start(tls: Option<Arc<ServerTls>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(common::serve::serve_tls(
        listener,
        app(),
        common::serve::Limits::new(&["/echo"]),
        tls,
        std::future::pending(),
    ));
    addr
}

fn tls_of(ca: &Authority, server: &Issued) -> Arc<ServerTls> {
    ServerTls::from_pem(&ServerPem {
        certificate: server.certificate.clone(),
        private_key: server.private_key.clone(),
        client_ca: ca.certificate_pem().to_string(),
    })
    .unwrap()
}

/// Credentials that trust `ca`'s agents and present `cert`, if any.
fn presenting(ca: &Authority, cert: Option<&Issued>, tokens: Vec<String>) -> Credentials {
    Credentials::from_pem(
        ca.certificate_pem(),
        cert.map(|c| (c.certificate.as_str(), c.private_key.as_str())),
        tokens,
    )
    .unwrap()
}

async fn echo(addr: SocketAddr, creds: &Credentials, path: &str) -> Result<(), ClientError> {
    Client::with(&format!("http://{addr}"), None, creds)
        .call(path, &json!({}))
        .await
        .map(drop)
}

fn reason(r: Result<(), ClientError>) -> String {
    match r {
        Err(ClientError::Tls { reason, .. }) => reason,
        other => panic!("expected a TLS refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn tls_and_token_refusals_are_named() {
    let ca = Authority::create("agents CA").unwrap();
    let lo = ["127.0.0.1".parse().unwrap()];
    let server = ca.issue_server("agent", &lo, &[], 30).unwrap();
    let client = ca.issue_client("vrctl", 30).unwrap();
    let tls = start(Some(tls_of(&ca, &server))).await;
    let plain = start(None).await;
    let token = vec!["s".repeat(32)];
    let good = presenting(&ca, Some(&client), token.clone());

    echo(tls, &good, "/echo").await.unwrap();
    echo(tls, &good, "/secret").await.unwrap();

    let no_cert = presenting(&ca, None, vec![]);
    let r = reason(echo(tls, &no_cert, "/echo").await);
    assert!(
        r.contains("requires a client certificate (use --cert/--key)"),
        "{r}"
    );

    let other = Authority::create("another CA").unwrap();
    let foreign_client = other.issue_client("stranger", 30).unwrap();
    let trusts_other = presenting(&other, Some(&foreign_client), vec![]);
    let r = reason(echo(tls, &trusts_other, "/echo").await);
    assert!(r.contains("not signed by --ca"), "{r}");

    let foreign_cert = presenting(&ca, Some(&foreign_client), vec![]);
    let r = reason(echo(tls, &foreign_cert, "/echo").await);
    assert!(r.contains("does not accept our client certificate"), "{r}");

    // A server certificate used as a client's (EKU serverAuth only).
    let as_client = presenting(&ca, Some(&server), vec![]);
    let r = reason(echo(tls, &as_client, "/echo").await);
    assert!(r.contains("refuses our client certificate"), "{r}");

    let r = reason(echo(tls, &Credentials::default(), "/echo").await);
    assert!(r.contains("requires TLS (use --ca"), "{r}");

    let r = reason(echo(plain, &good, "/echo").await);
    assert!(r.contains("does not speak TLS"), "{r}");

    match echo(tls, &good.without_token(), "/secret").await {
        Err(ClientError::Unauthorized { reason, .. }) => {
            assert!(
                reason.contains("requires a bearer token (--token-file)"),
                "{reason}"
            );
            assert!(reason.contains("no bearer token"), "{reason}");
        }
        other => panic!("expected 401, got {other:?}"),
    }
    let wrong = presenting(&ca, Some(&client), vec!["w".repeat(32)]);
    match echo(tls, &wrong, "/secret").await {
        Err(ClientError::Unauthorized { reason, .. }) => {
            assert!(reason.contains("refuses our bearer token"), "{reason}")
        }
        other => panic!("expected 401, got {other:?}"),
    }
}

/// The probe that names a refusal the request's own error lost (a TLS 1.3
/// alert after our side finished the handshake, seen by hyper as a
/// cancelled connection): it reads the agent's alert itself.
#[tokio::test]
async fn a_probe_reads_the_alert_a_request_may_lose() {
    let ca = Authority::create("agents CA").unwrap();
    let lo = ["127.0.0.1".parse().unwrap()];
    let server = ca.issue_server("agent", &lo, &[], 30).unwrap();
    let tls = start(Some(tls_of(&ca, &server))).await;
    let url = format!("https://{tls}/echo");

    let other = Authority::create("another CA").unwrap();
    let stranger = other.issue_client("stranger", 30).unwrap();
    let foreign_cert = presenting(&ca, Some(&stranger), vec![]);
    let r = foreign_cert.probe_refusal(&url).await.expect("a refusal");
    assert!(r.contains("does not accept our client certificate"), "{r}");

    let no_cert = presenting(&ca, None, vec![]);
    let r = no_cert.probe_refusal(&url).await.expect("a refusal");
    assert!(r.contains("requires a client certificate"), "{r}");

    // Accepted credentials: nothing to name (the agent waits for a request).
    let client = ca.issue_client("vrctl", 30).unwrap();
    let good = presenting(&ca, Some(&client), vec![]);
    assert_eq!(good.probe_refusal(&url).await, None);
    // Nothing listening: not a refusal either.
    let closed = format!("https://127.0.0.1:{}/echo", free_port());
    assert_eq!(good.probe_refusal(&closed).await, None);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
