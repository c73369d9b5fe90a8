//! The lab's addresses and identities (the picture is in `layout`).

pub const TENANT1_MAC: &str = "fa:a1:5e:12:34:56";
pub const TENANT2_MAC: &str = "fa:a1:5e:00:00:20";
pub const MGMT_MAC: &str = "52:54:00:7e:00:01";
pub const PRIV_MAC: &str = "52:54:00:7e:00:02";
pub const PUB_MAC: &str = "52:54:00:7e:00:03";
pub const VR_UUID: &str = "1ab0000000000000000000000000a001";
pub const HOST_UUID: &str = "1ab0000000000000000000000000c001";

/// The management node (vrctl) and its subnet.
pub const MN_IP: &str = "10.1.0.10";
pub const MN_CIDR: &str = "10.1.0.0/24";
/// The management gateway: towards the node, and on the management network.
pub const MGW_MN_IP: &str = "10.1.0.1";
pub const MGMT_GW: &str = "10.0.0.1";
pub const HOST_IP: &str = "10.0.0.21";
pub const KVM: &str = "http://10.0.0.21:7070";
pub const VR_MGMT_IP: &str = "10.0.0.25";
pub const VR_AGENT: &str = "http://10.0.0.25:7272";
/// The public network: the outside's address is the public gateway.
pub const OUTSIDE_IP: &str = "172.20.0.1";
pub const VR_PUB_IP: &str = "172.20.10.5";
pub const VIP_PF: &str = "172.20.10.100";
pub const VIP_EIP: &str = "172.20.10.101";
pub const VIP_LB: &str = "172.20.10.102";
