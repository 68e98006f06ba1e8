//! The bodies of `POST /api/register` and `POST /api/login`, parsed as the server's
//! handlers parse them; what parses must serialise and parse back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tincan_protocol::account::parse_body;
use tincan_protocol::{ErrCode, LoginBody, RegisterBody};

fn check<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq,
{
    match parse_body::<T>(data) {
        Ok(body) => {
            // Only one JSON object is accepted.
            let v: serde_json::Value = serde_json::from_slice(data).expect("accepted body is JSON");
            assert!(v.is_object(), "accepted a body that is not an object");
            let again = serde_json::to_vec(&body).expect("bodies serialise");
            let back = parse_body::<T>(&again).unwrap_or_else(|e| panic!("reparse failed: {e:?}"));
            assert!(back == body, "round trip changed the body");
        }
        Err(e) => {
            assert_eq!(e.code, ErrCode::Args);
            assert!(!e.message.is_empty());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check::<RegisterBody>(data);
    check::<LoginBody>(data);
});
