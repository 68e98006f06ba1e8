//! Every method's params: the first byte picks the method, the rest is `data`, so the
//! fuzzer spends its time inside the params types instead of finding method names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tincan_protocol::METHODS;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(params) = std::str::from_utf8(rest) else {
        return;
    };
    let method = METHODS[pick as usize % METHODS.len()];
    let text =
        format!(r#"{{"requestID":1,"operationID":"fuzz","method":"{method}","data":{params}}}"#);
    tincan_fuzz::check_client_frame(&text);
});
