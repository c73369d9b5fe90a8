//! Host facts from procfs/sysfs (and `--version` of the virtualisation
//! tools when installed). Reads below `root` so tests can use a fake tree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::wire::{HostCapacityResponse, HostFactResponse};

pub struct HostProbe {
    root: PathBuf,
    /// Tool versions to report instead of running the tools (tests).
    tools: Option<BTreeMap<String, String>>,
}

impl Default for HostProbe {
    fn default() -> Self {
        HostProbe {
            root: PathBuf::from("/"),
            tools: None,
        }
    }
}

/// What `/host/fact` takes from libvirt's capabilities XML.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LibvirtCaps {
    /// `host/cpu/model`.
    pub cpu_model: Option<String>,
    /// The ZStack libvirt features kvmagent reports as `libvirtCapabilities`
    /// when the first guest's `features` carry them.
    pub features: Vec<String>,
}

const ZSTACK_LIBVIRT_FEATURES: [&str; 2] = ["incrementaldrivemirror", "blockcopynetworktarget"];

/// The text between the first `<tag ...>` and its `</tag>`.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}");
    let mut from = 0;
    let start = loop {
        let i = from + xml[from..].find(&open)?;
        let after = xml[i + open.len()..].chars().next()?;
        if after == '>' || after == '/' || after.is_whitespace() {
            break i;
        }
        from = i + open.len();
    };
    let body = start + xml[start..].find('>')? + 1;
    if xml[..body].ends_with("/>") {
        return Some("");
    }
    let end = body + xml[body..].find(&format!("</{tag}>"))?;
    Some(&xml[body..end])
}

pub fn parse_capabilities(xml: &str) -> LibvirtCaps {
    let cpu_model = element(xml, "host")
        .and_then(|h| element(h, "cpu"))
        .and_then(|c| element(c, "model"))
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty());
    let features = element(xml, "guest")
        .and_then(|g| element(g, "features"))
        .map(|f| {
            ZSTACK_LIBVIRT_FEATURES
                .iter()
                .filter(|n| element(f, n).is_some())
                .map(|n| n.to_string())
                .collect()
        })
        .unwrap_or_default();
    LibvirtCaps {
        cpu_model,
        features,
    }
}

fn trimmed(s: String) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// `key: value` lines of /proc/cpuinfo, one map per processor.
fn cpuinfo(text: &str) -> Vec<Vec<(String, String)>> {
    text.split("\n\n")
        .filter(|b| b.contains("processor"))
        .map(|b| {
            b.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect()
        })
        .collect()
}

fn field<'a>(cpu: &'a [(String, String)], key: &str) -> Option<&'a str> {
    cpu.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The first `x.y[.z]` token of a `--version` line.
pub fn version_token(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .find(|t| {
            let parts: Vec<&str> = t.split('.').collect();
            parts.len() >= 2
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_string)
}

/// The version a tool prints, or None when it is not installed.
pub async fn tool_version(program: &str) -> Option<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::process::Command::new(program)
            .arg("--version")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    if !out.status.success() {
        return None;
    }
    version_token(&String::from_utf8_lossy(&out.stdout))
}

impl HostProbe {
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        HostProbe {
            root: root.into(),
            tools: None,
        }
    }

    /// Report these versions instead of running the tools; a tool not
    /// listed is "not installed".
    pub fn with_tools(mut self, tools: &[(&str, &str)]) -> Self {
        self.tools = Some(
            tools
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        self
    }

    /// The version `program --version` prints, None when not installed.
    pub async fn version_of(&self, program: &str) -> Option<String> {
        match &self.tools {
            Some(t) => t.get(program).cloned(),
            None => tool_version(program).await,
        }
    }

    /// The qemu binary kvmagent asks (`qemu.get_path()`): qemu-kvm where the
    /// distribution ships it, else qemu-system-<arch>.
    pub async fn qemu_version(&self) -> Option<String> {
        match self.version_of("qemu-kvm").await {
            Some(v) => Some(v),
            None => {
                self.version_of(&format!("qemu-system-{}", std::env::consts::ARCH))
                    .await
            }
        }
    }

    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(rel))
            .ok()
            .and_then(trimmed)
    }

    fn cpus(&self) -> Vec<Vec<(String, String)>> {
        cpuinfo(&self.read("proc/cpuinfo").unwrap_or_default())
    }

    fn cpu_mhz(&self, cpus: &[Vec<(String, String)>]) -> Option<u64> {
        if let Some(khz) = self
            .read("sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
            .and_then(|s| s.parse::<u64>().ok())
        {
            return Some(khz / 1000);
        }
        cpus.first()
            .and_then(|c| field(c, "cpu MHz"))
            .and_then(|s| s.parse::<f64>().ok())
            .map(|m| m as u64)
    }

    /// Used CPU and memory count running domains; until the VM side exists
    /// this agent runs none, so they are 0.
    pub fn capacity(&self) -> HostCapacityResponse {
        let cpus = self.cpus();
        let sockets: BTreeSet<&str> = cpus
            .iter()
            .filter_map(|c| field(c, "physical id"))
            .collect();
        let mem_kib = self
            .read("proc/meminfo")
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .unwrap_or(0);
        HostCapacityResponse {
            cpu_num: cpus.len() as u64,
            cpu_sockets: sockets.len().max(1) as u64,
            cpu_speed: self.cpu_mhz(&cpus),
            used_cpu: 0,
            total_memory: mem_kib * 1024,
            used_memory: 0,
        }
    }

    fn cpu_cache(&self) -> Option<String> {
        let base = self.root.join("sys/devices/system/cpu/cpu0/cache");
        let mut per_level = [0u64; 3];
        let mut any = false;
        for e in std::fs::read_dir(&base).ok()?.flatten() {
            let p = e.path();
            let get = |f: &str| std::fs::read_to_string(p.join(f)).ok().and_then(trimmed);
            let (Some(level), Some(size)) = (get("level"), get("size")) else {
                continue;
            };
            let kib = size.trim_end_matches('K').parse::<u64>().ok();
            if let (Ok(l @ 1..=3), Some(k)) = (level.parse::<usize>(), kib) {
                per_level[l - 1] += k;
                any = true;
            }
        }
        any.then(|| format!("{},{},{}", per_level[0], per_level[1], per_level[2]))
    }

    fn os_release(&self) -> Vec<(String, String)> {
        self.read("etc/os-release")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect()
    }

    /// Facts from files; the caller adds tool versions and addresses.
    pub fn facts(&self) -> HostFactResponse {
        let cpus = self.cpus();
        let first = cpus.first().cloned().unwrap_or_default();
        let flags: BTreeSet<&str> = field(&first, "flags")
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let os = self.os_release();
        let os_get = |k: &str| {
            os.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let dmi = |f: &str| self.read(&format!("sys/class/dmi/id/{f}"));
        let uptime = self
            .read("proc/stat")
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .map(common::text::format_utc);
        let iscsi = self.read("etc/iscsi/initiatorname.iscsi").and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("InitiatorName="))
                .map(str::to_string)
        });
        HostFactResponse {
            os_distribution: os_get("ID"),
            os_version: os_get("VERSION_ID"),
            os_release: os_get("VERSION_CODENAME"),
            hvm_cpu_flag: ["vmx", "svm"]
                .into_iter()
                .find(|f| flags.contains(f))
                .map(str::to_string),
            ept_flag: flags.contains("ept").then(|| "ept".to_string()),
            cpu_architecture: Some(std::env::consts::ARCH.to_string()),
            host_cpu_model_name: field(&first, "model name").map(str::to_string),
            cpu_ghz: self
                .cpu_mhz(&cpus)
                .map(|m| format!("{:.2}", m as f64 / 1000.0)),
            cpu_processor_num: (!cpus.is_empty()).then(|| cpus.len().to_string()),
            cpu_cache: self.cpu_cache(),
            system_product_name: dmi("product_name"),
            system_serial_number: dmi("product_serial"),
            system_manufacturer: dmi("sys_vendor"),
            system_uuid: dmi("product_uuid"),
            bios_vendor: dmi("bios_vendor"),
            bios_version: dmi("bios_version"),
            bios_release_date: dmi("bios_date"),
            uptime,
            iscsi_initiator_name: iscsi,
            ..Default::default()
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A second probe of the same tree, for use on a blocking thread.
    pub fn clone_probe(&self) -> HostProbe {
        HostProbe {
            root: self.root.clone(),
            tools: self.tools.clone(),
        }
    }

    /// /proc/meminfo MemAvailable (KiB): what the kernel can give without
    /// swapping, the honest figure for "can a new VM fit".
    pub fn mem_available_kib(&self) -> u64 {
        self.read("proc/meminfo")
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemAvailable:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .unwrap_or(0)
    }

    /// Online CPUs from sysfs ("0-3,6"), else the cpuinfo count.
    pub fn online_cpus(&self) -> u32 {
        let from_sysfs = self.read("sys/devices/system/cpu/online").map(|s| {
            s.split(',')
                .filter_map(|r| match r.trim().split_once('-') {
                    Some((a, b)) => Some(b.parse::<u32>().ok()? + 1 - a.parse::<u32>().ok()?),
                    None => r.trim().parse::<u32>().ok().map(|_| 1),
                })
                .sum::<u32>()
        });
        match from_sysfs {
            Some(n) if n > 0 => n,
            _ => self.cpus().len() as u32,
        }
    }

    /// The cpuinfo `hypervisor` flag: this host is itself a guest.
    pub fn under_hypervisor(&self) -> bool {
        self.cpus()
            .first()
            .and_then(|c| field(c, "flags"))
            .is_some_and(|f| f.split_whitespace().any(|x| x == "hypervisor"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_fake_host() {
        let dir = std::env::temp_dir().join(format!("kvm-agent-host-{}", std::process::id()));
        let w = |rel: &str, text: &str| {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        let cpu = |n: u32| {
            format!(
                "processor\t: {n}\nmodel name\t: AMD EPYC\nphysical id\t: 0\ncpu MHz\t\t: 2445.406\nflags\t\t: fpu svm lm\n"
            )
        };
        w("proc/cpuinfo", &format!("{}\n{}", cpu(0), cpu(1)));
        w(
            "proc/meminfo",
            "MemTotal:        8000000 kB\nMemFree: 1 kB\nMemAvailable:    5000000 kB\n",
        );
        w("sys/devices/system/cpu/online", "0-3,6\n");
        w("proc/stat", "cpu 1 2\nbtime 1700000000\n");
        w(
            "etc/os-release",
            "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
        );
        w("sys/devices/system/cpu/cpu0/cache/index0/level", "1\n");
        w("sys/devices/system/cpu/cpu0/cache/index0/size", "32K\n");
        w("sys/devices/system/cpu/cpu0/cache/index1/level", "1\n");
        w("sys/devices/system/cpu/cpu0/cache/index1/size", "32K\n");
        w("sys/devices/system/cpu/cpu0/cache/index2/level", "2\n");
        w("sys/devices/system/cpu/cpu0/cache/index2/size", "512K\n");
        let p = HostProbe::with_root(&dir);
        let c = p.capacity();
        assert_eq!((c.cpu_num, c.cpu_sockets, c.cpu_speed), (2, 1, Some(2445)));
        assert_eq!(c.total_memory, 8_000_000 * 1024);
        assert_eq!(p.mem_available_kib(), 5_000_000);
        assert_eq!(p.online_cpus(), 5);
        assert!(!p.under_hypervisor());
        let f = p.facts();
        assert_eq!(f.os_distribution.as_deref(), Some("debian"));
        assert_eq!(f.os_version.as_deref(), Some("12"));
        assert_eq!(f.hvm_cpu_flag.as_deref(), Some("svm"));
        assert_eq!(f.ept_flag, None);
        assert_eq!(f.cpu_cache.as_deref(), Some("64,512,0"));
        assert_eq!(f.uptime.as_deref(), Some("2023-11-14 22:13:20"));
        // Not on this fake host: absent, not invented.
        assert_eq!(f.system_uuid, None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn libvirt_capabilities() {
        let xml = "<capabilities>\n<host><uuid>u</uuid><cpu><arch>x86_64</arch>\
            <model>Skylake-Client-IBRS</model><vendor>Intel</vendor>\
            <feature name='ss'/></cpu></host>\
            <guest><os_type>hvm</os_type><features><acpi default='on'/>\
            <blockcopynetworktarget/></features></guest>\
            <guest><features><incrementaldrivemirror/></features></guest></capabilities>";
        assert_eq!(
            parse_capabilities(xml),
            LibvirtCaps {
                cpu_model: Some("Skylake-Client-IBRS".into()),
                features: vec!["blockcopynetworktarget".into()],
            }
        );
        assert_eq!(
            parse_capabilities("<capabilities/>"),
            LibvirtCaps::default()
        );
    }

    #[test]
    fn version_tokens() {
        assert_eq!(
            version_token("libvirtd (libvirt) 9.0.0").as_deref(),
            Some("9.0.0")
        );
        assert_eq!(
            version_token("QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u12)").as_deref(),
            Some("7.2.15")
        );
        assert_eq!(version_token("nothing here"), None);
    }
}
