//! Unsolicited IPv6 neighbour advertisements (RFC 4861 section 7.2.6), the
//! IPv6 counterpart of gratuitous ARP: neighbours that cached another MAC
//! for a VIP (it moved here from another router) update their cache at once.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use common::net::{IfName, Mac};

const ICMPV6_NEIGHBOUR_ADVERTISEMENT: u8 = 136;
/// Router and Override flags: we are a router, and our MAC replaces any cached one.
const FLAGS_ROUTER_OVERRIDE: u8 = 0xa0;
const OPT_TARGET_LINK_ADDRESS: u8 = 2;

/// The advertisement for `target` owned by `mac` (the ICMPv6 part; the
/// kernel fills in the checksum of a raw ICMPv6 socket).
pub fn packet(target: Ipv6Addr, mac: Mac) -> [u8; 32] {
    let mut p = [0u8; 32];
    p[0] = ICMPV6_NEIGHBOUR_ADVERTISEMENT;
    p[4] = FLAGS_ROUTER_OVERRIDE;
    p[8..24].copy_from_slice(&target.octets());
    p[24] = OPT_TARGET_LINK_ADDRESS;
    p[25] = 1; // option length in units of 8 bytes
    p[26..32].copy_from_slice(&mac.0);
    p
}

/// Send `count` advertisements of `target` to all nodes on `ifname`, one
/// second apart. `target` must already be an address of `ifname`.
pub async fn advertise(ifname: &IfName, target: Ipv6Addr, count: u32) -> Result<(), String> {
    let mac: Mac = std::fs::read_to_string(format!("/sys/class/net/{ifname}/address"))
        .map_err(|e| format!("MAC of {ifname}: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("MAC of {ifname}: {e}"))?;
    for i in 0..count {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let name = ifname.to_string();
        tokio::task::spawn_blocking(move || send_once(&name, target, mac))
            .await
            .map_err(|e| e.to_string())??;
    }
    Ok(())
}

fn send_once(ifname: &str, target: Ipv6Addr, mac: Mac) -> Result<(), String> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let index = nix::net::if_::if_nametoindex(ifname).map_err(|e| format!("{ifname}: {e}"))?;
    let err = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| format!("{what}: {e}")
    };
    let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
        .map_err(err("raw ICMPv6 socket"))?;
    // RFC 4861: neighbours drop advertisements with any other hop limit.
    s.set_multicast_hops_v6(255)
        .map_err(err("IPV6_MULTICAST_HOPS"))?;
    s.set_multicast_if_v6(index)
        .map_err(err("IPV6_MULTICAST_IF"))?;
    let src = SocketAddrV6::new(target, 0, 0, 0);
    s.bind(&SockAddr::from(src))
        .map_err(err(&format!("bind to {target}")))?;
    let all_nodes = SocketAddrV6::new(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), 0, 0, index);
    s.send_to(&packet(target, mac), &SockAddr::from(all_nodes))
        .map_err(err("send neighbour advertisement"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertisement_layout() {
        let p = packet(
            "2001:db8::5".parse().unwrap(),
            "fa:26:9c:aa:00:02".parse().unwrap(),
        );
        assert_eq!(p[0], 136);
        assert_eq!(p[4], 0xa0, "router and override, not solicited");
        assert_eq!(&p[8..10], &[0x20, 0x01]);
        assert_eq!(p[23], 5);
        assert_eq!(&p[24..26], &[2, 1]);
        assert_eq!(&p[26..32], &[0xfa, 0x26, 0x9c, 0xaa, 0x00, 0x02]);
    }
}
