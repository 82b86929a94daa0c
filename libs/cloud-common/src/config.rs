//! Typed configuration from environment variables.
//!
//! Rules shared by every binary: an empty value means unset; surrounding white space is
//! ignored; a value that does not parse stops the process at start with one message per bad
//! variable, naming it. Each service declares the variables it reads in an [`EnvVar`] table,
//! which feeds `<binary> env`, the README and the manifest-contract test.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use url::Url;

use crate::Secret;

/// One documented environment variable of a binary.
#[derive(Debug, Clone, Copy)]
pub struct EnvVar {
    pub name: &'static str,
    /// Human-readable default ("" when there is none).
    pub default: &'static str,
    /// Whether production deployments must set it (the binary still starts without it in dev).
    pub required_in_production: bool,
    pub description: &'static str,
}

impl EnvVar {
    pub const fn new(name: &'static str, default: &'static str, description: &'static str) -> Self {
        Self {
            name,
            default,
            required_in_production: false,
            description,
        }
    }

    pub const fn required(mut self) -> Self {
        self.required_in_production = true;
        self
    }
}

/// A snapshot of the environment. Tests build one from pairs instead of mutating the process
/// environment, which would race between parallel tests.
#[derive(Debug, Default)]
pub struct Env {
    vars: HashMap<String, String>,
    read: Mutex<BTreeSet<String>>,
}

impl Env {
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars())
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            read: Mutex::new(BTreeSet::new()),
        }
    }

    /// The trimmed value, or `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        if let Ok(mut read) = self.read.lock() {
            read.insert(name.to_owned());
        }
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every name looked up so far (lets a test prove a binary reads only documented variables).
    pub fn names_read(&self) -> BTreeSet<String> {
        self.read.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// One bad variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ConfigError {
    pub name: String,
    pub message: String,
}

/// Every bad variable found while loading a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.name.as_str()).collect()
    }
}

/// Reads variables, collecting every error instead of stopping at the first, so an operator
/// fixes a broken deployment in one round.
pub struct Reader<'a> {
    env: &'a Env,
    errors: Vec<ConfigError>,
}

impl<'a> Reader<'a> {
    pub fn new(env: &'a Env) -> Self {
        Self {
            env,
            errors: Vec::new(),
        }
    }

    pub fn fail(&mut self, name: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            name: name.to_owned(),
            message: message.into(),
        });
    }

    pub fn string(&mut self, name: &str) -> Option<String> {
        self.env.get(name).map(str::to_owned)
    }

    pub fn string_or(&mut self, name: &str, default: &str) -> String {
        self.string(name).unwrap_or_else(|| default.to_owned())
    }

    pub fn secret(&mut self, name: &str) -> Option<Secret> {
        self.string(name).map(Secret::new)
    }

    pub fn parse_opt<T>(&mut self, name: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let raw = self.env.get(name)?;
        match raw.parse::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(name, format!("cannot parse {raw:?}: {e}"));
                None
            }
        }
    }

    pub fn parse<T>(&mut self, name: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.parse_opt(name).unwrap_or(default)
    }

    /// An integer within `min..=max`.
    pub fn int_in(&mut self, name: &str, default: u64, min: u64, max: u64) -> u64 {
        match self.parse_opt::<u64>(name) {
            Some(v) if (min..=max).contains(&v) => v,
            Some(v) => {
                self.fail(name, format!("{v} is outside {min}..={max}"));
                default
            }
            None => default,
        }
    }

    /// A whole number of seconds, at least one.
    pub fn seconds(&mut self, name: &str, default: u64) -> Duration {
        Duration::from_secs(self.int_in(name, default, 1, 10 * 365 * 24 * 3600))
    }

    pub fn port(&mut self, name: &str, default: u16) -> u16 {
        self.parse(name, default)
    }

    pub fn bool(&mut self, name: &str, default: bool) -> bool {
        let Some(raw) = self.env.get(name) else {
            return default;
        };
        match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => {
                self.fail(name, format!("expected true or false, got {raw:?}"));
                default
            }
        }
    }

    /// An absolute URL with one of `schemes`.
    pub fn url_opt(&mut self, name: &str, schemes: &[&str]) -> Option<Url> {
        let raw = self.env.get(name)?;
        match Url::parse(raw) {
            Ok(url) if schemes.contains(&url.scheme()) => Some(url),
            Ok(url) => {
                self.fail(
                    name,
                    format!(
                        "scheme {:?} is not one of {}",
                        url.scheme(),
                        schemes.join(", ")
                    ),
                );
                None
            }
            Err(e) => {
                self.fail(name, format!("not a URL ({e})"));
                None
            }
        }
    }

    #[allow(
        clippy::expect_used,
        reason = "defaults are literals of the binaries, parsed by their env tests"
    )]
    pub fn url(&mut self, name: &str, schemes: &[&str], default: &str) -> Url {
        self.url_opt(name, schemes).unwrap_or_else(|| {
            Url::parse(default)
                .unwrap_or_else(|_| Url::parse("http://127.0.0.1/").expect("static URL"))
        })
    }

    /// A comma-separated list of non-empty items.
    pub fn list(&mut self, name: &str) -> Vec<String> {
        self.string(name)
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn finish(self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

/// Renders a variable table as Markdown rows (used for the README and `<binary> env --markdown`).
pub fn markdown_table(vars: &[EnvVar]) -> String {
    let mut out = String::from("| Variable | Default | Meaning |\n|---|---|---|\n");
    for v in vars {
        let default = if v.default.is_empty() {
            "—".to_owned()
        } else {
            format!("`{}`", v.default)
        };
        let required = if v.required_in_production {
            " **Required in production.**"
        } else {
            ""
        };
        out.push_str(&format!(
            "| `{}` | {} | {}{} |\n",
            v.name, default, v.description, required
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_means_unset_and_every_bad_variable_is_reported() {
        let env = Env::from_pairs([
            ("A", "  "),
            ("B", "x"),
            ("C", "70000"),
            ("D", "maybe"),
            ("E", "ftp://x"),
        ]);
        let mut r = Reader::new(&env);
        assert_eq!(r.string("A"), None);
        assert_eq!(r.parse::<u32>("B", 7), 7);
        assert_eq!(r.port("C", 1), 1);
        assert!(r.bool("D", true));
        assert!(r.url_opt("E", &["http", "https"]).is_none());
        let errors = r.finish().unwrap_err();
        assert_eq!(errors.names(), vec!["B", "C", "D", "E"]);
        assert!(errors.to_string().contains("B: cannot parse \"x\""));
    }

    #[test]
    fn production_profile_names_every_missing_required_variable() {
        const VARS: &[EnvVar] = &[
            EnvVar::new("A", "", "").required(),
            EnvVar::new("B", "", "").required(),
            EnvVar::new("C", "", ""),
        ];
        let env = Env::from_pairs([("A", " "), ("CHATONS_PROFILE", "production")]);
        let mut r = Reader::new(&env);
        let common = CommonConfig::read(&mut r, 1);
        r.require_for_profile(common.profile, VARS);
        assert_eq!(r.finish().unwrap_err().names(), vec!["A", "B"]);
        // Development: the same environment is accepted.
        let env = Env::from_pairs([("A", " ")]);
        let mut r = Reader::new(&env);
        let common = CommonConfig::read(&mut r, 1);
        r.require_for_profile(common.profile, VARS);
        assert!(r.finish().is_ok());
        // A typo in the profile is an error, and is treated as production.
        let env = Env::from_pairs([("CHATONS_PROFILE", "prod")]);
        let mut r = Reader::new(&env);
        let common = CommonConfig::read(&mut r, 1);
        r.require_for_profile(common.profile, VARS);
        assert_eq!(
            r.finish().unwrap_err().names(),
            vec!["CHATONS_PROFILE", "A", "B"]
        );
    }

    #[test]
    fn ranges_and_lists() {
        let env = Env::from_pairs([("N", "0"), ("L", "a, b,,c ")]);
        let mut r = Reader::new(&env);
        assert_eq!(r.int_in("N", 5, 1, 10), 5);
        assert_eq!(r.list("L"), vec!["a", "b", "c"]);
        assert_eq!(r.finish().unwrap_err().names(), vec!["N"]);
        assert!(env.names_read().contains("L"));
    }
}

/// Variables every binary reads, with the same meaning everywhere.
pub const COMMON_ENV: &[EnvVar] = &[
    EnvVar::new("PORT", "4000 / 4001 / 4002", "TCP port to listen on (cloud-api / cloud-realtime / runtime-headless)."),
    EnvVar::new("CHATONS_CLOUD_VERSION", env!("CARGO_PKG_VERSION"), "Version reported by /healthz."),
    EnvVar::new("LOG_FORMAT", "pretty", "`json` for one JSON object per log line (production), `pretty` for humans."),
    EnvVar::new("RUST_LOG", "info", "Log filter (tracing EnvFilter syntax)."),
    EnvVar::new("CHATONS_CLOUD_MAX_JSON_BODY_BYTES", "1048576", "Largest accepted request body; larger bodies get 413."),
    EnvVar::new("CHATONS_CLOUD_CORS_ORIGINS", "", "Comma-separated browser origins allowed to call with credentials (never reflected)."),
    EnvVar::new("CHATONS_SHUTDOWN_DRAIN_SECONDS", "10", "How long in-flight requests may take to finish after SIGTERM."),
    EnvVar::new(
        "CHATONS_HTTP_HEADER_TIMEOUT_SECONDS",
        "10",
        "A connection must deliver a complete request head within this many seconds of its first byte (or of being opened); otherwise it is closed.",
    ),
    EnvVar::new(
        "CHATONS_HTTP_IDLE_TIMEOUT_SECONDS",
        "120",
        "A keep-alive connection with no request for this many seconds is closed (longer than the gateway's own upstream idle timeout, so the gateway closes first).",
    ),
    EnvVar::new(
        "CHATONS_HTTP_BODY_TIMEOUT_SECONDS",
        "30",
        "A request body must arrive completely within this many seconds of its head (408 otherwise), and a client that stops reading a response for this long is cut off.",
    ),
    EnvVar::new(
        "CHATONS_HTTP_MAX_CONNECTIONS",
        "1024",
        "Open HTTP connections per process; one more is answered 503 and closed at once (upgraded websockets are bounded per instance instead).",
    ),
    EnvVar::new(
        "CHATONS_PROFILE",
        "development",
        "`production` (set by the production overlay): every variable required in production must be set, so the in-memory store, in-process fan-out and generated keys are never used; a missing or empty one stops the process (exit 2) naming it.",
    ),
    EnvVar::new(
        "CHATONS_INTERNAL_SERVICE_TOKEN",
        "generated by scripts/dev",
        "Shared bearer token of the internal service-to-service endpoints (compared in constant time).",
    )
    .required(),
];

/// How strictly a binary treats missing settings (`CHATONS_PROFILE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Embedded fallbacks allowed: in-memory stores, in-process fan-out, generated dev keys.
    #[default]
    Development,
    /// Every variable marked required in production must be set; no fallback is ever used.
    Production,
}

impl Profile {
    pub fn is_production(self) -> bool {
        self == Profile::Production
    }
}

impl<'a> Reader<'a> {
    /// Under [`Profile::Production`], one error per variable of `vars` that is marked
    /// required in production and is missing or empty. Called once by each binary's
    /// `Config::from_env` with its whole table, so a variable that becomes required is
    /// enforced without further code.
    pub fn require_for_profile(&mut self, profile: Profile, vars: &[EnvVar]) {
        if !profile.is_production() {
            return;
        }
        for v in vars.iter().filter(|v| v.required_in_production) {
            if self.env.get(v.name).is_none() {
                self.fail(
                    v.name,
                    "required when CHATONS_PROFILE=production (missing or empty)",
                );
            }
        }
    }
}

/// Settings shared by every binary.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub profile: Profile,
    pub port: u16,
    pub version: String,
    pub log_format: crate::telemetry::LogFormat,
    pub max_body_bytes: usize,
    pub cors_origins: Vec<String>,
    pub drain: Duration,
    pub limits: crate::limits::ServerLimits,
    pub internal_token: Option<Secret>,
}

impl CommonConfig {
    pub fn read(r: &mut Reader<'_>, default_port: u16) -> Self {
        let log_format = match r.string("LOG_FORMAT").as_deref() {
            None | Some("pretty") => crate::telemetry::LogFormat::Pretty,
            Some("json") => crate::telemetry::LogFormat::Json,
            Some(other) => {
                r.fail(
                    "LOG_FORMAT",
                    format!("expected json or pretty, got {other:?}"),
                );
                crate::telemetry::LogFormat::Pretty
            }
        };
        // RUST_LOG is read by the tracing filter itself; looked up here so it is documented.
        let _ = r.string("RUST_LOG");
        let mut origins = Vec::new();
        for origin in r.list("CHATONS_CLOUD_CORS_ORIGINS") {
            match Url::parse(&origin) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    origins.push(u.origin().ascii_serialization())
                }
                _ => r.fail(
                    "CHATONS_CLOUD_CORS_ORIGINS",
                    format!("{origin:?} is not an http(s) origin"),
                ),
            }
        }
        let profile = match r.string("CHATONS_PROFILE").as_deref() {
            None | Some("development") => Profile::Development,
            Some("production") => Profile::Production,
            Some(other) => {
                r.fail(
                    "CHATONS_PROFILE",
                    format!("expected development or production, got {other:?}"),
                );
                // An unknown profile must never relax the production rules.
                Profile::Production
            }
        };
        Self {
            profile,
            port: r.port("PORT", default_port),
            version: r.string_or("CHATONS_CLOUD_VERSION", env!("CARGO_PKG_VERSION")),
            log_format,
            max_body_bytes: r.int_in(
                "CHATONS_CLOUD_MAX_JSON_BODY_BYTES",
                1_048_576,
                1024,
                64 * 1024 * 1024,
            ) as usize,
            cors_origins: origins,
            drain: r.seconds("CHATONS_SHUTDOWN_DRAIN_SECONDS", 10),
            limits: crate::limits::ServerLimits::read(r),
            internal_token: r.secret("CHATONS_INTERNAL_SERVICE_TOKEN"),
        }
    }

    pub fn http_options(&self) -> crate::http::HttpOptions {
        crate::http::HttpOptions {
            body_limit: self.max_body_bytes,
            body_timeout: self.limits.body_timeout,
            cors_origins: self.cors_origins.clone(),
        }
    }

    /// The drain bound and connection limits, for [`crate::server::serve_with`].
    pub fn serve_options(&self) -> crate::server::ServeOptions {
        crate::server::ServeOptions {
            drain: self.drain,
            limits: self.limits,
        }
    }
}
