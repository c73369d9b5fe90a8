//! `vrctl lab`: the seed topology on this machine (up, down, status).

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;
use vrctl::cli::{Args, LabCmd};
use vrctl::exit::Exit;

pub async fn run(args: &Args, cmd: &LabCmd) -> Result<Exit> {
    use vrctl::lab;
    match cmd {
        LabCmd::Up {
            name,
            mode,
            image_dir,
            host_only,
            ha,
        } => {
            let image_dir = image_dir.clone().unwrap_or_else(|| {
                // The repository's images/out, seen from target/<profile>/vrctl.
                let local = PathBuf::from("images/out");
                if local.is_dir() {
                    return local.canonicalize().unwrap_or(local);
                }
                lab::topo::bin_dir().join("../../images/out")
            });
            // libvirt's qemu user cannot read a checkout in root's 0700 home.
            let image_dir = common::image::readable_by_qemu(&image_dir);
            let opts = lab::Options {
                name: name.clone(),
                mode: *mode,
                image_dir,
                bin_dir: lab::topo::bin_dir(),
                host_only: *host_only,
                ha: *ha,
            };
            let report = tokio::task::spawn_blocking(move || lab::up(&opts)).await??;
            if args.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                report.print();
            }
            if !report.passed() {
                eprintln!("some lab checks failed (logs: /run/vrctl-lab/{name}/logs)");
                return Ok(Exit::No);
            }
        }
        LabCmd::Down { name } => {
            let name = name.clone();
            let removed = tokio::task::spawn_blocking(move || lab::down(&name)).await?;
            if args.json {
                println!("{}", json!({"removed": removed}));
            } else if removed.is_empty() {
                println!("nothing to remove");
            } else {
                for r in removed {
                    println!("removed {r}");
                }
            }
        }
        LabCmd::Status { name } => {
            let name = name.clone();
            let mut st = tokio::task::spawn_blocking(move || lab::status(&name)).await??;
            let passed = st["up"] == true
                && st["checks"]
                    .as_array()
                    .is_some_and(|c| c.iter().all(|r| r["pass"] == true));
            st["passed"] = json!(passed);
            if args.json {
                println!("{st}");
            } else if st["up"] == false {
                println!("lab {} is not up", st["name"].as_str().unwrap_or(""));
            } else {
                println!(
                    "lab {}: router as {}",
                    st["name"].as_str().unwrap_or(""),
                    st["router"].as_str().unwrap_or("?")
                );
                for p in st["processes"].as_array().into_iter().flatten() {
                    println!("  {}", p.as_str().unwrap_or(""));
                }
                if let Some(d) = st["domains"].as_str() {
                    print!("{d}");
                }
                for r in st["checks"].as_array().into_iter().flatten() {
                    println!(
                        "  {}  {:<58} {}",
                        if r["pass"] == true { "PASS" } else { "FAIL" },
                        r["check"].as_str().unwrap_or(""),
                        r["detail"].as_str().unwrap_or("")
                    );
                }
            }
            if !passed {
                return Ok(Exit::No);
            }
        }
    }
    Ok(Exit::Ok)
}
