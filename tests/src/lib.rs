//! The shared privileged test bed (see DESIGN.md section 7).
//!
//! Every topology lives in network namespaces created by this crate; nothing
//! here touches the root namespace's addresses, routes or firewall. Every
//! resource is owned by a guard whose `Drop` removes it, so a panicking test
//! still cleans up.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let a = testbed::Netns::new("a")?;
//! let b = testbed::Netns::new("b")?;
//! testbed::veth(&a, "eth0", &b, "eth0")?;
//! testbed::addr(&a, "eth0", "10.0.0.1/24")?;
//! testbed::addr(&b, "eth0", "10.0.0.2/24")?;
//! let _srv = testbed::TcpServer::start(&b, "0.0.0.0:8080")?;
//! let seen = testbed::tcp_probe(&a, "10.0.0.2:8080", std::time::Duration::from_secs(2))?;
//! assert!(seen.starts_with("10.0.0.1:"));
//! # Ok(()) }
//! ```

pub mod conformance;
pub mod dos;
pub mod libvirt;
pub mod pki;

/// `$VR_IMAGE_DIR`, or the repository's `images/out`, at a path libvirt's
/// qemu user can read (`common::image`: a checkout in a 0700 home is not).
pub fn vr_image_dir() -> PathBuf {
    let dir = std::env::var_os("VR_IMAGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/out"));
    common::image::readable_by_qemu(&dir)
}

use anyhow::{Context, Result, anyhow, bail};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- privileges

/// Why privileged tests cannot run here, or `None` when they can.
/// Checked once per process: effective uid 0 and a working `ip netns add`.
pub fn unprivileged_reason() -> Option<String> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    REASON
        .get_or_init(|| {
            if !nix::unistd::geteuid().is_root() {
                return Some("not running as root".to_string());
            }
            let probe = unique_name("probe");
            if let Err(e) = run_cmd(Command::new("ip").args(["netns", "add", &probe]), None) {
                return Some(format!("`ip netns add` does not work: {e:#}"));
            }
            let _ = run_cmd(Command::new("ip").args(["netns", "del", &probe]), None);
            None
        })
        .clone()
}

/// `true` when privileged tests can run. Otherwise panics when
/// `REQUIRE_PRIVILEGED=1` (CI must not skip silently), else prints
/// `skipped: <reason>` and returns `false`.
pub fn privileged() -> bool {
    let Some(reason) = unprivileged_reason() else {
        return true;
    };
    if std::env::var("REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("REQUIRE_PRIVILEGED=1 but privileged tests cannot run: {reason}");
    }
    eprintln!("skipped: {reason}");
    false
}

/// Returns from the calling test unless it can run privileged (see
/// [`privileged`]). `require_privileged!()` for `()` tests,
/// `require_privileged!(Ok(()))` for tests returning a `Result`.
#[macro_export]
macro_rules! require_privileged {
    () => {
        if !$crate::privileged() {
            return;
        }
    };
    ($ret:expr) => {
        if !$crate::privileged() {
            return $ret;
        }
    };
}

// ---------------------------------------------------------------- names

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn next_id() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A process-unique name `tb<pid>-<n>-<tag>` for namespaces and temp dirs,
/// so parallel tests and parallel test binaries never collide.
pub fn unique_name(tag: &str) -> String {
    let tag: String = tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    format!("tb{}-{}-{}", std::process::id(), next_id(), tag)
}

/// A unique interface name of at most 15 bytes (the kernel limit): up to 6
/// characters of `tag`, the pid (6 hex digits, pid_max <= 2^22) and a counter
/// (3 hex digits). Only needed for links in a shared namespace; links inside
/// our own namespaces can use plain names like `eth0`.
pub fn ifname(tag: &str) -> String {
    let tag: String = tag
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(6)
        .collect();
    format!("{tag}{:06x}{:03x}", std::process::id(), next_id() % 0x1000)
}

// ---------------------------------------------------------------- commands

/// Runs a command to completion; a non-zero exit becomes an error carrying
/// the command line and its stderr, so test failures explain themselves.
fn run_cmd(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<Output> {
    let line = format!("{cmd:?}");
    let input = if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    cmd.stdin(input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {line}"))?;
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(data)
            .with_context(|| format!("writing stdin of {line}"))?;
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for {line}"))?;
    if !out.status.success() {
        bail!(
            "{line} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

// ---------------------------------------------------------------- Netns

/// A network namespace (`ip netns add`), deleted on Drop together with any
/// process still running in it.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a uniquely named namespace with `lo` up.
    pub fn new(tag: &str) -> Result<Netns> {
        let name = unique_name(tag);
        run_cmd(Command::new("ip").args(["netns", "add", &name]), None)?;
        let ns = Netns { name };
        ns.ip("link set lo up")?;
        Ok(ns)
    }

    /// The name as `ip netns list` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `Command` that runs `prog args` inside the namespace
    /// (`ip netns exec`); add env/cwd, then `output()` or [`Proc::start`].
    pub fn command(&self, prog: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, prog]).args(args);
        cmd
    }

    /// Runs `prog args` inside the namespace; non-zero exit is an error
    /// with the stderr text.
    pub fn exec(&self, prog: &str, args: &[&str]) -> Result<Output> {
        run_cmd(&mut self.command(prog, args), None)
    }

    /// Runs `sh -c script` inside the namespace and returns its stdout.
    pub fn sh(&self, script: &str) -> Result<String> {
        let out = self.exec("sh", &["-c", script])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `ip -n <ns> <words>`, e.g. `ns.ip("link set eth0 up")`; the
    /// words are split on whitespace (iproute2 enters the namespace itself).
    pub fn ip(&self, words: &str) -> Result<Output> {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.name]).args(words.split_whitespace());
        run_cmd(&mut cmd, None)
    }

    /// Starts `prog args` in the background inside the namespace.
    pub fn spawn(&self, prog: &str, args: &[&str]) -> Result<Proc> {
        Proc::start(self.command(prog, args))
    }

    /// Writes a sysctl of this namespace, e.g. `("net.ipv4.ip_forward", "1")`.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.run(|| std::fs::write(&path, value))
            .with_context(|| format!("sysctl {key}={value} in {}", self.name))
    }

    /// Runs `f` on a fresh thread that first joins this namespace and returns
    /// its result, so Rust code can open sockets inside the namespace.
    /// Sockets keep their namespace afterwards and may be used from any thread.
    pub fn run<T: Send, F: FnOnce() -> T + Send>(&self, f: F) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            let handle = s.spawn(move || {
                let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .unwrap_or_else(|e| panic!("setns {path}: {e}"));
                f()
            });
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill leftovers (e.g. agents a test forgot), else they would keep
        // the namespace's links and sockets alive after the name is gone.
        if let Ok(out) = run_cmd(Command::new("ip").args(["netns", "pids", &self.name]), None) {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::SIGKILL,
                    );
                }
            }
        }
        if let Err(e) = run_cmd(Command::new("ip").args(["netns", "del", &self.name]), None) {
            eprintln!("testbed: cannot delete netns {}: {e:#}", self.name);
        }
    }
}

// ---------------------------------------------------------------- links

/// Creates a veth pair `name_a` (in `a`) <-> `name_b` (in `b`), both up.
/// Created directly inside `a`, so the names never touch the root namespace.
pub fn veth(a: &Netns, name_a: &str, b: &Netns, name_b: &str) -> Result<()> {
    let nsb = b.name();
    a.ip(&format!(
        "link add {name_a} type veth peer name {name_b} netns {nsb}"
    ))?;
    a.ip(&format!("link set {name_a} up"))?;
    b.ip(&format!("link set {name_b} up"))?;
    Ok(())
}

/// Creates a bridge (up, STP off, forward delay 0 so ports forward at once).
pub fn bridge(ns: &Netns, name: &str) -> Result<()> {
    ns.ip(&format!(
        "link add {name} type bridge stp_state 0 forward_delay 0"
    ))?;
    ns.ip(&format!("link set {name} up"))?;
    Ok(())
}

/// Makes `port` a port of `bridge` and brings it up.
pub fn enslave(ns: &Netns, port: &str, bridge: &str) -> Result<()> {
    ns.ip(&format!("link set {port} master {bridge} up"))?;
    Ok(())
}

/// Adds an address, e.g. `addr(&ns, "eth0", "10.0.0.1/24")`.
pub fn addr(ns: &Netns, ifname: &str, cidr: &str) -> Result<()> {
    ns.ip(&format!("addr add {cidr} dev {ifname}"))?;
    Ok(())
}

/// Adds a route given as `ip route add` words, e.g. `"default via 10.0.0.1"`.
pub fn route(ns: &Netns, spec: &str) -> Result<()> {
    ns.ip(&format!("route add {spec}"))?;
    Ok(())
}

/// The MAC address of `ifname`, lower case (`aa:bb:cc:dd:ee:ff`).
pub fn mac(ns: &Netns, ifname: &str) -> Result<String> {
    let out = ns.ip(&format!("-j link show dev {ifname}"))?;
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing `ip -j link`")?;
    json[0]["address"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no address for {ifname} in {json}"))
}

/// Sets the MAC address of `ifname`.
pub fn set_mac(ns: &Netns, ifname: &str, mac: &str) -> Result<()> {
    ns.ip(&format!("link set dev {ifname} address {mac}"))?;
    Ok(())
}

// ---------------------------------------------------------------- Proc

/// A background process, killed with its whole process group on Drop.
/// Stdout and stderr go to one log file, readable with [`Proc::log`].
#[derive(Debug)]
pub struct Proc {
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl Proc {
    /// Starts `cmd` (from [`Netns::command`] or a plain `Command` for the
    /// root namespace) in its own process group with output logged.
    pub fn start(mut cmd: Command) -> Result<Proc> {
        let dir = TempDir::new("proc")?;
        let log = dir.path().join("output.log");
        let file = File::create(&log)?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {cmd:?}"))?;
        Ok(Proc {
            child,
            log,
            _dir: dir,
        })
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote so far to stdout and stderr.
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// `true` while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process group and reaps the process.
    pub fn kill(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------- TempDir

/// A unique directory under /tmp, removed with its contents on Drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> Result<TempDir> {
        let path = std::env::temp_dir().join(unique_name(tag));
        std::fs::create_dir(&path).with_context(|| format!("mkdir {}", path.display()))?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------- waiting

/// Polls `f` every `interval` until it returns `true` or `timeout` passes.
pub fn wait_until(timeout: Duration, interval: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(interval);
    }
    true
}

/// Polls `f` until it returns `Ok`; on timeout returns the last error, so
/// the test failure says what was still wrong.
pub fn wait_ok<T>(
    timeout: Duration,
    interval: Duration,
    mut f: impl FnMut() -> Result<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!("still failing after {timeout:?}")));
            }
            Err(_) => std::thread::sleep(interval),
        }
    }
}

// ---------------------------------------------------------------- traffic

/// How often server threads look at their stop flag.
const POLL: Duration = Duration::from_millis(20);

/// A server thread plus the flag that stops it; joined on Drop.
#[derive(Debug)]
struct Stopper {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Stopper {
    /// Calls `step` in a loop on a new thread until Drop; each step must
    /// return within about [`POLL`] so Drop is quick.
    fn spawn(mut step: impl FnMut() + Send + 'static) -> Stopper {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                step();
            }
        });
        Stopper {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Stopper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds a TCP listener inside `ns` (root namespace when `None`).
fn bind_tcp(ns: Option<&Netns>, addr: &str) -> Result<TcpListener> {
    match ns {
        Some(ns) => ns
            .run(|| TcpListener::bind(addr))
            .with_context(|| format!("bind tcp {addr} in {}", ns.name())),
        None => TcpListener::bind(addr).with_context(|| format!("bind tcp {addr}")),
    }
}

/// Serves each connection accepted on `listener` with `handle`, one at a
/// time on a server thread, until Drop.
fn serve_tcp(
    listener: TcpListener,
    handle: impl Fn(TcpStream, SocketAddr) + Send + 'static,
) -> Result<(SocketAddr, Stopper)> {
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let stopper = Stopper::spawn(move || match listener.accept() {
        Ok((stream, peer)) => {
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            handle(stream, peer);
        }
        Err(_) => std::thread::sleep(POLL),
    });
    Ok((local, stopper))
}

/// A TCP server in a namespace that answers every connection with one line
/// `<peer ip>:<peer port>` and closes it, so NAT tests can check the source
/// address the server saw. Stops on Drop.
#[derive(Debug)]
pub struct TcpServer {
    addr: SocketAddr,
    _stopper: Stopper,
}

impl TcpServer {
    pub fn start(ns: &Netns, addr: &str) -> Result<TcpServer> {
        let listener = bind_tcp(Some(ns), addr)?;
        let (addr, _stopper) = serve_tcp(listener, |mut stream, peer| {
            let _ = writeln!(stream, "{}:{}", peer.ip(), peer.port());
        })?;
        Ok(TcpServer { addr, _stopper })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A UDP server in a namespace answering each datagram with
/// `<peer ip>:<peer port>`. Stops on Drop.
#[derive(Debug)]
pub struct UdpServer {
    addr: SocketAddr,
    _stopper: Stopper,
}

impl UdpServer {
    pub fn start(ns: &Netns, addr: &str) -> Result<UdpServer> {
        let socket = ns
            .run(|| UdpSocket::bind(addr))
            .with_context(|| format!("bind udp {addr} in {}", ns.name()))?;
        socket.set_read_timeout(Some(POLL))?;
        let addr = socket.local_addr()?;
        let _stopper = Stopper::spawn(move || {
            let mut buf = [0u8; 2048];
            if let Ok((_, peer)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(format!("{}:{}", peer.ip(), peer.port()).as_bytes(), peer);
            }
        });
        Ok(UdpServer { addr, _stopper })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Connects from inside `ns` to `addr` (`"ip:port"`) and returns the first
/// line the server sent (trimmed). Errors on refusal or timeout.
pub fn tcp_probe(ns: &Netns, addr: &str, timeout: Duration) -> Result<String> {
    let target = parse_addr(addr)?;
    ns.run(|| -> Result<String> {
        let stream = TcpStream::connect_timeout(&target, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        if line.is_empty() {
            bail!("connection closed without data");
        }
        Ok(line.trim_end().to_string())
    })
    .with_context(|| format!("tcp probe {addr} from {}", ns.name()))
}

/// Sends one datagram from inside `ns` to `addr` and returns the answer.
/// Errors on timeout or ICMP port unreachable.
pub fn udp_probe(ns: &Netns, addr: &str, timeout: Duration) -> Result<String> {
    let target = parse_addr(addr)?;
    ns.run(|| -> Result<String> {
        let any = if target.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(any)?;
        socket.connect(target)?;
        socket.set_read_timeout(Some(timeout))?;
        socket.send(b"probe")?;
        let mut buf = [0u8; 2048];
        let n = socket.recv(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).trim_end().to_string())
    })
    .with_context(|| format!("udp probe {addr} from {}", ns.name()))
}

fn parse_addr(addr: &str) -> Result<SocketAddr> {
    addr.parse()
        .with_context(|| format!("bad socket address {addr}"))
}

const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
[ "$1" = bound ] || exit 0
if [ "$CONFIGURE" = 1 ]; then
  ip addr flush dev "$interface"
  ip addr add "$ip/$subnet" dev "$interface"
  [ -n "$router" ] && ip route replace default via "$router" dev "$interface"
fi
printf 'ip=%s\nrouter=%s\ndns=%s\nmtu=%s\ndomain=%s\nhostname=%s\nsubnet=%s\n' \
  "$ip" "$router" "$dns" "$mtu" "$domain" "$hostname" "$subnet" > "$OUT"
"#;

/// One DHCP exchange with busybox udhcpc on `ifname` inside `ns` (`tries`
/// discovers, one second apart), asking for mtu, hostname and domain. The
/// options of the lease (`ip`, `router`, `dns`, `mtu`, `domain`,
/// `hostname`, `subnet`), or None when no server answered. With
/// `configure`, the address and default route are also put on the
/// interface. `dir` holds the script and its output.
pub fn dhcp_lease(
    ns: &Netns,
    ifname: &str,
    tries: u32,
    configure: bool,
    dir: &Path,
) -> Option<BTreeMap<String, String>> {
    let script = dir.join("udhcpc.sh");
    std::fs::write(&script, UDHCPC_SCRIPT).ok()?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).ok()?;
    let out = dir.join(format!("lease-{ifname}"));
    let _ = std::fs::remove_file(&out);
    let tries = tries.to_string();
    let status = ns
        .command(
            "busybox",
            &[
                "udhcpc",
                "-i",
                ifname,
                "-n",
                "-q",
                "-f",
                "-t",
                &tries,
                "-T",
                "1",
                "-O",
                "mtu",
                "-O",
                "hostname",
                "-O",
                "domain",
                "-s",
                script.to_str()?,
            ],
        )
        .env("OUT", &out)
        .env("CONFIGURE", if configure { "1" } else { "0" })
        .output()
        .ok()?;
    if !status.status.success() {
        return None;
    }
    let text = std::fs::read_to_string(&out).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect(),
    )
}

/// MACs of the router's NICs in [`RouterNets`]: management, public, private.
pub const MGMT_MAC: &str = "fa:26:9c:aa:00:01";
pub const PUB_MAC: &str = "fa:26:9c:aa:00:02";
pub const PRIV_MAC: &str = "fa:26:9c:aa:00:03";

/// The router topology of the vr-agent tests and benchmarks:
///
/// ```text
///  ctl (10.0.0.2) --eth0-- vr (10.0.0.25) --eth1-- pub (172.20.0.1, the outside)
///                           |eth2
///                  tenant (192.168.100.10, gw .1)
/// ```
/// With `backends` > 0 the VR's eth2, the tenant and that many backend
/// guests (192.168.100.11, .12, ...) are ports of a bridge `br0` in a `lan`
/// namespace instead of one veth. The VR's NICs carry [`MGMT_MAC`],
/// [`PUB_MAC`], [`PRIV_MAC`]; only its management address is set (the
/// agent configures the rest).
pub struct RouterNets {
    pub backends: Vec<Netns>,
    pub lan: Option<Netns>,
    pub tenant: Netns,
    pub public: Netns,
    pub ctl: Netns,
    pub vr: Netns,
}

impl RouterNets {
    pub fn new(backends: usize) -> Result<RouterNets> {
        let vr = Netns::new("vr")?;
        let ctl = Netns::new("ctl")?;
        let public = Netns::new("pub")?;
        let tenant = Netns::new("ten")?;
        veth(&vr, "eth0", &ctl, "eth0")?;
        veth(&vr, "eth1", &public, "eth0")?;
        let mut guests = vec![];
        let lan = if backends == 0 {
            veth(&vr, "eth2", &tenant, "eth0")?;
            None
        } else {
            let lan = Netns::new("lan")?;
            bridge(&lan, "br0")?;
            veth(&vr, "eth2", &lan, "p-vr")?;
            enslave(&lan, "p-vr", "br0")?;
            veth(&tenant, "eth0", &lan, "p-ten")?;
            enslave(&lan, "p-ten", "br0")?;
            for i in 0..backends {
                let b = Netns::new(&format!("be{i}"))?;
                let port = format!("p-be{i}");
                veth(&b, "eth0", &lan, &port)?;
                enslave(&lan, &port, "br0")?;
                addr(&b, "eth0", &format!("192.168.100.{}/24", 11 + i))?;
                route(&b, "default via 192.168.100.1")?;
                guests.push(b);
            }
            Some(lan)
        };
        set_mac(&vr, "eth0", MGMT_MAC)?;
        set_mac(&vr, "eth1", PUB_MAC)?;
        set_mac(&vr, "eth2", PRIV_MAC)?;
        // The management address comes from the bootstrap info, before the agent starts.
        addr(&vr, "eth0", "10.0.0.25/24")?;
        addr(&ctl, "eth0", "10.0.0.2/24")?;
        addr(&public, "eth0", "172.20.0.1/16")?;
        addr(&tenant, "eth0", "192.168.100.10/24")?;
        route(&tenant, "default via 192.168.100.1")?;
        Ok(RouterNets {
            backends: guests,
            lan,
            tenant,
            public,
            ctl,
            vr,
        })
    }
}

/// An "outside" DNS server in `ns` on `ip`:53 (dnsmasq in the foreground,
/// no system files): `www.example.test` and every other name under
/// example.test resolve to 203.0.113.7. Routers under test forward to it.
pub fn upstream_dns(ns: &Netns, ip: &str) -> Result<Proc> {
    ns.spawn(
        "dnsmasq",
        &[
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            "--user=root",
            "--bind-interfaces",
            &format!("--listen-address={ip}"),
            "--log-facility=-",
            "--address=/example.test/203.0.113.7",
        ],
    )
}

/// The root namespace's IPv4 addresses, routes (all tables) and nft
/// ruleset: tests that start libvirtd or the lab compare it before and
/// after, since they must never change it.
pub fn root_view() -> String {
    let run = |args: &[&str]| {
        Command::new(args[0])
            .args(&args[1..])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    format!(
        "{}\n{}\n{}",
        run(&["ip", "-4", "-br", "addr"]),
        run(&["ip", "route", "show", "table", "all"]),
        run(&["nft", "list", "ruleset"])
    )
}

/// `true` when `ping -c count -W 1 ip` from inside `ns` gets replies.
pub fn ping(ns: &Netns, ip: &str, count: u32) -> bool {
    ns.exec("ping", &["-q", "-c", &count.to_string(), "-W", "1", ip])
        .is_ok()
}

/// Makes an HTTP request with curl from inside `ns`; returns the status
/// code and body. Any status is `Ok`; only transport failures are errors.
pub fn http(
    ns: &Netns,
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<(u16, String)> {
    let mut args: Vec<String> = ["-sS", "-m", "30", "-X", method, "-w", "\n%{http_code}", url]
        .map(String::from)
        .to_vec();
    let typed = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    let json = [("Content-Type", "application/json")];
    let extra = if body.is_some() && !typed {
        &json[..]
    } else {
        &[]
    };
    for (k, v) in headers.iter().chain(extra) {
        args.extend(["-H".to_string(), format!("{k}: {v}")]);
    }
    if body.is_some() {
        args.extend(["--data-binary".to_string(), "@-".to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_cmd(&mut ns.command("curl", &args), body.map(str::as_bytes))
        .with_context(|| format!("{method} {url} from {}", ns.name()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text
        .rsplit_once('\n')
        .ok_or_else(|| anyhow!("odd curl output: {text}"))?;
    Ok((
        code.trim()
            .parse()
            .with_context(|| format!("odd curl status in: {text}"))?,
        body.to_string(),
    ))
}

/// `POST url` with a JSON body from inside `ns` (see [`http`]).
pub fn http_post(
    ns: &Netns,
    url: &str,
    json_body: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String)> {
    http(ns, "POST", url, Some(json_body), headers)
}

/// `GET url` from inside `ns` (see [`http`]).
pub fn http_get(ns: &Netns, url: &str) -> Result<(u16, String)> {
    http(ns, "GET", url, None, &[])
}

// ---------------------------------------------------------------- CallbackReceiver

/// One request seen by a [`CallbackReceiver`].
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Recorded {
    /// A header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("callback body is not JSON: {}", self.body))
    }
}

/// A tiny HTTP/1.1 server playing the controller's async callback endpoint:
/// records every request and answers with a configurable status (200 by
/// default; e.g. 404 to test "stop on 404"). One request per connection.
#[derive(Debug)]
pub struct CallbackReceiver {
    port: u16,
    status: Arc<AtomicU16>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    _stopper: Stopper,
}

impl CallbackReceiver {
    /// Listens on port 0 of all addresses inside `ns`, or on 127.0.0.1 of
    /// the root namespace when `ns` is `None`.
    pub fn start(ns: Option<&Netns>) -> Result<CallbackReceiver> {
        let status = Arc::new(AtomicU16::new(200));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (st, reqs) = (status.clone(), requests.clone());
        let handle = move |mut stream: TcpStream, _peer: SocketAddr| {
            if let Ok(req) = read_request(&mut stream) {
                reqs.lock().expect("poisoned").push(req);
                let code = st.load(Ordering::Relaxed);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        };
        let any = if ns.is_some() {
            "0.0.0.0:0"
        } else {
            "127.0.0.1:0"
        };
        let listener = bind_tcp(ns, any)?;
        let (addr, stopper) = serve_tcp(listener, handle)?;
        Ok(CallbackReceiver {
            port: addr.port(),
            status,
            requests,
            _stopper: stopper,
        })
    }

    /// `http://127.0.0.1:<port>`: reachable from the namespace it runs in.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://<ip>:<port>` for callers in other namespaces.
    pub fn url_at(&self, ip: &str) -> String {
        format!("http://{ip}:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The status code sent from now on.
    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::Relaxed);
    }

    /// All requests received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("poisoned").clone()
    }

    /// Waits until at least `n` requests arrived; the error lists what came.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<Recorded>> {
        if wait_until(timeout, POLL, || self.requests().len() >= n) {
            return Ok(self.requests());
        }
        bail!(
            "expected {n} callbacks within {timeout:?}, got {:?}",
            self.requests()
        )
    }
}

/// Reads one HTTP/1.1 request: head, then a `content-length` body.
fn read_request(stream: &mut TcpStream) -> Result<Recorded> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut words = line.split_whitespace().map(str::to_string);
    let (method, path) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("connection closed inside the request head");
        }
        let Some((k, v)) = line.trim_end().split_once(':') else {
            break;
        };
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    if headers
        .get("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let mut body = Vec::new();
    // Only `content-length` bodies: what reqwest and curl send for JSON.
    if let Some(len) = headers.get("content-length") {
        body.resize(len.parse()?, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(Recorded {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
