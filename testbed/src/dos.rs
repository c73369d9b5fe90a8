//! Denial-of-service probes against an agent (issue 14): slow headers, idle
//! sockets, huge bodies, undeliverable callbacks. Plain std sockets, so they
//! run from inside a namespace ([`crate::Netns::run`]); the agent is watched
//! through /proc (fd count, RSS).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// One `POST path` with `body` on a fresh connection; the status and the
/// time to the first byte of the answer (`timeout` bounds everything).
pub fn post_timed(
    addr: SocketAddr,
    path: &str,
    body: &str,
    timeout: Duration,
) -> Result<(u16, Duration)> {
    let start = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, timeout).context("connect")?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let status = read_status(&mut s).context("reading the answer")?;
    Ok((status, start.elapsed()))
}

/// The status code of the answer on `s` (reads up to the status line).
pub fn read_status(s: &mut TcpStream) -> Result<u16> {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.windows(2).any(|w| w == b"\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            bail!(
                "closed before a status line: {:?}",
                String::from_utf8_lossy(&got)
            );
        }
        got.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&got).into_owned();
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status in {line:?}"))
}

/// The status line and as much of the answer as arrives within `timeout`.
pub fn read_answer(s: &mut TcpStream, timeout: Duration) -> String {
    let _ = s.set_read_timeout(Some(timeout));
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    while start.elapsed() < timeout {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() > 64 {
            // Headers and (most of) a short body: enough to judge.
            let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// `n` connections that each sent the start of a request and then one more
/// header byte every `every` (slowloris).
pub struct Slowloris {
    conns: Vec<Option<TcpStream>>,
}

impl Slowloris {
    pub fn open(addr: SocketAddr, path: &str, n: usize) -> Result<Slowloris> {
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_nonblocking(true)?;
            let _ = s.write(format!("POST {path} HTTP/1.1\r\nHost: agent\r\nX-Slow: ").as_bytes());
            conns.push(Some(s));
        }
        Ok(Slowloris { conns })
    }

    /// Send one more byte on every connection still open; the number open.
    pub fn drip(&mut self) -> usize {
        for slot in &mut self.conns {
            let Some(s) = slot else { continue };
            let mut buf = [0u8; 256];
            let closed = match s.read(&mut buf) {
                Ok(0) => true,
                // The server answered (e.g. 408): it is closing.
                Ok(_) => true,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
                Err(_) => true,
            };
            if closed || s.write(b"a").is_err() {
                *slot = None;
            }
        }
        self.open_count()
    }

    pub fn open_count(&self) -> usize {
        self.conns.iter().filter(|c| c.is_some()).count()
    }
}

/// `n` connections that send nothing.
pub fn idle_connections(addr: SocketAddr, n: usize) -> Result<Vec<TcpStream>> {
    (0..n)
        .map(|i| {
            TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                .with_context(|| format!("idle connection {i}"))
        })
        .collect()
}

/// POST `size` bytes of JSON (a `rules` array) to `path`, with a
/// Content-Length or chunked; the answer (status line and body start), or
/// the transport error that ended it.
pub fn post_big(addr: SocketAddr, path: &str, size: usize, chunked: bool) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_write_timeout(Some(Duration::from_secs(20)))?;
    let rule = br#"{"uuid":"0123456789abcdef0123456789abcdef","vipPortStart":10000,"vipPortEnd":10000,"privatePortStart":22,"privatePortEnd":22,"protocolType":"TCP","vipIp":"172.20.10.100","publicMac":"fa:26:9c:aa:00:02","privateIp":"192.168.100.10","privateMac":"fa:26:9c:aa:00:03","snatInboundTraffic":false},"#;
    let head = if chunked {
        format!("POST {path} HTTP/1.1\r\nHost: agent\r\nTransfer-Encoding: chunked\r\n\r\n")
    } else {
        format!("POST {path} HTTP/1.1\r\nHost: agent\r\nContent-Length: {size}\r\n\r\n")
    };
    s.write_all(head.as_bytes())?;
    let mut reader = s.try_clone()?;
    let answer = std::thread::spawn(move || read_answer(&mut reader, Duration::from_secs(30)));
    // One 1 MiB piece of rules, sent until `size`.
    let mut piece = Vec::with_capacity(1 << 20);
    piece.extend_from_slice(b"{\"rules\":[");
    while piece.len() + rule.len() < 1 << 20 {
        piece.extend_from_slice(rule);
    }
    let mut sent = 0;
    let mut first = true;
    while sent < size {
        let mut chunk: &[u8] = if first { &piece } else { &piece[10..] };
        first = false;
        chunk = &chunk[..chunk.len().min(size - sent)];
        let ok = if chunked {
            s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .and_then(|_| s.write_all(chunk))
                .and_then(|_| s.write_all(b"\r\n"))
        } else {
            s.write_all(chunk)
        };
        if ok.is_err() {
            break;
        }
        sent += chunk.len();
    }
    if chunked && sent >= size {
        let _ = s.write_all(b"0\r\n\r\n");
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    Ok(answer.join().unwrap_or_default())
}

/// Open file descriptors of `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A field of /proc/pid/status in kB (`VmRSS`, `VmHWM`).
pub fn status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `n` async-mode POSTs of `body` to `path` on `conns` keep-alive
/// connections, each with `callbackurl: callback`; the number answered 200.
pub fn async_posts(
    addr: SocketAddr,
    path: &str,
    body: &str,
    callback: &str,
    n: usize,
    conns: usize,
) -> Result<usize> {
    let per = n.div_ceil(conns);
    let handles: Vec<_> = (0..conns)
        .map(|c| {
            let (path, body, callback) = (path.to_string(), body.to_string(), callback.to_string());
            std::thread::spawn(move || -> Result<usize> {
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                let mut ok = 0;
                for i in 0..per {
                    write!(
                        s,
                        "POST {path} HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\n\
                         callbackurl: {callback}\r\ntaskuuid: dos-{c}-{i}\r\n\
                         Content-Length: {}\r\n\r\n{body}",
                        body.len()
                    )?;
                    if read_one_response(&mut s)? == 200 {
                        ok += 1;
                    }
                }
                Ok(ok)
            })
        })
        .collect();
    let mut ok = 0;
    for h in handles {
        ok += h.join().map_err(|_| anyhow::anyhow!("sender panicked"))??;
    }
    Ok(ok)
}

/// Reads one whole response (headers and a Content-Length body) from a
/// keep-alive connection; its status.
fn read_one_response(s: &mut TcpStream) -> Result<u16> {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            bail!("closed mid-response");
        }
        got.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status")
}
