//! Browser-facing plumbing shared by the OIDC pages and the portal: cookies, the CSRF
//! double-submit token, security headers and HTML responses.
//!
//! Every form carries a `csrf_token` field. A browser with a session cookie gets a token derived
//! from that session (a labelled SHA-256 of it), so the token is bound to the session: a token
//! planted by another site (e.g. a cookie set from a sibling subdomain) never matches, and a
//! new session means new tokens. Before sign-in, the token equals the `chatons_csrf` cookie
//! (random, HttpOnly, SameSite=Lax), which a cross-site page can neither read nor set. Pages send a CSP without inline script, `frame-ancestors 'none'` and no referrer,
//! so authorization codes in URLs never leak through Referer headers.

pub mod caller;
pub mod client_ip;

use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use cookie::{Cookie, SameSite};
use subtle::ConstantTimeEq;

pub const SESSION_COOKIE: &str = "chatons_cloud_session";
pub const CSRF_COOKIE: &str = "chatons_csrf";

/// The value of cookie `name`, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .and_then(|c| c.value_raw())
        .map(|v| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure when the site is https.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let c = Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .secure(secure)
        .build();
    HeaderValue::from_str(&c.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

pub fn clear_cookie(name: &str, secure: bool) -> HeaderValue {
    set_cookie(name, "", 0, secure)
}

/// The CSRF token of this browser, and the `Set-Cookie` to send when it is new.
pub fn csrf_token(headers: &HeaderMap, secure: bool) -> (String, Option<HeaderValue>) {
    if let Some(session) = cookie(headers, SESSION_COOKIE) {
        return (session_csrf(session), None);
    }
    match cookie(headers, CSRF_COOKIE).filter(|v| v.len() >= 32) {
        Some(existing) => (existing.to_owned(), None),
        None => {
            let token = crate::crypto::new_token("");
            let cookie = set_cookie(CSRF_COOKIE, &token, 60 * 60 * 24, secure);
            (token, Some(cookie))
        }
    }
}

/// The CSRF token of forms shown to the holder of session cookie `session` (see the module
/// docs). Labelled, so it is not the session's stored hash.
pub fn session_csrf(session: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(
        format!("chatons-csrf\0{session}").as_bytes(),
    ))
}

/// The submitted form token is this browser's (compared in constant time).
pub fn csrf_ok(headers: &HeaderMap, submitted: Option<&str>) -> bool {
    let expected = match cookie(headers, SESSION_COOKIE) {
        Some(session) => session_csrf(session),
        None => match cookie(headers, CSRF_COOKIE) {
            Some(c) => c.to_owned(),
            None => return false,
        },
    };
    match submitted {
        Some(form) if !expected.is_empty() => {
            bool::from(expected.as_bytes().ct_eq(form.as_bytes()))
        }
        _ => false,
    }
}

/// An HTML page with the security headers. `form_action` lists extra CSP `form-action`
/// sources: a form whose answer redirects to the app (e.g. `chatons:`) must name it, or
/// browsers block the redirect.
pub fn html(status: StatusCode, body: String, form_action: &[String], https: bool) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    let mut csp = String::from(
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    );
    for source in form_action {
        csp.push(' ');
        csp.push_str(source);
    }
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    apply_security_headers(headers, https);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub fn apply_security_headers(headers: &mut HeaderMap, https: bool) {
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
}

/// A redirect that browsers follow with GET (303 after a POST, 302 otherwise), with headers
/// that keep the target (it may carry a code) out of caches and Referer.
pub fn redirect(location: &str, after_post: bool, cookies: Vec<HeaderValue>) -> Response {
    let status = if after_post {
        StatusCode::SEE_OTHER
    } else {
        StatusCode::FOUND
    };
    let mut response = status.into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, v);
    }
    for c in cookies {
        headers.append(header::SET_COOKIE, c);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The one stylesheet of the portal (served at `/static/portal.css`).
pub const STYLESHEET: &str = include_str!("../../static/portal.css");

pub async fn stylesheet() -> Response {
    asset(
        STYLESHEET,
        "text/css; charset=utf-8",
        "public, max-age=3600",
    )
}

/// The portal's one script: passkey registration and sign-in (served at `/static/passkeys.js`).
pub const PASSKEYS_SCRIPT: &str = include_str!("../../static/passkeys.js");

pub async fn passkeys_script() -> Response {
    asset(
        PASSKEYS_SCRIPT,
        "text/javascript; charset=utf-8",
        "public, max-age=3600",
    )
}

/// A static file served from the binary: its content type, a cache policy and `nosniff`.
pub fn asset(body: impl IntoResponse, content_type: &'static str, cache: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cookies_and_checks_csrf() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; chatons_csrf=abcdefabcdefabcdefabcdefabcdefab"),
        );
        assert_eq!(cookie(&h, "a"), Some("1"));
        assert!(csrf_ok(&h, Some("abcdefabcdefabcdefabcdefabcdefab")));
        assert!(!csrf_ok(&h, Some("wrong")));
        assert!(!csrf_ok(&h, None));
        assert!(!csrf_ok(&HeaderMap::new(), Some("")));
        let (token, set) = csrf_token(&h, false);
        assert_eq!(token, "abcdefabcdefabcdefabcdefabcdefab");
        assert!(set.is_none());
    }

    #[test]
    fn writes_cookies_the_browser_keeps_private() {
        let v = set_cookie("chatons_cloud_session", "tok", 60, true);
        let v = v.to_str().unwrap();
        for part in [
            "chatons_cloud_session=tok",
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=60",
            "Secure",
        ] {
            assert!(v.contains(part), "{part} in {v}");
        }
        assert!(
            !set_cookie("a", "b", 0, false)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("junk; b=\"2\"; a="),
        );
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "a"), None, "an empty value is no cookie");
    }
}
