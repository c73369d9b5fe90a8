//! [`CallbackReceiver`]: the controller's async callback endpoint, recording
//! what the agents post.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::netns::Netns;
use crate::server_thread::{POLL, Stopper, bind_tcp, serve_tcp};
use crate::wait::wait_until;

/// One request seen by a [`CallbackReceiver`].
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Recorded {
    /// A header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("callback body is not JSON: {}", self.body))
    }
}

/// A tiny HTTP/1.1 server playing the controller's async callback endpoint:
/// records every request and answers with a configurable status (200 by
/// default; e.g. 404 to test "stop on 404"). One request per connection.
#[derive(Debug)]
pub struct CallbackReceiver {
    port: u16,
    status: Arc<AtomicU16>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    _stopper: Stopper,
}

impl CallbackReceiver {
    /// Listens on port 0 of all addresses inside `ns`, or on 127.0.0.1 of
    /// the root namespace when `ns` is `None`.
    pub fn start(ns: Option<&Netns>) -> Result<CallbackReceiver> {
        let status = Arc::new(AtomicU16::new(200));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (st, reqs) = (status.clone(), requests.clone());
        let handle = move |mut stream: TcpStream, _peer: SocketAddr| {
            if let Ok(req) = read_request(&mut stream) {
                reqs.lock().expect("poisoned").push(req);
                let code = st.load(Ordering::Relaxed);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        };
        let any = if ns.is_some() {
            "0.0.0.0:0"
        } else {
            "127.0.0.1:0"
        };
        let listener = bind_tcp(ns, any)?;
        let (addr, stopper) = serve_tcp(listener, handle)?;
        Ok(CallbackReceiver {
            port: addr.port(),
            status,
            requests,
            _stopper: stopper,
        })
    }

    /// `http://127.0.0.1:<port>`: reachable from the namespace it runs in.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://<ip>:<port>` for callers in other namespaces.
    pub fn url_at(&self, ip: &str) -> String {
        format!("http://{ip}:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The status code sent from now on.
    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::Relaxed);
    }

    /// All requests received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("poisoned").clone()
    }

    /// Waits until at least `n` requests arrived; the error lists what came.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<Recorded>> {
        if wait_until(timeout, POLL, || self.requests().len() >= n) {
            return Ok(self.requests());
        }
        bail!(
            "expected {n} callbacks within {timeout:?}, got {:?}",
            self.requests()
        )
    }
}

/// Reads one HTTP/1.1 request: head, then a `content-length` body.
fn read_request(stream: &mut TcpStream) -> Result<Recorded> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut words = line.split_whitespace().map(str::to_string);
    let (method, path) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("connection closed inside the request head");
        }
        let Some((k, v)) = line.trim_end().split_once(':') else {
            break;
        };
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    if headers
        .get("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let mut body = Vec::new();
    // Only `content-length` bodies: what reqwest and curl send for JSON.
    if let Some(len) = headers.get("content-length") {
        body.resize(len.parse()?, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(Recorded {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
