//! The lab's report: one row per check, what `lab up` prints and leaves
//! in `<state>/lab.json`.

use serde::{Deserialize, Serialize};

use super::{Names, secure};

/// One line of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub check: String,
    pub pass: bool,
    pub detail: String,
}

/// What `lab up` leaves in `<state>/lab.json`, and prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub name: String,
    /// "vm (qemu)", "vm (kvm)" or "namespace".
    pub router: String,
    /// Two hosts and an HA pair (`--ha`).
    #[serde(default)]
    pub ha: bool,
    /// Why the router is not a VM, when it is not.
    pub why_not_vm: Option<String>,
    /// The first host's libvirt (VM mode).
    pub libvirt_uri: Option<String>,
    /// Each host's, in order.
    #[serde(default)]
    pub libvirt_uris: Vec<String>,
    pub router_spec: String,
    /// Each router's description (two with `--ha`).
    #[serde(default)]
    pub router_specs: Vec<String>,
    pub rows: Vec<Row>,
    pub seconds: f64,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.rows.iter().all(|r| r.pass)
    }

    pub fn print(&self) {
        println!();
        println!(
            "lab {}: {} as {}",
            self.name,
            if self.ha { "HA pair" } else { "router" },
            self.router
        );
        if let Some(why) = &self.why_not_vm {
            println!("  (not a VM: {why})");
        }
        for r in &self.rows {
            println!(
                "  {}  {:<58} {}",
                if r.pass { "PASS" } else { "FAIL" },
                r.check,
                r.detail
            );
        }
        let failed = self.rows.iter().filter(|r| !r.pass).count();
        println!(
            "{} of {} checks pass ({:.0} s). Router description: {}",
            self.rows.len() - failed,
            self.rows.len(),
            self.seconds,
            if self.router_specs.len() > 1 {
                self.router_specs.join(", ")
            } else {
                self.router_spec.clone()
            }
        );
        let me = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "vrctl".into());
        let named = if self.name == "vrlab" {
            String::new()
        } else {
            format!(" --name {}", self.name)
        };
        println!("The lab stays up.");
        let state = Names::new(&self.name).state;
        println!(
            "  as the controller: VRCTL_PKI_DIR={} VRCTL_TOKEN_FILE={} {me} --netns {}-mn vr status {}",
            secure::pki_dir(&state).display(),
            secure::token_file(&state).display(),
            self.name,
            self.router_spec
        );
        println!("  checks again:      {me} lab status{named}");
        println!("  remove it:         {me} lab down{named}");
    }
}

pub(super) fn row(check: &str, r: Result<String, String>) -> Row {
    let (pass, detail) = match r {
        Ok(d) => (true, d),
        Err(e) => (false, e),
    };
    Row {
        check: check.into(),
        pass,
        detail,
    }
}
