//! List parameters and opaque keyset cursors (`?limit=&cursor=`, `nextCursor`) of every list.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::domain::*;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 200;

/// `?limit=&cursor=` of every list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1-200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// Opaque cursor from a previous page's `nextCursor`.
    pub cursor: Option<String>,
}

impl ListQuery {
    pub fn page(&self) -> Result<PageReq, DomainError> {
        page_req(
            self.limit.as_deref(),
            self.cursor.as_deref(),
            DEFAULT_LIMIT,
            MAX_LIMIT,
        )
    }
}

/// Parses `limit` (lenient: a non-number is a 400, never a 500) and `cursor`.
pub fn page_req(
    limit: Option<&str>,
    cursor: Option<&str>,
    default: usize,
    max: usize,
) -> Result<PageReq, DomainError> {
    let limit = match limit.map(str::trim).filter(|s| !s.is_empty()) {
        None => default,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                return Err(DomainError::invalid(format!(
                    "limit must be an integer from 1 to {max}"
                )));
            }
        },
    };
    let after = match cursor.map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| DomainError::invalid("Invalid cursor"))?),
    };
    Ok(PageReq { limit, after })
}

pub fn encode_cursor(c: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::json!([c.key, c.id]).to_string())
}

fn decode_cursor(s: &str) -> Option<Cursor> {
    let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
    let (key, id): (String, String) = serde_json::from_slice(&bytes).ok()?;
    Some(Cursor { key, id })
}

pub fn next_cursor<T>(page: &Page<T>) -> Option<String> {
    page.next.as_ref().map(encode_cursor)
}

/// A page's items as their views, and the `nextCursor` of the page after it.
pub fn page_views<'a, T, V>(
    page: &'a Page<T>,
    view: impl FnMut(&'a T) -> V,
) -> (Vec<V>, Option<String>) {
    (page.items.iter().map(view).collect(), next_cursor(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_roundtrip_and_bad_input_is_400() {
        let c = Cursor {
            key: "name".into(),
            id: "project-1".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
        assert!(page_req(Some("x"), None, 50, 200).is_err());
        assert!(page_req(Some("0"), None, 50, 200).is_err());
        assert!(page_req(Some("201"), None, 50, 200).is_err());
        assert!(page_req(None, Some("!!"), 50, 200).is_err());
        assert_eq!(page_req(None, None, 50, 200).unwrap().limit, 50);
    }
}
