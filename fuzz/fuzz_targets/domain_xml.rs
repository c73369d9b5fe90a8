//! kvm-agent's domain XML renderer (plan::domain::plan) over StartVmCmd
//! bodies: never panics, and what it renders is well-formed XML (balanced
//! elements, quoted attributes, escaped text, no control characters), so a
//! name or path from the node cannot inject elements into the domain.
#![no_main]

use kvm_agent::plan::domain::{self, DomainOptions, DomainType};
use kvm_agent::wire::vm::StartVmCmd;
use libfuzzer_sys::fuzz_target;

/// A small well-formedness check of the renderer's output.
fn check_xml(xml: &str) -> Result<(), String> {
    if let Some(c) = xml.chars().find(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')) {
        return Err(format!("control character {c:?}"));
    }
    let entity_ok = |s: &str| {
        s.split('&').skip(1).all(|rest| {
            ["amp;", "lt;", "gt;", "quot;", "apos;"].iter().any(|e| rest.starts_with(e))
                || rest.starts_with('#')
        })
    };
    let mut stack: Vec<String> = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find('<') {
        let text = &rest[..i];
        if text.contains('>') || !entity_ok(text) {
            return Err(format!("unescaped text {text:?}"));
        }
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix("!--") {
            let end = r.find("-->").ok_or("unterminated comment")?;
            rest = &r[end + 3..];
            continue;
        }
        if let Some(r) = rest.strip_prefix('?') {
            let end = r.find("?>").ok_or("unterminated declaration")?;
            rest = &r[end + 2..];
            continue;
        }
        // A tag: up to the first '>' outside quotes.
        let (mut quote, mut end) = (None, None);
        for (j, c) in rest.char_indices() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (Some(_), '<') => return Err("'<' in an attribute".into()),
                (None, '>') => {
                    end = Some(j);
                    break;
                }
                _ => {}
            }
        }
        let end = end.ok_or("unterminated tag")?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if !entity_ok(tag) {
            return Err(format!("unescaped '&' in tag {tag:?}"));
        }
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().unwrap_or("").to_string();
            if name.is_empty() {
                return Err("empty tag".into());
            }
            stack.push(name);
        }
        if stack.is_empty() && !rest.trim().is_empty() && !rest.trim_start().starts_with('<') {
            return Err("text after the root".into());
        }
    }
    if !entity_ok(rest) || rest.contains('>') {
        return Err(format!("unescaped text {rest:?}"));
    }
    if !stack.is_empty() {
        return Err(format!("unclosed {stack:?}"));
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Ok(cmd) = common::agent::decode_exact::<StartVmCmd>(data) else {
        return;
    };
    let opts = DomainOptions {
        domain_type: DomainType::Kvm,
        console_log_dir: "/var/log/zstack".into(),
        vnc_listen: "0.0.0.0".into(),
    };
    if let Ok(plan) = domain::plan(&cmd, &opts) {
        if let Err(e) = check_xml(&plan.xml) {
            panic!("ill-formed domain XML ({e}):\n{}", plan.xml);
        }
        let _ = domain::interfaces(&plan.xml);
        let _ = domain::with_boot_devs(&plan.xml, &cmd.boot_dev);
    }
});
