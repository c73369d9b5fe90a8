//! Two vr-agents as an HA pair in namespaces (issue 17): the topology the
//! pair's tests and `bench ha` share, the node's commands that configure
//! both halves alike and pair them, and one measured failover.
//!
//! ```text
//!   ctl 10.0.0.2 (the node, its status callback) --- mgmt bridge ---+--- eth0 r0 10.0.0.25
//!                                                                   +--- eth0 r1 10.0.0.26
//!   out 172.20.0.1 ---------------------------------- pub bridge ---+--- eth1 r0/r1 172.20.10.5 (+ VIP 172.20.10.9)
//!   tenant 192.168.100.10 --------------------------- priv bridge --+--- eth2 r0/r1 192.168.100.1
//! ```
//!
//! The heartbeat is the management NIC, as the node sends it. Both routers
//! hold the same public and private addresses; only the master's NICs are
//! up.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

use crate::failover::{EchoReport, echo_stream, kill_host, longest_silence_ms};
use crate::{CallbackReceiver, Netns, Proc, TempDir, addr, bridge, enslave, route, set_mac, veth};

pub const OUTSIDE: &str = "172.20.0.1";
/// The tenant's NIC, a host of both routers' DHCP (the node sends both
/// halves the same `/refreshDhcpServer`).
pub const TENANT_MAC: &str = "fa:a1:5e:12:34:56";
pub const TENANT_IP: &str = "192.168.100.10";
/// The tenant's second address, behind the pair's EIP.
pub const EIP_GUEST: &str = "192.168.100.11";
pub const EIP: &str = "172.20.10.101";
/// A port forward PF_VIP:9001 -> TENANT_IP:9001.
pub const PF_VIP: &str = "172.20.10.102";
/// A TCP listener LB_VIP:80 -> TENANT_IP:80.
pub const LB_VIP: &str = "172.20.10.103";
pub const PAIR_VIP: &str = "172.20.10.9";
pub const UUIDS: [&str; 2] = [
    "aa000000000000000000000000000001",
    "aa000000000000000000000000000002",
];
pub const MGMT_IP: [&str; 2] = ["10.0.0.25", "10.0.0.26"];
pub const MACS: [[&str; 3]; 2] = [
    [
        "fa:16:3e:00:00:10",
        "fa:16:3e:00:00:11",
        "fa:16:3e:00:00:12",
    ],
    [
        "fa:16:3e:00:00:20",
        "fa:16:3e:00:00:21",
        "fa:16:3e:00:00:22",
    ],
];

pub struct Pair {
    pub routers: [Netns; 2],
    pub agents: [Option<Proc>; 2],
    pub states: [TempDir; 2],
    /// The management node (10.0.0.2 on the management bridge).
    pub ctl: Netns,
    /// The outside (172.20.0.1 on the public bridge).
    pub out: Netns,
    /// The tenant (192.168.100.10 and .11 on the private bridge).
    pub ten: Netns,
    _sw: Netns,
    /// The node's callback receiver (the HA status reports).
    pub node: CallbackReceiver,
    agent_bin: PathBuf,
}

/// The topology with both agents up (not configured, not paired).
pub fn build(agent_bin: &Path) -> Pair {
    let sw = Netns::new("hpsw").unwrap();
    let routers = [Netns::new("hpr0").unwrap(), Netns::new("hpr1").unwrap()];
    let ctl = Netns::new("hpctl").unwrap();
    let out = Netns::new("hpout").unwrap();
    let ten = Netns::new("hpten").unwrap();
    for b in ["mgmt", "pub", "priv"] {
        bridge(&sw, b).unwrap();
    }
    for (i, r) in routers.iter().enumerate() {
        for (j, (nic, br)) in [("eth0", "mgmt"), ("eth1", "pub"), ("eth2", "priv")]
            .into_iter()
            .enumerate()
        {
            let port = format!("{br}{i}");
            veth(r, nic, &sw, &port).unwrap();
            enslave(&sw, &port, br).unwrap();
            set_mac(r, nic, MACS[i][j]).unwrap();
        }
        // What conntrack cannot place is dropped (the engine's forward
        // chain accepts established only): without the synced entry a
        // mid-stream segment on the new master is not picked up.
        r.sysctl("net.netfilter.nf_conntrack_tcp_loose", "0")
            .unwrap();
    }
    for (ns, br, port, ip) in [
        (&ctl, "mgmt", "pctl", "10.0.0.2/24"),
        (&out, "pub", "pout", "172.20.0.1/16"),
        (&ten, "priv", "pten", "192.168.100.10/24"),
    ] {
        veth(ns, "eth0", &sw, port).unwrap();
        enslave(&sw, port, br).unwrap();
        addr(ns, "eth0", ip).unwrap();
    }
    set_mac(&ten, "eth0", TENANT_MAC).unwrap();
    addr(&ten, "eth0", &format!("{EIP_GUEST}/24")).unwrap();
    route(&ten, "default via 192.168.100.1").unwrap();
    let node = CallbackReceiver::start(Some(&ctl)).unwrap();
    let mut p = Pair {
        routers,
        agents: [None, None],
        states: [
            TempDir::new("hpst0").unwrap(),
            TempDir::new("hpst1").unwrap(),
        ],
        ctl,
        out,
        ten,
        _sw: sw,
        node,
        agent_bin: agent_bin.to_path_buf(),
    };
    for i in 0..2 {
        p.start_agent(i);
    }
    p
}

impl Pair {
    pub fn start_agent(&mut self, i: usize) {
        let listen = format!("{}:7272", MGMT_IP[i]);
        let mut cmd = self.routers[i].command(
            self.agent_bin.to_str().expect("a UTF-8 path"),
            &[
                "--listen",
                &listen,
                "--state-dir",
                self.states[i].path().to_str().unwrap(),
                "--allow-from",
                "10.0.0.2",
                "--ha-advert-ms",
                "100",
            ],
        );
        cmd.env("VR_AGENT_LOG", "info");
        // The management address must be there to bind it.
        let _ = self.routers[i].ip(&format!("addr add {}/24 dev eth0", MGMT_IP[i]));
        let _ = self.routers[i].ip("link set eth0 up");
        self.agents[i] = Some(Proc::start(cmd).unwrap());
        let ok = crate::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            self.post(i, "/echo", json!({}))
                .is_ok_and(|(c, _)| c == 200)
        });
        assert!(ok, "agent {i} did not answer:\n{}", self.log(i));
    }

    pub fn log(&self, i: usize) -> String {
        self.agents[i].as_ref().map(|p| p.log()).unwrap_or_default()
    }

    pub fn post(&self, i: usize, path: &str, body: Value) -> Result<(u16, Value)> {
        let url = format!("http://{}:7272{path}", MGMT_IP[i]);
        let (code, text) = crate::http_post(&self.ctl, &url, &body.to_string(), &[])?;
        Ok((
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    pub fn ok(&self, i: usize, path: &str, body: Value) -> Value {
        let (code, v) = self.post(i, path, body).unwrap();
        assert!(
            code == 200 && v["success"] == true,
            "router {i} {path}: {code} {v}\n{}",
            self.log(i)
        );
        v
    }

    pub fn configure(&self, i: usize) {
        let m = MACS[i];
        self.ok(
            i,
            "/init",
            json!({"uuid": UUIDS[i], "mgtCidr": "10.0.0.0/24"}),
        );
        self.ok(
            i,
            "/configurenic",
            json!({"nics": [
                {"ip": MGMT_IP[i], "mac": m[0], "netmask": "255.255.255.0", "category": "Management"},
                {"ip": "172.20.10.5", "mac": m[1], "netmask": "255.255.0.0", "gateway": OUTSIDE,
                 "isDefaultRoute": true, "category": "Public"},
                {"ip": "192.168.100.1", "mac": m[2], "netmask": "255.255.255.0", "category": "Private"}
            ]}),
        );
        self.ok(
            i,
            "/syncsnat",
            json!({"enable": true, "snats": [{"publicNicMac": m[1], "publicIp": "172.20.10.5",
                "privateNicMac": m[2], "privateNicIp": "192.168.100.1",
                "privateGatewayIp": "192.168.100.1", "snatNetmask": "255.255.255.0"}]}),
        );
        let vip = |ip: &str| json!({"ip": ip, "netmask": "255.255.0.0", "ownerEthernetMac": m[1]});
        self.ok(
            i,
            "/createvip",
            json!({"vips": [vip(EIP), vip(PF_VIP), vip(LB_VIP)]}),
        );
        self.ok(
            i,
            "/lb/refresh",
            json!({"lbs": [{"lbUuid": "lb-1", "listenerUuid": "l-1", "vip": LB_VIP, "publicNic": m[1],
                "nicIps": [TENANT_IP], "instancePort": 80, "loadBalancerPort": 80, "mode": "tcp",
                "parameters": ["healthCheckInterval::1", "healthCheckTimeout::1", "unhealthyThreshold::2", "healthyThreshold::2"],
                "serverGroups": [], "redirectRules": []}]}),
        );
        self.ok(
            i,
            "/createeip",
            json!({"eip": {"vipIp": EIP, "privateMac": m[2], "publicMac": m[1], "guestIp": EIP_GUEST,
                "snatInboundTraffic": false}}),
        );
        self.ok(
            i,
            "/createportforwarding",
            json!({"rules": [{"uuid": "0e5c7a1f2b3d4e6f8091a2b3c4d5e6f7", "vipPortStart": 9001, "vipPortEnd": 9001,
                "privatePortStart": 9001, "privatePortEnd": 9001, "protocolType": "TCP", "vipIp": PF_VIP,
                "publicMac": m[1], "privateIp": TENANT_IP, "privateMac": m[2], "snatInboundTraffic": false}]}),
        );
        self.ok(
            i,
            "/refreshDhcpServer",
            json!({"dhcpServers": [{"nicMac": m[2], "subnet": "192.168.100.0/24", "netmask": "255.255.255.0",
                "gateway": "192.168.100.1", "dnsDomain": "zstack.local", "dnsServer": "192.168.100.1",
                "dhcpInfos": [{"ip": TENANT_IP, "mac": TENANT_MAC, "hostname": "web-01",
                               "isDefaultL3Network": true}]}]}),
        );
    }

    /// The tenant's DHCP exchange (broadcast: only a router whose private
    /// NIC is up answers): the address offered, if any.
    pub fn lease(&self, dir: &TempDir) -> Option<String> {
        crate::dhcp_lease(&self.ten, "eth0", 3, false, dir.path())
            .and_then(|l| l.get("ip").cloned())
    }

    /// The load balancer's listener answers (the backend's line).
    pub fn lb_answers(&self) -> bool {
        crate::tcp_probe(&self.out, &format!("{LB_VIP}:80"), Duration::from_secs(2))
            .is_ok_and(|l| !l.is_empty())
    }

    /// `web-01` through the router's DNS (dnsmasq, from the DHCP hosts).
    pub fn resolves(&self) -> bool {
        self.ten
            .sh("busybox nslookup web-01.zstack.local 192.168.100.1")
            .is_ok_and(|o| o.contains(TENANT_IP))
    }

    pub fn enable_ha(&self, i: usize) -> (u16, Value) {
        self.post(i, "/enableVyosha", self.enable_body(i)).unwrap()
    }

    pub fn enable_body(&self, i: usize) -> Value {
        json!({
            "keepalive": 1,
            "heartbeatNic": MACS[i][0],
            "localIp": MGMT_IP[i],
            "peerIp": MGMT_IP[1 - i],
            "monitors": [],
            "vips": [{"nicMac": MACS[i][1], "nicVip": PAIR_VIP, "netmask": "255.255.0.0"}],
            "callbackUrl": self.node.url_at("10.0.0.2"),
        })
    }

    pub fn ha_status(&self, i: usize) -> String {
        self.post(i, "/ping", json!({"uuid": UUIDS[i]}))
            .map(|(_, v)| v["haStatus"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    }

    pub fn link_up(&self, i: usize, nic: &str) -> bool {
        self.routers[i]
            .ip(&format!("-o link show dev {nic}"))
            .map(|o| {
                let s = String::from_utf8_lossy(&o.stdout).to_string();
                s.contains(",UP") || s.contains("<UP")
            })
            .unwrap_or(false)
    }

    /// The router's host is gone: every process in its namespace killed,
    /// its links down.
    pub fn kill(&mut self, i: usize) {
        kill_host(&self.routers[i], &["eth0", "eth1", "eth2"]);
        if let Some(mut p) = self.agents[i].take() {
            p.kill();
        }
    }

    /// Reports the node got, as (router uuid, haStatus), in order.
    pub fn reports(&self) -> Vec<(String, String)> {
        self.node
            .requests()
            .iter()
            .filter(|r| r.header("commandpath") == Some("/vpc/hastatus"))
            .filter_map(|r| r.json().ok())
            .map(|v| {
                (
                    v["virtualRouterUuid"].as_str().unwrap_or("").to_string(),
                    v["haStatus"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

/// Two agents paired: router 0 enabled first is master, router 1 backup
/// with its shared NICs down; both say so on `/ping` and to the node.
pub fn paired(agent_bin: &Path) -> Pair {
    let p = build(agent_bin);
    for i in 0..2 {
        p.configure(i);
    }
    let (code, v) = p.enable_ha(0);
    assert!(code == 200 && v["success"] == true, "{v}\n{}", p.log(0));
    assert!(
        crate::wait_until(Duration::from_secs(5), Duration::from_millis(20), || p
            .ha_status(0)
            == "Master"),
        "router 0 never became master:\n{}",
        p.log(0)
    );
    let (code, v) = p.enable_ha(1);
    assert!(code == 200 && v["success"] == true, "{v}\n{}", p.log(1));
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(p.ha_status(1), "Backup", "{}", p.log(1));
    assert_eq!(p.ha_status(0), "Master");
    assert!(p.link_up(0, "eth1") && p.link_up(0, "eth2"));
    assert!(
        !p.link_up(1, "eth1") && !p.link_up(1, "eth2"),
        "the backup answers for the shared addresses"
    );
    assert!(p.link_up(1, "eth0"), "the heartbeat NIC went down");
    p
}

/// One failover measured: the master's host killed under a 100 pps ping
/// tenant -> outside through SNAT, a 100 pps ping outside -> EIP, and one
/// TCP session echoing every 10 ms through SNAT and one through the port
/// forward (conntrackd has synced them before the kill).
#[derive(Debug)]
pub struct Failover {
    /// The backup's shared NICs up, after the kill.
    pub up_ms: Option<u128>,
    /// The longest silence between two ping replies.
    pub silence_snat_ms: u64,
    pub silence_eip_ms: u64,
    pub snat: EchoReport,
    pub port_forward: EchoReport,
    pub killed_at: Instant,
}

impl Failover {
    /// Whether each TCP session kept going after the kill, without error.
    pub fn kept(s: &EchoReport, killed_at: Instant) -> bool {
        s.error.is_none() && s.after(killed_at) > 10
    }
}

impl Pair {
    /// Kills router 0 (the master of [`paired`]) as [`Failover`] says.
    pub fn failover(&mut self) -> Result<Failover> {
        let to_out = format!("{OUTSIDE}:9000");
        let snat = echo_stream(&self.ten, &to_out, &self.out, &to_out)?;
        let pf = echo_stream(
            &self.out,
            &format!("{PF_VIP}:9001"),
            &self.ten,
            &format!("{TENANT_IP}:9001"),
        )?;
        let pings = ["-n", "-D", "-i", "0.01", "-W", "1", "-c", "300"];
        let mut ping = self.ten.spawn("ping", &[&pings[..], &[OUTSIDE]].concat())?;
        let mut ping_eip = self.out.spawn("ping", &[&pings[..], &[EIP]].concat())?;
        std::thread::sleep(Duration::from_millis(1000));
        let killed_at = Instant::now();
        self.kill(0);
        let took = crate::wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
            self.link_up(1, "eth1") && self.link_up(1, "eth2")
        });
        let up_ms = took.then(|| killed_at.elapsed().as_millis());
        crate::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            !ping.is_running() && !ping_eip.is_running()
        });
        std::thread::sleep(Duration::from_millis(300));
        Ok(Failover {
            up_ms,
            silence_snat_ms: longest_silence_ms(&ping.log()),
            silence_eip_ms: longest_silence_ms(&ping_eip.log()),
            snat: snat.finish(),
            port_forward: pf.finish(),
            killed_at,
        })
    }
}
