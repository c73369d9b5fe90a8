//! Removing conntrack entries that a NAT change made stale (zvr pain point
//! P10): one dump, filter in process, delete the exact tuples, so the cost
//! follows the number of stale flows, not the number of changed rules.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
#[cfg(any(test, feature = "fakes"))]
use std::sync::Mutex;

use async_trait::async_trait;

use super::runner::{self, RunError};
use crate::plan::nat::FlowMatch;

#[async_trait]
pub trait Conntrack: Send + Sync {
    /// Delete every flow whose original direction matches; returns how many.
    async fn delete(&self, matches: &BTreeSet<FlowMatch>) -> Result<usize, RunError>;
}

/// One entry of `conntrack -L`, original direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub proto: String,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// icmp type, code, id
    pub icmp: Option<(String, String, String)>,
}

pub fn parse(line: &str) -> Option<Flow> {
    let mut words = line.split_whitespace();
    let proto = words.next()?.to_string();
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
    };
    let icmp = match (field("type"), field("code"), field("id")) {
        (Some(t), Some(c), Some(i)) => Some((t.to_string(), c.to_string(), i.to_string())),
        _ => None,
    };
    Some(Flow {
        proto,
        src: field("src")?.parse().ok()?,
        dst: field("dst")?.parse().ok()?,
        sport: field("sport").and_then(|p| p.parse().ok()),
        dport: field("dport").and_then(|p| p.parse().ok()),
        icmp,
    })
}

pub fn matches(f: &Flow, m: &FlowMatch) -> bool {
    match m {
        FlowMatch::Dst(ip) => f.dst == *ip,
        FlowMatch::Src(ip) => f.src == *ip,
        FlowMatch::SrcNet(net) => net.contains(f.src),
        FlowMatch::DstPorts(ip, proto, ports) => {
            f.dst == *ip
                && f.proto == proto.as_str()
                && f.dport.is_some_and(|p| ports.start <= p && p <= ports.end)
        }
    }
}

fn delete_args(f: &Flow) -> Vec<String> {
    let mut a: Vec<String> = [
        "-D",
        "-f",
        "ipv4",
        "-p",
        &f.proto,
        "-s",
        &f.src.to_string(),
        "-d",
        &f.dst.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let (Some(s), Some(d)) = (f.sport, f.dport) {
        a.extend([
            "--sport".into(),
            s.to_string(),
            "--dport".into(),
            d.to_string(),
        ]);
    }
    if let Some((t, c, i)) = &f.icmp {
        a.extend([
            "--icmp-type".into(),
            t.clone(),
            "--icmp-code".into(),
            c.clone(),
            "--icmp-id".into(),
            i.clone(),
        ]);
    }
    a
}

pub struct ConntrackTool;

#[async_trait]
impl Conntrack for ConntrackTool {
    async fn delete(&self, wanted: &BTreeSet<FlowMatch>) -> Result<usize, RunError> {
        if wanted.is_empty() {
            return Ok(0);
        }
        let out = runner::output("conntrack", &["-L", "-f", "ipv4"], None).await?;
        let dump = String::from_utf8_lossy(&out.stdout);
        let stale: Vec<Flow> = dump
            .lines()
            .filter_map(parse)
            .filter(|f| wanted.iter().any(|m| matches(f, m)))
            .collect();
        for f in &stale {
            let args = delete_args(f);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            // Exit 1 means "already gone": the flow ended meanwhile.
            runner::output("conntrack", &args, None).await?;
        }
        Ok(stale.len())
    }
}

#[cfg(any(test, feature = "fakes"))]
#[derive(Default)]
pub struct FakeConntrack {
    pub deleted: Mutex<Vec<FlowMatch>>,
}

#[cfg(any(test, feature = "fakes"))]
#[async_trait]
impl Conntrack for FakeConntrack {
    async fn delete(&self, m: &BTreeSet<FlowMatch>) -> Result<usize, RunError> {
        self.deleted.lock().unwrap().extend(m.iter().copied());
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::net::{PortRange, Proto};

    #[test]
    fn parses_conntrack_lines() {
        let tcp = "tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=172.20.10.100 sport=40000 dport=8080 src=192.168.100.10 dst=10.0.0.1 sport=80 dport=40000 [ASSURED] mark=0 use=1";
        let f = parse(tcp).unwrap();
        assert_eq!(f.proto, "tcp");
        assert_eq!(f.dst, "172.20.10.100".parse::<Ipv4Addr>().unwrap());
        assert_eq!(f.dport, Some(8080));
        let m = FlowMatch::DstPorts(
            f.dst,
            Proto::Tcp,
            PortRange {
                start: 8000,
                end: 9000,
            },
        );
        assert!(matches(&f, &m));
        assert!(!matches(
            &f,
            &FlowMatch::DstPorts(
                f.dst,
                Proto::Udp,
                PortRange {
                    start: 8000,
                    end: 9000
                }
            )
        ));
        let icmp = "icmp     1 29 src=10.0.0.1 dst=172.20.10.101 type=8 code=0 id=77 src=192.168.100.10 dst=10.0.0.1 type=0 code=0 id=77 mark=0 use=1";
        let f = parse(icmp).unwrap();
        assert_eq!(f.icmp, Some(("8".into(), "0".into(), "77".into())));
        assert!(delete_args(&f).contains(&"--icmp-id".to_string()));
        assert!(
            parse("conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.").is_none()
        );
    }
}
