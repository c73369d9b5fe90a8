use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use common::command::Command;
use common::kvm::vm::{
    ConsoleTailCmd, DestroyVmCmd, RebootVmCmd, SetBootstrapInfoCmd, StartVmCmd, StopVmCmd,
};
use common::kvm::{CheckVlanBridgeCmd, ConnectCmd, CreateVlanBridgeCmd, DeleteVlanBridgeCmd};
use serde_json::{Value, json};
use vrctl::cli::{Args, Cmd, HostCmd, LabCmd, VmCmd, VrCmd};
use vrctl::client::{CallbackReceiver, Client, body, local_addr_towards};
use vrctl::credentials::{CredentialFiles, Credentials};
use vrctl::diagnose;
use vrctl::exit::{Exit, coded};
use vrctl::host;
use vrctl::router::{Ctx, Records};
use vrctl::spec::{RouterSpec, diff};

/// The callback receiver for commands to `url` (None in sync mode): it
/// listens on `--callback-bind`, and agents are told this host's address
/// towards `url`.
async fn receiver(args: &Args, url: &str) -> Result<Option<Arc<CallbackReceiver>>> {
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
fn credentials(args: &Args) -> Result<Credentials> {
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

async fn client(args: &Args, agent: &str) -> Result<Client> {
    Ok(Client::with(
        agent,
        receiver(args, agent).await?,
        &credentials(args)?,
    ))
}

/// A client for a host's kvm-agent (async bodies carry `kvmHostAddons`).
async fn host_client(args: &Args, agent: &str) -> Result<Client> {
    Ok(Client::host_with(
        agent,
        receiver(args, agent).await?,
        "",
        &credentials(args)?,
    ))
}

/// The handshake (sync, short timeouts), with a diagnosis when the agent
/// is not usable.
async fn handshake(c: &Client) -> Result<String> {
    let p = diagnose::probe(c.base(), c.credentials()).await;
    Ok(diagnose::verdict_now(c.base(), p)?)
}

fn main() -> ExitCode {
    // Scripts tell failures apart by status (see vrctl::exit), so clap's
    // own status 2 for a usage error (our "no host fits") is not used.
    let json = std::env::args().skip(1).any(|a| a == "--json");
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if json {
                let err = anyhow::anyhow!("{}", e.render().to_string().trim());
                println!("{}", vrctl::exit::to_json(&err, Exit::Usage));
            }
            let _ = e.print();
            return ExitCode::from(Exit::Usage.code());
        }
    };
    if let Some(ns) = &args.netns {
        // Before any thread exists: the whole process moves.
        if let Err(e) = enter_netns(ns) {
            return fail(&args, e.context("--netns"));
        }
    }
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    match rt.block_on(run(&args)) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => fail(&args, e),
    }
}

/// Reports `e` (on stderr; with --json also as the run's JSON document on
/// stdout) and gives its status.
fn fail(args: &Args, e: anyhow::Error) -> ExitCode {
    let exit = vrctl::exit::classify(&e);
    if args.json {
        println!("{}", vrctl::exit::to_json(&e, exit));
    }
    eprintln!("error: {e:#}");
    ExitCode::from(exit.code())
}

/// The management node's address and network as `Platform` finds them
/// (`getManagementServerIp`, `getManagementServerCidr`: the address of this
/// machine and the network of the interface that carries it), for a
/// description that does not name them: this host's address towards the
/// router's management IP, and its prefix from `ip -o -4 addr`.
fn fill_node_address(spec: &mut RouterSpec) {
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

fn enter_netns(ns: &str) -> Result<()> {
    let path = format!("/run/netns/{ns}");
    let f = std::fs::File::open(&path)
        .map_err(|e| coded(Exit::NoInput, format!("network namespace {path}: {e}")))?;
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("entering {path}"))?;
    Ok(())
}

async fn run(args: &Args) -> Result<Exit> {
    common::logging::init("VRCTL_LOG", "warn");
    match &args.cmd {
        Cmd::Lab { cmd } => lab(args, cmd).await,
        Cmd::Vr { cmd } => vr(args, cmd).await,
        Cmd::Host { agent, cmd } => host(args, agent, cmd).await.map(|_| Exit::Ok),
        Cmd::Vm { agent, cmd } => vm(args, agent, cmd).await.map(|_| Exit::Ok),
        Cmd::Pki { cmd } => {
            let wrote = vrctl::pki::run(cmd)?;
            if args.json {
                println!("{}", json!({ "wrote": wrote }));
            } else {
                for f in wrote {
                    println!("wrote {}", f.display());
                }
            }
            Ok(Exit::Ok)
        }
        Cmd::Completions { shell } => {
            let script = vrctl::cli::completions(*shell);
            if args.json {
                println!(
                    "{}",
                    json!({ "shell": shell.to_string(), "script": script })
                );
            } else {
                print!("{script}");
            }
            Ok(Exit::Ok)
        }
        Cmd::Man { dir: Some(dir) } => {
            let wrote = vrctl::cli::write_man_pages(dir)
                .map_err(|e| coded(Exit::CantCreate, format!("{}: {e}", dir.display())))?;
            if args.json {
                println!("{}", json!({ "wrote": wrote }));
            } else {
                for f in wrote {
                    println!("wrote {}", f.display());
                }
            }
            Ok(Exit::Ok)
        }
        Cmd::Man { dir: None } => {
            let page = vrctl::cli::man_page()?;
            if args.json {
                println!("{}", json!({ "page": String::from_utf8_lossy(&page) }));
            } else {
                std::io::Write::write_all(&mut std::io::stdout(), &page)?;
            }
            Ok(Exit::Ok)
        }
    }
}

fn read_json(file: &PathBuf) -> Result<Value> {
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
fn console_text(tail: &str) -> String {
    common::text::strip_ansi(tail)
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

async fn vm(args: &Args, agent: &str, cmd: &VmCmd) -> Result<()> {
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
            host::stop_vm_cmd(uuid, r#type.wire(), *timeout),
        ),
        VmCmd::Reboot { uuid } => (RebootVmCmd::PATH, body(&host::reboot_vm_cmd(uuid, 120))),
        VmCmd::Destroy { uuid } => (DestroyVmCmd::PATH, host::destroy_vm_cmd(uuid)),
        VmCmd::Sync => ("/vm/vmsync", host::vm_sync_cmd()),
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

async fn host(args: &Args, agent: &str, cmd: &HostCmd) -> Result<()> {
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
    Ok(())
}

fn print_up(args: &Args, what: &str, up: &vrctl::router::Up) {
    if args.json {
        println!("{}", serde_json::to_string(up).unwrap_or_default());
    } else {
        println!(
            "{what}: on {}, agent version {}, ready {:.1} s after the start, {} commands applied",
            up.host,
            up.version,
            up.boot_secs,
            up.steps.len()
        );
    }
}

/// The lifecycle commands (create, start, ... console) on a description.
async fn vr_vm(args: &Args, cmd: &VrCmd, file: &std::path::Path) -> Result<()> {
    let mut spec = RouterSpec::load(file)?;
    fill_node_address(&mut spec);
    let first = spec
        .vm
        .as_ref()
        .and_then(|v| v.hosts.first().cloned())
        .ok_or_else(|| {
            coded(
                Exit::BadInput,
                format!(
                    "{}: the description has no [vm] section with hosts",
                    file.display()
                ),
            )
        })?;
    let records = Records::new(&args.state_dir);
    let ctx = Ctx {
        records: &records,
        callbacks: receiver(args, &first).await?,
        quiet: args.json,
        credentials: credentials(args)?,
        pki: args.pki_dir.clone(),
    };
    match cmd {
        VrCmd::Create { .. } => print_up(args, "created", &ctx.create(&spec).await?),
        VrCmd::Start { host, .. } => {
            print_up(args, "started", &ctx.start(&spec, host.as_deref()).await?)
        }
        VrCmd::Reboot { .. } => print_up(args, "rebooted", &ctx.reboot(&spec).await?),
        VrCmd::Recreate { .. } => print_up(args, "re-created", &ctx.recreate(&spec).await?),
        VrCmd::Stop { grace, .. } => {
            ctx.stop(&spec, *grace).await?;
            if args.json {
                println!("{}", json!({"uuid": spec.uuid, "stopped": true}));
            } else {
                println!("stopped {}", spec.uuid);
            }
        }
        VrCmd::Destroy { .. } => {
            ctx.destroy(&spec).await?;
            if args.json {
                println!("{}", json!({"uuid": spec.uuid, "destroyed": true}));
            } else {
                println!("destroyed {} (VM, disk and record)", spec.uuid);
            }
        }
        VrCmd::Sync { host_gone, .. } => {
            let r = ctx.sync(&spec, *host_gone).await?;
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("{}  {}  on {}", r.uuid, r.state, r.host);
            }
        }
        VrCmd::Console { .. } => {
            let text = console_text(&ctx.console(&spec).await?);
            if args.json {
                println!("{}", json!({"uuid": spec.uuid, "console": text}));
            } else {
                print!("{text}");
            }
        }
        VrCmd::RotateCert { .. } => {
            let r = ctx.rotate_cert(&spec).await?;
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{}: new certificate serial {} ({}), was {}; in force for new connections",
                    r.uuid,
                    r.serial,
                    r.subject,
                    if r.old_serial.is_empty() {
                        "not recorded"
                    } else {
                        &r.old_serial
                    }
                );
            }
        }
        _ => unreachable!(),
    }
    Ok(())
}

async fn lab(args: &Args, cmd: &LabCmd) -> Result<Exit> {
    use vrctl::lab;
    match cmd {
        LabCmd::Up {
            name,
            mode,
            image_dir,
            host_only,
        } => {
            let image_dir = image_dir.clone().unwrap_or_else(|| {
                // The repository's images/out, seen from target/<profile>/vrctl.
                let local = PathBuf::from("images/out");
                if local.is_dir() {
                    return local.canonicalize().unwrap_or(local);
                }
                lab::topo::bin_dir().join("../../images/out")
            });
            // libvirt's qemu user cannot read a checkout in root's 0700 home.
            let image_dir = common::image::readable_by_qemu(&image_dir);
            let opts = lab::Options {
                name: name.clone(),
                mode: *mode,
                image_dir,
                bin_dir: lab::topo::bin_dir(),
                host_only: *host_only,
            };
            let report = tokio::task::spawn_blocking(move || lab::up(&opts)).await??;
            if args.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                report.print();
            }
            if !report.passed() {
                eprintln!("some lab checks failed (logs: /run/vrctl-lab/{name}/logs)");
                return Ok(Exit::No);
            }
        }
        LabCmd::Down { name } => {
            let name = name.clone();
            let removed = tokio::task::spawn_blocking(move || lab::down(&name)).await?;
            if args.json {
                println!("{}", json!({"removed": removed}));
            } else if removed.is_empty() {
                println!("nothing to remove");
            } else {
                for r in removed {
                    println!("removed {r}");
                }
            }
        }
        LabCmd::Status { name } => {
            let name = name.clone();
            let mut st = tokio::task::spawn_blocking(move || lab::status(&name)).await??;
            let passed = st["up"] == true
                && st["checks"]
                    .as_array()
                    .is_some_and(|c| c.iter().all(|r| r["pass"] == true));
            st["passed"] = json!(passed);
            if args.json {
                println!("{st}");
            } else if st["up"] == false {
                println!("lab {} is not up", st["name"].as_str().unwrap_or(""));
            } else {
                println!(
                    "lab {}: router as {}",
                    st["name"].as_str().unwrap_or(""),
                    st["router"].as_str().unwrap_or("?")
                );
                for p in st["processes"].as_array().into_iter().flatten() {
                    println!("  {}", p.as_str().unwrap_or(""));
                }
                if let Some(d) = st["domains"].as_str() {
                    print!("{d}");
                }
                for r in st["checks"].as_array().into_iter().flatten() {
                    println!(
                        "  {}  {:<58} {}",
                        if r["pass"] == true { "PASS" } else { "FAIL" },
                        r["check"].as_str().unwrap_or(""),
                        r["detail"].as_str().unwrap_or("")
                    );
                }
            }
            if !passed {
                return Ok(Exit::No);
            }
        }
    }
    Ok(Exit::Ok)
}

async fn vr(args: &Args, cmd: &VrCmd) -> Result<Exit> {
    match cmd {
        VrCmd::Create { file }
        | VrCmd::Start { file, .. }
        | VrCmd::Stop { file, .. }
        | VrCmd::Reboot { file }
        | VrCmd::Destroy { file }
        | VrCmd::Recreate { file }
        | VrCmd::Sync { file, .. }
        | VrCmd::Console { file }
        | VrCmd::RotateCert { file } => vr_vm(args, cmd, file).await.map(|_| Exit::Ok),
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
        VrCmd::Status { agent, file } => {
            let spec = file.as_deref().map(RouterSpec::load).transpose()?;
            let agent = match (agent, &spec) {
                (Some(a), _) => a.clone(),
                (None, Some(s)) => s.agent_url()?,
                (None, None) => return Err(coded(Exit::Usage, "vr status needs --agent or FILE")),
            };
            let mut vm_state = Value::Null;
            if let Some(spec) = spec.as_ref().filter(|s| s.vm.is_some()) {
                let records = Records::new(&args.state_dir);
                let ctx = Ctx {
                    records: &records,
                    callbacks: None,
                    quiet: true,
                    credentials: credentials(args)?,
                    pki: None,
                };
                let host = ctx.host_of(spec)?;
                vm_state = match ctx.host_client(&host).call("/vm/vmsync", &json!({})).await {
                    Ok(v) => {
                        json!({"host": host, "state": v["states"][&spec.uuid].as_str().unwrap_or("Stopped")})
                    }
                    Err(e) => json!({"host": host, "state": "Unknown", "error": e.to_string()}),
                };
                if !args.json {
                    println!(
                        "vm            {} on {}",
                        vm_state["state"].as_str().unwrap_or(""),
                        host
                    );
                }
            }
            let c = client(args, &agent).await?;
            let version = handshake(&c).await?;
            let ping = c.call("/ping", &json!({})).await?;
            let state: Value = serde_json::from_str(&c.get("/state").await?).map_err(|e| {
                coded(
                    Exit::AgentFailed,
                    format!("{}/state is not JSON: {e}", c.base()),
                )
            })?;
            let count = |k: &str| state["model"][k].as_object().map_or(0, |o| o.len());
            let summary = json!({
                "agent": agent, "version": version, "vm": vm_state,
                "uuid": ping["uuid"], "healthy": ping["healthy"],
                "generation": state["generation"],
                "nics": count("nics"), "snats": count("snats"), "vips": count("vips"),
                "port_forwards": count("port_forwards"), "eips": count("eips"),
                "lb_listeners": state["model"]["lb"]["listeners"].as_object().map_or(0, |o| o.len()),
                "dhcp_entries": state["model"]["dhcp"]["entries"].as_array().map_or(0, |a| a.len()),
            });
            if args.json {
                println!("{summary}");
            } else {
                let uuid = ping["uuid"].as_str().unwrap_or("");
                println!("agent         {}  (version {version})", c.base());
                println!(
                    "initialised   {}",
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
                    "lb_listeners",
                    "dhcp_entries",
                ] {
                    println!("{k:<14}{}", summary[k]);
                }
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
