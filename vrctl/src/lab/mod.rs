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

pub mod addresses;
pub mod checks;
mod ha;
pub mod layout;
pub mod secure;
pub mod topo;

mod drive;
mod preflight;
mod report;

use drive::drive;
use preflight::{choose_mode, preflight};
use report::row;
pub use report::{Report, Row};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use topo::{nsh, sh};

use layout::{MN_IP, OUTSIDE_IP, VIP_EIP, VIP_LB, VIP_PF, VR_PUB_IP, build};
pub use layout::{TENANT1_MAC, TENANT2_MAC, pair_specs, router_spec};

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
    /// Two compute hosts and an HA pair, one router on each; the report
    /// kills the master under traffic.
    pub ha: bool,
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

fn say(msg: &str) {
    eprintln!("{msg}");
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
        "lab {}: {} as {}",
        opts.name,
        if opts.ha {
            "an HA pair of routers, one on each of two hosts,"
        } else {
            "router"
        },
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
    let uris = match built {
        Ok(u) => u,
        Err(e) => {
            topo::remove_all(&opts.name, &names.state);
            return Err(e);
        }
    };
    let specs = if opts.ha {
        pair_specs(&names, &opts.image_dir).to_vec()
    } else {
        vec![router_spec(&names, &opts.image_dir)]
    };
    let spec_files: Vec<PathBuf> = (0..specs.len())
        .map(|i| match i {
            0 => names.state.join("router.json"),
            i => names.state.join(format!("router{}.json", i + 1)),
        })
        .collect();
    for (spec, file) in specs.iter().zip(&spec_files) {
        let _ = std::fs::write(file, serde_json::to_string_pretty(spec).unwrap_or_default());
    }
    let (n2, bin, host_only, s2) = (
        names.clone(),
        opts.bin_dir.clone(),
        opts.host_only,
        specs.clone(),
    );
    let mut rows = in_netns(&names.ns("mn"), async move || {
        drive(n2, mode, bin, host_only, s2).await
    })?;
    if rows.iter().all(|r| r.pass) && !opts.host_only {
        say("proving the services with real traffic");
        rows.extend(verify(&names));
        if let [a, b] = &specs[..] {
            say("killing the master under traffic");
            rows.extend(ha::prove(
                &names,
                mode,
                &opts.bin_dir,
                &uris,
                &[a.clone(), b.clone()],
            ));
        }
    }
    let vm = mode == Mode::Vm;
    let report = Report {
        name: opts.name.clone(),
        router: match (mode, kvm) {
            (Mode::Vm, true) => "vm (kvm)".into(),
            (Mode::Vm, false) => "vm (qemu TCG)".into(),
            _ => "namespace".into(),
        },
        ha: opts.ha,
        why_not_vm,
        libvirt_uri: uris.first().filter(|_| vm).cloned(),
        libvirt_uris: if vm { uris } else { vec![] },
        router_spec: spec_files[0].display().to_string(),
        router_specs: spec_files.iter().map(|f| f.display().to_string()).collect(),
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
