//! The shipped units and the defaults file against what the binaries do
//! (issue 15): the hardened kvm-agent.service must leave writable every
//! directory the agent writes at its defaults (read from `kvm-agent --help`,
//! so a new or moved directory fails here), keep the capabilities and
//! devices it needs, take every option from /etc/default/kvm-agent; the
//! router's vr-agent.service must never stop restarting.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// `[Section] Key=value` lines, each key's values in order (an empty value
/// resets the list, as systemd does).
fn unit(path: &str) -> BTreeMap<String, Vec<String>> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[') {
            section = s.trim_end_matches(']').to_string();
            continue;
        }
        let (k, v) = line.split_once('=').expect("Key=value");
        let values = keys.entry(format!("{section}.{k}")).or_default();
        if v.is_empty() {
            values.clear();
        } else {
            values.extend(v.split_whitespace().map(str::to_string));
        }
    }
    keys
}

/// Each option of `kvm-agent --help`: (flag, env var, default values).
fn options() -> Vec<(String, Option<String>, Vec<String>)> {
    let out = Command::new(env!("CARGO_BIN_EXE_kvm-agent"))
        .arg("--help")
        .output()
        .expect("kvm-agent --help");
    let help = String::from_utf8(out.stdout).unwrap();
    let mut opts = Vec::new();
    let lines: Vec<&str> = help.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let Some(flag) = l
            .trim()
            .strip_prefix("--")
            .map(|f| f.split(' ').next().unwrap())
        else {
            continue;
        };
        let text = lines.get(i + 1).copied().unwrap_or_default();
        let between = |open: &str| {
            text.split_once(open)
                .map(|(_, rest)| rest.split_once(']').unwrap().0.to_string())
        };
        let env = between("[env: ").map(|e| e.trim_end_matches('=').to_string());
        let defaults = between("[default: ")
            .map(|d| d.split(' ').map(str::to_string).collect())
            .unwrap_or_default();
        opts.push((flag.to_string(), env, defaults));
    }
    assert!(opts.len() > 10, "kvm-agent --help parsed to {opts:?}");
    opts
}

fn under(path: &str, dir: &str) -> bool {
    Path::new(path).starts_with(dir)
}

#[test]
fn kvm_agent_unit_leaves_writable_every_directory_the_agent_writes() {
    let u = unit("packaging/kvm-agent.service");
    let get = |k: &str| u.get(k).cloned().unwrap_or_default();
    assert_eq!(get("Service.ProtectSystem"), ["strict"]);
    // Writable under ProtectSystem=strict: ReadWritePaths=, and the
    // State/Logs directories systemd makes.
    let mut writable: Vec<String> = get("Service.ReadWritePaths")
        .iter()
        .map(|p| p.trim_start_matches(['-', '+']).to_string())
        .collect();
    writable.extend(
        get("Service.StateDirectory")
            .iter()
            .map(|d| format!("/var/lib/{d}")),
    );
    writable.extend(
        get("Service.LogsDirectory")
            .iter()
            .map(|d| format!("/var/log/{d}")),
    );
    let opts = options();
    let default_of = |flag: &str| {
        opts.iter()
            .find(|(f, ..)| f == flag)
            .unwrap_or_else(|| panic!("no --{flag} in kvm-agent --help"))
            .2
            .clone()
    };
    // The agent writes its state dir, creates the console log dir (for
    // virtlogd) and the socket dir (for qemu; so its parent must be
    // writable), and nothing else on disk.
    let state = &default_of("state-dir")[0];
    let console = &default_of("console-log-dir")[0];
    let socket_parent = Path::new(&default_of("socket-dir")[0])
        .parent()
        .unwrap()
        .display()
        .to_string();
    for dir in [state, console, &socket_parent] {
        assert!(
            writable.iter().any(|w| under(dir, w)),
            "{dir} is read-only under kvm-agent.service (writable: {writable:?})"
        );
    }
    // The parent of the socket dir must exist for ReadWritePaths=: the
    // package ships it and tmpfiles makes it.
    let tmpfiles = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/kvm-agent.tmpfiles"),
    )
    .unwrap();
    assert!(
        tmpfiles
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(socket_parent.as_str())),
        "kvm-agent.tmpfiles does not make {socket_parent}"
    );
    // Bridges set sysctls under /proc/sys/net.
    if get("Service.ProtectKernelTunables") == ["yes"] {
        assert!(
            writable.iter().any(|w| w == "/proc/sys/net"),
            "/proc/sys/net read-only"
        );
    }
    // Volume and image dirs are read (volumesync, path checks): never
    // hidden.
    let hidden: Vec<&str> = match get("Service.ProtectHome").first().map(String::as_str) {
        Some("yes") | Some("tmpfs") => vec!["/home", "/root", "/run/user"],
        _ => vec![],
    };
    for dir in default_of("volume-dir")
        .iter()
        .chain(&default_of("image-dir"))
    {
        assert!(
            !hidden.iter().any(|h| under(dir, h)),
            "{dir} hidden by ProtectHome"
        );
        assert!(
            !get("Service.InaccessiblePaths")
                .iter()
                .any(|h| under(dir, h)),
            "{dir} inaccessible"
        );
    }
}

#[test]
fn kvm_agent_unit_keeps_what_the_agent_needs() {
    let u = unit("packaging/kvm-agent.service");
    let get = |k: &str| u.get(k).cloned().unwrap_or_default();
    let caps = get("Service.CapabilityBoundingSet");
    // Netlink, nft and net sysctls; SIGKILL to a qemu run as libvirt-qemu.
    for cap in ["CAP_NET_ADMIN", "CAP_KILL"] {
        assert!(caps.iter().any(|c| c == cap), "{cap} not in {caps:?}");
    }
    let families = get("Service.RestrictAddressFamilies");
    for f in ["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"] {
        assert!(families.iter().any(|x| x == f), "{f} not in {families:?}");
    }
    // The qemu left behind is found through /proc.
    assert!(get("Service.ProtectProc").is_empty() || get("Service.ProtectProc") == ["default"]);
    // A device allow-list (DevicePolicy=, DeviceAllow=, ProtectClock=) must
    // keep /dev/kvm: --domain-type auto opens it.
    let allow_list = !get("Service.DeviceAllow").is_empty()
        || get("Service.DevicePolicy").iter().any(|p| p != "auto")
        || get("Service.ProtectClock") == ["yes"]
        || get("Service.PrivateDevices") == ["yes"];
    if allow_list {
        assert_eq!(get("Service.PrivateDevices"), Vec::<String>::new());
        assert!(
            get("Service.DeviceAllow")
                .windows(2)
                .any(|w| w[0] == "/dev/kvm" && w[1].contains('w')),
            "/dev/kvm not allowed read-write"
        );
    }
    // The package's path; no flags, so /etc/default/kvm-agent sets them all.
    assert_eq!(get("Service.ExecStart"), ["/usr/bin/kvm-agent"]);
    assert_eq!(get("Service.EnvironmentFile"), ["-/etc/default/kvm-agent"]);
    assert_eq!(get("Service.Type"), ["notify"]);
}

#[test]
fn defaults_file_documents_every_kvm_agent_variable() {
    let file = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/kvm-agent.default"),
    )
    .unwrap();
    let mut vars: Vec<String> = options()
        .into_iter()
        .filter_map(|(_, env, _)| env)
        .collect();
    vars.push("KVM_AGENT_LOG".into());
    for var in vars {
        let line = file
            .lines()
            .find(|l| l.trim_start_matches('#').starts_with(&format!("{var}=")))
            .unwrap_or_else(|| panic!("{var} is not in packaging/kvm-agent.default"));
        assert!(
            line.starts_with('#'),
            "{var} is set, not documented: {line}"
        );
    }
    // And with the defaults kvm-agent --help shows.
    for (flag, env, defaults) in options() {
        let (Some(var), false) = (env, defaults.is_empty()) else {
            continue;
        };
        let want = format!("#{var}={}", defaults.join(","));
        assert!(file.lines().any(|l| l == want), "--{flag}: no line {want}");
    }
}

#[test]
fn vr_agent_unit_never_gives_up_restarting() {
    let u = unit("../images/files/vr-agent.service");
    let get = |k: &str| u.get(k).cloned().unwrap_or_default();
    assert_eq!(get("Unit.StartLimitIntervalSec"), ["0"]);
    assert_eq!(get("Service.Restart"), ["always"]);
    assert_eq!(
        get("Service.ExecStart").first().map(String::as_str),
        Some("/usr/bin/vr-agent")
    );
}
