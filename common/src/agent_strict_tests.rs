//! The body must be strict before it is lenient: what used to decode as `{}`.

use super::*;
use axum::body::Body;
use axum::http::Request;
use serde::Deserialize;
use tower::ServiceExt;

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Sync {
    rules: Vec<String>,
    mtu: u32,
}

fn err<T: DeserializeOwned + std::fmt::Debug>(body: &[u8]) -> String {
    let e = decode::<T>(body).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadRequest);
    let exact = decode_exact::<T>(body).unwrap_err();
    assert_eq!(exact, e);
    e.message
}

#[test]
fn bodies_that_are_not_one_object_are_refused() {
    assert!(err::<Sync>(b"").contains("request body is empty"));
    assert!(err::<Sync>(b"  \n").contains("request body is empty"));
    assert!(err::<Sync>(b"[]").contains("request body is a JSON array"));
    assert!(err::<Sync>(b"null").contains("request body is null"));
    assert!(err::<Sync>(b"\"\"").contains("request body is a JSON string"));
    assert!(err::<Sync>(b"7").contains("a JSON number"));
    let m = err::<Sync>(b"{\"rules\":[\"a\xc3\"]}");
    assert!(
        m.contains("not valid UTF-8") && m.contains("offset 12"),
        "{m}"
    );
    let m = err::<Sync>(br#"{"rules":["a"],"rules":[]}"#);
    assert!(m.contains("duplicate key rules"), "{m}");
    let m = err::<Sync>(br#"{"x":{"y":[{"z":1,"z":1}]}}"#);
    assert!(m.contains("duplicate key x.y[0].z"), "{m}");
    let m = err::<Sync>(br#"{"rules":[]} {}"#);
    assert!(m.contains("trailing"), "{m}");
    // An object still decodes leniently; `{}` is every default.
    let s: Sync = decode(br#"{"Mtu":9000}"#).unwrap();
    assert_eq!(s.mtu, 9000);
    let s: Sync = decode_exact(b"{}").unwrap();
    assert!(s.rules.is_empty());
}

/// The VR's /echo takes any JSON: the node's RESTFacadeImpl.echo posts
/// `syncJsonPost(url, "", Void.class, ...)`, the (String, Object, ...)
/// overload, which Gson writes as `""`; the testbed sends it empty.
#[test]
fn a_command_taking_any_value_gets_non_objects() {
    assert_eq!(decode_exact::<Value>(b"\"\"").unwrap(), Value::from(""));
    assert_eq!(decode_exact::<Value>(b"").unwrap(), Value::Null);
    assert_eq!(
        decode_exact::<Value>(b"[1]").unwrap(),
        serde_json::json!([1])
    );
    // Still strict about the bytes and the keys.
    assert!(decode_exact::<Value>(br#"{"a":1,"a":1}"#).is_err());
    assert!(decode_exact::<Value>(b"\xff").is_err());
    // Anything typed is refused: an option, a unit, a map.
    assert!(decode_exact::<Option<Sync>>(b"null").is_err());
    assert!(decode_exact::<()>(b"null").is_err());
    assert!(decode_exact::<Map<String, Value>>(b"[]").is_err());
}

#[test]
fn decode_errors_quote_input_bounded() {
    let big = format!(
        r#"{{"mtu":"{}\n{}"}}"#,
        "9".repeat(1 << 20),
        "forged log line"
    );
    let m = err::<Sync>(big.as_bytes());
    assert!(
        m.starts_with("field mtu: invalid type: string"),
        "{}",
        &m[..80]
    );
    assert!(m.len() < 400, "{}", m.len());
    assert!(!m.contains('\n'));
    let key = "k".repeat(1 << 20);
    let big = format!(r#"{{"{key}":{{"a":1,"a":2}}}}"#);
    let m = err::<Sync>(big.as_bytes());
    assert!(m.len() < 400, "{}", m.len());
}

async fn call(
    app: &Router,
    path: &str,
    body: &'static [u8],
    cb: Option<&str>,
) -> (StatusCode, Value) {
    let mut r = Request::post(path.to_string());
    if let Some(cb) = cb {
        r = r.header("callbackurl", cb).header("taskuuid", "t1");
    }
    let rsp = app
        .clone()
        .oneshot(r.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let s = rsp.status();
    let b = axum::body::to_bytes(rsp.into_body(), 1 << 20)
        .await
        .unwrap();
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

/// A bad body never reaches the handler, whatever the route's options; the
/// error is reported where the options say.
#[tokio::test]
async fn routes_refuse_bad_bodies_as_their_options_say() {
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = {
        let ran = ran.clone();
        move |_: (), _: Sync| {
            let ran = ran.clone();
            async move {
                ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Result::Ok(Ok {})
            }
        }
    };
    let app = finish(
        Router::new()
            .route("/lenient", command(h.clone()))
            .route("/sync", command_with(Options::ZSTACK_SYNC, h.clone()))
            .route("/async", command_with(Options::ZSTACK_ASYNC, h)),
        (),
    );
    let bad: [&'static [u8]; 5] = [
        b"",
        b"[]",
        b"null",
        b"{\"mtu\":1,\"mtu\":2}",
        b"{\"rules\":[\"\xff\"]}",
    ];
    for body in bad {
        let (s, v) = call(&app, "/lenient", body, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(v["success"], false);
        let (s, v) = call(&app, "/async", body, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(v["success"], false);
        let (s, v) = call(&app, "/sync", body, None).await;
        assert_eq!(s, StatusCode::OK, "{body:?}");
        assert_eq!(v["success"], false, "{body:?}");
        assert!(v["error"].as_str().unwrap().contains("request body"), "{v}");
    }
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 0);
    let (s, _) = call(&app, "/sync", b"{}", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);
}
