//! Client-authentication fixtures (issue 14): a CA with an agent's server
//! certificate, the controller's client certificate, a client certificate
//! of a foreign CA and a token, as files; and `curl` from a namespace with
//! any of them.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use common::pki::{Authority, Issued};

use crate::{Netns, TempDir};

pub struct Credentials {
    pub dir: TempDir,
    pub ca: Authority,
    pub token: String,
}

/// What a client presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// Plain HTTP to the https port.
    PlainHttp,
    /// TLS, trusting the CA, without a certificate.
    NoCertificate,
    /// A client certificate of another CA.
    ForeignCertificate,
    /// The controller's certificate.
    Controller,
}

/// What `curl` saw: the HTTP status (0: no HTTP answer), the body, and
/// curl's verbose trace (the server certificate's subject is in it).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub trace: String,
}

impl Answer {
    /// The server certificate's subject as curl printed it.
    pub fn server_subject(&self) -> Option<String> {
        self.trace
            .lines()
            .find_map(|l| l.split_once("subject: ").map(|(_, s)| s.trim().to_string()))
    }
}

impl Credentials {
    /// A CA, the server certificate `server_cn` for `server_ip` (files
    /// `server.pem`, `server.key`), the controller's (`client.*`), a
    /// foreign one (`foreign.*`), `ca.pem` and `token` (one token).
    pub fn new(server_cn: &str, server_ip: &str) -> Result<Credentials> {
        let dir = TempDir::new("pki")?;
        let ca = Authority::create("test CA")?;
        let c = Credentials {
            dir,
            ca,
            token: format!("{:032x}{:032x}", rand_u128(), rand_u128()),
        };
        c.write("ca.pem", c.ca.certificate_pem())?;
        let server = c.server(server_cn, server_ip)?;
        c.write_issued("server", &server)?;
        c.write_issued("client", &c.ca.issue_client("controller", 30)?)?;
        let other = Authority::create("foreign CA")?;
        c.write_issued("foreign", &other.issue_client("controller", 30)?)?;
        c.write("token", &format!("# test token\n{}\n", c.token))?;
        Ok(c)
    }

    /// Another server certificate of the same CA.
    pub fn server(&self, cn: &str, ip: &str) -> Result<Issued> {
        let ip: IpAddr = ip.parse().context("server address")?;
        Ok(self.ca.issue_server(cn, &[ip], &[], 30)?)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> Result<()> {
        std::fs::write(self.path(name), text).with_context(|| name.to_string())
    }

    pub fn write_issued(&self, prefix: &str, i: &Issued) -> Result<()> {
        self.write(&format!("{prefix}.pem"), &i.certificate)?;
        self.write(&format!("{prefix}.key"), &i.private_key)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// `curl` from `ns` to `https://{host_port}{path}` (http:// for
    /// [`Client::PlainHttp`]) with a JSON body when `body` is given and the
    /// token when `token` is.
    pub fn curl(
        &self,
        ns: &Netns,
        client: Client,
        host_port: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> Result<Answer> {
        self.curl_from(ns, None, client, host_port, path, body, token)
    }

    /// [`Credentials::curl`] from the source address `source` of `ns`.
    #[allow(clippy::too_many_arguments)]
    pub fn curl_from(
        &self,
        ns: &Netns,
        source: Option<&str>,
        client: Client,
        host_port: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> Result<Answer> {
        let mut args: Vec<String> =
            vec!["-sS".into(), "-v".into(), "--max-time".into(), "5".into()];
        if let Some(s) = source {
            args.extend(["--interface".into(), s.to_string()]);
        }
        let scheme = if client == Client::PlainHttp {
            "http"
        } else {
            "https"
        };
        if client != Client::PlainHttp {
            args.extend(["--cacert".into(), self.p("ca.pem")]);
        }
        let cert = match client {
            Client::Controller => Some("client"),
            Client::ForeignCertificate => Some("foreign"),
            _ => None,
        };
        if let Some(c) = cert {
            args.extend([
                "--cert".into(),
                self.p(&format!("{c}.pem")),
                "--key".into(),
                self.p(&format!("{c}.key")),
            ]);
        }
        if let Some(t) = token {
            args.extend(["-H".into(), format!("Authorization: Bearer {t}")]);
        }
        if let Some(b) = body {
            args.extend([
                "-X".into(),
                "POST".into(),
                "-H".into(),
                "Content-Type: application/json".into(),
                "--data-binary".into(),
                b.to_string(),
            ]);
        }
        args.extend(["-w".into(), "\n%{http_code}".into()]);
        args.push(format!("{scheme}://{host_port}{path}"));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        // A refused handshake is a curl failure: its trace is the answer.
        let out = ns
            .command("curl", &refs)
            .stdin(std::process::Stdio::null())
            .output()
            .context("running curl")?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
        Ok(Answer {
            status: code.trim().parse().unwrap_or(0),
            body: body.to_string(),
            trace: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

fn rand_u128() -> u128 {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("/dev/urandom");
    u128::from_le_bytes(b)
}
