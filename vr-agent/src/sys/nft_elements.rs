//! Element changes of our NAT table sent to the kernel as one nf_tables
//! netlink batch, without a process: `nft -f` of 200 000 elements took
//! 2.2 s here (1.2 s of it parsing text), and spawning it from a large
//! agent copies the agent's page tables on every one-rule change.
//!
//! The input is the plan's own nft text (a script of `add element` and
//! `delete element` lines), so the plan and its golden tests stay one; a
//! script with anything else in it (a skeleton, a table) is left to `nft`.
//! The batch is one transaction like `nft -f`: the kernel applies all of
//! it or none.

use std::net::Ipv4Addr;

use crate::plan::nat::{FAMILY, SETS, TABLE};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_KEY_END: u16 = 10;
const NFTA_DATA_VALUE: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 0x2;
const NFPROTO_IPV4: u8 = 2;
/// An attribute's length is 16 bits: the element list of one message
/// stays well under it.
const MAX_ELEMENTS_NEST: usize = 60_000;
const IFNAMSIZ: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("set {0}: not a set of our table")]
    UnknownSet(String),
    #[error("set {set}: element {element:?}: {why}")]
    Element {
        set: String,
        element: String,
        why: &'static str,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The kernel refused the batch (nothing of it is in force).
    #[error("the kernel refused the element change: {0}")]
    Refused(std::io::Error),
    #[error("netlink: {0}")]
    Io(std::io::Error),
}

/// The field types of a set's key or a map's data, as nft names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Addr,
    Proto,
    Port,
    IfName,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(match name {
            "ipv4_addr" => Field::Addr,
            "inet_proto" => Field::Proto,
            "inet_service" => Field::Port,
            "ifname" => Field::IfName,
            _ => return None,
        })
    }
}

/// A set's declaration: key fields, data fields (maps), interval or not.
#[derive(Debug, PartialEq, Eq)]
struct SetType {
    key: Vec<Field>,
    data: Vec<Field>,
    interval: bool,
}

impl SetType {
    /// From the body of a declaration of [`SETS`], e.g.
    /// `type ipv4_addr . inet_service : ipv4_addr; flags interval;`.
    fn of(decl: &str) -> Option<SetType> {
        let ty = decl
            .split(';')
            .find_map(|part| part.trim().strip_prefix("type "))?;
        let (key, data) = ty.split_once(" : ").unwrap_or((ty, ""));
        let fields = |s: &str| -> Option<Vec<Field>> {
            s.split(" . ")
                .filter(|f| !f.trim().is_empty())
                .map(|f| Field::parse(f.trim()))
                .collect()
        };
        let t = SetType {
            key: fields(key)?,
            data: fields(data)?,
            interval: decl.contains("flags interval"),
        };
        // Single-field interval sets need a start and an end element
        // each; we declare none, so they are left to nft.
        let single_interval = t.interval && t.key.len() < 2;
        (!t.key.is_empty() && !single_interval).then_some(t)
    }

    fn named(set: &str) -> Result<SetType, EncodeError> {
        SETS.iter()
            .find(|(n, _)| *n == set)
            .and_then(|(_, decl)| SetType::of(decl))
            .ok_or_else(|| EncodeError::UnknownSet(set.to_string()))
    }
}

/// One field's value: an interval from `start` to `end` (both the same for
/// a single value), in the kernel's byte order, padded to 4 bytes.
fn field_bytes(
    field: Field,
    text: &str,
    interval: bool,
) -> Result<(Vec<u8>, Vec<u8>), &'static str> {
    fn pad(mut b: Vec<u8>) -> Vec<u8> {
        b.resize(b.len().div_ceil(4) * 4, 0);
        b
    }
    let (start, end) = match field {
        Field::Addr => match text.split_once('/') {
            Some((addr, len)) if interval => {
                let addr: Ipv4Addr = addr.parse().map_err(|_| "not an IPv4 network")?;
                let len: u32 = len.parse().map_err(|_| "not an IPv4 network")?;
                if len > 32 {
                    return Err("not an IPv4 network");
                }
                let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
                let a = u32::from(addr);
                if a & !mask != 0 {
                    return Err("network address has host bits");
                }
                (
                    (a).to_be_bytes().to_vec(),
                    (a | !mask).to_be_bytes().to_vec(),
                )
            }
            Some(_) => return Err("a network in a set without intervals"),
            None => {
                let a: Ipv4Addr = text.parse().map_err(|_| "not an IPv4 address")?;
                (a.octets().to_vec(), a.octets().to_vec())
            }
        },
        Field::Proto => {
            let p: u8 = match text {
                "tcp" => 6,
                "udp" => 17,
                _ => return Err("not tcp or udp"),
            };
            (vec![p], vec![p])
        }
        Field::Port => {
            let port = |s: &str| s.parse::<u16>().map_err(|_| "not a port");
            let (a, b) = match text.split_once('-') {
                Some(_) if !interval => return Err("a port range in a set without intervals"),
                Some((a, b)) => (port(a)?, port(b)?),
                None => (port(text)?, port(text)?),
            };
            if a > b {
                return Err("port range ends before it starts");
            }
            (a.to_be_bytes().to_vec(), b.to_be_bytes().to_vec())
        }
        Field::IfName => {
            let name = text
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .ok_or("interface name not quoted")?;
            if name.is_empty() || name.len() >= IFNAMSIZ || name.contains(['"', '\0']) {
                return Err("not an interface name");
            }
            let mut b = name.as_bytes().to_vec();
            b.resize(IFNAMSIZ, 0);
            (b.clone(), b)
        }
    };
    Ok((pad(start), pad(end)))
}

/// A concatenation (`a . b . c`) as the kernel's key: start and end.
fn concat(
    fields: &[Field],
    text: &str,
    interval: bool,
) -> Result<(Vec<u8>, Vec<u8>), &'static str> {
    let parts: Vec<&str> = text.split(" . ").collect();
    if parts.len() != fields.len() {
        return Err("wrong number of fields");
    }
    let (mut start, mut end) = (vec![], vec![]);
    for (f, t) in fields.iter().zip(parts) {
        let (s, e) = field_bytes(*f, t.trim(), interval)?;
        start.extend(s);
        end.extend(e);
    }
    Ok((start, end))
}

/// One element's attributes (the inside of an NFTA_LIST_ELEM).
fn element_attrs(ty: &SetType, text: &str, with_data: bool) -> Result<Vec<u8>, &'static str> {
    let (key, data) = match text.split_once(" : ") {
        Some((k, d)) => (k, Some(d)),
        None => (text, None),
    };
    let (start, end) = concat(&ty.key, key, ty.interval)?;
    let mut out = vec![];
    nest(&mut out, NFTA_SET_ELEM_KEY, |b| {
        attr(b, NFTA_DATA_VALUE, &start)
    });
    if ty.interval {
        nest(&mut out, NFTA_SET_ELEM_KEY_END, |b| {
            attr(b, NFTA_DATA_VALUE, &end)
        });
    }
    match (ty.data.is_empty(), data) {
        (true, None) => {}
        (true, Some(_)) => return Err("data in a set that is not a map"),
        (false, None) => return Err("no data in a map element"),
        (false, Some(d)) => {
            // A delete names the key only.
            if with_data {
                let (value, _) = concat(&ty.data, d, false)?;
                nest(&mut out, NFTA_SET_ELEM_DATA, |b| {
                    attr(b, NFTA_DATA_VALUE, &value)
                });
            }
        }
    }
    Ok(out)
}

fn attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    out.extend((len as u16).to_ne_bytes());
    out.extend(kind.to_ne_bytes());
    out.extend(payload);
    out.resize(out.len().div_ceil(4) * 4, 0);
}

fn nest(out: &mut Vec<u8>, kind: u16, body: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = vec![];
    body(&mut inner);
    attr(out, kind | NLA_F_NESTED, &inner);
}

fn strz(s: &str) -> Vec<u8> {
    let mut b = s.as_bytes().to_vec();
    b.push(0);
    b
}

/// A netlink message: header, nfgenmsg, attributes.
fn message(
    out: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    attrs: &[u8],
) {
    let len = 16 + 4 + attrs.len();
    out.extend((len as u32).to_ne_bytes());
    out.extend(kind.to_ne_bytes());
    out.extend(flags.to_ne_bytes());
    out.extend(seq.to_ne_bytes());
    out.extend(0u32.to_ne_bytes());
    out.push(family);
    out.push(0); // NFNETLINK_V0
    out.extend(res_id.to_be_bytes());
    out.extend(attrs);
}

/// A batch ready to send: the messages and how many answers to expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub bytes: Vec<u8>,
    /// Element messages, each acknowledged by the kernel.
    pub commands: usize,
}

/// The batch for `script` when it holds only element lines of our NAT
/// table; None when it holds anything else (then it goes to nft).
pub fn encode(script: &str) -> Result<Option<Batch>, EncodeError> {
    let mut lines = vec![];
    for line in script.lines().filter(|l| !l.trim().is_empty()) {
        let (verb, rest) = if let Some(r) = line.strip_prefix("add element ") {
            (NFT_MSG_NEWSETELEM, r)
        } else if let Some(r) = line.strip_prefix("delete element ") {
            (NFT_MSG_DELSETELEM, r)
        } else {
            return Ok(None);
        };
        let Some(rest) = rest
            .strip_prefix(FAMILY)
            .and_then(|r| r.strip_prefix(' '))
            .and_then(|r| r.strip_prefix(TABLE))
            .and_then(|r| r.strip_prefix(' '))
        else {
            return Ok(None);
        };
        let Some((set, items)) = rest.split_once(" { ") else {
            return Ok(None);
        };
        let Some(items) = items.trim_end().strip_suffix(" }") else {
            return Ok(None);
        };
        lines.push((verb, set, items));
    }
    let mut bytes = vec![];
    let mut seq = 0u32;
    message(
        &mut bytes,
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        seq,
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    let mut commands = 0;
    for (verb, set, items) in lines {
        let ty = SetType::named(set)?;
        let mut chunk = vec![];
        let flush =
            |chunk: &mut Vec<u8>, bytes: &mut Vec<u8>, seq: &mut u32, commands: &mut usize| {
                if chunk.is_empty() {
                    return;
                }
                let mut attrs = vec![];
                attr(&mut attrs, NFTA_SET_ELEM_LIST_TABLE, &strz(TABLE));
                attr(&mut attrs, NFTA_SET_ELEM_LIST_SET, &strz(set));
                attr(
                    &mut attrs,
                    NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED,
                    chunk,
                );
                *seq += 1;
                let flags = NLM_F_REQUEST
                    | NLM_F_ACK
                    | if verb == NFT_MSG_NEWSETELEM {
                        NLM_F_CREATE
                    } else {
                        0
                    };
                message(
                    bytes,
                    NFNL_SUBSYS_NFTABLES << 8 | verb,
                    flags,
                    *seq,
                    NFPROTO_IPV4,
                    0,
                    &attrs,
                );
                *commands += 1;
                chunk.clear();
            };
        for item in items.split(", ") {
            let el =
                element_attrs(&ty, item.trim(), verb == NFT_MSG_NEWSETELEM).map_err(|why| {
                    EncodeError::Element {
                        set: set.to_string(),
                        element: item.to_string(),
                        why,
                    }
                })?;
            if chunk.len() + el.len() + 4 > MAX_ELEMENTS_NEST {
                flush(&mut chunk, &mut bytes, &mut seq, &mut commands);
            }
            attr(&mut chunk, NFTA_LIST_ELEM | NLA_F_NESTED, &el);
        }
        flush(&mut chunk, &mut bytes, &mut seq, &mut commands);
    }
    if commands == 0 {
        return Ok(None);
    }
    seq += 1;
    message(
        &mut bytes,
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        seq,
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    Ok(Some(Batch { bytes, commands }))
}

/// Send `batch` on a fresh netfilter socket (in the caller's network
/// namespace) and read every answer: the kernel handles the batch inside
/// the send, so all answers are queued when it returns.
pub fn send(batch: &Batch) -> Result<(), SendError> {
    use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};
    use nix::sys::socket::{setsockopt, sockopt};
    let sock = Socket::new(NETLINK_NETFILTER).map_err(SendError::Io)?;
    let errno = |e: nix::Error| SendError::Io(std::io::Error::from(e));
    // Acks without the request echoed back; room for the whole batch and
    // for every answer (root may go over the sysctl limits).
    sock.set_cap_ack(true).map_err(SendError::Io)?;
    let room = |n: usize| n.saturating_add(65_536).min(i32::MAX as usize);
    setsockopt(&sock, sockopt::SndBufForce, &room(batch.bytes.len())).map_err(errno)?;
    setsockopt(&sock, sockopt::RcvBufForce, &room(batch.commands * 1024)).map_err(errno)?;
    let sent = sock
        .send_to(&batch.bytes, &SocketAddr::new(0, 0), 0)
        .map_err(SendError::Io)?;
    if sent != batch.bytes.len() {
        return Err(SendError::Io(std::io::Error::other("short netlink send")));
    }
    let mut acks = 0;
    let mut refused = None;
    let mut buf = Vec::with_capacity(65_536);
    loop {
        buf.clear();
        match sock.recv(&mut buf, libc::MSG_DONTWAIT) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(SendError::Io(e)),
        }
        let mut rest = &buf[..];
        while rest.len() >= 20 {
            let len = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
            let kind = u16::from_ne_bytes(rest[4..6].try_into().expect("2 bytes"));
            if len < 20 || len > rest.len() {
                break;
            }
            if kind == NLMSG_ERROR {
                let errno = i32::from_ne_bytes(rest[16..20].try_into().expect("4 bytes"));
                if errno == 0 {
                    acks += 1;
                } else if refused.is_none() {
                    refused = Some(std::io::Error::from_raw_os_error(-errno));
                }
            }
            rest = &rest[(len.div_ceil(4) * 4).min(rest.len())..];
        }
    }
    if let Some(e) = refused {
        return Err(SendError::Refused(e));
    }
    if acks != batch.commands {
        return Err(SendError::Io(std::io::Error::other(format!(
            "{acks} of {} element messages acknowledged",
            batch.commands
        ))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_set_has_a_type() {
        for (name, decl) in SETS {
            let t = SetType::of(decl).unwrap_or_else(|| panic!("{name}: {decl}"));
            assert!(!t.key.is_empty(), "{name}");
        }
    }

    #[test]
    fn a_script_with_more_than_elements_is_left_to_nft() {
        assert_eq!(encode("table ip vragent {}\n"), Ok(None));
        assert_eq!(encode("add element ip other s { 1.2.3.4 }\n"), Ok(None));
        assert_eq!(encode(""), Ok(None));
    }

    #[test]
    fn keys_and_data_are_padded_concatenations() {
        let ty = SetType::named("pf_exact").unwrap();
        let a = element_attrs(&ty, "10.0.0.1 . tcp . 80 : 192.168.0.2 . 8080", true).unwrap();
        // KEY nest (4) + DATA_VALUE (4 + 12); DATA nest (4) + DATA_VALUE (4 + 8).
        assert_eq!(a.len(), 20 + 16);
        assert_eq!(&a[8..20], &[10, 0, 0, 1, 6, 0, 0, 0, 0, 80, 0, 0]);
        assert_eq!(&a[28..36], &[192, 168, 0, 2, 0x1f, 0x90, 0, 0]);
        // A delete names the key only.
        assert_eq!(
            element_attrs(&ty, "10.0.0.1 . tcp . 80 : 192.168.0.2 . 8080", false)
                .unwrap()
                .len(),
            20
        );
    }

    #[test]
    fn intervals_carry_their_end() {
        let ty = SetType::named("snat_out").unwrap();
        let a = element_attrs(&ty, "\"eth1\" . 192.168.4.0/22 : 172.20.10.5", true).unwrap();
        let key = &a[8..28];
        let end = &a[36..56];
        assert_eq!(&key[..4], b"eth1");
        assert_eq!(&key[16..], &[192, 168, 4, 0]);
        assert_eq!(&end[16..], &[192, 168, 7, 255]);
        let ty = SetType::named("pf_range_keep").unwrap();
        let a = element_attrs(&ty, "10.0.0.1 . udp . 100-200 : 192.168.0.2", true).unwrap();
        assert_eq!(&a[16..18], &[0, 100]);
        assert_eq!(&a[36..38], &[0, 200]);
    }

    #[test]
    fn bad_elements_are_refused_by_name() {
        for (set, el) in [
            ("pf_exact", "10.0.0.1 . tcp . 80"),
            ("pf_exact", "10.0.0.1 . sctp . 80 : 1.2.3.4 . 1"),
            ("pf_exact", "10.0.0.1 . tcp . 80-81 : 1.2.3.4 . 1"),
            ("eip_dnat", "10.0.0.0/24 : 1.2.3.4"),
            ("count_eip_in", "10.0.0.1 : 1.2.3.4"),
            ("reject_into", "eth1"),
            ("reject_into", "\"a-name-far-too-long\""),
            ("snat_out", "\"eth1\" . 10.0.0.1/24 : 1.2.3.4"),
            ("pf_range_keep", "10.0.0.1 . tcp . 90-80 : 1.2.3.4"),
        ] {
            let script = format!("add element ip vragent {set} {{ {el} }}\n");
            assert!(
                matches!(encode(&script), Err(EncodeError::Element { .. })),
                "{set} {el}"
            );
        }
        assert_eq!(
            encode("add element ip vragent nope { 1.2.3.4 }\n"),
            Err(EncodeError::UnknownSet("nope".into()))
        );
    }

    #[test]
    fn many_elements_are_split_into_messages_under_the_attribute_limit() {
        let items: Vec<String> = (0..5000u32)
            .map(|i| format!("{} : 192.168.0.2", Ipv4Addr::from(0x0a00_0000 + i)))
            .collect();
        let b = encode(&format!(
            "add element ip vragent eip_dnat {{ {} }}\n",
            items.join(", ")
        ))
        .unwrap()
        .unwrap();
        assert!(b.commands > 1, "{}", b.commands);
        let mut rest = &b.bytes[..];
        while !rest.is_empty() {
            let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
            assert!(len < 65_536 + 100, "{len}");
            rest = &rest[len..];
        }
    }
}
