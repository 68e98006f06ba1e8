//! Reading a relayed signal's frame in one pass.
//!
//! A frame's `data` is normally delimited first (the envelope is read with `data` as raw
//! JSON) and read again once `method` says what it holds. For `signalingSendCustomSignal`
//! and `signalingSendMediaSignal` the payload is kilobytes that the server relays
//! unread, and the second scan of it was about 8 % of the server's CPU under a flood of
//! signals (docs/benchmarks.md). When `method` comes before `data` — as docs/protocol.md
//! writes frames and the SDK sends them — `data` is read straight into the signal's
//! parameters here.
//!
//! Only the happy path lives here: any frame this reader does not take whole (another
//! method, `data` before `method`, a duplicate or ill-typed field, bad parameters) gives
//! `None`, and [`ClientFrame::parse`](crate::ClientFrame::parse) reads it the general way,
//! which also explains what is wrong. So both ways accept the same frames and read them
//! alike (tested below).

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, DeserializeSeed, Error as _, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::request::{Request, RequestId};

/// A frame's envelope, with `data` either read or still raw.
pub(crate) struct Envelope<'a> {
    pub request_id: Option<RequestId>,
    pub operation_id: Option<String>,
    pub method: Option<String>,
    pub data: Data<'a>,
    pub no_reply_on_success: bool,
}

/// A frame's `data`. Made once per frame and moved once, so the read variant is not
/// boxed.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Data<'a> {
    /// As written (absent or `null`: `None`), to be read by `method`.
    Raw(Option<&'a RawValue>),
    /// Read already, for `method`.
    Read(Request),
}

/// The envelope of a relayed signal with its parameters read, or `None` (see the module
/// docs).
pub(crate) fn read(text: &str) -> Option<Envelope<'_>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let envelope = de.deserialize_map(EnvelopeVisitor).ok()?;
    de.end().ok()?;
    Some(envelope)
}

/// The envelope's keys.
enum Key {
    RequestId,
    OperationId,
    Method,
    Data,
    NoReplyOnSuccess,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, k: &str) -> Result<Key, E> {
                Ok(match k {
                    "requestID" => Key::RequestId,
                    "operationID" => Key::OperationId,
                    "method" => Key::Method,
                    "data" => Key::Data,
                    "noReplyOnSuccess" => Key::NoReplyOnSuccess,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a request frame")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<'de>, A::Error> {
        fn once<T, E: serde::de::Error>(slot: &Option<T>, name: &str) -> Result<(), E> {
            match slot {
                Some(_) => Err(E::custom(format!("duplicate field {name}"))),
                None => Ok(()),
            }
        }
        let mut request_id = None;
        let mut operation_id = None;
        let mut method: Option<Option<String>> = None;
        let mut data = None;
        let mut no_reply = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::RequestId => {
                    once(&request_id, "requestID")?;
                    request_id = Some(map.next_value::<Option<RequestId>>()?);
                }
                Key::OperationId => {
                    once(&operation_id, "operationID")?;
                    operation_id = Some(map.next_value::<Option<String>>()?);
                }
                Key::Method => {
                    once(&method, "method")?;
                    method = Some(map.next_value::<Option<String>>()?);
                }
                Key::NoReplyOnSuccess => {
                    once(&no_reply, "noReplyOnSuccess")?;
                    no_reply = Some(map.next_value::<bool>()?);
                }
                Key::Data => {
                    once(&data, "data")?;
                    let request = match method.as_ref().and_then(|m| m.as_deref()) {
                        Some("signalingSendCustomSignal") => {
                            Request::SendCustomSignal(map.next_value_seed(Object::new())?)
                        }
                        Some("signalingSendMediaSignal") => {
                            Request::SendMediaSignal(map.next_value_seed(Object::new())?)
                        }
                        // Not a relayed signal, or no method yet: the general way.
                        _ => return Err(A::Error::custom("not a relayed signal")),
                    };
                    data = Some(request);
                }
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let Some(request) = data else {
            return Err(A::Error::custom("no data"));
        };
        Ok(Envelope {
            request_id: request_id.flatten(),
            operation_id: operation_id.flatten(),
            method: method.flatten(),
            data: Data::Read(request),
            no_reply_on_success: no_reply.unwrap_or(false),
        })
    }
}

/// Reads `T` from a JSON object only, as the general way does (serde would also fill a
/// struct from an array, by position).
struct Object<T>(PhantomData<T>);

impl<T> Object<T> {
    fn new() -> Self {
        Object(PhantomData)
    }
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for Object<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for Object<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

#[cfg(test)]
mod tests {
    use super::read;
    use crate::request::ClientFrame;

    const CUSTOM: &str = r#""method":"signalingSendCustomSignal""#;
    const MEDIA: &str = r#""method":"signalingSendMediaSignal""#;

    /// Both ways give the same answer, frame or error.
    fn same(text: &str) {
        assert_eq!(
            ClientFrame::parse(text),
            ClientFrame::parse_general(text),
            "{text}"
        );
    }

    #[test]
    fn a_signal_written_as_documented_is_read_in_one_pass_and_alike() {
        for text in [
            format!(r#"{{"requestID":1,"operationID":"op",{CUSTOM},"data":{{"roomID":"r1","customInfo":"{}"}}}}"#, "x".repeat(2500)),
            format!(r#"{{"requestID":"a",{CUSTOM},"noReplyOnSuccess":true,"data":{{"customInfo":"{{\"k\":\"\\u0041\"}}","roomID":"r1","extra":[1,2]}}}}"#),
            format!(r#"{{{MEDIA},"requestID":2,"data":{{"roomID":"r1","token":"t","toUserID":"bob","payload":{{"type":"offer","sdp":"v=0"}}}},"other":null}}"#),
            // An escaped key is the same key.
            r#"{"requestID":3,"meth\u006fd":"signalingSendCustomSignal","data":{"roomID":"r1","customInfo":"hi"}}"#.to_owned(),
        ] {
            assert!(read(&text).is_some(), "{text}");
            assert!(ClientFrame::parse(&text).is_ok(), "{text}");
            same(&text);
        }
    }

    #[test]
    fn anything_else_is_left_to_the_general_way_with_the_same_outcome() {
        let data = r#""data":{"roomID":"r1","customInfo":"hi"}"#;
        for text in [
            // data before method (what serde_json's json! writes: keys sorted).
            format!(r#"{{{data},{CUSTOM},"requestID":1}}"#),
            // Not a relayed signal.
            r#"{"requestID":1,"method":"signalingHungUp","data":{"invitation":{"roomID":"r1"}}}"#
                .to_owned(),
            // No data, null data, data not an object, bad or missing fields.
            format!(r#"{{"requestID":1,{CUSTOM}}}"#),
            format!(r#"{{"requestID":1,{CUSTOM},"data":null}}"#),
            format!(r#"{{"requestID":1,{CUSTOM},"data":["r1","hi"]}}"#),
            format!(r#"{{"requestID":1,{CUSTOM},"data":{{"roomID":"r1"}}}}"#),
            format!(r#"{{"requestID":1,{CUSTOM},"data":{{"roomID":"","customInfo":"hi"}}}}"#),
            format!(r#"{{"requestID":1,{CUSTOM},"data":{{"roomID":"r1","customInfo":7}}}}"#),
            format!(r#"{{"requestID":1,{MEDIA},"data":{{"roomID":"r1"}}}}"#),
            // Duplicates, wrong types, missing ids, trailing text, bounds.
            format!(r#"{{"requestID":1,{CUSTOM},{CUSTOM},{data}}}"#),
            format!(r#"{{"requestID":1,{CUSTOM},{data},{data}}}"#),
            format!(r#"{{"requestID":1,"requestID":2,{CUSTOM},{data}}}"#),
            format!(r#"{{"requestID":1,{CUSTOM},"noReplyOnSuccess":"yes",{data}}}"#),
            format!(r#"{{"requestID":[1],{CUSTOM},{data}}}"#),
            format!(r#"{{{CUSTOM},{data}}}"#),
            format!(r#"{{"requestID":null,{CUSTOM},{data}}}"#),
            format!(r#"{{"requestID":1,"method":null,{data}}}"#),
            format!(
                r#"{{"requestID":1,"operationID":"{}",{CUSTOM},{data}}}"#,
                "o".repeat(10_000)
            ),
            format!(r#"{{"requestID":1,{CUSTOM},{data}}} trailing"#),
            format!(
                r#"{{"requestID":1,{CUSTOM},"data":{{"roomID":"r1","customInfo":"{}"}}}}"#,
                "x".repeat(70_000)
            ),
        ] {
            same(&text);
        }
        assert!(read(&format!(r#"{{{data},{CUSTOM},"requestID":1}}"#)).is_none());
    }

    #[test]
    fn every_order_of_the_envelope_reads_alike() {
        let parts = [
            r#""requestID":9"#,
            r#""operationID":"op""#,
            CUSTOM,
            r#""noReplyOnSuccess":true"#,
            r#""data":{"roomID":"r1","customInfo":"hi"}"#,
        ];
        let mut orders = 0;
        for a in 0..5 {
            for b in 0..5 {
                for c in 0..5 {
                    for d in 0..5 {
                        for e in 0..5 {
                            let order = [a, b, c, d, e];
                            if (0..5).any(|i| !order.contains(&i)) {
                                continue;
                            }
                            let text = format!("{{{}}}", order.map(|i| parts[i]).join(","));
                            same(&text);
                            let method_first = order.iter().position(|&i| i == 2)
                                < order.iter().position(|&i| i == 4);
                            assert_eq!(read(&text).is_some(), method_first, "{text}");
                            orders += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(orders, 120);
    }
}
