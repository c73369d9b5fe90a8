// Shared by the decode targets (included with `include!`): input is
// "<command path>\n<body>", the path choosing the wire type as the agents'
// routers do; an unknown path picks a type by its bytes, so every type is
// reached from any input.

/// Splits "path\nbody"; no newline: all of it is the body, path "".
fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    }
}

/// The properties every decode must keep: no panic (the harness), and an
/// error message that is bounded and on one line (it reaches replies and
/// log lines), whatever the input.
fn check<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    let lenient = common::agent::decode::<T>(body);
    let exact = common::agent::decode_exact::<T>(body);
    for r in [lenient.as_ref().err(), exact.as_ref().err()].into_iter().flatten() {
        assert!(r.message.len() <= 1024, "unbounded decode error: {} bytes", r.message.len());
        assert!(!r.message.contains('\n') && !r.message.contains('\r'), "decode error spans lines: {:?}", r.message);
    }
    // A body the strict parser refuses is refused by both.
    if common::json::parse_strict(body).is_err() {
        assert!(lenient.is_err() && exact.is_err(), "a malformed body decoded");
    }
    exact.ok()
}

fn pick<'a>(path: &[u8], table: &'a [&'a str]) -> usize {
    table
        .iter()
        .position(|p| p.as_bytes() == path)
        .unwrap_or_else(|| path.iter().map(|&b| b as usize).sum::<usize>() % table.len())
}
