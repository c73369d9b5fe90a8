//! Anti-spoofing for a guest NIC (`NicTO.cleanTraffic`): nft rules in a
//! bridge-family table we own, bound to the NIC's tap by name, with the
//! semantics of libvirt's `clean-traffic` filter that ZStack's kvmagent
//! attaches (vm_plugin.py): frames from the guest must carry the NIC's MAC,
//! ARP must announce the NIC's MAC and IPv4, IP packets must come from the
//! NIC's addresses (DHCP from 0.0.0.0 allowed), and other L2 protocols
//! (VLAN tags, which would hide an inner IP header, included) are dropped.
//!
//! Differences, on purpose: IPv6 is allowed from the NIC's IPv6 addresses,
//! link-local and `::` (DAD) when the NIC has IPv6 addresses, where
//! clean-traffic drops all IPv6; a NIC without IPs is held to its MAC only
//! (libvirt would learn an IP; we cannot, and ZStack sends the IPs).
//!
//! The prerouting hook sees every frame the bridge receives from the tap,
//! bridged or for the host. Rules key on the tap name, so they can be in
//! place before qemu creates the tap.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

pub const TABLE: &str = "kvm_agent_antispoof";

/// What one NIC's guard allows (`plan::domain::guard_of` builds it from a
/// `NicTO`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicGuardSpec {
    pub tap: String,
    pub mac: String,
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
}

/// nft identifiers take letters, digits and `_`: other tap characters are
/// written as `_<hex>`.
pub fn chain_name(tap: &str) -> String {
    let mut s = String::from("nic_");
    for b in tap.bytes() {
        if b.is_ascii_alphanumeric() {
            s.push(b as char);
        } else {
            let _ = write!(s, "_{b:02x}");
        }
    }
    s
}

/// The table, its dispatch map and base chain; `add` is idempotent.
fn table_lines() -> String {
    format!(
        "add table bridge {TABLE}\n\
         add map bridge {TABLE} guards {{ type ifname : verdict; }}\n\
         add chain bridge {TABLE} pre {{ type filter hook prerouting priority -300; policy accept; }}\n\
         flush chain bridge {TABLE} pre\n\
         add rule bridge {TABLE} pre iifname vmap @guards\n"
    )
}

fn set<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    format!("{{ {} }}", v.join(", "))
}

/// One transaction that (re)writes the NIC's chain and binds it to the tap.
pub fn apply_script(g: &NicGuardSpec) -> String {
    let c = chain_name(&g.tap);
    let r = |rule: &str| format!("add rule bridge {TABLE} {c} {rule}\n");
    let mut s = table_lines();
    let _ = writeln!(s, "add chain bridge {TABLE} {c}");
    let _ = writeln!(s, "flush chain bridge {TABLE} {c}");
    s += &r(&format!("ether saddr != {} drop", g.mac));
    s += &r(&format!("arp saddr ether != {} drop", g.mac));
    let any_ip = g.ipv4.is_empty() && g.ipv6.is_empty();
    if !g.ipv4.is_empty() {
        let mut arp_ok = vec![Ipv4Addr::UNSPECIFIED];
        arp_ok.extend(&g.ipv4);
        s += &r(&format!("arp saddr ip != {} drop", set(arp_ok)));
        s += &r("ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 return");
        s += &r(&format!("ip saddr != {} drop", set(&g.ipv4)));
    }
    if !g.ipv6.is_empty() {
        let mut ok: Vec<String> = vec!["::".into(), "fe80::/10".into()];
        ok.extend(g.ipv6.iter().map(|a| a.to_string()));
        s += &r(&format!("ip6 saddr != {} drop", set(ok)));
    }
    let mut types = vec!["arp"];
    if any_ip || !g.ipv4.is_empty() {
        types.push("ip");
    }
    if any_ip || !g.ipv6.is_empty() {
        types.push("ip6");
    }
    s += &r(&format!("ether type != {} drop", set(types)));
    let _ = writeln!(
        s,
        "add element bridge {TABLE} guards {{ \"{}\" : jump {c} }}",
        g.tap
    );
    s
}

/// One transaction that unbinds and deletes the NIC's chain; it adds both
/// first so that it also succeeds when they are already gone.
pub fn remove_script(tap: &str) -> String {
    let c = chain_name(tap);
    let mut s = table_lines();
    let _ = writeln!(s, "add chain bridge {TABLE} {c}");
    let _ = writeln!(
        s,
        "add element bridge {TABLE} guards {{ \"{tap}\" : jump {c} }}"
    );
    let _ = writeln!(s, "delete element bridge {TABLE} guards {{ \"{tap}\" }}");
    let _ = writeln!(s, "flush chain bridge {TABLE} {c}");
    let _ = writeln!(s, "delete chain bridge {TABLE} {c}");
    s
}

#[cfg(test)]
mod tests;
