//! Golden and element-change tests of the NAT ruleset.

use std::collections::BTreeMap;

use common::net::{IfName, Mac, PortRange, Proto};

use super::*;
use vr_model::{DefaultAction, Edit, Eip, Nic, NicCategory, PortForward, Snat};

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

fn nic(m: &str, ip: &str, len: u8, category: NicCategory, action: Option<DefaultAction>) -> Nic {
    Nic {
        mac: mac(m),
        ip: Some((ip.parse().unwrap(), len)),
        gateway: None,
        is_default_route: false,
        category,
        mtu: None,
        default_action: action,
        ip6: None,
        gateway6: None,
    }
}

fn pf(uuid: &str, vs: u16, ve: u16, ps: u16, pe: u16, allowed: Option<&str>) -> PortForward {
    PortForward {
        uuid: uuid.into(),
        proto: Proto::Tcp,
        vip: "172.20.10.100".parse().unwrap(),
        vip_ports: PortRange { start: vs, end: ve },
        private_ip: "192.168.100.10".parse().unwrap(),
        private_ports: PortRange { start: ps, end: pe },
        public_mac: mac("fa:26:9c:aa:00:02"),
        private_mac: mac("fa:26:9c:aa:00:03"),
        allowed: allowed.map(|c| c.parse().unwrap()),
        snat_inbound: uuid == "exact",
    }
}

fn model() -> Model {
    let mut m = Model::default();
    let edits = [
        Edit::ConfigureNics(vec![
            nic(
                "fa:26:9c:aa:00:01",
                "10.0.0.25",
                24,
                NicCategory::Management,
                None,
            ),
            nic(
                "fa:26:9c:aa:00:02",
                "172.20.10.5",
                16,
                NicCategory::Public,
                None,
            ),
            nic(
                "fa:26:9c:aa:00:03",
                "192.168.100.1",
                24,
                NicCategory::Private,
                Some(DefaultAction::Reject),
            ),
        ]),
        Edit::SetSnat(Snat {
            public_mac: mac("fa:26:9c:aa:00:02"),
            public_ip: "172.20.10.5".parse().unwrap(),
            private_mac: mac("fa:26:9c:aa:00:03"),
            private_net: "192.168.100.0/24".parse().unwrap(),
            enabled: true,
        }),
        Edit::CreatePortForwards(vec![
            pf("exact", 8080, 8080, 80, 80, Some("203.0.113.0/24")),
            pf("keep", 9000, 9010, 9000, 9010, None),
            pf("one", 7000, 7010, 22, 22, None),
            pf("shift", 6000, 6002, 7000, 7002, None),
        ]),
        Edit::CreateEip(Eip {
            vip: "172.20.10.101".parse().unwrap(),
            guest: "192.168.100.11".parse().unwrap(),
            public_mac: mac("fa:26:9c:aa:00:02"),
            private_mac: mac("fa:26:9c:aa:00:03"),
            snat_inbound: true,
        }),
    ];
    for e in &edits {
        m.apply(e).unwrap();
    }
    m.validate().unwrap();
    m
}

/// The full transaction for a small model, against a golden file
/// (`UPDATE_GOLDEN=1 cargo test` rewrites it after a deliberate change).
#[test]
fn full_render_matches_golden() {
    let links = links();
    let obs = Observed {
        links: &links,
        agent_port: 7272,
    };
    let got = full(None, &render(&model(), &obs).unwrap()).script;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/plan/testdata/nat_small.nft"
    );
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &got).unwrap();
    }
    assert_eq!(got, std::fs::read_to_string(path).unwrap());
}

#[test]
fn one_rule_is_one_element_change() {
    let links = links();
    let obs = Observed {
        links: &links,
        agent_port: 7272,
    };
    let m = model();
    let old = render(&m, &obs).unwrap();
    let mut m2 = m.clone();
    m2.apply(&Edit::CreatePortForwards(vec![pf(
        "new", 5000, 5000, 80, 80, None,
    )]))
    .unwrap();
    let c = change(Some(&old), &render(&m2, &obs).unwrap()).unwrap();
    assert!(!c.full);
    assert_eq!(
        c.script,
        "add element ip vragent count_pf_in { 172.20.10.100 . tcp . 5000 }\n\
         add element ip vragent pf_exact { 172.20.10.100 . tcp . 5000 : 192.168.100.10 . 80 }\n",
        "the rule's element and its counter, in one transaction"
    );
    assert_eq!(
        c.stale.into_iter().collect::<Vec<_>>(),
        vec![FlowMatch::DstPorts(
            "172.20.10.100".parse().unwrap(),
            Proto::Tcp,
            PortRange {
                start: 5000,
                end: 5000
            }
        )]
    );
    assert!(
        change(Some(&old), &old).is_none(),
        "no change, no transaction"
    );
    // A NIC change rebuilds the table.
    let mut m3 = m;
    m3.apply(&Edit::ForgetNics(vec![mac("fa:26:9c:aa:00:01")]))
        .unwrap();
    assert!(
        change(Some(&old), &render(&m3, &obs).unwrap())
            .unwrap()
            .full
    );
}

#[test]
fn unknown_mac_is_named() {
    let links = BTreeMap::new();
    let obs = Observed {
        links: &links,
        agent_port: 7272,
    };
    let e = render(&model(), &obs).unwrap_err();
    assert!(e.to_string().contains("matches no NIC"), "{e}");
}
