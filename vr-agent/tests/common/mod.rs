//! The VR test topology of the protocol reference's fixtures, in namespaces:
//!
//! ```text
//!  ctl (10.0.0.2) --eth0-- vr --eth1-- pub (172.20.0.1, the outside)
//!                           |
//!                          eth2
//!                           |
//!                  tenant (192.168.100.10, gw .1)
//! ```
//! `vr` runs the real vr-agent binary on 10.0.0.25:7272; `ctl` plays the
//! controller.

#![allow(dead_code)]

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use testbed::{Netns, Proc, RouterNets, TempDir};

pub use testbed::{MGMT_MAC, PRIV_MAC, PUB_MAC};
pub const AGENT: &str = "http://10.0.0.25:7272";

pub struct Lab {
    pub agent: Option<Proc>,
    /// Extra guests on the private network (192.168.100.11, .12, ...),
    /// with the tenant behind a bridge in `lan` (see [`Lab::with_backends`]).
    pub backends: Vec<Netns>,
    pub lan: Option<Netns>,
    pub state: TempDir,
    pub tenant: Netns,
    pub public: Netns,
    pub ctl: Netns,
    pub vr: Netns,
}

impl Lab {
    pub fn new() -> Result<Lab> {
        Lab::with_backends(0)
    }

    /// The lab plus `n` backend guests (192.168.100.11..) on the private
    /// network: with n > 0 the VR's eth2, the tenant and the backends are
    /// ports of a bridge in a `lan` namespace.
    pub fn with_backends(n: usize) -> Result<Lab> {
        let RouterNets {
            backends,
            lan,
            tenant,
            public,
            ctl,
            vr,
        } = RouterNets::new(n)?;
        // The outside can route to the private network, so only the VR's
        // firewall keeps it out.
        testbed::route(&public, "192.168.100.0/24 via 172.20.10.5")?;
        let state = TempDir::new("vrstate")?;
        let mut lab = Lab {
            agent: None,
            backends,
            lan,
            state,
            tenant,
            public,
            ctl,
            vr,
        };
        lab.start_agent()?;
        Ok(lab)
    }

    pub fn start_agent(&mut self) -> Result<()> {
        let mut cmd = self.vr.command(
            env!("CARGO_BIN_EXE_vr-agent"),
            &[
                "--listen",
                "10.0.0.25:7272",
                "--state-dir",
                self.state.path().to_str().unwrap(),
                "--drift-check-secs",
                "1",
                // No bootstrap info here: the controller is named.
                "--allow-from",
                "10.0.0.2",
            ],
        );
        cmd.env("VR_AGENT_LOG", "debug");
        self.agent = Some(Proc::start(cmd)?);
        let ok = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            self.post_raw("/echo", "{}", &[])
                .map(|r| r.0 == 200)
                .unwrap_or(false)
        });
        if !ok {
            bail!("agent did not answer /echo:\n{}", self.log());
        }
        Ok(())
    }

    /// Kill the agent with SIGKILL (no chance to clean up).
    pub fn kill_agent(&mut self) {
        if let Some(mut p) = self.agent.take() {
            p.kill();
        }
    }

    pub fn log(&self) -> String {
        self.agent.as_ref().map(|p| p.log()).unwrap_or_default()
    }

    pub fn post_raw(
        &self,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Result<(u16, String)> {
        testbed::http_post(&self.ctl, &format!("{AGENT}{path}"), body, headers)
    }

    /// A sync-mode command; returns (status, reply JSON).
    pub fn post(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        let (code, text) = self.post_raw(path, &body.to_string(), &[])?;
        let v = serde_json::from_str(&text)
            .with_context(|| format!("{path} answered {code}: {text}"))?;
        Ok((code, v))
    }

    /// A sync-mode command that must succeed.
    pub fn ok(&self, path: &str, body: Value) -> Value {
        let (code, v) = self.post(path, body).unwrap();
        assert_eq!(code, 200, "{path}: {v}\n{}", self.log());
        assert_eq!(v["success"], true, "{path}: {v}");
        v
    }

    /// Our nft table as JSON text (the "ruleset" compared byte for byte).
    pub fn table(&self) -> String {
        self.vr
            .sh("nft -j list table ip vragent")
            .unwrap_or_else(|e| format!("<no table: {e}>"))
    }

    /// Our nft table in text form: no handles, so a table rebuilt with the
    /// same content compares equal.
    pub fn table_text(&self) -> String {
        self.vr
            .sh("nft list table ip vragent")
            .unwrap_or_else(|e| format!("<no table: {e}>"))
    }

    /// NICs, SNAT and the routes the fixtures use.
    pub fn base_config(&self) {
        self.ok("/init", json!({"uuid": "4d8c1c0e6a0c4e0f9a5b0b7f2d6c9e11"}));
        self.ok(
            "/configurenic",
            json!({"nics": [
                {"ip": "10.0.0.25", "mac": MGMT_MAC, "netmask": "255.255.255.0", "category": "Management"},
                {"ip": "172.20.10.5", "mac": PUB_MAC, "netmask": "255.255.0.0", "gateway": "172.20.0.1",
                 "isDefaultRoute": true, "category": "Public"},
                {"ip": "192.168.100.1", "mac": PRIV_MAC, "netmask": "255.255.255.0", "category": "Private",
                 "firewallDefaultAction": "reject"}
            ]}),
        );
        self.ok("/syncsnat", json!({"snats": [snat()], "enable": true}));
    }
}

pub fn snat() -> Value {
    json!({"publicNicMac": PUB_MAC, "publicIp": "172.20.10.5", "privateNicMac": PRIV_MAC,
           "privateNicIp": "192.168.100.1", "privateGatewayIp": "192.168.100.1",
           "snatNetmask": "255.255.255.0", "state": true})
}

pub fn vip(ip: &str) -> Value {
    json!({"ip": ip, "netmask": "255.255.0.0", "gateway": "172.20.0.1", "ownerEthernetMac": PUB_MAC})
}

pub fn eip(vip: &str, guest: &str) -> Value {
    json!({"vipIp": vip, "privateMac": PRIV_MAC, "publicMac": PUB_MAC, "guestIp": guest,
           "snatInboundTraffic": false})
}

#[allow(clippy::too_many_arguments)]
pub fn pf(
    uuid: &str,
    vip: &str,
    proto: &str,
    vs: u16,
    ve: u16,
    ps: u16,
    pe: u16,
    allowed: Option<&str>,
) -> Value {
    let mut r = json!({"uuid": uuid, "vipPortStart": vs, "vipPortEnd": ve, "privatePortStart": ps,
        "privatePortEnd": pe, "protocolType": proto, "vipIp": vip, "publicMac": PUB_MAC,
        "privateIp": "192.168.100.10", "privateMac": PRIV_MAC, "snatInboundTraffic": false});
    if let Some(c) = allowed {
        r["allowedCidr"] = json!(c);
    }
    r
}

pub const T: Duration = Duration::from_secs(2);

/// The source address a server saw, without the port.
pub fn source(seen: &str) -> &str {
    seen.split(':').next().unwrap_or("")
}
