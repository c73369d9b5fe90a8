//! NIC hot-plug with a real guest (the VR image under TCG): `/vm/attachnic`
//! gives the running guest a new PCI NIC (the guest kernel enumerates it,
//! seen on its console), `/vm/detachnic` takes it away and completes only
//! because the guest acknowledges the unplug (vm_qemu shows that a VM
//! without an OS never does). Private libvirtd in a namespace, as vm_qemu.
//!
//! Needs the image (`images/build` as root, or `$VR_IMAGE_DIR`); skips with a
//! message without it unless `REQUIRE_VM=1`. Slow (a TCG boot): about a
//! minute on two cores.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use testbed::{Netns, TempDir, http_post};

const UUID: &str = "0e0e0000000000000000000000007a01";
const NEW_MAC: &str = "52:54:00:7a:00:02";

fn skip_or_fail(why: &str) {
    if std::env::var("REQUIRE_VM").as_deref() == Ok("1") {
        panic!("REQUIRE_VM=1 but the guest hot-plug test cannot run: {why}");
    }
    eprintln!("skipped: {why}");
}

/// The image, readable by libvirt's qemu user from any checkout path.
fn image_dir() -> PathBuf {
    testbed::vr_image_dir()
}

struct DomainGuard(String);
impl Drop for DomainGuard {
    fn drop(&mut self) {
        let _ = testbed::libvirt::virsh(&self.0, &["destroy", UUID]);
        let _ = testbed::libvirt::virsh(&self.0, &["undefine", UUID]);
    }
}

/// How often the guest kernel announced a virtio-net PCI function.
fn virtio_net_seen(console: &str) -> usize {
    console.matches("[1af4:1000]").count()
}

#[test]
fn guest_sees_hot_plugged_nic_and_releases_it() -> Result<()> {
    if let Some(why) = testbed::unprivileged_reason() {
        skip_or_fail(&why);
        return Ok(());
    }
    let images = image_dir();
    for f in ["vr.qcow2", "vmlinuz", "initrd.img"] {
        if !images.join(f).is_file() {
            skip_or_fail(&format!(
                "{} is missing: run `images/build` as root first",
                images.join(f).display()
            ));
            return Ok(());
        }
    }
    let images = images.canonicalize()?;
    let host = Netns::new("hpg")?;
    let dir = TempDir::new("kvm-hotplug")?;
    let uri = match testbed::libvirt::private_libvirt(host.name(), true, dir.path()) {
        Ok(uri) => uri,
        Err(e) => {
            skip_or_fail(&format!("cannot run libvirtd in a namespace: {e:#}"));
            return Ok(());
        }
    };
    let _guard = DomainGuard(uri.clone());
    testbed::bridge(&host, "br0")?;
    testbed::bridge(&host, "br1")?;
    let overlay = dir.path().join("root.qcow2");
    let st = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(images.join("vr.qcow2"))
        .arg(&overlay)
        .status()?;
    assert!(st.success(), "qemu-img create overlay");
    let agent = host.spawn(
        env!("CARGO_BIN_EXE_kvm-agent"),
        &[
            "--listen",
            "127.0.0.1:7073",
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
            "--libvirt-uri",
            &uri,
            "--domain-type",
            "qemu",
            "--console-log-dir",
            dir.path().join("console").to_str().unwrap(),
            "--vnc-listen",
            "127.0.0.1",
            "--allow-from",
            "127.0.0.1",
            "--socket-dir",
            dir.path().join("sock").to_str().unwrap(),
            "--volume-dir",
            dir.path().to_str().unwrap(),
            "--image-dir",
            images.to_str().unwrap(),
        ],
    )?;
    let url = |p: &str| format!("http://127.0.0.1:7073{p}");
    let up = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        http_post(&host, &url("/host/echo"), "", &[]).is_ok_and(|(s, _)| s == 200)
    });
    assert!(up, "agent did not answer: {}", agent.log());
    // Async as the node calls it: the detach may take seconds.
    let cb = testbed::CallbackReceiver::start(Some(&host))?;
    let cb_url = cb.url();
    let seq = std::cell::Cell::new(0usize);
    let call = |path: &str, body: &Value| -> Result<Value> {
        let task = format!("task{}", seq.get());
        let (s, b) = http_post(
            &host,
            &url(path),
            &body.to_string(),
            &[("taskuuid", &task), ("callbackurl", &cb_url)],
        )?;
        assert_eq!(s, 200, "{b}");
        seq.set(seq.get() + 1);
        let got = cb
            .wait_for(seq.get(), Duration::from_secs(240))
            .with_context(|| format!("no callback for {path}; agent log:\n{}", agent.log()))?;
        got[seq.get() - 1].json()
    };
    let console = || -> String {
        call(
            "/vm/console/tail",
            &json!({"uuid": UUID, "maxBytes": 1 << 20}),
        )
        .map(|v| v["tail"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
    };

    let start = json!({
        "vmInstanceUuid": UUID, "cpuNum": 1, "memory": 512u64 << 20, "timeout": 120,
        "machineType": "pc", "bootDev": ["hd"], "isApplianceVm": true,
        "rootVolume": {"installPath": overlay, "format": "qcow2", "deviceType": "file",
                       "volumeUuid": "0e0e00000000000000000000000b0001", "useVirtio": true},
        "nics": [{"mac": "52:54:00:7a:00:01", "bridgeName": "br0", "nicInternalName": "vnic7.0",
                  "deviceId": 0, "driverType": "virtio"}],
        "addons": {"directKernelBoot": {"kernel": images.join("vmlinuz"),
                                        "initrd": images.join("initrd.img"),
                                        "cmdline": "root=/dev/vda rw console=ttyS0"}}
    });
    let v = call("/vm/start", &start)?;
    assert_eq!(v["success"], true, "{v}\n{}", agent.log());
    // The guest is up when systemd has started its units (ACPI hot-plug is
    // handled by the kernel from then on).
    let t0 = Instant::now();
    let booted = testbed::wait_until(Duration::from_secs(180), Duration::from_secs(1), || {
        let c = console();
        c.contains("vr-agent") || c.contains("Reached target")
    });
    if !booted {
        bail!("guest did not boot in 180 s; console:\n{}", console());
    }
    eprintln!("guest booted after {:.1} s", t0.elapsed().as_secs_f64());
    std::thread::sleep(Duration::from_secs(3));
    let before = virtio_net_seen(&console());
    assert!(
        before >= 1,
        "boot NIC not seen on the console:\n{}",
        console()
    );

    let nic = json!({"mac": NEW_MAC, "bridgeName": "br1", "nicInternalName": "vnic7.1",
                     "uuid": "0e0e0000000000000000000000000c02", "deviceId": 1,
                     "driverType": "virtio", "mtu": 1400});
    let v = call("/vm/attachnic", &json!({"vmUuid": UUID, "nic": nic}))?;
    assert_eq!(v["success"], true, "{v}\n{}", agent.log());
    assert_eq!(
        v["virtualDeviceInfoList"][0]["deviceAddress"]["type"],
        "pci"
    );
    let l = host.sh("ip -o link show dev vnic7.1")?;
    assert!(l.contains("master br1") && l.contains("mtu 1400"), "{l}");
    let seen = testbed::wait_until(Duration::from_secs(30), Duration::from_millis(500), || {
        virtio_net_seen(&console()) > before
    });
    assert!(
        seen,
        "the guest never enumerated the new NIC:\n{}",
        console()
    );

    let t1 = Instant::now();
    let v = call("/vm/detachnic", &json!({"vmUuid": UUID, "nic": nic}))?;
    assert_eq!(v["success"], true, "{v}\n{}", agent.log());
    eprintln!("detach completed in {:.1} s", t1.elapsed().as_secs_f64());
    assert!(
        host.sh("ip -o link show dev vnic7.1").is_err(),
        "tap still there after a successful detach"
    );
    let xml = testbed::libvirt::virsh(&uri, &["dumpxml", UUID])?;
    assert!(!xml.contains(NEW_MAC), "NIC still in the live XML");
    let v = call("/vm/destroy", &json!({"uuid": UUID}))?;
    assert_eq!(v["success"], true, "{v}");
    Ok(())
}
