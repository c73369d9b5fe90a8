//! DHCP and DNS of the router through one dnsmasq instance: the files it
//! renders from the desired state (`vr_model::dhcp`).
//!
//! The main config (interfaces, ranges, each NIC's DHCP options) changes
//! when NICs with DHCP or DNS change; it needs a restart. Guests that take
//! their NIC's options live in side files that a SIGHUP re-reads
//! (`dhcp-hostsfile`, `addn-hosts`, and `servers-file` for the upstreams of
//! `/setdns`), so adding or removing such a VM never restarts dnsmasq and
//! leases survive. A guest that needs other options (a NIC whose default
//! network is elsewhere gets no router or DNS) is tagged by a `dhcp-host`
//! line in the main config, because dnsmasq 2.90 crashes on SIGHUP when the
//! hosts file carries `set:` tags while a lease exists; changing such a guest
//! restarts dnsmasq (its leases are kept in the lease file). Every string
//! written to a file is validated here, so no value can inject a directive.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use common::net::{IfName, Ipv4Net, Mac};

use vr_model::dhcp::*;

// ---------------------------------------------------------------- render

/// Who dnsmasq becomes once it has bound its ports (`user=`, `group=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub user: String,
    pub group: String,
}

impl Default for RunAs {
    /// Debian's dnsmasq-base creates the system user `dnsmasq` in `nogroup`.
    fn default() -> RunAs {
        RunAs {
            user: "dnsmasq".into(),
            group: "nogroup".into(),
        }
    }
}

/// Where the files live; dnsmasq reads them by these absolute paths, as
/// `run_as` after the start (hosts, addn-hosts and servers on SIGHUP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub dir: PathBuf,
    pub run_as: RunAs,
}

impl Paths {
    pub fn new(dir: impl Into<PathBuf>) -> Paths {
        Paths {
            dir: dir.into(),
            run_as: RunAs::default(),
        }
    }
    pub fn conf(&self) -> PathBuf {
        self.dir.join("dnsmasq.conf")
    }
    pub fn hosts(&self) -> PathBuf {
        self.dir.join("dhcp-hosts")
    }
    pub fn addn_hosts(&self) -> PathBuf {
        self.dir.join("addn-hosts")
    }
    pub fn servers(&self) -> PathBuf {
        self.dir.join("servers")
    }
    pub fn leases(&self) -> PathBuf {
        self.dir.join("dnsmasq.leases")
    }
}

/// The rendered files.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Files {
    /// `dnsmasq.conf`: read only at start.
    pub conf: String,
    /// `dhcp-hostsfile`, `addn-hosts`, `servers-file`: re-read on SIGHUP.
    pub hosts: String,
    pub addn_hosts: String,
    pub servers: String,
}

impl Files {
    /// Files with only these two set, for tests of what changes trigger.
    #[cfg(test)]
    pub(crate) fn conf_and_hosts(conf: &str, hosts: &str) -> Files {
        Files {
            conf: conf.into(),
            hosts: hosts.into(),
            ..Files::default()
        }
    }

    /// (path, contents) of every file, the main config last.
    pub fn by_path(&self, p: &Paths) -> [(PathBuf, &str); 4] {
        [
            (p.hosts(), &self.hosts),
            (p.addn_hosts(), &self.addn_hosts),
            (p.servers(), &self.servers),
            (p.conf(), &self.conf),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub files: Files,
    /// NICs with DHCP or DNS that no interface has (yet); left out.
    pub missing_nics: BTreeSet<Mac>,
}

/// What going from `old` to `new` files takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Nothing,
    /// Side files changed: write them, SIGHUP.
    Reload,
    /// The main config changed (interfaces, ranges, domains): check, write, restart.
    Restart,
}

/// `old` is None when dnsmasq is not running with known files.
pub fn action(old: Option<&Files>, new: &Files) -> Action {
    match old {
        None => Action::Restart,
        Some(o) if o.conf != new.conf => Action::Restart,
        Some(o) if o != new => Action::Reload,
        Some(_) => Action::Nothing,
    }
}

fn dotted(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0))
}

/// The main config's fixed part, vendored in the repository.
const TEMPLATE: &str = include_str!("../../templates/dnsmasq.conf");

/// Renders every file. `links` maps NIC MACs to interface names.
pub fn render(state: &DnsmasqState, links: &BTreeMap<Mac, IfName>, paths: &Paths) -> Rendered {
    let mut missing = BTreeSet::new();
    let mut ifname = |mac: &Mac| {
        let n = links.get(mac).cloned();
        if n.is_none() {
            missing.insert(*mac);
        }
        n
    };
    // Ranges: one per server, plus the network of entries on a NIC without
    // a server (`/adddhcp` before `/startDhcpServer`).
    let mut ranges: BTreeSet<(IfName, Ipv4Net)> = BTreeSet::new();
    let mut nic_ranges: Vec<(Mac, IfName, Ipv4Net)> = Vec::new();
    let mut domains: BTreeSet<(String, Ipv4Net)> = BTreeSet::new();
    for s in state.servers.values() {
        if let Some(n) = ifname(&s.nic_mac) {
            ranges.insert((n.clone(), s.subnet));
            nic_ranges.push((s.nic_mac, n, s.subnet));
            if let Some(d) = &s.dns_domain {
                domains.insert((d.clone(), s.subnet));
            }
        }
    }
    for e in state.entries.values() {
        if state.servers.contains_key(&e.vr_nic_mac) {
            continue;
        }
        if let (Some(n), Some(len)) = (ifname(&e.vr_nic_mac), e.netmask) {
            let net = Ipv4Net::containing(e.ip, len);
            if ranges.insert((n.clone(), net)) {
                nic_ranges.push((e.vr_nic_mac, n, net));
            }
        }
    }
    let mut interfaces: BTreeSet<IfName> = ranges.iter().map(|(n, _)| n.clone()).collect();
    interfaces.extend(state.dns.listen.iter().filter_map(&mut ifname));

    let p = paths;
    let lines = |items: Vec<String>| items.join("\n");
    let mut conf = TEMPLATE
        .replace(
            "{interfaces}",
            &lines(
                interfaces
                    .iter()
                    .map(|n| format!("interface={n}"))
                    .collect(),
            ),
        )
        .replace("{servers_file}", &p.servers().display().to_string())
        .replace("{addn_hosts}", &p.addn_hosts().display().to_string())
        .replace(
            "{domains}",
            &lines(
                domains
                    .iter()
                    .map(|(d, net)| format!("domain={d},{net}\nlocal=/{d}/"))
                    .collect(),
            ),
        )
        .replace("{user}", &p.run_as.user)
        .replace("{group}", &p.run_as.group)
        .replace("{lease_file}", &p.leases().display().to_string())
        .replace("{hosts_file}", &p.hosts().display().to_string());
    for (n, net) in &ranges {
        let _ = writeln!(
            conf,
            "dhcp-range=set:{},{},static,{},infinite",
            nic_tag(n),
            net.addr(),
            dotted(net.prefix_len())
        );
    }

    let (mut hosts, mut addn) = (String::new(), String::new());
    let mut names: BTreeSet<String> = BTreeSet::new();
    // Options: the common set of each NIC comes with its range's tag; an
    // entry that needs other options (a non-default network, another router
    // ...) is tagged by a dhcp-host line in the main config. dnsmasq 2.90
    // crashes on SIGHUP when the hosts file carries `set:` tags and a lease
    // exists, so the re-read hosts file never has tags.
    let mut special = String::new();
    // Each entry under exactly one range of its NIC: the one holding its
    // address, else the NIC's first. A NIC without a server has a range
    // per network of its entries, and dnsmasq refuses a dhcp-host twice
    // (found by fuzz/render_vr's parse-back).
    let range_of = |e: &DhcpEntry| {
        let mine = || nic_ranges.iter().filter(|(m, _, _)| *m == e.vr_nic_mac);
        mine()
            .find(|(_, _, net)| net.contains(e.ip))
            .or_else(|| mine().next())
            .map(|(_, _, net)| *net)
    };
    for (nic_mac, ifn, net) in &nic_ranges {
        let common = nic_profile(state, nic_mac, *net);
        let t = nic_tag(ifn);
        common.render(&mut conf, &format!("tag:{t},tag:!special"));
        for e in state
            .entries
            .values()
            .filter(|e| e.vr_nic_mac == *nic_mac && range_of(e) == Some(*net))
        {
            let tag = e.tag();
            // Duplicate hostnames become <ip-dashes>-<mac-without-colons> (as
            // zvr); the first entry in key order keeps the name.
            let hostname = e.hostname.as_ref().filter(|_| e.is_default_l3).map(|h| {
                if names.insert(h.clone()) {
                    h.clone()
                } else {
                    format!("{}-{tag}", e.ip.to_string().replace('.', "-"))
                }
            });
            if let Some(h) = &hostname {
                let _ = writeln!(addn, "{} {h}", e.ip);
            }
            let name = hostname.as_deref().unwrap_or("");
            let own = entry_profile(state, e, *net);
            if own == common {
                let _ = writeln!(hosts, "{},{},{name},infinite", e.mac, e.ip);
            } else {
                let _ = writeln!(
                    special,
                    "dhcp-host={},set:special,set:h{tag},{},{name},infinite",
                    e.mac, e.ip
                );
                own.render(&mut special, &format!("tag:h{tag}"));
            }
        }
    }
    conf.push_str(&special);
    let mut servers = String::new();
    for u in &state.dns.upstreams {
        let _ = writeln!(servers, "server={u}");
    }
    Rendered {
        files: Files {
            conf,
            hosts,
            addn_hosts: addn,
            servers,
        },
        missing_nics: missing,
    }
}

/// The DHCP options one guest gets (beyond its address and name).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Profile {
    /// None: the guest's default network is elsewhere, so no router, DNS
    /// or domain is handed out.
    routing: Option<(Option<Ipv4Addr>, Vec<Ipv4Addr>, Option<String>)>,
    netmask: u8,
    mtu: Option<u32>,
}

impl Profile {
    fn render(&self, out: &mut String, tags: &str) {
        match &self.routing {
            Some((gw, dns, domain)) => {
                if let Some(gw) = gw {
                    let _ = writeln!(out, "dhcp-option={tags},option:router,{gw}");
                }
                if !dns.is_empty() {
                    let dns: Vec<String> = dns.iter().map(Ipv4Addr::to_string).collect();
                    let _ = writeln!(
                        out,
                        "dhcp-option={tags},option:dns-server,{}",
                        dns.join(",")
                    );
                }
                if let Some(d) = domain {
                    let _ = writeln!(out, "dhcp-option={tags},option:domain-name,{d}");
                }
            }
            // Empty options: dnsmasq would otherwise offer itself as router/DNS.
            None => {
                let _ = writeln!(
                    out,
                    "dhcp-option={tags},3\ndhcp-option={tags},6\ndhcp-option={tags},15"
                );
            }
        }
        let _ = writeln!(
            out,
            "dhcp-option={tags},option:netmask,{}",
            dotted(self.netmask)
        );
        if let Some(mtu) = self.mtu {
            let _ = writeln!(out, "dhcp-option={tags},option:mtu,{mtu}");
        }
    }
}

/// The options most guests on a NIC get: from its server, or else from its
/// first default-network entry.
fn nic_profile(state: &DnsmasqState, nic: &Mac, net: Ipv4Net) -> Profile {
    if let Some(s) = state.servers.get(nic) {
        return Profile {
            routing: Some((
                s.gateway,
                s.dns_server.into_iter().collect(),
                s.dns_domain.clone(),
            )),
            netmask: s.subnet.prefix_len(),
            mtu: s.mtu,
        };
    }
    match state
        .entries
        .values()
        .find(|e| e.vr_nic_mac == *nic && e.is_default_l3)
    {
        Some(e) => entry_profile(state, e, net),
        None => Profile {
            routing: None,
            netmask: net.prefix_len(),
            mtu: None,
        },
    }
}

fn entry_profile(state: &DnsmasqState, e: &DhcpEntry, net: Ipv4Net) -> Profile {
    let server = state.servers.get(&e.vr_nic_mac);
    let routing = e.is_default_l3.then(|| {
        let gw = e.gateway.or(server.and_then(|s| s.gateway));
        let dns = if e.dns.is_empty() {
            server.and_then(|s| s.dns_server).into_iter().collect()
        } else {
            e.dns.clone()
        };
        let domain = e
            .domain
            .clone()
            .or(server.and_then(|s| s.dns_domain.clone()));
        (gw, dns, domain)
    });
    Profile {
        routing,
        netmask: e.netmask.unwrap_or(net.prefix_len()),
        mtu: e.mtu.or(server.and_then(|s| s.mtu)),
    }
}

/// The tag dnsmasq sets for requests in a NIC's range.
fn nic_tag(ifname: &IfName) -> String {
    format!("if-{ifname}")
}

/// The leases in a dnsmasq lease file: (mac, ip, hostname) per line of
/// `expiry mac ip hostname|* client-id|*`; `duid` lines are skipped.
pub fn parse_leases(text: &str) -> Vec<(Mac, Ipv4Addr, Option<String>)> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() < 4 {
                return None;
            }
            let mac = w[1].parse().ok()?;
            let ip = w[2].parse().ok()?;
            let host = (w[3] != "*").then(|| w[3].to_string());
            Some((mac, ip, host))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use vr_model::dhcp::fixtures::state as fixtures_state;

    fn mac(s: &str) -> Mac {
        s.parse().unwrap()
    }

    fn links() -> BTreeMap<Mac, IfName> {
        [
            ("fa:26:9c:aa:00:01", "eth0"),
            ("fa:26:9c:aa:00:02", "eth1"),
            ("fa:26:9c:aa:00:03", "eth2"),
        ]
        .into_iter()
        .map(|(m, n)| (mac(m), n.parse().unwrap()))
        .collect()
    }

    fn golden(name: &str, got: &str) {
        let path = format!("{}/src/plan/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, got).unwrap();
        }
        assert_eq!(got, std::fs::read_to_string(&path).unwrap(), "{path}");
    }

    /// F4 + F5 + F6 rendered, against golden files
    /// (`UPDATE_GOLDEN=1 cargo test` rewrites them after a deliberate change).
    #[test]
    fn fixtures_render_matches_golden() {
        let r = render(
            &fixtures_state(),
            &links(),
            &Paths::new("/run/vr-agent/dnsmasq"),
        );
        assert!(r.missing_nics.is_empty());
        golden("dnsmasq_conf", &r.files.conf);
        golden("dnsmasq_hosts", &r.files.hosts);
        golden("dnsmasq_addn_hosts", &r.files.addn_hosts);
        golden("dnsmasq_servers", &r.files.servers);
        // The reference's expected hostsfile line for F5.
        assert!(
            r.files
                .hosts
                .lines()
                .any(|l| l == "fa:a1:5e:12:34:56,192.168.100.10,web-01.zstack.local,infinite")
        );
    }

    #[test]
    fn host_changes_reload_nic_changes_restart() {
        let p = Paths::new("/d");
        let st = fixtures_state();
        let old = render(&st, &links(), &p).files;
        assert_eq!(action(Some(&old), &old), Action::Nothing);
        assert_eq!(action(None, &old), Action::Restart);

        let mut st2 = st.clone();
        let mut e = st.entries.values().next().unwrap().clone();
        e.mac = mac("fa:a1:5e:00:00:01");
        e.ip = "192.168.100.20".parse().unwrap();
        e.hostname = Some("db-01".into());
        assert!(
            st2.apply(&DhcpEdit::Add {
                entries: vec![e],
                rebuild: false
            })
            .is_empty()
        );
        st2.apply(&DhcpEdit::RemoveDns(vec!["8.8.8.8".parse().unwrap()]));
        assert_eq!(
            action(Some(&old), &render(&st2, &links(), &p).files),
            Action::Reload
        );

        let mut st3 = st.clone();
        let mut cfg = st.dns.clone();
        cfg.listen.insert(mac("fa:26:9c:aa:00:01"));
        st3.apply(&DhcpEdit::SetDns(cfg));
        assert_eq!(
            action(Some(&old), &render(&st3, &links(), &p).files),
            Action::Restart
        );

        let mut st4 = st.clone();
        let rel = st4.apply(&DhcpEdit::Stop(vec![mac("fa:26:9c:aa:00:03")]));
        assert_eq!(rel.len(), 2);
        assert_eq!(
            action(Some(&old), &render(&st4, &links(), &p).files),
            Action::Restart
        );
    }

    #[test]
    fn an_entry_is_rendered_under_one_range() {
        let mut st = fixtures_state();
        let mut a = st.entries.values().next().unwrap().clone();
        st.apply(&DhcpEdit::Stop(vec![mac("fa:26:9c:aa:00:03")]));
        st.entries.clear();
        a.mtu = Some(3000);
        let mut b = a.clone();
        b.mac = mac("fa:a1:5e:99:99:98");
        b.ip = "193.168.100.31".parse().unwrap();
        st.apply(&DhcpEdit::Add {
            entries: vec![a.clone(), b.clone()],
            rebuild: false,
        });
        let f = render(&st, &links(), &Paths::new("/d")).files;
        assert_eq!(f.conf.matches("dhcp-range=").count(), 2, "{}", f.conf);
        for e in [&a, &b] {
            let lines = f.conf.lines().chain(f.hosts.lines());
            let n = lines.filter(|l| l.contains(&e.mac.to_string())).count();
            assert_eq!(n, 1, "{} rendered {n} times:\n{}{}", e.mac, f.conf, f.hosts);
        }
    }

    #[test]
    fn unknown_nics_are_left_out_and_reported() {
        let st = fixtures_state();
        let r = render(&st, &BTreeMap::new(), &Paths::new("/d"));
        assert_eq!(r.missing_nics, [mac("fa:26:9c:aa:00:03")].into());
        assert!(!r.files.conf.contains("dhcp-range"));
        assert!(!r.files.conf.contains("interface=eth"));
    }

    #[test]
    fn duplicate_hostnames_are_renamed() {
        let mut st = fixtures_state();
        let mut e = st.entries.values().next().unwrap().clone();
        e.mac = mac("fa:a1:5e:ff:00:09");
        e.ip = "192.168.100.30".parse().unwrap();
        st.apply(&DhcpEdit::Add {
            entries: vec![e],
            rebuild: false,
        });
        let r = render(&st, &links(), &Paths::new("/d")).files;
        assert!(
            r.addn_hosts
                .contains("192.168.100.30 192-168-100-30-faa15eff0009\n"),
            "{}",
            r.addn_hosts
        );
    }

    #[test]
    fn lease_file_parses() {
        let l = parse_leases(
            "0 fa:a1:5e:12:34:56 192.168.100.10 web-01 01:fa:a1:5e:12:34:56\n\
             duid 00:01\n0 fa:a1:5e:12:34:57 192.168.100.11 * *\n",
        );
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].2.as_deref(), Some("web-01"));
        assert_eq!(l[1].2, None);
    }
}
