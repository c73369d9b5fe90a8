//! `vrctl pki`: the controller's small CA on disk, the certificates it
//! issues and bearer tokens (issue 14).
//!
//! A PKI directory holds the CA (`ca.pem`, `ca.key` 0600, `ca.name`) and
//! vrctl's own client certificate (`vrctl.pem`, `vrctl.key` 0600), which
//! `--pki-dir` uses when `--cert/--key` are not given. With `--pki-dir`,
//! vrctl also issues each router it creates a server certificate of its
//! own (see `router_tls`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use common::pki::{Authority, PkiError, write_private};

/// vrctl's client certificate in a PKI directory.
pub const CLIENT_CERT: &str = "vrctl.pem";
pub const CLIENT_KEY: &str = "vrctl.key";
/// Leaves last a year unless told otherwise.
pub const DEFAULT_DAYS: u32 = 365;

#[derive(Debug, thiserror::Error)]
pub enum PkiCmdError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("{0}")]
    Refused(String),
}

#[derive(Debug, clap::Subcommand)]
pub enum PkiCmd {
    /// A new CA in DIR, and vrctl's own client certificate beside it
    /// (vrctl.pem, vrctl.key).
    Init {
        /// The PKI directory.
        #[arg(long)]
        dir: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "vrctl CA")]
        name: String,
        /// Replace an existing CA (every certificate it issued stops being
        /// trusted once the agents get the new CA).
        #[arg(long)]
        force: bool,
    },
    /// A server certificate for an agent (PREFIX.pem, PREFIX.key 0600):
    /// `--ip` the addresses clients reach it at.
    Server {
        /// The PKI directory whose CA signs it.
        #[arg(long)]
        dir: PathBuf,
        /// The certificate's common name.
        #[arg(long)]
        name: String,
        /// An address clients reach the agent at (repeat for more).
        #[arg(long = "ip", required = true)]
        ips: Vec<IpAddr>,
        /// A DNS name clients reach the agent by (repeat for more).
        #[arg(long = "dns")]
        dns_names: Vec<String>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = DEFAULT_DAYS)]
        days: u32,
        /// PREFIX: the files written are PREFIX.pem and PREFIX.key.
        #[arg(long)]
        out: PathBuf,
    },
    /// A client certificate (extended key usage clientAuth only): PREFIX.pem,
    /// PREFIX.key 0600.
    Client {
        /// The PKI directory whose CA signs it.
        #[arg(long)]
        dir: PathBuf,
        /// The certificate's common name.
        #[arg(long)]
        name: String,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = DEFAULT_DAYS)]
        days: u32,
        /// PREFIX: the files written are PREFIX.pem and PREFIX.key.
        #[arg(long)]
        out: PathBuf,
    },
    /// A new random bearer token (64 hex characters) in FILE (0600).
    /// `--append` adds it as another line (rotation: agents accept every
    /// line, vrctl sends the first).
    Token {
        /// The token file.
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long, conflicts_with = "append")]
        force: bool,
        /// Add the token as another line of an existing file.
        #[arg(long)]
        append: bool,
    },
}

/// Runs one `vrctl pki` command; the files it wrote.
pub fn run(cmd: &PkiCmd) -> Result<Vec<PathBuf>, PkiCmdError> {
    match cmd {
        PkiCmd::Init { dir, name, force } => init(dir, name, *force),
        PkiCmd::Server {
            dir,
            name,
            ips,
            dns_names,
            days,
            out,
        } => {
            let ca = Authority::load(dir)?;
            let issued = ca.issue_server(name, ips, dns_names, *days)?;
            write_pair(out, &issued)
        }
        PkiCmd::Client {
            dir,
            name,
            days,
            out,
        } => {
            let ca = Authority::load(dir)?;
            write_pair(out, &ca.issue_client(name, *days)?)
        }
        PkiCmd::Token { out, force, append } => {
            token(out, *force, *append)?;
            Ok(vec![out.clone()])
        }
    }
}

/// A CA in `dir` and vrctl's client certificate; refuses to replace an
/// existing CA unless `force`.
pub fn init(dir: &Path, name: &str, force: bool) -> Result<Vec<PathBuf>, PkiCmdError> {
    let existing: Vec<_> = ["ca.pem", "ca.key"]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .collect();
    if !existing.is_empty() && !force {
        return Err(PkiCmdError::Refused(format!(
            "{} already holds a CA ({}): --force replaces it",
            dir.display(),
            existing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let ca = Authority::create(name)?;
    ca.save(dir)?;
    let client = ca.issue_client("vrctl", DEFAULT_DAYS)?;
    write_private(&dir.join(CLIENT_CERT), &client.certificate)?;
    write_private(&dir.join(CLIENT_KEY), &client.private_key)?;
    Ok(["ca.pem", "ca.key", "ca.name", CLIENT_CERT, CLIENT_KEY]
        .iter()
        .map(|f| dir.join(f))
        .collect())
}

/// `PREFIX.pem` and `PREFIX.key`.
fn write_pair(prefix: &Path, issued: &common::pki::Issued) -> Result<Vec<PathBuf>, PkiCmdError> {
    let with = |ext: &str| {
        let mut s = prefix.as_os_str().to_os_string();
        s.push(ext);
        PathBuf::from(s)
    };
    let (pem, key) = (with(".pem"), with(".key"));
    write_private(&key, &issued.private_key)?;
    write_private(&pem, &issued.certificate)?;
    Ok(vec![pem, key])
}

/// 32 random bytes as hex.
pub fn new_token() -> Result<String, PkiCmdError> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| PkiCmdError::Refused(format!("/dev/urandom: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn token(out: &Path, force: bool, append: bool) -> Result<(), PkiCmdError> {
    let old = std::fs::read_to_string(out).ok();
    if old.is_some() && !force && !append {
        return Err(PkiCmdError::Refused(format!(
            "{} exists: --append adds a token, --force replaces the file",
            out.display()
        )));
    }
    let mut text = match (append, old) {
        (true, Some(old)) if !old.is_empty() => {
            if old.ends_with('\n') {
                old
            } else {
                format!("{old}\n")
            }
        }
        _ => String::new(),
    };
    text.push_str(&new_token()?);
    text.push('\n');
    write_private(out, &text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn init_refuses_to_replace_a_ca_and_keys_are_private() {
        let dir = std::env::temp_dir().join(format!("vrctl-pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let files = init(&dir, "test CA", false).unwrap();
        assert_eq!(files.len(), 5);
        let ca = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
        let e = init(&dir, "test CA", false).unwrap_err().to_string();
        assert!(
            e.contains("already holds a CA") && e.contains("--force"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(dir.join("ca.pem")).unwrap(), ca);
        init(&dir, "test CA", true).unwrap();
        assert_ne!(std::fs::read_to_string(dir.join("ca.pem")).unwrap(), ca);
        for f in ["ca.key", CLIENT_KEY] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        let out = dir.join("agent");
        let files = run(&PkiCmd::Server {
            dir: dir.clone(),
            name: "kvm".into(),
            ips: vec!["10.0.0.21".parse().unwrap()],
            dns_names: vec![],
            days: 30,
            out: out.clone(),
        })
        .unwrap();
        assert_eq!(files, vec![dir.join("agent.pem"), dir.join("agent.key")]);
        assert_eq!(mode(&dir.join("agent.key")), 0o600);
        // The server certificate goes with the CA's client certificate.
        let pem = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        common::tls::server_config(&common::tls::ServerPem {
            certificate: pem("agent.pem"),
            private_key: pem("agent.key"),
            client_ca: pem("ca.pem"),
        })
        .unwrap();
        common::tls::client_config(&pem("ca.pem"), &pem(CLIENT_CERT), &pem(CLIENT_KEY)).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tokens_are_new_private_and_appended() {
        let dir = std::env::temp_dir().join(format!("vrctl-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("token");
        let _ = std::fs::remove_file(&f);
        token(&f, false, false).unwrap();
        assert_eq!(mode(&f), 0o600);
        let first = common::token::parse(&std::fs::read_to_string(&f).unwrap()).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].len(), 64);
        assert!(
            token(&f, false, false)
                .unwrap_err()
                .to_string()
                .contains("--append")
        );
        token(&f, false, true).unwrap();
        let both = common::token::parse(&std::fs::read_to_string(&f).unwrap()).unwrap();
        assert_eq!(both.len(), 2);
        assert_eq!(both[0], first[0]);
        assert_ne!(both[1], first[0]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
