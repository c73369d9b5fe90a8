//! Validation newtypes. Wire types keep strings (lenient decoding); these are
//! what the agents' internal models hold, so a value in the model is valid.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::text::quoted;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn err(msg: String) -> ParseError {
    ParseError(msg)
}

/// An Ethernet MAC address, printed lowercase with colons.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mac(pub [u8; 6]);

impl FromStr for Mac {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let bad = || {
            err(format!(
                "{} is not a MAC address (expected aa:bb:cc:dd:ee:ff)",
                quoted(s)
            ))
        };
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut out = [0u8; 6];
        for (o, p) in out.iter_mut().zip(parts) {
            if p.len() != 2 {
                return Err(bad());
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl TryFrom<String> for Mac {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        s.parse()
    }
}

impl From<Mac> for String {
    fn from(m: Mac) -> String {
        m.to_string()
    }
}

/// A Linux interface name: 1-15 bytes, no '/', whitespace, quotes or control characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfName(String);

impl IfName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for IfName {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let ok = !s.is_empty()
            && s.len() <= 15
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !b"/\"'\\:,".contains(&b));
        if ok {
            Ok(IfName(s.to_string()))
        } else {
            Err(err(format!("{} is not a valid interface name", quoted(s))))
        }
    }
}

impl TryFrom<String> for IfName {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        s.parse()
    }
}

impl From<IfName> for String {
    fn from(n: IfName) -> String {
        n.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

pub fn parse_ipv4(s: &str) -> Result<Ipv4Addr, ParseError> {
    s.trim()
        .parse()
        .map_err(|_| err(format!("{} is not an IPv4 address", quoted(s))))
}

/// Prefix length of a dotted netmask ("255.255.255.0" -> 24); a bare number is accepted too.
pub fn netmask_prefix(s: &str) -> Result<u8, ParseError> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u8>()
        && n <= 32
    {
        return Ok(n);
    }
    let bad = || err(format!("{} is not a netmask", quoted(s)));
    let m = u32::from(s.parse::<Ipv4Addr>().map_err(|_| bad())?);
    let len = m.leading_ones();
    if m.checked_shl(len).unwrap_or(0) != 0 {
        return Err(bad());
    }
    Ok(len as u8)
}

/// An IPv4 network in canonical form (host bits cleared).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    len: u8,
}

impl Ipv4Net {
    /// The network containing `ip` with prefix `len`.
    pub fn containing(ip: Ipv4Addr, len: u8) -> Ipv4Net {
        let len = len.min(32);
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        Ipv4Net {
            addr: Ipv4Addr::from(u32::from(ip) & mask),
            len,
        }
    }
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }
    pub fn prefix_len(&self) -> u8 {
        self.len
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        Ipv4Net::containing(ip, self.len).addr == self.addr
    }
    pub fn is_any(&self) -> bool {
        self.len == 0
    }
}

impl FromStr for Ipv4Net {
    type Err = ParseError;
    /// Accepts "a.b.c.d/len" with host bits set or not, and a bare address as /32.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        let bad = || err(format!("{} is not an IPv4 CIDR", quoted(s)));
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().map_err(|_| bad())?),
            None => (s, 32),
        };
        if l > 32 {
            return Err(bad());
        }
        Ok(Ipv4Net::containing(a.parse().map_err(|_| bad())?, l))
    }
}

impl TryFrom<String> for Ipv4Net {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        s.parse()
    }
}

impl From<Ipv4Net> for String {
    fn from(n: Ipv4Net) -> String {
        n.to_string()
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Debug for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An inclusive port range, 1..=65535.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn new(start: i64, end: i64) -> Result<PortRange, ParseError> {
        let ok = |p: i64| (1..=65535).contains(&p);
        if !ok(start) || !ok(end) {
            return Err(err(format!("port range {start}-{end} is outside 1-65535")));
        }
        if end < start {
            return Err(err(format!(
                "port range {start}-{end} ends before it starts"
            )));
        }
        Ok(PortRange {
            start: start as u16,
            end: end as u16,
        })
    }
    /// Number of ports in the range.
    pub fn count(&self) -> u32 {
        u32::from(self.end) - u32::from(self.start) + 1
    }
    pub fn is_single(&self) -> bool {
        self.start == self.end
    }
    pub fn overlaps(&self, o: &PortRange) -> bool {
        self.start <= o.end && o.start <= self.end
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl fmt::Debug for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Transport protocol of a NAT rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(&self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl FromStr for Proto {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            _ => Err(err(format!("{} is not a protocol (TCP or UDP)", quoted(s)))),
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_roundtrip_and_errors() {
        let m: Mac = "FA:26:9c:aa:00:01".parse().unwrap();
        assert_eq!(m.to_string(), "fa:26:9c:aa:00:01");
        assert!("fa:26:9c:aa:00".parse::<Mac>().is_err());
        assert!("fa:26:9c:aa:00:zz".parse::<Mac>().is_err());
        assert!("fa:26:9c:aa:00:011".parse::<Mac>().is_err());
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask_prefix("255.255.255.0").unwrap(), 24);
        assert_eq!(netmask_prefix("255.255.0.0").unwrap(), 16);
        assert_eq!(netmask_prefix("0.0.0.0").unwrap(), 0);
        assert_eq!(netmask_prefix("255.255.255.255").unwrap(), 32);
        assert_eq!(netmask_prefix("24").unwrap(), 24);
        assert!(netmask_prefix("255.0.255.0").is_err());
        assert!(netmask_prefix("nope").is_err());
    }

    #[test]
    fn cidrs() {
        let n: Ipv4Net = "192.168.100.7/24".parse().unwrap();
        assert_eq!(n.to_string(), "192.168.100.0/24");
        assert!(n.contains("192.168.100.200".parse().unwrap()));
        assert!(!n.contains("192.168.101.1".parse().unwrap()));
        assert_eq!(
            "10.0.0.1".parse::<Ipv4Net>().unwrap().to_string(),
            "10.0.0.1/32"
        );
        assert!("10.0.0.1/33".parse::<Ipv4Net>().is_err());
        assert!("0.0.0.0/0".parse::<Ipv4Net>().unwrap().is_any());
    }

    #[test]
    fn port_ranges() {
        assert!(PortRange::new(0, 10).is_err());
        assert!(PortRange::new(10, 5).is_err());
        assert!(PortRange::new(1, 70000).is_err());
        let a = PortRange::new(100, 200).unwrap();
        assert!(a.overlaps(&PortRange::new(200, 300).unwrap()));
        assert!(!a.overlaps(&PortRange::new(201, 300).unwrap()));
        assert_eq!(a.count(), 101);
    }

    #[test]
    fn ifnames() {
        assert!("eth0".parse::<IfName>().is_ok());
        assert!("br_eth0_100".parse::<IfName>().is_ok());
        assert!("a-very-long-interface".parse::<IfName>().is_err());
        assert!("eth0\n".parse::<IfName>().is_err());
        assert!("a\"b".parse::<IfName>().is_err());
    }

    /// A 50 MB value quoted whole would make a 50 MB reply and log line.
    #[test]
    fn parse_errors_quote_input_bounded() {
        let big = format!("{}\nforged", "x".repeat(1 << 20));
        let errors = [
            big.parse::<IfName>().unwrap_err(),
            big.parse::<Mac>().unwrap_err(),
            parse_ipv4(&big).unwrap_err(),
            netmask_prefix(&big).unwrap_err(),
            big.parse::<Proto>().unwrap_err(),
            big.parse::<Ipv4Net>().unwrap_err(),
        ];
        for e in errors {
            assert!(e.0.len() < 200, "{}", e.0.len());
            assert!(!e.0.contains('\n'));
        }
        let e = "eth0\n".parse::<IfName>().unwrap_err();
        assert_eq!(e.0, "\"eth0\\n\" is not a valid interface name");
    }

    #[test]
    fn protos() {
        assert_eq!("TCP".parse::<Proto>().unwrap(), Proto::Tcp);
        assert_eq!("udp".parse::<Proto>().unwrap(), Proto::Udp);
        assert!("icmp".parse::<Proto>().is_err());
    }
}
