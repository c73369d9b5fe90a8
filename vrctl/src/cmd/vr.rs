//! `vrctl vr`: a router's agent from its description (apply, diff,
//! status, a raw call); the VM lifecycle commands are in `vr_vm`.

use anyhow::Result;
use serde_json::{Value, json};
use vrctl::cli::{Args, VrCmd};
use vrctl::client::Client;
use vrctl::exit::{Exit, coded};
use vrctl::spec::{RouterSpec, diff};

use super::{client, credentials, fill_node_address, handshake};

pub async fn run(args: &Args, cmd: &VrCmd) -> Result<Exit> {
    match cmd {
        VrCmd::Create { file }
        | VrCmd::Start { file, .. }
        | VrCmd::Stop { file, .. }
        | VrCmd::Reboot { file }
        | VrCmd::Destroy { file }
        | VrCmd::Recreate { file }
        | VrCmd::Sync { file, .. }
        | VrCmd::Console { file }
        | VrCmd::RotateCert { file } => super::vr_vm::run(args, cmd, file).await.map(|_| Exit::Ok),
        VrCmd::Apply { file } => {
            let mut spec = RouterSpec::load(file)?;
            fill_node_address(&mut spec);
            spec.desired()?; // refuse a bad file before touching the router
            let c = client(args, &spec.agent_url()?).await?;
            let version = handshake(&c).await?;
            if !args.json {
                println!("agent {} version {version}", c.base());
            }
            let json = args.json;
            let steps = vrctl::router::apply(&c, &spec, |s| {
                if !json {
                    match &s.error {
                        None => println!("  ok    {:<22} {:>6} ms", s.path, s.ms),
                        Some(e) => println!("  FAIL  {:<22} {:>6} ms  {e}", s.path, s.ms),
                    }
                }
            })
            .await;
            let done = json!({"agent": c.base(), "version": version, "steps": steps});
            if let Some(s) = steps.iter().find(|s| !s.ok) {
                // With --json the steps are in the error document.
                return Err(vrctl::exit::Coded {
                    exit: Exit::AgentFailed,
                    message: format!(
                        "apply stopped at {}: {}",
                        s.path,
                        s.error.as_deref().unwrap_or("")
                    ),
                    detail: done,
                }
                .into());
            }
            if args.json {
                println!("{done}");
            }
            Ok(Exit::Ok)
        }
        VrCmd::Diff { file } => {
            let spec = RouterSpec::load(file)?;
            let want = spec.desired()?;
            let c = Client::with(&spec.agent_url()?, None, &credentials(args)?);
            let state: Value = serde_json::from_str(&c.get("/state").await?).map_err(|e| {
                coded(
                    Exit::AgentFailed,
                    format!("{}/state is not JSON: {e}", c.base()),
                )
            })?;
            let have = serde_json::from_value(state["model"].clone())
                .map_err(|e| coded(Exit::AgentFailed, format!("{}/state model: {e}", c.base())))?;
            let changes = diff(&have, &want);
            if args.json {
                println!("{}", json!({"agent": c.base(), "changes": changes}));
            } else if changes.is_empty() {
                println!("no changes");
            } else {
                for ch in &changes {
                    println!("{} {:<13} {}", ch.op, ch.section, ch.key);
                }
            }
            // Like diff(1): 1 when there are differences.
            Ok(if changes.is_empty() {
                Exit::Ok
            } else {
                Exit::No
            })
        }
        VrCmd::Status { agent, file } => super::vr_status::run(args, agent, file).await,
        VrCmd::Demote { file } => {
            let spec = RouterSpec::load(file)?;
            let peer = vrctl::router::peer_agent(&spec)?;
            let me = client(args, &spec.agent_url()?).await?;
            let peer = client(args, &peer).await?;
            // Exit by cause: 69 when a half is not Master, the client's
            // own codes when an agent cannot be reached or refuses.
            let d = vrctl::router::demote(&me, &peer).await?;
            if args.json {
                println!("{}", serde_json::to_string(&d)?);
            } else {
                println!(
                    "{}: keepalived restarted, now {}; the peer {} is {}",
                    me.base(),
                    d.now,
                    peer.base(),
                    d.peer
                );
            }
            Ok(Exit::Ok)
        }
        VrCmd::Call { agent, path, body } => {
            let body: Value = serde_json::from_str(body)
                .map_err(|e| coded(Exit::BadInput, format!("the body must be JSON: {e}")))?;
            let c = client(args, agent).await?;
            let r = c.call(path, &body).await?;
            if args.json {
                println!("{r}");
            } else {
                println!("{}", serde_json::to_string_pretty(&r)?);
            }
            Ok(Exit::Ok)
        }
    }
}
