//! The controller's part of `lab up`: the host, its bridges, the router
//! (a VM through kvm-agent or vr-agent in a namespace), the resync.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;

use super::layout::{
    HOST_IP, HOST_UUID, KVM, MGMT_GW, MN_IP, VR_AGENT, VR_MGMT_IP, VR_UUID, start_namespace_router,
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

/// The controller's part: host, bridges, the router, the resync. Rows for
/// the report; stops at the first failure that makes later steps moot.
pub(super) async fn drive(
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
