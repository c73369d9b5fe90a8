use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use vrctl::client::{CallbackReceiver, Client, local_addr_towards};
use vrctl::credentials::{CredentialFiles, Credentials};
use vrctl::diagnose::{self, Diagnosis};
use vrctl::host;
use vrctl::router::{Ctx, Records, RouterError};
use vrctl::spec::{RouterSpec, diff};

/// Plays the cloud controller against kvm-agent and vr-agent with the real
/// protocol, and runs the lab.
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
    /// Run in this network namespace (e.g. `vrlab-mn`, the lab's management node).
    #[arg(long, global = true)]
    netns: Option<String>,
    /// Where vrctl keeps what it knows of the routers it created.
    #[arg(
        long,
        global = true,
        env = "VRCTL_STATE_DIR",
        default_value = "/var/lib/vrctl"
    )]
    state_dir: PathBuf,
    /// Trust this CA for the agents' certificates and speak TLS: every
    /// agent URL is then spoken as https:// (an http:// URL is upgraded).
    #[arg(long, global = true, env = "VRCTL_CA")]
    ca: Option<PathBuf>,
    /// vrctl's client certificate (PEM) for agents with mutual TLS.
    #[arg(long, global = true, env = "VRCTL_CERT", requires = "key")]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, env = "VRCTL_KEY", requires = "cert")]
    key: Option<PathBuf>,
    /// Bearer tokens, one a line: the first is sent to every agent; routers
    /// vrctl bootstraps are told to accept them all.
    #[arg(long, global = true, env = "VRCTL_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// A vrctl PKI directory (`vrctl pki init`): its ca.pem and vrctl.pem/
    /// vrctl.key stand for --ca/--cert/--key when those are not given, and
    /// its CA issues each router vrctl creates a certificate of its own
    /// (the router then speaks mutual TLS only).
    #[arg(long, global = true, env = "VRCTL_PKI_DIR")]
    pki_dir: Option<PathBuf>,
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
    /// The seed topology on this machine, driven and verified.
    Lab {
        #[command(subcommand)]
        cmd: LabCmd,
    },
    /// The controller's CA, certificates and bearer tokens (mutual TLS).
    Pki {
        #[command(subcommand)]
        cmd: vrctl::pki::PkiCmd,
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
enum LabCmd {
    /// Build the topology, start the router, drive the seed workflow, prove
    /// every service with real traffic, print the report. The lab stays up.
    Up {
        #[arg(long, default_value = "vrlab")]
        name: String,
        #[arg(long, value_enum, default_value = "auto")]
        mode: vrctl::lab::Mode,
        /// The VR image (vr.qcow2, vmlinuz, initrd.img).
        #[arg(long, env = "VR_IMAGE_DIR")]
        image_dir: Option<PathBuf>,
        /// Stop once the host and its bridges are ready (no router).
        #[arg(long)]
        host_only: bool,
    },
    /// Remove the lab: processes, namespaces (bridges, taps), domain, files.
    Down {
        #[arg(long, default_value = "vrlab")]
        name: String,
    },
    /// What is up, and the traffic checks run again.
    Status {
        #[arg(long, default_value = "vrlab")]
        name: String,
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
    /// With FILE: also the VM's state on its host.
    Status {
        #[arg(long, required_unless_present = "file")]
        agent: Option<String>,
        file: Option<PathBuf>,
    },
    /// Create the router VM from FILE's [vm] section: a host that fits, a
    /// disk from the image, bootstrap info, wait for the agent, resync.
    Create { file: PathBuf },
    /// Start it again (after a stop, or after its host came back); `--host`
    /// starts it on another host (shared storage).
    Start {
        file: PathBuf,
        #[arg(long)]
        host: Option<String>,
    },
    /// Stop it (ACPI, then forced after `--grace` seconds).
    Stop {
        file: PathBuf,
        #[arg(long, default_value_t = 30)]
        grace: u64,
    },
    /// Reboot it, push the bootstrap info again, resync.
    Reboot { file: PathBuf },
    /// Destroy it and delete its disk.
    Destroy { file: PathBuf },
    /// For a router that lost its network: destroy, fresh disk, create, resync.
    Recreate { file: PathBuf },
    /// Ask its host (vmsync) for its real state and record it. `--host-gone`:
    /// the host is not coming back, so an unanswered host means stopped.
    Sync {
        file: PathBuf,
        #[arg(long)]
        host_gone: bool,
    },
    /// The tail of its serial console.
    Console { file: PathBuf },
    /// Give the running router a new certificate from --pki-dir's CA
    /// (`POST /agent/credentials`, no restart; with --token-file also the
    /// file's tokens) and record it for the next bootstrap push.
    RotateCert { file: PathBuf },
    /// Send one raw command, e.g. `vrctl vr call --agent URL /createeip '{"eip":{...}}'`.
    Call {
        #[arg(long)]
        agent: String,
        path: String,
        #[arg(default_value = "{}")]
        body: String,
    },
}

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
        .with_context(|| format!("{url:?} must be http://IP:PORT"))?;
    let me = local_addr_towards(ip).with_context(|| format!("no route to {ip}"))?;
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
    let args = Args::parse();
    if let Some(ns) = &args.netns {
        // Before any thread exists: the whole process moves.
        if let Err(e) = enter_netns(ns) {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    }
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Each diagnosis has its own exit status, for scripts.
            let d =
                e.downcast_ref::<Diagnosis>()
                    .or_else(|| match e.downcast_ref::<RouterError>() {
                        Some(RouterError::Diagnosis(d)) => Some(d),
                        _ => None,
                    });
            eprintln!("error: {e:#}");
            ExitCode::from(match d {
                Some(Diagnosis::NoHostFits { .. }) => 2,
                Some(Diagnosis::OsNotBooted { .. }) => 3,
                Some(Diagnosis::MgmtUnreachable { .. }) => 4,
                Some(Diagnosis::AgentMissing { .. }) => 5,
                Some(Diagnosis::WrongVersion { .. }) => 6,
                Some(Diagnosis::Refused { .. }) => 7,
                None => 1,
            })
        }
    }
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
    let f = std::fs::File::open(&path).with_context(|| format!("network namespace {path}"))?;
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("entering {path}"))?;
    Ok(())
}

async fn run(args: Args) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VRCTL_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match &args.cmd {
        Cmd::Lab { cmd } => lab(&args, cmd).await,
        Cmd::Vr { cmd } => vr(&args, cmd).await,
        Cmd::Host { agent, cmd } => host(&args, agent, cmd).await,
        Cmd::Vm { agent, cmd } => vm(&args, agent, cmd).await,
        Cmd::Pki { cmd } => {
            for f in vrctl::pki::run(cmd)? {
                println!("wrote {}", f.display());
            }
            Ok(())
        }
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
        } => ("/vm/stop", host::stop_vm_cmd(uuid, r#type, *timeout)),
        VmCmd::Reboot { uuid } => ("/vm/reboot", host::reboot_vm_cmd(uuid, 120)),
        VmCmd::Destroy { uuid } => ("/vm/destroy", host::destroy_vm_cmd(uuid)),
        VmCmd::Sync => ("/vm/vmsync", host::vm_sync_cmd()),
        VmCmd::Console { uuid, bytes } => {
            ("/vm/console/tail", json!({"uuid": uuid, "maxBytes": bytes}))
        }
    };
    let c = host_client(args, agent).await?;
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
            "/host/connect".to_string(),
            host::connect_cmd(uuid, send_command_url),
        ),
        HostCmd::Bridge {
            nic,
            bridge,
            vlan,
            check,
            delete,
        } => {
            let kind = if vlan.is_some() { "l2vlan" } else { "l2novlan" };
            // The L2 network's uuid: the bridge name in hex (stable per bridge).
            let hex: String = bridge.bytes().map(|b| format!("{b:02x}")).collect();
            let l2 = format!("{:0<32}", &hex[..hex.len().min(32)]);
            let (verb, body) = if *check {
                ("checkbridge", host::check_bridge_cmd(nic, bridge, *vlan))
            } else if *delete {
                (
                    "deletebridge",
                    host::delete_bridge_cmd(nic, bridge, &l2, *vlan),
                )
            } else {
                (
                    "createbridge",
                    host::create_bridge_cmd(nic, bridge, &l2, 1500, *vlan),
                )
            };
            (format!("/network/{kind}/{verb}"), body)
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
        .context("the description has no [vm] section with hosts")?;
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
            println!("stopped {}", spec.uuid);
        }
        VrCmd::Destroy { .. } => {
            ctx.destroy(&spec).await?;
            println!("destroyed {} (VM, disk and record)", spec.uuid);
        }
        VrCmd::Sync { host_gone, .. } => {
            let r = ctx.sync(&spec, *host_gone).await?;
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("{}  {}  on {}", r.uuid, r.state, r.host);
            }
        }
        VrCmd::Console { .. } => print!("{}", ctx.console(&spec).await?),
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

async fn lab(args: &Args, cmd: &LabCmd) -> Result<()> {
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
                bail!("some lab checks failed (logs: /run/vrctl-lab/{name}/logs)");
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
            let st = tokio::task::spawn_blocking(move || lab::status(&name)).await??;
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
        }
    }
    Ok(())
}

async fn vr(args: &Args, cmd: &VrCmd) -> Result<()> {
    match cmd {
        VrCmd::Create { file }
        | VrCmd::Start { file, .. }
        | VrCmd::Stop { file, .. }
        | VrCmd::Reboot { file }
        | VrCmd::Destroy { file }
        | VrCmd::Recreate { file }
        | VrCmd::Sync { file, .. }
        | VrCmd::Console { file }
        | VrCmd::RotateCert { file } => vr_vm(args, cmd, file).await,
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
            if args.json {
                println!(
                    "{}",
                    json!({"agent": c.base(), "version": version, "steps": steps})
                );
            }
            if steps.iter().any(|s| !s.ok) {
                bail!("apply stopped at the first failed command");
            }
            Ok(())
        }
        VrCmd::Diff { file } => {
            let spec = RouterSpec::load(file)?;
            let want = spec.desired()?;
            let c = Client::with(&spec.agent_url()?, None, &credentials(args)?);
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
        VrCmd::Status { agent, file } => {
            let spec = file.as_deref().map(RouterSpec::load).transpose()?;
            let agent = match (agent, &spec) {
                (Some(a), _) => a.clone(),
                (None, Some(s)) => s.agent_url()?,
                (None, None) => bail!("--agent or FILE"),
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
            let state: Value = serde_json::from_str(&c.get("/state").await?)?;
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
