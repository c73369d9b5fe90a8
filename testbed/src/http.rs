//! HTTP requests with curl from inside a namespace.

use anyhow::{Context, Result, anyhow};

use crate::command::run_cmd;
use crate::netns::Netns;

/// Makes an HTTP request with curl from inside `ns`; returns the status
/// code and body. Any status is `Ok`; only transport failures are errors.
pub fn http(
    ns: &Netns,
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<(u16, String)> {
    let mut args: Vec<String> = ["-sS", "-m", "30", "-X", method, "-w", "\n%{http_code}", url]
        .map(String::from)
        .to_vec();
    let typed = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    let json = [("Content-Type", "application/json")];
    let extra = if body.is_some() && !typed {
        &json[..]
    } else {
        &[]
    };
    for (k, v) in headers.iter().chain(extra) {
        args.extend(["-H".to_string(), format!("{k}: {v}")]);
    }
    if body.is_some() {
        args.extend(["--data-binary".to_string(), "@-".to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_cmd(&mut ns.command("curl", &args), body.map(str::as_bytes))
        .with_context(|| format!("{method} {url} from {}", ns.name()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text
        .rsplit_once('\n')
        .ok_or_else(|| anyhow!("odd curl output: {text}"))?;
    Ok((
        code.trim()
            .parse()
            .with_context(|| format!("odd curl status in: {text}"))?,
        body.to_string(),
    ))
}

/// `POST url` with a JSON body from inside `ns` (see [`http`]).
pub fn http_post(
    ns: &Netns,
    url: &str,
    json_body: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String)> {
    http(ns, "POST", url, Some(json_body), headers)
}

/// `GET url` from inside `ns` (see [`http`]).
pub fn http_get(ns: &Netns, url: &str) -> Result<(u16, String)> {
    http(ns, "GET", url, None, &[])
}
