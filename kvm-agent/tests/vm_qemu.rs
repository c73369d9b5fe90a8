//! A real VM through `qemu:///system` (TCG, no guest OS): start with two
//! NICs on two test bridges, check taps, channel socket and bootstrap
//! delivery, vmsync, then stop and destroy leave no domain behind.
//!
//! qemu is spawned by libvirtd in the ROOT network namespace, so its taps
//! appear there and the bridges must be there too: this test creates two
//! bridges with unique names (`tb...`) in the root namespace, with no
//! addresses, no routes and no firewall changes, removed by Drop guards.
//! The agent itself runs in a test namespace (libvirt is reached through
//! its unix socket, which is not namespaced).
//!
//! Skips with a message when libvirtd/qemu are missing, unless
//! `REQUIRE_VM=1`, which turns every skip into a failure.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use testbed::{Netns, TempDir, http_post, ifname};

fn skip_or_fail(why: &str) -> bool {
    if std::env::var("REQUIRE_VM").as_deref() == Ok("1") {
        panic!("REQUIRE_VM=1 but the VM test cannot run: {why}");
    }
    eprintln!("skipped: {why}");
    false
}

fn have(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn virsh(args: &[&str]) -> Result<String> {
    let out = Command::new("virsh")
        .args(["-c", "qemu:///system"])
        .args(args)
        .output()
        .context("virsh")?;
    if !out.status.success() {
        bail!("virsh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// libvirtd and virtlogd as daemons (no systemd here); never touches
/// libvirt's networks.
fn ensure_libvirtd() -> Result<()> {
    if virsh(&["version"]).is_ok() {
        return Ok(());
    }
    for d in ["virtlogd", "libvirtd"] {
        let running = Command::new("pgrep")
            .args(["-x", d])
            .output()?
            .status
            .success();
        if !running {
            let st = Command::new(d).arg("-d").status()?;
            if !st.success() {
                bail!("{d} -d failed: {st}");
            }
        }
    }
    if !testbed::wait_until(Duration::from_secs(20), Duration::from_millis(200), || {
        virsh(&["version"]).is_ok()
    }) {
        bail!("libvirtd did not answer on qemu:///system");
    }
    // A fresh libvirtd probes qemu's capabilities on the first domain
    // operation (about 45 s here, beyond the test bed's 30 s HTTP timeout):
    // do it now, outside the agent's requests.
    virsh(&["domcapabilities", "--virttype", "qemu"]).map(|_| ())
}

/// A bridge in the root namespace: no address, no route; deleted on Drop.
struct RootBridge(String);
impl RootBridge {
    fn new() -> Result<RootBridge> {
        let name = ifname("tb");
        let st = Command::new("ip")
            .args(["link", "add", &name, "type", "bridge"])
            .status()?;
        if !st.success() {
            bail!("ip link add {name} type bridge failed");
        }
        let b = RootBridge(name);
        Command::new("ip")
            .args(["link", "set", &b.0, "up"])
            .status()?;
        Ok(b)
    }
}
impl Drop for RootBridge {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

/// Whatever happens, no domain of ours is left behind.
struct DomainGuard(String);
impl Drop for DomainGuard {
    fn drop(&mut self) {
        let _ = virsh(&["destroy", &self.0]);
        if virsh(&["undefine", &self.0, "--nvram"]).is_err() {
            let _ = virsh(&["undefine", &self.0]);
        }
    }
}

fn masters(port: &str) -> String {
    Command::new("ip")
        .args(["-o", "link", "show", "dev", port])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

#[test]
fn qemu_vm_two_nics_bootstrap_stop_destroy() -> Result<()> {
    if let Some(why) = testbed::unprivileged_reason() {
        skip_or_fail(&why);
        return Ok(());
    }
    for p in [
        "libvirtd",
        "virtlogd",
        "qemu-system-x86_64",
        "qemu-img",
        "virsh",
    ] {
        if !have(p) {
            skip_or_fail(&format!(
                "{p} is not installed (libvirt-daemon-system, qemu-system-x86, qemu-utils)"
            ));
            return Ok(());
        }
    }
    if let Err(e) = ensure_libvirtd() {
        skip_or_fail(&format!("{e:#}"));
        return Ok(());
    }

    let dir = TempDir::new("kvm-vm")?;
    let disk = dir.path().join("root.qcow2");
    let st = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&disk)
        .arg("16M")
        .status()?;
    assert!(st.success(), "qemu-img create");
    let (br0, br1) = (RootBridge::new()?, RootBridge::new()?);
    let uuid = format!("{:08x}{:024x}", std::process::id(), rand_u64() as u128);
    let _guard = DomainGuard(uuid.clone());
    let (tap0, tap1) = (ifname("vn"), ifname("vn"));
    let sock = dir.path().join(format!("sock/applianceVm.{uuid}"));

    let ns = Netns::new("kvmvm")?;
    let state = dir.path().join("state");
    let console = dir.path().join("console");
    let agent = ns.spawn(
        env!("CARGO_BIN_EXE_kvm-agent"),
        &[
            "--listen",
            "127.0.0.1:7070",
            "--state-dir",
            state.to_str().unwrap(),
            "--libvirt-uri",
            "qemu:///system",
            "--domain-type",
            "qemu",
            "--console-log-dir",
            console.to_str().unwrap(),
            "--vnc-listen",
            "127.0.0.1",
        ],
    )?;
    let url = |p: &str| format!("http://127.0.0.1:7070{p}");
    let up = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        http_post(&ns, &url("/host/echo"), "", &[]).is_ok_and(|(s, _)| s == 200)
    });
    assert!(up, "agent did not answer: {}", agent.log());
    // The MN's way (async: 200 at once, reply by callback), so a slow
    // libvirtd (its first define probes qemu for a minute here) does not
    // hit the test bed's 30 s HTTP timeout. Returns (200 or 500, reply).
    let cb = testbed::CallbackReceiver::start(Some(&ns))?;
    let cb_url = cb.url();
    let seq = std::cell::Cell::new(0usize);
    let call = |path: &str, body: &Value| -> Result<(u16, Value)> {
        let task = format!("task{}", seq.get());
        let (s, b) = http_post(
            &ns,
            &url(path),
            &body.to_string(),
            &[
                ("taskuuid", task.as_str()),
                ("callbackurl", cb_url.as_str()),
            ],
        )
        .with_context(|| format!("agent log:\n{}", agent.log()))?;
        assert_eq!(s, 200, "{b}");
        seq.set(seq.get() + 1);
        let got = cb
            .wait_for(seq.get(), Duration::from_secs(240))
            .with_context(|| format!("no callback for {path}; agent log:\n{}", agent.log()))?;
        let reply = got[seq.get() - 1].json()?;
        let status = if reply["success"] == true { 200 } else { 500 };
        Ok((status, reply))
    };

    let start = json!({
        "vmInstanceUuid": uuid, "vmInternalId": 1, "vmName": "kvm-agent vm test",
        "imagePlatform": "Linux", "cpuNum": 1, "memory": 64u64 << 20, "clock": "utc",
        "machineType": "pc", "videoType": "vga", "consoleMode": "vnc", "bootDev": ["hd"],
        "timeout": 60, "MemAccess": "private", "isApplianceVm": true,
        "rootVolume": {"installPath": disk, "format": "qcow2", "deviceType": "file",
                       "volumeUuid": "0123456789abcdef0123456789abcdef", "useVirtio": true},
        "nics": [
            {"mac": "52:54:00:12:34:01", "bridgeName": br0.0, "nicInternalName": tap0,
             "deviceId": 0, "mtu": 1400, "driverType": "virtio"},
            {"mac": "52:54:00:12:34:02", "bridgeName": br1.0, "nicInternalName": tap1,
             "deviceId": 1, "mtu": 1500, "driverType": "virtio"}],
        "addons": {"channel": {"socketPath": sock, "targetName": "applianceVm.vport"}}
    });
    let (s, v) = call("/vm/start", &start)?;
    assert_eq!(s, 200, "{v}\n{}", agent.log());
    assert_eq!(v["nicInfos"][0]["macAddress"], "52:54:00:12:34:01");
    assert_eq!(v["nicInfos"][0]["deviceAddress"]["type"], "pci", "{v}");
    assert_eq!(v["virtualizerInfo"]["virtualizer"], "qemu-kvm");

    // Taps on the right bridges, with the requested MTU.
    let l0 = masters(&tap0);
    assert!(l0.contains(&format!("master {}", br0.0)), "{l0}");
    assert!(l0.contains("mtu 1400"), "{l0}");
    assert!(masters(&tap1).contains(&format!("master {}", br1.0)));
    // The channel socket exists: qemu listens on it (mode='bind').
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&sock)?.file_type().is_socket());
    // Idempotent start while running.
    let (s, v) = call("/vm/start", &start)?;
    assert_eq!(s, 200, "{v}");
    let (_, v) = call("/vm/vmsync", &json!({}))?;
    assert_eq!(v["states"][&uuid], "Running", "{v}");

    // Bootstrap delivery: the agent connects to qemu's end of the channel
    // and writes the padded JSON. With no guest OS nobody opens the port
    // inside the VM, so qemu takes what fits its socket buffer and the agent
    // must either finish or report a clear error naming the socket; it must
    // never report success for bytes it could not write.
    let info = json!({"applianceVmSubType": "vrouter", "uuid": uuid,
        "managementNic": {"ip": "10.0.0.200", "netmask": "255.255.255.0",
        "gateway": "10.0.0.1", "mac": "52:54:00:12:34:01", "deviceName": "eth0"}});
    let (s, v) = call(
        "/appliancevm/setbootstrapinfo",
        &json!({"socketPath": sock, "bootStrapInfoTimeout": 5, "info": info}),
    )?;
    eprintln!("setbootstrapinfo into a VM without OS: {s} {v}");
    if s != 200 {
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(msg.contains(sock.to_str().unwrap()), "{v}");
    }

    // Console log exists (virtlogd writes it) and is served.
    let (s, v) = call("/vm/console/tail", &json!({"uuid": uuid}))?;
    assert_eq!(s, 200, "{v}");

    // Grace stop: no OS answers ACPI, so it falls back to destroy.
    let (s, v) = call(
        "/vm/stop",
        &json!({"uuid": uuid, "type": "grace", "timeout": 3}),
    )?;
    assert_eq!(s, 200, "{v}\n{}", agent.log());
    assert!(!virsh(&["list", "--all", "--name"])?.contains(&uuid));
    assert!(
        !Path::new(&format!("/sys/class/net/{tap0}")).exists(),
        "tap left behind"
    );
    assert!(!sock.exists(), "channel socket left behind");
    let (s, v) = call("/vm/stop", &json!({"uuid": uuid}))?;
    assert_eq!(s, 200, "stop of a missing VM: {v}");

    // Start again, then destroy.
    let (s, v) = call("/vm/start", &start)?;
    assert_eq!(s, 200, "{v}");
    let (s, v) = call("/vm/destroy", &json!({"uuid": uuid}))?;
    assert_eq!(s, 200, "{v}");
    assert!(!virsh(&["list", "--all", "--name"])?.contains(&uuid));
    let (_, v) = call("/vm/vmsync", &json!({}))?;
    assert!(v["states"].get(&uuid).is_none(), "{v}");
    Ok(())
}

fn rand_u64() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32)
}
