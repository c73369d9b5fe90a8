//! Issue 7, end to end: the VR as a real VM from `images/out` through
//! kvm-agent and libvirt (TCG here), its services configured by the
//! controller's commands and proven with real traffic.
//!
//! ```text
//!  net (10.0.0.1: gateway, controller, upstream DNS, TCP server)
//!   | eth0 (veth)
//!  host: br_eth0 (eth0, 10.0.0.21)      br_eth1 (eth1, no address)
//!          | tap                           | tap          | eth1 (veth)
//!          +-- VR eth0 10.0.0.25 (mgmt+public)           |
//!              VR eth1 192.168.100.1 (private) -------- tenant (DHCP .10)
//! ```
//!
//! kvm-agent runs in `host`, creates both bridges there and starts the VR.
//! qemu is spawned by libvirtd, so the test runs its OWN libvirtd (and
//! virtlogd, started by `testbed::libvirt::private_libvirt`) inside `host`,
//! with private tmpfs mounts over /run/libvirt,
//! /etc/libvirt/qemu, /var/lib/libvirt and /var/cache/libvirt (in the mount
//! namespace `ip netns exec` creates, which does not propagate to the root
//! one): it never stops or disturbs a libvirtd of the root namespace, and
//! neither sees the other's domains. kvm-agent and virsh reach it through
//! `qemu:///system?socket=/proc/<pid>/root/run/libvirt/libvirt-sock`.
//!
//! Under TCG (the default, `E2E_DOMAIN_TYPE=kvm` for real KVM hosts) that
//! libvirtd also gets a /dev/kvm it cannot use: here /dev/kvm is root-only
//! (0600), so qemu's capability probe finds KVM while libvirt's access check
//! as libvirt-qemu does not, and libvirt throws its cache away and probes
//! qemu again (about 4 s) at every lookup: that was the "first define takes
//! a minute" of PLATFORM.md, and it cost every define (~75 s per start).
//! With KVM plainly unavailable the cache stays valid and a start takes
//! about 0.4 s. (`namespaces = []` in its qemu.conf: libvirt cannot
//! recreate a bind-mounted /dev/kvm in a per-domain /dev.)
//!
//! Skips with a message when the image, libvirtd or qemu are missing,
//! unless `REQUIRE_VM=1`, which turns every skip into a failure. Prints one
//! `boot-to-ready: N.N s` line per boot (request to `/echo` 200) and their
//! median (`cargo test -p kvm-agent --test e2e_vr -- --nocapture`).
//! The image is `images/out` (`images/build` as root), or `$VR_IMAGE_DIR`.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use testbed::{CallbackReceiver, Netns, Proc, TcpServer, TempDir, http_post, tcp_probe};

const MGMT_MAC: &str = "52:54:00:7e:00:01";
const PRIV_MAC: &str = "52:54:00:7e:00:02";
const TENANT_MAC: &str = "fa:a1:5e:12:34:56";
const VR_UUID: &str = "e2e0000000000000000000000000a001";
const VR_MGMT: &str = "10.0.0.25";
const VR_AGENT: &str = "http://10.0.0.25:7272";
const KVM: &str = "http://127.0.0.1:7070";
const T: Duration = Duration::from_secs(3);
/// Grace period of stop and reboot. vr-agent powers the VR off on the ACPI
/// power button, so a grace stop must end well inside it (checked below).
const GRACE_SECS: u64 = 30;

fn skip_or_fail(why: &str) {
    if std::env::var("REQUIRE_VM").as_deref() == Ok("1") {
        panic!("REQUIRE_VM=1 but the end-to-end VR test cannot run: {why}");
    }
    eprintln!("skipped: {why}");
}

fn have(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The image, readable by libvirt's qemu user from any checkout path.
fn image_dir() -> PathBuf {
    testbed::vr_image_dir()
}

/// What is missing for this test, if anything.
fn missing() -> Option<String> {
    for p in [
        "libvirtd",
        "virtlogd",
        "qemu-system-x86_64",
        "qemu-img",
        "virsh",
        "dnsmasq",
        "busybox",
        "dig",
        "curl",
    ] {
        if !have(p) {
            return Some(format!(
                "{p} is not installed (libvirt-daemon-system, qemu-system-x86, qemu-utils, dnsmasq, busybox, dnsutils, curl)"
            ));
        }
    }
    let dir = image_dir();
    for f in ["vr.qcow2", "vmlinuz", "initrd.img"] {
        if !dir.join(f).is_file() {
            return Some(format!(
                "{} is missing: run `images/build` as root first",
                dir.join(f).display()
            ));
        }
    }
    None
}

/// The private libvirtd of `vrctl lab` (`testbed::libvirt`), in the host
/// namespace with private runtime, config and state directories. The host
/// namespace's Drop ends it with everything else running there.
struct Libvirt {
    uri: String,
}

impl Libvirt {
    fn virsh(&self, args: &[&str]) -> Result<String> {
        Ok(testbed::libvirt::virsh(&self.uri, args)?)
    }
}

/// Whatever happens, our domain does not outlive the test.
struct DomainGuard<'a>(&'a Libvirt);
impl Drop for DomainGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.virsh(&["destroy", VR_UUID]);
        let _ = self.0.virsh(&["undefine", VR_UUID]);
    }
}

/// kvm-agent driven the controller's way: async (200 at once, the reply by
/// callback), so slow libvirt operations never hit an HTTP timeout.
struct KvmAgent<'a> {
    ns: &'a Netns,
    proc: Proc,
    cb: CallbackReceiver,
    seq: Cell<usize>,
}

impl KvmAgent<'_> {
    fn call(&self, path: &str, body: &Value) -> Result<Value> {
        let task = format!("task{}", self.seq.get());
        let cb_url = self.cb.url();
        let (s, b) = http_post(
            self.ns,
            &format!("{KVM}{path}"),
            &body.to_string(),
            &[
                ("taskuuid", task.as_str()),
                ("callbackurl", cb_url.as_str()),
            ],
        )
        .with_context(|| format!("{path}; agent log:\n{}", self.proc.log()))?;
        if s != 200 {
            bail!("{path} answered {s}: {b}");
        }
        self.seq.set(self.seq.get() + 1);
        let got = self
            .cb
            .wait_for(self.seq.get(), Duration::from_secs(300))
            .with_context(|| format!("no callback for {path}; agent log:\n{}", self.proc.log()))?;
        let reply = got[self.seq.get() - 1].json()?;
        if reply["success"] != true {
            bail!("{path} failed: {reply}\nagent log:\n{}", self.proc.log());
        }
        Ok(reply)
    }

    fn console(&self) -> String {
        self.call(
            "/vm/console/tail",
            &json!({"uuid": VR_UUID, "maxBytes": 6000}),
        )
        .map(|v| v["tail"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|e| format!("<no console: {e:#}>"))
    }
}

/// The document the controller pushes after start (ZStack's shape).
fn bootstrap(sock: &Path) -> Value {
    json!({"socketPath": sock, "bootStrapInfoTimeout": 60, "info": {
        "applianceVmSubType": "vrouter", "uuid": VR_UUID, "managementNodeIp": "10.0.0.1",
        "managementNic": {"category": "Management", "deviceName": "eth0", "ip": VR_MGMT,
            "netmask": "255.255.255.0", "gateway": "10.0.0.1", "isDefaultRoute": true,
            "mac": MGMT_MAC, "mtu": 1500, "l2type": "L2NoVlanNetwork", "physicalInterface": "eth0"},
        "additionalNics": [{"category": "Private", "deviceName": "eth1", "ip": "192.168.100.1",
            "netmask": "255.255.255.0", "isDefaultRoute": false, "mac": PRIV_MAC, "mtu": 1500,
            "l2type": "L2NoVlanNetwork", "physicalInterface": "eth1"}]}})
}

/// One short `/echo` attempt from the controller's namespace.
fn echo(net: &Netns) -> bool {
    net.command(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--connect-timeout",
            "0.5",
            "-m",
            "1",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            "{}",
            &format!("{VR_AGENT}/echo"),
        ],
    )
    .output()
    .is_ok_and(|o| o.stdout == b"200")
}

/// Waits for `/echo` and prints the figure; the error carries the console.
fn wait_ready(net: &Netns, kvm: &KvmAgent, t0: Instant, what: &str) -> Result<f64> {
    if !testbed::wait_until(Duration::from_secs(120), Duration::from_millis(50), || {
        echo(net)
    }) {
        bail!(
            "{what}: /echo on {VR_MGMT} did not answer within 120 s; console:\n{}",
            kvm.console()
        );
    }
    let s = t0.elapsed().as_secs_f64();
    eprintln!("boot-to-ready: {s:.1} s ({what})");
    Ok(s)
}

/// A sync-mode command to the vr-agent that must succeed.
fn vr(net: &Netns, path: &str, body: Value) -> Result<Value> {
    let (code, text) = http_post(net, &format!("{VR_AGENT}{path}"), &body.to_string(), &[])?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{path} answered {code}: {text}"))?;
    if code != 200 || v["success"] == false {
        bail!("{path} answered {code}: {v}");
    }
    Ok(v)
}

/// One DHCP exchange in the tenant, which takes the address; its options.
fn dhcp(tenant: &Netns, dir: &Path) -> Result<Vec<(String, String)>> {
    testbed::dhcp_lease(tenant, "eth0", 10, true, dir)
        .map(|l| l.into_iter().collect())
        .context("udhcpc got no lease")
}

fn dig(tenant: &Netns, name: &str) -> String {
    tenant
        .sh(&format!(
            "dig @192.168.100.1 {name} +short +time=2 +tries=2"
        ))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn source(seen: &str) -> &str {
    seen.split(':').next().unwrap_or("")
}

/// The datapath the VR must keep across reboots without any command:
/// EIP and port forward from outside, the tenant's way out through its EIP.
fn check_nat(net: &Netns, tenant: &Netns, within: Duration) -> Result<()> {
    let seen = testbed::wait_ok(within, Duration::from_millis(200), || {
        tcp_probe(net, "10.0.0.101:80", T)
    })
    .context("EIP 10.0.0.101 -> tenant:80")?;
    assert_eq!(source(&seen), "10.0.0.1", "EIP inbound keeps the source");
    let seen = tcp_probe(net, "10.0.0.100:8080", T).context("PF 10.0.0.100:8080 -> tenant:80")?;
    assert_eq!(source(&seen), "10.0.0.1", "port forward keeps the source");
    let seen = tcp_probe(tenant, "10.0.0.1:80", T).context("tenant -> net through its EIP")?;
    assert_eq!(
        source(&seen),
        "10.0.0.101",
        "the tenant leaves through its EIP"
    );
    Ok(())
}

#[test]
fn vr_vm_end_to_end_services_survive_reboot_and_stop_start() -> Result<()> {
    testbed::require_privileged!(Ok(()));
    if let Some(why) = missing() {
        skip_or_fail(&why);
        return Ok(());
    }
    let root_before = testbed::root_view();
    let images = image_dir().canonicalize()?;

    // Topology.
    let net = Netns::new("net")?;
    let host = Netns::new("host")?;
    let tenant = Netns::new("tenant")?;
    testbed::veth(&host, "eth0", &net, "eth0")?;
    testbed::veth(&host, "eth1", &tenant, "eth0")?;
    testbed::addr(&net, "eth0", "10.0.0.1/24")?;
    testbed::addr(&host, "eth0", "10.0.0.21/24")?;
    testbed::route(&host, "default via 10.0.0.1")?;
    testbed::set_mac(&tenant, "eth0", TENANT_MAC)?;
    let _upstream = testbed::upstream_dns(&net, "10.0.0.1")?;
    let _outside = TcpServer::start(&net, "0.0.0.0:80")?;
    let _web = TcpServer::start(&tenant, "0.0.0.0:80")?;

    let dir = TempDir::new("e2evr")?;
    let overlay = dir.path().join("vr-root.qcow2");
    let st = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(images.join("vr.qcow2"))
        .arg(&overlay)
        .status()?;
    assert!(st.success(), "qemu-img create overlay");
    let sock = dir.path().join(format!("sock/applianceVm.{VR_UUID}"));

    let domain_type = std::env::var("E2E_DOMAIN_TYPE").unwrap_or_else(|_| "qemu".into());
    let libvirt =
        match testbed::libvirt::private_libvirt(host.name(), domain_type == "qemu", dir.path()) {
            Ok(uri) => Libvirt { uri },
            Err(e) => {
                skip_or_fail(&format!("cannot run libvirtd in a namespace: {e:#}"));
                return Ok(());
            }
        };
    let proc = host.spawn(
        env!("CARGO_BIN_EXE_kvm-agent"),
        &[
            "--listen",
            "127.0.0.1:7070",
            "--state-dir",
            dir.path().join("kvm-state").to_str().unwrap(),
            "--libvirt-uri",
            &libvirt.uri,
            "--domain-type",
            &domain_type,
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
    let up = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        http_post(&host, &format!("{KVM}/host/echo"), "", &[]).is_ok_and(|(s, _)| s == 200)
    });
    assert!(up, "kvm-agent did not answer: {}", proc.log());
    let kvm = KvmAgent {
        ns: &host,
        cb: CallbackReceiver::start(Some(&host))?,
        proc,
        seq: Cell::new(0),
    };
    let _guard = DomainGuard(&libvirt);

    // 1. The host's L2: eth0 -> br_eth0 (the IP moves), eth1 -> br_eth1.
    for (nic, br, l2) in [("eth0", "br_eth0", "a1"), ("eth1", "br_eth1", "a2")] {
        kvm.call(
            "/network/l2novlan/createbridge",
            &json!({"physicalInterfaceName": nic, "bridgeName": br,
                    "l2NetworkUuid": format!("{l2:0<32}")}),
        )?;
    }
    assert!(testbed::ping(&host, "10.0.0.1", 1), "host lost its uplink");
    assert!(
        host.sh("ip -br addr show br_eth0")?
            .contains("10.0.0.21/24")
    );

    // 2. The VR: direct kernel boot from the image, root on a qcow2 overlay.
    let start = json!({
        "vmInstanceUuid": VR_UUID, "vmInternalId": 1, "vmName": "vrouter.e2e",
        "imagePlatform": "Linux", "cpuNum": 1, "memory": 512u64 << 20, "clock": "utc",
        "machineType": "pc", "videoType": "vga", "consoleMode": "vnc", "bootDev": ["hd"],
        "timeout": 120, "isApplianceVm": true, "hostManagementIp": "10.0.0.21",
        "rootVolume": {"installPath": overlay, "format": "qcow2", "deviceType": "file",
                       "volumeUuid": "e2e0000000000000000000000000b001", "useVirtio": true},
        "nics": [
            {"mac": MGMT_MAC, "bridgeName": "br_eth0", "physicalInterface": "eth0",
             "nicInternalName": "vnic1.0", "deviceId": 0, "mtu": 1500, "driverType": "virtio"},
            {"mac": PRIV_MAC, "bridgeName": "br_eth1", "physicalInterface": "eth1",
             "nicInternalName": "vnic1.1", "deviceId": 1, "mtu": 1500, "driverType": "virtio"}],
        "addons": {
            "channel": {"socketPath": sock, "targetName": "applianceVm.vport"},
            "directKernelBoot": {"kernel": images.join("vmlinuz"),
                                 "initrd": images.join("initrd.img"),
                                 "cmdline": "root=/dev/vda rw console=ttyS0 quiet"}}
    });
    let mut figures = vec![];
    let t0 = Instant::now();
    kvm.call("/vm/start", &start)?;
    let started = t0.elapsed().as_secs_f64();
    kvm.call("/appliancevm/setbootstrapinfo", &bootstrap(&sock))?;
    eprintln!(
        "first start: /vm/start replied after {started:.1} s, bootstrap pushed after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    for (tap, br) in [("vnic1.0", "br_eth0"), ("vnic1.1", "br_eth1")] {
        let l = host.sh(&format!("ip -o link show dev {tap}"))?;
        assert!(l.contains(&format!("master {br}")), "{l}");
    }
    figures.push(wait_ready(&net, &kvm, t0, "first start")?);
    let ping = vr(&net, "/ping", json!({}))?;
    assert_eq!(ping["uuid"], "", "not initialised yet: {ping}");

    // 3. The controller's commands, in its order.
    vr(&net, "/init", json!({"uuid": VR_UUID}))?;
    assert_eq!(vr(&net, "/ping", json!({}))?["uuid"], VR_UUID);
    vr(
        &net,
        "/configurenic",
        json!({"nics": [
            {"ip": VR_MGMT, "mac": MGMT_MAC, "netmask": "255.255.255.0", "gateway": "10.0.0.1",
             "isDefaultRoute": true, "category": "Management"},
            {"ip": "192.168.100.1", "mac": PRIV_MAC, "netmask": "255.255.255.0",
             "category": "Private", "firewallDefaultAction": "reject"}]}),
    )?;
    vr(
        &net,
        "/setdns",
        json!({"dns": [{"dnsAddress": "10.0.0.1", "nicMac": PRIV_MAC}]}),
    )?;
    vr(
        &net,
        "/refreshDhcpServer",
        json!({"dhcpServers": [{"nicMac": PRIV_MAC, "subnet": "192.168.100.0/24",
            "netmask": "255.255.255.0", "gateway": "192.168.100.1", "dnsDomain": "zstack.local",
            "dnsServer": "192.168.100.1", "mtu": 1500,
            "dhcpInfos": [{"ip": "192.168.100.10", "mac": TENANT_MAC,
                           "hostname": "web-01.zstack.local", "isDefaultL3Network": true}]}]}),
    )?;
    vr(
        &net,
        "/syncsnat",
        json!({"snats": [{"publicNicMac": MGMT_MAC, "publicIp": VR_MGMT, "privateNicMac": PRIV_MAC,
            "privateNicIp": "192.168.100.1", "privateGatewayIp": "192.168.100.1",
            "snatNetmask": "255.255.255.0", "state": true}], "enable": true}),
    )?;

    // DHCP, DNS and SNAT with real packets.
    let lease = dhcp(&tenant, dir.path())?;
    let get = |k: &str| {
        lease
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    assert_eq!(get("ip"), "192.168.100.10", "{lease:?}");
    assert_eq!(get("router"), "192.168.100.1", "{lease:?}");
    assert_eq!(get("dns"), "192.168.100.1", "{lease:?}");
    assert_eq!(dig(&tenant, "web-01.zstack.local"), "192.168.100.10");
    assert_eq!(dig(&tenant, "www.example.test"), "203.0.113.7");
    let seen = tcp_probe(&tenant, "10.0.0.1:80", T)?;
    assert_eq!(source(&seen), VR_MGMT, "SNAT to the VR's public IP");

    // VIPs, a port forward and an EIP.
    let vip = |ip: &str| {
        json!({"ip": ip, "netmask": "255.255.255.0", "gateway": "10.0.0.1",
               "ownerEthernetMac": MGMT_MAC})
    };
    vr(
        &net,
        "/createvip",
        json!({"vips": [vip("10.0.0.100"), vip("10.0.0.101")]}),
    )?;
    vr(
        &net,
        "/syncportforwarding",
        json!({"rules": [{"uuid": "pf-web", "vipPortStart": 8080, "vipPortEnd": 8080,
            "privatePortStart": 80, "privatePortEnd": 80, "protocolType": "TCP",
            "vipIp": "10.0.0.100", "publicMac": MGMT_MAC, "privateIp": "192.168.100.10",
            "privateMac": PRIV_MAC, "snatInboundTraffic": false}]}),
    )?;
    vr(
        &net,
        "/synceip",
        json!({"eips": [{"vipIp": "10.0.0.101", "privateMac": PRIV_MAC, "publicMac": MGMT_MAC,
            "guestIp": "192.168.100.10", "snatInboundTraffic": false}]}),
    )?;
    check_nat(&net, &tenant, T)?;

    // 4. Reboot through kvm-agent: a new qemu, so the bootstrap info is
    // pushed again (as the controller's reboot chain does). The datapath
    // comes back from the VR's persisted state, before any command.
    let t0 = Instant::now();
    kvm.call(
        "/vm/reboot",
        &json!({"uuid": VR_UUID, "timeout": GRACE_SECS}),
    )?;
    let stop_secs = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    kvm.call("/appliancevm/setbootstrapinfo", &bootstrap(&sock))?;
    eprintln!("reboot: stop + define + start took {stop_secs:.1} s");
    figures.push(wait_ready(
        &net,
        &kvm,
        t1,
        "after reboot, from the restarted domain",
    )?);
    eprintln!(
        "reboot: from the /vm/reboot request: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let ping = vr(&net, "/ping", json!({}))?;
    assert_eq!(ping["uuid"], "", "uuid is empty until /init: {ping}");
    check_nat(&net, &tenant, Duration::from_secs(20))
        .with_context(|| format!("datapath after reboot; console:\n{}", kvm.console()))?;
    assert_eq!(
        dig(&tenant, "www.example.test"),
        "203.0.113.7",
        "DNS after reboot"
    );

    // 5. Stop, then start again (same command, same overlay).
    let t0 = Instant::now();
    kvm.call(
        "/vm/stop",
        &json!({"uuid": VR_UUID, "type": "grace", "timeout": GRACE_SECS}),
    )?;
    let stop_secs = t0.elapsed().as_secs_f64();
    eprintln!("stop (grace): {stop_secs:.1} s");
    assert!(
        stop_secs < GRACE_SECS as f64 / 2.0,
        "the VR ignored the ACPI power button: a grace stop took {stop_secs:.1} s"
    );
    assert!(
        !libvirt
            .virsh(&["list", "--all", "--name"])?
            .contains(VR_UUID)
    );
    assert!(tcp_probe(&net, "10.0.0.101:80", T).is_err(), "VR is down");
    let t0 = Instant::now();
    kvm.call("/vm/start", &start)?;
    let started = t0.elapsed().as_secs_f64();
    kvm.call("/appliancevm/setbootstrapinfo", &bootstrap(&sock))?;
    eprintln!(
        "second start: /vm/start replied after {started:.1} s, bootstrap pushed after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    figures.push(wait_ready(&net, &kvm, t0, "stop + start")?);
    let ping = vr(&net, "/ping", json!({}))?;
    assert_eq!(ping["uuid"], "", "uuid is empty until /init: {ping}");
    check_nat(&net, &tenant, Duration::from_secs(20))
        .with_context(|| format!("datapath after stop + start; console:\n{}", kvm.console()))?;
    tenant.ip("addr flush dev eth0")?;
    let lease = dhcp(&tenant, dir.path())?;
    assert!(
        lease.contains(&("ip".into(), "192.168.100.10".into())),
        "{lease:?}"
    );

    // 6. Destroy: nothing left.
    kvm.call("/vm/destroy", &json!({"uuid": VR_UUID}))?;
    assert_eq!(libvirt.virsh(&["list", "--all", "--name"])?.trim(), "");
    let v = kvm.call("/vm/vmsync", &json!({}))?;
    assert!(v["states"].get(VR_UUID).is_none(), "{v}");
    assert!(!sock.exists(), "channel socket left behind");

    let mut sorted = figures.clone();
    sorted.sort_by(f64::total_cmp);
    eprintln!(
        "boot-to-ready: median {:.1} s over {} boots ({domain_type}): {}",
        sorted[sorted.len() / 2],
        figures.len(),
        figures
            .iter()
            .map(|f| format!("{f:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert_eq!(
        testbed::root_view(),
        root_before,
        "the root namespace changed"
    );
    Ok(())
}
