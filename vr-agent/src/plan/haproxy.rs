//! The haproxy config of the router's tcp/http/https listeners.
//!
//! **One** master-worker haproxy serves every listener, where zvr runs one
//! process per listener. One process means one config check, one reload and
//! one stats socket per refresh, however many listeners change (a refresh of
//! 100 listeners is one `haproxy -c` and one SIGUSR2, not 100 process
//! starts), one supervisor, and no per-listener pid bookkeeping that can leak
//! processes (P11). The cost is that a reload restarts the workers of every
//! listener; that is hitless (listening sockets are handed over to the new
//! worker, server state is kept through the server-state file), so no
//! listener notices. Each listener is one `frontend <listenerUuid>` and its
//! pools are `backend <listenerUuid>` (default) and
//! `backend <listenerUuid>-<serverGroupUuid>` (redirect-rule targets).
//!
//! The ACL entries of a listener go to a side file (`acl/<uuid>.txt`, read
//! with `src -f`), so a long list does not hit haproxy's line limits.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use vr_model::lb::{
    AclKind, Algorithm, Backend, HealthKind, LbMode, LbState, Listener, Persistence,
};

/// Where haproxy's files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub dir: PathBuf,
    pub certs: PathBuf,
}

impl Paths {
    pub fn new(dir: impl Into<PathBuf>, certs: impl Into<PathBuf>) -> Paths {
        Paths {
            dir: dir.into(),
            certs: certs.into(),
        }
    }
    pub fn conf(&self) -> PathBuf {
        self.dir.join("haproxy.cfg")
    }
    pub fn stats_sock(&self) -> PathBuf {
        self.dir.join("stats.sock")
    }
    pub fn master_sock(&self) -> PathBuf {
        self.dir.join("master.sock")
    }
    pub fn pid(&self) -> PathBuf {
        self.dir.join("haproxy.pid")
    }
    pub fn server_state(&self) -> PathBuf {
        self.dir.join("server-state")
    }
    pub fn acl_dir(&self) -> PathBuf {
        self.dir.join("acl")
    }
    pub fn acl(&self, listener: &str) -> PathBuf {
        self.acl_dir().join(format!("{listener}.txt"))
    }
    pub fn cert(&self, uuid: &str) -> PathBuf {
        self.certs.join(format!("{uuid}.pem"))
    }
}

/// Everything haproxy reads: the config and the ACL side files (by
/// listener uuid).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Files {
    pub conf: String,
    pub acls: BTreeMap<String, String>,
}

/// Global `maxconn` bounds: haproxy needs two fds per connection and
/// refuses to start when it cannot raise its fd limit that far, so the sum
/// of the listeners' `maxConnection` (2 000 000 in the reference's fixture)
/// is capped by the box's limit ([`Host::fd_limit`]).
const MAXCONN_MIN: u64 = 4096;
const MAXCONN_MAX: u64 = 100_000;

/// Who haproxy's workers run as (`uid`, `gid` in `global`): the master
/// stays root to bind, load certificates and re-exec on reloads; each
/// worker it forks drops to these ids before it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

/// The users haproxy's workers may run as, best first: Debian's haproxy
/// package creates `haproxy`.
pub const USERS: [&str; 2] = ["haproxy", "nobody"];

/// The fallback when the box has none of [`USERS`]: an id with no entry
/// still owns nothing and so is unprivileged.
pub const NOBODY: RunAs = RunAs {
    uid: 65534,
    gid: 65534,
};

/// Facts about the box the config depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    /// Caps `nbthread`.
    pub cpus: usize,
    /// The hard `RLIMIT_NOFILE` haproxy inherits.
    pub fd_limit: u64,
    pub run_as: RunAs,
}

/// The cipher settings of a `securityPolicyType`.
fn tls_options(policy: &str) -> String {
    const STRICT: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
    match policy {
        "tls_cipher_policy_1_1" => "ssl-min-ver TLSv1.1".to_string(),
        "tls_cipher_policy_1_2" => "ssl-min-ver TLSv1.2".to_string(),
        "tls_cipher_policy_1_2_strict" => {
            format!("ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.2 ciphers {STRICT}")
        }
        "tls_cipher_policy_1_2_strict_with_1_3" => format!("ssl-min-ver TLSv1.2 ciphers {STRICT}"),
        // default and 1_0
        _ => "ssl-min-ver TLSv1.0".to_string(),
    }
}

/// The config for the listeners of `lb`; None when haproxy has nothing to
/// serve.
pub fn render(lb: &LbState, paths: &Paths, host: Host) -> Option<Files> {
    let listeners: Vec<&Listener> = lb.proxied().collect();
    if listeners.is_empty() {
        return None;
    }
    let mut files = Files::default();
    let mut c = String::new();
    // Fds besides connections: listeners, health checks, logs, sockets.
    let servers: usize = listeners
        .iter()
        .map(|l| l.backends.len() + l.groups.iter().map(|g| g.servers.len()).sum::<usize>())
        .sum();
    let spare = 200 + (listeners.len() + servers) as u64;
    let fd_cap = (host.fd_limit.saturating_sub(spare) / 2).max(256);
    let maxconn: u64 = listeners
        .iter()
        .map(|l| l.params.max_conn.map_or(MAXCONN_MIN, u64::from))
        .sum::<u64>()
        .clamp(MAXCONN_MIN, MAXCONN_MAX)
        .min(fd_cap);
    let _ = writeln!(
        c,
        "# Rendered by vr-agent from its desired state; do not edit."
    );
    c.push_str("global\n");
    let _ = writeln!(c, "  uid {}\n  gid {}", host.run_as.uid, host.run_as.gid);
    let _ = writeln!(
        c,
        "  stats socket {} mode 600 level admin expose-fd listeners",
        paths.stats_sock().display()
    );
    c.push_str("  stats timeout 30s\n");
    let _ = writeln!(c, "  server-state-file {}", paths.server_state().display());
    let _ = writeln!(c, "  maxconn {maxconn}");
    if let Some(n) = listeners.iter().filter_map(|l| l.params.nbprocess).max() {
        let _ = writeln!(c, "  nbthread {}", (n as usize).clamp(1, host.cpus.max(1)));
    }
    if lb.log_enabled {
        let level = lb.log_level.as_deref().unwrap_or("info");
        let _ = writeln!(c, "  log stdout format raw local0 {level}");
    }
    c.push_str("  tune.ssl.default-dh-param 2048\n");
    c.push_str("\ndefaults\n");
    c.push_str("  log global\n");
    c.push_str("  option dontlognull\n");
    c.push_str("  option redispatch\n");
    c.push_str("  retries 3\n");
    c.push_str("  timeout connect 5s\n");
    c.push_str("  timeout client 60s\n");
    c.push_str("  timeout server 60s\n");
    c.push_str("  timeout http-request 10s\n");
    c.push_str("  load-server-state-from-file global\n");
    for l in listeners {
        frontend(&mut c, &mut files, l, paths);
        backend(&mut c, l, &l.uuid, &l.backends);
        for g in &l.groups {
            backend(&mut c, l, &format!("{}-{}", l.uuid, g.uuid), &g.servers);
        }
    }
    files.conf = c;
    Some(files)
}

fn is_http(l: &Listener) -> bool {
    matches!(l.mode, LbMode::Http | LbMode::Https)
}

fn frontend(c: &mut String, files: &mut Files, l: &Listener, paths: &Paths) {
    let p = &l.params;
    let _ = writeln!(c, "\nfrontend {}", l.uuid);
    let _ = writeln!(c, "  mode {}", if is_http(l) { "http" } else { "tcp" });
    // `transparent`: the bind works before the VIP is on the NIC (the VIP
    // and the listener arrive in separate commands).
    let mut bind = format!("  bind {}:{} transparent", l.vip, l.port);
    if let (LbMode::Https, Some(cert)) = (l.mode, &l.certificate) {
        let _ = write!(
            bind,
            " ssl crt {} {}",
            paths.cert(cert).display(),
            tls_options(&l.cipher_policy)
        );
        if !p.alpn.is_empty() {
            let _ = write!(bind, " alpn {}", p.alpn.join(","));
        }
    }
    let _ = writeln!(c, "{bind}");
    if let Some(m) = p.max_conn {
        let _ = writeln!(c, "  maxconn {m}");
    }
    let idle = p.idle_timeout_s.unwrap_or(60);
    let _ = writeln!(c, "  timeout client {idle}s");
    if l.full_log {
        let _ = writeln!(
            c,
            "  option {}",
            if is_http(l) { "httplog" } else { "tcplog" }
        );
    }
    if is_http(l) {
        match p.http_mode.as_deref() {
            // Gone from haproxy 2.x: tunnel is the default keep-alive.
            Some("http-tunnel") | None => {}
            Some("forceclose") => c.push_str("  option httpclose\n"),
            Some(m) => {
                let _ = writeln!(c, "  option {m}");
            }
        }
        c.push_str("  option forwardfor\n");
    }
    if let Some(acl) = &p.acl {
        let mut text = String::new();
        for n in &acl.entries {
            let _ = writeln!(text, "{n}");
        }
        files.acls.insert(l.uuid.clone(), text);
        let _ = writeln!(c, "  acl acl_src src -f {}", paths.acl(&l.uuid).display());
        let cond = match acl.kind {
            AclKind::Black => "acl_src",
            AclKind::White => "!acl_src",
        };
        let _ = writeln!(c, "  tcp-request connection reject if {cond}");
    }
    if let Some(r) = &p.redirect_https {
        if r.port == 443 {
            let _ = writeln!(c, "  http-request redirect scheme https code {}", r.code);
        } else {
            let _ = writeln!(
                c,
                "  http-request redirect prefix https://%[req.hdr(host),field(1,:)]:{} code {}",
                r.port, r.code
            );
        }
    }
    for (i, r) in l.redirect_rules.iter().enumerate() {
        let mut conds = vec![];
        if let Some(h) = &r.host {
            let _ = writeln!(c, "  acl rr{i}_host hdr(host),field(1,:) -i {h}");
            conds.push(format!("rr{i}_host"));
        }
        if let Some(path) = &r.path {
            let _ = writeln!(c, "  acl rr{i}_path path_beg {path}");
            conds.push(format!("rr{i}_path"));
        }
        let _ = writeln!(
            c,
            "  use_backend {}-{} if {}",
            l.uuid,
            r.group,
            conds.join(" ")
        );
    }
    let _ = writeln!(c, "  default_backend {}", l.uuid);
}

fn backend(c: &mut String, l: &Listener, name: &str, servers: &[Backend]) {
    let p = &l.params;
    let _ = writeln!(c, "\nbackend {name}");
    let _ = writeln!(c, "  mode {}", if is_http(l) { "http" } else { "tcp" });
    let algo = match p.algorithm.unwrap_or(Algorithm::RoundRobin) {
        Algorithm::RoundRobin => "roundrobin",
        Algorithm::LeastConn => "leastconn",
        Algorithm::Source => "source",
        Algorithm::StaticRr => "static-rr",
    };
    let _ = writeln!(c, "  balance {algo}");
    let _ = writeln!(c, "  timeout server {}s", p.idle_timeout_s.unwrap_or(60));
    let h = &p.health;
    let _ = writeln!(c, "  timeout check {}s", h.timeout_s);
    if let HealthKind::Http {
        method,
        uri,
        classes,
    } = &h.kind
    {
        let _ = writeln!(c, "  option httpchk {method} {uri}");
        let digits: String = classes.iter().map(|d| d.to_string()).collect();
        let _ = writeln!(c, "  http-check expect rstatus ^[{digits}]");
    }
    if is_http(l) && !p.compression.is_empty() {
        let _ = writeln!(c, "  compression algo {}", p.compression.join(" "));
    }
    let cookie = match &p.persistence {
        Some(Persistence::Insert { cookie, idle_s }) => {
            let idle = idle_s.map(|s| format!(" maxidle {s}s")).unwrap_or_default();
            let _ = writeln!(c, "  cookie {cookie} insert indirect nocache{idle}");
            true
        }
        Some(Persistence::Rewrite { cookie }) => {
            let _ = writeln!(c, "  cookie {cookie} rewrite");
            true
        }
        None => false,
    };
    for s in servers {
        let mut line = format!(
            "  server s-{ip} {ip}:{} weight {} check inter {}s rise {} fall {}",
            l.instance_port,
            s.weight,
            h.interval_s,
            h.rise,
            h.fall,
            ip = s.ip
        );
        if let Some(port) = h.port {
            let _ = write!(line, " port {port}");
        }
        if cookie {
            let _ = write!(line, " cookie s-{}", s.ip);
        }
        match p.proxy_protocol {
            Some(1) => line.push_str(" send-proxy"),
            Some(2) => line.push_str(" send-proxy-v2"),
            _ => {}
        }
        let _ = writeln!(c, "{line}");
    }
}

/// A state with every kind of listener, for tests.
#[cfg(test)]
pub fn tests_state() -> LbState {
    tests::state()
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::vr;
    use vr_model::lb::{LbEdit, listeners};

    pub fn state() -> LbState {
        let body: vr::LbCmd = serde_json::from_str(
            r#"{"enableHaproxyLog":true,"lbs":[
            {"lbUuid":"lb1","listenerUuid":"web","vip":"172.20.10.102","nicIps":["192.168.100.10","192.168.100.11"],
             "instancePort":80,"loadBalancerPort":80,"mode":"http",
             "parameters":["balancerWeight::192.168.100.11::3","balancerAlgorithm::roundrobin",
               "healthCheckTarget::http:default","healthCheckParameter::GET:/health:http_2xx,http_3xx",
               "healthCheckInterval::2","unhealthyThreshold::3","healthyThreshold::2",
               "accessControlStatus::enable","aclType::black","aclEntry::10.1.0.0/16,10.2.0.1",
               "sessionPersistence::insert","cookieName::LB","sessionIdleTimeout::300",
               "httpRedirectHttps::enable","redirectPort::8443","statusCode::301",
               "httpCompressAlgos::gzip","httpMode::http-server-close","maxConnection::2000000"]},
            {"lbUuid":"lb1","listenerUuid":"tls","vip":"172.20.10.102","nicIps":["192.168.100.12"],
             "instancePort":8080,"loadBalancerPort":443,"mode":"https","certificateUuid":"cert1",
             "securityPolicyType":"tls_cipher_policy_1_2_strict",
             "parameters":["httpVersions::h2,http1.1","tcpProxyProtocol::v2","Nbprocess::2",
               "balancerAlgorithm::leastconn"],
             "serverGroups":[{"serverGroupUuid":"g1","backendServers":[{"ip":"192.168.100.13","weight":50}],"isDefault":false},
                             {"serverGroupUuid":"g0","backendServers":[{"ip":"192.168.100.12","weight":10}],"isDefault":true}],
             "redirectRules":[{"redirectRuleUuid":"r1","redirectRule":"api.example.com/v1","serverGroupUuid":"g1"}]},
            {"lbUuid":"lb2","listenerUuid":"db","vip":"172.20.10.103","nicIps":["192.168.100.20"],
             "instancePort":5432,"loadBalancerPort":5432,"mode":"tcp",
             "parameters":["balancerAlgorithm::source","connectionIdleTimeout::600","accessControlStatus::enable",
               "aclType::white","aclEntry::172.20.0.0/16"]},
            {"lbUuid":"lb2","listenerUuid":"dns","vip":"172.20.10.103","nicIps":["192.168.100.20"],
             "instancePort":53,"loadBalancerPort":53,"mode":"udp"}
            ]}"#,
        )
        .unwrap();
        let (ls, remove) = listeners(&body.lbs).unwrap();
        let mut s = LbState::default();
        s.apply(&LbEdit::Certs(vec!["cert1".into()])).unwrap();
        s.apply(&LbEdit::Refresh {
            listeners: ls,
            remove,
            log: body.enable_haproxy_log,
        })
        .unwrap();
        s.validate().unwrap();
        s
    }

    /// `UPDATE_GOLDEN=1 cargo test` rewrites the golden file after a
    /// deliberate change.
    #[test]
    fn config_matches_golden() {
        let paths = Paths::new("/run/vr/haproxy", "/run/vr/certificates");
        let host = Host {
            cpus: 2,
            fd_limit: 1 << 20,
            run_as: RunAs { uid: 103, gid: 107 },
        };
        let files = render(&state(), &paths, host).unwrap();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/plan/testdata/haproxy.cfg");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &files.conf).unwrap();
        }
        assert_eq!(files.conf, std::fs::read_to_string(path).unwrap());
        assert_eq!(files.acls["web"], "10.1.0.0/16\n10.2.0.1/32\n");
        assert_eq!(files.acls["db"], "172.20.0.0/16\n");
        assert!(!files.conf.contains("dns"), "udp is not haproxy's");
    }

    #[test]
    fn workers_run_as_the_given_user() {
        let r = RunAs { uid: 108, gid: 115 };
        let host = Host {
            cpus: 2,
            fd_limit: 20000,
            run_as: r,
        };
        let files = render(&state(), &Paths::new("/a", "/b"), host).unwrap();
        let global = files.conf.split("\ndefaults").next().unwrap();
        assert!(
            global.contains(&format!("\n  uid {}\n  gid {}\n", r.uid, r.gid)),
            "{global}"
        );
    }

    #[test]
    fn nothing_to_serve_is_none() {
        let mut s = state();
        s.listeners.retain(|_, l| l.mode == LbMode::Udp);
        let host = Host {
            cpus: 2,
            fd_limit: 20000,
            run_as: NOBODY,
        };
        assert!(render(&s, &Paths::new("/a", "/b"), host).is_none());
        let files = render(&state(), &Paths::new("/a", "/b"), host).unwrap();
        assert!(files.conf.contains("maxconn 9896\n"), "{}", files.conf);
    }
}
