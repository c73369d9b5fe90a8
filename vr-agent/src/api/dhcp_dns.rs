//! DHCP and DNS: `/adddhcp`, `/refreshDhcpServer`, `/setdns` and the rest.

use common::agent::{ApiError, Ok};
use common::vr;
use vr_model::dhcp::{self, DhcpEdit};
use vr_model::{Edit, checks, dns};

use super::{AppState, bad, bounded, submit};

pub(super) async fn add_dhcp(s: AppState, c: vr::AddDhcpCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    let entries = dhcp::entries(&c.dhcp_entries).map_err(bad)?;
    checks::dhcp_entries("dhcpEntries", &entries).map_err(bad)?;
    submit(
        &s,
        Edit::Dhcp(DhcpEdit::Add {
            entries,
            rebuild: c.rebuild,
        }),
    )
    .await
}

pub(super) async fn remove_dhcp(s: AppState, c: vr::RemoveDhcpCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    let keys = dhcp::entry_keys(&c.dhcp_entries).map_err(bad)?;
    submit(&s, Edit::Dhcp(DhcpEdit::Remove(keys))).await
}

pub(super) async fn refresh_dhcp(s: AppState, c: vr::DhcpServersCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    let servers = dhcp::servers(&c).map_err(bad)?;
    checks::dhcp_servers(&servers).map_err(bad)?;
    submit(&s, Edit::Dhcp(DhcpEdit::Refresh(servers))).await
}

pub(super) async fn start_dhcp(s: AppState, c: vr::DhcpServersCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    let servers = dhcp::servers(&c).map_err(bad)?;
    checks::dhcp_servers(&servers).map_err(bad)?;
    submit(&s, Edit::Dhcp(DhcpEdit::Start(servers))).await
}

pub(super) async fn stop_dhcp(s: AppState, c: vr::DhcpServersCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    let macs = dhcp::server_macs(&c).map_err(bad)?;
    submit(&s, Edit::Dhcp(DhcpEdit::Stop(macs))).await
}

pub(super) async fn set_dns(s: AppState, c: vr::DnsCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    let cfg = dns::dns(&c).map_err(bad)?;
    submit(&s, Edit::Dhcp(DhcpEdit::SetDns(cfg))).await
}

pub(super) async fn remove_dns(s: AppState, c: vr::DnsCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    let cfg = dns::dns(&c).map_err(bad)?;
    submit(&s, Edit::Dhcp(DhcpEdit::RemoveDns(cfg.upstreams))).await
}

pub(super) async fn set_vpc_dns(s: AppState, c: vr::SetVpcDnsCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    let cfg = dns::vpc_dns(&c).map_err(bad)?;
    submit(&s, Edit::Dhcp(DhcpEdit::SetDns(cfg))).await
}
