//! DHCP and DNS through the supervised dnsmasq, proven with real clients
//! (busybox udhcpc, dig) in namespaces.
//!
//! vr:     eth2 192.168.100.1/24 -- tenant eth0 (default L3 entry .10)
//!         eth3 192.168.200.1/24 -- tenant eth1 (non-default L3 entry .11)
//!         eth1 172.20.10.5/16   -- public eth0 172.20.0.1/16 (upstream DNS)

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use common::net::{IfName, Mac};
use common::vr;
use serde_json::json;
use testbed::{Netns, TempDir, addr, set_mac, veth, wait_until};
use vr_agent::engine::update_dnsmasq;
use vr_agent::plan::dnsmasq::{self as plan, Action, parse_leases};
use vr_agent::sys::dnsmasq::{Dnsmasq, DnsmasqProcess};
use vr_model::dhcp::{self, DhcpEdit, DnsmasqState};

const T: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

fn mac(s: &str) -> Mac {
    s.parse().unwrap()
}

struct Lab {
    vr: Netns,
    tenant: Netns,
    _public: Netns,
    tmp: TempDir,
    _upstream: testbed::Proc,
}

impl Lab {
    fn new() -> Lab {
        let vr = Netns::new("vr").unwrap();
        let tenant = Netns::new("tenant").unwrap();
        let public = Netns::new("public").unwrap();
        for (vif, vmac, vip, tif, tmac) in [
            (
                "eth2",
                "fa:26:9c:aa:00:03",
                "192.168.100.1/24",
                "eth0",
                "fa:a1:5e:12:34:56",
            ),
            (
                "eth3",
                "fa:26:9c:aa:00:04",
                "192.168.200.1/24",
                "eth1",
                "fa:a1:5e:12:34:57",
            ),
        ] {
            veth(&vr, vif, &tenant, tif).unwrap();
            set_mac(&vr, vif, vmac).unwrap();
            set_mac(&tenant, tif, tmac).unwrap();
            addr(&vr, vif, vip).unwrap();
        }
        veth(&vr, "eth1", &public, "eth0").unwrap();
        addr(&vr, "eth1", "172.20.10.5/16").unwrap();
        addr(&public, "eth0", "172.20.0.1/16").unwrap();
        let upstream = testbed::upstream_dns(&public, "172.20.0.1").unwrap();
        let tmp = TempDir::new("dhcp").unwrap();
        Lab {
            vr,
            tenant,
            _public: public,
            tmp,
            _upstream: upstream,
        }
    }

    /// Runs udhcpc on the tenant's `ifname`; the bound environment, or None
    /// when no server answered.
    fn dhcp(&self, ifname: &str, tries: u32) -> Option<BTreeMap<String, String>> {
        testbed::dhcp_lease(&self.tenant, ifname, tries, false, self.tmp.path())
    }

    fn dig(&self, name: &str) -> String {
        self.tenant
            .sh(&format!(
                "dig @192.168.100.1 {name} +short +time=2 +tries=2"
            ))
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

fn links() -> BTreeMap<Mac, IfName> {
    [
        ("fa:26:9c:aa:00:02", "eth1"),
        ("fa:26:9c:aa:00:03", "eth2"),
        ("fa:26:9c:aa:00:04", "eth3"),
    ]
    .into_iter()
    .map(|(m, n)| (mac(m), n.parse().unwrap()))
    .collect()
}

fn leases(dir: &Path) -> Vec<(Mac, Ipv4Addr)> {
    let text = std::fs::read_to_string(plan::Paths::new(dir).leases()).unwrap_or_default();
    parse_leases(&text)
        .into_iter()
        .map(|(m, ip, _)| (m, ip))
        .collect()
}

fn refresh() -> DhcpEdit {
    let body = json!({"dhcpServers": [
        {"nicMac": "fa:26:9c:aa:00:03", "subnet": "192.168.100.0/24",
         "netmask": "255.255.255.0", "gateway": "192.168.100.1", "dnsDomain": "zstack.local",
         "dnsServer": "192.168.100.1", "mtu": 1450,
         "dhcpInfos": [{"ip": "192.168.100.10", "mac": "fa:a1:5e:12:34:56",
                        "hostname": "web-01.zstack.local", "isDefaultL3Network": true}]},
        {"nicMac": "fa:26:9c:aa:00:04", "subnet": "192.168.200.0/24",
         "netmask": "255.255.255.0", "gateway": "192.168.200.1",
         "dnsServer": "192.168.200.1", "mtu": 1500,
         "dhcpInfos": [{"ip": "192.168.200.11", "mac": "fa:a1:5e:12:34:57",
                        "hostname": "192-168-200-11", "isDefaultL3Network": false}]}]});
    let cmd: vr::DhcpServersCmd = serde_json::from_value(body).unwrap();
    DhcpEdit::Refresh(dhcp::servers(&cmd).unwrap())
}

fn set_dns() -> DhcpEdit {
    let cmd: vr::DnsCmd = serde_json::from_value(
        json!({"dns": [{"dnsAddress": "172.20.0.1", "nicMac": "fa:26:9c:aa:00:03"}]}),
    )
    .unwrap();
    DhcpEdit::SetDns(vr_model::dns::dns(&cmd).unwrap())
}

fn add_db01() -> DhcpEdit {
    let cmd: vr::AddDhcpCmd = serde_json::from_value(json!({"dhcpEntries": [
        {"ip": "192.168.100.20", "mac": "fa:a1:5e:00:00:20", "netmask": "255.255.255.0",
         "gateway": "192.168.100.1", "dns": ["192.168.100.1"], "hostname": "db-01.zstack.local",
         "vrNicMac": "fa:26:9c:aa:00:03", "dnsDomain": "zstack.local",
         "isDefaultL3Network": true, "mtu": 1450}], "rebuild": false}))
    .unwrap();
    DhcpEdit::Add {
        entries: dhcp::entries(&cmd.dhcp_entries).unwrap(),
        rebuild: cmd.rebuild,
    }
}

#[test]
fn static_leases_options_reload_release_and_dns() {
    testbed::require_privileged!();
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let lab = Lab::new();
    let state_dir = TempDir::new("dnsmasq-state").unwrap();
    let dir = state_dir.path().to_path_buf();
    let lab = &lab;
    lab.vr.run(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let d = DnsmasqProcess::new(&dir).unwrap();
            let links = links();
            let mut st = DnsmasqState::default();
            st.apply(&refresh());
            st.apply(&set_dns());
            let files = plan::render(&st, &links, d.paths()).files;
            assert_eq!(
                update_dnsmasq(&d, None, &files).await.unwrap(),
                Action::Restart
            );
            assert!(wait_until(T, POLL, || d.pid().is_some()));
            let pid = d.pid().unwrap();

            // Default L3: IP, router, DNS, MTU, domain, hostname, netmask.
            let env = lab.dhcp("eth0", 10).expect("lease on eth0");
            assert_eq!(env["ip"], "192.168.100.10", "{env:?}");
            assert_eq!(env["router"], "192.168.100.1");
            assert_eq!(env["dns"], "192.168.100.1");
            assert_eq!(env["mtu"], "1450");
            assert_eq!(env["domain"], "zstack.local");
            assert_eq!(env["hostname"], "web-01");
            assert_eq!(env["subnet"], "255.255.255.0");

            // Non-default L3: the IP, but no router and no DNS.
            let env = lab.dhcp("eth1", 10).expect("lease on eth1");
            assert_eq!(env["ip"], "192.168.200.11", "{env:?}");
            assert_eq!(env["router"], "");
            assert_eq!(env["dns"], "");
            assert_eq!(env["subnet"], "255.255.255.0");
            assert_eq!(env["mtu"], "1500");
            let l = leases(&dir);
            assert!(l.contains(&(mac("fa:a1:5e:12:34:56"), "192.168.100.10".parse().unwrap())));
            assert!(l.contains(&(mac("fa:a1:5e:12:34:57"), "192.168.200.11".parse().unwrap())));

            // A new host is a SIGHUP: same pid, leases kept.
            let old = files;
            assert!(st.apply(&add_db01()).is_empty());
            let files = plan::render(&st, &links, d.paths()).files;
            assert_eq!(
                update_dnsmasq(&d, Some(&old), &files).await.unwrap(),
                Action::Reload
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(d.pid(), Some(pid), "no restart for host changes");
            assert_eq!(d.restarts(), 0);
            assert_eq!(
                leases(&dir).len(),
                2,
                "leases survive a reload: {:?}",
                leases(&dir)
            );

            // DNS: another tenant's hostname from addn-hosts, and an outside
            // name forwarded to the upstream in the public namespace.
            addr(&lab.tenant, "eth0", "192.168.100.10/24").unwrap();
            assert_eq!(lab.dig("db-01.zstack.local"), "192.168.100.20");
            assert_eq!(lab.dig("web-01.zstack.local"), "192.168.100.10");
            assert_eq!(lab.dig("www.example.test"), "203.0.113.7");

            // Removing an entry: SIGHUP plus dhcp_release; no answer after.
            let old = files;
            let rel = st.apply(&DhcpEdit::Remove(vec![(
                mac("fa:26:9c:aa:00:03"),
                mac("fa:a1:5e:12:34:56"),
            )]));
            assert_eq!(rel.len(), 1);
            let files = plan::render(&st, &links, d.paths()).files;
            assert_eq!(
                update_dnsmasq(&d, Some(&old), &files).await.unwrap(),
                Action::Reload
            );
            for r in &rel {
                d.release(&links[&r.vr_nic_mac], r.ip, r.mac).await.unwrap();
            }
            assert!(
                wait_until(T, POLL, || !leases(&dir)
                    .iter()
                    .any(|(m, _)| *m == mac("fa:a1:5e:12:34:56"))),
                "lease released: {:?}",
                leases(&dir)
            );
            lab.tenant.ip("addr flush dev eth0").unwrap();
            assert!(lab.dhcp("eth0", 3).is_none(), "removed MAC gets no answer");
            assert_eq!(d.pid(), Some(pid));

            // Back again through a full refresh: still only a reload.
            let old = files;
            st.apply(&refresh());
            let files = plan::render(&st, &links, d.paths()).files;
            assert_eq!(
                update_dnsmasq(&d, Some(&old), &files).await.unwrap(),
                Action::Reload
            );
            assert_eq!(d.pid(), Some(pid));

            // The supervisor restarts a dnsmasq that dies.
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
            assert!(wait_until(T, POLL, || d.pid().is_some_and(|p| p != pid)));
            assert_eq!(d.restarts(), 1);
            let _ = std::fs::remove_file(lab.tmp.path().join("eth0.env"));
            lab.tenant.ip("addr flush dev eth0").unwrap();
            let env = lab.dhcp("eth0", 10).expect("lease after a crash");
            assert_eq!(env["ip"], "192.168.100.10");

            d.stop().await.unwrap();
            assert_eq!(d.pid(), None);
        });
    });
}
