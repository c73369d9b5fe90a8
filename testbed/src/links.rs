//! Links and addresses inside a namespace: veth pairs, bridges, ports,
//! addresses, routes, MACs.

use anyhow::{Context, Result, anyhow};

use crate::netns::Netns;

/// Creates a veth pair `name_a` (in `a`) <-> `name_b` (in `b`), both up.
/// Created directly inside `a`, so the names never touch the root namespace.
pub fn veth(a: &Netns, name_a: &str, b: &Netns, name_b: &str) -> Result<()> {
    let nsb = b.name();
    a.ip(&format!(
        "link add {name_a} type veth peer name {name_b} netns {nsb}"
    ))?;
    a.ip(&format!("link set {name_a} up"))?;
    b.ip(&format!("link set {name_b} up"))?;
    Ok(())
}

/// Creates a bridge (up, STP off, forward delay 0 so ports forward at once).
pub fn bridge(ns: &Netns, name: &str) -> Result<()> {
    ns.ip(&format!(
        "link add {name} type bridge stp_state 0 forward_delay 0"
    ))?;
    ns.ip(&format!("link set {name} up"))?;
    Ok(())
}

/// Makes `port` a port of `bridge` and brings it up.
pub fn enslave(ns: &Netns, port: &str, bridge: &str) -> Result<()> {
    ns.ip(&format!("link set {port} master {bridge} up"))?;
    Ok(())
}

/// Adds an address, e.g. `addr(&ns, "eth0", "10.0.0.1/24")`.
pub fn addr(ns: &Netns, ifname: &str, cidr: &str) -> Result<()> {
    ns.ip(&format!("addr add {cidr} dev {ifname}"))?;
    Ok(())
}

/// Adds a route given as `ip route add` words, e.g. `"default via 10.0.0.1"`.
pub fn route(ns: &Netns, spec: &str) -> Result<()> {
    ns.ip(&format!("route add {spec}"))?;
    Ok(())
}

/// The MAC address of `ifname`, lower case (`aa:bb:cc:dd:ee:ff`).
pub fn mac(ns: &Netns, ifname: &str) -> Result<String> {
    let out = ns.ip(&format!("-j link show dev {ifname}"))?;
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing `ip -j link`")?;
    json[0]["address"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no address for {ifname} in {json}"))
}

/// Sets the MAC address of `ifname`.
pub fn set_mac(ns: &Netns, ifname: &str, mac: &str) -> Result<()> {
    ns.ip(&format!("link set dev {ifname} address {mac}"))?;
    Ok(())
}
