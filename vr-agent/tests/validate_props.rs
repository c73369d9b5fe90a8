//! Property tests of the model's two validation paths (issue 13):
//! `Model::check_added` (the engine's fast path for one added rule or EIP)
//! and `apply` + `validate` (the whole-batch path) must agree on every
//! generated model and edit, and any batch they accept renders to an nft
//! ruleset `nft -c` accepts (run in a fresh network namespace: it needs
//! CAP_NET_ADMIN; without privileges that part is skipped unless
//! REQUIRE_PRIVILEGED=1).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use common::net::{IfName, Ipv4Net, Mac, PortRange, Proto};
use proptest::prelude::*;
use vr_agent::plan::nat;
use vr_model::{Edit, Eip, Invalid, Model, Nic, NicCategory, PortForward, Snat};

const PUB: &str = "fa:26:9c:aa:00:02";
const PUB2: &str = "fa:26:9c:aa:00:04";
const PRIV: &str = "fa:26:9c:aa:00:03";
const MGMT: &str = "fa:26:9c:aa:00:01";
/// The management NIC's address: no PF on the agent's port, EIP or VIP
/// there (issue 14).
const MGMT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 25);

fn mac(s: &str) -> Mac {
    s.parse().unwrap()
}

fn nic(m: &str, ip: &str, prefix: u8, category: NicCategory) -> Nic {
    Nic {
        mac: mac(m),
        ip: Some((ip.parse().unwrap(), prefix)),
        gateway: None,
        is_default_route: category == NicCategory::Public,
        category,
        mtu: None,
        default_action: None,
        ip6: None,
        gateway6: None,
    }
}

/// A router with a management NIC, two public NICs and one private one,
/// and its SNAT.
fn base() -> Model {
    let mut m = Model::default();
    m.apply(&Edit::ConfigureNics(vec![
        nic(MGMT, "10.0.0.25", 24, NicCategory::Management),
        nic(PUB, "172.20.10.5", 16, NicCategory::Public),
        nic(PUB2, "172.21.10.5", 16, NicCategory::Public),
        nic(PRIV, "192.168.100.1", 24, NicCategory::Private),
    ]))
    .unwrap();
    m.apply(&Edit::SetSnat(Snat {
        public_mac: mac(PUB),
        public_ip: "172.20.10.5".parse().unwrap(),
        private_mac: mac(PRIV),
        private_net: "192.168.100.0/24".parse::<Ipv4Net>().unwrap(),
        enabled: true,
    }))
    .unwrap();
    m
}

/// Few VIPs, guests, uuids and ports, so clashes are common.
fn vip() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        4 => (100u8..104).prop_map(|d| Ipv4Addr::new(172, 20, 10, d)),
        1 => Just(MGMT_IP),
    ]
}
/// Low ports, or ports around the agent's (7272).
fn first_port() -> impl Strategy<Value = u16> {
    prop_oneof![3 => 1u16..30, 1 => 7268u16..7276]
}
fn guest() -> impl Strategy<Value = Ipv4Addr> {
    (10u8..13).prop_map(|d| Ipv4Addr::new(192, 168, 100, d))
}
fn public_mac() -> impl Strategy<Value = Mac> {
    prop_oneof![Just(mac(PUB)), Just(mac(PUB2))]
}

fn port_forward() -> impl Strategy<Value = PortForward> {
    (
        0u8..6,
        vip(),
        guest(),
        first_port(),
        0u16..6,
        any::<bool>(),
        any::<bool>(),
        public_mac(),
    )
        .prop_map(
            |(u, vip, guest, start, len, udp, same_private, public_mac)| {
                let vip_ports = PortRange {
                    start,
                    end: start + len,
                };
                PortForward {
                    uuid: format!("r{u}"),
                    proto: if udp { Proto::Udp } else { Proto::Tcp },
                    vip,
                    vip_ports,
                    private_ip: guest,
                    private_ports: if same_private {
                        vip_ports
                    } else {
                        PortRange {
                            start: 8080,
                            end: 8080,
                        }
                    },
                    public_mac,
                    private_mac: mac(PRIV),
                    allowed: None,
                    snat_inbound: udp,
                }
            },
        )
}

fn eip() -> impl Strategy<Value = Eip> {
    (vip(), guest(), public_mac(), any::<bool>()).prop_map(
        |(vip, guest, public_mac, snat_inbound)| Eip {
            vip,
            guest,
            public_mac,
            private_mac: mac(PRIV),
            snat_inbound,
        },
    )
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        proptest::collection::vec(port_forward(), 1..4).prop_map(Edit::CreatePortForwards),
        eip().prop_map(Edit::CreateEip),
    ]
}

/// The whole-batch path: apply to a copy, validate it all, name the cause.
fn batch_accepts(m: &Model, e: &Edit) -> Result<Model, Invalid> {
    m.edited(e)
}

/// A valid model grown from `history`: each edit kept when the batch
/// path accepts it.
fn grown(history: &[Edit]) -> Model {
    let mut m = base();
    for e in history {
        if let Ok(next) = batch_accepts(&m, e) {
            m = next;
        }
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn check_added_agrees_with_validate(
        history in proptest::collection::vec(edit(), 0..12),
        e in edit(),
    ) {
        let m = grown(&history);
        prop_assert!(m.validate().is_ok());
        let fast = m.check_added(&e).and_then(|()| {
            let mut n = m.clone();
            n.apply(&e)
        });
        let whole = batch_accepts(&m, &e);
        // The same verdict and the same cause (so the same status).
        prop_assert_eq!(
            fast.as_ref().err().map(std::mem::discriminant),
            whole.as_ref().err().map(std::mem::discriminant),
            "check_added: {:?}, apply+validate: {:?}, edit {:?}",
            fast,
            whole.err(),
            e
        );
    }
}

fn links() -> BTreeMap<Mac, IfName> {
    BTreeMap::from([
        (mac(MGMT), "eth0".parse().unwrap()),
        (mac(PUB), "eth1".parse().unwrap()),
        (mac(PRIV), "eth2".parse().unwrap()),
        (mac(PUB2), "eth3".parse().unwrap()),
    ])
}

/// `nft -c -f` of a full ruleset in a fresh network namespace.
fn nft_check(script: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = std::process::Command::new("unshare")
        .args(["-n", "nft", "-c", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn privileged() -> bool {
    let want = std::env::var("REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1");
    let can = nft_check("table ip t {}\n").is_ok();
    assert!(
        can || !want,
        "REQUIRE_PRIVILEGED=1 but nft -c cannot run in a new netns"
    );
    can
}

proptest! {
    // Each case forks nft: few cases keep the test to seconds.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn accepted_batches_render_to_rulesets_nft_accepts(
        history in proptest::collection::vec(edit(), 1..16),
    ) {
        if !privileged() {
            return Ok(());
        }
        let m = grown(&history);
        let links = links();
        let obs = nat::Observed { links: &links, agent_port: 7272 };
        let ruleset = nat::render(&m, &obs).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let script = nat::full(None, &ruleset).script;
        if let Err(e) = nft_check(&script) {
            return Err(TestCaseError::fail(format!("nft -c refused:\n{e}\n{script}")));
        }
    }
}

/// Found by the property above: rules on two VIPs forwarding overlapping
/// UDP ports to one guest, both with snatInboundTraffic, are a valid model
/// (apply + validate accept it) but render overlapping `pf_inbound`
/// elements that `nft -c` refused ("File exists"); `pf_inbound` is now
/// keyed by the VIP side, which the model keeps unique.
#[test]
fn overlapping_inbound_pf_intervals_render() {
    if !privileged() {
        return;
    }
    let pf = |uuid: &str, vip: &str, start: u16, end: u16| PortForward {
        uuid: uuid.into(),
        proto: Proto::Udp,
        vip: vip.parse().unwrap(),
        vip_ports: PortRange { start, end },
        private_ip: "192.168.100.12".parse().unwrap(),
        private_ports: PortRange { start, end },
        public_mac: mac(PUB),
        private_mac: mac(PRIV),
        allowed: None,
        snat_inbound: true,
    };
    let m = batch_accepts(
        &base(),
        &Edit::CreatePortForwards(vec![
            pf("a", "172.20.10.101", 27, 27),
            pf("b", "172.20.10.100", 27, 29),
        ]),
    )
    .unwrap();
    let links = links();
    let obs = nat::Observed {
        links: &links,
        agent_port: 7272,
    };
    let script = nat::full(None, &nat::render(&m, &obs).unwrap()).script;
    nft_check(&script).unwrap();
}
