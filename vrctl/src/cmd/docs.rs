//! `vrctl pki`, `vrctl completions` and `vrctl man`: files and text that
//! do not talk to an agent.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap_complete::Shell;
use serde_json::json;
use vrctl::cli::Args;
use vrctl::exit::{Exit, coded};
use vrctl::pki::PkiCmd;

/// Prints the files written, one a line (a JSON list with --json).
fn print_wrote(args: &Args, wrote: &[PathBuf]) {
    if args.json {
        println!("{}", json!({ "wrote": wrote }));
    } else {
        for f in wrote {
            println!("wrote {}", f.display());
        }
    }
}

pub fn pki(args: &Args, cmd: &PkiCmd) -> Result<Exit> {
    let wrote = vrctl::pki::run(cmd)?;
    print_wrote(args, &wrote);
    Ok(Exit::Ok)
}

pub fn completions(args: &Args, shell: Shell) -> Result<Exit> {
    let script = vrctl::cli::completions(shell);
    if args.json {
        println!(
            "{}",
            json!({ "shell": shell.to_string(), "script": script })
        );
    } else {
        print!("{script}");
    }
    Ok(Exit::Ok)
}

/// The man pages into `dir`, or the main page on stdout.
pub fn man(args: &Args, dir: Option<&Path>) -> Result<Exit> {
    let Some(dir) = dir else {
        let page = vrctl::cli::man_page()?;
        if args.json {
            println!("{}", json!({ "page": String::from_utf8_lossy(&page) }));
        } else {
            std::io::Write::write_all(&mut std::io::stdout(), &page)?;
        }
        return Ok(Exit::Ok);
    };
    let wrote = vrctl::cli::write_man_pages(dir)
        .map_err(|e| coded(Exit::CantCreate, format!("{}: {e}", dir.display())))?;
    print_wrote(args, &wrote);
    Ok(Exit::Ok)
}
