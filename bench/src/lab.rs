//! The VR topology of the vr-agent's NAT tests, in namespaces, with the real
//! release vr-agent binary (`testbed::RouterNets`, as vr-agent/tests/common):
//!
//! ```text
//!  ctl (10.0.0.2) --eth0-- vr --eth1-- pub (172.20.0.1, the outside)
//!                           |
//!                          eth2
//!                           |
//!                  tenant (192.168.100.10, gw .1)
//! ```
//! `pub` routes the benchmark VIP ranges (172.21/16, 172.22/16 and the
//! bulk ranges in 10.64/10) to the router's public address, so no VIP needs
//! to be an address.
//!
//! [`Lab::with_backends`] (as in vr-agent/tests/common) puts the VR's eth2,
//! the tenant and `n` backend guests (192.168.100.11, .12, ...) on a bridge
//! in a `lan` namespace instead of the direct veth.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use testbed::{Netns, Proc, RouterNets, TempDir};

pub use testbed::{MGMT_MAC, PRIV_MAC, PUB_MAC};
pub const AGENT: &str = "10.0.0.25:7272";
pub const GUEST: &str = "192.168.100.10";

/// Field order matters for Drop: the agent dies before its namespaces go.
pub struct Lab {
    agent: Proc,
    _state: TempDir,
    /// Backend guests 192.168.100.11.. (empty unless [`Lab::with_backends`]).
    pub backends: Vec<Netns>,
    _lan: Option<Netns>,
    pub tenant: Netns,
    pub public: Netns,
    pub ctl: Netns,
    pub vr: Netns,
}

impl Lab {
    pub fn new(agent_bin: &Path) -> Result<Lab> {
        Lab::with_backends(agent_bin, 0)
    }

    /// The lab plus `n` backend guests (192.168.100.11..): with n > 0 the
    /// VR's eth2, the tenant and the backends are ports of a bridge `br0`
    /// in a `lan` namespace.
    pub fn with_backends(agent_bin: &Path, n: usize) -> Result<Lab> {
        let RouterNets {
            backends,
            lan,
            tenant,
            public,
            ctl,
            vr,
        } = RouterNets::new(n)?;
        // The backends close first: no TIME_WAIT to trip a reused port.
        for b in &backends {
            b.sysctl("net.ipv4.tcp_max_tw_buckets", "0")?;
        }
        for net in ["172.21.0.0/16", "172.22.0.0/16", "10.64.0.0/10"] {
            testbed::route(&public, &format!("{net} via 172.20.10.5"))?;
        }
        // Many short connections: use every port, not just the default range.
        public.sysctl("net.ipv4.ip_local_port_range", "1024 65535")?;
        // The servers close first; without TIME_WAIT sockets there, a later
        // run whose client picks a port used before (another VIP, so other
        // timestamp offsets) is not refused by a lingering TIME_WAIT socket
        // and left waiting for a SYN retransmission.
        tenant.sysctl("net.ipv4.tcp_max_tw_buckets", "0")?;
        let state = TempDir::new("vrstate")?;
        let mut cmd = vr.command(
            agent_bin.to_str().context("agent path is not UTF-8")?,
            &[
                "--listen",
                AGENT,
                "--state-dir",
                state.path().to_str().context("temp path is not UTF-8")?,
                "--drift-check-secs",
                // Off unless asked (BENCH_DRIFT_SECS): its listings after each
                // change are a cost of their own, measured apart.
                &std::env::var("BENCH_DRIFT_SECS").unwrap_or_else(|_| "0".into()),
                "--allow-from",
                "10.0.0.2",
            ],
        );
        cmd.env("VR_AGENT_LOG", "info").env("NO_COLOR", "1");
        let agent = Proc::start(cmd)?;
        let lab = Lab {
            agent,
            _state: state,
            backends,
            _lan: lan,
            tenant,
            public,
            ctl,
            vr,
        };
        let up = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            lab.post("/echo", "{}").is_ok_and(|r| r.status == 200)
        });
        if !up {
            bail!("vr-agent did not answer /echo:\n{}", lab.log());
        }
        Ok(lab)
    }

    pub fn agent_pid(&self) -> u32 {
        self.agent.pid()
    }

    pub fn log(&self) -> String {
        self.agent.log()
    }

    /// One sync-mode POST from the ctl namespace (see [`post_in`]).
    pub fn post(&self, path: &str, body: &str) -> Result<Reply> {
        post_in(&self.ctl, AGENT, path, body)
    }

    /// A command that must answer 200 with `success: true`; returns its time.
    pub fn ok(&self, path: &str, body: &Value) -> Result<Duration> {
        let r = self.post(path, &body.to_string())?;
        let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        if r.status != 200 || v["success"] != true {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            bail!(
                "{path} answered {}: {}\nagent log tail:\n{}",
                r.status,
                r.body.chars().take(2000).collect::<String>(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(r.elapsed)
    }

    /// NICs and SNAT as in the fixtures.
    pub fn base_config(&self) -> Result<()> {
        self.ok(
            "/init",
            &json!({"uuid": "4d8c1c0e6a0c4e0f9a5b0b7f2d6c9e11"}),
        )?;
        self.configure_nics("192.168.100.1", "255.255.255.0")?;
        self.ok(
            "/syncsnat",
            &json!({"snats": [{"publicNicMac": PUB_MAC, "publicIp": "172.20.10.5",
                "privateNicMac": PRIV_MAC, "privateNicIp": "192.168.100.1",
                "privateGatewayIp": "192.168.100.1", "snatNetmask": "255.255.255.0", "state": true}],
                "enable": true}),
        )?;
        Ok(())
    }

    /// `/configurenic` of the three NICs as in the fixtures, the private
    /// one with the given address and netmask.
    pub fn configure_nics(&self, private_ip: &str, private_netmask: &str) -> Result<()> {
        self.ok(
            "/configurenic",
            &json!({"nics": [
                {"ip": "10.0.0.25", "mac": MGMT_MAC, "netmask": "255.255.255.0", "category": "Management"},
                {"ip": "172.20.10.5", "mac": PUB_MAC, "netmask": "255.255.0.0", "gateway": "172.20.0.1",
                 "isDefaultRoute": true, "category": "Public"},
                {"ip": private_ip, "mac": PRIV_MAC, "netmask": private_netmask, "category": "Private",
                 "firewallDefaultAction": "reject"}
            ]}),
        )?;
        Ok(())
    }

    /// The `ms=` of the agent's last `applied edit="<edit>"` log line.
    pub fn last_applied_ms(&self, edit: &str) -> Option<f64> {
        let needle = format!("edit=\"{edit}\"");
        let log = strip_ansi(&self.log());
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains(": applied ") && l.contains(&needle))?;
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("ms="))
            .and_then(|v| v.parse().ok())
    }

    /// VmRSS and VmHWM of the agent, in kB.
    pub fn agent_memory_kb(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.agent_pid()))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("no {name} in /proc/<agent>/status"))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }
}

/// One sync-mode POST to `addr` from inside `ns` over a fresh connection
/// (`connection: close`), timed from connect to the last byte.
pub fn post_in(ns: &Netns, addr: &str, path: &str, body: &str) -> Result<Reply> {
    let target: SocketAddr = addr.parse()?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let (raw, elapsed) = ns.run(|| -> Result<(Vec<u8>, Duration)> {
        let t = Instant::now();
        let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        s.set_nodelay(true)?;
        s.write_all(req.as_bytes())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        Ok((raw, t.elapsed()))
    })?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("{path}: odd HTTP reply {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("{path}: odd status line in {head:?}"))?;
    Ok(Reply {
        status,
        body: body.to_string(),
        elapsed,
    })
}

pub struct Reply {
    pub status: u16,
    pub body: String,
    pub elapsed: Duration,
}

/// A TCP port forward in the protocol's shape, to the guest.
pub fn pf(uuid: &str, vip: &str, port: u16, private_port: u16) -> Value {
    json!({"uuid": uuid, "vipPortStart": port, "vipPortEnd": port,
        "privatePortStart": private_port, "privatePortEnd": private_port,
        "protocolType": "TCP", "vipIp": vip, "publicMac": PUB_MAC,
        "privateIp": GUEST, "privateMac": PRIV_MAC, "snatInboundTraffic": false})
}

pub fn eip(vip: &str, guest: &str) -> Value {
    json!({"vipIp": vip, "privateMac": PRIV_MAC, "publicMac": PUB_MAC, "guestIp": guest,
           "snatInboundTraffic": false})
}

pub use common::text::strip_ansi;
