//! The callback queue is bounded (issue 14): replies to a controller that
//! accepts connections but never answers hold at most
//! `callback::MAX_IN_FLIGHT` connections, however many are queued. Its own
//! test binary: the queue is one per process.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::callback;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_controller_holds_at_most_max_in_flight_connections() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cb", listener.local_addr().unwrap());
    let open = Arc::new(AtomicUsize::new(0));
    let counted = open.clone();
    // Accepts and keeps every connection, never answers.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    for i in 0..(callback::MAX_PENDING + 500) {
        callback::enqueue(
            url.clone(),
            format!("t{i}"),
            serde_json::json!({"success": true}),
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let n = open.load(Ordering::SeqCst);
    assert_eq!(
        n,
        callback::MAX_IN_FLIGHT,
        "{} replies queued: {n} connections to the controller",
        callback::MAX_PENDING + 500
    );
    assert_eq!(callback::pending(), callback::MAX_PENDING);
}
