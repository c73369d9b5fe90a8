//! Where everything sits in the lab: ZStack's standard three networks
//! (management, public, private), the management node in a subnet of its
//! own behind the management gateway, the router's description, and the
//! namespaces, wires and servers that make it real.
//!
//! ```text
//!  <lab>-mn   10.1.0.10/24, default via 10.1.0.1: the management node (vrctl,
//!   |         its callback receivers), nothing else
//!  <lab>-mgw  10.1.0.1 | 10.0.0.1: the management gateway (forwards between
//!   |         the node's subnet and the management network, nothing more)
//!   | eth0 (veth: the compute host's physical NIC eth0, management L2)
//!  <lab>-host: kvm-agent :7070, default via 10.0.0.1
//!   |  br_eth0 (eth0, host IP 10.0.0.21 moved onto it)     management L2
//!   |  br_eth1 (eth1, no address)                          private L2
//!   |  br_eth2 (eth2, no address)                          public L2
//!   +-- VR eth0 10.0.0.25/24 gw 10.0.0.1 (management, no default route) on br_eth0
//!   +-- VR eth1 172.20.10.5/16 gw 172.20.0.1 (public, default route,
//!   |          VIPs .100 .101 .102, SNAT, EIP, port forward, LB) on br_eth2
//!   +-- VR eth2 192.168.100.1/24 (private) on br_eth1
//!  br_eth2 -- eth2 -- <lab>-out: 172.20.0.1/16, the outside (upstream DNS, :80);
//!                     no route to 10.1.0.0/24, so a reply from the VR to the
//!                     node that leaves by the public NIC is lost
//!  br_eth1 -- eth1 -- <lab>-ten1 (tenant web-01, DHCP .10, EIP .101)
//!  br_eth1 -- tap  -- <lab>-ten2 (tenant db-01, DHCP .20, SNAT only)
//! ```
//!
//! The router reaches the node only through the route vr-agent adds from
//! `managementNodeCidr` (bootstrap info) and `mgtCidr` (`/init`) via the
//! management NIC's gateway, as ZStack's own agent does.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::topo::{self, sh, spawn};
use super::{LabError, Mode, Names, Options, checks};
use crate::router;
use crate::spec::RouterSpec;

pub use super::addresses::*;

/// One router of the lab: the only one, or a half of the HA pair.
pub struct Half {
    pub uuid: &'static str,
    pub agent: &'static str,
    pub mgmt_ip: &'static str,
    pub mgmt_mac: &'static str,
    pub pub_mac: &'static str,
    pub priv_mac: &'static str,
    /// Its compute host's kvm-agent.
    pub kvm: &'static str,
    pub vm_name: &'static str,
    /// Its namespace in namespace mode (`<lab>-<role>`).
    pub role: &'static str,
}

/// The lab's router, and with `--ha` its pair: the second on the second
/// host, the first's addresses on its own MACs.
pub const HALVES: [Half; 2] = [
    Half {
        uuid: VR_UUID,
        agent: VR_AGENT,
        mgmt_ip: VR_MGMT_IP,
        mgmt_mac: MGMT_MAC,
        pub_mac: PUB_MAC,
        priv_mac: PRIV_MAC,
        kvm: KVM,
        vm_name: "vrouter.lab",
        role: "vr",
    },
    Half {
        uuid: VR2_UUID,
        agent: VR2_AGENT,
        mgmt_ip: VR2_MGMT_IP,
        mgmt_mac: MGMT2_MAC,
        pub_mac: PUB2_MAC,
        priv_mac: PRIV2_MAC,
        kvm: KVM2,
        vm_name: "vrouter2.lab",
        role: "vr2",
    },
];

/// The role of the host a half runs on (`host`, `host2`).
pub fn host_of(half: &Half) -> &'static str {
    if half.kvm == KVM2 { "host2" } else { "host" }
}

/// The router's description in the lab (also written to
/// `<state>/router.json` for `vrctl vr apply|diff|status`).
pub fn router_spec(names: &Names, image_dir: &Path) -> RouterSpec {
    half_spec(names, image_dir, &HALVES[0], None)
}

/// The HA pair's descriptions (`router.json`, `router2.json`): each
/// half's `[ha]` names the other, keepalived's heartbeat is the management
/// NIC (as the node sends it), and both have the echo port forward.
pub fn pair_specs(names: &Names, image_dir: &Path) -> [RouterSpec; 2] {
    [
        half_spec(names, image_dir, &HALVES[0], Some(&HALVES[1])),
        half_spec(names, image_dir, &HALVES[1], Some(&HALVES[0])),
    ]
}

fn half_spec(names: &Names, image_dir: &Path, me: &Half, peer: Option<&Half>) -> RouterSpec {
    // Canonical: kvm-agent refuses paths with `..`.
    let image_dir = image_dir.canonicalize().unwrap_or(image_dir.to_path_buf());
    let img = |f: &str| image_dir.join(f).display().to_string();
    let (mgmt_mac, pub_mac, priv_mac) = (me.mgmt_mac, me.pub_mac, me.priv_mac);
    let vips: Vec<Value> = [VIP_PF, VIP_EIP, VIP_LB]
        .iter()
        .map(|ip| {
            json!({"ip": ip, "netmask": "255.255.0.0", "gateway": OUTSIDE_IP,
                   "ownerEthernetMac": pub_mac, "vipUuid": format!("{:0<32}", ip.replace('.', "")),
                   "isSystem": false})
        })
        .collect();
    let forward = |uuid: &str, vip_port: u16, port: u16| {
        json!({"uuid": uuid, "vipPortStart": vip_port, "vipPortEnd": vip_port,
            "privatePortStart": port, "privatePortEnd": port, "protocolType": "TCP",
            "vipIp": VIP_PF, "publicMac": pub_mac, "privateIp": "192.168.100.10",
            "privateMac": priv_mac, "snatInboundTraffic": false})
    };
    let mut port_forwards = vec![forward("pf-web", 8080, 80)];
    if peer.is_some() {
        port_forwards.push(forward("pf-echo", ECHO_PORT, ECHO_PORT));
    }
    let mut spec = json!({
        "agent": me.agent,
        "uuid": me.uuid,
        "managementNodeCidr": MN_CIDR,
        "nics": [
            {"ip": me.mgmt_ip, "mac": mgmt_mac, "netmask": "255.255.255.0", "gateway": MGMT_GW,
             "isDefaultRoute": false, "category": "Management", "l2type": "L2NoVlanNetwork",
             "physicalInterface": "eth0", "deviceName": "eth0", "mtu": 1500},
            {"ip": VR_PUB_IP, "mac": pub_mac, "netmask": "255.255.0.0", "gateway": OUTSIDE_IP,
             "isDefaultRoute": true, "category": "Public", "l2type": "L2NoVlanNetwork",
             "physicalInterface": "eth2", "deviceName": "eth1", "mtu": 1500},
            {"ip": "192.168.100.1", "mac": priv_mac, "netmask": "255.255.255.0",
             "gateway": "192.168.100.1", "category": "Private", "l2type": "L2NoVlanNetwork",
             "firewallDefaultAction": "reject", "physicalInterface": "eth1",
             "deviceName": "eth2", "mtu": 1500}],
        "dns": [{"dnsAddress": OUTSIDE_IP, "nicMac": priv_mac}],
        "dhcpServers": [{"nicMac": priv_mac, "subnet": "192.168.100.0/24",
            "netmask": "255.255.255.0", "gateway": "192.168.100.1", "dnsDomain": "zstack.local",
            "dnsServer": "192.168.100.1", "mtu": 1500, "dhcpInfos": [
                {"ip": "192.168.100.10", "mac": TENANT1_MAC, "hostname": "web-01.zstack.local",
                 "isDefaultL3Network": true},
                {"ip": "192.168.100.20", "mac": TENANT2_MAC, "hostname": "db-01.zstack.local",
                 "isDefaultL3Network": true}]}],
        "snats": [{"publicNicMac": pub_mac, "publicIp": VR_PUB_IP, "privateNicMac": priv_mac,
            "privateNicIp": "192.168.100.1", "privateGatewayIp": "192.168.100.1",
            "snatNetmask": "255.255.255.0", "state": true}],
        "vips": vips,
        "portForwards": port_forwards,
        "eips": [{"vipIp": VIP_EIP, "privateMac": priv_mac, "publicMac": pub_mac,
            "guestIp": "192.168.100.10", "snatInboundTraffic": false, "needCleanGuestIp": false}],
        "lbs": [{"lbUuid": "lb-web", "listenerUuid": "lst-web", "vip": VIP_LB,
            "publicNic": pub_mac, "nicIps": ["192.168.100.10"], "instancePort": 80,
            "loadBalancerPort": 80, "mode": "tcp",
            "parameters": ["balancerAlgorithm::roundrobin", "healthCheckTarget::tcp:default",
                           "healthCheckInterval::1", "healthyThreshold::1"]}],
        "vm": {
            "hosts": [me.kvm], "name": me.vm_name, "cpuNum": 1, "memoryMb": 512,
            "image": img("vr.qcow2"), "diskDir": names.state.join("disks"),
            "kernel": img("vmlinuz"), "initrd": img("initrd.img"),
            "cmdline": "root=/dev/vda rw console=ttyS0 quiet",
            "bridges": {mgmt_mac: "br_eth0", pub_mac: "br_eth2", priv_mac: "br_eth1"},
            "socketDir": names.state.join("sock"), "managementNodeIp": MN_IP,
            "bootTimeoutSecs": 180}
    });
    if let Some(peer) = peer {
        spec["ha"] = json!({"peerIp": peer.mgmt_ip, "peerUuid": peer.uuid, "keepalive": 1,
            "vips": [{"nicMac": pub_mac, "nicVip": HA_VIP, "netmask": "255.255.0.0"}]});
    }
    serde_json::from_value(spec).expect("the lab's router description")
}

/// The namespaces of one lab, in the order they are made.
pub const ROLES: [&str; 6] = ["mn", "mgw", "host", "out", "ten1", "ten2"];
/// `--ha` adds the second host and the switch joining both hosts' NICs.
pub const HA_ROLES: [&str; 2] = ["host2", "sw"];

/// Builds the namespaces, wires and servers, starts kvm-agent (and the
/// private libvirtd in VM mode) on each host. Returns the libvirt URIs,
/// one per host.
pub fn build(
    names: &Names,
    opts: &Options,
    mode: Mode,
    kvm: bool,
) -> Result<Vec<String>, LabError> {
    let n = |r: &str| names.ns(r);
    std::fs::create_dir_all(names.state.join("logs"))
        .map_err(|e| LabError::Other(format!("{}: {e}", names.state.display())))?;
    sh(&format!(
        "chmod 755 /run/vrctl-lab {}",
        names.state.display()
    ))?;
    let extra: &[&str] = if opts.ha { &HA_ROLES } else { &[] };
    for role in ROLES.iter().chain(extra) {
        sh(&format!(
            "ip netns add {ns} && ip -n {ns} link set lo up",
            ns = n(role)
        ))?;
    }
    // Management: node -- gateway -- host's eth0. Public: host's eth2 --
    // outside. Private: host's eth1 and a tap -- tenants.
    topo::veth(&n("mn"), "eth0", &n("mgw"), "eth1")?;
    topo::veth(&n("host"), "tap-ten2", &n("ten2"), "eth0")?;
    if opts.ha {
        wire_two_hosts(names)?;
    } else {
        topo::veth(&n("host"), "eth0", &n("mgw"), "eth0")?;
        topo::veth(&n("host"), "eth2", &n("out"), "eth0")?;
        topo::veth(&n("host"), "eth1", &n("ten1"), "eth0")?;
    }
    sh(&format!(
        "ip -n {mn} addr add {MN_IP}/24 dev eth0
         ip -n {mn} route add default via {MGW_MN_IP}
         ip -n {mgw} addr add {MGW_MN_IP}/24 dev eth1
         ip -n {mgw} addr add {MGMT_GW}/24 dev eth0
         ip netns exec {mgw} sysctl -qw net.ipv4.ip_forward=1
         ip -n {host} addr add {HOST_IP}/24 dev eth0
         ip -n {host} route add default via {MGMT_GW}
         ip -n {out} addr add {OUTSIDE_IP}/16 dev eth0
         ip -n {out} route add 192.168.100.0/24 via {VR_PUB_IP}
         ip -n {t1} link set eth0 address {TENANT1_MAC}
         ip -n {t2} link set eth0 address {TENANT2_MAC}",
        mn = n("mn"),
        mgw = n("mgw"),
        host = n("host"),
        out = n("out"),
        t1 = n("ten1"),
        t2 = n("ten2"),
    ))?;
    if opts.ha {
        sh(&format!(
            "ip -n {h2} addr add {HOST2_IP}/24 dev eth0
             ip -n {h2} route add default via {MGMT_GW}",
            h2 = n("host2")
        ))?;
    }
    let log = |f: &str| names.state.join("logs").join(f);
    spawn(
        &n("out"),
        "dnsmasq",
        &[
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            "--user=root",
            "--bind-interfaces",
            &format!("--listen-address={OUTSIDE_IP}"),
            "--log-facility=-",
            "--address=/example.test/203.0.113.7",
        ],
        &log("upstream-dns.log"),
    )?;
    for (ns, name, port) in [
        ("out", "outside", 80),
        ("ten1", "web-01", 80),
        ("ten1", "web-01", 22),
        ("ten2", "db-01", 80),
    ] {
        let args = checks::server_args(name, port);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        spawn(
            &n(ns),
            "socat",
            &args,
            &log(&format!("server-{ns}-{port}.log")),
        )?;
    }
    super::secure::create(&names.state)?;
    let mut uris = vec![];
    for (i, host) in hosts(opts.ha).iter().enumerate() {
        let uri = if mode == Mode::Vm {
            // Each host's libvirtd keeps its log apart.
            let dir = host_dir(names, i);
            std::fs::create_dir_all(&dir).map_err(|e| LabError::Other(e.to_string()))?;
            topo::private_libvirt(&n(host), !kvm, &dir)?
        } else {
            "test:///default".to_string()
        };
        start_kvm_agent(names, opts, kvm, i, &uri)?;
        uris.push(uri);
    }
    Ok(uris)
}

/// The compute hosts' roles: `host`, and `host2` with `--ha`.
pub fn hosts(ha: bool) -> &'static [&'static str] {
    if ha { &["host", "host2"] } else { &["host"] }
}

/// Host `i`'s own files: the state directory for the first (as without
/// `--ha`), `host2/` in it for the second.
fn host_dir(names: &Names, i: usize) -> PathBuf {
    if i == 0 {
        names.state.clone()
    } else {
        names.state.join(format!("host{}", i + 1))
    }
}

/// `--ha`: the three L2 networks span both hosts through bridges in
/// `<lab>-sw` (the physical switch): each host's eth0, eth1 and eth2 on
/// the management, private and public bridge, the gateway, web-01 and the
/// outside on them too. db-01 stays on the first host's tap.
fn wire_two_hosts(names: &Names) -> Result<(), LabError> {
    let n = |r: &str| names.ns(r);
    let sw = n("sw");
    for br in ["mgmt", "priv", "pub"] {
        sh(&format!(
            "ip -n {sw} link add {br} type bridge && ip -n {sw} link set {br} up"
        ))?;
    }
    let ports = [
        ("mgw", "eth0", "mgmt", "m-gw"),
        ("host", "eth0", "mgmt", "m-h1"),
        ("host2", "eth0", "mgmt", "m-h2"),
        ("host", "eth1", "priv", "v-h1"),
        ("host2", "eth1", "priv", "v-h2"),
        ("ten1", "eth0", "priv", "v-ten1"),
        ("host", "eth2", "pub", "p-h1"),
        ("host2", "eth2", "pub", "p-h2"),
        ("out", "eth0", "pub", "p-out"),
    ];
    for (role, nic, br, port) in ports {
        topo::veth(&n(role), nic, &sw, port)?;
        sh(&format!("ip -n {sw} link set {port} master {br}"))?;
    }
    Ok(())
}

/// kvm-agent on host `i` (`host`, `host2`), against `uri`.
fn start_kvm_agent(
    names: &Names,
    opts: &Options,
    kvm: bool,
    i: usize,
    uri: &str,
) -> Result<(), LabError> {
    let dir = host_dir(names, i);
    let state = |d: &str| dir.join(d).display().to_string();
    let kvm_agent = opts.bin_dir.join("kvm-agent");
    // Where kvm-agent lets VMs' channel sockets, disks and kernels be: the
    // lab's own directories (through the environment, so a restart with the
    // same environment keeps them). Both hosts share them, as hosts share
    // primary storage.
    let dirs = kvm_agent_dirs(names, opts);
    let mut args: Vec<String> = dirs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    args.push(kvm_agent.to_str().unwrap_or("kvm-agent").to_string());
    let domain = if kvm { "kvm" } else { "qemu" };
    for a in [
        "--listen",
        "0.0.0.0:7070",
        "--state-dir",
        &state("kvm-agent"),
        "--libvirt-uri",
        uri,
        "--domain-type",
        domain,
        "--console-log-dir",
        &state("console"),
        "--vnc-listen",
        "127.0.0.1",
    ] {
        args.push(a.to_string());
    }
    args.extend(super::secure::kvm_agent_args(&names.state));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = if i == 0 {
        "kvm-agent.log".to_string()
    } else {
        format!("kvm-agent{}.log", i + 1)
    };
    let host = hosts(true)[i];
    spawn(
        &names.ns(host),
        "env",
        &args,
        &names.state.join("logs").join(log),
    )?;
    Ok(())
}

/// The environment kvm-agent runs with in the lab: its socket, volume and
/// image directories.
pub fn kvm_agent_dirs(names: &Names, opts: &Options) -> Vec<(&'static str, String)> {
    let at = |d: &str| names.state.join(d).display().to_string();
    vec![
        ("KVM_AGENT_SOCKET_DIR", at("sock")),
        ("KVM_AGENT_VOLUME_DIRS", at("disks")),
        (
            "KVM_AGENT_IMAGE_DIRS",
            opts.image_dir
                .canonicalize()
                .unwrap_or(opts.image_dir.clone())
                .display()
                .to_string(),
        ),
    ]
}

/// Where a namespace router keeps its files: `vr` as without `--ha`
/// (`bootstrap.json`, `vr-agent/`, `logs/vr-agent.log`), `vr2` with its
/// role in each name.
pub struct RouterFiles {
    pub bootstrap: PathBuf,
    pub state: PathBuf,
    pub log: PathBuf,
}

pub fn router_files(names: &Names, role: &str) -> RouterFiles {
    let tag = if role == "vr" {
        String::new()
    } else {
        format!("-{role}")
    };
    RouterFiles {
        bootstrap: names.state.join(format!("bootstrap{tag}.json")),
        state: names.state.join(format!("vr-agent{tag}")),
        log: names.state.join(format!("logs/vr-agent{tag}.log")),
    }
}

/// The VR as a namespace (`<lab>-<role>`): veths on the same bridges a
/// VM's taps would be on in `host_role`'s namespace, vr-agent bootstrapped
/// from the same document (as a file).
pub fn start_namespace_router(
    names: &Names,
    (role, host_role): (&str, &str),
    spec: &RouterSpec,
    bin_dir: &Path,
    auth: &crate::router_tls::AgentAuth,
) -> Result<u32, LabError> {
    let (vr, host) = (names.ns(role), names.ns(host_role));
    sh(&format!("ip netns add {vr} && ip -n {vr} link set lo up"))?;
    let vm = spec.vm.clone().unwrap_or_default();
    for (i, nic) in spec.nics.iter().enumerate() {
        let tap = format!("{role}.{i}");
        let dev = nic.device_name.clone().unwrap_or(format!("eth{i}"));
        topo::veth(&vr, &dev, &host, &tap)?;
        sh(&format!(
            "ip -n {vr} link set {dev} address {mac} && ip -n {host} link set {tap} master {br}",
            mac = nic.mac,
            br = vm.bridges[&nic.mac]
        ))?;
    }
    let doc = serde_json::Value::Object(router::bootstrap_info(spec, &vm, auth).info);
    let files = router_files(names, role);
    // It holds the router's private key.
    common::pki::write_private(&files.bootstrap, &doc.to_string())
        .map_err(|e| LabError::Other(e.to_string()))?;
    let agent = bin_dir.join("vr-agent");
    Ok(spawn(
        &vr,
        agent.to_str().unwrap_or("vr-agent"),
        &[
            "--bootstrap",
            files.bootstrap.to_str().unwrap_or(""),
            "--state-dir",
            files.state.to_str().unwrap_or(""),
        ],
        &files.log,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The normal vrouter layout: the default route and every service on
    /// the public NIC, the management NIC only for the node, the node in a
    /// subnet the management NIC does not reach on-link.
    #[test]
    fn the_router_is_laid_out_like_a_zstack_vrouter() {
        let spec = router_spec(&Names::new("vrunit"), Path::new("/img"));
        let mgmt = spec.management_nic().unwrap();
        assert_eq!(mgmt.mac, MGMT_MAC);
        assert!(!mgmt.is_default_route);
        let public: Vec<_> = spec.nics.iter().filter(|n| n.is_default_route).collect();
        assert_eq!(public.len(), 1);
        assert_eq!(public[0].mac, PUB_MAC);
        assert!(spec.vips.iter().all(|v| v.owner_ethernet_mac == PUB_MAC));
        assert!(spec.snats.iter().all(|s| s.public_nic_mac == PUB_MAC));
        assert!(spec.eips.iter().all(|e| e.public_mac == PUB_MAC));
        assert!(spec.port_forwards.iter().all(|p| p.public_mac == PUB_MAC));
        assert_eq!(spec.management_node_cidr.as_deref(), Some(MN_CIDR));
        assert!(
            !MN_CIDR.starts_with("10.0.0."),
            "on-link with the management NIC"
        );
        let vm = spec.vm.unwrap();
        assert_eq!(vm.management_node_ip.as_deref(), Some(MN_IP));
        assert_eq!(vm.bridges.len(), 3);
    }
}
