//! The frame decoder on arbitrary text, as both ends read it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // WebSocket text frames are UTF-8 (tungstenite refuses others before we see them).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    tincan_fuzz::check_client_frame(text);
    tincan_fuzz::check_server_frame(text);
});
