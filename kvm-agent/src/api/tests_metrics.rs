//! `GET /metrics` of the kvm-agent: bridges, domains by state, command
//! latency per path, in text promtool accepts.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::*;
use crate::netstate::{Link, Observed};
use crate::sys::hypervisor::{DomainSummary, FakeHypervisor, VmState};
use crate::sys::netlink::FakeNetlink;
use crate::sys::sysctl::FakeSysctl;

fn link(index: u32, name: &str, kind: &str) -> Link {
    Link {
        index,
        name: name.into(),
        kind: Some(kind.into()),
        mac: None,
        mtu: 1500,
        up: true,
        master: None,
        alias: None,
        bridge: None,
        isolated: false,
    }
}

fn app() -> axum::Router {
    let host = Observed {
        links: vec![
            link(2, "eth0", "veth"),
            link(3, "br_eth0", "bridge"),
            link(4, "br_eth0_10", "bridge"),
        ],
        addrs: vec![],
        routes: vec![],
    };
    let dir = std::env::temp_dir().join(format!("kvm-agent-metrics-{}", std::process::id()));
    let mut agent = Agent::new(
        Arc::new(FakeNetlink::new(host)),
        Arc::new(FakeSysctl::default()),
        dir,
    );
    let hv = FakeHypervisor::default();
    for (name, state) in [
        ("vm-a", VmState::Running),
        ("vm-b", VmState::Running),
        ("vm-c", VmState::Shutoff),
    ] {
        let d = DomainSummary {
            name: name.into(),
            state,
            memory_kib: 1024,
            vcpus: 1,
        };
        hv.domains
            .lock()
            .unwrap()
            .insert(name.into(), (String::new(), d));
    }
    agent.vm.hypervisor = Some(Arc::new(hv));
    router(Arc::new(agent))
}

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, String) {
    let rsp = app.clone().oneshot(req).await.unwrap();
    let status = rsp.status();
    let b = axum::body::to_bytes(rsp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&b).into_owned())
}

/// `promtool check metrics`: None when it accepts (or is not installed
/// and REQUIRE_PRIVILEGED is not 1, as on a developer's machine).
fn promtool(text: &str) -> Option<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
                "promtool is required (apt-get install prometheus): {e}"
            );
            eprintln!("skipping promtool: {e}");
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (!out.status.success() || !said.trim().is_empty()).then_some(said)
}

#[tokio::test]
async fn bridges_domains_and_latency_per_path_pass_promtool() {
    let app = app();
    for _ in 0..3 {
        let (s, _) = call(
            &app,
            Request::post("/host/ping").body(Body::from("{}")).unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
    let (s, text) = call(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    for want in [
        "kvm_agent_bridges 2\n",
        "kvm_agent_domains{state=\"Running\"} 2\n",
        "kvm_agent_domains{state=\"Shutdown\"} 1\n",
        "kvm_agent_command_duration_seconds_count{path=\"/host/ping\"} 3\n",
        "# TYPE kvm_agent_command_duration_seconds histogram\n",
        "kvm_agent_build_info{",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    if let Some(complaints) = promtool(&text) {
        panic!("promtool check metrics: {complaints}\n{text}");
    }
}

#[tokio::test]
async fn metrics_obeys_the_source_check_like_other_paths() {
    use axum::extract::ConnectInfo;
    let dir = std::env::temp_dir().join(format!("kvm-agent-metrics-src-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let host = Observed {
        links: vec![],
        addrs: vec![],
        routes: vec![],
    };
    let agent = Agent::new(
        Arc::new(FakeNetlink::new(host)),
        Arc::new(FakeSysctl::default()),
        dir.clone(),
    )
    .with_peers(
        guard::Peers::load(
            vec!["10.0.0.10/32".parse().unwrap()],
            dir.join("pinned"),
            false,
        )
        .unwrap(),
    );
    let app = router(Arc::new(agent));
    let from = |ip: &str| {
        let mut r = Request::get("/metrics").body(Body::empty()).unwrap();
        let addr: std::net::SocketAddr = format!("{ip}:40000").parse().unwrap();
        r.extensions_mut().insert(ConnectInfo(addr));
        r
    };
    let (s, body) = call(&app, from("10.9.9.9")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    let (s, body) = call(&app, from("10.0.0.10")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.contains("kvm_agent_build_info"), "{body}");
    let _ = std::fs::remove_dir_all(&dir);
}
