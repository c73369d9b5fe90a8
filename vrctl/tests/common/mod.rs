//! Helpers shared by vrctl's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use testbed::{Netns, TempDir};

/// The directory of the vrctl binary under test; the workspace build puts
/// kvm-agent and vr-agent beside it.
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_vrctl"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn kvm_agent_bin() -> PathBuf {
    let bin = bin_dir().join("kvm-agent");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p kvm-agent` (the workspace test run builds it)",
        bin.display()
    );
    bin
}

/// kvm-agent on libvirt's test driver in `ns`, answering on 127.0.0.1:7070.
pub fn start_kvm_agent(ns: &Netns, state: &TempDir) -> (testbed::Proc, &'static str) {
    let agent = start_kvm_agent_at(ns, state, "127.0.0.1:7070", state.path(), (ns, "127.0.0.1"));
    (agent, "http://127.0.0.1:7070")
}

/// kvm-agent on libvirt's test driver in `ns`, answering on `listen`, its
/// VM channel sockets in `shared/sock` and disks allowed under `shared`,
/// connected from `controller` (a namespace and its address there) like
/// the node connects a host (sync), so that it takes that address as its
/// controller. Each start is a new test driver: a host that reboots.
pub fn start_kvm_agent_at(
    ns: &Netns,
    state: &TempDir,
    listen: &str,
    shared: &Path,
    controller: (&Netns, &str),
) -> testbed::Proc {
    let bin = kvm_agent_bin();
    let console = state.path().join("console");
    let mut cmd = ns.command(
        bin.to_str().unwrap(),
        &[
            "--listen",
            listen,
            "--state-dir",
            state.path().to_str().unwrap(),
            "--libvirt-uri",
            "test:///default",
            "--console-log-dir",
            console.to_str().unwrap(),
        ],
    );
    // VM channel sockets under the test's directory (kvm-agent keeps them
    // to its socket directory; an older kvm-agent ignores these).
    cmd.env("KVM_AGENT_SOCKET_DIR", shared.join("sock"));
    // Disks under the test's directory too, besides the default places.
    let here = shared.display().to_string();
    cmd.env(
        "KVM_AGENT_VOLUME_DIRS",
        format!("/var/lib/zstack/local,/zstack_ps,{here}"),
    );
    cmd.env("KVM_AGENT_IMAGE_DIRS", &here);
    let agent = testbed::Proc::start(cmd).unwrap();
    let url = format!("http://{listen}");
    let (ctl, ctl_ip) = controller;
    let up = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        testbed::http_post(ctl, &format!("{url}/host/echo"), "{}", &[]).is_ok_and(|r| r.0 == 200)
    });
    assert!(up, "kvm-agent did not answer:\n{}", agent.log());
    let body = vrctl::client::body(&vrctl::host::connect_cmd(
        "5e570000000000000000000000000001",
        &vrctl::host::send_command_url(ctl_ip),
    ));
    let connected = testbed::http_post(ctl, &format!("{url}/host/connect"), &body.to_string(), &[]);
    assert!(
        connected.as_ref().is_ok_and(|r| r.0 == 200),
        "/host/connect: {connected:?}\n{}",
        agent.log()
    );
    agent
}

/// What one vrctl run did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub secs: f64,
}

/// Runs the vrctl binary with `args` (and `env`).
pub fn vrctl(args: &[&str], env: &[(&str, &str)]) -> Run {
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_vrctl"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("vrctl runs");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        secs: t0.elapsed().as_secs_f64(),
    };
    eprintln!(
        "vrctl {} -> {} in {:.1} s\n{}{}",
        args.join(" "),
        run.code,
        run.secs,
        run.stdout,
        run.stderr
    );
    run
}

/// A VM test's prerequisites, or why it cannot run (a failure under
/// REQUIRE_VM=1).
pub fn vm_missing() -> Option<String> {
    for p in [
        "libvirtd",
        "virtlogd",
        "virsh",
        "qemu-system-x86_64",
        "qemu-img",
    ] {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return Some(format!("{p} is not installed"));
        }
    }
    let dir = image_dir();
    for f in ["vr.qcow2", "vmlinuz", "initrd.img"] {
        if !dir.join(f).is_file() {
            return Some(format!(
                "{} is missing (build it with `images/build`, as root)",
                dir.join(f).display()
            ));
        }
    }
    None
}

pub fn require_vm() -> bool {
    std::env::var("REQUIRE_VM").as_deref() == Ok("1")
}

/// The image, readable by libvirt's qemu user from any checkout path.
pub fn image_dir() -> PathBuf {
    testbed::vr_image_dir()
}

/// Runs vr-agent in `ns` on a thread of its own until the guard drops:
/// listening on 10.0.0.25:7272, commands from 10.0.0.2 only.
pub struct Agent {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Agent {
    pub fn start(ns: &Netns, state: &std::path::Path) -> Agent {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let path = format!("/run/netns/{}", ns.name());
        let state = state.to_path_buf();
        let thread = std::thread::spawn(move || {
            let f = std::fs::File::open(path).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let sys = vr_agent::real_sys(&state).unwrap();
                let cfg = vr_agent::Config {
                    listen: Some("10.0.0.25:7272".parse().unwrap()),
                    bootstrap: None,
                    bootstrap_timeout: Duration::from_secs(1),
                    state_dir: state,
                    drift_check: Duration::ZERO,
                    allow_from: vec!["10.0.0.2".parse().unwrap()],
                    allow_any_source: false,
                    tls_files: None,
                    token_file: None,
                    console: None,
                    ha_advert_cs: vr_agent::DEFAULT_HA_ADVERT_CS,
                };
                vr_agent::run(cfg, sys, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
            });
        });
        Agent {
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        let _ = self.thread.take().map(|t| t.join());
    }
}
