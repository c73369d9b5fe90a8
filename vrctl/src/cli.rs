//! vrctl's command line (clap): the options, the commands, their help,
//! and from the same definition the shell completions and man pages.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

/// Plays the cloud controller against kvm-agent and vr-agent with the real
/// protocol, and runs the lab.
#[derive(Parser)]
#[command(
    name = "vrctl",
    version = crate::VERSION_LINE,
    after_help = crate::exit::TABLE,
    after_long_help = crate::exit::TABLE
)]
pub struct Args {
    /// Print machine-readable JSON instead of tables: one document on
    /// stdout per run, errors included (`{"error": {...}}`).
    #[arg(long, global = true)]
    pub json: bool,
    /// Sync mode: replies in the HTTP response instead of on a callback.
    #[arg(long, global = true)]
    pub sync: bool,
    /// Where the callback receiver listens (port 0: any); the agent is told
    /// this host's address towards it.
    #[arg(long, global = true, default_value = "0.0.0.0:0")]
    pub callback_bind: SocketAddr,
    /// Run in this network namespace (e.g. `vrlab-mn`, the lab's management node).
    #[arg(long, global = true)]
    pub netns: Option<String>,
    /// Where vrctl keeps what it knows of the routers it created.
    #[arg(
        long,
        global = true,
        env = "VRCTL_STATE_DIR",
        default_value = "/var/lib/vrctl"
    )]
    pub state_dir: PathBuf,
    /// Trust this CA for the agents' certificates and speak TLS: every
    /// agent URL is then spoken as https:// (an http:// URL is upgraded).
    #[arg(long, global = true, env = "VRCTL_CA")]
    pub ca: Option<PathBuf>,
    /// vrctl's client certificate (PEM) for agents with mutual TLS.
    #[arg(long, global = true, env = "VRCTL_CERT", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, env = "VRCTL_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Bearer tokens, one a line: the first is sent to every agent; routers
    /// vrctl bootstraps are told to accept them all.
    #[arg(long, global = true, env = "VRCTL_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// A vrctl PKI directory (`vrctl pki init`): its ca.pem and vrctl.pem/
    /// vrctl.key stand for --ca/--cert/--key when those are not given, and
    /// its CA issues each router vrctl creates a certificate of its own
    /// (the router then speaks mutual TLS only).
    #[arg(long, global = true, env = "VRCTL_PKI_DIR")]
    pub pki_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// A virtual router's agent.
    Vr {
        #[command(subcommand)]
        cmd: VrCmd,
    },
    /// VMs on a compute host, through its kvm-agent.
    Vm {
        /// The host's agent, e.g. http://10.0.0.21:7070.
        #[arg(long)]
        agent: String,
        #[command(subcommand)]
        cmd: VmCmd,
    },
    /// The recovery loop, run as a service: ping every router of FILES;
    /// a lost one is started again (its host answers without it), moved
    /// (host gone, `vm.storage = "shared"`), re-created elsewhere (host gone,
    /// local storage) or rebooted (its VM runs, it stays silent). One line
    /// per event on stdout (JSON lines with --json); runs until stopped.
    Watch {
        /// Router descriptions with a [vm] section (re-read every ping), or
        /// directories of them (their *.toml and *.json, read at the start).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Milliseconds between pings of a router.
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(100..))]
        interval_ms: u64,
        /// Pings missed in a row before a router counts as lost.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        misses: u32,
        /// Seconds a router's host may stay silent before it counts as gone.
        #[arg(long, default_value_t = 10)]
        host_gone_secs: u64,
        /// Seconds a router may stay silent while its VM runs before it is
        /// rebooted.
        #[arg(long, default_value_t = 120)]
        reboot_after_secs: u64,
    },
    /// The seed topology on this machine, driven and verified.
    Lab {
        #[command(subcommand)]
        cmd: LabCmd,
    },
    /// The controller's CA, certificates and bearer tokens (mutual TLS).
    Pki {
        #[command(subcommand)]
        cmd: crate::pki::PkiCmd,
    },
    /// A compute host's kvm-agent.
    Host {
        /// The host's agent, e.g. http://10.0.0.21:7070.
        #[arg(long)]
        agent: String,
        #[command(subcommand)]
        cmd: HostCmd,
    },
    /// Print a shell completion script, e.g. `vrctl completions bash >
    /// /etc/bash_completion.d/vrctl`.
    Completions {
        /// The shell the script is for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page vrctl(1), or with --dir write one page per
    /// command (vrctl.1, vrctl-vr.1, vrctl-vr-apply.1, ...).
    Man {
        /// Write every page into this directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum LabCmd {
    /// Build the topology, start the router, drive the seed workflow, prove
    /// every service with real traffic, print the report. The lab stays up.
    /// Exit 1 when a check fails.
    Up {
        /// The lab's name: its namespaces, bridges and files are named after it.
        #[arg(long, default_value = "vrlab")]
        name: String,
        /// How the router runs.
        #[arg(long, value_enum, default_value = "auto")]
        mode: crate::lab::Mode,
        /// The VR image (vr.qcow2, vmlinuz, initrd.img).
        #[arg(long, env = "VR_IMAGE_DIR")]
        image_dir: Option<PathBuf>,
        /// Stop once the host and its bridges are ready (no router).
        #[arg(long)]
        host_only: bool,
        /// Two compute hosts on the same networks and an HA pair of
        /// routers, one on each; the report kills the master under traffic
        /// and brings it back (VMs: `vrctl watch` starts it again;
        /// namespaces: re-created).
        #[arg(long)]
        ha: bool,
    },
    /// Remove the lab: processes, namespaces (bridges, taps), domain, files.
    Down {
        /// The lab's name.
        #[arg(long, default_value = "vrlab")]
        name: String,
    },
    /// What is up, and the traffic checks run again (exit 1 when the lab
    /// is not up or a check fails).
    Status {
        /// The lab's name.
        #[arg(long, default_value = "vrlab")]
        name: String,
    },
}

#[derive(Subcommand)]
pub enum VmCmd {
    /// Start a VM from a StartVmCmd body (JSON, the protocol's fields).
    Start {
        /// The StartVmCmd body (JSON), sent as it is.
        file: PathBuf,
    },
    /// Push bootstrap info (JSON) into a VR's channel socket.
    Bootstrap {
        /// The VM's channel socket on the host.
        #[arg(long)]
        socket: String,
        /// Seconds the host keeps trying the socket.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// The bootstrap info (JSON), sent as it is.
        file: PathBuf,
    },
    /// Stop a VM.
    Stop {
        /// The VM's uuid.
        #[arg(long)]
        uuid: String,
        /// How to stop it.
        #[arg(long, value_enum, default_value = "grace")]
        r#type: StopType,
        /// Seconds a graceful stop may take before the VM is destroyed.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Reboot a VM.
    Reboot {
        /// The VM's uuid.
        #[arg(long)]
        uuid: String,
    },
    /// Destroy a VM (its disks stay).
    Destroy {
        /// The VM's uuid.
        #[arg(long)]
        uuid: String,
    },
    /// The real state of every VM on the host.
    Sync,
    /// The tail of a VM's serial console log (terminal escapes removed).
    Console {
        /// The VM's uuid.
        #[arg(long)]
        uuid: String,
        /// How many bytes of the log's end.
        #[arg(long, default_value_t = 4096)]
        bytes: u64,
    },
}

#[derive(Subcommand)]
pub enum HostCmd {
    /// Connect the host (it reports VM events to `--send-command-url`).
    Connect {
        /// The host's uuid (32 hex digits).
        #[arg(long)]
        uuid: String,
        /// Where the host reports VM events (empty: nowhere).
        #[arg(long, default_value = "")]
        send_command_url: String,
    },
    /// Put a bridge over a NIC (the NIC's addresses and routes move onto it).
    Bridge {
        /// The host's physical NIC, e.g. eth0.
        #[arg(long)]
        nic: String,
        /// The bridge's name, e.g. br_eth0.
        #[arg(long)]
        bridge: String,
        /// A VLAN id: the bridge is over NIC.VLAN.
        #[arg(long)]
        vlan: Option<u16>,
        /// Check the bridge instead of creating it.
        #[arg(long, conflicts_with = "delete")]
        check: bool,
        /// Delete the bridge, putting the NIC's addresses back.
        #[arg(long)]
        delete: bool,
    },
    /// What the host has free for VMs.
    Capacity,
}

#[derive(Subcommand)]
pub enum VrCmd {
    /// Put a router description on the router, in the controller's resync order.
    Apply {
        /// The router description (.toml, or .json).
        file: PathBuf,
    },
    /// What `apply` would change (exit 1 when something would, 0 when not).
    Diff {
        /// The router description (.toml, or .json).
        file: PathBuf,
    },
    /// Is the agent up, which version, is it initialised, what does it hold.
    /// With FILE: also the VM's state on its host.
    Status {
        /// The router's agent, e.g. http://10.0.0.25:7272.
        #[arg(long, required_unless_present = "file")]
        agent: Option<String>,
        /// The router description (its agent, and its VM's host).
        file: Option<PathBuf>,
    },
    /// Create the router VM from FILE's [vm] section: a host that fits, a
    /// disk from the image, bootstrap info, wait for the agent, resync.
    Create {
        /// The router description, with a [vm] section.
        file: PathBuf,
    },
    /// Start it again (after a stop, or after its host came back); `--host`
    /// starts it on another host (shared storage).
    Start {
        /// The router description, with a [vm] section.
        file: PathBuf,
        /// Start it on this kvm-agent instead of its last host.
        #[arg(long)]
        host: Option<String>,
    },
    /// Stop it (ACPI, then forced after `--grace` seconds).
    Stop {
        /// The router description, with a [vm] section.
        file: PathBuf,
        /// Seconds of ACPI shutdown before the VM is forced off.
        #[arg(long, default_value_t = 30)]
        grace: u64,
    },
    /// Reboot it, push the bootstrap info again, resync.
    Reboot {
        /// The router description, with a [vm] section.
        file: PathBuf,
    },
    /// Destroy it and delete its disk.
    Destroy {
        /// The router description, with a [vm] section.
        file: PathBuf,
    },
    /// For a router that lost its network: destroy, fresh disk, create, resync.
    Recreate {
        /// The router description, with a [vm] section.
        file: PathBuf,
    },
    /// Ask its host (vmsync) for its real state and record it. `--host-gone`:
    /// the host is not coming back, so an unanswered host means stopped.
    Sync {
        /// The router description, with a [vm] section.
        file: PathBuf,
        /// The host is gone for good: record the router as stopped.
        #[arg(long)]
        host_gone: bool,
    },
    /// The tail of its serial console (terminal escapes removed).
    Console {
        /// The router description, with a [vm] section.
        file: PathBuf,
    },
    /// Give the running router a new certificate from --pki-dir's CA
    /// (`POST /agent/credentials`, no restart; with --token-file also the
    /// file's tokens) and record it for the next bootstrap push.
    RotateCert {
        /// The router description, with a [vm] section.
        file: PathBuf,
    },
    /// Split brain: make this half of an HA pair backup, as the node does
    /// when both report Master: `/syncVpcRouterHa` to the peer, and only
    /// if it is Master too, `/restartKeepalived` here.
    Demote {
        /// The router description, with an [ha] section.
        file: PathBuf,
    },
    /// Send one raw command, e.g. `vrctl vr call --agent URL /createeip '{"eip":{...}}'`.
    Call {
        /// The router's agent, e.g. http://10.0.0.25:7272.
        #[arg(long)]
        agent: String,
        /// The command's path, e.g. /createeip.
        path: String,
        /// The command's body (JSON), sent as it is.
        #[arg(default_value = "{}")]
        body: String,
    },
}

/// `vrctl vm stop --type`: kvm-agent's stop kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StopType {
    /// ACPI shutdown, then destroyed after --timeout.
    Grace,
    /// Destroyed at once.
    Cold,
    /// Destroyed at once, whatever state it is in.
    Force,
}

impl StopType {
    /// The `type` of `StopVmCmd`.
    pub fn wire(self) -> &'static str {
        match self {
            StopType::Grace => "grace",
            StopType::Cold => "cold",
            StopType::Force => "force",
        }
    }
}

/// The command line's definition, for completions and man pages.
pub fn command() -> clap::Command {
    Args::command()
}

/// A completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> String {
    let mut out = vec![];
    clap_complete::generate(shell, &mut command(), "vrctl", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The man page of `cmd` (its name already the page's), with the exit
/// statuses as a section of their own.
fn page(cmd: clap::Command) -> std::io::Result<Vec<u8>> {
    let mut out = vec![];
    // Subcommands have no version of their own (the section would panic).
    let cmd_has_version = cmd.get_version().is_some();
    let man = clap_mangen::Man::new(cmd);
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    man.render_subcommands_section(&mut out)?;
    out.extend_from_slice(b".SH \"EXIT STATUS\"\n.nf\n");
    for line in crate::exit::TABLE.lines().skip(1) {
        // roff: a backslash is written twice, a leading dot escaped.
        let line = line.replace('\\', "\\\\");
        let line = if line.starts_with('.') || line.starts_with('\'') {
            format!("\\&{line}")
        } else {
            line
        };
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b".fi\n");
    if cmd_has_version {
        man.render_version_section(&mut out)?;
    }
    Ok(out)
}

/// vrctl(1).
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut cmd = command();
    cmd.build();
    page(cmd)
}

/// One page per command into `dir` (vrctl.1, vrctl-vr.1, vrctl-vr-apply.1,
/// ...): the files written.
pub fn write_man_pages(dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = command();
    cmd.build();
    let mut written = vec![];
    write_pages(cmd, "vrctl", dir, &mut written)?;
    Ok(written)
}

fn write_pages(
    cmd: clap::Command,
    name: &str,
    dir: &std::path::Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let sub_name = format!("{name}-{}", sub.get_name());
        write_pages(sub.clone().name(sub_name.clone()), &sub_name, dir, written)?;
    }
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page(cmd.name(name.to_string()))?)?;
    written.push(path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command and every argument says what it is (clap's own help
    /// and version flags aside).
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for s in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let p = format!("{path} {}", s.get_name());
                if s.get_about().is_none() && s.get_long_about().is_none() {
                    missing.push(p.clone());
                }
                walk(s, &p, missing);
            }
        }
        let mut cmd = command();
        cmd.build();
        cmd.clone().debug_assert();
        let mut missing = vec![];
        walk(&cmd, "vrctl", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    #[test]
    fn the_man_page_has_the_exit_statuses() {
        let page = String::from_utf8(man_page().unwrap()).unwrap();
        assert!(page.contains("EXIT STATUS") && page.contains("no host can fit"));
    }
}
