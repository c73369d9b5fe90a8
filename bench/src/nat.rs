//! The `nat` area: apply time, one-rule update time, datapath cost and
//! memory of the vr-agent with 10 000 port forwards and 10 000 EIPs.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use testbed::TempDir;

use crate::lab::{self, GUEST, Lab};
use crate::report::{self, Section, Table};
use crate::stats::{max, mb, mb_f, median, ms};
use crate::traffic::{self, Mode, Server};

const N: usize = 10_000;
const CREATE_RUNS: usize = 30;
const ROUNDS: usize = 5;
const RATE_TIME: Duration = Duration::from_secs(2);
const RATE_MAX: u64 = 60_000;
const STREAM_TIME: Duration = Duration::from_secs(2);

/// The probed port forwards (same VIP, two ports); 172.22.250.x is outside
/// the bulk range 172.22.0-49.x.
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
    /// The probes plus 10 000 port forwards and 10 000 EIPs in the agent's maps.
    Maps,
    /// `None` plus a rule-per-entry table of 10 000 DNATs, probes last.
    Linear,
}

impl Config {
    fn name(self) -> &'static str {
        match self {
            Config::None => "none",
            Config::Maps => "maps (10k PF + 10k EIP)",
            Config::Linear => "linear (10k rules)",
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

fn bulk_vip(net: u8, i: usize) -> String {
    format!("172.{net}.{}.{}", i / 200, i % 200 + 1)
}

fn bulk_port(i: usize) -> u16 {
    1000 + i as u16
}

fn probes() -> Vec<Value> {
    vec![
        lab::pf("probe-rate", PROBE_VIP, RATE_PORT, SERVER_PORT),
        lab::pf("probe-sink", PROBE_VIP, SINK_PORT, SINK_SERVER_PORT),
    ]
}

fn pf_body(bulk: bool) -> Value {
    let mut rules = probes();
    if bulk {
        rules.extend(
            (0..N).map(|i| lab::pf(&format!("pf-{i}"), &bulk_vip(22, i), bulk_port(i), 80)),
        );
    }
    json!({ "rules": rules })
}

fn eip_body(bulk: bool) -> Value {
    let eips: Vec<Value> = if bulk {
        (0..N)
            .map(|i| {
                let vip = format!("172.23.{}.{}", i / 250, i % 250 + 1);
                let guest = format!("192.168.{}.{}", 101 + i / 250, i % 250 + 2);
                lab::eip(&vip, &guest)
            })
            .collect()
    } else {
        vec![]
    };
    json!({ "eips": eips })
}

/// The iptables-style ruleset: one rule per entry, the probes last.
fn linear_script() -> String {
    let mut s = String::from(
        "table ip linear {\n  chain pre {\n    type nat hook prerouting priority dstnat - 5; policy accept;\n",
    );
    let rule = |s: &mut String, vip: &str, port: u16, to: u16| {
        let _ = writeln!(
            s,
            "    ip daddr {vip} tcp dport {port} dnat to {GUEST}:{to}"
        );
    };
    for i in 0..N {
        rule(&mut s, &bulk_vip(21, i), bulk_port(i), 80);
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
    tmp: TempDir,
    current: Config,
    /// Syncs from the probe-only state to 10k entries.
    sync_pf: Vec<Timed>,
    sync_eip: Vec<Timed>,
    /// Syncs from 10k entries back to none.
    unsync_pf: Vec<Timed>,
    unsync_eip: Vec<Timed>,
    linear_load_ms: Vec<f64>,
    /// Agent VmRSS (kB) after each install of the 10k entries.
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
                    &pf_body(false),
                )?;
                self.unsync_pf.push(t);
                let t = timed(self.lab, "/synceip", "sync-eips", &eip_body(false))?;
                self.unsync_eip.push(t);
            }
            (_, Config::Maps) => {
                let t = timed(
                    self.lab,
                    "/syncportforwarding",
                    "sync-port-forwards",
                    &pf_body(true),
                )?;
                self.sync_pf.push(t);
                let t = timed(self.lab, "/synceip", "sync-eips", &eip_body(true))?;
                self.sync_eip.push(t);
                self.rss_kb.push(self.lab.agent_memory_kb()?.0);
            }
            _ => {}
        }
        if to == Config::Linear {
            let file = self.tmp.path().join("linear.nft");
            std::fs::write(&file, linear_script())?;
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

pub fn run(agent_bin: &Path) -> Result<Section> {
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
        tmp: TempDir::new("bench")?,
        current: Config::None,
        sync_pf: vec![],
        sync_eip: vec![],
        unsync_pf: vec![],
        unsync_eip: vec![],
        linear_load_ms: vec![],
        rss_kb: vec![],
    };
    lab.ok("/syncportforwarding", &pf_body(false))?;
    lab.ok("/synceip", &eip_body(false))?;
    traffic::conn_rate(
        &lab.public,
        &Config::None.target(RATE_PORT),
        Duration::from_millis(200),
        100,
    )
    .context("the probe port forward does not work")?;

    eprintln!("nat: one-rule creates with no rules");
    let (create_empty, create_empty_agent) = b.create_one("empty")?;

    eprintln!("nat: syncing {N} port forwards and {N} EIPs");
    b.switch(Config::Maps)?;
    traffic::conn_rate(
        &lab.public,
        &Config::Maps.target(RATE_PORT),
        Duration::from_millis(200),
        100,
    )
    .context("the probe port forward does not work with 10k rules")?;

    eprintln!("nat: one-rule creates with {N} rules");
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
                    .with_context(|| format!("connection rate, {}", cfg.name()))?;
            failed_conns += failed;
            b.flush_conntrack()?;
            let t = traffic::throughput(&lab.public, &cfg.target(SINK_PORT), STREAM_TIME)
                .with_context(|| format!("throughput, {}", cfg.name()))?;
            eprintln!(
                "nat: round {round} {:<24} {r:>8.0} conn/s {t:>8.0} MB/s",
                cfg.name()
            );
            rate[c].push(r);
            stream[c].push(t);
        }
    }
    b.switch(Config::Maps)?;
    let (_, hwm_end) = lab.agent_memory_kb()?;
    b.switch(Config::None)?;

    let mut sync = Table::new(&format!("Apply time: sync {N} entries (HTTP round trip)"));
    let http = |v: &[Timed]| v.iter().map(|t| t.http_ms).collect::<Vec<_>>();
    let agent = |v: &[Timed]| v.iter().filter_map(|t| t.agent_ms).collect::<Vec<_>>();
    for (what, samples) in [
        ("/syncportforwarding", &b.sync_pf),
        ("/synceip", &b.sync_eip),
    ] {
        let h = http(samples);
        sync.check(
            format!(
                "`{what}` 0 -> {N}, worst of {} (first: {})",
                h.len(),
                samples[0].show()
            ),
            format!(
                "{:.0} ms (median {:.0} ms; agent apply median {:.0} ms)",
                max(&h),
                median(&h),
                median(&agent(samples))
            ),
            "<= 1000 ms",
            max(&h) <= 1000.0,
        );
    }
    for (what, samples) in [
        ("/syncportforwarding", &b.unsync_pf),
        ("/synceip", &b.unsync_eip),
    ] {
        let h = http(samples);
        sync.info(
            format!("`{what}` {N} -> 0, median of {}", h.len()),
            format!(
                "{:.0} ms (agent apply {:.0} ms)",
                median(&h),
                median(&agent(samples))
            ),
        );
    }
    sync.info(
        format!("linear table: `nft -f` of {N} rules (for comparison), median"),
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
        format!("with {N} PF + {N} EIP present"),
        format!(
            "{f:.1} ms (agent apply {:.1} ms, max {:.1} ms)",
            median(&create_full_agent),
            max(&create_full)
        ),
        "<= 20 ms",
        f <= 20.0,
    );
    one.check(
        "ratio full / empty",
        format!("{:.2}x", f / e),
        "<= 2x",
        f <= 2.0 * e,
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
        ">= 0.9x",
        rm / rn >= 0.9,
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
        format!("VmRSS with {N} PF + {N} EIP, first install"),
        mb(first),
        "< 50 MB",
        mb_f(first) < 50.0,
    );
    mem.check(
        format!(
            "VmRSS with {N} PF + {N} EIP, worst of {} installs (after each: {})",
            b.rss_kb.len(),
            b.rss_kb
                .iter()
                .map(|k| format!("{:.1}", mb_f(*k)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        mb(worst),
        "< 50 MB",
        mb_f(worst) < 50.0,
    );
    mem.info("VmHWM (peak) over the run", mb(hwm_end));

    if failed_conns > 0 {
        eprintln!("nat: {failed_conns} connections failed");
    }
    let intro = format!(
        "{}\n\nTopology: namespaces ctl -- vr (release vr-agent, sync-mode HTTP) -- pub, \
         vr -- tenant. Port forwards are TCP VIP 172.22.x.y:port -> {GUEST}:80, EIPs \
         172.23.x.y -> 192.168.101-140.x. Rate: one client thread in pub connecting to a \
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
