use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use kvm_agent::api::Agent;
use kvm_agent::sys::netlink::RtNetlink;
use kvm_agent::sys::sysctl::ProcSys;

/// The compute-host agent (ZStack kvmagent protocol).
#[derive(Parser, Debug)]
#[command(version)]
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("creating state dir {}", args.state_dir.display()))?;
    let netlink = RtNetlink::new().context("opening rtnetlink")?;
    let agent = Arc::new(Agent::new(
        Arc::new(netlink),
        Arc::new(ProcSys::default()),
        args.state_dir,
    ));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(listen = %args.listen, "kvm-agent serving");
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
