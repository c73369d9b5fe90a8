//! Reading a live domain XML back: device addresses for the start and
//! attach replies, channel sockets, console ports, interfaces by MAC.
//! libvirt writes its XML in a fixed form, so a scanner is enough; anything
//! unexpected just yields nothing.

use std::path::PathBuf;

use crate::wire::vm::DeviceAddress;

/// Value of `name='...'` (or double-quoted) inside one tag.
fn attr(tag: &str, name: &str) -> Option<String> {
    for q in ['\'', '"'] {
        let pat = format!(" {name}={q}");
        if let Some(i) = tag.find(&pat) {
            let rest = &tag[i + pat.len()..];
            return rest.find(q).map(|j| rest[..j].to_string());
        }
    }
    None
}

/// The `<address .../>` directly inside an element body (not a nested
/// `<source><address/></source>`, which libvirt does not emit for our NICs).
fn address_in(body: &str) -> Option<DeviceAddress> {
    let i = body.find("<address ")?;
    let tag = &body[i..i + body[i..].find('>')?];
    Some(DeviceAddress {
        kind: attr(tag, "type"),
        domain: attr(tag, "domain"),
        bus: attr(tag, "bus"),
        slot: attr(tag, "slot"),
        function: attr(tag, "function"),
        controller: attr(tag, "controller"),
        target: attr(tag, "target"),
        unit: attr(tag, "unit"),
    })
}

fn elements<'a>(xml: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(open) {
        let from = &rest[i..];
        let Some(j) = from.find(close) else { break };
        out.push(&from[..j]);
        rest = &from[j + close.len()..];
    }
    out
}

/// Read back (mac, address) per interface and (disk serial, address) per
/// disk from a live domain XML, for the start reply's `nicInfos` and
/// `virtualDeviceInfoList`. libvirt writes its XML in a fixed form, so a
/// scanner is enough; anything unexpected just yields no address.
/// (mac or disk serial, address) pairs read from a live domain XML.
pub type LiveDevices = Vec<(String, Option<DeviceAddress>)>;

pub fn live_devices(xml: &str) -> (LiveDevices, LiveDevices) {
    let nics = elements(xml, "<interface ", "</interface>")
        .into_iter()
        .filter_map(|b| {
            let i = b.find("<mac ")?;
            let mac = attr(&b[i..i + b[i..].find('>')?], "address")?;
            Some((mac, address_in(b)))
        })
        .collect();
    let disks = elements(xml, "<disk ", "</disk>")
        .into_iter()
        .filter_map(|b| {
            let s = b.find("<serial>")? + "<serial>".len();
            let e = b[s..].find("</serial>")? + s;
            Some((b[s..e].to_string(), address_in(b)))
        })
        .collect();
    (nics, disks)
}

/// `<source mode='bind' path=...>` of every unix channel, so stop can remove
/// stale socket files as ZStack does.
pub fn channel_sockets(xml: &str) -> Vec<PathBuf> {
    elements(xml, "<channel type='unix'", "</channel>")
        .into_iter()
        .filter_map(|b| {
            let i = b.find("<source ")?;
            let tag = &b[i..i + b[i..].find('>')?];
            (attr(tag, "mode").as_deref() == Some("bind"))
                .then(|| attr(tag, "path"))
                .flatten()
                .map(PathBuf::from)
        })
        .collect()
}

/// `<memballoon>`'s address (libvirt gives the virtio balloon a PCI slot),
/// for `memBalloonInfo`.
pub fn memballoon_address(xml: &str) -> Option<DeviceAddress> {
    let i = xml.find("<memballoon ")?;
    let rest = &xml[i..];
    let head_end = rest.find('>')?;
    if rest[..head_end].ends_with('/') {
        return None;
    }
    let body = &rest[..rest.find("</memballoon>")?];
    address_in(body)
}

/// One `<graphics>` of a live XML: its type and ports (libvirt writes the
/// port it allocated for `autoport='yes'`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graphics {
    pub kind: String,
    pub port: Option<i64>,
    pub tls_port: Option<i64>,
}

pub fn graphics(xml: &str) -> Vec<Graphics> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<graphics ") {
        let from = &rest[i..];
        let Some(j) = from.find('>') else { break };
        let tag = &from[..j];
        out.push(Graphics {
            kind: attr(tag, "type").unwrap_or_default(),
            port: attr(tag, "port").and_then(|p| p.parse().ok()),
            tls_port: attr(tag, "tlsPort").and_then(|p| p.parse().ok()),
        });
        rest = &from[j..];
    }
    out
}

/// A live `<interface>` element: its full text (what `detach-device` takes),
/// its MAC and its tap (`<target dev=...>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveInterface {
    pub xml: String,
    pub mac: String,
    pub tap: Option<String>,
    /// `<source bridge=...>`.
    pub bridge: Option<String>,
    pub address: Option<DeviceAddress>,
}

pub fn interfaces(xml: &str) -> Vec<LiveInterface> {
    let close = "</interface>";
    elements(xml, "<interface ", close)
        .into_iter()
        .filter_map(|b| {
            let i = b.find("<mac ")?;
            let mac = attr(&b[i..i + b[i..].find('>')?], "address")?;
            let tap = b.find("<target ").and_then(|t| {
                let tag = &b[t..t + b[t..].find('>')?];
                attr(tag, "dev")
            });
            let bridge = b.find("<source ").and_then(|t| {
                let tag = &b[t..t + b[t..].find('>')?];
                attr(tag, "bridge")
            });
            Some(LiveInterface {
                xml: format!("{b}{close}"),
                mac: mac.to_ascii_lowercase(),
                tap,
                bridge,
                address: address_in(b),
            })
        })
        .collect()
}

/// The interface with this MAC (case-insensitive), if the domain has it.
pub fn interface_by_mac(xml: &str, mac: &str) -> Option<LiveInterface> {
    let mac = mac.to_ascii_lowercase();
    interfaces(xml).into_iter().find(|i| i.mac == mac)
}
