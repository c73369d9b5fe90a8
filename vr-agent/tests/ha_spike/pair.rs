//! The HA pair's topology: two routers on a shared public and private
//! switch, a heartbeat bridge, an outside namespace and a tenant; and the
//! keepalived and conntrackd configs our plan renders for them.

use std::io::Write;

use testbed::{Netns, Proc, TempDir, addr, bridge, enslave, route, veth};
use vr_agent::plan::{conntrackd, keepalived};

pub const VIP: &str = "172.20.10.5";
pub const GW: &str = "192.168.100.1";
pub const OUTSIDE: &str = "172.20.10.1";
pub const ADVERT_CS: u16 = 10;

pub fn spec(
    local: &str,
    peer: &str,
    priority: u8,
    notify: keepalived::Notify,
) -> keepalived::HaSpec {
    keepalived::HaSpec {
        router_id: "spike".into(),
        heartbeat: "eth0".parse().unwrap(),
        local: local.parse().unwrap(),
        peer: peer.parse().unwrap(),
        vrid: 50,
        priority,
        advert_cs: ADVERT_CS,
        shared: vec![
            keepalived::SharedAddr {
                nic: "eth1".parse().unwrap(),
                addr: VIP.parse().unwrap(),
                prefix: 24,
            },
            keepalived::SharedAddr {
                nic: "eth2".parse().unwrap(),
                addr: GW.parse().unwrap(),
                prefix: 24,
            },
        ],
        notify,
        nopreempt: true,
    }
}

pub fn sync_spec(dir: &TempDir, tag: &str, local: &str, peer: &str) -> conntrackd::SyncSpec {
    conntrackd::SyncSpec {
        heartbeat: "eth0".parse().unwrap(),
        local: local.parse().unwrap(),
        peer: peer.parse().unwrap(),
        port: 0,
        socket: dir.path().join(format!("{tag}.ctl")).display().to_string(),
        lock_file: dir.path().join(format!("{tag}.lock")).display().to_string(),
        ignore: vec![],
    }
}

/// The pair and its neighbours; dropping it removes every namespace.
pub struct Pair {
    pub routers: [Netns; 2],
    pub out: Netns,
    pub ten: Netns,
    pub sw: Netns,
    pub dir: TempDir,
    pub procs: Vec<Proc>,
}

const HB: [&str; 2] = ["10.0.0.5", "10.0.0.6"];

pub fn build() -> Pair {
    let sw = Netns::new("hasw").unwrap();
    let routers = [Netns::new("har1").unwrap(), Netns::new("har2").unwrap()];
    let out = Netns::new("haout").unwrap();
    let ten = Netns::new("haten").unwrap();
    bridge(&sw, "pub").unwrap();
    bridge(&sw, "priv").unwrap();
    for (i, r) in routers.iter().enumerate() {
        veth(r, "eth1", &sw, &format!("p{i}")).unwrap();
        enslave(&sw, &format!("p{i}"), "pub").unwrap();
        veth(r, "eth2", &sw, &format!("q{i}")).unwrap();
        enslave(&sw, &format!("q{i}"), "priv").unwrap();
        r.sysctl("net.ipv4.ip_forward", "1").unwrap();
        r.sysctl("net.netfilter.nf_conntrack_tcp_loose", "0")
            .unwrap();
        // SNAT and the usual drop of what conntrack cannot place.
        let rules = r#"
table ip spike {
    chain c_forward {
        type filter hook forward priority 0;
        ct state invalid drop
    }
    chain c_post {
        type nat hook postrouting priority 100;
        oifname "eth1" ip saddr 192.168.100.0/24 snat to 172.20.10.5
    }
}
"#;
        let mut nft = r.command("nft", &["-f", "-"]);
        nft.stdin(std::process::Stdio::piped());
        let mut child = nft.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(rules.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "nft in router {i}");
    }
    // The heartbeat link through a switch too: a dead peer must not take
    // the survivor's carrier down (keepalived enters FAULT on that).
    bridge(&sw, "hb").unwrap();
    for (i, r) in routers.iter().enumerate() {
        veth(r, "eth0", &sw, &format!("h{i}")).unwrap();
        enslave(&sw, &format!("h{i}"), "hb").unwrap();
    }
    addr(&routers[0], "eth0", "10.0.0.5/24").unwrap();
    addr(&routers[1], "eth0", "10.0.0.6/24").unwrap();
    veth(&out, "eth0", &sw, "po").unwrap();
    enslave(&sw, "po", "pub").unwrap();
    addr(&out, "eth0", "172.20.10.1/24").unwrap();
    veth(&ten, "eth0", &sw, "qt").unwrap();
    enslave(&sw, "qt", "priv").unwrap();
    addr(&ten, "eth0", "192.168.100.10/24").unwrap();
    route(&ten, "default via 192.168.100.1").unwrap();
    Pair {
        routers,
        out,
        ten,
        sw,
        dir: TempDir::new("ha").unwrap(),
        procs: vec![],
    }
}

impl Pair {
    pub fn start_keepalived(&mut self, i: usize, priority: u8) {
        let conf =
            keepalived::render(&spec(HB[i], HB[1 - i], priority, Default::default())).unwrap();
        let d = self.dir.path();
        let file = d.join(format!("keepalived{i}.conf"));
        std::fs::write(&file, conf).unwrap();
        let pid = |k: &str| d.join(format!("{k}{i}.pid")).display().to_string();
        let p = self.routers[i]
            .spawn(
                "keepalived",
                &[
                    "--dont-fork",
                    "--log-console",
                    "--vrrp",
                    "-f",
                    file.to_str().unwrap(),
                    "-p",
                    &pid("k"),
                    "-r",
                    &pid("v"),
                ],
            )
            .unwrap();
        self.procs.push(p);
    }

    pub fn start_conntrackd(&mut self, i: usize) {
        let s = sync_spec(&self.dir, &format!("c{i}"), HB[i], HB[1 - i]);
        let file = self.dir.path().join(format!("conntrackd{i}.conf"));
        std::fs::write(&file, conntrackd::render(&s).unwrap()).unwrap();
        let p = self.routers[i]
            .spawn("conntrackd", &["-C", file.to_str().unwrap()])
            .unwrap();
        self.procs.push(p);
    }

    pub fn holds_vip(&self, i: usize) -> bool {
        self.routers[i]
            .ip("-4 -o addr show dev eth1")
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("{VIP}/")))
            .unwrap_or(false)
    }

    /// The router's host is gone: every process in it killed, links down.
    pub fn kill(&self, i: usize) {
        testbed::failover::kill_host(&self.routers[i], &["eth0", "eth1", "eth2"]);
    }
}
