use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// The virtual router's agent: NAT, VIPs, DHCP, DNS and load balancing,
/// driven by the controller over HTTP (ZStack VR protocol).
#[derive(Parser)]
#[command(version = vr_agent::VERSION_LINE)]
struct Args {
    /// Address and port to serve the protocol on [default: the management
    /// IP of the bootstrap info, port 7272; without a bootstrap file,
    /// 127.0.0.1:7272 (loopback only), never every NIC unless asked for
    /// with 0.0.0.0:PORT]. The listener is also bound (SO_BINDTODEVICE) to
    /// the interface that holds the address, so other NICs cannot reach it
    /// even without the nft guard.
    #[arg(long, env = "VR_AGENT_LISTEN")]
    listen: Option<SocketAddr>,
    /// Controller addresses or CIDRs commands may come from (repeatable),
    /// besides loopback and the bootstrap info's managementNodeIp and
    /// managementNodeCidr. Everyone else gets 403 (GET /healthz answers
    /// anyone); callback URLs must point at one of these or at the sender.
    #[arg(long, env = "VR_AGENT_ALLOW_FROM", value_delimiter = ',')]
    allow_from: Vec<common::net::Ipv4Net>,
    /// Accept commands from any source (a lab or test without bootstrap
    /// info). Without it and without allowed addresses: loopback only.
    #[arg(long, env = "VR_AGENT_ALLOW_ANY_SOURCE")]
    allow_any_source: bool,
    /// Bootstrap info (the virtio port inside the VR, or a regular file):
    /// configure the NICs it names before serving.
    #[arg(long, env = "VR_AGENT_BOOTSTRAP", num_args = 0..=1,
          default_missing_value = vr_agent::boot::DEFAULT_PATH)]
    bootstrap: Option<PathBuf>,
    /// Seconds to wait for the bootstrap info to arrive.
    #[arg(long, env = "VR_AGENT_BOOTSTRAP_TIMEOUT_SECS", default_value_t = 300)]
    bootstrap_timeout_secs: u64,
    /// Where the desired state is persisted.
    #[arg(long, env = "VR_AGENT_STATE_DIR", default_value = "/var/lib/vr-agent")]
    state_dir: PathBuf,
    /// Seconds between checks that our nft table still matches (0: never).
    #[arg(long, env = "VR_AGENT_DRIFT_CHECK_SECS", default_value_t = 30)]
    drift_check_secs: u64,
    /// Power off (`systemctl poweroff`) when the ACPI power button is
    /// pressed: the VR image has no logind or acpid.
    #[arg(long, env = "VR_AGENT_POWER_BUTTON")]
    power_button: bool,
    /// Mutual TLS: the agent's certificate chain (PEM). With --tls-key and
    /// --tls-client-ca the port speaks HTTPS only and every client must
    /// present a certificate of the client CA (extended key usage
    /// clientAuth). Reloaded within 2 s of a change and on SIGHUP. The
    /// bootstrap info's agentTls, when present, is used instead.
    #[arg(long, env = "VR_AGENT_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// Mutual TLS: the private key of --tls-cert (PEM).
    #[arg(long, env = "VR_AGENT_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Mutual TLS: the CA (PEM) client certificates must chain to.
    #[arg(long, env = "VR_AGENT_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
    /// Bearer tokens, one per line: every request but GET /healthz must
    /// carry `Authorization: Bearer <one of them>`. Reloaded on change.
    /// The bootstrap info's agentTokens, when present, are used instead.
    #[arg(long, env = "VR_AGENT_AUTH_TOKEN_FILE")]
    auth_token_file: Option<PathBuf>,
    /// A console (the VR's serial line, /dev/console) that gets only
    /// warnings, errors and the two lines the controller's diagnosis reads:
    /// "vr-agent serving on ADDR" and a fatal "vr-agent: ERROR".
    #[arg(long, env = "VR_AGENT_CONSOLE")]
    console: Option<PathBuf>,
    /// The HA pair's VRRP advertisement interval in milliseconds (10 ms
    /// steps, 10..=40950). The node's `keepalive` (whole seconds) is only
    /// checked: a backup takes over after about 3.6 intervals.
    #[arg(long, env = "VR_AGENT_HA_ADVERT_MS", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(10..=40950))]
    ha_advert_ms: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let console = args.console.as_deref().map(common::logging::Console::open);
    let (console, console_error) = match console {
        Some(Ok(c)) => (Some(c), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    common::logging::init_with_console("VR_AGENT_LOG", "info", console.clone());
    if let (Some(path), Some(e)) = (&args.console, console_error) {
        tracing::warn!(path = %path.display(), error = %e, "cannot open the console: nothing is said there");
    }
    if args.power_button {
        vr_agent::sys::power::watch();
    }
    if let Err(e) = serve(args, console.clone()).await {
        // Said on the console too, in the words the controller's diagnosis
        // reads: a router that cannot boot (or whose state dir cannot be
        // made, a full disk) must say why.
        tracing::error!(target: "vr_agent::not_on_console", "{e:#}");
        let line = format!("vr-agent: {e:#}");
        match &console {
            Some(c) => c.line(&line),
            None if !common::logging::stderr_is_journal() => eprintln!("{line}"),
            None => {}
        }
        std::process::exit(1);
    }
    Ok(())
}

async fn serve(args: Args, console: Option<common::logging::Console>) -> anyhow::Result<()> {
    let tls_files =
        common::credentials::server_files(args.tls_cert, args.tls_key, args.tls_client_ca)?;
    let sys = vr_agent::real_sys(&args.state_dir)?;
    let cfg = vr_agent::Config {
        listen: args.listen,
        bootstrap: args.bootstrap,
        bootstrap_timeout: Duration::from_secs(args.bootstrap_timeout_secs),
        state_dir: args.state_dir,
        drift_check: Duration::from_secs(args.drift_check_secs),
        allow_from: args.allow_from,
        allow_any_source: args.allow_any_source,
        tls_files,
        token_file: args.auth_token_file,
        console,
        ha_advert_cs: (args.ha_advert_ms / 10) as u16,
    };
    vr_agent::run(cfg, sys, shutdown()).await
}

async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}
