//! `vrctl vr status`: the router's agent (version, initialised, what it
//! holds) and, with a description that has a [vm] section, its VM's state
//! on its host.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::{Value, json};
use vrctl::cli::Args;
use vrctl::exit::{Exit, coded};
use vrctl::router::{Ctx, Records};
use vrctl::spec::RouterSpec;

use super::{client, credentials, handshake};

pub async fn run(args: &Args, agent: &Option<String>, file: &Option<PathBuf>) -> Result<Exit> {
    let spec = file.as_deref().map(RouterSpec::load).transpose()?;
    let agent = match (agent, &spec) {
        (Some(a), _) => a.clone(),
        (None, Some(s)) => s.agent_url()?,
        (None, None) => return Err(coded(Exit::Usage, "vr status needs --agent or FILE")),
    };
    let mut vm_state = Value::Null;
    if let Some(spec) = spec.as_ref().filter(|s| s.vm.is_some()) {
        let records = Records::new(&args.state_dir);
        let ctx = Ctx {
            records: &records,
            callbacks: None,
            quiet: true,
            credentials: credentials(args)?,
            pki: None,
        };
        let host = ctx.host_of(spec)?;
        vm_state = match ctx
            .host_client(&host)
            .send(&vrctl::host::vm_sync_cmd())
            .await
        {
            Ok(v) => {
                json!({"host": host, "state": v.states.get(&spec.uuid).map_or("Stopped", String::as_str)})
            }
            Err(e) => json!({"host": host, "state": "Unknown", "error": e.to_string()}),
        };
        if !args.json {
            println!(
                "vm            {} on {}",
                vm_state["state"].as_str().unwrap_or(""),
                host
            );
        }
        // What `vrctl watch` did for it, newest last.
        if let Some(r) = records.get(&spec.uuid) {
            if !args.json {
                for a in &r.actions {
                    println!("{}", recovery_line(a));
                }
            }
            vm_state["recoveries"] = serde_json::to_value(&r.actions)?;
        }
    }
    let c = client(args, &agent).await?;
    let version = handshake(&c).await?;
    let ping = c.call("/ping", &json!({})).await?;
    let state: Value = serde_json::from_str(&c.get("/state").await?).map_err(|e| {
        coded(
            Exit::AgentFailed,
            format!("{}/state is not JSON: {e}", c.base()),
        )
    })?;
    // The HA pair's view of this router: the role keepalived gave it
    // (GET /ha; an agent without it is not in a pair).
    let role = match c.get("/ha").await {
        Ok(text) => serde_json::from_str::<Value>(&text).map_or(Value::Null, |v| v["role"].clone()),
        Err(_) => Value::Null,
    };
    let ha = json!({"status": ping["haStatus"], "role": role});
    let count = |k: &str| state["model"][k].as_object().map_or(0, |o| o.len());
    let summary = json!({
        "agent": agent, "version": version, "vm": vm_state,
        "uuid": ping["uuid"], "healthy": ping["healthy"], "ha": ha,
        "generation": state["generation"],
        "nics": count("nics"), "snats": count("snats"), "vips": count("vips"),
        "port_forwards": count("port_forwards"), "eips": count("eips"),
        "lb_listeners": state["model"]["lb"]["listeners"].as_object().map_or(0, |o| o.len()),
        "dhcp_entries": state["model"]["dhcp"]["entries"].as_array().map_or(0, |a| a.len()),
    });
    if args.json {
        println!("{summary}");
    } else {
        let uuid = ping["uuid"].as_str().unwrap_or("");
        println!("agent         {}  (version {version})", c.base());
        println!(
            "initialised   {}",
            if uuid.is_empty() {
                "no: /ping uuid is empty, the controller must resync".into()
            } else {
                format!("yes, uuid {uuid}")
            }
        );
        println!(
            "ha            {}",
            match ha["status"].as_str() {
                None | Some("") | Some("NoHa") => "not in a pair".to_string(),
                Some(s) => format!("{s} (keepalived: {})", ha["role"].as_str().unwrap_or("?")),
            }
        );
        for k in [
            "generation",
            "nics",
            "snats",
            "vips",
            "port_forwards",
            "eips",
            "lb_listeners",
            "dhcp_entries",
        ] {
            println!("{k:<14}{}", summary[k]);
        }
    }
    Ok(Exit::Ok)
}

/// One recovery `vrctl watch` ran, as a status line.
fn recovery_line(a: &vrctl::router::Action) -> String {
    let when = format!("{}Z", common::text::format_utc(a.at));
    let outcome = match &a.error {
        None if a.action == "destroy-stray" => "done".to_string(),
        None => format!("back in {:.1} s", a.secs),
        Some(e) => format!("FAILED after {:.1} s: {e}", a.secs),
    };
    format!(
        "recovery      {when} {} on {} ({}): {outcome}",
        a.action, a.host, a.why
    )
}
