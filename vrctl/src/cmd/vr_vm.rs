//! `vrctl vr create|start|stop|reboot|destroy|recreate|sync|console|
//! rotate-cert`: the router's life as a VM, from its description.

use anyhow::Result;
use serde_json::json;
use vrctl::cli::{Args, VrCmd};
use vrctl::exit::{Exit, coded};
use vrctl::router::{Ctx, Records};
use vrctl::spec::RouterSpec;

use super::{console_text, credentials, fill_node_address, receiver};

fn print_up(args: &Args, what: &str, up: &vrctl::router::Up) {
    if args.json {
        println!("{}", serde_json::to_string(up).unwrap_or_default());
    } else {
        println!(
            "{what}: on {}, agent version {}, ready {:.1} s after the start, {} commands applied",
            up.host,
            up.version,
            up.boot_secs,
            up.steps.len()
        );
    }
}

/// The lifecycle commands (create, start, ... console) on a description.
pub async fn run(args: &Args, cmd: &VrCmd, file: &std::path::Path) -> Result<()> {
    let mut spec = RouterSpec::load(file)?;
    fill_node_address(&mut spec);
    let first = spec
        .vm
        .as_ref()
        .and_then(|v| v.hosts.first().cloned())
        .ok_or_else(|| {
            coded(
                Exit::BadInput,
                format!(
                    "{}: the description has no [vm] section with hosts",
                    file.display()
                ),
            )
        })?;
    let records = Records::new(&args.state_dir);
    let ctx = Ctx {
        records: &records,
        callbacks: receiver(args, &first).await?,
        quiet: args.json,
        credentials: credentials(args)?,
        pki: args.pki_dir.clone(),
    };
    match cmd {
        VrCmd::Create { .. } => print_up(args, "created", &ctx.create(&spec).await?),
        VrCmd::Start { host, .. } => {
            print_up(args, "started", &ctx.start(&spec, host.as_deref()).await?)
        }
        VrCmd::Reboot { .. } => print_up(args, "rebooted", &ctx.reboot(&spec).await?),
        VrCmd::Recreate { .. } => print_up(args, "re-created", &ctx.recreate(&spec).await?),
        VrCmd::Stop { grace, .. } => {
            ctx.stop(&spec, *grace).await?;
            if args.json {
                println!("{}", json!({"uuid": spec.uuid, "stopped": true}));
            } else {
                println!("stopped {}", spec.uuid);
            }
        }
        VrCmd::Destroy { .. } => {
            ctx.destroy(&spec).await?;
            if args.json {
                println!("{}", json!({"uuid": spec.uuid, "destroyed": true}));
            } else {
                println!("destroyed {} (VM, disk and record)", spec.uuid);
            }
        }
        VrCmd::Sync { host_gone, .. } => {
            let r = ctx.sync(&spec, *host_gone).await?;
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("{}  {}  on {}", r.uuid, r.state, r.host);
            }
        }
        VrCmd::Console { .. } => {
            let text = console_text(&ctx.console(&spec).await?);
            if args.json {
                println!("{}", json!({"uuid": spec.uuid, "console": text}));
            } else {
                print!("{text}");
            }
        }
        VrCmd::RotateCert { .. } => {
            let r = ctx.rotate_cert(&spec).await?;
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{}: new certificate serial {} ({}), was {}; in force for new connections",
                    r.uuid,
                    r.serial,
                    r.subject,
                    if r.old_serial.is_empty() {
                        "not recorded"
                    } else {
                        &r.old_serial
                    }
                );
            }
        }
        _ => unreachable!(),
    }
    Ok(())
}
