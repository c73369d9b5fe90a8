//! The boot path inside the router VM: read the bootstrap info that
//! kvm-agent pushes over the `applianceVm.vport` virtio-serial channel and
//! configure the NICs it names, before the agent serves.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::vr::BootstrapInfo;

use common::net::Mac;

use vr_model::{CidrSource, Edit, Model, NicCategory, from_wire};

pub const DEFAULT_PATH: &str = "/dev/virtio-ports/applianceVm.vport";
pub const AGENT_PORT: u16 = vr_model::checks::DEFAULT_AGENT_PORT;

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

fn parse(path: &Path, bytes: &[u8]) -> Result<BootstrapInfo, BootError> {
    serde_json::from_slice(bytes).map_err(|e| BootError::Malformed {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// One read of `path`: the document, or why there is none yet.
async fn read_once(path: &Path) -> Result<Vec<u8>, String> {
    let p = path.to_path_buf();
    match tokio::task::spawn_blocking(move || std::fs::read(&p)).await {
        Ok(Ok(bytes)) if !bytes.iter().all(u8::is_ascii_whitespace) => Ok(bytes),
        Ok(Ok(_)) => Err("empty".to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Read the whole document: kvm-agent writes it (padded with spaces) and
/// closes its end, which is EOF here. An empty read means it has not come
/// yet, so poll until `timeout`.
async fn read_document(path: &Path, timeout: Duration) -> Result<Vec<u8>, BootError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match read_once(path).await {
            Ok(bytes) => return Ok(bytes),
            Err(why) => why,
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

/// The last document received, kept with the id of the boot it came in.
#[derive(serde::Serialize, serde::Deserialize)]
struct Received {
    boot_id: String,
    document: serde_json::Value,
}

/// Where [`read_or_recall`] keeps the document (0600: it may carry the
/// agent's private key and tokens).
fn received_path(state_dir: &Path) -> PathBuf {
    state_dir.join("bootstrap.json")
}

/// This boot of the kernel (`/proc/sys/kernel/random/boot_id`).
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// A bootstrap document, read from the channel (`fresh`) or recalled.
pub struct Document {
    pub info: BootstrapInfo,
    /// The bytes read from the channel; None when recalled.
    fresh: Option<Vec<u8>>,
}

impl Document {
    /// Keep a document read from the channel once it has been applied, for
    /// a restart within this boot ([`read_or_recall`]).
    pub fn keep(&self, state_dir: &Path) {
        let (Some(bytes), Some(boot_id)) = (&self.fresh, boot_id()) else {
            return;
        };
        let kept = received_path(state_dir);
        let json = serde_json::from_slice(bytes)
            .map(|document| Received { boot_id, document })
            .and_then(|r| serde_json::to_vec(&r));
        let written = json
            .map_err(std::io::Error::other)
            .and_then(|j| common::files::write_private(&kept, &j));
        if let Err(e) = written {
            tracing::warn!(path = %kept.display(), error = %e, "cannot keep the bootstrap info: a restart in this boot will wait for a new push");
        }
    }
}

/// The bootstrap document from `path` (polled until `timeout`), for an
/// agent that may have been restarted: kvm-agent pushes the
/// document once per start of the VM, and the channel is at EOF afterwards,
/// so an agent restarted within the same boot (a crash, kill -9, an upgrade)
/// would wait for a push that never comes. A document on the channel wins;
/// without one, the document applied earlier in this boot
/// ([`Document::keep`]) is used at once.
pub async fn read_or_recall(
    path: &Path,
    timeout: Duration,
    state_dir: &Path,
) -> Result<Document, BootError> {
    let bytes = match read_once(path).await {
        Ok(bytes) => bytes,
        Err(why) => {
            let kept = received_path(state_dir);
            let now = boot_id();
            let earlier = std::fs::read(&kept)
                .ok()
                .and_then(|b| serde_json::from_slice::<Received>(&b).ok())
                .filter(|r| now.as_deref() == Some(r.boot_id.as_str()));
            if let Some(r) = earlier {
                tracing::info!(
                    path = %path.display(),
                    kept = %kept.display(),
                    reason = why,
                    "no new bootstrap info in this boot: using the one received earlier"
                );
                let info =
                    serde_json::from_value(r.document).map_err(|e| BootError::Malformed {
                        path: kept.clone(),
                        reason: e.to_string(),
                    })?;
                return Ok(Document { info, fresh: None });
            }
            read_document(path, timeout).await?
        }
    };
    Ok(Document {
        info: parse(path, &bytes)?,
        fresh: Some(bytes),
    })
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

/// The management node's network (`managementNodeCidr`), when valid.
pub fn node_cidr(info: &BootstrapInfo) -> Option<common::net::Ipv4Net> {
    from_wire::mgmt_cidr("managementNodeCidr", info.management_node_cidr.as_deref()?)
        .ok()
        .flatten()
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

/// What goes before the bootstrap info's edits: forget the stale NICs (and
/// a persisted management NIC whose address or role the info changed: its
/// category and address cannot change by an edit), then drop what the
/// persisted state holds on the management IP. Names what is dropped.
pub fn prelude(info: &BootstrapInfo, model: &Model) -> (Vec<Edit>, Vec<String>) {
    let mut stale = stale_nics(info, model);
    let wanted: Option<(Mac, Option<Ipv4Addr>)> =
        info.management_nic.mac.trim().parse().ok().map(|mac| {
            let ip = info.management_nic.ip.as_deref();
            (mac, ip.and_then(|s| s.trim().parse().ok()))
        });
    for n in model.nics.values() {
        let moved = n.category == NicCategory::Management
            && wanted.is_none_or(|(mac, ip)| mac != n.mac || n.ip.map(|(a, _)| a) != ip);
        if moved && !stale.contains(&n.mac) {
            stale.push(n.mac);
        }
    }
    let mut named: Vec<String> = stale.iter().map(|m| format!("nic {m}")).collect();
    let mut edits = vec![];
    let mut next = model.clone();
    if !stale.is_empty() {
        let e = Edit::ForgetNics(stale);
        let _ = next.apply(&e);
        edits.push(e);
    }
    if let Some(ip) = wanted.and_then(|(_, ip)| ip) {
        let cleared = vr_model::checks::clear_management_plane(&mut next, &[ip]);
        if !cleared.is_empty() {
            named.extend(cleared);
            edits.push(Edit::ClearManagementPlane(vec![ip]));
        }
    }
    (edits, named)
}

/// Where to listen: `--listen` if given, else the management IP, port 7272;
/// without either, loopback only (never every NIC unless `--listen
/// 0.0.0.0:PORT` asks for it).
pub fn listen_addr(explicit: Option<SocketAddr>, mgmt_ip: Option<Ipv4Addr>) -> SocketAddr {
    explicit
        .unwrap_or_else(|| SocketAddr::from((mgmt_ip.unwrap_or(Ipv4Addr::LOCALHOST), AGENT_PORT)))
}

/// The interface that holds `ip` (None: no interface does).
pub fn device_of(ip: std::net::IpAddr) -> Option<String> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    for a in addrs {
        let Some(sa) = a.address else { continue };
        let held = match ip {
            std::net::IpAddr::V4(v4) => sa.as_sockaddr_in().map(|s| s.ip() == v4),
            std::net::IpAddr::V6(v6) => sa.as_sockaddr_in6().map(|s| s.ip() == v6),
        };
        if held == Some(true) {
            return Some(a.interface_name);
        }
    }
    None
}

/// The agent's listener: bound to `addr` and, unless that is the
/// unspecified address, also to the interface holding it
/// (`SO_BINDTODEVICE`): the kernel then answers a SYN for the management IP
/// that came in on any other NIC (a tenant's, the outside's) with a reset,
/// whatever the nft ruleset says or whether it exists.
pub fn bind_listener(
    addr: SocketAddr,
) -> anyhow::Result<(tokio::net::TcpListener, Option<String>)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let device = if addr.ip().is_unspecified() {
        None
    } else {
        Some(device_of(addr.ip()).ok_or_else(|| {
            anyhow::anyhow!("listen address {addr}: no interface holds {}", addr.ip())
        })?)
    };
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    if let Some(dev) = &device {
        use nix::sys::socket::{setsockopt, sockopt::BindToDevice};
        setsockopt(&sock, BindToDevice, &std::ffi::OsString::from(dev)).map_err(|e| {
            anyhow::anyhow!("listen address {addr}: cannot bind to device {dev}: {e}")
        })?;
    }
    sock.bind(&addr.into())
        .map_err(|e| anyhow::anyhow!("listen address {addr}: {e}"))?;
    sock.listen(1024)?;
    sock.set_nonblocking(true)?;
    let std: std::net::TcpListener = sock.into();
    Ok((tokio::net::TcpListener::from_std(std)?, device))
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
        // Neither bootstrap nor --listen: loopback, never every NIC.
        assert_eq!(listen_addr(None, None).to_string(), "127.0.0.1:7272");
        // A persisted management NIC with another address is forgotten
        // before the bootstrap info configures it.
        let mut m = Model::default();
        let mut old = nics[0].clone();
        old.ip = Some(("10.0.0.99".parse().unwrap(), 24));
        m.apply(&Edit::ConfigureNics(vec![old.clone()])).unwrap();
        let (pre, named) = prelude(&info, &m);
        assert_eq!(pre, vec![Edit::ForgetNics(vec![old.mac])], "{named:?}");
        let (pre, _) = prelude(&info, &{
            let mut m = Model::default();
            m.apply(&Edit::ConfigureNics(vec![nics[0].clone()]))
                .unwrap();
            m
        });
        assert!(pre.is_empty());
    }
}
