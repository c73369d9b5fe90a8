use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// The virtual router's agent: NAT, VIPs, DHCP, DNS and load balancing,
/// driven by the controller over HTTP (ZStack VR protocol).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address and port to serve the protocol on.
    #[arg(long, env = "VR_AGENT_LISTEN", default_value = "0.0.0.0:7272")]
    listen: SocketAddr,
    /// Where the desired state is persisted.
    #[arg(long, env = "VR_AGENT_STATE_DIR", default_value = "/var/lib/vr-agent")]
    state_dir: PathBuf,
    /// Seconds between checks that our nft table still matches (0: never).
    #[arg(long, env = "VR_AGENT_DRIFT_CHECK_SECS", default_value_t = 30)]
    drift_check_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VR_AGENT_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let sys = vr_agent::real_sys(&args.state_dir)?;
    let cfg = vr_agent::Config {
        listen: args.listen,
        state_dir: args.state_dir,
        drift_check: Duration::from_secs(args.drift_check_secs),
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
