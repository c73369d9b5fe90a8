//! The protocol notes' command bodies (reference section 4, F1-F11, and a
//! dual-stack `/createvip`) as JSON files in `testdata/`: one copy, read by
//! the unit tests here and in vr-agent and by vr-agent's integration tests
//! (feature `fixtures`). The node's own bodies, taken from its Java code,
//! are the conformance suite's (`conformance/`).

/// `/init`.
pub const F1: &str = include_str!("../testdata/F1-init.json");
/// `/ping`.
pub const F2: &str = include_str!("../testdata/F2-ping.json");
/// `/configurenic`.
pub const F3: &str = include_str!("../testdata/F3-configurenic.json");
/// `/refreshDhcpServer`.
pub const F4: &str = include_str!("../testdata/refreshDhcpServer.json");
/// `/adddhcp`.
pub const F5: &str = include_str!("../testdata/addDhcp.json");
/// `/setdns`.
pub const F6: &str = include_str!("../testdata/setDns.json");
/// `/syncsnat`.
pub const F7: &str = include_str!("../testdata/F7-syncsnat.json");
/// `/createvip`.
pub const F8: &str = include_str!("../testdata/F8-createvip.json");
/// `/createportforwarding`, `/syncportforwarding`, `/revokeportforwarding`.
pub const F9: &str = include_str!("../testdata/F9-portforwarding.json");
/// `/createeip`, `/removeeip`.
pub const F10_ONE: &str = include_str!("../testdata/F10-createeip.json");
/// `/synceip`.
pub const F10_SYNC: &str = include_str!("../testdata/F10-synceip.json");
/// `/lb/refresh`.
pub const F11: &str = include_str!("../testdata/F11-lb-refresh.json");
/// `VirtualRouterSyncVipFlow` on a dual-stack router: every VIP in one
/// `/createvip`, the IPv6 one as `VipTO.valueOf` makes it (ip6, no ip),
/// and the IPv6-only NIC's address among `nicIps`.
pub const SYNC_VIP_DUAL_STACK: &str = include_str!("../testdata/createvip-dual-stack.json");
