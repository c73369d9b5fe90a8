//! The lab's proofs: real packets between the lab's namespaces. Each check
//! returns what it saw, or why it failed.

use super::Names;
use super::topo::{nsh, shell_quote};

pub type Check = Result<String, String>;

/// One TCP connection from `ns` to `addr`; the lab's servers answer with
/// their name and the peer address they saw ("tenant1 10.0.0.1:40312").
pub fn tcp(ns: &str, addr: &str) -> Check {
    let out = nsh(
        ns,
        &format!("socat -T2 - TCP:{addr},connect-timeout=2 </dev/null"),
    )
    .map_err(|e| format!("no answer from {addr}: {e}"))?;
    let out = out.trim().to_string();
    if out.is_empty() {
        return Err(format!("{addr} closed without answering"));
    }
    Ok(out)
}

/// `tcp` that must reach server `name` from source address `source`.
pub fn reaches(ns: &str, addr: &str, name: &str, source: &str) -> Check {
    let seen = tcp(ns, addr)?;
    let mut it = seen.split_whitespace();
    let (who, peer) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
    let from = peer.rsplit_once(':').map_or(peer, |(ip, _)| ip);
    if who == name && from == source {
        Ok(format!("{name} saw {from}"))
    } else {
        Err(format!("expected {name} to see {source}, got {seen:?}"))
    }
}

/// The connection must fail (nothing answers).
pub fn blocked(ns: &str, addr: &str) -> Check {
    match tcp(ns, addr) {
        Ok(seen) => Err(format!("{addr} answered: {seen:?}")),
        Err(_) => Ok(format!("{addr} does not answer")),
    }
}

/// The server script each lab server runs: name and peer address.
pub fn server_args(name: &str, port: u16) -> Vec<String> {
    vec![
        format!("TCP-LISTEN:{port},fork,reuseaddr"),
        format!("SYSTEM:echo {name} $SOCAT_PEERADDR"),
    ]
}

const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
[ "$1" = bound ] || exit 0
ip addr flush dev "$interface"
ip addr add "$ip/$subnet" dev "$interface"
ip route replace default via "$router" dev "$interface"
echo "$ip $router $dns $domain $hostname" > "$OUT"
"#;

/// One DHCP exchange in `ns`: the lease must carry exactly `want`
/// ("ip router dns domain hostname").
pub fn dhcp(names: &Names, ns: &str, want: &str) -> Check {
    let script = names.state.join("udhcpc.sh");
    let out = names.state.join(format!("lease-{ns}"));
    std::fs::write(&script, UDHCPC_SCRIPT).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&out);
    nsh(
        ns,
        &format!(
            "chmod +x {s}; ip addr flush dev eth0; OUT={o} busybox udhcpc -i eth0 -n -q -f -t 10 -T 1 -O domain -O hostname -s {s}",
            s = script.display(),
            o = out.display()
        ),
    )
    .map_err(|e| format!("no lease: {e}"))?;
    let got = std::fs::read_to_string(&out).unwrap_or_default();
    let got = got.trim();
    if got == want {
        Ok(got.to_string())
    } else {
        Err(format!("lease {got:?}, expected {want:?}"))
    }
}

/// A DNS query through the VR's dnsmasq.
pub fn dns(ns: &str, name: &str, want: &str) -> Check {
    let got = nsh(
        ns,
        &format!(
            "dig @192.168.100.1 {} +short +time=2 +tries=2",
            shell_quote(name)
        ),
    )
    .map_err(|e| e.to_string())?;
    let got = got.trim();
    if got == want {
        Ok(format!("{name} -> {got}"))
    } else {
        Err(format!("{name} -> {got:?}, expected {want}"))
    }
}
