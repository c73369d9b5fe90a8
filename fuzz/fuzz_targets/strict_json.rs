//! common::json::parse_strict against serde_json: the same documents, the
//! same values, except that it also refuses repeated keys; its errors are
//! bounded and on one line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let strict = common::json::parse_strict(data);
    let plain = serde_json::from_slice::<serde_json::Value>(data);
    match (&strict, &plain) {
        (Ok(Some(v)), Ok(p)) => assert_eq!(v, p, "strict and serde_json disagree"),
        (Ok(None), _) => assert!(data.iter().all(|b| b.is_ascii_whitespace())),
        (Ok(Some(_)), Err(e)) => panic!("strict accepted what serde_json refuses: {e}"),
        (Err(_), _) => {}
    }
    if let Err(e) = &strict {
        let m = e.to_string();
        assert!(m.len() <= 1024, "unbounded error: {} bytes", m.len());
        assert!(!m.contains('\n'), "error spans lines: {m:?}");
        // Refused but serde_json took it: only for a repeated key.
        if plain.is_ok() {
            assert!(m.contains("duplicate key"), "refused a valid document: {m}");
        }
    }
});
