//! Wire -> model -> every renderer of the VR, as the agent does for a
//! sequence of commands. Input: records "path\nbody" separated by NUL.
//!
//! Each record is decoded as the route does; an edit the model accepts
//! (the single-edit checks and the whole-batch validation must agree)
//! is kept. Then the nft table, the dnsmasq files, the haproxy config and
//! the UDP LB table are rendered from the model, and checked:
//! * no control character but newline reaches any file (a newline inside
//!   a value would forge a directive);
//! * an element-level change (one PF or EIP) leaves the same elements as
//!   rendering the whole model again;
//! * every rendered element encodes as the netlink batch the agent sends.
//!
//! With `FUZZ_PARSE_BACK=1` the rendered files also go through the real
//! parsers: `nft -c -f` (in a new network namespace), `dnsmasq --test`,
//! `haproxy -c`. That forks three processes per input (about 100 inputs
//! a second), so it is a separate, shorter run (scripts/fuzz).
//! `FUZZ_SHOW=1` prints what an input renders (for writing seeds).
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use common::net::{IfName, Mac};
use common::vr::*;
use libfuzzer_sys::fuzz_target;
use vr_model::lb::{self, LbEdit};
use vr_model::{Edit, Model, checks, dns, from_wire};
use vr_agent::plan::dnsmasq;
use vr_model::dhcp::{self, DhcpEdit};
use vr_agent::plan::{haproxy, lbudp, nat};

const PATHS: &[&str] = &[
    "/configurenic",
    "/createvip",
    "/createportforwarding",
    "/revokeportforwarding",
    "/syncportforwarding",
    "/createeip",
    "/removeeip",
    "/synceip",
    "/setsnat",
    "/syncsnat",
    "/refreshDhcpServer",
    "/adddhcp",
    "/setdns",
    "/setvpcdns",
    "/lb/refresh",
    "/lb/delete",
];

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    common::agent::decode_exact::<T>(body).ok()
}

/// The edit a route would make of this record, None when it refuses it.
fn edit(path: &[u8], body: &[u8]) -> Option<Edit> {
    let i = PATHS
        .iter()
        .position(|p| p.as_bytes() == path)
        .unwrap_or_else(|| path.iter().map(|&b| b as usize).sum::<usize>() % PATHS.len());
    Some(match PATHS[i] {
        "/configurenic" => Edit::ConfigureNics(from_wire::nics(&decode::<NicsCmd>(body)?.nics).ok()?),
        "/createvip" => {
            let c = decode::<CreateVipCmd>(body)?;
            Edit::CreateVips {
                vips: from_wire::vips(&c.vips).ok()?,
                primaries: from_wire::nic_ips(&c.nic_ips).ok()?,
            }
        }
        "/createportforwarding" => {
            Edit::CreatePortForwards(from_wire::port_forwards(&decode::<PortForwardingCmd>(body)?.rules).ok()?)
        }
        "/revokeportforwarding" => Edit::RevokePortForwards(
            decode::<PortForwardingCmd>(body)?.rules.iter().map(|r| r.uuid.clone()).collect(),
        ),
        "/syncportforwarding" => {
            Edit::SyncPortForwards(from_wire::port_forwards(&decode::<PortForwardingCmd>(body)?.rules).ok()?)
        }
        "/createeip" => Edit::CreateEip(from_wire::eip("eip", &decode::<EipCmd>(body)?.eip).ok()?),
        "/removeeip" => Edit::RemoveEip(from_wire::eip("eip", &decode::<EipCmd>(body)?.eip).ok()?.vip),
        "/synceip" => Edit::SyncEips(from_wire::eips(&decode::<SyncEipCmd>(body)?.eips).ok()?),
        "/setsnat" => Edit::SetSnat(from_wire::snat("snat", &decode::<SetSnatCmd>(body)?.snat).ok()?),
        "/syncsnat" => {
            let c = decode::<SyncSnatCmd>(body)?;
            Edit::SyncSnats { snats: from_wire::snats("snats", &c.snats).ok()?, enable: c.enable }
        }
        "/refreshDhcpServer" => {
            let servers = dhcp::servers(&decode::<DhcpServersCmd>(body)?).ok()?;
            checks::dhcp_servers(&servers).ok()?;
            Edit::Dhcp(DhcpEdit::Refresh(servers))
        }
        "/adddhcp" => {
            let c = decode::<AddDhcpCmd>(body)?;
            let entries = dhcp::entries(&c.dhcp_entries).ok()?;
            checks::dhcp_entries("dhcpEntries", &entries).ok()?;
            Edit::Dhcp(DhcpEdit::Add { entries, rebuild: c.rebuild })
        }
        "/setdns" => Edit::Dhcp(DhcpEdit::SetDns(dns::dns(&decode::<DnsCmd>(body)?).ok()?)),
        "/setvpcdns" => Edit::Dhcp(DhcpEdit::SetDns(dns::vpc_dns(&decode::<SetVpcDnsCmd>(body)?).ok()?)),
        "/lb/refresh" => {
            let c = decode::<LbCmd>(body)?;
            let (listeners, remove) = lb::listeners(&c.lbs).ok()?;
            Edit::Lb(LbEdit::Refresh { listeners, remove, log: c.enable_haproxy_log })
        }
        _ => Edit::Lb(LbEdit::Delete(lb::listener_uuids(&decode::<LbCmd>(body)?.lbs).ok()?)),
    })
}

/// Every configured NIC has an interface, named by its order.
fn links(m: &Model) -> BTreeMap<Mac, IfName> {
    m.nics.keys().enumerate().map(|(i, mac)| (*mac, format!("eth{i}").parse().unwrap())).collect()
}

fn no_control_chars(what: &str, text: &str) {
    if let Some(c) = text.chars().find(|c| c.is_control() && *c != '\n') {
        panic!("{what}: control character {c:?} rendered:\n{text}");
    }
}

/// The elements an element-level change adds and removes, as the engine's
/// fast path computes them; None for the other edits.
fn element_change(m: &Model, e: &Edit, links: &BTreeMap<Mac, IfName>) -> Option<(Vec<nat::Element>, Vec<nat::Element>)> {
    let pf = |rules: &mut dyn Iterator<Item = &vr_model::PortForward>| -> Option<Vec<nat::Element>> {
        let mut out = vec![];
        for r in rules {
            out.extend(nat::pf_elements(r, links).ok()?);
        }
        Some(out)
    };
    match e {
        Edit::CreatePortForwards(rules) => Some((
            pf(&mut rules.iter().filter_map(|r| m.port_forwards.get(&r.uuid)))?,
            pf(&mut rules.iter())?,
        )),
        Edit::RevokePortForwards(uuids) => Some((pf(&mut uuids.iter().filter_map(|u| m.port_forwards.get(u)))?, vec![])),
        Edit::CreateEip(x) => Some((
            m.eips.get(&x.vip).map(|o| nat::eip_elements(o, links)).transpose().ok()?.unwrap_or_default(),
            nat::eip_elements(x, links).ok()?,
        )),
        Edit::RemoveEip(vip) => Some((
            m.eips.get(vip).map(|o| nat::eip_elements(o, links)).transpose().ok()?.unwrap_or_default(),
            vec![],
        )),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut m = Model::default();
    // The render of `m` (the table the kernel would hold).
    let mut applied: Option<nat::Ruleset> = None;
    for record in data.split(|&b| b == 0).take(16) {
        let (path, body) = match record.iter().position(|&b| b == b'\n') {
            Some(i) => (&record[..i], &record[i + 1..]),
            None => (&[][..], record),
        };
        let Some(e) = edit(path, body) else { continue };
        let mut next = m.clone();
        let whole = next.apply(&e).and_then(|()| next.validate());
        if matches!(e, Edit::CreatePortForwards(_) | Edit::CreateEip(_)) {
            let fast = m.check_added(&e).and_then(|()| m.clone().apply(&e));
            assert_eq!(fast.is_ok(), whole.is_ok(), "check_added {fast:?} vs validate {whole:?} for {e:?}");
        }
        if whole.is_err() {
            continue;
        }
        let links = links(&next);
        let obs = nat::Observed { links: &links, agent_port: 7272 };
        // The engine refuses an edit whose table cannot be rendered.
        let Ok(rendered) = nat::render(&next, &obs) else { continue };
        let same_links = links == self::links(&m);
        if let (true, Some((gone, came)), Some(mut before)) = (same_links, element_change(&m, &e, &links), applied.take()) {
            before.commit(gone, came);
            assert_eq!(before.elements, rendered.elements, "element change differs from a full render for {e:?}");
        }
        applied = Some(rendered);
        m = next;
    }
    render_all(&m, applied);
});

fn render_all(m: &Model, ruleset: Option<nat::Ruleset>) {
    let links = links(m);
    let Some(ruleset) = ruleset else { return };
    let nft = nat::full(None, &ruleset).script;
    no_control_chars("nft", &nft);
    // Every element the plan renders goes to the kernel as our own
    // netlink batch: each must encode.
    let bare = nat::Ruleset { skeleton: ruleset.skeleton.clone(), ..Default::default() };
    if let Some(adds) = nat::change(Some(&bare), &ruleset) {
        let batch = vr_agent::sys::nft_elements::encode(&adds.script);
        assert!(matches!(batch, Ok(Some(_))), "elements that do not encode: {batch:?}\n{}", adds.script);
    }
    let dir = scratch();
    let dpaths = dnsmasq::Paths::new(dir.join("dnsmasq"));
    let dns = dnsmasq::render(&m.dhcp, &links, &dpaths).files;
    for (path, text) in dns.by_path(&dpaths) {
        no_control_chars(&path.display().to_string(), text);
    }
    let hpaths = haproxy::Paths::new(dir.join("haproxy"), dir.join("certificates"));
    let host = haproxy::Host { cpus: 2, fd_limit: 1 << 20, run_as: haproxy::NOBODY };
    let lb = haproxy::render(&m.lb, &hpaths, host);
    if let Some(f) = &lb {
        no_control_chars("haproxy.cfg", &f.conf);
        for (name, acl) in &f.acls {
            no_control_chars(name, acl);
        }
    }
    let udp = lbudp::render(&m.lb);
    no_control_chars("lb udp", &udp);
    if std::env::var_os("FUZZ_SHOW").is_some() {
        eprintln!("{nft}{udp}\n{}\n{}", dns.conf, lb.as_ref().map_or("", |f| f.conf.as_str()));
    }
    if parse_back() {
        parse::nft(&format!("{nft}{udp}"));
        parse::dnsmasq(&dns, &dpaths);
        if let Some(f) = &lb {
            parse::haproxy(m, f, &hpaths);
        }
    }
}

fn parse_back() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("FUZZ_PARSE_BACK").is_some_and(|v| v == "1"))
}

/// A directory of this process for the rendered files.
fn scratch() -> std::path::PathBuf {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("fuzz-render-vr-{}", std::process::id()));
        for sub in ["dnsmasq", "haproxy/acl", "certificates"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        d
    })
    .clone()
}

/// The real parsers, in processes of their own.
mod parse {
    use std::io::Write;
    use std::process::{Command, Stdio};

    use super::*;

    fn run(cmd: &mut Command, stdin: Option<&str>) -> Result<(), String> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run: {e}"))?;
        if let Some(s) = stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
    }

    pub fn nft(script: &str) {
        if let Err(e) = run(Command::new("unshare").args(["-n", "nft", "-c", "-f", "-"]), Some(script)) {
            panic!("nft -c refused the rendered table: {e}\n{script}");
        }
    }

    pub fn dnsmasq(files: &dnsmasq::Files, paths: &dnsmasq::Paths) {
        for (path, text) in files.by_path(paths) {
            std::fs::write(&path, text).unwrap();
        }
        let conf = format!("--conf-file={}", paths.conf().display());
        if let Err(e) = run(Command::new("dnsmasq").args(["--test", &conf]), None) {
            panic!("dnsmasq --test refused the rendered config: {e}\n{}", files.conf);
        }
    }

    pub fn haproxy(m: &Model, files: &haproxy::Files, paths: &haproxy::Paths) {
        std::fs::write(paths.conf(), &files.conf).unwrap();
        for (listener, acl) in &files.acls {
            std::fs::write(paths.acl(listener), acl).unwrap();
        }
        for l in m.lb.listeners.values() {
            if let Some(c) = &l.certificate {
                std::fs::write(paths.cert(c), test_pem()).unwrap();
            }
        }
        let conf = paths.conf();
        if let Err(e) = run(Command::new("haproxy").args(["-c", "-q", "-f"]).arg(&conf), None) {
            panic!("haproxy -c refused the rendered config: {e}\n{}", files.conf);
        }
    }

    /// One self-signed certificate and key, made once per process.
    fn test_pem() -> &'static str {
        static PEM: OnceLock<String> = OnceLock::new();
        PEM.get_or_init(|| {
            let dir = scratch();
            let (key, crt) = (dir.join("k.pem"), dir.join("c.pem"));
            let ok = Command::new("openssl")
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=fuzz", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&crt)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "openssl cannot make a test certificate");
            std::fs::read_to_string(crt).unwrap() + &std::fs::read_to_string(key).unwrap()
        })
    }
}
