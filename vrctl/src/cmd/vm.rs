//! `vrctl vm`: one kvm-agent VM command by hand.

use std::time::Instant;

use anyhow::Result;
use common::command::Command;
use common::kvm::vm::{
    ConsoleTailCmd, DestroyVmCmd, RebootVmCmd, SetBootstrapInfoCmd, StartVmCmd, StopVmCmd,
    VmSyncCmd,
};
use serde_json::json;
use vrctl::cli::{Args, VmCmd};
use vrctl::client::body;
use vrctl::exit::Exit;
use vrctl::host;

use super::{console_text, host_client, read_json};

pub async fn run(args: &Args, agent: &str, cmd: &VmCmd) -> Result<Exit> {
    let (path, body) = match cmd {
        VmCmd::Start { file } => (StartVmCmd::PATH, read_json(file)?),
        VmCmd::Bootstrap {
            socket,
            timeout,
            file,
        } => (
            SetBootstrapInfoCmd::PATH,
            json!({"socketPath": socket, "bootStrapInfoTimeout": timeout, "info": read_json(file)?}),
        ),
        VmCmd::Stop {
            uuid,
            r#type,
            timeout,
        } => (
            StopVmCmd::PATH,
            body(&host::stop_vm_cmd(uuid, r#type.wire(), *timeout)),
        ),
        VmCmd::Reboot { uuid } => (RebootVmCmd::PATH, body(&host::reboot_vm_cmd(uuid, 120))),
        VmCmd::Destroy { uuid } => (DestroyVmCmd::PATH, body(&host::destroy_vm_cmd(uuid))),
        VmCmd::Sync => (VmSyncCmd::PATH, body(&host::vm_sync_cmd())),
        VmCmd::Console { uuid, bytes } => (
            ConsoleTailCmd::PATH,
            body(&ConsoleTailCmd {
                uuid: uuid.clone(),
                max_bytes: Some(*bytes),
            }),
        ),
    };
    let c = host_client(args, agent).await?;
    let t = Instant::now();
    let mut reply = c.call(path, &body).await?;
    if let Some(tail) = reply["tail"].as_str() {
        reply["tail"] = json!(console_text(tail));
    }
    if args.json {
        println!("{reply}");
        return Ok(Exit::Ok);
    }
    match cmd {
        VmCmd::Sync => {
            let states = reply["states"].as_object().cloned().unwrap_or_default();
            println!("{:<34} state", "vm");
            for (uuid, state) in states {
                println!("{uuid:<34} {}", state.as_str().unwrap_or(""));
            }
        }
        VmCmd::Console { .. } => print!("{}", reply["tail"].as_str().unwrap_or("")),
        _ => println!("ok  {path}  ({} ms)", t.elapsed().as_millis()),
    }
    Ok(Exit::Ok)
}
