//! The conformance suite (conformance/README.md): every fixture under
//! `conformance/kvm` through the real router, over the fakes of kernel,
//! sysctl, host files, hypervisor (domain XML parsed by libvirt's test
//! driver) and anti-spoofing guard, sent the way
//! `RESTFacadeImpl` sends it: async with `taskuuid`/`callbackurl` headers and
//! the reply taken from the callback, or sync with the reply in the body.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvm_agent::api::{Agent, VmSide, router};
use kvm_agent::netstate::{Addr, Link, Observed, Route, TABLE_MAIN};
use kvm_agent::paths::HostDirs;
use kvm_agent::plan::domain::{DomainOptions, DomainType};
use kvm_agent::sys::antispoof::FakeGuard;
use kvm_agent::sys::hostinfo::HostProbe;
use kvm_agent::sys::hypervisor::{
    DomainSummary, FakeHypervisor, Hypervisor, HypervisorError, Libvirt,
};
use kvm_agent::sys::netlink::FakeNetlink;
use kvm_agent::sys::sysctl::FakeSysctl;
use serde_json::Value;
use testbed::conformance::{self, Fixture, exchange};
use testbed::{CallbackReceiver, TempDir};

fn link(index: u32, name: &str, mac: &str) -> Link {
    Link {
        index,
        name: name.into(),
        kind: Some("veth".into()),
        mac: Some(mac.parse().unwrap()),
        mtu: 1500,
        up: true,
        master: None,
        alias: None,
        bridge: None,
        isolated: false,
    }
}

/// The reference host (zstack-kvm-protocol.md section 7): eth0 with
/// 10.0.0.21/24 and the default route via 10.0.0.1, eth1 without address.
fn kernel() -> Observed {
    let ip = "10.0.0.21".parse().unwrap();
    Observed {
        links: vec![
            link(2, "eth0", "52:54:00:00:00:21"),
            link(3, "eth1", "52:54:00:00:01:21"),
        ],
        addrs: vec![Addr {
            link: "eth0".into(),
            address: ip,
            local: Some(ip),
            prefix_len: 24,
            scope: 0,
            flags: 0x80,
            label: Some("eth0".into()),
            broadcast: None,
            lifetimes: None,
        }],
        routes: vec![Route {
            v6: false,
            table: TABLE_MAIN,
            dst: None,
            dst_len: 0,
            src_len: 0,
            tos: 0,
            protocol: 3,
            scope: 0,
            kind: 1,
            flags: 0,
            gateway: Some("10.0.0.1".parse().unwrap()),
            oif: Some("eth0".into()),
            prefsrc: None,
            metric: None,
            multipath: false,
            extra: vec![],
        }],
    }
}

/// A host's /proc and /sys as the probe reads them: two Intel CPUs with
/// vmx and ept, 64 GiB, Debian.
fn host_root(root: &Path) {
    let cpu = |n: u32| {
        format!(
            "processor\t: {n}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz\nphysical id\t: 0\ncpu MHz\t\t: 2100.000\nflags\t\t: fpu vme sse2 vmx ept lm\n\n"
        )
    };
    let files = [
        ("proc/cpuinfo", format!("{}{}", cpu(0), cpu(1))),
        (
            "proc/meminfo",
            "MemTotal: 70000000 kB\nMemAvailable: 67108864 kB\n".into(),
        ),
        ("proc/stat", "cpu 1 2 3\nbtime 1764547200\n".into()),
        ("sys/devices/system/cpu/online", "0-1\n".into()),
        (
            "etc/os-release",
            "ID=debian\nVERSION_ID=\"13\"\nVERSION_CODENAME=trixie\n".into(),
        ),
        ("sys/class/dmi/id/product_name", "ProLiant DL360\n".into()),
        ("sys/class/dmi/id/product_serial", "CZ1234\n".into()),
        ("sys/class/dmi/id/sys_vendor", "HPE\n".into()),
        (
            "sys/class/dmi/id/product_uuid",
            "30393137-3136-5a43-3231-313030304142\n".into(),
        ),
        ("sys/class/dmi/id/bios_vendor", "HPE\n".into()),
        ("sys/class/dmi/id/bios_version", "U32\n".into()),
        ("sys/class/dmi/id/bios_date", "01/01/2024\n".into()),
    ];
    for (rel, text) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// The fake hypervisor, except that every domain XML is first defined (and
/// removed again) on libvirt's in-process test driver: libvirt's own parser
/// refuses what a real libvirtd would (e.g. a boot menu timeout over
/// 65535 ms), which the fake alone would accept.
struct ParsedByLibvirt {
    fake: FakeHypervisor,
    libvirt: Libvirt,
}

fn domain_name(xml: &str) -> Option<&str> {
    let s = xml.find("<name>")? + "<name>".len();
    Some(&xml[s..s + xml[s..].find("</name>")?])
}

impl ParsedByLibvirt {
    fn new() -> Self {
        virt::error::clear_error_callback();
        ParsedByLibvirt {
            fake: FakeHypervisor::default(),
            libvirt: Libvirt::open("test:///default")
                .expect("test:///default is built into libvirt"),
        }
    }
}

impl Hypervisor for ParsedByLibvirt {
    fn lookup(&self, name: &str) -> Result<Option<DomainSummary>, HypervisorError> {
        self.fake.lookup(name)
    }
    fn list(&self) -> Result<Vec<DomainSummary>, HypervisorError> {
        self.fake.list()
    }
    fn define(&self, xml: &str) -> Result<(), HypervisorError> {
        self.libvirt.define(xml)?;
        if let Some(name) = domain_name(xml) {
            self.libvirt.undefine(name)?;
        }
        self.fake.define(xml)
    }
    fn start(&self, name: &str, paused: bool) -> Result<(), HypervisorError> {
        self.fake.start(name, paused)
    }
    fn shutdown(&self, name: &str) -> Result<(), HypervisorError> {
        self.fake.shutdown(name)
    }
    fn destroy(&self, name: &str) -> Result<(), HypervisorError> {
        self.fake.destroy(name)
    }
    fn undefine(&self, name: &str) -> Result<(), HypervisorError> {
        self.fake.undefine(name)
    }
    fn xml(&self, name: &str, inactive: bool) -> Result<String, HypervisorError> {
        self.fake.xml(name, inactive)
    }
    fn kill_leftovers(&self, name: &str) -> usize {
        self.fake.kill_leftovers(name)
    }
    fn virtualizer(&self) -> (String, String) {
        self.fake.virtualizer()
    }
    fn attach_device(&self, name: &str, xml: &str) -> Result<(), HypervisorError> {
        self.fake.attach_device(name, xml)
    }
    fn detach_device(&self, name: &str, xml: &str) -> Result<(), HypervisorError> {
        self.fake.detach_device(name, xml)
    }
    fn capabilities(&self) -> Result<String, HypervisorError> {
        self.fake.capabilities()
    }
}

/// One agent over fresh fakes: kernel, sysctl, host files, hypervisor and
/// anti-spoofing guard
/// (libvirt's test driver cannot hot-plug NICs nor name a host CPU model).
fn agent(dir: &Path) -> axum::Router {
    host_root(&dir.join("host"));
    let sysctl = FakeSysctl::default();
    sysctl
        .values
        .lock()
        .unwrap()
        .insert("net/bridge/bridge-nf-call-iptables".into(), "0".into());
    let mut a = Agent::new(
        Arc::new(FakeNetlink::new(kernel())),
        Arc::new(sysctl),
        dir.join("state"),
    )
    .with_vm(
        VmSide::new(
            Some(Arc::new(ParsedByLibvirt::new())),
            DomainOptions {
                domain_type: DomainType::Qemu,
                console_log_dir: dir.join("console"),
                vnc_listen: "127.0.0.1".into(),
            },
        )
        // cleanTraffic's nft rules are a side effect too.
        .with_guard(Arc::new(FakeGuard::default()))
        // Channel sockets under the test's directory ($TMP/agentSocket in
        // the fixtures); the node's volume paths stay as it sends them.
        .with_dirs(HostDirs {
            socket_dir: dir.join("agentSocket"),
            ..HostDirs::default()
        }),
    );
    a.host = HostProbe::with_root(dir.join("host"));
    router(Arc::new(a))
}

/// `channel`: the guest end of a VR's bootstrap socket, bound where the
/// request's `socket` field points; what arrives must equal the request's
/// `receives` field.
struct Channel {
    want: Value,
    reader: std::thread::JoinHandle<std::io::Result<Vec<u8>>>,
}

fn open_channel(f: &Fixture, body: &Value) -> Result<Option<Channel>, String> {
    let Some(spec) = f.raw.get("channel") else {
        return Ok(None);
    };
    let field = |k: &str| {
        spec[k]
            .as_str()
            .ok_or_else(|| format!("channel.{k} must name a request field"))
    };
    let sock = body[field("socket")?]
        .as_str()
        .ok_or("channel.socket does not name a string field")?
        .to_string();
    let want = body[field("receives")?].clone();
    let sock = Path::new(&sock);
    std::fs::create_dir_all(sock.parent().unwrap()).map_err(|e| e.to_string())?;
    let l = std::os::unix::net::UnixListener::bind(sock)
        .map_err(|e| format!("bind {}: {e}", sock.display()))?;
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let (mut c, _) = l.accept()?;
        c.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut b = Vec::new();
        c.read_to_end(&mut b)?;
        Ok(b)
    });
    Ok(Some(Channel { want, reader }))
}

fn close_channel(ch: Channel) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ch.reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !ch.reader.is_finished() {
        return vec!["channel: nothing was written to the bootstrap socket".into()];
    }
    match ch.reader.join().unwrap() {
        Err(e) => vec![format!("channel: reading the socket: {e}")],
        Ok(bytes) => {
            match serde_json::from_slice::<Value>(String::from_utf8_lossy(&bytes).trim().as_bytes())
            {
                Err(e) => vec![format!("channel: the guest got no JSON document: {e}")],
                Ok(got) => conformance::json_diff(&ch.want, &got)
                    .into_iter()
                    .map(|d| format!("channel: the guest got {d}"))
                    .collect(),
            }
        }
    }
}

/// Runs one fixture; `Err` is its report.
async fn run(f: &Fixture) -> Result<(), String> {
    let dir = TempDir::new("kvm-conformance").unwrap();
    let app = agent(dir.path());
    let cb = CallbackReceiver::start(None).unwrap();
    let body = f.body(dir.path());
    let channel = open_channel(f, &body).map_err(|e| f.report(&[e], &Value::Null))?;
    let (status, reply) = exchange::run(f, &app, &cb, dir.path()).await?;
    let mut problems = f.problems(status, &reply);
    if let Some(ch) = channel {
        problems.extend(close_channel(ch));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(f.report(&problems, &reply))
    }
}

async fn run_all(fixtures: &[Fixture]) -> Vec<(String, String)> {
    let mut failed = vec![];
    for f in fixtures {
        if let Err(report) = run(f).await {
            failed.push((f.name.clone(), report));
        }
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_conforms() {
    let fixtures = conformance::load_dir(&conformance::fixture_dir("kvm")).unwrap();
    let failed = run_all(&fixtures).await;
    exchange::assert_all_pass("kvm", fixtures.len(), &failed);
}

#[test]
fn every_served_path_has_a_fixture() {
    let served = conformance::routes_in(include_str!("../src/api/mod.rs"));
    assert!(served.contains(&"/vm/start".to_string()), "{served:?}");
    let fixtures = conformance::load_dir(&conformance::fixture_dir("kvm")).unwrap();
    let missing = conformance::uncovered(&served, &fixtures);
    assert!(
        missing.is_empty(),
        "paths served without a fixture: {missing:?}"
    );
}

/// The checker fails where it must: a field the node would read that the
/// real reply lacks is reported with the fixture's name and source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_the_reply_lacks_is_reported() {
    let dir = conformance::fixture_dir("kvm");
    let text = std::fs::read_to_string(dir.join("host-ping.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["reply"]["noSuchField"] = "string".into();
    v["reply"]["hostUuid"] = "integer".into();
    let f = Fixture::parse("conformance/kvm/host-ping.json", &v.to_string()).unwrap();
    let failed = run_all(&[f]).await;
    assert_eq!(failed.len(), 1);
    let report = &failed[0].1;
    assert!(
        report.contains("conformance/kvm/host-ping.json: POST /host/ping (async)"),
        "{report}"
    );
    assert!(report.contains("zstackio/zstack@5a29293b"), "{report}");
    assert!(report.contains("noSuchField: missing"), "{report}");
    assert!(report.contains("hostUuid: is string"), "{report}");
}
