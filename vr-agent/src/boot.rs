//! The boot path inside the router VM: read the bootstrap info that
//! kvm-agent pushes over the `applianceVm.vport` virtio-serial channel and
//! configure the NICs it names, before the agent serves.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::vr::BootstrapInfo;

use common::net::Mac;

use crate::model::{CidrSource, Edit, Model, NicCategory, from_wire};

pub const DEFAULT_PATH: &str = "/dev/virtio-ports/applianceVm.vport";
pub const AGENT_PORT: u16 = 7272;

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("no bootstrap info at {path} after {secs} s: {reason}")]
    NotReceived {
        path: PathBuf,
        secs: u64,
        reason: String,
    },
    #[error("bootstrap info at {path} is not valid JSON: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("bootstrap info: {0}")]
    Invalid(String),
}

/// Read the whole document: kvm-agent writes it (padded with spaces) and
/// closes its end, which is EOF here. An empty read means it has not come
/// yet, so poll until `timeout`.
pub async fn read(path: &Path, timeout: Duration) -> Result<BootstrapInfo, BootError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let p = path.to_path_buf();
        let last = match tokio::task::spawn_blocking(move || std::fs::read(&p)).await {
            Ok(Ok(bytes)) if !bytes.iter().all(u8::is_ascii_whitespace) => {
                return serde_json::from_slice(&bytes).map_err(|e| BootError::Malformed {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                });
            }
            Ok(Ok(_)) => "empty".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(BootError::NotReceived {
                path: path.to_path_buf(),
                secs: timeout.as_secs(),
                reason: last,
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The edits the document asks for (NICs, then the route to the
/// management node's network), and the management address.
pub fn plan(info: &BootstrapInfo) -> Result<(Vec<Edit>, Option<Ipv4Addr>), BootError> {
    let mut wire = vec![info.management_nic.clone()];
    wire.extend(info.additional_nics.iter().cloned());
    let mut nics = from_wire::nics(&wire).map_err(|e| BootError::Invalid(e.to_string()))?;
    // The first NIC is the management NIC whatever its L3 category says.
    nics[0].category = NicCategory::Management;
    let mgmt_ip = nics[0].ip.map(|(ip, _)| ip);
    let cidr = from_wire::mgmt_cidr(
        "managementNodeCidr",
        info.management_node_cidr.as_deref().unwrap_or(""),
    )
    .map_err(|e| BootError::Invalid(e.to_string()))?;
    let edits = vec![
        Edit::ConfigureNics(nics),
        Edit::SetMgmtCidr {
            source: CidrSource::Bootstrap,
            cidr,
        },
    ];
    Ok((edits, mgmt_ip))
}

/// NICs the persisted state has but the bootstrap info (every NIC of the
/// VM) no longer lists.
pub fn stale_nics(info: &BootstrapInfo, model: &Model) -> Vec<Mac> {
    let listed: Vec<Mac> = std::iter::once(&info.management_nic)
        .chain(&info.additional_nics)
        .filter_map(|n| n.mac.trim().parse().ok())
        .collect();
    model
        .nics
        .keys()
        .filter(|m| !listed.contains(m))
        .copied()
        .collect()
}

/// Where to listen: `--listen` if given, else the management IP, port 7272.
pub fn listen_addr(explicit: Option<SocketAddr>, mgmt_ip: Option<Ipv4Addr>) -> SocketAddr {
    explicit
        .unwrap_or_else(|| SocketAddr::from((mgmt_ip.unwrap_or(Ipv4Addr::UNSPECIFIED), AGENT_PORT)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn management_nic_first_and_listen_address() {
        let doc = r#"{"managementNic":{"ip":"10.0.0.25","netmask":"255.255.255.0","gateway":"10.0.0.1",
            "mac":"fa:26:9c:aa:00:01","deviceName":"eth0","isDefaultRoute":false,"category":"System","mtu":1500},
            "additionalNics":[{"ip":"172.20.10.5","netmask":"255.255.0.0","gateway":"172.20.0.1",
            "mac":"fa:26:9c:aa:00:02","deviceName":"eth1","isDefaultRoute":true,"category":"Public"}],
            "uuid":"vr1","SkipVyosIptables":true,"managementNodeCidr":"10.9.0.0/16"}"#;
        let info: BootstrapInfo = serde_json::from_str(&format!("{doc}      ")).unwrap();
        let (edits, ip) = plan(&info).unwrap();
        let Edit::ConfigureNics(nics) = &edits[0] else {
            panic!()
        };
        assert_eq!(
            edits[1],
            Edit::SetMgmtCidr {
                source: CidrSource::Bootstrap,
                cidr: Some("10.9.0.0/16".parse().unwrap())
            }
        );
        assert_eq!(nics[0].category, NicCategory::Management);
        assert!(nics[1].is_default_route);
        assert_eq!(ip, Some("10.0.0.25".parse().unwrap()));
        assert_eq!(listen_addr(None, ip).to_string(), "10.0.0.25:7272");
        assert_eq!(
            listen_addr(Some("127.0.0.1:1".parse().unwrap()), ip).to_string(),
            "127.0.0.1:1"
        );
    }
}
