//! Result tables and the BENCHMARKS.md file.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

const HEADER: &str = "# Benchmarks

Measured by the `bench` harness (DESIGN.md section 9) on the machine named in
each section. Run as root from the workspace root:

```text
cargo run --release -p bench -- nat|dhcp|bridge|lb|ha [--n N] [--out BENCHMARKS.md] [--no-build]
```

Each area rewrites only its own section (between `<!-- AREA:begin -->` and
`<!-- AREA:end -->`); timing claims live here, not in timed unit tests.
A budget that fails is reported as FAIL and makes the harness exit with 1.
";

/// One row: what was measured, the value, the budget and the verdict
/// (`None`: information only).
pub struct Row {
    pub measure: String,
    pub value: String,
    pub budget: String,
    pub pass: Option<bool>,
}

pub struct Table {
    pub title: String,
    pub rows: Vec<Row>,
}

impl Table {
    pub fn new(title: &str) -> Table {
        Table {
            title: title.into(),
            rows: vec![],
        }
    }

    pub fn info(&mut self, measure: impl Into<String>, value: impl Into<String>) {
        self.rows.push(Row {
            measure: measure.into(),
            value: value.into(),
            budget: "-".into(),
            pass: None,
        });
    }

    pub fn check(
        &mut self,
        measure: impl Into<String>,
        value: impl Into<String>,
        budget: impl Into<String>,
        pass: bool,
    ) {
        self.rows.push(Row {
            measure: measure.into(),
            value: value.into(),
            budget: budget.into(),
            pass: Some(pass),
        });
    }
}

pub struct Section {
    pub title: String,
    pub intro: String,
    pub tables: Vec<Table>,
    pub notes: Vec<String>,
}

impl Section {
    pub fn failed(&self) -> bool {
        self.tables
            .iter()
            .flat_map(|t| &t.rows)
            .any(|r| r.pass == Some(false))
    }

    pub fn markdown(&self) -> String {
        let mut s = format!("## {}\n\n{}\n", self.title, self.intro.trim_end());
        for t in &self.tables {
            let _ = write!(
                s,
                "\n### {}\n\n| measure | value | budget | pass/fail |\n|---|---|---|---|\n",
                t.title
            );
            for r in &t.rows {
                let verdict = match r.pass {
                    None => "info",
                    Some(true) => "pass",
                    Some(false) => "**FAIL**",
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {verdict} |",
                    r.measure, r.value, r.budget
                );
            }
        }
        if !self.notes.is_empty() {
            s.push('\n');
            for n in &self.notes {
                let _ = writeln!(s, "* {n}");
            }
        }
        s
    }
}

/// `nproc`, `uname -r` and today's date (UTC), for the section's intro.
pub fn machine() -> String {
    let cmd = |prog: &str, args: &[&str]| {
        Command::new(prog)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "Machine: {} cores (`nproc`), kernel {} (`uname -r`), measured {} (UTC).",
        cmd("nproc", &[]),
        cmd("uname", &["-r"]),
        cmd("date", &["-u", "+%Y-%m-%d %H:%M"]),
    )
}

/// Replaces (or appends) the `area` section of `path`, creating the file
/// with its header when missing.
pub fn write_section(path: &Path, area: &str, body: &str) -> Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HEADER.to_string(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let begin = format!("<!-- {area}:begin -->");
    let end = format!("<!-- {area}:end -->");
    let block = format!("{begin}\n{}\n{end}", body.trim_end());
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{block}{}", &old[..b], &old[e + end.len()..])
        }
        _ => format!("{}\n{block}\n", old.trim_end()),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}
