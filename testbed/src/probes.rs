//! Client probes from inside a namespace: a TCP connect, a UDP datagram,
//! a ping.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::netns::Netns;

/// Connects from inside `ns` to `addr` (`"ip:port"`) and returns the first
/// line the server sent (trimmed). Errors on refusal or timeout.
pub fn tcp_probe(ns: &Netns, addr: &str, timeout: Duration) -> Result<String> {
    let target = parse_addr(addr)?;
    ns.run(|| -> Result<String> {
        let stream = TcpStream::connect_timeout(&target, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        if line.is_empty() {
            bail!("connection closed without data");
        }
        Ok(line.trim_end().to_string())
    })
    .with_context(|| format!("tcp probe {addr} from {}", ns.name()))
}

/// Sends one datagram from inside `ns` to `addr` and returns the answer.
/// Errors on timeout or ICMP port unreachable.
pub fn udp_probe(ns: &Netns, addr: &str, timeout: Duration) -> Result<String> {
    let target = parse_addr(addr)?;
    ns.run(|| -> Result<String> {
        let any = if target.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(any)?;
        socket.connect(target)?;
        socket.set_read_timeout(Some(timeout))?;
        socket.send(b"probe")?;
        let mut buf = [0u8; 2048];
        let n = socket.recv(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).trim_end().to_string())
    })
    .with_context(|| format!("udp probe {addr} from {}", ns.name()))
}

fn parse_addr(addr: &str) -> Result<SocketAddr> {
    addr.parse()
        .with_context(|| format!("bad socket address {addr}"))
}

/// `true` when `ping -c count -W 1 ip` from inside `ns` gets replies.
pub fn ping(ns: &Netns, ip: &str, count: u32) -> bool {
    ns.exec("ping", &["-q", "-c", &count.to_string(), "-W", "1", ip])
        .is_ok()
}
