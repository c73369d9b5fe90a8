//! Benchmark harness (DESIGN.md section 9). Run as root:
//!
//! ```text
//! cargo run --release -p bench -- nat|dhcp|bridge|lb|ha [--n N] [--out BENCHMARKS.md] [--no-build]
//! ```
//!
//! `--n` is the scale of the nat area (port forwards and EIPs each, 10 000
//! unless told); a scale other than the default gets its own section,
//! `nat-N`, so BENCHMARKS.md carries both.
//!
//! It builds the agent it measures (`vr-agent` for nat, dhcp, lb and ha,
//! `kvm-agent` for bridge; `ha` needs keepalived and conntrackd) in release (unless `--no-build`), measures in
//! namespaces of its own, prints the tables and replaces its section of
//! BENCHMARKS.md (between `<!-- AREA:begin -->` and `<!-- AREA:end -->`).
//! The exit status is 1 when a budget fails (the file is written anyway).

mod bridge;
mod dhcp;
mod ha;
mod lab;
mod lb;
mod nat;
mod report;
mod stats;
mod traffic;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: bench nat|dhcp|bridge|lb|ha [--n N] [--out FILE] [--no-build]";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut area = None;
    let mut out = None;
    let mut build = true;
    let mut n = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = Some(PathBuf::from(args.next().context(USAGE)?)),
            "--no-build" => build = false,
            "--n" => {
                let v = args.next().context(USAGE)?;
                n = Some(
                    v.parse::<usize>()
                        .ok()
                        .filter(|n| (1..=nat::MAX_N).contains(n))
                        .with_context(|| {
                            format!("--n {v:?}: a number of rules, 1 to {}", nat::MAX_N)
                        })?,
                );
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ if area.is_none() && !a.starts_with('-') => area = Some(a),
            _ => bail!("unexpected argument {a:?}\n{USAGE}"),
        }
    }
    let root = workspace_root();
    let out = out.unwrap_or_else(|| root.join("BENCHMARKS.md"));
    if let Some(reason) = testbed::unprivileged_reason() {
        bail!("the benchmarks need root and network namespaces: {reason}");
    }
    if n.is_some() && area.as_deref() != Some("nat") {
        bail!("--n applies to the nat area only\n{USAGE}");
    }
    let n = n.unwrap_or(nat::DEFAULT_N);
    let section = match area.as_deref() {
        Some("nat") => {
            let agent = release_binary(&root, build, "vr-agent")?;
            nat::run(&agent, n)?
        }
        Some("dhcp") => {
            let agent = release_binary(&root, build, "vr-agent")?;
            dhcp::run(&agent)?
        }
        Some("lb") => {
            let agent = release_binary(&root, build, "vr-agent")?;
            lb::run(&agent)?
        }
        Some("ha") => {
            let agent = release_binary(&root, build, "vr-agent")?;
            ha::run(&agent)?
        }
        Some("bridge") => {
            let agent = release_binary(&root, build, "kvm-agent")?;
            bridge::run(&agent)?
        }
        _ => bail!("{USAGE}"),
    };
    let mut area = area.unwrap_or_default();
    if area == "nat" && n != nat::DEFAULT_N {
        area = format!("nat-{n}");
    }
    println!("{}", section.markdown());
    report::write_section(&out, &area, &section.markdown())?;
    println!("wrote section {area} of {}", out.display());
    if section.failed() {
        eprintln!("some budgets FAILED");
        std::process::exit(1);
    }
    Ok(())
}

/// The workspace root: this package's parent directory.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `target/release/<name>` (package and binary of the same name), built
/// first unless told not to.
fn release_binary(root: &Path, build: bool, name: &str) -> Result<PathBuf> {
    if build {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        eprintln!("building {name} (release)...");
        let st = Command::new(cargo)
            .args(["build", "--release", "-p", name, "--bin", name])
            .current_dir(root)
            .status()
            .context("running cargo build")?;
        if !st.success() {
            bail!("cargo build --release -p {name} failed ({st})");
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("release").join(name);
    if !bin.exists() {
        bail!(
            "{} is missing: run `cargo build --release -p {name}`",
            bin.display()
        );
    }
    Ok(bin)
}
