//! RFC 6238 time-based one-time passwords as every authenticator app reads them: HMAC-SHA-1,
//! 6 digits, 30-second steps, the secret handed over as base32 in an `otpauth://` URI.

use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::domain::Timestamp;

pub const STEP_SECS: i64 = 30;
pub const DIGITS: usize = 6;
/// 160 bits, the HMAC-SHA-1 block-friendly length RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;

/// A fresh random secret.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// The time step `t` falls in.
pub fn step_at(t: Timestamp) -> i64 {
    t.timestamp().div_euclid(STEP_SECS)
}

/// The code of `step` (RFC 4226 §5.3 dynamic truncation).
pub fn code_at(secret: &[u8], step: i64) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = ring::hmac::sign(&key, &step.to_be_bytes());
    let h = tag.as_ref();
    let offset = usize::from(h[h.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    format!(
        "{:0width$}",
        binary % 10u32.pow(DIGITS as u32),
        width = DIGITS
    )
}

/// The step within one step of `now` (clocks drift, people type slowly) whose code is `typed`.
/// Every candidate is compared in constant time.
pub fn matching_step(secret: &[u8], typed: &str, now: Timestamp) -> Option<i64> {
    let typed: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    if typed.len() != DIGITS || !typed.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = step_at(now);
    let mut found = None;
    for step in [current - 1, current, current + 1] {
        if bool::from(code_at(secret, step).as_bytes().ct_eq(typed.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding (what `otpauth://` URIs carry).
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    for chunk in bytes.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = u64::from_be_bytes([0, 0, 0, buf[0], buf[1], buf[2], buf[3], buf[4]]);
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..chars {
            let index = (n >> (35 - i * 5)) & 0x1f;
            out.push(BASE32[index as usize] as char);
        }
    }
    out
}

/// The inverse of [`base32`] (case-insensitive, spaces ignored); `None` for anything else.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits: u64 = 0;
    let mut count = 0;
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    for c in text.bytes().filter(|c| *c != b' ') {
        let value = BASE32.iter().position(|b| *b == c.to_ascii_uppercase())?;
        bits = (bits << 5) | value as u64;
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

/// The `otpauth://totp/…` URI authenticator apps import (from the QR code).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let label: String =
        url::form_urlencoded::byte_serialize(format!("{issuer}:{account}").as_bytes())
            .collect::<String>()
            .replace('+', "%20");
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("secret", &base32(secret))
        .append_pair("issuer", issuer)
        .append_pair("algorithm", "SHA1")
        .append_pair("digits", &DIGITS.to_string())
        .append_pair("period", &STEP_SECS.to_string())
        .finish();
    format!("otpauth://totp/{label}?{query}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// RFC 6238 Appendix B (SHA-1), last six digits of its eight.
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (t, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            let at = chrono::Utc.timestamp_opt(t, 0).unwrap();
            assert_eq!(code_at(secret, step_at(at)), code, "t = {t}");
            assert_eq!(matching_step(secret, code, at), Some(step_at(at)));
        }
    }

    #[test]
    fn codes_of_the_neighbouring_steps_match_and_others_do_not() {
        let secret = new_secret();
        let now = chrono::Utc::now();
        let step = step_at(now);
        for s in [step - 1, step, step + 1] {
            assert_eq!(matching_step(&secret, &code_at(&secret, s), now), Some(s));
        }
        let far = code_at(&secret, step + 5);
        if ![step - 1, step, step + 1]
            .iter()
            .any(|s| code_at(&secret, *s) == far)
        {
            assert_eq!(matching_step(&secret, &far, now), None);
        }
        assert_eq!(matching_step(&secret, "12345", now), None);
        assert_eq!(matching_step(&secret, "abcdef", now), None);
    }

    #[test]
    fn base32_roundtrips_and_matches_rfc_4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b"f"), "MY");
        let secret = new_secret();
        assert_eq!(base32_decode(&base32(&secret)), Some(secret.clone()));
        assert_eq!(base32_decode(&base32(&secret).to_lowercase()), Some(secret));
        assert_eq!(base32_decode("not base32!"), None);
        let uri = otpauth_uri("Chatons Cloud", "ada@example.com", b"12345");
        assert!(uri.starts_with("otpauth://totp/Chatons%20Cloud%3Aada%40example.com?secret=GEZDGNBV&issuer=Chatons+Cloud"), "{uri}");
    }
}
