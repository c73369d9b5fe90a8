//! A DHCP client (busybox udhcpc) in a namespace that reports the lease.

use std::collections::BTreeMap;
use std::path::Path;

use crate::netns::Netns;

const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
[ "$1" = bound ] || exit 0
if [ "$CONFIGURE" = 1 ]; then
  ip addr flush dev "$interface"
  ip addr add "$ip/$subnet" dev "$interface"
  [ -n "$router" ] && ip route replace default via "$router" dev "$interface"
fi
printf 'ip=%s\nrouter=%s\ndns=%s\nmtu=%s\ndomain=%s\nhostname=%s\nsubnet=%s\n' \
  "$ip" "$router" "$dns" "$mtu" "$domain" "$hostname" "$subnet" > "$OUT"
"#;

/// One DHCP exchange with busybox udhcpc on `ifname` inside `ns` (`tries`
/// discovers, one second apart), asking for mtu, hostname and domain. The
/// options of the lease (`ip`, `router`, `dns`, `mtu`, `domain`,
/// `hostname`, `subnet`), or None when no server answered. With
/// `configure`, the address and default route are also put on the
/// interface. `dir` holds the script and its output.
pub fn dhcp_lease(
    ns: &Netns,
    ifname: &str,
    tries: u32,
    configure: bool,
    dir: &Path,
) -> Option<BTreeMap<String, String>> {
    let script = dir.join("udhcpc.sh");
    std::fs::write(&script, UDHCPC_SCRIPT).ok()?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).ok()?;
    let out = dir.join(format!("lease-{ifname}"));
    let _ = std::fs::remove_file(&out);
    let tries = tries.to_string();
    let status = ns
        .command(
            "busybox",
            &[
                "udhcpc",
                "-i",
                ifname,
                "-n",
                "-q",
                "-f",
                "-t",
                &tries,
                "-T",
                "1",
                "-O",
                "mtu",
                "-O",
                "hostname",
                "-O",
                "domain",
                "-s",
                script.to_str()?,
            ],
        )
        .env("OUT", &out)
        .env("CONFIGURE", if configure { "1" } else { "0" })
        .output()
        .ok()?;
    if !status.status.success() {
        return None;
    }
    let text = std::fs::read_to_string(&out).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect(),
    )
}
