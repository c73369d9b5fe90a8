//! `vrctl lab up|down|status`: the seed topology on this machine, driven
//! through the agents' protocol and proven with real packets.
//!
//! The layout (ZStack's three networks, the management node in a subnet of
//! its own behind the management gateway) is drawn in [`layout`].
//!
//! The VR is a real VM from the image through kvm-agent and a private
//! libvirtd (KVM where it can boot guests, TCG elsewhere) when libvirt,
//! qemu and the image are there; otherwise vr-agent runs in the namespace
//! `<lab>-vr`, plugged into the same bridges, bootstrapped from the same
//! document. The report says which.
//!
//! vrctl itself plays the management node from `<lab>-mn` (a thread of its
//! own in that namespace), in async mode with its callback receiver on the
//! node's own address, 10.1.0.10.
//!
//! Both agents run with mutual TLS and a bearer token ([`secure`]): the
//! lab's CA issues kvm-agent's certificate and, through vrctl's router
//! creation, the router's own (bootstrap info `agentTls`).

pub mod checks;
pub mod layout;
pub mod secure;
pub mod topo;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{CallbackReceiver, Client};
use crate::diagnose::{self, HostView};
use crate::host;
use crate::router::{self, Ctx, Records};
use crate::spec::RouterSpec;
use topo::{nsh, sh};

use layout::{
    HOST_IP, HOST_UUID, KVM, MGMT_GW, MN_IP, OUTSIDE_IP, VIP_EIP, VIP_LB, VIP_PF, VR_AGENT,
    VR_MGMT_IP, VR_PUB_IP, VR_UUID, build, start_namespace_router,
};
pub use layout::{TENANT1_MAC, TENANT2_MAC, router_spec};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Topo(#[from] topo::TopoError),
    #[error("{0}")]
    Other(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A VM when libvirt, qemu and the image are present, else a namespace.
    Auto,
    /// The VR as a VM from the image through kvm-agent and libvirt.
    Vm,
    /// The VR as vr-agent in a namespace on the same bridges.
    Namespace,
}

pub struct Options {
    pub name: String,
    pub mode: Mode,
    pub image_dir: PathBuf,
    /// Where kvm-agent and vr-agent binaries are (beside vrctl by default).
    pub bin_dir: PathBuf,
    /// Stop after the host is ready (bridges), before the VR: tests use the
    /// lab's host to provoke failures with their own router descriptions.
    pub host_only: bool,
}

/// Names and places of one lab.
#[derive(Debug, Clone)]
pub struct Names {
    pub name: String,
    pub state: PathBuf,
}

impl Names {
    pub fn new(name: &str) -> Names {
        Names {
            name: name.into(),
            state: Path::new("/run/vrctl-lab").join(name),
        }
    }
    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.name)
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub check: String,
    pub pass: bool,
    pub detail: String,
}

/// What `lab up` leaves in `<state>/lab.json`, and prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub name: String,
    /// "vm (qemu)", "vm (kvm)" or "namespace".
    pub router: String,
    /// Why the router is not a VM, when it is not.
    pub why_not_vm: Option<String>,
    pub libvirt_uri: Option<String>,
    pub router_spec: String,
    pub rows: Vec<Row>,
    pub seconds: f64,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.rows.iter().all(|r| r.pass)
    }

    pub fn print(&self) {
        println!();
        println!("lab {}: router as {}", self.name, self.router);
        if let Some(why) = &self.why_not_vm {
            println!("  (not a VM: {why})");
        }
        for r in &self.rows {
            println!(
                "  {}  {:<58} {}",
                if r.pass { "PASS" } else { "FAIL" },
                r.check,
                r.detail
            );
        }
        let failed = self.rows.iter().filter(|r| !r.pass).count();
        println!(
            "{} of {} checks pass ({:.0} s). Router description: {}",
            self.rows.len() - failed,
            self.rows.len(),
            self.seconds,
            self.router_spec
        );
        let me = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "vrctl".into());
        let named = if self.name == "vrlab" {
            String::new()
        } else {
            format!(" --name {}", self.name)
        };
        println!("The lab stays up.");
        let state = Names::new(&self.name).state;
        println!(
            "  as the controller: VRCTL_PKI_DIR={} VRCTL_TOKEN_FILE={} {me} --netns {}-mn vr status {}",
            secure::pki_dir(&state).display(),
            secure::token_file(&state).display(),
            self.name,
            self.router_spec
        );
        println!("  checks again:      {me} lab status{named}");
        println!("  remove it:         {me} lab down{named}");
    }
}

/// What the VR mode will be, and why.
fn choose_mode(opts: &Options) -> (Mode, Option<String>) {
    let missing_vm = || -> Option<String> {
        for p in [
            "libvirtd",
            "virtlogd",
            "virsh",
            "qemu-system-x86_64",
            "qemu-img",
        ] {
            if !topo::have(p) {
                return Some(format!("{p} is not installed"));
            }
        }
        for f in ["vr.qcow2", "vmlinuz", "initrd.img"] {
            if !opts.image_dir.join(f).is_file() {
                return Some(format!(
                    "{} is missing (build it with `images/build`, as root)",
                    opts.image_dir.join(f).display()
                ));
            }
        }
        None
    };
    match opts.mode {
        Mode::Namespace => (Mode::Namespace, Some("--mode namespace".into())),
        Mode::Vm => (Mode::Vm, None),
        Mode::Auto => match missing_vm() {
            None => (Mode::Vm, None),
            Some(why) => (Mode::Namespace, Some(why)),
        },
    }
}

fn preflight(opts: &Options, mode: Mode) -> Result<(), LabError> {
    if !nix_is_root() {
        return Err(LabError::Other(
            "the lab needs root (namespaces, bridges, nft)".into(),
        ));
    }
    let mut missing: Vec<&str> = ["ip", "socat", "busybox", "dig", "dnsmasq", "nft"]
        .into_iter()
        .filter(|p| !topo::have(p))
        .collect();
    if mode == Mode::Vm {
        missing.extend(
            [
                "libvirtd",
                "virtlogd",
                "virsh",
                "qemu-system-x86_64",
                "qemu-img",
            ]
            .into_iter()
            .filter(|p| !topo::have(p)),
        );
    }
    if !missing.is_empty() {
        return Err(LabError::Other(format!(
            "missing programs: {} (`scripts/install-deps`, as root, installs them)",
            missing.join(", ")
        )));
    }
    let mut bins = vec!["kvm-agent"];
    if mode == Mode::Namespace {
        bins.push("vr-agent");
    }
    for b in bins {
        if !opts.bin_dir.join(b).is_file() {
            return Err(LabError::Other(format!(
                "{} is missing: `cargo build --release` builds it beside vrctl",
                opts.bin_dir.join(b).display()
            )));
        }
    }
    Ok(())
}

fn nix_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The namespace router seen like a VM: its log is the console, its
/// process is the domain.
struct NsRouter {
    pid: u32,
    log: PathBuf,
}

impl HostView for NsRouter {
    async fn console(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text[text.len().saturating_sub(3000)..].to_string()
    }
    async fn state(&self) -> Option<String> {
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), None)
            .is_ok()
            && !std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
                .unwrap_or_default()
                .contains(") Z ");
        alive.then(|| "Running".to_string())
    }
    async fn bridge_problem(&self) -> Option<String> {
        None
    }
}

/// Runs `f` on a thread of its own inside namespace `ns`, with a
/// single-threaded runtime (every socket it opens is in that namespace).
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl AsyncFnOnce() -> T + Send + 'static,
) -> Result<T, LabError> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file =
            std::fs::File::open(&path).map_err(|e| LabError::Other(format!("{path}: {e}")))?;
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| LabError::Other(format!("entering {path}: {e}")))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LabError::Other(e.to_string()))?;
        Ok(rt.block_on(f()))
    })
    .join()
    .map_err(|_| LabError::Other("the controller thread panicked".into()))?
}

fn row(check: &str, r: Result<String, String>) -> Row {
    let (pass, detail) = match r {
        Ok(d) => (true, d),
        Err(e) => (false, e),
    };
    Row {
        check: check.into(),
        pass,
        detail,
    }
}

fn say(msg: &str) {
    eprintln!("{msg}");
}

/// The controller's part: host, bridges, the router, the resync. Rows for
/// the report; stops at the first failure that makes later steps moot.
async fn drive(
    names: Names,
    opts_mode: Mode,
    opts_bin: PathBuf,
    host_only: bool,
    spec: RouterSpec,
) -> Vec<Row> {
    let mut rows = vec![];
    let me = format!("{MN_IP}:0");
    let rx = match CallbackReceiver::start(me.parse().unwrap(), MN_IP.parse().unwrap()).await {
        Ok(r) => std::sync::Arc::new(r),
        Err(e) => {
            rows.push(row(
                &format!("management node: callback receiver on {MN_IP}"),
                Err(e.to_string()),
            ));
            return rows;
        }
    };
    let creds = match secure::credentials(&names.state) {
        Ok(c) => c,
        Err(e) => {
            rows.push(row(
                "management node: the lab's credentials",
                Err(e.to_string()),
            ));
            return rows;
        }
    };
    let connect = |url: &str| Client::with(url, Some(rx.clone()), &creds);
    // The host's agent as `KVMHost` drives it: sync for echo, connect and
    // the interface check, async (with kvmHostAddons) for the rest.
    let kvm = Client::host_with(KVM, Some(rx.clone()), HOST_UUID, &creds);
    let kvm_sync = Client::host_with(KVM, None, HOST_UUID, &creds);
    // kvm-agent: up, connected, bridges.
    let t0 = Instant::now();
    let mut up = Err(String::new());
    while t0.elapsed() < Duration::from_secs(15) {
        up = kvm_sync
            .call("/host/echo", &json!({}))
            .await
            .map(|_| {
                format!(
                    "answers on {}, from the node's subnet (mutual TLS, token)",
                    kvm_sync.base()
                )
            })
            .map_err(|e| e.to_string());
        if up.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ok = up.is_ok();
    rows.push(row("host: kvm-agent answers /host/echo", up));
    if !ok {
        return rows;
    }
    let connected = kvm_sync
        .send(&host::connect_cmd(
            HOST_UUID,
            &host::send_command_url(MN_IP),
        ))
        .await
        .map(|_| "connected".to_string())
        .map_err(|e| e.to_string());
    rows.push(row("host: /host/connect", connected));
    let mut bridges = Ok(String::new());
    for (nic, br, l2) in [
        ("eth0", "br_eth0", "a1"),
        ("eth1", "br_eth1", "a2"),
        ("eth2", "br_eth2", "a3"),
    ] {
        say(&format!("createbridge {br} over {nic}"));
        let l2 = format!("{l2:0<32}");
        let made = async {
            kvm_sync.send(&host::check_interface_cmd(nic)).await?;
            kvm.send(&host::create_bridge_cmd(nic, br, &l2, 1500, None))
                .await
        };
        if let Err(e) = made.await {
            bridges = Err(format!("{br}: {e}"));
            break;
        }
    }
    if bridges.is_ok() {
        // A tenant VM's tap, plugged the controller's way.
        bridges = kvm
            .send(&host::add_interface_cmd("tap-ten2", "br_eth1"))
            .await
            .map(|_| String::new())
            .map_err(|e| format!("addif tap-ten2: {e}"));
    }
    let host_ns = names.ns("host");
    let bridges = bridges.and_then(|_| {
        let a = nsh(&host_ns, "ip -br -4 addr show br_eth0").map_err(|e| e.to_string())?;
        if !a.contains(&format!("{HOST_IP}/24")) {
            return Err(format!("br_eth0 lacks the host IP: {a}"));
        }
        nsh(&host_ns, &format!("ping -c1 -W2 {MN_IP}"))
            .map_err(|_| "the host lost its way to the management node".to_string())?;
        Ok(format!(
            "br_eth0 carries {HOST_IP}, the host still reaches the node {MN_IP} via {MGMT_GW}; br_eth1, br_eth2 up"
        ))
    });
    let ok = bridges.is_ok();
    rows.push(row(
        "host: bridges over eth0 (IP moved), eth1 and eth2",
        bridges,
    ));
    if !ok || host_only {
        return rows;
    }

    // The router.
    let records = Records::new(&names.state.join("vrctl"));
    let ctx = Ctx {
        records: &records,
        callbacks: Some(rx.clone()),
        quiet: false,
        credentials: creds.clone(),
        pki: Some(secure::pki_dir(&names.state)),
    };
    let t0 = Instant::now();
    let ready = if opts_mode == Mode::Vm {
        say("creating the VR VM (image overlay, /vm/start, bootstrap info)");
        ctx.create(&spec)
            .await
            .map(|up| {
                format!(
                    "on {}, agent {} answered after {:.1} s, {} commands applied",
                    up.host,
                    up.version,
                    up.boot_secs,
                    up.steps.len()
                )
            })
            .map_err(|e| format!("{e}"))
    } else {
        say("starting vr-agent in the router namespace");
        async {
            let auth = ctx.agent_auth(&spec).map_err(|e| e.to_string())?;
            let pid = start_namespace_router(&names, &spec, &opts_bin, &auth)
                .map_err(|e| e.to_string())?;
            let view = NsRouter {
                pid,
                log: names.state.join("logs/vr-agent.log"),
            };
            let want = diagnose::Expect {
                url: VR_AGENT,
                ip: VR_MGMT_IP,
                bootstrap: format!("{VR_MGMT_IP}/24 gateway {MGMT_GW}"),
                bridge: "br_eth0",
                credentials: &creds,
            };
            let version = diagnose::wait_ready(
                &view,
                &want,
                Duration::from_secs(60),
                router::progress(false),
            )
            .await
            .map_err(|e| e.to_string())?;
            let agent = connect(VR_AGENT);
            let steps = router::apply(&agent, &spec, |_| {}).await;
            if let Some(s) = steps.iter().find(|s| !s.ok) {
                return Err(format!(
                    "{}: {}",
                    s.path,
                    s.error.clone().unwrap_or_default()
                ));
            }
            Ok(format!(
                "namespace {}, agent {version} answered after {:.1} s, {} commands applied",
                names.ns("vr"),
                t0.elapsed().as_secs_f64(),
                steps.len()
            ))
        }
        .await
    };
    let ok = ready.is_ok();
    rows.push(row(
        "router: started, bootstrapped, agent up, resync applied",
        ready,
    ));
    if !ok {
        return rows;
    }
    let agent = connect(VR_AGENT);
    let pinged = agent
        .call("/ping", &json!({}))
        .await
        .map_err(|e| e.to_string())
        .and_then(|v| {
            if v["uuid"] == VR_UUID {
                Ok(format!("uuid {VR_UUID}"))
            } else {
                Err(format!("/ping: {v}"))
            }
        });
    let ok = pinged.is_ok();
    rows.push(row("router: /init took (/ping reports the uuid)", pinged));
    if !ok {
        return rows;
    }
    let (no_cert, no_token) = secure::refusals(&names.state, &creds).await;
    rows.push(row(
        "mTLS: a client without a certificate is refused by kvm-agent and vr-agent",
        no_cert,
    ));
    rows.push(row(
        "token: a client without the bearer token is refused (401) by both",
        no_token,
    ));
    rows.push(row(
        "mTLS: certificate rotation on the router without a restart",
        secure::rotation(&ctx, &spec).await,
    ));
    rows
}

/// The traffic proofs (also what `lab status` re-runs).
pub fn verify(names: &Names) -> Vec<Row> {
    let n = |r: &str| names.ns(r);
    let (out, t1, t2) = (n("out"), n("ten1"), n("ten2"));
    let outside = format!("{OUTSIDE_IP}:80");
    let mut rows = vec![
        row(
            "DHCP: web-01 gets 192.168.100.10, gateway, DNS, domain, name",
            checks::dhcp(
                names,
                &t1,
                "192.168.100.10 192.168.100.1 192.168.100.1 zstack.local web-01",
            ),
        ),
        row(
            "DHCP: db-01 gets 192.168.100.20",
            checks::dhcp(
                names,
                &t2,
                "192.168.100.20 192.168.100.1 192.168.100.1 zstack.local db-01",
            ),
        ),
        row(
            "DNS: a tenant resolves another tenant",
            checks::dns(&t1, "db-01.zstack.local", "192.168.100.20"),
        ),
        row(
            "DNS: a tenant resolves an outside name (upstream)",
            checks::dns(&t1, "www.example.test", "203.0.113.7"),
        ),
        row(
            &format!("SNAT: db-01 leaves as the router's public IP ({VR_PUB_IP})"),
            checks::reaches(&t2, &outside, "outside", VR_PUB_IP),
        ),
        row(
            &format!("EIP: web-01 leaves as its EIP {VIP_EIP}"),
            checks::reaches(&t1, &outside, "outside", VIP_EIP),
        ),
        row(
            &format!("EIP: the outside reaches web-01 through {VIP_EIP}"),
            checks::reaches(&out, &format!("{VIP_EIP}:22"), "web-01", OUTSIDE_IP),
        ),
        row(
            &format!("port forward: {VIP_PF}:8080 -> web-01:80"),
            checks::reaches(&out, &format!("{VIP_PF}:8080"), "web-01", OUTSIDE_IP),
        ),
        row(
            "hairpin: db-01 reaches web-01 through its EIP",
            checks::reaches(&t2, &format!("{VIP_EIP}:80"), "web-01", "192.168.100.1"),
        ),
        row(
            "firewall: the outside cannot reach a tenant directly",
            checks::blocked(&out, "192.168.100.10:80"),
        ),
    ];
    rows.push(row(
        &format!(
            "layout: the outside has no route to the node's subnet {}",
            layout::MN_CIDR
        ),
        match nsh(&out, &format!("ip route get {MN_IP}")) {
            Ok(r) => Err(format!("the outside routes the node: {}", r.trim())),
            Err(_) => Ok("a reply to the node by the public NIC is lost".into()),
        },
    ));
    // haproxy's first health check may run before the tenant had its
    // address (DHCP above) and mark the backend down until it rises again:
    // the check passes once the listener reaches web-01, within 30 s.
    let mut lb = Err("not tried".to_string());
    topo::wait_until(Duration::from_secs(30), || {
        lb = checks::reaches(&out, &format!("{VIP_LB}:80"), "web-01", "192.168.100.1");
        lb.is_ok()
    });
    rows.push(row(
        &format!("load balancer: {VIP_LB}:80 -> web-01:80 (haproxy)"),
        lb,
    ));
    rows
}

/// `vrctl lab up`.
pub fn up(opts: &Options) -> Result<Report, LabError> {
    let names = Names::new(&opts.name);
    if !topo::namespaces(&opts.name).is_empty() {
        return Err(LabError::Other(format!(
            "lab {} is already up (namespaces {}-*): `vrctl lab status` shows it, `vrctl lab down` removes it",
            opts.name, opts.name
        )));
    }
    let t0 = Instant::now();
    let (mode, why_not_vm) = choose_mode(opts);
    preflight(opts, mode)?;
    let kvm = mode == Mode::Vm && topo::kvm_usable();
    say(&format!(
        "lab {}: router as {}",
        opts.name,
        match (mode, kvm) {
            (Mode::Vm, true) => "a VM (KVM)".to_string(),
            (Mode::Vm, false) => "a VM (TCG: no usable KVM here)".to_string(),
            _ => format!(
                "vr-agent in a namespace ({})",
                why_not_vm.clone().unwrap_or_default()
            ),
        }
    ));
    // Leftovers of an interrupted run with the same name.
    topo::remove_all(&opts.name, &names.state);
    let built = build(&names, opts, mode, kvm);
    let uri = match built {
        Ok(u) => u,
        Err(e) => {
            topo::remove_all(&opts.name, &names.state);
            return Err(e);
        }
    };
    let spec = router_spec(&names, &opts.image_dir);
    let spec_path = names.state.join("router.json");
    let _ = std::fs::write(
        &spec_path,
        serde_json::to_string_pretty(&spec).unwrap_or_default(),
    );
    let (n2, bin, host_only, s2) = (
        names.clone(),
        opts.bin_dir.clone(),
        opts.host_only,
        spec.clone(),
    );
    let mut rows = in_netns(&names.ns("mn"), async move || {
        drive(n2, mode, bin, host_only, s2).await
    })?;
    if rows.iter().all(|r| r.pass) && !opts.host_only {
        say("proving the services with real traffic");
        rows.extend(verify(&names));
    }
    let report = Report {
        name: opts.name.clone(),
        router: match (mode, kvm) {
            (Mode::Vm, true) => "vm (kvm)".into(),
            (Mode::Vm, false) => "vm (qemu TCG)".into(),
            _ => "namespace".into(),
        },
        why_not_vm,
        libvirt_uri: uri,
        router_spec: spec_path.display().to_string(),
        rows,
        seconds: t0.elapsed().as_secs_f64(),
    };
    let _ = std::fs::write(
        names.state.join("lab.json"),
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    );
    Ok(report)
}

/// `vrctl lab down`: what was removed.
pub fn down(name: &str) -> Vec<String> {
    let names = Names::new(name);
    topo::remove_all(name, &names.state)
}

/// `vrctl lab status`: the saved report, what exists now, and the traffic
/// checks run again.
pub fn status(name: &str) -> Result<Value, LabError> {
    let names = Names::new(name);
    let spaces = topo::namespaces(name);
    if spaces.is_empty() {
        return Ok(json!({"name": name, "up": false}));
    }
    let saved: Option<Report> = std::fs::read_to_string(names.state.join("lab.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let mut procs = vec![];
    for ns in &spaces {
        for pid in sh(&format!("ip netns pids {ns}"))
            .unwrap_or_default()
            .split_whitespace()
        {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            procs.push(format!("{ns}: {} ({pid})", comm.trim()));
        }
    }
    let domains = saved
        .as_ref()
        .and_then(|r| r.libvirt_uri.clone())
        .and_then(|uri| topo::virsh(&uri, &["list", "--all"]).ok());
    let rows = verify(&names);
    Ok(
        json!({"name": name, "up": true, "namespaces": spaces, "processes": procs,
              "router": saved.as_ref().map(|r| r.router.clone()), "domains": domains,
              "checks": rows}),
    )
}
