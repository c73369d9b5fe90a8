//! One module per subcommand; `main.rs` parses the arguments and hands
//! them here. The helpers below are what several subcommands share: the
//! agents' clients (callback receiver, credentials), the handshake, and
//! reading a description or a body file.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use serde_json::Value;
use vrctl::cli::Args;
use vrctl::client::{CallbackReceiver, Client, local_addr_towards};
use vrctl::credentials::{CredentialFiles, Credentials};
use vrctl::diagnose;
use vrctl::exit::{Exit, coded};
use vrctl::spec::RouterSpec;

pub mod docs;
pub mod host;
pub mod lab;
pub mod vm;
pub mod vr;
pub mod vr_status;
pub mod vr_vm;
pub mod watch;

/// The callback receiver for commands to `url` (None in sync mode): it
/// listens on `--callback-bind`, and agents are told this host's address
/// towards `url`.
pub async fn receiver(args: &Args, url: &str) -> Result<Option<Arc<CallbackReceiver>>> {
    if args.sync {
        return Ok(None);
    }
    let host = url
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .split([':', '/'])
        .next()
        .unwrap_or("");
    let ip: IpAddr = host
        .parse()
        .map_err(|_| coded(Exit::BadInput, format!("{url:?} must be http://IP:PORT")))?;
    let me = local_addr_towards(ip)
        .ok_or_else(|| coded(Exit::AgentFailed, format!("no route to {ip}")))?;
    Ok(Some(Arc::new(
        CallbackReceiver::start(args.callback_bind, me).await?,
    )))
}

/// What vrctl presents to the agents (the global options).
pub fn credentials(args: &Args) -> Result<Credentials> {
    let mut files = CredentialFiles {
        ca: args.ca.clone(),
        cert: args.cert.clone(),
        key: args.key.clone(),
        token_file: args.token_file.clone(),
    };
    if let Some(dir) = &args.pki_dir {
        files = files.with_pki_dir(dir);
    }
    Ok(Credentials::load(&files)?)
}

pub async fn client(args: &Args, agent: &str) -> Result<Client> {
    Ok(Client::with(
        agent,
        receiver(args, agent).await?,
        &credentials(args)?,
    ))
}

/// A client for a host's kvm-agent (async bodies carry `kvmHostAddons`).
pub async fn host_client(args: &Args, agent: &str) -> Result<Client> {
    Ok(Client::host_with(
        agent,
        receiver(args, agent).await?,
        "",
        &credentials(args)?,
    ))
}

/// The handshake (sync, short timeouts), with a diagnosis when the agent
/// is not usable.
pub async fn handshake(c: &Client) -> Result<String> {
    let p = diagnose::probe(c.base(), c.credentials()).await;
    Ok(diagnose::verdict_now(c.base(), p)?)
}

/// The management node's address and network as `Platform` finds them
/// (`getManagementServerIp`, `getManagementServerCidr`: the address of this
/// machine and the network of the interface that carries it), for a
/// description that does not name them: this host's address towards the
/// router's management IP, and its prefix from `ip -o -4 addr`.
pub fn fill_node_address(spec: &mut RouterSpec) {
    let Some(mgmt) = spec
        .management_nic()
        .and_then(|n| n.ip.as_deref())
        .and_then(|ip| ip.parse::<IpAddr>().ok())
    else {
        return;
    };
    let Some(me) = local_addr_towards(mgmt) else {
        return;
    };
    if let Some(vm) = spec.vm.as_mut().filter(|v| v.management_node_ip.is_none()) {
        vm.management_node_ip = Some(me.to_string());
    }
    if spec.management_node_cidr.is_none() {
        spec.management_node_cidr = own_cidr(me);
    }
}

/// The network (`a.b.c.0/len`) of the local interface address `me`.
fn own_cidr(me: IpAddr) -> Option<String> {
    let IpAddr::V4(me) = me else { return None };
    let out = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix: u32 = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{me}/")).map(str::to_string))?
        .parse()
        .ok()?;
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    let net = std::net::Ipv4Addr::from(u32::from(me) & mask);
    Some(format!("{net}/{prefix}"))
}

pub fn read_json(file: &PathBuf) -> Result<Value> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| coded(Exit::NoInput, format!("reading {}: {e}", file.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        coded(
            Exit::BadInput,
            format!("{} is not JSON: {e}", file.display()),
        )
    })
}

/// Console text as text: terminal escapes (a log line's colours) and other
/// control characters but newlines and tabs removed.
pub fn console_text(tail: &str) -> String {
    common::text::strip_ansi(tail)
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Platform.getManagementServerCidr`: the network of the interface
    /// that carries the address (loopback is always there).
    #[test]
    fn own_cidr_is_the_network_of_the_address() {
        assert_eq!(
            own_cidr("127.0.0.1".parse().unwrap()).as_deref(),
            Some("127.0.0.0/8")
        );
        assert_eq!(own_cidr("192.0.2.77".parse().unwrap()), None);
    }
}
