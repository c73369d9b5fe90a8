//! UDP listeners: no user-space proxy, a DNAT in our own nft table
//! (`ip vragent_lb`, apart from the NAT table `ip vragent` so the two never
//! touch each other's rules). Each listener is one rule spreading new flows
//! over its backends with `numgen inc` (round robin; a weight repeats a
//! backend's slot). Established flows keep their backend through conntrack.
//! UDP backends are not health-checked.

use std::fmt::Write as _;

use vr_model::lb::{Backend, LbState};

pub const TABLE: &str = "vragent_lb";
/// Most slots one listener's numgen map gets (weights are scaled down).
const MAX_SLOTS: u32 = 256;

/// The slots of a weighted round robin: weights divided by their gcd,
/// scaled to at most [`MAX_SLOTS`]; a weight-0 backend gets none.
fn slots(backends: &[Backend]) -> Vec<&Backend> {
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let live: Vec<&Backend> = backends.iter().filter(|b| b.weight > 0).collect();
    let g = live
        .iter()
        .fold(0, |g, b| gcd(g, u32::from(b.weight)))
        .max(1);
    let total: u32 = live.iter().map(|b| u32::from(b.weight) / g).sum();
    let mut out = vec![];
    for b in &live {
        let mut n = u32::from(b.weight) / g;
        if total > MAX_SLOTS {
            n = (n * MAX_SLOTS / total).max(1);
        }
        out.extend(std::iter::repeat_n(*b, n as usize));
    }
    out
}

/// The whole table as one transaction (replaces what was there; removes
/// the table when there is no udp listener).
pub fn render(lb: &LbState) -> String {
    let mut s = format!("table ip {TABLE} {{}}\ndelete table ip {TABLE}\n");
    let rules: Vec<String> = lb
        .udp()
        .filter_map(|l| {
            let slots = slots(&l.backends);
            if slots.is_empty() {
                return None;
            }
            let map: Vec<String> = slots
                .iter()
                .enumerate()
                .map(|(i, b)| format!("{i} : {} . {}", b.ip, l.instance_port))
                .collect();
            Some(format!(
                "    ip daddr {} udp dport {} dnat ip to numgen inc mod {} map {{ {} }} comment \"{}\"\n",
                l.vip,
                l.port,
                slots.len(),
                map.join(", "),
                l.uuid
            ))
        })
        .collect();
    if rules.is_empty() {
        return s;
    }
    let _ = writeln!(s, "table ip {TABLE} {{");
    s.push_str("  chain prerouting {\n");
    s.push_str("    type nat hook prerouting priority dstnat; policy accept;\n");
    for r in rules {
        s.push_str(&r);
    }
    s.push_str("  }\n}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(ip: &str, weight: u16) -> Backend {
        Backend {
            ip: ip.parse().unwrap(),
            weight,
        }
    }

    #[test]
    fn weights_become_slots() {
        let bs = [b("10.0.0.1", 100), b("10.0.0.2", 200), b("10.0.0.3", 0)];
        let s: Vec<String> = slots(&bs).iter().map(|b| b.ip.to_string()).collect();
        assert_eq!(s, ["10.0.0.1", "10.0.0.2", "10.0.0.2"]);
        let many: Vec<Backend> = (0..200)
            .map(|i| b(&format!("10.0.1.{i}"), 7 + (i % 2)))
            .collect();
        let n = slots(&many).len();
        assert!(n <= MAX_SLOTS as usize + 200 && n >= 200, "{n}");
    }

    #[test]
    fn renders_one_rule_per_listener() {
        let s = crate::plan::haproxy::tests_state();
        let text = render(&s);
        assert!(
            text.contains("ip daddr 172.20.10.103 udp dport 53 dnat ip to numgen inc mod 1 map { 0 : 192.168.100.20 . 53 } comment \"dns\""),
            "{text}"
        );
        let empty = render(&LbState::default());
        assert_eq!(
            empty,
            "table ip vragent_lb {}\ndelete table ip vragent_lb\n"
        );
    }
}
