use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::netstate::{ROUTE_F_ONLINK, TABLE_MAIN};

fn link(index: u32, name: &str, kind: Option<&str>) -> Link {
    Link {
        index,
        name: name.into(),
        kind: kind.map(str::to_string),
        mac: Some("52:54:00:12:34:56".parse().unwrap()),
        mtu: 1500,
        up: true,
        master: None,
        alias: None,
        bridge: kind.filter(|k| *k == "bridge").map(|_| STP_OFF),
        isolated: false,
    }
}

fn addr(link: &str, ip: &str, len: u8) -> Addr {
    let ip: IpAddr = ip.parse().unwrap();
    Addr {
        link: link.into(),
        address: ip,
        local: ip.is_ipv4().then_some(ip),
        prefix_len: len,
        scope: if ip.to_string().starts_with("fe80") {
            253
        } else {
            0
        },
        flags: 0x80,
        label: ip.is_ipv4().then(|| link.to_string()),
        broadcast: None,
        lifetimes: None,
    }
}

fn route(oif: &str, dst: Option<&str>, len: u8, gw: Option<&str>) -> Route {
    let gateway: Option<IpAddr> = gw.map(|g| g.parse().unwrap());
    let dst: Option<IpAddr> = dst.map(|d| d.parse().unwrap());
    let v6 = gateway.or(dst).is_some_and(|a| a.is_ipv6());
    Route {
        v6,
        table: TABLE_MAIN,
        dst,
        dst_len: len,
        src_len: 0,
        tos: 0,
        protocol: 4,
        scope: if gateway.is_some() { 0 } else { 253 },
        kind: 1,
        flags: 0,
        gateway,
        oif: Some(oif.into()),
        prefsrc: None,
        metric: Some(100),
        multipath: false,
        extra: vec![],
    }
}

fn host() -> Observed {
    let mut kernel = route("eth0", Some("10.0.0.0"), 24, None);
    kernel.protocol = PROTO_KERNEL;
    let mut local = route("eth0", Some("10.0.0.21"), 32, None);
    local.table = TABLE_LOCAL;
    let mut onlink = route("eth0", Some("10.9.9.0"), 24, Some("10.0.9.1"));
    onlink.flags = ROUTE_F_ONLINK;
    let mut other_table = route("eth0", Some("10.2.0.0"), 24, Some("10.0.0.1"));
    other_table.table = 100;
    Observed {
        links: vec![
            link(1, "lo", None),
            link(2, "eth0", Some("veth")),
            link(3, "eth1", Some("veth")),
        ],
        addrs: vec![
            addr("eth0", "10.0.0.21", 24),
            addr("eth0", "10.0.0.22", 24),
            addr("eth0", "2001:db8::21", 64),
            addr("eth0", "fe80::5054:ff:fe12:3456", 64),
        ],
        routes: vec![
            route("eth0", None, 0, Some("10.0.0.1")),
            kernel,
            local,
            onlink,
            other_table,
            route("eth0", None, 0, Some("2001:db8::1")),
            route("eth1", None, 0, Some("192.168.100.1")),
        ],
    }
}

fn spec() -> BridgeSpec {
    BridgeSpec {
        bridge: "br_eth0".into(),
        nic: "eth0".into(),
        mtu: Some(1500),
        l2_uuid: Some("a1b2".into()),
    }
}

fn text(ops: impl IntoIterator<Item = Op>) -> Vec<String> {
    ops.into_iter().map(|o| o.to_string()).collect()
}

#[test]
fn create_moves_everything_in_make_before_break_order() {
    let plan = create(&spec(), &host()).unwrap();
    assert_eq!(
        text(plan.steps.iter().map(|s| s.op.clone())),
        [
            "create bridge br_eth0 with MAC 52:54:00:12:34:56",
            "add address 10.0.0.21/24 on br_eth0",
            "add address 10.0.0.22/24 on br_eth0",
            "add address 2001:db8::21/64 on br_eth0",
            "enslave eth0 to br_eth0",
            "replace route default via 10.0.0.1 dev br_eth0 metric 100",
            "replace route 10.9.9.0/24 via 10.0.9.1 dev br_eth0 metric 100 onlink",
            "replace route 10.2.0.0/24 via 10.0.0.1 dev br_eth0 table 100 metric 100",
            "replace route default via 2001:db8::1 dev br_eth0 metric 100",
            "delete address 2001:db8::21/64 on eth0",
            "delete address 10.0.0.22/24 on eth0",
            "delete address 10.0.0.21/24 on eth0",
            "set alias \"uuid: a1b2\" on eth0",
            "set alias \"phy_nic: eth0\" on br_eth0",
        ]
    );
    assert_eq!(
        plan.verify_gateway,
        Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
    );
    // The label follows the link name.
    let Op::AddAddr(a) = &plan.steps[1].op else {
        panic!()
    };
    assert_eq!(a.label.as_deref(), Some("br_eth0"));
}

#[test]
fn rollback_is_the_exact_inverse_newest_first() {
    let plan = create(&spec(), &host()).unwrap();
    // Fail at the first address delete: undo everything before it.
    let undo = rollback(&plan.steps[..9]);
    assert_eq!(
        text(undo),
        [
            "replace route default via 2001:db8::1 dev eth0 metric 100",
            "replace route 10.2.0.0/24 via 10.0.0.1 dev eth0 table 100 metric 100",
            "replace route 10.9.9.0/24 via 10.0.9.1 dev eth0 metric 100 onlink",
            "replace route default via 10.0.0.1 dev eth0 metric 100",
            "release eth0 from its bridge",
            "delete address 2001:db8::21/64 on br_eth0",
            "delete address 10.0.0.22/24 on br_eth0",
            "delete address 10.0.0.21/24 on br_eth0",
            "delete link br_eth0",
        ]
    );
    assert!(rollback(&[]).is_empty());
}

/// The state a successful create leaves, as the kernel would show it.
fn migrated() -> Observed {
    let mut obs = host();
    let plan = create(&spec(), &obs).unwrap();
    let mut br = link(4, "br_eth0", Some("bridge"));
    br.alias = Some("phy_nic: eth0".into());
    obs.links.push(br);
    for s in plan.steps {
        match s.op {
            Op::AddAddr(a) => obs.addrs.push(a),
            Op::DelAddr(a) => obs.addrs.retain(|x| !(x.same_ip(&a) && x.link == a.link)),
            Op::SetMaster {
                name,
                master: Some(_),
            } => {
                obs.links
                    .iter_mut()
                    .find(|l| l.name == name)
                    .unwrap()
                    .master = Some(4)
            }
            Op::ReplaceRoute(r) => {
                obs.routes.retain(|x| !x.same_key(&r));
                obs.routes.push(r);
            }
            Op::SetAlias { name, alias } => {
                obs.links.iter_mut().find(|l| l.name == name).unwrap().alias = Some(alias)
            }
            _ => {}
        }
    }
    obs
}

#[test]
fn create_again_is_a_noop() {
    let plan = create(&spec(), &migrated()).unwrap();
    assert!(
        plan.is_noop(),
        "{:?}",
        text(plan.steps.into_iter().map(|s| s.op))
    );
}

#[test]
fn nic_on_another_bridge_is_refused() {
    let mut obs = host();
    obs.links.push(link(9, "br_x", Some("bridge")));
    obs.links[1].master = Some(9);
    let e = create(&spec(), &obs).unwrap_err();
    assert_eq!(
        e.to_string(),
        "failed to create bridge[br_eth0], physical interface[eth0] has been occupied by bridge[br_x]"
    );
    assert_eq!(
        create(
            &BridgeSpec {
                nic: "eth9".into(),
                ..spec()
            },
            &obs
        )
        .unwrap_err(),
        PlanError::NicMissing("eth9".into())
    );
}

#[test]
fn existing_bridge_gets_stp_off_mac_and_up_and_mtu_is_only_raised() {
    let mut obs = host();
    let mut br = link(4, "br_eth0", Some("bridge"));
    br.bridge = Some(BridgeOpts {
        stp: 1,
        forward_delay: 1500,
    });
    br.mac = Some("02:00:00:00:00:01".parse().unwrap());
    br.up = false;
    obs.links.push(br);
    let plan = create(
        &BridgeSpec {
            mtu: Some(9000),
            ..spec()
        },
        &obs,
    )
    .unwrap();
    let ops = text(plan.steps.iter().take(5).map(|s| s.op.clone()));
    assert_eq!(
        ops,
        [
            "set stp 0 forward delay 0 on br_eth0",
            "set MAC 52:54:00:12:34:56 on br_eth0",
            "set br_eth0 up",
            "set mtu 9000 on eth0",
            "add address 10.0.0.21/24 on br_eth0",
        ]
    );
    let plan = create(
        &BridgeSpec {
            mtu: Some(1400),
            ..spec()
        },
        &host(),
    )
    .unwrap();
    assert!(!plan.steps.iter().any(|s| matches!(s.op, Op::SetMtu { .. })));
}

#[test]
fn delete_puts_everything_back_and_refuses_with_vms() {
    let obs = migrated();
    let plan = delete(&spec(), &obs).unwrap();
    assert_eq!(
        text(plan.steps.iter().map(|s| s.op.clone())),
        [
            "add address 10.0.0.21/24 on eth0",
            "add address 10.0.0.22/24 on eth0",
            "add address 2001:db8::21/64 on eth0",
            "replace route default via 10.0.0.1 dev eth0 metric 100",
            "replace route 10.9.9.0/24 via 10.0.9.1 dev eth0 metric 100 onlink",
            "replace route 10.2.0.0/24 via 10.0.0.1 dev eth0 table 100 metric 100",
            "replace route default via 2001:db8::1 dev eth0 metric 100",
            "release eth0 from its bridge",
            "set alias \"\" on eth0",
            "delete address 2001:db8::21/64 on br_eth0",
            "delete address 10.0.0.22/24 on br_eth0",
            "delete address 10.0.0.21/24 on br_eth0",
            "delete link br_eth0",
        ]
    );
    let mut with_vm = obs.clone();
    let mut tap = link(7, "vnet0", Some("tun"));
    tap.master = Some(4);
    with_vm.links.push(tap);
    assert!(matches!(
        delete(&spec(), &with_vm).unwrap_err(),
        PlanError::VmsAttached { ports, .. } if ports == ["vnet0"]
    ));
    assert!(delete(&spec(), &host()).unwrap().is_noop());
}

#[test]
fn ipv6_only_default_route_is_verified() {
    let mut obs = host();
    obs.routes.retain(|r| r.v6 || !r.is_default());
    let plan = create(&spec(), &obs).unwrap();
    assert_eq!(
        plan.verify_gateway,
        Some(IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().unwrap()))
    );
}

#[test]
fn port_isolation_touches_guest_ports_only() {
    let mut obs = Observed::default();
    obs.links.push(link(1, "eth0", Some("veth")));
    obs.links.push(link(9, "br_eth0", Some("bridge")));
    for (i, name, isolated) in [(3, "vnic1.0", false), (4, "vnic2.0", true)] {
        let mut l = link(i, name, Some("tun"));
        l.master = Some(9);
        l.isolated = isolated;
        obs.links.push(l);
    }
    obs.links[0].master = Some(9);
    let steps = port_isolation("br_eth0", "eth0", true, &obs);
    assert_eq!(
        text(steps.iter().map(|s| s.op.clone())),
        ["set isolated on on port vnic1.0"]
    );
    assert_eq!(text(rollback(&steps)), ["set isolated off on port vnic1.0"]);
    let steps = port_isolation("br_eth0", "eth0", false, &obs);
    assert_eq!(
        text(steps.iter().map(|s| s.op.clone())),
        ["set isolated off on port vnic2.0"]
    );
    assert!(port_isolation("br_nope", "eth0", true, &obs).is_empty());
}
