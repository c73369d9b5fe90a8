//! Unit tests of the checker: specs, reports, fixture parsing.

use super::*;
use serde_json::json;

fn spec(pairs: &[(&str, &str)]) -> Vec<FieldSpec> {
    pairs
        .iter()
        .map(|(p, t)| FieldSpec::parse(p, t).unwrap())
        .collect()
}

#[test]
fn conforming_reply_has_no_problems() {
    let s = spec(&[
        ("virtualizerInfo", "object"),
        ("virtualizerInfo.uuid", "string"),
        ("nicInfos[].macAddress", "string"),
        ("states{}", "string"),
        ("cpuNum", "integer"),
        ("ratio", "number"),
        ("ok", "boolean"),
        ("list", "array"),
        ("maybe", "string?"),
    ]);
    let r = json!({"virtualizerInfo":{"uuid":"u"},"nicInfos":[{"macAddress":"m"},{"macAddress":"n"}],
        "states":{"a":"Running"},"cpuNum":4,"ratio":0.5,"ok":false,"list":[]});
    assert_eq!(check_fields(&s, &r), Vec::<String>::new());
}

#[test]
fn every_problem_is_reported_at_once() {
    let s = spec(&[
        ("virtualizerInfo.uuid", "string"),
        ("cpuModelName", "string"),
        ("nicInfos[].macAddress", "string"),
        ("states{}", "string"),
        ("cpuNum", "integer"),
        ("maybe", "string?"),
        ("empty[]", "string"),
    ]);
    let r = json!({"nicInfos":[{"macAddress":"m"},{"mac":"x"}],"states":{"a":1},
        "cpuNum":1.5,"maybe":3,"empty":[]});
    let p = check_fields(&s, &r);
    assert_eq!(p.len(), 7, "{p:#?}");
    assert!(p[0].starts_with("virtualizerInfo: missing"), "{}", p[0]);
    assert!(p[1].starts_with("cpuModelName: missing"), "{}", p[1]);
    assert!(
        p[2].starts_with("nicInfos[1].macAddress: missing"),
        "{}",
        p[2]
    );
    assert!(p[3].starts_with("states{\"a\"}: is number 1"), "{}", p[3]);
    assert!(p[4].starts_with("cpuNum: is number 1.5"), "{}", p[4]);
    assert!(p[5].starts_with("maybe: is number 3"), "{}", p[5]);
    assert!(p[6].starts_with("empty: is an empty array"), "{}", p[6]);
}

#[test]
fn null_counts_as_missing_and_wrong_containers_are_named() {
    let s = spec(&[("a.b", "string"), ("l[]", "string"), ("m{}", "string")]);
    let p = check_fields(&s, &json!({"a":null,"l":{"x":"y"},"m":["z"]}));
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(p[0].starts_with("a: missing"), "{}", p[0]);
    assert!(p[1].starts_with("l: is object, not an array"), "{}", p[1]);
    assert!(p[2].starts_with("m: is array, not a map"), "{}", p[2]);
}

#[test]
fn a_reply_that_is_not_an_object_is_one_problem() {
    let s = spec(&[("a", "string"), ("b", "integer")]);
    let p = check_fields(&s, &json!("no plugin registered the path[/x]"));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].starts_with("reply: is string \"no plugin"), "{}", p[0]);
    assert!(check_fields(&[], &json!("")).is_empty());
}

#[test]
fn enum_values_must_be_a_name_of_the_enum() {
    let s = spec(&[("states{}", "enum:Running|Shutdown"), ("mode", "enum:a|b?")]);
    assert!(check_fields(&s, &json!({"states":{"u":"Running","v":"Shutdown"}})).is_empty());
    let p = check_fields(&s, &json!({"states":{"u":"running","v":3},"mode":"c"}));
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(
        p[0].starts_with(
            "states{\"u\"}: is \"running\", the node reads states{} as one of Running|Shutdown"
        ),
        "{}",
        p[0]
    );
    assert!(p[1].starts_with("states{\"v\"}: is number 3"), "{}", p[1]);
    assert!(p[2].starts_with("mode: is \"c\""), "{}", p[2]);
    assert!(FieldSpec::parse("a", "enum:").is_err());
}

#[test]
fn positive_counts_must_not_be_zero() {
    let s = spec(&[("usedCpu", "integer>0"), ("usedMemory", "integer>0?")]);
    assert!(check_fields(&s, &json!({"usedCpu": 1, "usedMemory": 1024})).is_empty());
    assert!(check_fields(&s, &json!({"usedCpu": 1})).is_empty());
    let p = check_fields(&s, &json!({"usedCpu": 0, "usedMemory": -1}));
    assert_eq!(p.len(), 2, "{p:#?}");
    assert!(
        p[0].starts_with("usedCpu: is 0, the fixture's setup makes usedCpu positive"),
        "{}",
        p[0]
    );
    assert!(FieldSpec::parse("a", "string>0").is_err());
}

#[test]
fn bad_specs_are_refused() {
    assert!(FieldSpec::parse("a..b", "string").is_err());
    assert!(FieldSpec::parse("a[x]", "string").is_err());
    assert!(FieldSpec::parse("a", "str").is_err());
    assert!(FieldSpec::parse("[]", "string").is_err());
}

const FIXTURE: &str = r#"{
  "path": "/host/fact", "mode": "async",
  "source": {"repo": "zstackio/zstack", "commit": "5a29293bd53c98a38488fb8b71d54531012d3dae",
             "request": "KVMAgentCommands.java HostFactCmd", "reply": "KVMAgentCommands.java HostFactResponse",
             "readers": ["KVMHost.java: ret.getVirtualizerInfo().setUuid(...)"]},
  "request": {"socket": "$TMP/x"},
  "expect": {"http": 200, "success": true},
  "reply": {
    "virtualizerInfo.uuid": "string",
    "libvirtVersion": "string"
  }
}"#;

#[test]
fn fixture_report_names_source_and_every_missing_field() {
    let f = Fixture::parse("conformance/kvm/host-fact.json", FIXTURE).unwrap();
    assert_eq!(f.mode, Mode::Async);
    assert_eq!(f.body(Path::new("/t")), json!({"socket": "/t/x"}));
    assert!(
        f.check(
            200,
            &json!({"success":true,"error":"","virtualizerInfo":{"uuid":"u"},"libvirtVersion":"9"})
        )
        .is_ok()
    );
    let e = f
        .check(500, &json!({"success":false,"error":"boom"}))
        .unwrap_err();
    assert!(
        e.contains("conformance/kvm/host-fact.json: POST /host/fact (async)"),
        "{e}"
    );
    assert!(e.contains("zstackio/zstack@5a29293b"), "{e}");
    assert!(
        e.contains("read by: KVMHost.java: ret.getVirtualizerInfo()"),
        "{e}"
    );
    assert!(e.contains("HTTP status 500, the node needs 200"), "{e}");
    assert!(e.contains("success: is false, the node needs true"), "{e}");
    assert!(e.contains("virtualizerInfo: missing"), "{e}");
    assert!(e.contains("libvirtVersion: missing"), "{e}");
    // Java's AgentResponse.success defaults to true.
    assert!(
        f.check(
            200,
            &json!({"virtualizerInfo":{"uuid":"u"},"libvirtVersion":"9"})
        )
        .is_ok()
    );
}

#[test]
fn fixture_typos_are_refused() {
    let bad = FIXTURE.replace("\"reply\"", "\"replies\"");
    let e = Fixture::parse("x.json", &bad).unwrap_err().to_string();
    assert!(e.contains("unknown key \"replies\""), "{e}");
    let bad = FIXTURE.replace("\"async\"", "\"asynchronous\"");
    assert!(Fixture::parse("x.json", &bad).is_err());
    let bad = FIXTURE.replace(
        "\"libvirtVersion\": \"string\"",
        "\"libvirtVersion\": \"text\"",
    );
    assert!(
        format!("{:#}", Fixture::parse("x.json", &bad).unwrap_err()).contains("libvirtVersion")
    );
}

#[test]
fn json_diff_names_renamed_keys() {
    let want = json!({"info":{"EnableVyosCmd":false,"uuid":"u"},"l":[1,2]});
    let got = json!({"info":{"enableVyosCmd":false,"uuid":"u"},"l":[1,3]});
    assert_eq!(
        json_diff(&want, &got),
        vec![
            "info.EnableVyosCmd: missing",
            "info.enableVyosCmd: not sent by the node",
            "l[1]: is 3, the node sent 2"
        ]
    );
    assert!(json_diff(&want, &want).is_empty());
}

#[test]
fn routes_are_read_from_the_router_source() {
    let src = "fn f() { \"/proc/x\" }\npub fn router(s: S) {\n    r = both(r, \"/host/echo\", x); .route(\"/echo\", command(echo)).route(\"/healthz\", get(h)) format!(\"{path}/\") \"no plugin registered the path[/x]\"\n}\nfn g() { \"/later\" }";
    assert_eq!(routes_in(src), vec!["/echo", "/host/echo"]);
}

#[test]
fn checked_in_fixtures_all_parse() {
    for agent in ["kvm", "vr"] {
        let dir = fixture_dir(agent);
        if dir.exists() {
            let all = load_dir(&dir).unwrap();
            assert!(!all.is_empty(), "{} has no fixtures", dir.display());
        }
    }
}

#[test]
fn files_must_stay_under_tmp() {
    let with =
        |files: &str| FIXTURE.replace("\"request\":", &format!("\"files\": {files}, \"request\":"));
    let f = Fixture::parse("x.json", &with(r#"{"$TMP/a/b.log": "hi"}"#)).unwrap();
    let dir = crate::TempDir::new("conformance-files").unwrap();
    f.write_files(dir.path()).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a/b.log")).unwrap(),
        "hi"
    );
    assert!(Fixture::parse("x.json", &with(r#"{"/etc/passwd": "x"}"#)).is_err());
    assert!(Fixture::parse("x.json", &with(r#"{"$TMP/../x": "x"}"#)).is_err());
}

/// A stand-in agent: echoes the request's headers and body as its reply,
/// in the body (sync) or by a callback POST to `callbackurl` (async).
fn echo_agent() -> axum::Router {
    use axum::http::HeaderMap;
    async fn handle(headers: HeaderMap, body: String) -> String {
        let h = |k: &str| {
            headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let seen = json!({"taskuuid": h("taskuuid"), "callbackurl": h("callbackurl"),
            "contentType": h("content-type"), "body": body});
        let Some(rest) = h("callbackurl").strip_prefix("http://").map(str::to_string) else {
            return seen.to_string();
        };
        let task = h("taskuuid");
        std::thread::spawn(move || {
            use std::io::Write;
            let (addr, path) = rest.split_once('/').unwrap();
            let text = seen.to_string();
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(
                s,
                "POST /{path} HTTP/1.1\r\nhost: {addr}\r\ntaskuuid: {task}\r\ncontent-length: {}\r\n\r\n{text}",
                text.len()
            )
            .unwrap();
            let _ = std::io::Read::read(&mut s, &mut [0u8; 64]);
        });
        "\"\"".to_string()
    }
    axum::Router::new().route("/x", axum::routing::post(handle))
}

#[tokio::test]
async fn exchange_sends_what_rest_facade_sends() {
    let app = echo_agent();
    let cb = crate::CallbackReceiver::start(None).unwrap();
    let body = json!({"uuid": "u", "isDefaultRoute": false});
    let (s, v) = exchange::exchange(&app, &cb, "/x", Mode::Async, &body)
        .await
        .unwrap();
    assert_eq!(s, 200);
    assert_eq!(v["contentType"], "application/json; charset=utf-8");
    assert_eq!(
        v["callbackurl"],
        format!("{}/zstack/asyncrest/callback", cb.url())
    );
    let task = v["taskuuid"].as_str().unwrap();
    assert!(
        task.len() == 32 && task.chars().all(|c| c.is_ascii_hexdigit()),
        "{task}"
    );
    assert_eq!(v["body"], body.to_string());
    let (s, v) = exchange::exchange(&app, &cb, "/x", Mode::Sync, &json!(""))
        .await
        .unwrap();
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"taskuuid": "", "callbackurl": "", "contentType": "application/json", "body": ""})
    );
    // An unknown path is the agent's answer, not a wait for a callback.
    let (s, _) = exchange::exchange(&app, &cb, "/nosuch", Mode::Async, &body)
        .await
        .unwrap();
    assert_eq!(s, 404);
}
