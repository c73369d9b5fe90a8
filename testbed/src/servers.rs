//! [`TcpServer`] and [`UdpServer`]: servers in a namespace that answer with
//! the address they saw the client at.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};

use anyhow::{Context, Result};

use crate::netns::Netns;
use crate::server_thread::{POLL, Stopper, bind_tcp, serve_tcp};

/// A TCP server in a namespace that answers every connection with one line
/// `<peer ip>:<peer port>` and closes it, so NAT tests can check the source
/// address the server saw. Stops on Drop.
#[derive(Debug)]
pub struct TcpServer {
    addr: SocketAddr,
    _stopper: Stopper,
}

impl TcpServer {
    pub fn start(ns: &Netns, addr: &str) -> Result<TcpServer> {
        let listener = bind_tcp(Some(ns), addr)?;
        let (addr, _stopper) = serve_tcp(listener, |mut stream, peer| {
            let _ = writeln!(stream, "{}:{}", peer.ip(), peer.port());
        })?;
        Ok(TcpServer { addr, _stopper })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A UDP server in a namespace answering each datagram with
/// `<peer ip>:<peer port>`. Stops on Drop.
#[derive(Debug)]
pub struct UdpServer {
    addr: SocketAddr,
    _stopper: Stopper,
}

impl UdpServer {
    pub fn start(ns: &Netns, addr: &str) -> Result<UdpServer> {
        let socket = ns
            .run(|| UdpSocket::bind(addr))
            .with_context(|| format!("bind udp {addr} in {}", ns.name()))?;
        socket.set_read_timeout(Some(POLL))?;
        let addr = socket.local_addr()?;
        let _stopper = Stopper::spawn(move || {
            let mut buf = [0u8; 2048];
            if let Ok((_, peer)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(format!("{}:{}", peer.ip(), peer.port()).as_bytes(), peer);
            }
        });
        Ok(UdpServer { addr, _stopper })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}
