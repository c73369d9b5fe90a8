//! The `bridge` area: `/network/l2novlan/createbridge` of the host's
//! management NIC by the release kvm-agent, reply time and packets lost by
//! a 100 pps ping stream from the gateway during the migration.
//!
//! ```text
//!  gateway (gw0 10.10.0.1/24, fd00::1/64) --veth-- host (eth0 10.10.0.5/24, fd00::5/64)
//! ```
//! The agent listens on 127.0.0.1 inside the host namespace, which the
//! migration does not touch, and is driven from inside that namespace.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use testbed::{Netns, Proc, TempDir};

use crate::lab::{self, Reply};
use crate::report::{self, Section, Table};
use crate::stats::{max, median, ms};

const RUNS: usize = 10;
const AGENT: &str = "127.0.0.1:7070";
const HOST_IP: &str = "10.10.0.5";
const HOST_IP6: &str = "fd00::5";
const GW_IP: &str = "10.10.0.1";
/// Fixture F2 of the kvm protocol (section 7).
const CREATE: &str = r#"{"physicalInterfaceName":"eth0","bridgeName":"br_eth0","l2NetworkUuid":"a1b2c3d4e5f60718293a4b5c6d7e8f90","disableIptables":false,"mtu":1500,"isolated":false}"#;
const DELETE: &str = r#"{"physicalInterfaceName":"eth0","bridgeName":"br_eth0"}"#;
/// The ping stream starts this long before createbridge and goes on about
/// as long after it.
const LEAD: Duration = Duration::from_millis(500);
/// Packets at 100/s: 0.5 s before, the call, 0.5 s after (a 200 ms call
/// leaves 0.3 s margin).
const PINGS: u32 = 130;

/// Field order matters for Drop: the agent dies before its namespaces go.
struct Topo {
    agent: Proc,
    _state: TempDir,
    host: Netns,
    gw: Netns,
}

impl Topo {
    fn new(agent_bin: &Path) -> Result<Topo> {
        let host = Netns::new("brh")?;
        let gw = Netns::new("brg")?;
        for ns in [&host, &gw] {
            // DAD would keep fresh IPv6 addresses tentative for a second.
            ns.sysctl("net.ipv6.conf.all.accept_dad", "0")?;
            ns.sysctl("net.ipv6.conf.default.accept_dad", "0")?;
        }
        testbed::veth(&host, "eth0", &gw, "gw0")?;
        testbed::addr(&host, "eth0", &format!("{HOST_IP}/24"))?;
        testbed::addr(&host, "eth0", &format!("{HOST_IP6}/64"))?;
        testbed::addr(&gw, "gw0", &format!("{GW_IP}/24"))?;
        testbed::addr(&gw, "gw0", "fd00::1/64")?;
        testbed::route(&host, &format!("default via {GW_IP}"))?;
        host.ip("-6 route add default via fd00::1")?;
        let state = TempDir::new("kvmstate")?;
        let dir = state.path().to_str().context("temp path is not UTF-8")?;
        let console = format!("{dir}/console");
        let mut cmd = host.command(
            agent_bin.to_str().context("agent path is not UTF-8")?,
            &[
                "--listen",
                AGENT,
                "--state-dir",
                dir,
                "--libvirt-uri",
                "test:///default",
                "--console-log-dir",
                &console,
            ],
        );
        cmd.env("RUST_LOG", "info").env("NO_COLOR", "1");
        let agent = Proc::start(cmd)?;
        let topo = Topo {
            agent,
            _state: state,
            host,
            gw,
        };
        let up = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            topo.post("/host/echo", "").is_ok_and(|r| r.status == 200)
        });
        if !up {
            bail!("kvm-agent did not answer /host/echo:\n{}", topo.agent.log());
        }
        Ok(topo)
    }

    fn post(&self, path: &str, body: &str) -> Result<Reply> {
        lab::post_in(&self.host, AGENT, path, body)
    }

    /// A sync-mode command (no callbackurl) that must answer `success`.
    fn ok(&self, path: &str, body: &str) -> Result<Duration> {
        let r = self.post(path, body)?;
        let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        if r.status != 200 || v["success"] != true {
            bail!(
                "{path} answered {}: {}\nagent log:\n{}",
                r.status,
                r.body,
                self.agent.log()
            );
        }
        Ok(r.elapsed)
    }

    /// `elapsed_ms=` and `gateway=` of the agent's last `createbridge
    /// done` line.
    fn last_create(&self) -> (Option<f64>, String) {
        let log = lab::strip_ansi(&self.agent.log());
        let Some(line) = log.lines().rev().find(|l| l.contains("createbridge done")) else {
            return (None, String::new());
        };
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(str::to_string)
        };
        (
            field("elapsed_ms=").and_then(|v| v.parse().ok()),
            field("gateway=").unwrap_or_default(),
        )
    }

    /// The addresses moved to br_eth0 and eth0 is its port.
    fn migrated(&self) -> Result<bool> {
        let br = self.host.sh("ip -o addr show dev br_eth0")?;
        let eth0 = self.host.sh("ip -o link show dev eth0")?;
        Ok(br.contains(&format!("{HOST_IP}/24"))
            && br.contains(&format!("{HOST_IP6}/64"))
            && eth0.contains("master br_eth0"))
    }

    fn host_reaches_gateway(&self) -> bool {
        testbed::ping(&self.host, GW_IP, 1)
    }

    /// The host's addresses are back on eth0 and the bridge is gone.
    fn restored(&self) -> Result<bool> {
        let eth0 = self.host.sh("ip -o addr show dev eth0")?;
        let links = self.host.sh("ip -o link show")?;
        Ok(eth0.contains(&format!("{HOST_IP}/24"))
            && eth0.contains(&format!("{HOST_IP6}/64"))
            && !links.contains("br_eth0"))
    }
}

/// (transmitted, received) from a finished `ping -c N`'s summary line.
fn ping_summary(log: &str) -> Result<(u32, u32)> {
    let line = log
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .with_context(|| format!("no ping summary in {log}"))?;
    let nums: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    match nums[..] {
        [tx, rx, ..] => Ok((tx, rx)),
        _ => bail!("odd ping summary {line:?}"),
    }
}

fn wait_exit(p: &mut Proc, within: Duration) -> bool {
    testbed::wait_until(within, Duration::from_millis(20), || !p.is_running())
}

struct Run {
    http_ms: f64,
    agent_ms: Option<f64>,
    /// What the agent logged as the verified gateway (`Some(10.10.0.1)`).
    gateway: String,
    delete_ms: f64,
    lost4: u32,
    lost6: u32,
    sent4: u32,
}

fn one_run(t: &Topo) -> Result<Run> {
    let count = PINGS.to_string();
    let mut v4 = t.gw.spawn(
        "ping",
        &["-n", "-i", "0.01", "-c", &count, "-W", "1", HOST_IP],
    )?;
    let mut v6 = t.gw.spawn(
        "ping",
        &["-n", "-6", "-i", "0.01", "-c", &count, "-W", "1", HOST_IP6],
    )?;
    std::thread::sleep(LEAD);
    let created = t.ok("/network/l2novlan/createbridge", CREATE);
    let (agent_ms, gateway) = t.last_create();
    let done =
        wait_exit(&mut v4, Duration::from_secs(10)) && wait_exit(&mut v6, Duration::from_secs(10));
    let created = created?;
    if !done {
        bail!("the ping streams did not end");
    }
    let (sent4, rx4) = ping_summary(&v4.log())?;
    let (sent6, rx6) = ping_summary(&v6.log())?;
    if !t.migrated()? {
        bail!("createbridge answered success but eth0 was not migrated");
    }
    if !t.host_reaches_gateway() {
        bail!("the host does not reach the gateway over br_eth0");
    }
    let deleted = t.ok("/network/l2novlan/deletebridge", DELETE)?;
    if !t.restored()? {
        bail!("deletebridge did not restore eth0");
    }
    if !t.host_reaches_gateway() {
        bail!("the host does not reach the gateway after deletebridge");
    }
    Ok(Run {
        http_ms: ms(created),
        agent_ms,
        gateway,
        delete_ms: ms(deleted),
        lost4: sent4 - rx4,
        lost6: sent6 - rx6,
        sent4,
    })
}

pub fn run(agent_bin: &Path) -> Result<Section> {
    let started = Instant::now();
    eprintln!(
        "bridge: building the topology and starting {}",
        agent_bin.display()
    );
    let t = Topo::new(agent_bin)?;
    if !t.host_reaches_gateway() {
        bail!("topology broken: the host does not reach the gateway");
    }
    let mut runs = vec![];
    for i in 0..RUNS {
        let r = one_run(&t).with_context(|| format!("run {i}"))?;
        eprintln!(
            "bridge: run {i}: createbridge {:.1} ms (agent {:.1} ms), deletebridge {:.1} ms, lost v4 {} v6 {} of {}",
            r.http_ms,
            r.agent_ms.unwrap_or(f64::NAN),
            r.delete_ms,
            r.lost4,
            r.lost6,
            r.sent4
        );
        runs.push(r);
    }
    let http: Vec<f64> = runs.iter().map(|r| r.http_ms).collect();
    let agent: Vec<f64> = runs.iter().filter_map(|r| r.agent_ms).collect();
    let delete: Vec<f64> = runs.iter().map(|r| r.delete_ms).collect();
    let worst4 = runs.iter().map(|r| r.lost4).max().unwrap_or(0);
    let worst6 = runs.iter().map(|r| r.lost6).max().unwrap_or(0);
    let list = |f: fn(&Run) -> u32| {
        runs.iter()
            .map(|r| f(r).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };

    let mut tab = Table::new(&format!(
        "`createbridge` of the management NIC (eth0 -> br_eth0), {RUNS} runs"
    ));
    let hm = median(&http);
    tab.check(
        "reply time (sync mode), median",
        format!(
            "{hm:.1} ms (agent's own `elapsed_ms` median {:.1} ms; max {:.1} ms)",
            median(&agent),
            max(&http)
        ),
        "<= 200 ms",
        hm <= 200.0,
    );
    tab.check(
        "lost IPv4 packets at 100 pps during migration, worst run",
        format!("{worst4} (per run: {})", list(|r| r.lost4)),
        "<= 1",
        worst4 <= 1,
    );
    tab.info(
        "lost IPv6 packets at 100 pps during migration, worst run",
        format!("{worst6} (per run: {})", list(|r| r.lost6)),
    );
    tab.info(
        "`deletebridge` reply time, median",
        format!("{:.1} ms (max {:.1} ms)", median(&delete), max(&delete)),
    );
    let mut gws: Vec<&str> = runs.iter().map(|r| r.gateway.as_str()).collect();
    gws.dedup();
    tab.info(
        "gateway the agent verified (ARP) before replying, as logged",
        format!("`{}`", gws.join("`, `")),
    );
    tab.info(
        "eth0 migrated after create, restored after delete; host reaches the gateway after both",
        "yes, every run",
    );

    let intro = format!(
        "{}\n\nTopology: namespaces host (eth0 {HOST_IP}/24 + {HOST_IP6}/64, default via \
         {GW_IP}; release kvm-agent on {AGENT}, libvirt `test:///default`) -- gateway. \
         Each run: `ping -i 0.01 -c {PINGS} -W 1` to {HOST_IP} and to {HOST_IP6} from the \
         gateway, createbridge (fixture F2, sync mode) {} ms later, the streams end about \
         0.5 s after it; then the host pings the gateway, deletebridge, the host's \
         addresses are checked back on eth0 and it pings the gateway again. The agent is \
         driven over 127.0.0.1 inside the host namespace, which the migration does not \
         touch. Whole area took {:.0} s.",
        report::machine(),
        LEAD.as_millis(),
        started.elapsed().as_secs_f64()
    );
    Ok(Section {
        title: "Bridge migration (kvm-agent)".into(),
        intro,
        tables: vec![tab],
        notes: vec![],
    })
}
