//! `vrctl watch FILE...`: the recovery loop until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use tokio::signal::unix::{SignalKind, signal};
use vrctl::cli::{Args, Cmd};
use vrctl::exit::{Exit, coded};
use vrctl::router::{Ctx, Records};
use vrctl::spec::RouterSpec;
use vrctl::watch::{Event, Policy, watch};

use super::{credentials, receiver};

pub async fn run(args: &Args) -> Result<Exit> {
    let Cmd::Watch {
        files,
        interval_ms,
        misses,
        host_gone_secs,
        reboot_after_secs,
    } = &args.cmd
    else {
        unreachable!()
    };
    let files = router_files(files)?;
    // Every description must be usable at the start (a typo fails now, not
    // at the first loss); later a bad edit keeps the last good one (and is
    // logged). One router, one file: a uuid twice would be acted on twice.
    let mut first_host = None;
    let mut uuids = std::collections::BTreeMap::new();
    for f in &files {
        let spec = RouterSpec::load(f)?;
        spec.desired()?;
        let host = spec
            .vm
            .as_ref()
            .and_then(|v| v.hosts.first())
            .ok_or_else(|| {
                coded(
                    Exit::BadInput,
                    format!(
                        "{}: the description has no [vm] section with hosts",
                        f.display()
                    ),
                )
            })?;
        first_host.get_or_insert_with(|| host.clone());
        if let Some(other) = uuids.insert(spec.uuid.clone(), f.clone()) {
            return Err(coded(
                Exit::BadInput,
                format!(
                    "router {} is in both {} and {}",
                    spec.uuid,
                    other.display(),
                    f.display()
                ),
            ));
        }
    }
    let records = Records::new(&args.state_dir);
    let ctx = Ctx {
        records: &records,
        callbacks: receiver(args, first_host.as_deref().unwrap_or_default()).await?,
        quiet: true,
        credentials: credentials(args)?,
        pki: args.pki_dir.clone(),
    };
    let policy = Policy {
        misses: *misses,
        host_gone_after: Duration::from_secs(*host_gone_secs),
        reboot_after: Duration::from_secs(*reboot_after_secs),
    };
    let json = args.json;
    let emit = move |e: &Event| {
        if json {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        } else {
            println!("{}", line(e));
        }
        tracing::info!(uuid = %e.uuid, event = %e.event, host = %e.host, "{}", e.detail);
    };
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let interval = Duration::from_millis(*interval_ms);
    eprintln!(
        "watching {} router(s): a ping every {} ms, lost after {misses} missed, host gone after {host_gone_secs} s",
        files.len(),
        interval_ms
    );
    tokio::select! {
        _ = watch(&ctx, &files, policy, interval, &emit) => {}
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(Exit::Ok)
}

/// The descriptions named: a file, or a directory's `*.toml` and `*.json`.
fn router_files(named: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = vec![];
    for p in named {
        if !p.is_dir() {
            files.push(p.clone());
            continue;
        }
        let entries = std::fs::read_dir(p)
            .map_err(|e| coded(Exit::NoInput, format!("reading {}: {e}", p.display())))?;
        let mut here: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "toml" || x == "json"))
            .collect();
        here.sort();
        if here.is_empty() {
            return Err(coded(
                Exit::NoInput,
                format!(
                    "{}: no router description (*.toml, *.json) in it",
                    p.display()
                ),
            ));
        }
        files.extend(here);
    }
    Ok(files)
}

/// One event as a log line.
fn line(e: &Event) -> String {
    let secs = e.secs.map(|s| format!(" ({s:.1} s)")).unwrap_or_default();
    let status = if e.ok { "" } else { " FAILED" };
    format!(
        "{} {}{status} {} on {}: {}{secs}",
        e.uuid, e.event, e.file, e.host, e.detail
    )
}
