//! `vrctl lab up|down|status`: the seed topology on this machine, driven
//! through the agents' protocol and proven with real packets.
//!
//! ```text
//!  <lab>-net: 10.0.0.1 (gateway, controller = vrctl, upstream DNS, "outside" :80)
//!   | eth0 (veth: the compute host's physical NIC eth0)
//!  <lab>-host: kvm-agent :7070; br_eth0 (eth0, host IP 10.0.0.21 moved onto it)
//!   |                          br_eth1 (eth1, no address)
//!   +-- VR eth0 10.0.0.25 (management + public, VIPs .100 .101 .102) on br_eth0
//!   +-- VR eth1 192.168.100.1 (private) on br_eth1
//!          br_eth1 -- eth1 -- <lab>-ten1 (tenant web-01, DHCP .10, EIP .101)
//!          br_eth1 -- tap  -- <lab>-ten2 (tenant db-01, DHCP .20, SNAT only)
//! ```
//!
//! The VR is a real VM from the image through kvm-agent and a private
//! libvirtd (KVM where it can boot guests, TCG elsewhere) when libvirt,
//! qemu and the image are there; otherwise vr-agent runs in the namespace
//! `<lab>-vr`, plugged into the same bridges, bootstrapped from the same
//! document. The report says which.
//!
//! vrctl itself plays the controller from `<lab>-net` (a thread of its own
//! in that namespace), in async mode with its callback receiver on 10.0.0.1.

pub mod checks;
pub mod topo;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{CallbackReceiver, Client};
use crate::diagnose::{self, HostView};
use crate::router::{self, Ctx, Records};
use crate::spec::RouterSpec;
use topo::{nsh, sh, spawn};

pub const TENANT1_MAC: &str = "fa:a1:5e:12:34:56";
pub const TENANT2_MAC: &str = "fa:a1:5e:00:00:20";
const MGMT_MAC: &str = "52:54:00:7e:00:01";
const PRIV_MAC: &str = "52:54:00:7e:00:02";
const VR_UUID: &str = "1ab0000000000000000000000000a001";
const KVM: &str = "http://10.0.0.21:7070";

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
        println!(
            "  as the controller: ip netns exec {}-net {me} vr status {}",
            self.name, self.router_spec
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
                    "{} is missing (build it with `sudo images/build`)",
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
            "missing programs: {} (`sudo scripts/install-deps` installs them)",
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

/// The router's description in the lab (also written to
/// `<state>/router.json` for `vrctl vr apply|diff|status`).
pub fn router_spec(names: &Names, image_dir: &Path) -> RouterSpec {
    let img = |f: &str| image_dir.join(f).display().to_string();
    let vips: Vec<Value> = ["10.0.0.100", "10.0.0.101", "10.0.0.102"]
        .iter()
        .map(|ip| {
            json!({"ip": ip, "netmask": "255.255.255.0", "gateway": "10.0.0.1",
                   "ownerEthernetMac": MGMT_MAC})
        })
        .collect();
    let spec = json!({
        "agent": "http://10.0.0.25:7272",
        "uuid": VR_UUID,
        "nics": [
            {"ip": "10.0.0.25", "mac": MGMT_MAC, "netmask": "255.255.255.0", "gateway": "10.0.0.1",
             "isDefaultRoute": true, "category": "Management", "physicalInterface": "eth0",
             "deviceName": "eth0", "mtu": 1500},
            {"ip": "192.168.100.1", "mac": PRIV_MAC, "netmask": "255.255.255.0",
             "category": "Private", "firewallDefaultAction": "reject", "physicalInterface": "eth1",
             "deviceName": "eth1", "mtu": 1500}],
        "dns": [{"dnsAddress": "10.0.0.1", "nicMac": PRIV_MAC}],
        "dhcpServers": [{"nicMac": PRIV_MAC, "subnet": "192.168.100.0/24",
            "netmask": "255.255.255.0", "gateway": "192.168.100.1", "dnsDomain": "zstack.local",
            "dnsServer": "192.168.100.1", "mtu": 1500, "dhcpInfos": [
                {"ip": "192.168.100.10", "mac": TENANT1_MAC, "hostname": "web-01.zstack.local",
                 "isDefaultL3Network": true},
                {"ip": "192.168.100.20", "mac": TENANT2_MAC, "hostname": "db-01.zstack.local",
                 "isDefaultL3Network": true}]}],
        "snats": [{"publicNicMac": MGMT_MAC, "publicIp": "10.0.0.25", "privateNicMac": PRIV_MAC,
            "privateNicIp": "192.168.100.1", "snatNetmask": "255.255.255.0", "state": true}],
        "vips": vips,
        "portForwards": [{"uuid": "pf-web", "vipPortStart": 8080, "vipPortEnd": 8080,
            "privatePortStart": 80, "privatePortEnd": 80, "protocolType": "TCP",
            "vipIp": "10.0.0.100", "publicMac": MGMT_MAC, "privateIp": "192.168.100.10",
            "privateMac": PRIV_MAC}],
        "eips": [{"vipIp": "10.0.0.101", "privateMac": PRIV_MAC, "publicMac": MGMT_MAC,
            "guestIp": "192.168.100.10"}],
        "lbs": [{"lbUuid": "lb-web", "listenerUuid": "lst-web", "vip": "10.0.0.102",
            "publicNic": MGMT_MAC, "nicIps": ["192.168.100.10"], "instancePort": 80,
            "loadBalancerPort": 80, "mode": "tcp",
            "parameters": ["balancerAlgorithm::roundrobin", "healthCheckTarget::tcp:default",
                           "healthCheckInterval::1", "healthyThreshold::1"]}],
        "vm": {
            "hosts": [KVM], "name": "vrouter.lab", "cpuNum": 1, "memoryMb": 512,
            "image": img("vr.qcow2"), "diskDir": names.state.join("disks"),
            "kernel": img("vmlinuz"), "initrd": img("initrd.img"),
            "cmdline": "root=/dev/vda rw console=ttyS0 quiet",
            "bridges": {MGMT_MAC: "br_eth0", PRIV_MAC: "br_eth1"},
            "socketDir": names.state.join("sock"), "managementNodeIp": "10.0.0.1",
            "bootTimeoutSecs": 180}
    });
    serde_json::from_value(spec).expect("the lab's router description")
}

/// Builds the namespaces, wires and servers, starts kvm-agent (and the
/// private libvirtd in VM mode). Returns the libvirt URI.
fn build(names: &Names, opts: &Options, mode: Mode, kvm: bool) -> Result<Option<String>, LabError> {
    let n = |r: &str| names.ns(r);
    std::fs::create_dir_all(names.state.join("logs"))
        .map_err(|e| LabError::Other(format!("{}: {e}", names.state.display())))?;
    sh(&format!(
        "chmod 755 /run/vrctl-lab {}",
        names.state.display()
    ))?;
    for role in ["net", "host", "ten1", "ten2"] {
        sh(&format!(
            "ip netns add {ns} && ip -n {ns} link set lo up",
            ns = n(role)
        ))?;
    }
    topo::veth(&n("host"), "eth0", &n("net"), "eth0")?;
    topo::veth(&n("host"), "eth1", &n("ten1"), "eth0")?;
    topo::veth(&n("host"), "tap-ten2", &n("ten2"), "eth0")?;
    sh(&format!(
        "ip -n {net} addr add 10.0.0.1/24 dev eth0
         ip -n {net} route add 192.168.100.0/24 via 10.0.0.25
         ip -n {host} addr add 10.0.0.21/24 dev eth0
         ip -n {host} route add default via 10.0.0.1
         ip -n {t1} link set eth0 address {TENANT1_MAC}
         ip -n {t2} link set eth0 address {TENANT2_MAC}",
        net = n("net"),
        host = n("host"),
        t1 = n("ten1"),
        t2 = n("ten2"),
    ))?;
    let log = |f: &str| names.state.join("logs").join(f);
    spawn(
        &n("net"),
        "dnsmasq",
        &[
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            "--user=root",
            "--bind-interfaces",
            "--listen-address=10.0.0.1",
            "--log-facility=-",
            "--address=/example.test/203.0.113.7",
        ],
        &log("upstream-dns.log"),
    )?;
    for (ns, name, port) in [
        ("net", "outside", 80),
        ("ten1", "web-01", 80),
        ("ten1", "web-01", 22),
        ("ten2", "db-01", 80),
    ] {
        let args = checks::server_args(name, port);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        spawn(
            &n(ns),
            "socat",
            &args,
            &log(&format!("server-{ns}-{port}.log")),
        )?;
    }
    let uri = if mode == Mode::Vm {
        Some(topo::private_libvirt(&n("host"), !kvm, &names.state)?)
    } else {
        None
    };
    let kvm_agent = opts.bin_dir.join("kvm-agent");
    let state = |d: &str| names.state.join(d).display().to_string();
    let uri_arg = uri.clone().unwrap_or_else(|| "test:///default".into());
    spawn(
        &n("host"),
        kvm_agent.to_str().unwrap_or("kvm-agent"),
        &[
            "--listen",
            "0.0.0.0:7070",
            "--state-dir",
            &state("kvm-agent"),
            "--libvirt-uri",
            &uri_arg,
            "--domain-type",
            if kvm { "kvm" } else { "qemu" },
            "--console-log-dir",
            &state("console"),
            "--vnc-listen",
            "127.0.0.1",
        ],
        &log("kvm-agent.log"),
    )?;
    Ok(uri)
}

/// The VR as a namespace: veths on the same bridges a VM's taps would be
/// on, vr-agent bootstrapped from the same document (as a file).
fn start_namespace_router(
    names: &Names,
    spec: &RouterSpec,
    bin_dir: &Path,
) -> Result<u32, LabError> {
    let (vr, host) = (names.ns("vr"), names.ns("host"));
    sh(&format!("ip netns add {vr} && ip -n {vr} link set lo up"))?;
    let vm = spec.vm.clone().unwrap_or_default();
    for (i, nic) in spec.nics.iter().enumerate() {
        let tap = format!("vr.{i}");
        let dev = nic.device_name.clone().unwrap_or(format!("eth{i}"));
        topo::veth(&vr, &dev, &host, &tap)?;
        sh(&format!(
            "ip -n {vr} link set {dev} address {mac} && ip -n {host} link set {tap} master {br}",
            mac = nic.mac,
            br = vm.bridges[&nic.mac]
        ))?;
    }
    let doc = router::bootstrap_info(spec, &vm)["info"].clone();
    let file = names.state.join("bootstrap.json");
    std::fs::write(&file, doc.to_string()).map_err(|e| LabError::Other(e.to_string()))?;
    let agent = bin_dir.join("vr-agent");
    let state = names.state.join("vr-agent");
    let log = names.state.join("logs/vr-agent.log");
    Ok(spawn(
        &vr,
        agent.to_str().unwrap_or("vr-agent"),
        &[
            "--bootstrap",
            file.to_str().unwrap_or(""),
            "--state-dir",
            state.to_str().unwrap_or(""),
        ],
        &log,
    )?)
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
    let rx =
        match CallbackReceiver::start("10.0.0.1:0".parse().unwrap(), "10.0.0.1".parse().unwrap())
            .await
        {
            Ok(r) => std::sync::Arc::new(r),
            Err(e) => {
                rows.push(row(
                    "controller: callback receiver on 10.0.0.1",
                    Err(e.to_string()),
                ));
                return rows;
            }
        };
    let connect = |url: &str| Client::new(url, Some(rx.clone()));
    let kvm = connect(KVM);
    // kvm-agent: up, connected, bridges.
    let t0 = Instant::now();
    let mut up = Err(String::new());
    while t0.elapsed() < Duration::from_secs(15) {
        up = Client::new(KVM, None)
            .call("/host/echo", &json!({}))
            .await
            .map(|_| format!("answers on {KVM}"))
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
    let connected = kvm
        .call(
            "/host/connect",
            &json!({"hostUuid": "1ab0000000000000000000000000h001",
                    "sendCommandUrl": "http://10.0.0.1:9/events"}),
        )
        .await
        .map(|_| "connected".to_string())
        .map_err(|e| e.to_string());
    rows.push(row("host: /host/connect", connected));
    let mut bridges = Ok(String::new());
    for (nic, br, l2) in [("eth0", "br_eth0", "a1"), ("eth1", "br_eth1", "a2")] {
        say(&format!("createbridge {br} over {nic}"));
        if let Err(e) = kvm
            .call(
                "/network/l2novlan/createbridge",
                &json!({"physicalInterfaceName": nic, "bridgeName": br,
                        "l2NetworkUuid": format!("{l2:0<32}")}),
            )
            .await
        {
            bridges = Err(format!("{br}: {e}"));
            break;
        }
    }
    if bridges.is_ok() {
        // A tenant VM's tap, plugged the controller's way.
        bridges = kvm
            .call(
                "/network/bridge/addif",
                &json!({"physicalInterfaceName": "tap-ten2", "bridgeName": "br_eth1"}),
            )
            .await
            .map(|_| String::new())
            .map_err(|e| format!("addif tap-ten2: {e}"));
    }
    let host_ns = names.ns("host");
    let bridges = bridges.and_then(|_| {
        let a = nsh(&host_ns, "ip -br -4 addr show br_eth0").map_err(|e| e.to_string())?;
        if !a.contains("10.0.0.21/24") {
            return Err(format!("br_eth0 lacks the host IP: {a}"));
        }
        nsh(&host_ns, "ping -c1 -W2 10.0.0.1")
            .map_err(|_| "the host lost its uplink".to_string())?;
        Ok("br_eth0 carries 10.0.0.21, the host still reaches 10.0.0.1; br_eth1 up".into())
    });
    let ok = bridges.is_ok();
    rows.push(row("host: bridges over eth0 (IP moved) and eth1", bridges));
    if !ok || host_only {
        return rows;
    }

    // The router.
    let records = Records::new(&names.state.join("vrctl"));
    let t0 = Instant::now();
    let ready = if opts_mode == Mode::Vm {
        say("creating the VR VM (image overlay, /vm/start, bootstrap info)");
        let ctx = Ctx {
            records: &records,
            callbacks: Some(rx.clone()),
            quiet: false,
        };
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
            let pid =
                start_namespace_router(&names, &spec, &opts_bin).map_err(|e| e.to_string())?;
            let view = NsRouter {
                pid,
                log: names.state.join("logs/vr-agent.log"),
            };
            let want = diagnose::Expect {
                url: "http://10.0.0.25:7272",
                ip: "10.0.0.25",
                bootstrap: "10.0.0.25/24 gateway 10.0.0.1".into(),
                bridge: "br_eth0",
            };
            let version = diagnose::wait_ready(
                &view,
                &want,
                Duration::from_secs(60),
                router::progress(false),
            )
            .await
            .map_err(|e| e.to_string())?;
            let agent = connect("http://10.0.0.25:7272");
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
    let agent = connect("http://10.0.0.25:7272");
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
    rows.push(row("router: /init took (/ping reports the uuid)", pinged));
    rows
}

/// The traffic proofs (also what `lab status` re-runs).
pub fn verify(names: &Names) -> Vec<Row> {
    let n = |r: &str| names.ns(r);
    let (net, t1, t2) = (n("net"), n("ten1"), n("ten2"));
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
            "SNAT: db-01 leaves as the router (10.0.0.25)",
            checks::reaches(&t2, "10.0.0.1:80", "outside", "10.0.0.25"),
        ),
        row(
            "EIP: web-01 leaves as its EIP 10.0.0.101",
            checks::reaches(&t1, "10.0.0.1:80", "outside", "10.0.0.101"),
        ),
        row(
            "EIP: the outside reaches web-01 through 10.0.0.101",
            checks::reaches(&net, "10.0.0.101:22", "web-01", "10.0.0.1"),
        ),
        row(
            "port forward: 10.0.0.100:8080 -> web-01:80",
            checks::reaches(&net, "10.0.0.100:8080", "web-01", "10.0.0.1"),
        ),
        row(
            "hairpin: db-01 reaches web-01 through its EIP",
            checks::reaches(&t2, "10.0.0.101:80", "web-01", "192.168.100.1"),
        ),
        row(
            "firewall: the outside cannot reach a tenant directly",
            checks::blocked(&net, "192.168.100.10:80"),
        ),
    ];
    // haproxy's first health check may run before the tenant had its
    // address (DHCP above) and mark the backend down until it rises again:
    // the check passes once the listener reaches web-01, within 30 s.
    let mut lb = Err("not tried".to_string());
    topo::wait_until(Duration::from_secs(30), || {
        lb = checks::reaches(&net, "10.0.0.102:80", "web-01", "192.168.100.1");
        lb.is_ok()
    });
    rows.push(row(
        "load balancer: 10.0.0.102:80 -> web-01:80 (haproxy)",
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
    let mut rows = in_netns(&names.ns("net"), async move || {
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
