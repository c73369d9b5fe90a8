//! keepalived.conf for the router HA pair (issue 17): one VRRPv3 instance,
//! unicast to the peer over the heartbeat NIC, owning every address the
//! pair shares. Pure: [`HaSpec`] in, text out; every string is checked by
//! [`HaSpec::validate`] before it reaches the config, so a newline, quote
//! or brace from a request cannot add a directive.
//!
//! Choices (and how zvr differs, zstack-vyos `63bc11a` `plugin/keepalived.go`):
//! - `vrrp_version 3` and `advert_int` in centiseconds: VRRPv3 (RFC 5798)
//!   carries the interval in 1/100 s, so 10 cs gives a master-down time of
//!   about 3 x 0.1 s + skew. zvr uses whole seconds (the node's
//!   `keepalive`, 1..60).
//! - keepalived adds and removes the shared addresses itself
//!   (`virtual_ipaddress`), so the promotion is one netlink call, not a
//!   script; zvr's notify scripts bring whole NICs up and down.
//! - `state BACKUP` + `nopreempt` on both: a returning old master stays
//!   backup (zvr does the same).
//! - `garp_master_delay 1` / `garp_master_repeat 3`: a second burst of
//!   gratuitous ARP 1 s after promotion for switches that missed the first.
//! - the notify scripts get the new state as their only argument and the
//!   FIFO gets keepalived's `INSTANCE "name" STATE prio` lines; the agent
//!   uses either to bring dnsmasq and haproxy to serve and to report to the
//!   node.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use common::net::IfName;

/// The VRRP instance name (also in the FIFO lines).
pub const INSTANCE: &str = "vr_ha";

/// Largest VRRPv3 advertisement interval: 12 bits of centiseconds.
pub const MAX_ADVERT_CS: u16 = 4095;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedAddr {
    pub nic: IfName,
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

/// What runs on a transition: absolute paths of executables (run as root
/// by keepalived, so the agent owns them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Notify {
    pub master: Option<String>,
    pub backup: Option<String>,
    pub fault: Option<String>,
    /// keepalived writes one line per transition here.
    pub fifo: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaSpec {
    /// Names this router in keepalived's logs (`router_id`).
    pub router_id: String,
    pub heartbeat: IfName,
    pub local: Ipv4Addr,
    pub peer: Ipv4Addr,
    /// 1..=255, the same on both routers.
    pub vrid: u8,
    /// 1..=254 (255 is the address owner, which never waits).
    pub priority: u8,
    /// 1..=4095 centiseconds.
    pub advert_cs: u16,
    pub shared: Vec<SharedAddr>,
    pub notify: Notify,
    pub nopreempt: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HaSpecError {
    #[error("router id {0:?}: 1 to 64 of A-Z a-z 0-9 . _ -")]
    RouterId(String),
    #[error("virtual router id 0: must be 1..=255")]
    Vrid,
    #[error("priority {0}: must be 1..=254")]
    Priority(u8),
    #[error("advert interval {0} cs: must be 1..={MAX_ADVERT_CS}")]
    Advert(u16),
    #[error("peer {0} is the local address")]
    PeerIsLocal(Ipv4Addr),
    #[error("{0}: {1} is not an address a router can share")]
    Addr(IfName, Ipv4Addr),
    #[error("{0}/{1}: prefix must be 1..=32")]
    Prefix(Ipv4Addr, u8),
    #[error("{0} is shared twice")]
    Duplicate(Ipv4Addr),
    #[error("{what} path {path:?}: absolute, at most 255 of A-Z a-z 0-9 / . _ -, no ..")]
    Path { what: &'static str, path: String },
    #[error("no shared address: nothing to fail over")]
    NoShared,
    #[error("interface {0}: keepalived reads {{ }} # ! as syntax")]
    IfName(IfName),
}

/// `IfName` already refuses whitespace and quotes; keepalived's parser
/// also treats braces and its comment marks as syntax.
pub fn check_ifname(n: &IfName) -> Result<(), HaSpecError> {
    if n.as_str().bytes().any(|b| b"{}#!".contains(&b)) {
        return Err(HaSpecError::IfName(n.clone()));
    }
    Ok(())
}

/// A path keepalived may run or open: absolute and made of characters that
/// need no quoting in its config.
pub fn check_path(what: &'static str, path: &str) -> Result<(), HaSpecError> {
    let ok = path.starts_with('/')
        && path.len() <= 255
        && !path.split('/').any(|c| c == "..")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(HaSpecError::Path {
            what,
            path: path.to_string(),
        })
    }
}

fn usable(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast())
}

impl HaSpec {
    pub fn validate(&self) -> Result<(), HaSpecError> {
        let id_ok = !self.router_id.is_empty()
            && self.router_id.len() <= 64
            && self
                .router_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !id_ok {
            return Err(HaSpecError::RouterId(self.router_id.clone()));
        }
        if self.vrid == 0 {
            return Err(HaSpecError::Vrid);
        }
        if self.priority == 0 || self.priority == 255 {
            return Err(HaSpecError::Priority(self.priority));
        }
        if self.advert_cs == 0 || self.advert_cs > MAX_ADVERT_CS {
            return Err(HaSpecError::Advert(self.advert_cs));
        }
        check_ifname(&self.heartbeat)?;
        for a in [self.local, self.peer] {
            if !usable(a) {
                return Err(HaSpecError::Addr(self.heartbeat.clone(), a));
            }
        }
        if self.local == self.peer {
            return Err(HaSpecError::PeerIsLocal(self.peer));
        }
        if self.shared.is_empty() {
            return Err(HaSpecError::NoShared);
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.shared {
            check_ifname(&s.nic)?;
            if !usable(s.addr) {
                return Err(HaSpecError::Addr(s.nic.clone(), s.addr));
            }
            if s.prefix == 0 || s.prefix > 32 {
                return Err(HaSpecError::Prefix(s.addr, s.prefix));
            }
            if !seen.insert(s.addr) {
                return Err(HaSpecError::Duplicate(s.addr));
            }
        }
        let n = &self.notify;
        for (what, p) in [
            ("notify_master", &n.master),
            ("notify_backup", &n.backup),
            ("notify_fault", &n.fault),
            ("notify_fifo", &n.fifo),
        ] {
            if let Some(p) = p {
                check_path(what, p)?;
            }
        }
        Ok(())
    }
}

/// `advert_int` as keepalived reads it: seconds with two decimals.
fn seconds(cs: u16) -> String {
    format!("{}.{:02}", cs / 100, cs % 100)
}

/// The whole keepalived.conf, or why the spec cannot be one.
pub fn render(spec: &HaSpec) -> Result<String, HaSpecError> {
    spec.validate()?;
    let mut s = String::new();
    s.push_str("# Written by vr-agent; every change is overwritten.\n");
    s.push_str("global_defs {\n");
    let _ = writeln!(s, "    router_id {}", spec.router_id);
    s.push_str("    vrrp_version 3\n");
    // Adverts from anyone but the peer are ignored.
    s.push_str("    vrrp_check_unicast_src\n");
    s.push_str("    enable_script_security\n");
    s.push_str("    script_user root\n");
    if let Some(f) = &spec.notify.fifo {
        let _ = writeln!(s, "    vrrp_notify_fifo {f}");
    }
    s.push_str("}\n\n");
    let _ = writeln!(s, "vrrp_instance {INSTANCE} {{");
    s.push_str("    state BACKUP\n");
    let _ = writeln!(s, "    interface {}", spec.heartbeat);
    let _ = writeln!(s, "    virtual_router_id {}", spec.vrid);
    let _ = writeln!(s, "    priority {}", spec.priority);
    let _ = writeln!(s, "    advert_int {}", seconds(spec.advert_cs));
    if spec.nopreempt {
        s.push_str("    nopreempt\n");
    }
    s.push_str("    garp_master_delay 1\n");
    s.push_str("    garp_master_repeat 3\n");
    let _ = writeln!(s, "    unicast_src_ip {}", spec.local);
    s.push_str("    unicast_peer {\n");
    let _ = writeln!(s, "        {}", spec.peer);
    s.push_str("    }\n");
    s.push_str("    virtual_ipaddress {\n");
    for a in &spec.shared {
        // no_track: the backup holds the shared NICs down, and keepalived
        // would otherwise go FAULT for a VIP on a down interface and never
        // take over.
        let _ = writeln!(s, "        {}/{} dev {} no_track", a.addr, a.prefix, a.nic);
    }
    s.push_str("    }\n");
    let n = &spec.notify;
    for (key, p) in [
        ("notify_master", &n.master),
        ("notify_backup", &n.backup),
        ("notify_fault", &n.fault),
    ] {
        if let Some(p) = p {
            let _ = writeln!(s, "    {key} {p}");
        }
    }
    s.push_str("}\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> HaSpec {
        HaSpec {
            router_id: "vr-4d8c1c0e".into(),
            heartbeat: "eth0".parse().unwrap(),
            local: "10.0.0.5".parse().unwrap(),
            peer: "10.0.0.6".parse().unwrap(),
            vrid: 50,
            priority: 100,
            advert_cs: 10,
            shared: vec![
                SharedAddr {
                    nic: "eth1".parse().unwrap(),
                    addr: "172.20.10.5".parse().unwrap(),
                    prefix: 24,
                },
                SharedAddr {
                    nic: "eth2".parse().unwrap(),
                    addr: "192.168.100.1".parse().unwrap(),
                    prefix: 24,
                },
            ],
            notify: Notify {
                master: Some("/usr/lib/vr-agent/ha-notify".into()),
                backup: Some("/usr/lib/vr-agent/ha-notify".into()),
                fault: Some("/usr/lib/vr-agent/ha-notify".into()),
                fifo: Some("/run/vr-agent/keepalived.fifo".into()),
            },
            nopreempt: true,
        }
    }

    /// `UPDATE_GOLDEN=1 cargo test` rewrites the golden file after a
    /// deliberate change.
    #[test]
    fn config_matches_golden() {
        let got = render(&sample()).unwrap();
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/plan/testdata/keepalived.conf"
        );
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &got).unwrap();
        }
        assert_eq!(got, std::fs::read_to_string(path).unwrap());
    }

    #[test]
    fn advert_is_rendered_in_seconds_with_centiseconds() {
        assert_eq!(seconds(10), "0.10");
        assert_eq!(seconds(100), "1.00");
        assert_eq!(seconds(4095), "40.95");
    }

    #[test]
    fn injection_through_a_path_is_refused() {
        for bad in [
            "/x\n}\nvrrp_script evil {",
            "/x\"",
            "relative",
            "/a/../etc/shadow",
            "/a b",
            "/x{",
        ] {
            let mut s = sample();
            s.notify.master = Some(bad.into());
            assert!(
                matches!(render(&s), Err(HaSpecError::Path { .. })),
                "{bad:?}"
            );
        }
        let mut s = sample();
        s.shared[0].nic = "eth1}".parse().unwrap();
        assert!(matches!(render(&s), Err(HaSpecError::IfName(_))));
        let mut s = sample();
        s.router_id = "a\nb".into();
        assert_eq!(render(&s), Err(HaSpecError::RouterId("a\nb".into())));
    }

    #[test]
    fn numbers_outside_vrrp_are_refused() {
        let with = |f: fn(&mut HaSpec)| {
            let mut s = sample();
            f(&mut s);
            render(&s).unwrap_err()
        };
        assert_eq!(with(|s| s.vrid = 0), HaSpecError::Vrid);
        assert_eq!(with(|s| s.priority = 255), HaSpecError::Priority(255));
        assert_eq!(with(|s| s.advert_cs = 0), HaSpecError::Advert(0));
        assert_eq!(with(|s| s.advert_cs = 4096), HaSpecError::Advert(4096));
        assert_eq!(
            with(|s| s.shared[0].prefix = 33),
            HaSpecError::Prefix("172.20.10.5".parse().unwrap(), 33)
        );
        assert_eq!(
            with(|s| s.peer = s.local),
            HaSpecError::PeerIsLocal("10.0.0.5".parse().unwrap())
        );
        assert_eq!(with(|s| s.shared.clear()), HaSpecError::NoShared);
        assert_eq!(
            with(|s| s.shared[1].addr = s.shared[0].addr),
            HaSpecError::Duplicate("172.20.10.5".parse().unwrap())
        );
    }

    #[test]
    fn without_nopreempt_or_scripts_those_lines_are_absent() {
        let mut s = sample();
        s.nopreempt = false;
        s.notify = Notify::default();
        let got = render(&s).unwrap();
        assert!(!got.contains("nopreempt"), "{got}");
        assert!(!got.contains("notify"), "{got}");
    }
}
