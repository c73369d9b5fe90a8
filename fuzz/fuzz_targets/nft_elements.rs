//! The NAT table's element lines -> our nf_tables netlink batch: any text
//! is refused or encoded, never a panic, and every message of a batch is
//! whole (its length within the batch, a multiple of 4).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vr_agent::sys::nft_elements::encode;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(Some(batch)) = encode(text) else { return };
    let mut rest = &batch.bytes[..];
    let mut messages = 0;
    while !rest.is_empty() {
        let len = u32::from_ne_bytes(rest[..4].try_into().unwrap()) as usize;
        assert!(len >= 20 && len % 4 == 0 && len <= rest.len(), "message of {len} bytes");
        rest = &rest[len..];
        messages += 1;
    }
    // Batch begin and end around the element messages.
    assert_eq!(messages, batch.commands + 2);
});
