//! The VR wire types (common::vr) through common's decode, then vr-agent's
//! wire -> model conversions (its public API only), as the routes do.
#![no_main]

use common::vr::*;
use libfuzzer_sys::fuzz_target;
use vr_model::{dhcp, dns, from_wire, lb};

include!("common_check.rs");

const PATHS: &[&str] = &[
    "/echo",
    "/init",
    "/configurenic",
    "/changeDefaultNic",
    "/setsnat",
    "/removesnat",
    "/syncsnat",
    "/setsnatservicestate",
    "/createvip",
    "/removevip",
    "/createportforwarding",
    "/createeip",
    "/synceip",
    "/adddhcp",
    "/removedhcp",
    "/refreshDhcpServer",
    "/setdns",
    "/setvpcdns",
    "/lb/refresh",
    "/lb/log/level",
    "/certificate/create",
    "/certificates/create",
    "/bootstrap",
];

fuzz_target!(|data: &[u8]| {
    let (path, body) = split(data);
    match pick(path, PATHS) {
        0 => drop(check::<serde_json::Value>(body)),
        1 => {
            if let Some(c) = check::<InitCmd>(body) {
                let _ = from_wire::mgmt_cidr("mgtCidr", &c.mgt_cidr);
            }
        }
        2 => {
            if let Some(c) = check::<NicsCmd>(body) {
                let _ = from_wire::nics(&c.nics);
                let _ = from_wire::nic_macs(&c.nics);
                let _ = from_wire::default_actions(&c.nics);
            }
        }
        3 => {
            if let Some(c) = check::<ChangeDefaultNicCmd>(body) {
                let _ = from_wire::change_default_nic(&c);
            }
        }
        4 => {
            if let Some(c) = check::<SetSnatCmd>(body) {
                let _ = from_wire::snat("snat", &c.snat);
            }
        }
        5 => {
            if let Some(c) = check::<RemoveSnatCmd>(body) {
                let _ = from_wire::snats("natInfo", &c.nat_info);
            }
        }
        6 => {
            if let Some(c) = check::<SyncSnatCmd>(body) {
                let _ = from_wire::snats("snats", &c.snats);
            }
        }
        7 => drop(check::<SetSnatServiceStateCmd>(body)),
        8 => {
            if let Some(c) = check::<CreateVipCmd>(body) {
                let _ = from_wire::vips(&c.vips);
                let _ = from_wire::nic_ips(&c.nic_ips);
            }
        }
        9 => {
            if let Some(c) = check::<RemoveVipCmd>(body) {
                let _ = from_wire::vip_ips(&c.vips);
            }
        }
        10 => {
            if let Some(c) = check::<PortForwardingCmd>(body) {
                let _ = from_wire::port_forwards(&c.rules);
            }
        }
        11 => {
            if let Some(c) = check::<EipCmd>(body) {
                let _ = from_wire::eip("eip", &c.eip);
            }
        }
        12 => {
            if let Some(c) = check::<SyncEipCmd>(body) {
                let _ = from_wire::eips(&c.eips);
            }
        }
        13 => {
            if let Some(c) = check::<AddDhcpCmd>(body) {
                let _ = dhcp::entries(&c.dhcp_entries);
                let _ = dhcp::entry_keys(&c.dhcp_entries);
            }
        }
        14 => {
            if let Some(c) = check::<RemoveDhcpCmd>(body) {
                let _ = dhcp::entry_keys(&c.dhcp_entries);
            }
        }
        15 => {
            if let Some(c) = check::<DhcpServersCmd>(body) {
                let _ = dhcp::servers(&c);
                let _ = dhcp::server_macs(&c);
            }
        }
        16 => {
            if let Some(c) = check::<DnsCmd>(body) {
                let _ = dns::dns(&c);
            }
        }
        17 => {
            if let Some(c) = check::<SetVpcDnsCmd>(body) {
                let _ = dns::vpc_dns(&c);
            }
        }
        18 => {
            if let Some(c) = check::<LbCmd>(body) {
                let _ = lb::listeners(&c.lbs);
                let _ = lb::listener_uuids(&c.lbs);
            }
        }
        19 => {
            if let Some(c) = check::<LbLogLevelCmd>(body) {
                let _ = lb::log_level(&c.level);
            }
        }
        20 => drop(check::<CertificateCmd>(body)),
        21 => drop(check::<CertificatesCmd>(body)),
        _ => drop(check::<BootstrapInfo>(body)),
    }
});
