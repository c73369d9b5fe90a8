use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use kvm_agent::api::{Agent, VmSide};
use kvm_agent::plan::domain::{DomainOptions, DomainType};
use kvm_agent::sys::events;
use kvm_agent::sys::hostinfo::HostProbe;
use kvm_agent::sys::hypervisor::{Hypervisor, Libvirt};
use kvm_agent::sys::netlink::RtNetlink;
use kvm_agent::sys::sysctl::ProcSys;

/// The compute-host agent (ZStack kvmagent protocol).
#[derive(Parser, Debug)]
#[command(version = kvm_agent::VERSION_LINE)]
struct Args {
    /// Address and port to serve on.
    #[arg(long, env = "KVM_AGENT_LISTEN", default_value = "0.0.0.0:7070")]
    listen: SocketAddr,
    /// Where connect state is recorded.
    #[arg(
        long,
        env = "KVM_AGENT_STATE_DIR",
        default_value = "/var/lib/kvm-agent"
    )]
    state_dir: PathBuf,
    /// libvirt connection URI (`test:///default` needs no daemon).
    #[arg(long, env = "KVM_AGENT_LIBVIRT_URI", default_value = "qemu:///system")]
    libvirt_uri: String,
    /// Domain type: `kvm`, `qemu` (TCG), or `auto` (kvm when /dev/kvm is
    /// usable and this host is not itself a guest).
    #[arg(long, env = "KVM_AGENT_DOMAIN_TYPE", default_value = "auto")]
    domain_type: String,
    /// Where serial consoles of VMs are logged.
    #[arg(
        long,
        env = "KVM_AGENT_CONSOLE_LOG_DIR",
        default_value = "/var/log/kvm-agent/console"
    )]
    console_log_dir: PathBuf,
    /// Address VNC consoles listen on (ZStack uses 0.0.0.0).
    #[arg(long, env = "KVM_AGENT_VNC_LISTEN", default_value = "0.0.0.0")]
    vnc_listen: String,
    /// VM channel sockets must be files directly in this directory
    /// (ZStack's ApplianceVmConstant.KVM_CHANNEL_AGENT_PATH).
    #[arg(
        long,
        env = "KVM_AGENT_SOCKET_DIR",
        default_value = kvm_agent::paths::DEFAULT_SOCKET_DIR
    )]
    socket_dir: PathBuf,
    /// Volume install paths and storage paths must be inside one of these
    /// (repeatable; the primary storages' mount points).
    #[arg(
        long = "volume-dir",
        env = "KVM_AGENT_VOLUME_DIRS",
        value_delimiter = ',',
        default_values = kvm_agent::paths::DEFAULT_VOLUME_DIRS
    )]
    volume_dirs: Vec<PathBuf>,
    /// Kernels and initrds of addons.directKernelBoot must be inside one of
    /// these or a volume dir (repeatable).
    #[arg(
        long = "image-dir",
        env = "KVM_AGENT_IMAGE_DIRS",
        value_delimiter = ',',
        default_value = kvm_agent::paths::DEFAULT_IMAGE_DIR
    )]
    image_dirs: Vec<PathBuf>,
    /// Controller addresses or IPv4 CIDRs allowed to send commands
    /// (repeatable), besides the one pinned by the first /host/connect.
    #[arg(
        long = "allow-from",
        env = "KVM_AGENT_ALLOW_FROM",
        value_delimiter = ','
    )]
    allow_from: Vec<common::net::Ipv4Net>,
    /// Forget the controller pinned by /host/connect (the next connect
    /// pins again).
    #[arg(long)]
    forget_controller: bool,
    /// Mutual TLS: this host's certificate chain (PEM). With --tls-key and
    /// --tls-client-ca the port speaks HTTPS only and every client must
    /// present a certificate of the client CA (extended key usage
    /// clientAuth). The files are reloaded within 2 s of a change and on
    /// SIGHUP; bad new files leave the old ones in force.
    #[arg(long, env = "KVM_AGENT_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// Mutual TLS: the private key of --tls-cert (PEM).
    #[arg(long, env = "KVM_AGENT_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Mutual TLS: the CA (PEM) client certificates must chain to.
    #[arg(long, env = "KVM_AGENT_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
    /// Bearer tokens, one per line (`#` comments): every request but GET
    /// /healthz must carry `Authorization: Bearer <one of them>`. Reloaded
    /// on change, so a token rotates by adding the new one, switching the
    /// controller, removing the old.
    #[arg(long, env = "KVM_AGENT_AUTH_TOKEN_FILE")]
    auth_token_file: Option<PathBuf>,
}

fn domain_type(arg: &str, host: &HostProbe) -> anyhow::Result<DomainType> {
    if arg != "auto" {
        return arg
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--domain-type: {e}"));
    }
    let kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(|_| ())
        .map_err(|e| e.to_string());
    let (t, why) = DomainType::choose(kvm, host.under_hypervisor());
    tracing::info!(domain_type = t.as_str(), reason = %why, "domain type chosen (auto)");
    Ok(t)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::logging::init("KVM_AGENT_LOG", "info");
    let args = Args::parse();
    kvm_agent::sys::store::private_dir(&args.state_dir)
        .with_context(|| format!("creating state dir {}", args.state_dir.display()))?;
    let netlink = RtNetlink::new().context("opening rtnetlink")?;
    // libvirt's default error handler prints every error to stdout.
    virt::error::clear_error_callback();
    // The event loop must exist before the connection is opened.
    events::start_event_loop();
    let options = DomainOptions {
        domain_type: domain_type(&args.domain_type, &HostProbe::default())?,
        console_log_dir: args.console_log_dir,
        vnc_listen: args.vnc_listen,
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let uri = args.libvirt_uri.clone();
    // Without libvirt the host and bridge endpoints still serve; VM
    // endpoints answer with the reason.
    let (hv, problem) = match tokio::task::spawn_blocking(move || Libvirt::open(&uri)).await? {
        Ok(lv) => {
            if let Err(e) = events::subscribe(lv.connection(), &tx) {
                tracing::warn!(error = %e, "no libvirt lifecycle events");
            }
            tracing::info!(uri = %args.libvirt_uri, "libvirt connected");
            (Some(Arc::new(lv) as Arc<dyn Hypervisor>), String::new())
        }
        Err(e) => {
            tracing::error!(error = %e, "libvirt unavailable; VM endpoints will fail");
            (None, e.to_string())
        }
    };
    let dirs = kvm_agent::paths::HostDirs {
        socket_dir: args.socket_dir,
        volume_dirs: args.volume_dirs,
        image_dirs: args.image_dirs,
    };
    tracing::info!(?dirs, "request paths confined to");
    let peers = kvm_agent::api::guard::Peers::load(
        args.allow_from,
        args.state_dir.join("controller"),
        args.forget_controller,
    )
    .context("loading the pinned controller")?;
    let credentials = common::credentials::Credentials::from_files(
        common::credentials::server_files(args.tls_cert, args.tls_key, args.tls_client_ca)?,
        args.auth_token_file,
    )?;
    tracing::info!(credentials = %credentials.describe(), "client authentication");
    let mut vm = VmSide::new(hv, options).with_dirs(dirs);
    vm.problem = problem;
    let agent = Arc::new(
        Agent::new(
            Arc::new(netlink),
            Arc::new(ProcSys::default()),
            args.state_dir,
        )
        .with_vm(vm)
        .with_peers(peers)
        .with_credentials(credentials),
    );
    tokio::spawn(kvm_agent::api::vm::report_events(agent.clone(), rx));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(listen = %args.listen, "kvm-agent serving");
    if let Err(e) = common::systemd::notify_ready() {
        tracing::warn!(error = %e, "cannot tell systemd we are ready");
    }
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
    };
    kvm_agent::run(listener, agent, shutdown).await?;
    Ok(())
}
