//! Where two JSON documents differ, path by path (a reply against the one
//! a fixture expects).

use serde_json::Value;

/// Where `got` differs from `want` (JSON paths), e.g. a map whose keys an
/// agent renamed: `info.EnableVyosCmd: missing`.
pub fn json_diff(want: &Value, got: &Value) -> Vec<String> {
    let mut out = vec![];
    diff_at(want, got, String::new(), &mut out);
    out
}

fn diff_at(want: &Value, got: &Value, here: String, out: &mut Vec<String>) {
    let at = |k: &str| {
        if here.is_empty() {
            k.to_string()
        } else {
            format!("{here}.{k}")
        }
    };
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                match g.get(k) {
                    None => out.push(format!("{}: missing", at(k))),
                    Some(gv) => diff_at(wv, gv, at(k), out),
                }
            }
            for k in g.keys().filter(|k| !w.contains_key(*k)) {
                out.push(format!("{}: not sent by the node", at(k)));
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                diff_at(wv, gv, format!("{here}[{i}]"), out);
            }
        }
        _ if want == got => {}
        _ => out.push(format!(
            "{}: is {got}, the node sent {want}",
            if here.is_empty() { "(root)" } else { &here }
        )),
    }
}
