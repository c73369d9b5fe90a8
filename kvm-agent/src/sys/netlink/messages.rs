//! Translation between our `netstate` types and rtnetlink's messages: parse
//! what a dump returns, build what an op sends.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope, CacheInfo,
};
use rtnetlink::packet_route::link::{
    InfoBridge, InfoBridgePort, InfoData, InfoPortData, LinkAttribute, LinkFlags, LinkInfo,
    LinkMessage,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope, RouteType,
};

use common::net::Mac;

use crate::netstate::{Addr, BridgeOpts, Link, ROUTE_F_ONLINK, Route};

pub(super) fn parse_link(m: LinkMessage) -> Link {
    let mut l = Link {
        index: m.header.index,
        name: String::new(),
        kind: None,
        mac: None,
        mtu: 0,
        up: m.header.flags.contains(LinkFlags::Up),
        master: None,
        alias: None,
        bridge: None,
        isolated: false,
    };
    for a in m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n,
            LinkAttribute::Address(b) => {
                if let Ok(mac) = <[u8; 6]>::try_from(b.as_slice()) {
                    l.mac = Some(Mac(mac));
                }
            }
            LinkAttribute::Mtu(x) => l.mtu = x,
            LinkAttribute::Controller(x) => l.master = Some(x),
            LinkAttribute::IfAlias(s) => l.alias = Some(s).filter(|s| !s.is_empty()),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        LinkInfo::Kind(k) => l.kind = Some(k.to_string()),
                        LinkInfo::Data(InfoData::Bridge(opts)) => {
                            let mut o = BridgeOpts {
                                stp: 0,
                                forward_delay: 0,
                            };
                            for x in opts {
                                match x {
                                    InfoBridge::StpState(s) => o.stp = u32::from(s),
                                    InfoBridge::ForwardDelay(d) => o.forward_delay = d,
                                    _ => {}
                                }
                            }
                            l.bridge = Some(o);
                        }
                        LinkInfo::PortData(InfoPortData::BridgePort(port)) => {
                            l.isolated = port.contains(&InfoBridgePort::Isolated(true));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    l
}

pub(super) fn parse_addr(m: AddressMessage, names: &HashMap<u32, String>) -> Option<Addr> {
    let link = names.get(&m.header.index)?.clone();
    let mut a = Addr {
        link,
        address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        local: None,
        prefix_len: m.header.prefix_len,
        scope: u8::from(m.header.scope),
        flags: u32::from(m.header.flags.bits()),
        label: None,
        broadcast: None,
        lifetimes: None,
    };
    let mut have_address = false;
    for attr in m.attributes {
        match attr {
            AddressAttribute::Address(x) => {
                a.address = x;
                have_address = true;
            }
            AddressAttribute::Local(x) => a.local = Some(x),
            AddressAttribute::Label(s) => a.label = Some(s),
            AddressAttribute::Broadcast(b) => a.broadcast = Some(b),
            AddressAttribute::Flags(f) => a.flags = f.bits(),
            AddressAttribute::CacheInfo(c) if c.ifa_valid != u32::MAX => {
                a.lifetimes = Some((c.ifa_preferred, c.ifa_valid));
            }
            _ => {}
        }
    }
    if !have_address {
        a.address = a.local?;
    }
    Some(a)
}

/// Flags a caller may set on RTM_NEWADDR; the rest is kernel state.
const ADDR_SETTABLE_FLAGS: u32 = 0x02 | 0x04 | 0x10 | 0x100 | 0x200 | 0x400;

pub(super) fn addr_msg(a: &Addr, index: u32, for_add: bool) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = if a.address.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    m.header.prefix_len = a.prefix_len;
    m.header.index = index;
    m.header.scope = AddressScope::from(a.scope);
    if let Some(l) = a.local {
        m.attributes.push(AddressAttribute::Local(l));
    }
    m.attributes.push(AddressAttribute::Address(a.address));
    if for_add {
        if let Some(b) = a.broadcast {
            m.attributes.push(AddressAttribute::Broadcast(b));
        }
        if let Some(l) = a.label.as_ref().filter(|_| a.address.is_ipv4()) {
            m.attributes.push(AddressAttribute::Label(l.clone()));
        }
        let f = a.flags & ADDR_SETTABLE_FLAGS;
        if f != 0 {
            m.header.flags = AddressHeaderFlags::from_bits_retain(f as u8);
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::from_bits_retain(f)));
        }
        if let Some((preferred, valid)) = a.lifetimes {
            let mut c = CacheInfo::default();
            c.ifa_preferred = preferred;
            c.ifa_valid = valid;
            m.attributes.push(AddressAttribute::CacheInfo(c));
        }
    }
    m
}

fn ip_of(a: RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(x) => Some(IpAddr::V4(x)),
        RouteAddress::Inet6(x) => Some(IpAddr::V6(x)),
        _ => None,
    }
}

pub(super) fn parse_route(m: RouteMessage, names: &HashMap<u32, String>) -> Route {
    let h = &m.header;
    let mut r = Route {
        v6: h.address_family == AddressFamily::Inet6,
        table: u32::from(h.table),
        dst: None,
        dst_len: h.destination_prefix_length,
        src_len: h.source_prefix_length,
        tos: h.tos,
        protocol: u8::from(h.protocol),
        scope: u8::from(h.scope),
        kind: u8::from(h.kind),
        flags: h.flags.bits(),
        gateway: None,
        oif: None,
        prefsrc: None,
        metric: None,
        multipath: false,
        extra: Vec::new(),
    };
    for a in m.attributes {
        match a {
            RouteAttribute::Destination(d) => r.dst = ip_of(d),
            RouteAttribute::Gateway(g) => r.gateway = ip_of(g),
            RouteAttribute::PrefSource(p) => r.prefsrc = ip_of(p),
            RouteAttribute::Oif(i) => {
                r.oif = Some(
                    names
                        .get(&i)
                        .cloned()
                        .unwrap_or_else(|| format!("ifindex{i}")),
                )
            }
            RouteAttribute::Priority(p) => r.metric = Some(p),
            RouteAttribute::Table(t) => r.table = t,
            RouteAttribute::MultiPath(_) => r.multipath = true,
            a @ (RouteAttribute::Metrics(_)
            | RouteAttribute::Preference(_)
            | RouteAttribute::Source(_)
            | RouteAttribute::Realm(_)
            | RouteAttribute::EncapType(_)
            | RouteAttribute::Encap(_)) => r.extra.push(a),
            _ => {}
        }
    }
    r
}

pub(super) fn route_msg(r: &Route, oif: Option<u32>) -> RouteMessage {
    let mut m = RouteMessage::default();
    let h = &mut m.header;
    h.address_family = if r.v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    h.destination_prefix_length = r.dst_len;
    h.source_prefix_length = r.src_len;
    h.tos = r.tos;
    // Tables above 255 only fit the attribute; 0 (RT_TABLE_UNSPEC) defers to it.
    h.table = u8::try_from(r.table).unwrap_or(0);
    h.protocol = RouteProtocol::from(r.protocol);
    h.scope = RouteScope::from(r.scope);
    h.kind = RouteType::from(r.kind);
    h.flags = RouteFlags::from_bits_retain(r.flags & ROUTE_F_ONLINK);
    m.attributes.push(RouteAttribute::Table(r.table));
    if let (Some(d), true) = (r.dst, r.dst_len > 0) {
        m.attributes.push(RouteAttribute::Destination(d.into()));
    }
    if let Some(g) = r.gateway {
        m.attributes.push(RouteAttribute::Gateway(g.into()));
    }
    if let Some(p) = r.prefsrc {
        m.attributes.push(RouteAttribute::PrefSource(p.into()));
    }
    if let Some(i) = oif {
        m.attributes.push(RouteAttribute::Oif(i));
    }
    if let Some(p) = r.metric {
        m.attributes.push(RouteAttribute::Priority(p));
    }
    m.attributes.extend(r.extra.iter().cloned());
    m
}
