//! conntrackd.conf for the router HA pair (issue 17): FTFW (reliable)
//! state sync over UDP on the heartbeat link, so the backup's kernel holds
//! the master's connection-tracking entries (and their NAT bindings) when
//! it takes over. Pure: [`SyncSpec`] in, text out; every string is checked
//! first.
//!
//! Choices (zvr, zstack-vyos `63bc11a` `plugin/keepalived.go`
//! `tConntrackdConf`, writes a similar FTFW file but kills conntrackd at
//! start, so ZStack keeps no sessions):
//! - `DisableExternalCache on`: received entries go straight into the
//!   backup's kernel table, so promotion needs no `conntrackd -c` commit
//!   and a crash of the master's conntrackd loses nothing already sent.
//! - TCP and UDP are synced (ICMP too: a ping through SNAT keeps its
//!   mapping); the heartbeat addresses and loopback are ignored, they are
//!   each router's own.
//! - UDP port 3780 as zvr; the agent's firewall accepts it from the peer
//!   only.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use common::net::IfName;

use super::keepalived::{HaSpecError, check_ifname, check_path};

pub const SYNC_PORT: u16 = 3780;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSpec {
    pub heartbeat: IfName,
    pub local: Ipv4Addr,
    pub peer: Ipv4Addr,
    pub port: u16,
    /// conntrackd's control socket (`conntrackd -C FILE -s` talks to it).
    pub socket: String,
    pub lock_file: String,
    /// Addresses whose connections are not synced besides loopback and the
    /// two heartbeat addresses (e.g. the management address).
    pub ignore: Vec<Ipv4Addr>,
}

impl SyncSpec {
    pub fn validate(&self) -> Result<(), HaSpecError> {
        check_ifname(&self.heartbeat)?;
        if self.local == self.peer {
            return Err(HaSpecError::PeerIsLocal(self.peer));
        }
        for a in [self.local, self.peer] {
            if a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast() {
                return Err(HaSpecError::Addr(self.heartbeat.clone(), a));
            }
        }
        check_path("UNIX Path", &self.socket)?;
        check_path("LockFile", &self.lock_file)?;
        Ok(())
    }
}

pub fn render(spec: &SyncSpec) -> Result<String, HaSpecError> {
    spec.validate()?;
    let port = if spec.port == 0 { SYNC_PORT } else { spec.port };
    let mut s = String::new();
    s.push_str("# Written by vr-agent; every change is overwritten.\n");
    s.push_str("Sync {\n");
    s.push_str("    Mode FTFW {\n");
    s.push_str("        DisableExternalCache on\n");
    s.push_str("    }\n");
    s.push_str("    UDP {\n");
    let _ = writeln!(s, "        IPv4_address {}", spec.local);
    let _ = writeln!(s, "        IPv4_Destination_Address {}", spec.peer);
    let _ = writeln!(s, "        Port {port}");
    let _ = writeln!(s, "        Interface {}", spec.heartbeat);
    s.push_str("        SndSocketBuffer 1249280\n");
    s.push_str("        RcvSocketBuffer 1249280\n");
    s.push_str("        Checksum on\n");
    s.push_str("    }\n");
    s.push_str("}\n\n");
    s.push_str("General {\n");
    s.push_str("    HashSize 32768\n");
    s.push_str("    HashLimit 131072\n");
    s.push_str("    LogFile off\n");
    s.push_str("    Syslog on\n");
    let _ = writeln!(s, "    LockFile {}", spec.lock_file);
    s.push_str("    UNIX {\n");
    let _ = writeln!(s, "        Path {}", spec.socket);
    s.push_str("    }\n");
    s.push_str("    NetlinkBufferSize 2097152\n");
    s.push_str("    NetlinkBufferSizeMaxGrowth 8388608\n");
    s.push_str("    Filter From Userspace {\n");
    s.push_str("        Protocol Accept {\n");
    s.push_str("            TCP\n");
    s.push_str("            UDP\n");
    s.push_str("            ICMP\n");
    s.push_str("        }\n");
    s.push_str("        Address Ignore {\n");
    s.push_str("            IPv4_address 127.0.0.1\n");
    let mut ignore = vec![spec.local, spec.peer];
    ignore.extend(spec.ignore.iter().copied());
    ignore.sort();
    ignore.dedup();
    for a in ignore {
        let _ = writeln!(s, "            IPv4_address {a}");
    }
    s.push_str("        }\n");
    s.push_str("    }\n");
    s.push_str("}\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SyncSpec {
        SyncSpec {
            heartbeat: "eth0".parse().unwrap(),
            local: "10.0.0.5".parse().unwrap(),
            peer: "10.0.0.6".parse().unwrap(),
            port: 0,
            socket: "/run/vr-agent/conntrackd.ctl".into(),
            lock_file: "/run/vr-agent/conntrackd.lock".into(),
            ignore: vec!["10.0.0.5".parse().unwrap(), "10.0.0.9".parse().unwrap()],
        }
    }

    #[test]
    fn config_matches_golden() {
        let got = render(&sample()).unwrap();
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/plan/testdata/conntrackd.conf"
        );
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &got).unwrap();
        }
        assert_eq!(got, std::fs::read_to_string(path).unwrap());
    }

    #[test]
    fn bad_strings_never_reach_the_config() {
        let mut s = sample();
        s.socket = "/run/x\n}\nGeneral {".into();
        assert!(matches!(render(&s), Err(HaSpecError::Path { .. })));
        let mut s = sample();
        s.heartbeat = "eth0#".parse().unwrap();
        assert!(matches!(render(&s), Err(HaSpecError::IfName(_))));
        let mut s = sample();
        s.peer = s.local;
        assert!(matches!(render(&s), Err(HaSpecError::PeerIsLocal(_))));
    }
}
