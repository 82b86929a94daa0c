//! Recovery codes: what signs in when the authenticator app is lost. Shown once, stored as
//! SHA-256, each good for one sign-in.

/// Lower-case consonants and digits without look-alikes (no 0/o, 1/l).
const ALPHABET: &[u8] = b"bcdfghjkmnpqrstvwxz23456789";
const LEN: usize = 10;
/// How many a user gets at enrolment.
pub const COUNT: usize = 10;

/// A fresh code, grouped `xxxxx-xxxxx` (27^10 ≈ 2^47.5; guesses are rate limited).
pub fn new_code() -> String {
    let code = crate::crypto::random_code(ALPHABET, LEN);
    let (first, second) = code.split_at(LEN / 2);
    format!("{first}-{second}")
}

/// What the user typed as the stored form (lower case, no separators), or `None` when it
/// cannot be a recovery code.
pub fn normalize(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (code.len() == LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_normalize_back_and_nothing_else_does() {
        for _ in 0..100 {
            let code = new_code();
            assert_eq!(code.len(), LEN + 1);
            let plain = normalize(&code).unwrap();
            assert_eq!(normalize(&code.to_uppercase()), Some(plain.clone()));
            assert_eq!(plain.len(), LEN);
        }
        assert_eq!(normalize("123456"), None);
        assert_eq!(normalize("bbbbb-bbbbo"), None);
    }
}
