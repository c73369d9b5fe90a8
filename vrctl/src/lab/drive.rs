//! The controller's part of `lab up`: the host, its bridges, the router
//! (a VM through kvm-agent or vr-agent in a namespace), the resync.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;

use super::layout::{
    HALVES, HOST_IP, HOST_UUID, HOST2_IP, HOST2_UUID, Half, KVM, KVM2, MGMT_GW, MN_IP, VR_AGENT,
    VR_UUID, router_files, start_namespace_router,
};
use super::topo::nsh;
use super::{Mode, Names, Row, row, say, secure};
use crate::client::{CallbackReceiver, Client};
use crate::diagnose::{self, HostView};
use crate::host;
use crate::router::{self, Ctx, Records};
use crate::spec::RouterSpec;

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

/// A compute host of the lab as the controller knows it.
struct HostAt {
    /// Its namespace's role and the report's name for it.
    role: &'static str,
    kvm: &'static str,
    uuid: &'static str,
    ip: &'static str,
}

const HOSTS: [HostAt; 2] = [
    HostAt {
        role: "host",
        kvm: KVM,
        uuid: HOST_UUID,
        ip: HOST_IP,
    },
    HostAt {
        role: "host2",
        kvm: KVM2,
        uuid: HOST2_UUID,
        ip: HOST2_IP,
    },
];

/// The controller's part: hosts, bridges, the routers (one, or the HA
/// pair: `specs` has two), the resync. Rows for the report; stops at the
/// first failure that makes later steps moot.
pub(super) async fn drive(
    names: Names,
    opts_mode: Mode,
    opts_bin: PathBuf,
    host_only: bool,
    specs: Vec<RouterSpec>,
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
    let ha = specs.len() == 2;
    for (i, at) in HOSTS.iter().take(specs.len()).enumerate() {
        let ok = prepare_host(&names, at, i == 0, &rx, &creds, &mut rows).await;
        if !ok {
            return rows;
        }
    }
    if host_only {
        return rows;
    }

    // The routers.
    let records = Records::new(&names.state.join("vrctl"));
    let ctx = Ctx {
        records: &records,
        callbacks: Some(rx.clone()),
        quiet: false,
        credentials: creds.clone(),
        pki: Some(secure::pki_dir(&names.state)),
    };
    for (i, spec) in specs.iter().enumerate() {
        let half = &HALVES[i];
        let ready = start_router(&ctx, &names, opts_mode, &opts_bin, half, spec).await;
        let ok = ready.is_ok();
        let what = if i == 0 { "router" } else { "router2" };
        rows.push(row(
            &format!("{what}: started, bootstrapped, agent up, resync applied"),
            ready,
        ));
        if !ok {
            return rows;
        }
        if ha && i == 0 {
            // The first half is master before the second exists, and stays
            // so when it joins (keepalived without preemption).
            let agent = ctx.client(half.agent);
            let t0 = Instant::now();
            while ha_status(&agent).await != "Master" && t0.elapsed() < Duration::from_secs(10) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let agent = ctx.client(VR_AGENT);
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
    if ha {
        let want = ["Master", "Backup"];
        let mut seen = [String::new(), String::new()];
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(15) {
            for (i, h) in HALVES.iter().enumerate() {
                seen[i] = ha_status(&ctx.client(h.agent)).await;
            }
            if seen == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let paired = if seen == want {
            Ok(format!(
                "{} Master, {} Backup (keepalived over the management NICs, conntrackd beside it)",
                names.ns("vr"),
                names.ns("vr2")
            ))
        } else {
            Err(format!("haStatus {seen:?}, expected {want:?}"))
        };
        let ok = paired.is_ok();
        rows.push(row("HA: the pair elected one master", paired));
        if !ok {
            return rows;
        }
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
        secure::rotation(&ctx, &specs[0]).await,
    ));
    rows
}

/// `/ping`'s haStatus ("" when the agent does not answer within 1 s: a
/// lost half must not hold up the question to the other).
pub(super) async fn ha_status(agent: &Client) -> String {
    tokio::time::timeout(Duration::from_secs(1), agent.call("/ping", &json!({})))
        .await
        .ok()
        .and_then(Result::ok)
        .map(|v| v["haStatus"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// One host made ready as `KVMHost` does it: echo, connect, the interface
/// checks and bridges; the first host also plugs db-01's tap. Pushes its
/// rows; false when a step failed.
async fn prepare_host(
    names: &Names,
    at: &HostAt,
    first: bool,
    rx: &std::sync::Arc<CallbackReceiver>,
    creds: &crate::credentials::Credentials,
    rows: &mut Vec<Row>,
) -> bool {
    let label = at.role;
    // The host's agent as `KVMHost` drives it: sync for echo, connect and
    // the interface check, async (with kvmHostAddons) for the rest.
    let kvm = Client::host_with(at.kvm, Some(rx.clone()), at.uuid, creds);
    let kvm_sync = Client::host_with(at.kvm, None, at.uuid, creds);
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
    rows.push(row(&format!("{label}: kvm-agent answers /host/echo"), up));
    if !ok {
        return false;
    }
    let connected = kvm_sync
        .send(&host::connect_cmd(at.uuid, &host::send_command_url(MN_IP)))
        .await
        .map(|_| "connected".to_string())
        .map_err(|e| e.to_string());
    rows.push(row(&format!("{label}: /host/connect"), connected));
    let mut bridges = Ok(String::new());
    for (nic, br, l2) in [
        ("eth0", "br_eth0", "a1"),
        ("eth1", "br_eth1", "a2"),
        ("eth2", "br_eth2", "a3"),
    ] {
        say(&format!("{label}: createbridge {br} over {nic}"));
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
    if bridges.is_ok() && first {
        // A tenant VM's tap, plugged the controller's way.
        bridges = kvm
            .send(&host::add_interface_cmd("tap-ten2", "br_eth1"))
            .await
            .map(|_| String::new())
            .map_err(|e| format!("addif tap-ten2: {e}"));
    }
    let host_ns = names.ns(at.role);
    let ip = at.ip;
    let bridges = bridges.and_then(|_| {
        let a = nsh(&host_ns, "ip -br -4 addr show br_eth0").map_err(|e| e.to_string())?;
        if !a.contains(&format!("{ip}/24")) {
            return Err(format!("br_eth0 lacks the host IP: {a}"));
        }
        nsh(&host_ns, &format!("ping -c1 -W2 {MN_IP}"))
            .map_err(|_| "the host lost its way to the management node".to_string())?;
        Ok(format!(
            "br_eth0 carries {ip}, the host still reaches the node {MN_IP} via {MGMT_GW}; br_eth1, br_eth2 up"
        ))
    });
    let ok = bridges.is_ok();
    rows.push(row(
        &format!("{label}: bridges over eth0 (IP moved), eth1 and eth2"),
        bridges,
    ));
    ok
}

/// One router up and resynced: a VM through its host's kvm-agent, or
/// vr-agent in `<lab>-<role>` on its host's bridges.
pub(super) async fn start_router(
    ctx: &Ctx<'_>,
    names: &Names,
    mode: Mode,
    bin: &std::path::Path,
    half: &Half,
    spec: &RouterSpec,
) -> Result<String, String> {
    let t0 = Instant::now();
    if mode == Mode::Vm {
        say(&format!(
            "creating the VR VM {} (image overlay, /vm/start, bootstrap info)",
            half.vm_name
        ));
        return ctx
            .create(spec)
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
            .map_err(|e| format!("{e}"));
    }
    say(&format!(
        "starting vr-agent in the router namespace {}",
        names.ns(half.role)
    ));
    let host_role = super::layout::host_of(half);
    let auth = ctx.agent_auth(spec).map_err(|e| e.to_string())?;
    let pid = start_namespace_router(names, (half.role, host_role), spec, bin, &auth)
        .map_err(|e| e.to_string())?;
    let view = NsRouter {
        pid,
        log: router_files(names, half.role).log,
    };
    let want = diagnose::Expect {
        url: half.agent,
        ip: half.mgmt_ip,
        bootstrap: format!("{}/24 gateway {MGMT_GW}", half.mgmt_ip),
        bridge: "br_eth0",
        credentials: &ctx.credentials,
    };
    let version = diagnose::wait_ready(
        &view,
        &want,
        Duration::from_secs(60),
        router::progress(false),
    )
    .await
    .map_err(|e| e.to_string())?;
    let agent = ctx.client(half.agent);
    let steps = router::apply(&agent, spec, |_| {}).await;
    if let Some(s) = steps.iter().find(|s| !s.ok) {
        return Err(format!(
            "{}: {}",
            s.path,
            s.error.clone().unwrap_or_default()
        ));
    }
    Ok(format!(
        "namespace {}, agent {version} answered after {:.1} s, {} commands applied",
        names.ns(half.role),
        t0.elapsed().as_secs_f64(),
        steps.len()
    ))
}

/// `--ha` in namespace mode: half `i` lost and made again, a new
/// namespace and a new agent with no state, resynced (VM mode leaves it to
/// `vrctl watch`).
pub(super) async fn recreate_half(
    names: Names,
    bin: PathBuf,
    i: usize,
    spec: RouterSpec,
) -> Result<String, String> {
    let rx = CallbackReceiver::start(
        format!("{MN_IP}:0").parse().unwrap(),
        MN_IP.parse().unwrap(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let creds = secure::credentials(&names.state).map_err(|e| e.to_string())?;
    let records = Records::new(&names.state.join("vrctl"));
    let ctx = Ctx {
        records: &records,
        callbacks: Some(std::sync::Arc::new(rx)),
        quiet: true,
        credentials: creds,
        pki: Some(secure::pki_dir(&names.state)),
    };
    let half = &HALVES[i];
    let files = router_files(&names, half.role);
    let _ = std::fs::remove_dir_all(&files.state);
    // Nothing may outlive the namespace's name (a process left in it would
    // be a second master `lab down` cannot find), and the host's ends of
    // its veths go with it before they are made again.
    let (vr, host) = (names.ns(half.role), super::layout::host_of(half));
    super::topo::kill_in(&vr);
    let _ = super::topo::sh(&format!("ip netns del {vr}"));
    for i in 0..spec.nics.len() {
        let _ = super::topo::sh(&format!(
            "ip -n {} link del {}.{i} 2>/dev/null; true",
            names.ns(host),
            half.role
        ));
    }
    start_router(&ctx, &names, Mode::Namespace, &bin, half, &spec).await
}

/// Half `i`'s haStatus, as the node reads it on `/ping`.
pub(super) async fn half_status(names: Names, i: usize) -> String {
    match secure::credentials(&names.state) {
        Ok(creds) => ha_status(&Client::with(HALVES[i].agent, None, &creds)).await,
        Err(_) => String::new(),
    }
}

/// Each half's haStatus, as the node reads it on `/ping`.
pub(super) async fn pair_status(names: Names) -> [String; 2] {
    let Ok(creds) = secure::credentials(&names.state) else {
        return Default::default();
    };
    let (c0, c1) = (
        Client::with(HALVES[0].agent, None, &creds),
        Client::with(HALVES[1].agent, None, &creds),
    );
    let (a, b) = tokio::join!(ha_status(&c0), ha_status(&c1));
    [a, b]
}
