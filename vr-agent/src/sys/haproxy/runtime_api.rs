//! haproxy's runtime API (master CLI and stats socket) and what its
//! answers say.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::HaproxyError;

/// One runtime API command over a unix socket (one command per
/// connection: the answer ends when haproxy closes it).
pub async fn api(path: &Path, cmd: &str) -> Result<String, HaproxyError> {
    let err = |reason: String| HaproxyError::Api {
        path: path.to_path_buf(),
        reason,
    };
    let io = async {
        let mut s = UnixStream::connect(path).await?;
        s.write_all(format!("{cmd}\n").as_bytes()).await?;
        // The master CLI answers only once our side is closed.
        s.shutdown().await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    match tokio::time::timeout(Duration::from_secs(5), io).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(err(format!("{cmd}: {e}"))),
        Err(_) => Err(err(format!("{cmd}: no answer within 5 s"))),
    }
}

/// What `show proc` on the master CLI says: the master's reload and failed
/// reload counts and the current workers' pids.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Procs {
    pub reloads: u64,
    pub failed: u64,
    pub workers: Vec<u32>,
}

pub fn parse_show_proc(text: &str) -> Procs {
    let mut p = Procs::default();
    let mut section = "";
    for line in text.lines() {
        let line = line.trim();
        if let Some(s) = line.strip_prefix("# ") {
            section = s;
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.get(1).copied() {
            Some("master") => {
                p.reloads = f.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
                if let Some(i) = line.find("failed:") {
                    p.failed = line[i + 7..]
                        .trim()
                        .trim_end_matches(|c: char| !c.is_ascii_digit())
                        .split(']')
                        .next()
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(0);
                }
            }
            Some("worker") if section == "workers" => {
                if let Ok(pid) = f[0].parse() {
                    p.workers.push(pid);
                }
            }
            _ => {}
        }
    }
    p
}

/// What one `show stat` line counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    Listener,
    Backend,
    Server,
}

/// One line of `show stat` that belongs to a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatRow {
    pub kind: StatKind,
    pub listener: String,
    /// haproxy's proxy name (the backend's, for backends and servers).
    pub proxy: String,
    /// Server name (`s-<ip>`), empty for listeners and backends.
    pub server: String,
    pub up: bool,
    pub sessions_current: u64,
    pub sessions_total: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// The rows of `show stat` CSV that belong to `listeners` (uuids; haproxy
/// proxy names are the uuid or start with `<uuid>-`).
pub fn stat_rows(csv: &str, listeners: &[&str]) -> Vec<StatRow> {
    let mut lines = csv.lines();
    let Some(header) = lines.next().and_then(|h| h.strip_prefix("# ")) else {
        return vec![];
    };
    let cols: Vec<&str> = header.split(',').collect();
    let col = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(scur), Some(stot), Some(bin), Some(bout), Some(status)) = (
        col("pxname"),
        col("svname"),
        col("scur"),
        col("stot"),
        col("bin"),
        col("bout"),
        col("status"),
    ) else {
        return vec![];
    };
    let mut out = vec![];
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() <= status {
            continue;
        }
        let name = f[px];
        let Some(listener) = listeners
            .iter()
            .find(|l| name == **l || name.strip_prefix(**l).is_some_and(|r| r.starts_with('-')))
        else {
            continue;
        };
        let num = |i: usize| f[i].parse::<u64>().unwrap_or(0);
        let (kind, server) = match f[sv] {
            "FRONTEND" => (StatKind::Listener, ""),
            "BACKEND" => (StatKind::Backend, ""),
            server => (StatKind::Server, server),
        };
        out.push(StatRow {
            kind,
            listener: listener.to_string(),
            proxy: name.to_string(),
            server: server.to_string(),
            up: f[status].starts_with("UP") || f[status] == "OPEN",
            sessions_current: num(scur),
            sessions_total: num(stot),
            bytes_in: num(bin),
            bytes_out: num(bout),
        });
    }
    out
}
