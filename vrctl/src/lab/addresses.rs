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

/// `lab up --ha`: the second compute host and the pair's second router,
/// whose NICs hold the same addresses as the first's but its management
/// NIC (the heartbeat).
pub const HOST2_IP: &str = "10.0.0.22";
pub const KVM2: &str = "http://10.0.0.22:7070";
pub const HOST2_UUID: &str = "1ab0000000000000000000000000c002";
pub const VR2_UUID: &str = "1ab0000000000000000000000000a002";
pub const VR2_MGMT_IP: &str = "10.0.0.26";
pub const VR2_AGENT: &str = "http://10.0.0.26:7272";
pub const MGMT2_MAC: &str = "52:54:00:7e:01:01";
pub const PRIV2_MAC: &str = "52:54:00:7e:01:02";
pub const PUB2_MAC: &str = "52:54:00:7e:01:03";
/// The pair's own address on the public network (`[ha].vips`: keepalived
/// holds it on the master beside the NICs' shared addresses).
pub const HA_VIP: &str = "172.20.10.9";
/// The TCP sessions a failover must keep: tenant -> OUTSIDE_IP:ECHO_PORT
/// through SNAT, and VIP_PF:ECHO_PORT -> web-01:ECHO_PORT, a port forward
/// the pair has besides the lab's 8080.
pub const ECHO_PORT: u16 = 9001;
