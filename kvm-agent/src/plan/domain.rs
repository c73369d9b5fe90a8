//! Pure planning for VMs: `StartVmCmd` -> libvirt domain XML (reference 4.5),
//! the host-capacity check, the `auto` domain-type rule, and reading device
//! addresses back from a live domain XML. No I/O here.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::wire::vm::StartVmCmd;

/// libvirt's limit for `<bootmenu timeout>` (milliseconds).
const BOOT_MENU_TIMEOUT_MAX_MS: u32 = 65535;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DomainError {
    #[error("field {0}: missing")]
    Missing(&'static str),
    // Values are quoted bounded: they are echoed in replies and logs.
    #[error("field vmInstanceUuid: {} is not a 32-hex-digit uuid", common::text::quoted(.0))]
    BadUuid(String),
    #[error("field {field}: {} {why}", common::text::quoted(.value))]
    Invalid {
        field: String,
        value: String,
        why: &'static str,
    },
    #[error("cannot fit VM {name}: {what}")]
    DoesNotFit { name: String, what: String },
}

/// libvirt `<domain type=...>`: `kvm` on real hosts, `qemu` (TCG) where a
/// KVM guest cannot boot (nested KVM on these machines, see PLATFORM.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainType {
    Kvm,
    Qemu,
}

impl DomainType {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainType::Kvm => "kvm",
            DomainType::Qemu => "qemu",
        }
    }

    /// The `auto` rule: KVM only when /dev/kvm is usable and we are not a
    /// guest ourselves. Nested KVM exists here but a 64-bit Linux guest hangs
    /// under it, and we cannot tell a working nested setup from a broken one
    /// without booting a guest, so any hypervisor below us means TCG.
    pub fn choose(dev_kvm: Result<(), String>, under_hypervisor: bool) -> (DomainType, String) {
        match (dev_kvm, under_hypervisor) {
            (Err(e), _) => (DomainType::Qemu, format!("/dev/kvm is not usable ({e})")),
            (Ok(()), true) => (
                DomainType::Qemu,
                "this host runs under a hypervisor (cpuinfo flag 'hypervisor'); nested KVM may not boot 64-bit guests".into(),
            ),
            (Ok(()), false) => (DomainType::Kvm, "/dev/kvm is usable on bare metal".into()),
        }
    }
}

impl std::str::FromStr for DomainType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kvm" => Ok(DomainType::Kvm),
            "qemu" => Ok(DomainType::Qemu),
            _ => Err(format!("{s:?} is not kvm or qemu")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DomainOptions {
    pub domain_type: DomainType,
    /// Serial consoles are logged to `<dir>/<uuid>-vm-kernel.log`.
    pub console_log_dir: PathBuf,
    pub vnc_listen: String,
}

/// What the agent needs besides the XML itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPlan {
    pub name: String,
    pub uuid: String,
    pub xml: String,
    pub memory_kib: u64,
    pub vcpus: u32,
    pub channel_socket: Option<PathBuf>,
    pub console_log: PathBuf,
    /// Anti-spoofing for the NICs that ask for it (`cleanTraffic`).
    pub guards: Vec<crate::plan::antispoof::NicGuardSpec>,
}

pub fn console_log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}-vm-kernel.log"))
}

/// Accepts ZStack's 32 hex digits (the domain name) or a dashed uuid.
pub fn parse_vm_uuid(s: &str) -> Result<(String, String), DomainError> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DomainError::BadUuid(s.to_string()));
    }
    let hex = hex.to_ascii_lowercase();
    let dashed = format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    Ok((hex, dashed))
}

/// XML text/attribute escaping (values come from the controller).
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\'' => o.push_str("&apos;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

pub(crate) fn invalid(
    field: impl Into<String>,
    value: impl Into<String>,
    why: &'static str,
) -> DomainError {
    DomainError::Invalid {
        field: field.into(),
        value: value.into(),
        why,
    }
}

/// Build the domain XML. Element choices follow ZStack's generator where a
/// VR or a plain Linux VM needs them; hot-plug vCPU/memory, NUMA, QoS,
/// CD-ROMs and the extra QMP socket are not generated.
pub fn plan(cmd: &StartVmCmd, opts: &DomainOptions) -> Result<DomainPlan, DomainError> {
    if cmd.vm_instance_uuid.is_empty() {
        return Err(DomainError::Missing("vmInstanceUuid"));
    }
    let (name, uuid) = parse_vm_uuid(&cmd.vm_instance_uuid)?;
    if cmd.cpu_num == 0 {
        return Err(DomainError::Missing("cpuNum"));
    }
    if cmd.memory == 0 {
        return Err(DomainError::Missing("memory"));
    }
    let memory_kib = cmd.memory.div_ceil(1024);
    // The node always sends the root volume's path; a volume without one
    // (or `[]`, which serde reads as an empty struct) is not "no disk".
    if cmd
        .root_volume
        .as_ref()
        .is_some_and(|v| v.install_path.is_empty())
    {
        return Err(DomainError::Missing("rootVolume.installPath"));
    }
    let root = cmd.root_volume.as_ref();
    xml_text("vmName", &cmd.vm_name)?;
    xml_text("hostManagementIp", &cmd.host_management_ip)?;
    xml_text("consolePassword", &cmd.console_password)?;
    xml_text("nestedVirtualization", &cmd.nested_virtualization)?;
    if let Some(ch) = &cmd.addons.channel {
        xml_text("addons.channel.targetName", &ch.target_name)?;
    }
    if let Some(k) = &cmd.addons.direct_kernel_boot {
        xml_text("addons.directKernelBoot.cmdline", &k.cmdline)?;
    }
    for (field, v) in root
        .map(|v| ("rootVolume".to_string(), v))
        .into_iter()
        .chain(
            cmd.data_volumes
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("dataVolumes[{i}]"), v)),
        )
    {
        xml_text(&format!("{field}.volumeUuid"), &v.volume_uuid)?;
    }
    let machine = match cmd.machine_type.as_str() {
        "" => "pc",
        m @ ("pc" | "q35") => m,
        m => return Err(invalid("machineType", m, "is not pc or q35")),
    };
    let clock = match cmd.clock.as_str() {
        "" => "utc",
        c @ ("utc" | "localtime") => c,
        c => return Err(invalid("clock", c, "is not utc or localtime")),
    };
    let video = match cmd.video_type.as_str() {
        "" => "vga",
        v @ ("cirrus" | "vga" | "qxl" | "virtio" | "bochs" | "none") => v,
        v => return Err(invalid("videoType", v, "is not a known video model")),
    };
    let console_log = console_log_path(&opts.console_log_dir, &name);

    let mut x = String::new();
    let w = &mut x;
    let _ = writeln!(w, "<domain type='{}'>", opts.domain_type.as_str());
    let _ = writeln!(w, "  <name>{name}</name>");
    let _ = writeln!(w, "  <uuid>{uuid}</uuid>");
    if !cmd.vm_name.is_empty() {
        let _ = writeln!(w, "  <description>{}</description>", esc(&cmd.vm_name));
    }
    let _ = writeln!(
        w,
        "  <metadata>\n    <zs:zstack xmlns:zs='http://zstack.org'>\n      <internalId>{}</internalId>\n      <hostManagementIp>{}</hostManagementIp>\n    </zs:zstack>\n  </metadata>",
        cmd.vm_internal_id,
        esc(&cmd.host_management_ip)
    );
    let _ = writeln!(w, "  <memory unit='KiB'>{memory_kib}</memory>");
    let _ = writeln!(
        w,
        "  <currentMemory unit='KiB'>{memory_kib}</currentMemory>"
    );
    let _ = writeln!(w, "  <vcpu placement='static'>{}</vcpu>", cmd.cpu_num);
    // A topology only when it describes exactly cpuNum vCPUs; otherwise
    // libvirt rejects the domain, and qemu's default (N sockets) is fine.
    let topo = match (cmd.socket_num, cmd.cpu_on_socket, cmd.threads_per_core) {
        // Checked: the node's numbers are u32s a bad body can overflow.
        (Some(s), Some(c), t)
            if s.checked_mul(c)
                .and_then(|sc| sc.checked_mul(t.unwrap_or(1)))
                == Some(cmd.cpu_num) =>
        {
            Some((s, c, t.unwrap_or(1)))
        }
        _ => None,
    };
    let passthrough = opts.domain_type == DomainType::Kvm
        && matches!(
            cmd.nested_virtualization.as_str(),
            "host-model" | "host-passthrough"
        );
    if passthrough || topo.is_some() {
        if passthrough {
            let _ = writeln!(w, "  <cpu mode='{}'>", cmd.nested_virtualization);
        } else {
            let _ = writeln!(w, "  <cpu>");
        }
        if let Some((s, c, t)) = topo {
            let _ = writeln!(w, "    <topology sockets='{s}' cores='{c}' threads='{t}'/>");
        }
        let _ = writeln!(w, "  </cpu>");
    }
    let _ = writeln!(w, "  <os>");
    let _ = writeln!(w, "    <type arch='x86_64' machine='{machine}'>hvm</type>");
    let boot: Vec<&str> = if cmd.boot_dev.is_empty() {
        vec!["hd"]
    } else {
        cmd.boot_dev.iter().map(String::as_str).collect()
    };
    check_boot_devs(&cmd.boot_dev)?;
    for b in boot {
        let _ = writeln!(w, "    <boot dev='{b}'/>");
    }
    // Our extension addons.directKernelBoot: the kernel, initramfs and
    // command line come from host files (no boot loader in the image).
    if let Some(k) = cmd.addons.direct_kernel_boot.as_ref() {
        let abs = |field: &str, v: &str| {
            if v.starts_with('/') {
                fields::xml_path(&format!("addons.directKernelBoot.{field}"), v)
            } else {
                Err(invalid(
                    format!("addons.directKernelBoot.{field}"),
                    v,
                    "is not an absolute path",
                ))
            }
        };
        abs("kernel", &k.kernel)?;
        let _ = writeln!(w, "    <kernel>{}</kernel>", esc(&k.kernel));
        if !k.initrd.is_empty() {
            abs("initrd", &k.initrd)?;
            let _ = writeln!(w, "    <initrd>{}</initrd>", esc(&k.initrd));
        }
        if !k.cmdline.is_empty() {
            let _ = writeln!(w, "    <cmdline>{}</cmdline>", esc(&k.cmdline));
        }
    }
    if cmd.use_boot_menu {
        // Milliseconds, as the node's `vm.bootMenuSplashTimeout` (default
        // 3000, conf/globalConfig/vm.xml) and kvmagent pass them through;
        // libvirt refuses a timeout above 65535.
        let ms = cmd
            .boot_menu_splash_timeout
            .unwrap_or(3000)
            .min(BOOT_MENU_TIMEOUT_MAX_MS);
        let _ = writeln!(w, "    <bootmenu enable='yes' timeout='{ms}'/>");
    }
    let _ = writeln!(w, "  </os>");
    let _ = writeln!(w, "  <features>");
    if cmd.acpi.unwrap_or(true) {
        let _ = writeln!(w, "    <acpi/>");
    }
    let _ = writeln!(w, "    <apic/>\n    <pae/>\n  </features>");
    let _ = writeln!(w, "  <clock offset='{clock}'/>");
    let _ = writeln!(
        w,
        "  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  <on_crash>preserve</on_crash>"
    );
    let _ = writeln!(w, "  <devices>");

    let mut disks = Vec::new();
    if let Some(r) = root {
        disks.push(("rootVolume", r));
    }
    for v in &cmd.data_volumes {
        disks.push(("dataVolumes", v));
    }
    for (i, (field, v)) in disks.iter().enumerate() {
        if v.install_path.is_empty() {
            return Err(DomainError::Missing("dataVolumes[].installPath"));
        }
        fields::xml_path(&format!("{field}.installPath"), &v.install_path)?;
        if !matches!(v.device_type.as_str(), "" | "file") {
            return Err(invalid(
                format!("{field}.deviceType"),
                &v.device_type,
                "is not supported (only file)",
            ));
        }
        let format = match v.format.as_str() {
            "" => "qcow2",
            f @ ("qcow2" | "raw") => f,
            f => return Err(invalid(format!("{field}.format"), f, "is not qcow2 or raw")),
        };
        let cache = match v.cache_mode.as_str() {
            "" => String::new(),
            c @ ("none" | "writethrough" | "writeback" | "directsync" | "unsafe") => {
                format!(" cache='{c}'")
            }
            c => {
                return Err(invalid(
                    format!("{field}.cacheMode"),
                    c,
                    "is not a cache mode",
                ));
            }
        };
        let (bus, dev) = if v.use_virtio == Some(false) {
            ("sata", format!("sd{}", (b'a' + i as u8) as char))
        } else {
            ("virtio", format!("vd{}", (b'a' + i as u8) as char))
        };
        let _ = writeln!(w, "    <disk type='file' device='disk'>");
        let _ = writeln!(w, "      <driver name='qemu' type='{format}'{cache}/>");
        let _ = writeln!(w, "      <source file='{}'/>", esc(&v.install_path));
        let _ = writeln!(w, "      <target dev='{dev}' bus='{bus}'/>");
        if !v.volume_uuid.is_empty() {
            let _ = writeln!(w, "      <serial>{}</serial>", esc(&v.volume_uuid));
        }
        let _ = writeln!(w, "    </disk>");
    }

    let mut nics: Vec<_> = cmd.nics.iter().collect();
    nics.sort_by_key(|n| n.device_id);
    let mut guards = Vec::new();
    let (mut macs, mut taps) = (Vec::new(), Vec::new());
    for n in nics {
        let field = format!("nics[{}]", n.device_id);
        // Two NICs with one MAC or one tap: libvirt or qemu would refuse the
        // domain after it was defined.
        let mac = n.mac.to_ascii_lowercase();
        if macs.contains(&mac) {
            return Err(invalid(
                format!("{field}.mac"),
                &n.mac,
                "is another NIC's MAC too",
            ));
        }
        macs.push(mac);
        if !n.nic_internal_name.is_empty() {
            if taps.contains(&n.nic_internal_name) {
                return Err(invalid(
                    format!("{field}.nicInternalName"),
                    &n.nic_internal_name,
                    "is another NIC's tap too",
                ));
            }
            taps.push(n.nic_internal_name.clone());
        }
        w.push_str(&nic::interface_xml(n, &field, "    ")?);
        guards.extend(nic::guard_of(n, &field)?);
    }

    // The serial console is always logged: it is the only way to see why a
    // guest never became ready (`/vm/console/tail`).
    let log = esc(&console_log.to_string_lossy());
    let _ = writeln!(
        w,
        "    <serial type='pty'>\n      <log file='{log}' append='off'/>\n      <target port='0'/>\n    </serial>"
    );
    let _ = writeln!(
        w,
        "    <console type='pty'>\n      <log file='{log}' append='off'/>\n      <target type='serial' port='0'/>\n    </console>"
    );
    let mut channel_socket = None;
    if let Some(ch) = cmd
        .addons
        .channel
        .as_ref()
        .filter(|c| !c.socket_path.is_empty())
    {
        if !ch.socket_path.starts_with('/') {
            return Err(invalid(
                "addons.channel.socketPath",
                &ch.socket_path,
                "is not an absolute path",
            ));
        }
        fields::xml_path("addons.channel.socketPath", &ch.socket_path)?;
        let target = if ch.target_name.is_empty() {
            "applianceVm.vport"
        } else {
            &ch.target_name
        };
        // mode='bind': qemu listens, the agent connects and writes
        // (setbootstrapinfo), the guest reads /dev/virtio-ports/<target>.
        let _ = writeln!(
            w,
            "    <channel type='unix'>\n      <source mode='bind' path='{}'/>\n      <target type='virtio' name='{}'/>\n    </channel>",
            esc(&ch.socket_path),
            esc(target)
        );
        channel_socket = Some(PathBuf::from(&ch.socket_path));
    }
    if cmd.console_mode.is_empty() || cmd.console_mode == "vnc" {
        let passwd = if cmd.console_password.is_empty() {
            String::new()
        } else {
            format!(" passwd='{}'", esc(&cmd.console_password))
        };
        let listen = esc(&opts.vnc_listen);
        let _ = writeln!(
            w,
            "    <graphics type='vnc' port='-1' autoport='yes'{passwd}>\n      <listen type='address' address='{listen}'/>\n    </graphics>"
        );
    }
    let _ = writeln!(
        w,
        "    <video>\n      <model type='{video}'/>\n    </video>"
    );
    // libvirt gives the balloon a PCI slot; a start after the first keeps
    // the one the node recorded from our reply.
    match cmd
        .mem_balloon
        .as_ref()
        .and_then(|b| b.device_address.as_ref())
        .and_then(pci_address)
    {
        Some(a) => {
            let _ = writeln!(
                w,
                "    <memballoon model='virtio'>\n      {a}\n    </memballoon>"
            );
        }
        None => {
            let _ = writeln!(w, "    <memballoon model='virtio'/>");
        }
    }
    let _ = writeln!(w, "  </devices>");
    let _ = writeln!(w, "</domain>");

    Ok(DomainPlan {
        name,
        uuid,
        xml: x,
        memory_kib,
        vcpus: cmd.cpu_num,
        channel_socket,
        console_log,
        guards,
    })
}

/// `<address type='pci' .../>` from a recorded address whose parts are all
/// hex numbers; anything else (no address yet, a drive address) is left to
/// libvirt.
fn pci_address(a: &crate::wire::vm::DeviceAddress) -> Option<String> {
    if !matches!(a.kind.as_deref(), None | Some("pci")) {
        return None;
    }
    let hex = |v: &Option<String>| {
        v.as_deref()
            .and_then(|s| s.strip_prefix("0x"))
            .filter(|h| !h.is_empty() && h.len() <= 4 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|h| format!("0x{h}"))
    };
    Some(format!(
        "<address type='pci' domain='{}' bus='{}' slot='{}' function='{}'/>",
        hex(&a.domain)?,
        hex(&a.bus)?,
        hex(&a.slot)?,
        hex(&a.function)?
    ))
}

/// What the host can still give a new VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostRoom {
    /// /proc/meminfo MemAvailable.
    pub mem_available_kib: u64,
    /// currentMemory of the running domains. MemAvailable already excludes
    /// what their qemu processes touched, so this over-counts: we prefer a
    /// clear refusal to an OOM-killed VR.
    pub reserved_kib: u64,
    pub online_cpus: u32,
}

pub fn check_fit(
    name: &str,
    memory_kib: u64,
    vcpus: u32,
    room: HostRoom,
) -> Result<(), DomainError> {
    let mib = |k: u64| k / 1024;
    let free = room.mem_available_kib.saturating_sub(room.reserved_kib);
    if memory_kib > free {
        return Err(DomainError::DoesNotFit {
            name: name.into(),
            what: format!(
                "needs {} MiB memory, host has {} MiB available (MemAvailable {} MiB minus {} MiB reserved by running VMs)",
                mib(memory_kib),
                mib(free),
                mib(room.mem_available_kib),
                mib(room.reserved_kib)
            ),
        });
    }
    if vcpus > room.online_cpus {
        return Err(DomainError::DoesNotFit {
            name: name.into(),
            what: format!(
                "needs {vcpus} CPUs, host has {} online CPUs",
                room.online_cpus
            ),
        });
    }
    Ok(())
}

/// Replace the `<boot dev=.../>` lines of a domain XML (reboot with a new
/// boot order).
pub fn with_boot_devs(xml: &str, devs: &[String]) -> String {
    if devs.is_empty() {
        return xml.to_string();
    }
    let mut out = String::with_capacity(xml.len());
    let mut done = false;
    for line in xml.lines() {
        if line.trim_start().starts_with("<boot dev=") {
            if !done {
                let indent = &line[..line.len() - line.trim_start().len()];
                for d in devs {
                    let _ = writeln!(out, "{indent}<boot dev='{}'/>", esc(d));
                }
                done = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

mod fields;
mod live;
mod nic;
pub use fields::check_boot_devs;
use fields::xml_text;
pub use live::*;
pub use nic::{guard_of, interface_xml};
pub(crate) use nic::{mac_ok as nic_mac_ok, tap_name_ok as nic_tap_ok};

#[cfg(test)]
mod tests;
