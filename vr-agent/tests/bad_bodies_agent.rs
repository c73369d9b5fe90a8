//! The bad-body corpus (tests/bad_bodies/corpus.jsonl) through the real
//! vr-agent in its namespace lab (privileged): each body, sync (a 4xx) and
//! async (success:false in the callback), is refused naming its field and
//! leaves `nft list ruleset`, every file of the state directory (dnsmasq,
//! haproxy, certificates, the persisted state) and GET /state
//! byte-identical.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use testbed::CallbackReceiver;

fn expand(v: &mut Value) {
    match v {
        Value::String(s) if s.contains("{{") => {
            *s = s
                .replace("{{1MiB}}", &"a".repeat(1 << 20))
                .replace("{{70KiB}}", &"x".repeat(70 << 10));
        }
        Value::Array(a) => a.iter_mut().for_each(expand),
        Value::Object(m) => {
            let old = std::mem::take(m);
            for (k, mut x) in old {
                expand(&mut x);
                m.insert(k.replace("{{1MiB}}", &"a".repeat(1 << 20)), x);
            }
        }
        _ => {}
    }
}

fn files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        // Run-time files the children write on their own.
        if name.ends_with(".pid") || name.ends_with(".sock") || name.contains("lease") {
            continue;
        }
        // Only directories and regular files: opening keepalived's FIFO
        // would block until a writer comes.
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() {
            files(&p, out);
        } else if kind.is_file()
            && let Ok(b) = std::fs::read(&p)
        {
            out.push((p.display().to_string(), b));
        }
    }
}

fn snapshot(lab: &Lab) -> String {
    let mut out = vec![];
    files(lab.state.path(), &mut out);
    let (_, state) = testbed::http_get(&lab.ctl, &format!("{AGENT}/state")).unwrap();
    format!(
        "{}\n{state}\n{out:?}",
        lab.vr.sh("nft list ruleset").unwrap_or_default()
    )
}

#[test]
fn bad_bodies_change_nothing_on_the_real_router() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    lab.base_config();
    let cb = CallbackReceiver::start(Some(&lab.ctl)).unwrap();
    let cb_url = format!("http://10.0.0.2:{}/cb", cb.port());
    let vip = |ip: &str| json!({"ip": ip, "netmask": "255.255.0.0", "ownerEthernetMac": PUB_MAC});
    lab.ok(
        "/createvip",
        json!({"vips": [vip("172.20.10.100"), vip("172.20.10.101")]}),
    );
    lab.ok(
        "/createeip",
        json!({"eip": eip("172.20.10.101", "192.168.100.10")}),
    );
    lab.ok(
        "/refreshDhcpServer",
        json!({"dhcpServers": [{"nicMac": PRIV_MAC, "subnet": "192.168.100.0/24", "gateway": "192.168.100.1",
            "dnsServer": "192.168.100.1", "dhcpInfos": [{"ip": "192.168.100.10", "mac": "fa:a1:5e:12:34:56",
            "hostname": "web-01", "isDefaultL3Network": true}]}]}),
    );
    lab.ok(
        "/setdns",
        json!({"dns": [{"dnsAddress": "223.5.5.5", "nicMac": PRIV_MAC}]}),
    );
    let before = snapshot(&lab);
    let mut failures = vec![];
    let text = include_str!("bad_bodies/corpus.jsonl");
    for (n, line) in text.lines().enumerate() {
        let mut c: Value = serde_json::from_str(line).unwrap();
        expand(&mut c["body"]);
        let (name, path, expect) = (
            c["name"].as_str().unwrap().to_string(),
            c["path"].as_str().unwrap().to_string(),
            c["expect"].as_str().unwrap().to_string(),
        );
        let body = c["body"].to_string();
        // Sync: a 4xx naming the field.
        let (code, reply) = lab.post_raw(&path, &body, &[]).unwrap();
        if !(400..500).contains(&code) || !reply.contains(&expect) || reply.len() > 2048 {
            failures.push(format!("{name} (sync): {code} {}", common_text(&reply)));
        }
        // Async: 200, then the callback says success:false naming it.
        let task = format!("bad-{n}");
        let (code, _) = lab
            .post_raw(
                &path,
                &body,
                &[("taskuuid", &task), ("callbackurl", &cb_url)],
            )
            .unwrap();
        let start = Instant::now();
        let got = loop {
            if let Some(r) = cb
                .requests()
                .into_iter()
                .find(|r| r.header("taskuuid") == Some(&task))
            {
                break Some(r.body.clone());
            }
            if start.elapsed() > Duration::from_secs(10) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        match got {
            Some(b) if code == 200 && b.contains("\"success\":false") && b.contains(&expect) => {}
            other => failures.push(format!("{name} (async): {code} {other:?}")),
        }
        // Every 10th case (a snapshot forks nft and reads the state): a
        // change is pinned to the last ten cases.
        if n % 10 == 9 && snapshot(&lab) != before {
            panic!(
                "one of the cases up to {name} changed the router\n{}",
                failures.join("\n")
            );
        }
    }
    assert_eq!(snapshot(&lab), before, "the router changed");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn common_text(s: &str) -> String {
    ::common::text::excerpt_n(s, 300)
}
