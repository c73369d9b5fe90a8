//! vrctl's exit statuses: one table for every command, so a script can
//! tell "there are changes" from "the description is wrong" from "the
//! agent is down" without reading messages. The codes above 63 are the
//! BSD `sysexits.h` ones; 2-7 are the router diagnoses.

use serde_json::{Value, json};

use crate::client::ClientError;
use crate::credentials::CredentialsError;
use crate::diagnose::{self, Diagnosis};
use crate::lab::LabError;
use crate::pki::PkiCmdError;
use crate::router::RouterError;
use crate::router_tls::RouterTlsError;
use crate::spec::SpecError;

/// Why vrctl exits; the discriminant is the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// Not a failure but a "no": `vr diff` found changes; `lab up` or
    /// `lab status`: the lab is not up or a check failed.
    No = 1,
    NoHostFits = 2,
    OsNotBooted = 3,
    MgmtUnreachable = 4,
    AgentMissing = 5,
    WrongVersion = 6,
    Refused = 7,
    /// EX_USAGE: the command line is wrong.
    Usage = 64,
    /// EX_DATAERR: the router description or a JSON body is wrong.
    BadInput = 65,
    /// EX_NOINPUT: an input file (or the router's disk) is not there.
    NoInput = 66,
    /// EX_UNAVAILABLE: an agent or host did not do what was asked.
    AgentFailed = 69,
    /// EX_SOFTWARE: a bug in vrctl.
    Internal = 70,
    /// EX_OSERR: a local system operation failed (the lab's topology,
    /// qemu-img, the state directory).
    System = 71,
    /// EX_CANTCREAT: refused to overwrite a file (`pki` without --force).
    CantCreate = 73,
    /// EX_CONFIG: vrctl's own credentials or PKI directory are unusable.
    Config = 78,
}

/// The table as `--help` and the man page show it (the README has it too).
pub const TABLE: &str = "\
Exit status:
  0   success; `vr diff`: no changes; `lab status`: up, every check passes
  1   `vr diff`: there are changes; `lab up`/`lab status`: not up or a check failed
  2   no host can fit the router
  3   the router's OS did not boot
  4   the router's management IP is unreachable
  5   the router's agent is missing
  6   the agent is the wrong version
  7   TLS or the token was refused, either way (vrctl or the agent)
  64  usage: the command line is wrong
  65  the router description or a JSON body is wrong (syntax, an unknown key, a bad entry)
  66  an input file is not there (or the router's disk, for `vr start`)
  69  an agent or host failed the request (unreachable, an HTTP or command error)
  70  internal error
  71  a local system operation failed (lab topology, qemu-img, the state directory)
  73  refused to overwrite a file (`pki ... --force` replaces it)
  78  vrctl's credentials or PKI directory cannot be used
With --json every run prints one JSON document on stdout, an error as
{\"error\": {\"code\", \"kind\", \"message\", ...}}; the message also goes to stderr.";

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The name in `--json` errors.
    pub fn kind(self) -> &'static str {
        match self {
            Exit::Ok => "ok",
            Exit::No => "no",
            Exit::NoHostFits => "no_host_fits",
            Exit::OsNotBooted => "os_not_booted",
            Exit::MgmtUnreachable => "management_ip_unreachable",
            Exit::AgentMissing => "agent_missing",
            Exit::WrongVersion => "wrong_version",
            Exit::Refused => "refused",
            Exit::Usage => "usage",
            Exit::BadInput => "bad_input",
            Exit::NoInput => "no_input",
            Exit::AgentFailed => "agent_failed",
            Exit::Internal => "internal",
            Exit::System => "system",
            Exit::CantCreate => "cant_create",
            Exit::Config => "config",
        }
    }
}

/// An error whose status the code that raised it decided.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Coded {
    pub exit: Exit,
    pub message: String,
    /// More for the `--json` error (its keys join `code`, `kind`...).
    pub detail: Value,
}

pub fn coded(exit: Exit, message: impl Into<String>) -> anyhow::Error {
    Coded {
        exit,
        message: message.into(),
        detail: Value::Null,
    }
    .into()
}

fn diagnosis(d: &Diagnosis) -> Exit {
    match d {
        Diagnosis::NoHostFits { .. } => Exit::NoHostFits,
        Diagnosis::OsNotBooted { .. } => Exit::OsNotBooted,
        Diagnosis::MgmtUnreachable { .. } => Exit::MgmtUnreachable,
        Diagnosis::AgentMissing { .. } => Exit::AgentMissing,
        Diagnosis::WrongVersion { .. } => Exit::WrongVersion,
        Diagnosis::Refused { .. } => Exit::Refused,
    }
}

fn client(e: &ClientError) -> Exit {
    match e {
        ClientError::Tls { .. } | ClientError::Unauthorized { .. } => Exit::Refused,
        ClientError::Http { status: 403, .. } => Exit::Refused,
        ClientError::Receiver(_) => Exit::System,
        _ => Exit::AgentFailed,
    }
}

fn spec(e: &SpecError) -> Exit {
    match e {
        SpecError::Read { .. } => Exit::NoInput,
        _ => Exit::BadInput,
    }
}

fn router(e: &RouterError) -> Exit {
    match e {
        RouterError::Spec(s) => spec(s),
        RouterError::Diagnosis(d) => diagnosis(d),
        RouterError::Agent(c) => client(c),
        RouterError::Description(_) => Exit::BadInput,
        RouterError::Missing(_) => Exit::NoInput,
        RouterError::Unavailable(_) | RouterError::Apply { .. } => Exit::AgentFailed,
        RouterError::Config(_) | RouterError::Tls(_) => Exit::Config,
        RouterError::Io { .. } | RouterError::System(_) => Exit::System,
    }
}

/// The status for an error: the first error in its chain vrctl knows.
pub fn classify(e: &anyhow::Error) -> Exit {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<Coded>() {
            return c.exit;
        }
        if let Some(d) = cause.downcast_ref::<Diagnosis>() {
            return diagnosis(d);
        }
        if let Some(r) = cause.downcast_ref::<RouterError>() {
            return router(r);
        }
        if let Some(s) = cause.downcast_ref::<SpecError>() {
            return spec(s);
        }
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            return client(c);
        }
        if cause.downcast_ref::<CredentialsError>().is_some()
            || cause.downcast_ref::<RouterTlsError>().is_some()
        {
            return Exit::Config;
        }
        if let Some(p) = cause.downcast_ref::<PkiCmdError>() {
            return match p {
                PkiCmdError::Refused(_) => Exit::CantCreate,
                PkiCmdError::Pki(_) => Exit::Config,
            };
        }
        if cause.downcast_ref::<LabError>().is_some()
            || cause.downcast_ref::<std::io::Error>().is_some()
        {
            return Exit::System;
        }
    }
    Exit::Internal
}

/// The `--json` form of an error: `{"error": {code, kind, message, ...}}`,
/// with the diagnosis' own kind, and the steps of a failed apply.
pub fn to_json(e: &anyhow::Error, exit: Exit) -> Value {
    let mut err = json!({
        "code": exit.code(),
        "kind": exit.kind(),
        "message": format!("{e:#}"),
    });
    for cause in e.chain() {
        if let Some(Value::Object(more)) = cause.downcast_ref::<Coded>().map(|c| &c.detail) {
            for (k, v) in more {
                err[k] = v.clone();
            }
        }
        let d = cause.downcast_ref::<Diagnosis>().or_else(|| {
            match cause.downcast_ref::<RouterError>() {
                Some(RouterError::Diagnosis(d)) => Some(d),
                _ => None,
            }
        });
        if let Some(d) = d {
            err["diagnosis"] = diagnose::to_json(d)["diagnosis"].clone();
            break;
        }
    }
    json!({ "error": err })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_every_status() {
        for exit in [
            Exit::Ok,
            Exit::No,
            Exit::NoHostFits,
            Exit::OsNotBooted,
            Exit::MgmtUnreachable,
            Exit::AgentMissing,
            Exit::WrongVersion,
            Exit::Refused,
            Exit::Usage,
            Exit::BadInput,
            Exit::NoInput,
            Exit::AgentFailed,
            Exit::Internal,
            Exit::System,
            Exit::CantCreate,
            Exit::Config,
        ] {
            let row = format!("\n  {:<4}", exit.code());
            assert!(TABLE.contains(&row), "{exit:?} missing from the table");
        }
    }

    #[test]
    fn errors_are_classified_through_their_context() {
        let e = anyhow::Error::from(SpecError::Unknown {
            path: "r.toml".into(),
            key: "portFowards".into(),
            at: "at the top level".into(),
            hint: String::new(),
        })
        .context("loading");
        assert_eq!(classify(&e), Exit::BadInput);
        let e = anyhow::Error::from(RouterError::Diagnosis(Diagnosis::Refused {
            url: "u".into(),
            why: "w".into(),
        }));
        assert_eq!(classify(&e), Exit::Refused);
        assert_eq!(to_json(&e, Exit::Refused)["error"]["diagnosis"], "refused");
        assert_eq!(classify(&anyhow::anyhow!("what")), Exit::Internal);
    }

    /// A failed apply's one JSON document: the error, with the steps.
    #[test]
    fn a_coded_errors_detail_joins_its_json() {
        let e: anyhow::Error = Coded {
            exit: Exit::AgentFailed,
            message: "apply stopped at /synceip: no".into(),
            detail: json!({"steps": [{"path": "/init", "ok": true}]}),
        }
        .into();
        let v = to_json(&e, classify(&e));
        assert_eq!(v["error"]["code"], 69, "{v}");
        assert_eq!(v["error"]["steps"][0]["path"], "/init", "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("/synceip"));
    }
}
