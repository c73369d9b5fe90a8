//! The `nat` area: apply time, one-rule update time, datapath cost and
//! memory of the vr-agent with N port forwards and N EIPs (`--n`, 10 000
//! unless told).

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use testbed::TempDir;

use crate::lab::{self, GUEST, Lab};
use crate::report::{self, Section, Table};
use crate::stats::{max, mb, mb_f, median, ms};
use crate::traffic::{self, Mode, Server};

pub const DEFAULT_N: usize = 10_000;
/// Each bulk range (a /12, 250 addresses of every /24) holds a million.
pub const MAX_N: usize = 1_000_000;
const CREATE_RUNS: usize = 30;
const ROUNDS: usize = 5;
const RATE_TIME: Duration = Duration::from_secs(2);
const RATE_MAX: u64 = 60_000;
const STREAM_TIME: Duration = Duration::from_secs(2);

/// The bulk ranges, inside 10.64.0.0/10 that `pub` routes to the router:
/// port forward VIPs, the linear table's VIPs, EIPs and their guests.
const PF_BASE: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 0);
const LINEAR_BASE: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 0);
const EIP_BASE: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 0);
const EIP_GUEST_BASE: Ipv4Addr = Ipv4Addr::new(10, 112, 0, 0);

/// The probed port forwards (same VIP, two ports), outside the bulk ranges.
const PROBE_VIP: &str = "172.22.250.1";
/// The same probes as the last rules of the linear table.
const LINEAR_PROBE_VIP: &str = "172.21.250.1";
const RATE_PORT: u16 = 8080;
const SINK_PORT: u16 = 8081;
const SERVER_PORT: u16 = 80;
const SINK_SERVER_PORT: u16 = 5001;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Config {
    /// Only the two probe port forwards.
    None,
    /// The probes plus N port forwards and N EIPs in the agent's maps.
    Maps,
    /// `None` plus a rule-per-entry table of N DNATs, probes last.
    Linear,
}

impl Config {
    fn name(self, n: usize) -> String {
        match self {
            Config::None => "none".into(),
            Config::Maps => format!("maps ({n} PF + {n} EIP)"),
            Config::Linear => format!("linear ({n} rules)"),
        }
    }
    fn target(self, port: u16) -> String {
        let vip = if self == Config::Linear {
            LINEAR_PROBE_VIP
        } else {
            PROBE_VIP
        };
        format!("{vip}:{port}")
    }
}

/// The i-th address of a bulk range: .1 to .250 of each /24 in turn.
fn bulk_addr(base: Ipv4Addr, i: usize) -> String {
    let offset = (i / 250 * 256 + i % 250 + 1) as u32;
    Ipv4Addr::from(u32::from(base) + offset).to_string()
}

fn bulk_port(i: usize) -> u16 {
    1000 + (i % 60_000) as u16
}

/// The budgets: today's at 10 000, the scale goals above it (issue 18).
struct Budgets {
    sync_ms: f64,
    one_ms: f64,
    one_ratio: f64,
    rss_mb: f64,
    rate: f64,
}

impl Budgets {
    fn at(n: usize) -> Budgets {
        if n <= DEFAULT_N {
            Budgets {
                sync_ms: 1000.0,
                one_ms: 20.0,
                one_ratio: 2.0,
                rss_mb: 50.0,
                rate: 0.9,
            }
        } else {
            Budgets {
                sync_ms: 1000.0,
                one_ms: 5.0,
                one_ratio: 1.2,
                rss_mb: 64.0,
                rate: 0.97,
            }
        }
    }
}

fn probes() -> Vec<Value> {
    vec![
        lab::pf("probe-rate", PROBE_VIP, RATE_PORT, SERVER_PORT),
        lab::pf("probe-sink", PROBE_VIP, SINK_PORT, SINK_SERVER_PORT),
    ]
}

fn pf_body(n: usize) -> Value {
    let mut rules = probes();
    rules.extend(
        (0..n).map(|i| lab::pf(&format!("pf-{i}"), &bulk_addr(PF_BASE, i), bulk_port(i), 80)),
    );
    json!({ "rules": rules })
}

fn eip_body(n: usize) -> Value {
    let eips: Vec<Value> = (0..n)
        .map(|i| lab::eip(&bulk_addr(EIP_BASE, i), &bulk_addr(EIP_GUEST_BASE, i)))
        .collect();
    json!({ "eips": eips })
}

/// The iptables-style ruleset: one rule per entry, the probes last.
fn linear_script(n: usize) -> String {
    let mut s = String::from(
        "table ip linear {\n  chain pre {\n    type nat hook prerouting priority dstnat - 5; policy accept;\n",
    );
    let rule = |s: &mut String, vip: &str, port: u16, to: u16| {
        let _ = writeln!(
            s,
            "    ip daddr {vip} tcp dport {port} dnat to {GUEST}:{to}"
        );
    };
    for i in 0..n {
        rule(&mut s, &bulk_addr(LINEAR_BASE, i), bulk_port(i), 80);
    }
    rule(&mut s, LINEAR_PROBE_VIP, SINK_PORT, SINK_SERVER_PORT);
    rule(&mut s, LINEAR_PROBE_VIP, RATE_PORT, SERVER_PORT);
    s.push_str("  }\n}\n");
    s
}

/// Timings of one HTTP command: round trip and the agent's own `ms=`.
#[derive(Clone, Copy)]
struct Timed {
    http_ms: f64,
    agent_ms: Option<f64>,
}

impl Timed {
    fn show(&self) -> String {
        match self.agent_ms {
            Some(a) => format!("{:.0} ms (agent apply {a:.0} ms)", self.http_ms),
            None => format!("{:.0} ms", self.http_ms),
        }
    }
}

fn timed(lab: &Lab, path: &str, edit: &str, body: &Value) -> Result<Timed> {
    let d = lab.ok(path, body)?;
    Ok(Timed {
        http_ms: ms(d),
        agent_ms: lab.last_applied_ms(edit),
    })
}

struct Bench<'a> {
    lab: &'a Lab,
    n: usize,
    tmp: TempDir,
    current: Config,
    /// Syncs from the probe-only state to n entries.
    sync_pf: Vec<Timed>,
    sync_eip: Vec<Timed>,
    /// Syncs from n entries back to none.
    unsync_pf: Vec<Timed>,
    unsync_eip: Vec<Timed>,
    linear_load_ms: Vec<f64>,
    /// Agent VmRSS (kB) after each install of the n entries.
    rss_kb: Vec<u64>,
}

impl Bench<'_> {
    fn switch(&mut self, to: Config) -> Result<()> {
        if self.current == to {
            return Ok(());
        }
        if self.current == Config::Linear {
            self.lab
                .vr
                .exec("nft", &["delete", "table", "ip", "linear"])?;
        }
        // Flows of the last measure would make the agent's conntrack
        // clean-up (and the next measure) pay for them.
        self.flush_conntrack()?;
        match (self.current, to) {
            (Config::Maps, _) => {
                let t = timed(
                    self.lab,
                    "/syncportforwarding",
                    "sync-port-forwards",
                    &pf_body(0),
                )?;
                self.unsync_pf.push(t);
                let t = timed(self.lab, "/synceip", "sync-eips", &eip_body(0))?;
                self.unsync_eip.push(t);
            }
            (_, Config::Maps) => {
                let t = timed(
                    self.lab,
                    "/syncportforwarding",
                    "sync-port-forwards",
                    &pf_body(self.n),
                )?;
                self.sync_pf.push(t);
                let t = timed(self.lab, "/synceip", "sync-eips", &eip_body(self.n))?;
                self.sync_eip.push(t);
                self.rss_kb.push(self.lab.agent_memory_kb()?.0);
            }
            _ => {}
        }
        if to == Config::Linear {
            let file = self.tmp.path().join("linear.nft");
            std::fs::write(&file, linear_script(self.n))?;
            let t = Instant::now();
            self.lab
                .vr
                .exec("nft", &["-f", file.to_str().context("temp path")?])?;
            self.linear_load_ms.push(ms(t.elapsed()));
        }
        self.current = to;
        Ok(())
    }

    fn flush_conntrack(&self) -> Result<()> {
        self.lab.vr.exec("conntrack", &["-F"])?;
        Ok(())
    }

    /// Median of `CREATE_RUNS` creates of one new rule (each revoked after).
    fn create_one(&self, tag: &str) -> Result<(Vec<f64>, Vec<f64>)> {
        let (mut http, mut agent) = (vec![], vec![]);
        for k in 0..CREATE_RUNS {
            let rule = json!({"rules": [lab::pf(
                &format!("one-{tag}-{k}"),
                "172.22.251.1",
                2000 + k as u16,
                80
            )]});
            let t = timed(
                self.lab,
                "/createportforwarding",
                "create-port-forwards",
                &rule,
            )?;
            http.push(t.http_ms);
            agent.extend(t.agent_ms);
            self.lab.ok("/revokeportforwarding", &rule)?;
        }
        Ok((http, agent))
    }
}

pub fn run(agent_bin: &Path, n: usize) -> Result<Section> {
    let budget = Budgets::at(n);
    let started = Instant::now();
    eprintln!(
        "nat: building the topology and starting {}",
        agent_bin.display()
    );
    let lab = Lab::new(agent_bin)?;
    lab.base_config()?;
    let (idle_rss, _) = lab.agent_memory_kb()?;
    let _accept = Server::start(
        &lab.tenant,
        &format!("0.0.0.0:{SERVER_PORT}"),
        Mode::AcceptClose,
    )?;
    let _sink = Server::start(
        &lab.tenant,
        &format!("0.0.0.0:{SINK_SERVER_PORT}"),
        Mode::Sink,
    )?;
    let mut b = Bench {
        lab: &lab,
        n,
        tmp: TempDir::new("bench")?,
        current: Config::None,
        sync_pf: vec![],
        sync_eip: vec![],
        unsync_pf: vec![],
        unsync_eip: vec![],
        linear_load_ms: vec![],
        rss_kb: vec![],
    };
    lab.ok("/syncportforwarding", &pf_body(0))?;
    lab.ok("/synceip", &eip_body(0))?;
    traffic::conn_rate(
        &lab.public,
        &Config::None.target(RATE_PORT),
        Duration::from_millis(200),
        100,
    )
    .context("the probe port forward does not work")?;

    eprintln!("nat: one-rule creates with no rules");
    let (create_empty, create_empty_agent) = b.create_one("empty")?;

    eprintln!("nat: syncing {n} port forwards and {n} EIPs");
    b.switch(Config::Maps)?;
    traffic::conn_rate(
        &lab.public,
        &Config::Maps.target(RATE_PORT),
        Duration::from_millis(200),
        100,
    )
    .with_context(|| format!("the probe port forward does not work with {n} rules"))?;

    eprintln!("nat: one-rule creates with {n} rules");
    let (create_full, create_full_agent) = b.create_one("full")?;

    let configs = [Config::None, Config::Maps, Config::Linear];
    let mut rate = [vec![], vec![], vec![]];
    let mut stream = [vec![], vec![], vec![]];
    let mut failed_conns = 0;
    for round in 0..ROUNDS {
        for (c, cfg) in configs.iter().enumerate() {
            b.switch(*cfg)?;
            b.flush_conntrack()?;
            let (r, failed) =
                traffic::conn_rate(&lab.public, &cfg.target(RATE_PORT), RATE_TIME, RATE_MAX)
                    .with_context(|| format!("connection rate, {}", cfg.name(n)))?;
            failed_conns += failed;
            b.flush_conntrack()?;
            let t = traffic::throughput(&lab.public, &cfg.target(SINK_PORT), STREAM_TIME)
                .with_context(|| format!("throughput, {}", cfg.name(n)))?;
            eprintln!(
                "nat: round {round} {:<24} {r:>8.0} conn/s {t:>8.0} MB/s",
                cfg.name(n)
            );
            rate[c].push(r);
            stream[c].push(t);
        }
    }
    b.switch(Config::Maps)?;
    let (_, hwm_end) = lab.agent_memory_kb()?;
    b.switch(Config::None)?;

    let mut sync = Table::new(&format!("Apply time: sync {n} entries (HTTP round trip)"));
    let http = |v: &[Timed]| v.iter().map(|t| t.http_ms).collect::<Vec<_>>();
    let agent = |v: &[Timed]| v.iter().filter_map(|t| t.agent_ms).collect::<Vec<_>>();
    for (what, samples) in [
        ("/syncportforwarding", &b.sync_pf),
        ("/synceip", &b.sync_eip),
    ] {
        let h = http(samples);
        sync.check(
            format!(
                "`{what}` 0 -> {n}, worst of {} (first: {})",
                h.len(),
                samples[0].show()
            ),
            format!(
                "{:.0} ms (median {:.0} ms; agent apply median {:.0} ms)",
                max(&h),
                median(&h),
                median(&agent(samples))
            ),
            format!("<= {:.0} ms", budget.sync_ms),
            max(&h) <= budget.sync_ms,
        );
    }
    for (what, samples) in [
        ("/syncportforwarding", &b.unsync_pf),
        ("/synceip", &b.unsync_eip),
    ] {
        let h = http(samples);
        sync.info(
            format!("`{what}` {n} -> 0, median of {}", h.len()),
            format!(
                "{:.0} ms (agent apply {:.0} ms)",
                median(&h),
                median(&agent(samples))
            ),
        );
    }
    sync.info(
        format!("linear table: `nft -f` of {n} rules (for comparison), median"),
        format!("{:.0} ms", median(&b.linear_load_ms)),
    );

    let mut one = Table::new(&format!(
        "One-rule update: `/createportforwarding` of one new rule, median of {CREATE_RUNS}"
    ));
    let (e, f) = (median(&create_empty), median(&create_full));
    one.info(
        "with 0 rules present",
        format!(
            "{e:.1} ms (agent apply {:.1} ms, max {:.1} ms)",
            median(&create_empty_agent),
            max(&create_empty)
        ),
    );
    one.check(
        format!("with {n} PF + {n} EIP present"),
        format!(
            "{f:.1} ms (agent apply {:.1} ms, max {:.1} ms)",
            median(&create_full_agent),
            max(&create_full)
        ),
        format!("<= {:.0} ms", budget.one_ms),
        f <= budget.one_ms,
    );
    one.check(
        "ratio full / empty",
        format!("{:.2}x", f / e),
        format!("<= {}x", budget.one_ratio),
        f <= budget.one_ratio * e,
    );

    let mut dp = Table::new(&format!(
        "Datapath through the VR (pub -> VIP:port -> tenant), median of {ROUNDS} interleaved rounds"
    ));
    let med = |v: &Vec<f64>| median(v);
    let (rn, rm, rl) = (med(&rate[0]), med(&rate[1]), med(&rate[2]));
    let (tn, tm, tl) = (med(&stream[0]), med(&stream[1]), med(&stream[2]));
    dp.info(
        "new connections/s, none (2 probe rules)",
        format!("{rn:.0}/s"),
    );
    dp.info("new connections/s, maps", format!("{rm:.0}/s"));
    dp.info("new connections/s, linear", format!("{rl:.0}/s"));
    dp.check(
        "connection rate maps / none",
        format!("{:.2}x", rm / rn),
        format!(">= {}x", budget.rate),
        rm / rn >= budget.rate,
    );
    dp.info(
        "connection rate linear / none (iptables-style)",
        format!("{:.2}x", rl / rn),
    );
    dp.info(
        "TCP throughput, one stream: none / maps / linear",
        format!("{tn:.0} / {tm:.0} / {tl:.0} MB/s"),
    );
    dp.check(
        "throughput maps / none",
        format!("{:.2}x", tm / tn),
        ">= 0.9x",
        tm / tn >= 0.9,
    );
    dp.info("throughput linear / none", format!("{:.2}x", tl / tn));
    dp.info("failed connections (all runs)", format!("{failed_conns}"));

    let mut mem = Table::new("vr-agent memory");
    mem.info("VmRSS idle (NICs + SNAT only)", mb(idle_rss));
    let first = b.rss_kb[0];
    let worst = b.rss_kb.iter().copied().max().unwrap_or(first);
    mem.check(
        format!("VmRSS with {n} PF + {n} EIP, first install"),
        mb(first),
        format!("< {} MB", budget.rss_mb),
        mb_f(first) < budget.rss_mb,
    );
    mem.check(
        format!(
            "VmRSS with {n} PF + {n} EIP, worst of {} installs (after each: {})",
            b.rss_kb.len(),
            b.rss_kb
                .iter()
                .map(|k| format!("{:.1}", mb_f(*k)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        mb(worst),
        format!("< {} MB", budget.rss_mb),
        mb_f(worst) < budget.rss_mb,
    );
    mem.info("VmHWM (peak) over the run", mb(hwm_end));

    if failed_conns > 0 {
        eprintln!("nat: {failed_conns} connections failed");
    }
    let intro = format!(
        "{}\n\nTopology: namespaces ctl -- vr (release vr-agent, sync-mode HTTP) -- pub, \
         vr -- tenant. Port forwards are TCP VIP 10.64-79.x.y:port -> {GUEST}:80, EIPs \
         10.96-111.x.y -> 10.112-127.x.y. Rate: one client thread in pub connecting to a \
         port forward whose server accepts and closes, {}s per run (at most {RATE_MAX}). \
         Throughput: one TCP stream, {}s, to a sink. Conntrack is flushed in vr before \
         each run. Whole area took {:.0} s.",
        report::machine(),
        RATE_TIME.as_secs(),
        STREAM_TIME.as_secs(),
        started.elapsed().as_secs_f64()
    );
    if rate.iter().any(Vec::is_empty) {
        bail!("no datapath samples");
    }
    Ok(Section {
        title: "NAT (vr-agent): port forwards and EIPs".into(),
        intro,
        tables: vec![sync, one, dp, mem],
        notes: vec![],
    })
}
