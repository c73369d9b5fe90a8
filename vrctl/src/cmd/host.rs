//! `vrctl host`: one compute-host command (connect, bridges, capacity).

use std::time::Instant;

use anyhow::Result;
use common::command::Command;
use common::kvm::{CheckVlanBridgeCmd, ConnectCmd, CreateVlanBridgeCmd, DeleteVlanBridgeCmd};
use serde_json::{Value, json};
use vrctl::cli::{Args, HostCmd};
use vrctl::client::{Client, body};
use vrctl::exit::Exit;
use vrctl::host;

use super::{credentials, host_client};

/// A bridge command under its VLAN path (`l2vlan`, the same body wrapped)
/// or its plain one (`l2novlan`), with its body.
fn under_vlan_path<C: Command, V: Command>(
    cmd: C,
    vlan: bool,
    wrap: impl FnOnce(C) -> V,
) -> (&'static str, Value) {
    if vlan {
        (V::PATH, body(&wrap(cmd)))
    } else {
        (C::PATH, body(&cmd))
    }
}

pub async fn run(args: &Args, agent: &str, cmd: &HostCmd) -> Result<Exit> {
    // `KVMHost` sends `/host/connect` with `syncJsonPost`.
    let c = match cmd {
        HostCmd::Connect { uuid, .. } => Client::host_with(agent, None, uuid, &credentials(args)?),
        _ => host_client(args, agent).await?,
    };
    let (path, body) = match cmd {
        HostCmd::Connect {
            uuid,
            send_command_url,
        } => (
            ConnectCmd::PATH,
            body(&host::connect_cmd(uuid, send_command_url)),
        ),
        HostCmd::Bridge {
            nic,
            bridge,
            vlan,
            check,
            delete,
        } => {
            // The L2 network's uuid: the bridge name in hex (stable per bridge).
            let hex: String = bridge.bytes().map(|b| format!("{b:02x}")).collect();
            let l2 = format!("{:0<32}", &hex[..hex.len().min(32)]);
            let vlan_path = vlan.is_some();
            if *check {
                let cmd = host::check_bridge_cmd(nic, bridge, *vlan);
                under_vlan_path(cmd, vlan_path, CheckVlanBridgeCmd)
            } else if *delete {
                let cmd = host::delete_bridge_cmd(nic, bridge, &l2, *vlan);
                under_vlan_path(cmd, vlan_path, DeleteVlanBridgeCmd)
            } else {
                let cmd = host::create_bridge_cmd(nic, bridge, &l2, 1500, *vlan);
                under_vlan_path(cmd, vlan_path, CreateVlanBridgeCmd)
            }
        }
        HostCmd::Capacity => ("/host/capacity", json!({})),
    };
    let t = Instant::now();
    let reply = c.call(path, &body).await?;
    if args.json {
        println!("{reply}");
    } else {
        println!("ok  {path}  ({} ms)", t.elapsed().as_millis());
        if let Some(o) = reply.as_object() {
            for (k, v) in o.iter().filter(|(k, _)| *k != "success" && *k != "error") {
                println!("  {k:<22} {v}");
            }
        }
    }
    Ok(Exit::Ok)
}
