//! Fuzzes the fast-path parser and every wire view: no input may panic, and `parse` and the
//! views must accept the same packets.
//!
//! Run with `cargo +nightly fuzz run parse` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = dataplane::wire::parse(data) {
        let _ = info.flow_key();
        let _ = dataplane::wire::parse_embedded(data, &info);
    }
    dataplane::wire::exercise::exercise(data);
});
