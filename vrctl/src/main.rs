//! vrctl: parse the arguments, enter `--netns`, and hand the subcommand
//! to its module under `cmd/`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use vrctl::cli::{Args, Cmd};
use vrctl::exit::{Exit, coded};

mod cmd;

fn main() -> ExitCode {
    // Scripts tell failures apart by status (see vrctl::exit), so clap's
    // own status 2 for a usage error (our "no host fits") is not used.
    let json = std::env::args().skip(1).any(|a| a == "--json");
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if json {
                let err = anyhow::anyhow!("{}", e.render().to_string().trim());
                println!("{}", vrctl::exit::to_json(&err, Exit::Usage));
            }
            let _ = e.print();
            return ExitCode::from(Exit::Usage.code());
        }
    };
    if let Some(ns) = &args.netns {
        // Before any thread exists: the whole process moves.
        if let Err(e) = enter_netns(ns) {
            return fail(&args, e.context("--netns"));
        }
    }
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    match rt.block_on(run(&args)) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => fail(&args, e),
    }
}

/// Reports `e` (on stderr; with --json also as the run's JSON document on
/// stdout) and gives its status.
fn fail(args: &Args, e: anyhow::Error) -> ExitCode {
    let exit = vrctl::exit::classify(&e);
    if args.json {
        println!("{}", vrctl::exit::to_json(&e, exit));
    }
    eprintln!("error: {e:#}");
    ExitCode::from(exit.code())
}

fn enter_netns(ns: &str) -> Result<()> {
    let path = format!("/run/netns/{ns}");
    let f = std::fs::File::open(&path)
        .map_err(|e| coded(Exit::NoInput, format!("network namespace {path}: {e}")))?;
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("entering {path}"))?;
    Ok(())
}

async fn run(args: &Args) -> Result<Exit> {
    common::logging::init("VRCTL_LOG", "warn");
    match &args.cmd {
        Cmd::Lab { cmd } => cmd::lab::run(args, cmd).await,
        Cmd::Vr { cmd } => cmd::vr::run(args, cmd).await,
        Cmd::Watch { .. } => cmd::watch::run(args).await,
        Cmd::Host { agent, cmd } => cmd::host::run(args, agent, cmd).await,
        Cmd::Vm { agent, cmd } => cmd::vm::run(args, agent, cmd).await,
        Cmd::Pki { cmd } => cmd::docs::pki(args, cmd),
        Cmd::Completions { shell } => cmd::docs::completions(args, *shell),
        Cmd::Man { dir } => cmd::docs::man(args, dir.as_deref()),
    }
}
