use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use vrctl::client::{CallbackReceiver, Client, local_addr_towards};
use vrctl::spec::{RouterSpec, diff};

/// Plays the cloud controller against vr-agent with the real protocol.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Sync mode: replies in the HTTP response instead of on a callback.
    #[arg(long, global = true)]
    sync: bool,
    /// Where the callback receiver listens (port 0: any); the agent is told
    /// this host's address towards it.
    #[arg(long, global = true, default_value = "0.0.0.0:0")]
    callback_bind: SocketAddr,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// A virtual router's agent.
    Vr {
        #[command(subcommand)]
        cmd: VrCmd,
    },
    /// VMs on a compute host, through its kvm-agent.
    Vm {
        /// The host's agent, e.g. http://10.0.0.21:7070.
        #[arg(long)]
        agent: String,
        #[command(subcommand)]
        cmd: VmCmd,
    },
    /// A compute host's kvm-agent.
    Host {
        /// The host's agent, e.g. http://10.0.0.21:7070.
        #[arg(long)]
        agent: String,
        #[command(subcommand)]
        cmd: HostCmd,
    },
}

#[derive(Subcommand)]
enum VmCmd {
    /// Start a VM from a StartVmCmd body (JSON, the protocol's fields).
    Start { file: PathBuf },
    /// Push bootstrap info (JSON) into a VR's channel socket.
    Bootstrap {
        #[arg(long)]
        socket: String,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        file: PathBuf,
    },
    /// Stop a VM: grace (ACPI, then destroy), cold or force.
    Stop {
        #[arg(long)]
        uuid: String,
        #[arg(long, default_value = "grace")]
        r#type: String,
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    Reboot {
        #[arg(long)]
        uuid: String,
    },
    Destroy {
        #[arg(long)]
        uuid: String,
    },
    /// The real state of every VM on the host.
    Sync,
    /// The tail of a VM's serial console log.
    Console {
        #[arg(long)]
        uuid: String,
        #[arg(long, default_value_t = 4096)]
        bytes: u64,
    },
}

#[derive(Subcommand)]
enum HostCmd {
    /// Connect the host (it reports VM events to `--send-command-url`).
    Connect {
        #[arg(long)]
        uuid: String,
        #[arg(long, default_value = "")]
        send_command_url: String,
    },
    /// Put a bridge over a NIC (the NIC's addresses and routes move onto it).
    Bridge {
        #[arg(long)]
        nic: String,
        #[arg(long)]
        bridge: String,
        #[arg(long)]
        vlan: Option<u16>,
        /// Check the bridge instead of creating it.
        #[arg(long, conflicts_with = "delete")]
        check: bool,
        /// Delete the bridge, putting the NIC's addresses back.
        #[arg(long)]
        delete: bool,
    },
    /// What the host has free for VMs.
    Capacity,
}

#[derive(Subcommand)]
enum VrCmd {
    /// Put a router description on the router, in the controller's resync order.
    Apply { file: PathBuf },
    /// What `apply` would change.
    Diff { file: PathBuf },
    /// Is the agent up, which version, is it initialised, what does it hold.
    Status {
        #[arg(long)]
        agent: String,
    },
    /// Send one raw command, e.g. `vrctl vr call --agent URL /createeip '{"eip":{...}}'`.
    Call {
        #[arg(long)]
        agent: String,
        path: String,
        #[arg(default_value = "{}")]
        body: String,
    },
}

async fn client(args: &Args, agent: &str) -> Result<Client> {
    if args.sync {
        return Ok(Client::new(agent, None));
    }
    let host = agent
        .trim_start_matches("http://")
        .split([':', '/'])
        .next()
        .unwrap_or("");
    let ip: IpAddr = host
        .parse()
        .with_context(|| format!("agent {agent:?} must be http://IP:PORT"))?;
    let me =
        local_addr_towards(ip).with_context(|| format!("no route to the agent's address {ip}"))?;
    let rx = CallbackReceiver::start(args.callback_bind, me).await?;
    Ok(Client::new(agent, Some(rx)))
}

/// The handshake: `/echo`, then the version the agent reports.
async fn handshake(c: &Client) -> Result<String> {
    c.call("/echo", &json!({}))
        .await
        .context("agent does not answer /echo")?;
    let v = c
        .call("/test", &json!({}))
        .await
        .context("agent has no /test: not a vr-agent, or too old")?;
    let version = v["zvrVersion"].as_str().unwrap_or("").to_string();
    if version
        .split('.')
        .filter(|p| p.parse::<u32>().is_ok())
        .count()
        != 4
    {
        bail!("agent reports version {version:?}, not the 4-part version the controller needs");
    }
    Ok(version)
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VRCTL_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match &args.cmd {
        Cmd::Vr { cmd } => vr(&args, cmd).await,
        Cmd::Host { agent, cmd } => host(&args, agent, cmd).await,
        Cmd::Vm { agent, cmd } => vm(&args, agent, cmd).await,
    }
}

fn read_json(file: &PathBuf) -> Result<Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))
}

async fn vm(args: &Args, agent: &str, cmd: &VmCmd) -> Result<()> {
    let (path, body) = match cmd {
        VmCmd::Start { file } => ("/vm/start", read_json(file)?),
        VmCmd::Bootstrap {
            socket,
            timeout,
            file,
        } => (
            "/appliancevm/setbootstrapinfo",
            json!({"socketPath": socket, "bootStrapInfoTimeout": timeout, "info": read_json(file)?}),
        ),
        VmCmd::Stop {
            uuid,
            r#type,
            timeout,
        } => (
            "/vm/stop",
            json!({"uuid": uuid, "type": r#type, "timeout": timeout}),
        ),
        VmCmd::Reboot { uuid } => ("/vm/reboot", json!({"uuid": uuid})),
        VmCmd::Destroy { uuid } => ("/vm/destroy", json!({"uuid": uuid})),
        VmCmd::Sync => ("/vm/vmsync", json!({})),
        VmCmd::Console { uuid, bytes } => {
            ("/vm/console/tail", json!({"uuid": uuid, "maxBytes": bytes}))
        }
    };
    let c = client(args, agent).await?;
    let t = Instant::now();
    let reply = c.call(path, &body).await?;
    if args.json {
        println!("{reply}");
        return Ok(());
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
    Ok(())
}

async fn host(args: &Args, agent: &str, cmd: &HostCmd) -> Result<()> {
    let c = client(args, agent).await?;
    let (path, body) = match cmd {
        HostCmd::Connect {
            uuid,
            send_command_url,
        } => (
            "/host/connect".to_string(),
            json!({"hostUuid": uuid, "sendCommandUrl": send_command_url}),
        ),
        HostCmd::Bridge {
            nic,
            bridge,
            vlan,
            check,
            delete,
        } => {
            let kind = if vlan.is_some() { "l2vlan" } else { "l2novlan" };
            let verb = if *check {
                "checkbridge"
            } else if *delete {
                "deletebridge"
            } else {
                "createbridge"
            };
            (
                format!("/network/{kind}/{verb}"),
                json!({"physicalInterfaceName": nic, "bridgeName": bridge, "vlan": vlan}),
            )
        }
        HostCmd::Capacity => ("/host/capacity".to_string(), json!({})),
    };
    let t = Instant::now();
    let reply = c.call(&path, &body).await?;
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
    Ok(())
}

async fn vr(args: &Args, cmd: &VrCmd) -> Result<()> {
    match cmd {
        VrCmd::Apply { file } => {
            let spec = RouterSpec::load(file)?;
            spec.desired()?; // refuse a bad file before touching the router
            let c = client(args, &spec.agent).await?;
            let version = handshake(&c).await?;
            if !args.json {
                println!("agent {} version {version}", c.base());
            }
            let mut report = vec![];
            for (path, body) in spec.commands() {
                let t = Instant::now();
                let r = c.call(path, &body).await;
                let ms = t.elapsed().as_millis();
                let ok = r.is_ok();
                if !args.json {
                    match &r {
                        Ok(_) => println!("  ok    {path:<22} {ms:>6} ms"),
                        Err(e) => println!("  FAIL  {path:<22} {ms:>6} ms  {e}"),
                    }
                }
                report.push(json!({"path": path, "ok": ok, "ms": ms, "error": r.err().map(|e| e.to_string())}));
                if !ok {
                    break;
                }
            }
            let failed = report.iter().any(|r| r["ok"] == false);
            if args.json {
                println!(
                    "{}",
                    json!({"agent": c.base(), "version": version, "steps": report})
                );
            }
            if failed {
                bail!("apply stopped at the first failed command");
            }
            Ok(())
        }
        VrCmd::Diff { file } => {
            let spec = RouterSpec::load(file)?;
            let want = spec.desired()?;
            let c = Client::new(&spec.agent, None);
            let state: Value = serde_json::from_str(&c.get("/state").await?)?;
            let have =
                serde_json::from_value(state["model"].clone()).context("agent's /state model")?;
            let changes = diff(&have, &want);
            if args.json {
                println!("{}", serde_json::to_string(&changes)?);
            } else if changes.is_empty() {
                println!("no changes");
            } else {
                for ch in &changes {
                    println!("{} {:<13} {}", ch.op, ch.section, ch.key);
                }
            }
            Ok(())
        }
        VrCmd::Status { agent } => {
            let c = client(args, agent).await?;
            let version = handshake(&c).await?;
            let ping = c.call("/ping", &json!({})).await?;
            let state: Value = serde_json::from_str(&c.get("/state").await?)?;
            let count = |k: &str| state["model"][k].as_object().map_or(0, |o| o.len());
            let summary = json!({
                "agent": agent, "version": version,
                "uuid": ping["uuid"], "healthy": ping["healthy"],
                "generation": state["generation"],
                "nics": count("nics"), "snats": count("snats"), "vips": count("vips"),
                "port_forwards": count("port_forwards"), "eips": count("eips"),
                "dhcp_entries": state["model"]["dhcp"]["entries"].as_array().map_or(0, |a| a.len()),
            });
            if args.json {
                println!("{summary}");
            } else {
                let uuid = ping["uuid"].as_str().unwrap_or("");
                println!("agent       {agent}  (version {version})");
                println!(
                    "initialised {}",
                    if uuid.is_empty() {
                        "no: /ping uuid is empty, the controller must resync".into()
                    } else {
                        format!("yes, uuid {uuid}")
                    }
                );
                for k in [
                    "generation",
                    "nics",
                    "snats",
                    "vips",
                    "port_forwards",
                    "eips",
                    "dhcp_entries",
                ] {
                    println!("{k:<12}{}", summary[k]);
                }
            }
            Ok(())
        }
        VrCmd::Call { agent, path, body } => {
            let body: Value = serde_json::from_str(body).context("body must be JSON")?;
            let c = client(args, agent).await?;
            let r = c.call(path, &body).await?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            Ok(())
        }
    }
}
