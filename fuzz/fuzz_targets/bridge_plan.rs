//! kvm-agent's bridge planner (plan::bridge) over arbitrary observed
//! kernels: create/delete/port isolation never panic, every planned step of
//! a create can be undone, and rollback undoes exactly those steps, in
//! reverse.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use kvm_agent::netstate::{Addr, BridgeOpts, Link, Observed, Route, TABLE_LOCAL, TABLE_MAIN};
use kvm_agent::plan::bridge::{self, BridgeSpec};
use libfuzzer_sys::fuzz_target;

const NAMES: &[&str] = &["eth0", "eth1", "br_eth0", "br_eth1", "eth0.100", "br_eth0_100", "lo", "vnet0"];
const KINDS: &[Option<&str>] = &[None, Some("bridge"), Some("vlan"), Some("veth"), Some("tun")];

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn pick<'t, T>(&mut self, t: &'t [T]) -> Option<&'t T> {
        Some(&t[self.byte()? as usize % t.len()])
    }
    fn ip(&mut self) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(10, self.byte()? % 4, 0, self.byte()?)))
    }
}

fn observed(b: &mut Bytes) -> Option<Observed> {
    let mut obs = Observed::default();
    for _ in 0..b.byte()? % 6 {
        let name = b.pick(NAMES)?.to_string();
        if obs.link(&name).is_some() {
            continue;
        }
        let kind = b.pick(KINDS)?.map(str::to_string);
        let flags = b.byte()?;
        let is_bridge = kind.as_deref() == Some("bridge");
        obs.links.push(Link {
            index: obs.links.len() as u32 + 1,
            name,
            kind,
            mac: Some(common::net::Mac([0x52, 0x54, 0, 0, flags & 3, obs.links.len() as u8])),
            mtu: [1500, 9000, 68][flags as usize % 3],
            up: flags & 4 != 0,
            master: (flags & 8 != 0).then_some(u32::from(flags >> 5) + 1),
            alias: None,
            bridge: is_bridge.then_some(BridgeOpts { stp: u32::from(flags & 16 != 0), forward_delay: 0 }),
            isolated: flags & 16 != 0,
        });
    }
    for _ in 0..b.byte()? % 4 {
        let link = b.pick(NAMES)?.to_string();
        let ip = b.ip()?;
        obs.addrs.push(Addr {
            link,
            address: ip,
            local: Some(ip),
            prefix_len: b.byte()? % 33,
            scope: 0,
            flags: 0x80,
            label: None,
            broadcast: None,
            lifetimes: None,
        });
    }
    for _ in 0..b.byte()? % 4 {
        let flags = b.byte()?;
        let oif = b.pick(NAMES)?.to_string();
        obs.routes.push(Route {
            v6: false,
            table: if flags & 1 != 0 { TABLE_LOCAL } else { TABLE_MAIN },
            dst: (flags & 2 != 0).then(|| b.ip()).flatten(),
            dst_len: if flags & 2 != 0 { 24 } else { 0 },
            src_len: 0,
            tos: 0,
            protocol: [2, 3, 4][flags as usize % 3],
            scope: 0,
            kind: 1,
            flags: 0,
            gateway: (flags & 4 != 0).then(|| b.ip()).flatten(),
            oif: Some(oif),
            prefsrc: None,
            metric: (flags & 8 != 0).then_some(u32::from(flags)),
            multipath: flags & 16 != 0,
            extra: vec![],
        });
    }
    Some(obs)
}

fn run(data: &[u8]) -> Option<()> {
    let mut b = Bytes(data);
    let obs = observed(&mut b)?;
    let flags = b.byte()?;
    let spec = BridgeSpec {
        bridge: b.pick(NAMES)?.to_string(),
        nic: b.pick(NAMES)?.to_string(),
        mtu: (flags & 1 != 0).then_some([1500, 9000, 68][flags as usize % 3]),
        l2_uuid: (flags & 2 != 0).then(|| "a1b2c3d4e5f60718293a4b5c6d7e8f90".to_string()),
    };
    if let Ok(plan) = bridge::create(&spec, &obs) {
        assert!(plan.steps.iter().all(|s| s.undo.is_some()), "a create step without undo: {plan:?}");
        let undo = bridge::rollback(&plan.steps);
        let want: Vec<_> = plan.steps.iter().rev().filter_map(|s| s.undo.clone()).collect();
        assert_eq!(undo, want);
        // The NIC is never left off the bridge it was planned for.
        assert!(!(spec.nic == "lo" && !plan.steps.is_empty()), "a plan over loopback: {plan:?}");
    }
    let _ = bridge::delete(&spec, &obs).map(|p| bridge::rollback(&p.steps));
    let _ = bridge::port_isolation(&spec.bridge, &spec.nic, flags & 4 != 0, &obs);
    Some(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
