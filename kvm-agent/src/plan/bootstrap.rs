//! The bootstrap payload for a VR (reference 5, step 4): the `info` object
//! as pretty JSON (sorted keys, indent 4, nulls dropped), padded with spaces
//! to a whole multiple of the socket's send buffer (ZSTACK-28450: the guest
//! reads until EOF and a payload that ends mid-buffer was lost).

use serde_json::{Map, Value};

fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// The bytes to write; `sndbuf` is the effective SO_SNDBUF (0: no padding).
pub fn payload(info: &Map<String, Value>, sndbuf: usize) -> Vec<u8> {
    let mut v = Value::Object(info.clone());
    drop_nulls(&mut v);
    // serde_json's Map is a BTreeMap here (no preserve_order): keys sorted.
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(&v, &mut ser).expect("a JSON value always serialises");
    if sndbuf > 0 {
        let rem = out.len() % sndbuf;
        if rem != 0 {
            out.resize(out.len() + sndbuf - rem, b' ');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_indented_padded_without_nulls() {
        let info: Map<String, Value> = serde_json::from_str(
            r#"{"uuid":"u","applianceVmSubType":"vrouter","haStatus":null,"managementNic":{"mac":"fa:4c:ee:9a:76:00","ip":"10.0.0.200","vni":null}}"#,
        )
        .unwrap();
        let p = payload(&info, 0);
        let text = String::from_utf8(p.clone()).unwrap();
        assert_eq!(
            text,
            "{\n    \"applianceVmSubType\": \"vrouter\",\n    \"managementNic\": {\n        \"ip\": \"10.0.0.200\",\n        \"mac\": \"fa:4c:ee:9a:76:00\"\n    },\n    \"uuid\": \"u\"\n}"
        );
        let padded = payload(&info, 8192);
        assert_eq!(padded.len(), 8192);
        assert!(padded.starts_with(&p));
        assert!(padded[p.len()..].iter().all(|b| *b == b' '));
        // Trailing spaces are fine for a JSON reader (zvrboot's json.Unmarshal).
        let back: Value = serde_json::from_slice(&padded).unwrap();
        assert_eq!(back["managementNic"]["ip"], "10.0.0.200");
        // Already a multiple: no padding added.
        assert_eq!(payload(&info, p.len()).len(), p.len());
    }
}
