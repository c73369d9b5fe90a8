//! Health probes of the child daemons: a process that is alive but does
//! not answer (hung, SIGSTOPped) is as bad as one that exited.

use std::net::SocketAddr;
use std::time::Duration;

/// How long a probe waits for an answer.
pub const TIMEOUT: Duration = Duration::from_millis(500);

/// Send one DNS query (`localhost. A`) and wait for any answer.
pub async fn dns_answers(server: SocketAddr) -> bool {
    let Ok(sock) = tokio::net::UdpSocket::bind("127.0.0.1:0").await else {
        return true; // cannot probe: do not restart on our own failure
    };
    // id 0x5652, recursion desired, one question: localhost. IN A
    let mut q = vec![0x56, 0x52, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    q.push(9);
    q.extend_from_slice(b"localhost");
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    if sock.send_to(&q, server).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(
        tokio::time::timeout(TIMEOUT, sock.recv_from(&mut buf)).await,
        Ok(Ok((n, _))) if n >= 2 && buf[..2] == [0x56, 0x52]
    )
}
