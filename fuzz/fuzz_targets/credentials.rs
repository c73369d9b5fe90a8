//! The credential decoders (issue 14): a certificate's subject and serial
//! (our own DER reader), PEM certificates and keys, a whole
//! server configuration from untrusted PEM (what `/agent/credentials` and
//! the bootstrap info hand the agent), and token files. Properties: no
//! panic, and the subject text is bounded and on one line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let subject = common::tls::subject_of(data);
    assert!(
        subject.len() <= 1024,
        "unbounded subject: {}",
        subject.len()
    );
    assert!(
        !subject.chars().any(char::is_control),
        "control character in {subject:?}"
    );
    if let Some(serial) = common::tls::serial_of(data) {
        assert!(serial.len() <= 2 * data.len());
    }
    let text = String::from_utf8_lossy(data);
    let _ = common::token::parse(&text);
    let _ = common::tls::certificates(&text, "fuzz");
    let _ = common::tls::private_key(&text);
    // Split into three PEM texts at NUL bytes: certificate, key, CA.
    let mut parts = text.splitn(3, '\0');
    let pem = common::tls::ServerPem {
        certificate: parts.next().unwrap_or("").to_string(),
        private_key: parts.next().unwrap_or("").to_string(),
        client_ca: parts.next().unwrap_or("").to_string(),
    };
    let _ = common::tls::server_config(&pem);
});
