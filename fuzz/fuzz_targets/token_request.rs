//! The token endpoint's body parsing: cloud-api's own `parse_token_request` (form-encoded
//! RFC 6749 and the desktop's JSON, chosen by the content type), and cloud-common's
//! `parse_form` / `parse_json` underneath `ApiForm` / `ApiJson`. Any input must parse or be a
//! 400 — never a panic, never another status.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 5] = [
    None,
    Some("application/x-www-form-urlencoded"),
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("text/plain"),
];

fuzz_target!(|data: &[u8]| {
    use cloud_common::extract::{parse_form, parse_json};
    for content_type in CONTENT_TYPES {
        match cloud_api::parse_token_request(content_type, data) {
            Ok((req, json)) => {
                assert_eq!(json, content_type.is_some_and(|ct| ct.contains("json")));
                // The desktop's JSON exchange names no grant type: it is the code grant.
                assert!(!json || req.grant_type.is_some(), "{req:?}");
            }
            Err(e) => {
                assert_eq!(e.status.as_u16(), 400, "{e:?}");
                assert!(!e.message.is_empty());
            }
        }
    }
    for result in [
        parse_form::<HashMap<String, String>>(data).map(|_| ()),
        parse_json::<serde_json::Value>(data).map(|_| ()),
    ] {
        if let Err(e) = result {
            assert_eq!(e.status.as_u16(), 400, "{e:?}");
            assert!(!e.message.is_empty());
        }
    }
});
