//! Rules: validation and derivations that do not need storage.

use super::Timestamp;

use super::model::*;
use super::{DomainError, DomainResult};

pub const MAX_EMAIL: usize = 254;
pub const MAX_NAME: usize = 200;
pub const MAX_PASSWORD: usize = 1024;
pub const MIN_PASSWORD: usize = 8;
pub const MAX_SECRET: usize = 16 * 1024;
pub const MAX_URL: usize = 2048;
pub const MAX_ID: usize = 200;
pub const MAX_MESSAGE_CONTENT: usize = 512 * 1024;
pub const MAX_MESSAGES_PER_APPEND: usize = 1000;
pub const MAX_MODELS: usize = 200;

/// The trimmed value, or `None` when absent or blank.
pub fn trimmed(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A required, trimmed string of at most `max` characters.
pub fn required(v: Option<&str>, max: usize, message: &str) -> DomainResult<String> {
    let s = trimmed(v).ok_or_else(|| DomainError::invalid(message))?;
    bounded(s, max, message)
}

pub fn bounded(s: String, max: usize, what: &str) -> DomainResult<String> {
    if s.chars().count() > max {
        return Err(DomainError::invalid(format!(
            "{what}: at most {max} characters"
        )));
    }
    Ok(s)
}

/// A plausible address: one `@`, something on both sides, a dot in the domain, no spaces.
/// Lower-cased so lookups are case-insensitive.
pub fn normalize_email(raw: &str) -> DomainResult<String> {
    use unicode_normalization::UnicodeNormalization;
    // NFKC folds compatibility forms (full-width `ａ` → `a`); what is left outside ASCII
    // (Cyrillic or Greek look-alikes, zero-width characters, combining marks) is refused, so two
    // accounts can never differ only by characters a reader cannot see.
    let email = raw.trim().nfkc().collect::<String>().to_lowercase();
    if !email.is_ascii() {
        return Err(DomainError::invalid(
            "Email addresses must be written in plain ASCII letters, digits and symbols",
        ));
    }
    let ok = email.len() <= MAX_EMAIL
        && !email.chars().any(char::is_whitespace)
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if ok {
        Ok(email)
    } else {
        Err(DomainError::invalid("A valid email address is required"))
    }
}

/// Passwords are taken as typed (no trimming: spaces are characters too), 8 to 1024 chars.
pub fn validate_password(p: &str) -> DomainResult<()> {
    let n = p.chars().count();
    if n < MIN_PASSWORD {
        return Err(DomainError::invalid(
            "Password must be at least 8 characters long",
        ));
    }
    if n > MAX_PASSWORD {
        return Err(DomainError::invalid(
            "Password must be at most 1024 characters long",
        ));
    }
    Ok(())
}

/// Plans sorted by id; when none is marked default, `plus` (or the first) is reported default.
pub fn normalize_plans(mut plans: Vec<Plan>) -> Vec<Plan> {
    plans.sort_by(|a, b| a.id.cmp(&b.id));
    if !plans.iter().any(|p| p.is_default) {
        let idx = plans.iter().position(|p| p.id == "plus").unwrap_or(0);
        if let Some(p) = plans.get_mut(idx) {
            p.is_default = true;
        }
    }
    plans
}

/// The plan used when nothing else applies.
pub fn fallback_plan() -> Plan {
    Plan {
        id: "plus".into(),
        label: "Plus".into(),
        parallel_sessions_limit: 3,
        is_default: true,
        is_hidden: false,
    }
}

/// The active complimentary grant, if any.
pub fn active_grant(user: &User, now: Timestamp) -> Option<&ComplimentaryGrant> {
    user.complimentary
        .as_ref()
        .filter(|g| g.expires_at.is_none_or(|e| e > now))
}

/// The effective plan id: an active complimentary grant wins over the base plan.
pub fn effective_plan_id(user: &User, now: Timestamp) -> Option<String> {
    active_grant(user, now)
        .map(|g| g.plan_id.clone())
        .or_else(|| user.subscription_plan.clone())
}

/// The effective plan record (the default plan when the id is unknown).
pub fn effective_plan(user: &User, plans: &[Plan], now: Timestamp) -> Plan {
    let id = effective_plan_id(user, now);
    id.and_then(|id| plans.iter().find(|p| p.id == id).cloned())
        .or_else(|| plans.iter().find(|p| p.is_default).cloned())
        .unwrap_or_else(fallback_plan)
}

/// Whether the user may use the subscription-gated routes.
pub fn has_subscription(user: &User, now: Timestamp) -> bool {
    effective_plan_id(user, now).is_some()
}

/// Default API base per provider kind, as the first system chose them.
pub fn default_base_url(kind: &str) -> &'static str {
    match kind {
        "openai" => "https://api.openai.com/v1",
        "anthropic" => "https://api.anthropic.com/v1",
        "google" => "https://generativelanguage.googleapis.com/v1beta/openai",
        "github-copilot" => "https://api.individual.githubcopilot.com",
        _ => "",
    }
}

/// Only `https` (or `http` to loopback, for local model servers in development) is accepted, so
/// a provider URL cannot point the runtime at arbitrary internal plain-HTTP services.
pub fn validate_base_url(raw: &str) -> DomainResult<String> {
    let raw = raw.trim();
    if raw.len() > MAX_URL {
        return Err(DomainError::invalid("baseUrl is too long"));
    }
    let url =
        url::Url::parse(raw).map_err(|_| DomainError::invalid("baseUrl is not a valid URL"))?;
    let loopback = matches!(
        url.host_str(),
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
    );
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(DomainError::invalid(
                "baseUrl must use HTTPS (HTTP only for loopback)",
            ));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(DomainError::invalid("baseUrl must name a host"));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

/// A repository clone URL: http(s) with a host.
pub fn validate_clone_url(raw: &str) -> DomainResult<String> {
    let raw = raw.trim();
    if raw.len() > MAX_URL {
        return Err(DomainError::invalid("Repository clone URL is too long"));
    }
    let url = url::Url::parse(raw)
        .map_err(|_| DomainError::invalid("Repository clone URL is invalid"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(DomainError::invalid(
            "Repository clone URL must use HTTP or HTTPS",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(DomainError::invalid("Repository clone URL is invalid"));
    }
    Ok(raw.to_owned())
}

/// Last path segment of a clone URL without `.git`.
pub fn repo_name_of(clone_url: &str) -> Option<String> {
    let url = url::Url::parse(clone_url).ok()?;
    let last = url
        .path_segments()?
        .rev()
        .find(|s| !s.is_empty())?
        .trim_end_matches(".git")
        .to_owned();
    (!last.is_empty()).then_some(last)
}

/// A URL-safe slug from a name, with a random suffix so it is unique without a lookup.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in name.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
            dash = false;
        } else if !dash && !out.is_empty() {
            out.push('-');
            dash = true;
        }
    }
    let base: String = out.trim_end_matches('-').chars().take(40).collect();
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    if base.is_empty() {
        format!("org-{suffix}")
    } else {
        format!("{base}-{suffix}")
    }
}

/// A caller-chosen slug: lower-case letters, digits and dashes, 1 to 64 characters.
pub fn validate_slug(raw: &str) -> DomainResult<String> {
    let s = raw.trim();
    if s.is_empty()
        || s.len() > 64
        || !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(DomainError::invalid(
            "slug must be 1-64 lower-case letters, digits or dashes",
        ));
    }
    Ok(s.to_owned())
}

/// An opaque client-chosen id (message ids, instance ids): printable ASCII without spaces or
/// slashes, at most 200 characters.
pub fn validate_client_id(raw: &str, what: &str) -> DomainResult<String> {
    let s = raw.trim();
    if s.is_empty()
        || s.len() > MAX_ID
        || !s
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\')
    {
        return Err(DomainError::invalid(format!(
            "{what} must be 1-{MAX_ID} printable characters without slashes"
        )));
    }
    Ok(s.to_owned())
}

/// Whether `at` lies less than `grace` before `now` (the refresh-token re-use window).
pub fn within_grace(at: Timestamp, now: Timestamp, grace: std::time::Duration) -> bool {
    chrono::Duration::from_std(grace).is_ok_and(|g| now - at < g)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(plan: Option<&str>, grant: Option<(&str, Option<i64>)>) -> User {
        let now = super::super::now();
        User {
            id: "user-1".into(),
            email: "a@b.c".into(),
            display_name: "A".into(),
            is_admin: false,
            subscription_plan: plan.map(Into::into),
            password_hash: None,
            email_verified_at: None,
            complimentary: grant.map(|(p, days)| ComplimentaryGrant {
                plan_id: p.into(),
                granted_at: now,
                expires_at: days.map(|d| now + chrono::Duration::days(d)),
            }),
            disabled_at: None,
            created_at: now,
        }
    }

    #[test]
    fn grant_wins_until_it_expires() {
        let now = super::super::now();
        assert_eq!(
            effective_plan_id(&user(Some("plus"), Some(("max", Some(1)))), now).as_deref(),
            Some("max")
        );
        assert_eq!(
            effective_plan_id(&user(Some("plus"), Some(("max", Some(-1)))), now).as_deref(),
            Some("plus")
        );
        assert_eq!(
            effective_plan_id(&user(None, Some(("pro", None))), now).as_deref(),
            Some("pro")
        );
        assert!(!has_subscription(&user(None, None), now));
    }

    #[test]
    fn emails_and_urls() {
        assert_eq!(normalize_email(" A@B.io ").unwrap(), "a@b.io");
        assert!(normalize_email("nope").is_err());
        assert!(normalize_email("a@b").is_err());
        assert!(validate_base_url("http://10.0.0.1/v1").is_err());
        assert!(validate_base_url("http://127.0.0.1:8080/v1").is_ok());
        assert_eq!(
            validate_base_url("https://api.x.com/v1/").unwrap(),
            "https://api.x.com/v1"
        );
        assert!(validate_clone_url("ftp://x/y").is_err());
        assert_eq!(
            repo_name_of("https://github.com/a/b.git").as_deref(),
            Some("b")
        );
    }

    #[test]
    fn slugs_are_safe() {
        let s = slugify("Hello, World!");
        assert!(s.starts_with("hello-world-"), "{s}");
        assert!(validate_slug(&s).is_ok());
        assert!(validate_slug("Bad Slug").is_err());
    }
}
