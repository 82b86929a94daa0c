//! cloud-api configuration, read once at start.

use std::time::Duration;

use cloud_common::Secret;
use cloud_common::config::{COMMON_ENV, CommonConfig, ConfigErrors, Env, EnvVar, Reader};
use url::Url;

pub const DEFAULT_PORT: u16 = 4000;

/// Every variable cloud-api reads (besides [`COMMON_ENV`]).
pub const SERVICE_ENV: &[EnvVar] = &[
    EnvVar::new(
        "DATABASE_URL",
        "",
        "Postgres URL. Unset: in-memory store (development only).",
    )
    .required(),
    EnvVar::new(
        "CHATONS_CLOUD_DB_POOL_SIZE",
        "10",
        "Postgres connections per replica (the manifests keep pool sizes × autoscaler maxima below the server's max_connections).",
    ),
    EnvVar::new(
        "CHATONS_CLOUD_PUBLIC_URL",
        "http://127.0.0.1:<PORT>",
        "Public base URL of cloud-api (bootstrap, links).",
    )
    .required(),
    EnvVar::new(
        "CHATONS_CLOUD_WEB_URL",
        "public URL",
        "Public base URL of the web portal (email links, cookie Secure flag, CORS default).",
    ),
    EnvVar::new(
        "CHATONS_REALTIME_PUBLIC_URL",
        "public URL with http→ws, path /ws",
        "Websocket URL handed to desktops in bootstrap.",
    ),
    EnvVar::new(
        "CHATONS_RUNTIME_PUBLIC_URL",
        "http://127.0.0.1:4002",
        "runtime-headless base URL handed to desktops in bootstrap.",
    ),
    EnvVar::new(
        "OIDC_ISSUER_URL",
        "public URL",
        "OIDC issuer identifier (`iss`).",
    ),
    EnvVar::new(
        "OIDC_CLIENT_ID",
        "chatons-desktop",
        "Client id of the desktop (public client, PKCE).",
    ),
    EnvVar::new(
        "OIDC_CLIENT_SECRET",
        "",
        "Optional secret; when set, the desktop client must authenticate with it.",
    ),
    EnvVar::new(
        "JWT_SIGNING_KEY",
        "generated dev key",
        "PEM private key (EC P-256 → ES256, RSA → RS256) signing id_tokens.",
    )
    .required(),
    EnvVar::new(
        "CHATONS_CLOUD_ACCESS_TOKEN_TTL_SECONDS",
        "3600",
        "Access token and portal session lifetime.",
    ),
    EnvVar::new(
        "CHATONS_CLOUD_REFRESH_TOKEN_TTL_SECONDS",
        "2592000",
        "Refresh token lifetime (30 days).",
    ),
    EnvVar::new(
        "CHATONS_CLOUD_ID_TOKEN_TTL_SECONDS",
        "3600",
        "id_token lifetime.",
    ),
    EnvVar::new(
        "CHATONS_DESKTOP_AUTH_REQUEST_TTL_SECONDS",
        "300",
        "Authorization code lifetime.",
    ),
    EnvVar::new(
        "CHATONS_DEVICE_CODE_TTL_SECONDS",
        "600",
        "Lifetime of a device login (RFC 8628 device and user code): the time a user has to approve it.",
    ),
    EnvVar::new(
        "CHATONS_DEVICE_POLL_INTERVAL_SECONDS",
        "5",
        "Seconds a device must wait between polls of a device login (1–60); polling sooner answers `slow_down` and adds 5.",
    ),
    EnvVar::new(
        "CHATONS_CLOUD_EMAIL_VERIFICATION_TTL_SECONDS",
        "86400",
        "Email verification link lifetime.",
    ),
    EnvVar::new(
        "CHATONS_CLOUD_PASSWORD_RESET_TTL_SECONDS",
        "3600",
        "Password reset link lifetime.",
    ),
    EnvVar::new(
        "CHATONS_SECRETS_ENCRYPTION_KEY",
        "generated dev key",
        "Base64 of 32 bytes: AES-256-GCM key for provider and repository secrets.",
    )
    .required(),
    EnvVar::new(
        "CHATONS_SECRETS_PREVIOUS_KEYS",
        "",
        "Comma-separated base64 keys replaced by a rotation: they still open old secrets until `cloud-api reseal-secrets` has re-sealed them under the current key.",
    ),
    EnvVar::new(
        "CHATONS_ADMIN_EMAILS",
        "",
        "Comma-separated emails that are global admins once the address is proven by the verification link (no account becomes admin by signing up). Under the production profile it needs SMTP_HOST, or no address could ever be proven.",
    ),
    EnvVar::new(
        "CHATONS_DEV_AUTO_VERIFY_EMAILS",
        "false",
        "Development only (refused under CHATONS_PROFILE=production): new accounts count as email-verified at signup, so local tools work without SMTP; a listed admin address is then an admin at once. Unset, a server without SMTP writes the verification links to its log.",
    ),
    EnvVar::new(
        "JWT_RETIRED_PUBLIC_KEYS",
        "",
        "JWKS JSON of previous public signing keys, published until the tokens they signed expire.",
    ),
    EnvVar::new(
        "OIDC_EXTRA_CLIENTS",
        "",
        "JSON list of other relying parties: `[{\"id\",\"secret\"?,\"redirectUris\":[…],\"postLogoutRedirectUris\"?:[…],\"deviceGrant\"?:true}]` (exact redirect match; `deviceGrant` allows RFC 8628 device login). `chatons-cli` (public, device login only) is always registered.",
    ),
    EnvVar::new(
        "CHATONS_PORTAL_SESSION_TTL_SECONDS",
        "43200",
        "Lifetime of the browser sign-in session (cookie) of the portal and the authorization page.",
    ),
    EnvVar::new(
        "CHATONS_TOKEN_RATE_PER_SECOND",
        "20",
        "Token-endpoint requests per second allowed per client IP and per user (burst 5×); 429 beyond.",
    ),
    EnvVar::new(
        "CHATONS_REFRESH_REUSE_GRACE_SECONDS",
        "30",
        "A refresh token presented again within this many seconds of its rotation returns the same successor pair (the desktop refreshes from several places at once); later re-use revokes the family. 0: no grace.",
    ),
    EnvVar::new(
        "CHATONS_HOUSEKEEPING_INTERVAL_SECONDS",
        "3600",
        "How often expired sessions, authorization codes, email tokens and old delivered mails are deleted.",
    ),
    EnvVar::new(
        "CHATONS_INVITES_PER_HOUR_PER_ACCOUNT",
        "20",
        "Invitations one account may create per hour (all organizations together); 429 beyond.",
    ),
    EnvVar::new(
        "CHATONS_INVITES_PER_HOUR_PER_ORG",
        "50",
        "Invitations one organization may receive per hour (all its managers together); 429 beyond.",
    ),
    EnvVar::new(
        "CHATONS_MAX_INSTANCES_PER_USER",
        "20",
        "Desktop instance ids one user may hold (registered, or claimed on first use by a realtime or runtime call).",
    ),
    EnvVar::new(
        "CHATONS_TRUSTED_PROXIES",
        "",
        "Comma-separated proxy addresses or CIDR networks (e.g. the ingress pods' `10.0.0.0/8`) whose `X-Forwarded-For` names the client for per-IP rate limits; unset: the socket peer is the client.",
    ),
    EnvVar::new(
        "CHATONS_DATA_DIR",
        ".chatons-data",
        "Where development keys are kept when no key is configured.",
    ),
    EnvVar::new(
        "SMTP_HOST",
        "",
        "SMTP server; unset: mails are logged instead of sent.",
    ),
    EnvVar::new("SMTP_PORT", "587", "SMTP port."),
    EnvVar::new(
        "SMTP_SECURE",
        "false",
        "`true` for implicit TLS (port 465); otherwise STARTTLS when offered.",
    ),
    EnvVar::new("SMTP_USER", "", "SMTP user name."),
    EnvVar::new("SMTP_PASS", "", "SMTP password."),
    EnvVar::new(
        "SMTP_FROM",
        "Chatons Cloud <no-reply@chatons.ai>",
        "Sender of every mail.",
    ),
];

/// All variables, for `cloud-api env` and the README.
pub fn env_vars() -> Vec<EnvVar> {
    COMMON_ENV.iter().chain(SERVICE_ENV).copied().collect()
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub implicit_tls: bool,
    pub user: Option<String>,
    pub pass: Option<Secret>,
    pub from: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub database_url: Option<Secret>,
    pub db_pool_size: u32,
    pub public_url: Url,
    pub web_url: Url,
    pub realtime_public_url: Url,
    pub runtime_public_url: Url,
    pub issuer: Url,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub jwt_signing_key: Option<Secret>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub id_token_ttl: Duration,
    pub auth_code_ttl: Duration,
    pub device_code_ttl: Duration,
    /// The polling interval a device grant starts with (seconds).
    pub device_poll_interval: u64,
    pub email_verification_ttl: Duration,
    pub password_reset_ttl: Duration,
    pub secrets_key: Option<Secret>,
    pub secrets_previous_keys: Option<Secret>,
    /// Lower-cased emails that are admins (once verified).
    pub admin_emails: Vec<String>,
    /// Development only: signup marks the address verified without a link.
    pub dev_auto_verify_emails: bool,
    pub oidc_retired_keys: Option<String>,
    pub oidc_extra_clients: Option<String>,
    pub portal_session_ttl: Duration,
    pub token_rate_per_second: u64,
    /// How long a rotated refresh token still yields its successor (0: never).
    pub refresh_reuse_grace: Duration,
    /// Period of the housekeeping pass.
    pub housekeeping_interval: Duration,
    /// Invitations per rolling hour: per inviting account, per organization.
    pub invites_per_hour_per_account: u64,
    pub invites_per_hour_per_org: u64,
    /// Instance ids one user may hold.
    pub max_instances_per_user: usize,
    pub trusted_proxies: crate::net::TrustedProxies,
    pub data_dir: std::path::PathBuf,
    pub smtp: Option<SmtpConfig>,
}

const HTTP: &[&str] = &["http", "https"];

impl Config {
    /// Whether the signup answer must not tell if an address already has an account: always,
    /// except on a development server without SMTP, whose local tools get the first system's
    /// answer (a session at once, 409 for a taken address).
    pub fn signup_hides_accounts(&self) -> bool {
        self.smtp.is_some() || self.common.profile.is_production()
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigErrors> {
        let mut r = Reader::new(env);
        let common = CommonConfig::read(&mut r, DEFAULT_PORT);
        r.require_for_profile(common.profile, &env_vars());
        let public_url = r.url(
            "CHATONS_CLOUD_PUBLIC_URL",
            HTTP,
            &format!("http://127.0.0.1:{}", common.port),
        );
        let web_url = r
            .url_opt("CHATONS_CLOUD_WEB_URL", HTTP)
            .unwrap_or_else(|| public_url.clone());
        let default_ws = {
            let mut u = public_url.clone();
            let scheme = if u.scheme() == "https" { "wss" } else { "ws" };
            let _ = u.set_scheme(scheme);
            if u.port().is_none() || u.port() == Some(DEFAULT_PORT) {
                let _ = u.set_port(if u.host_str() == Some("127.0.0.1") {
                    Some(4001)
                } else {
                    None
                });
            }
            u.set_path("/ws");
            u
        };
        let realtime_public_url = r
            .url_opt("CHATONS_REALTIME_PUBLIC_URL", &["ws", "wss"])
            .unwrap_or(default_ws);
        let runtime_public_url = r.url("CHATONS_RUNTIME_PUBLIC_URL", HTTP, "http://127.0.0.1:4002");
        let issuer = r
            .url_opt("OIDC_ISSUER_URL", HTTP)
            .unwrap_or_else(|| public_url.clone());
        let smtp = r.string("SMTP_HOST").map(|host| SmtpConfig {
            host,
            port: 0,
            implicit_tls: false,
            user: None,
            pass: None,
            from: String::new(),
        });
        let smtp_port = r.port("SMTP_PORT", 587);
        let smtp_secure = r.bool("SMTP_SECURE", false);
        let smtp_user = r.string("SMTP_USER");
        let smtp_pass = r.secret("SMTP_PASS");
        let smtp_from = r.string_or("SMTP_FROM", "Chatons Cloud <no-reply@chatons.ai>");
        let smtp = smtp.map(|s| SmtpConfig {
            port: smtp_port,
            implicit_tls: smtp_secure,
            user: smtp_user,
            pass: smtp_pass,
            from: smtp_from,
            ..s
        });
        let mut trusted = Vec::new();
        for item in r.list("CHATONS_TRUSTED_PROXIES") {
            match item.parse() {
                Ok(net) => trusted.push(net),
                Err(message) => r.fail("CHATONS_TRUSTED_PROXIES", message),
            }
        }
        let config = Self {
            database_url: r.secret("DATABASE_URL"),
            db_pool_size: r.int_in("CHATONS_CLOUD_DB_POOL_SIZE", 10, 1, 200) as u32,
            public_url,
            web_url,
            realtime_public_url,
            runtime_public_url,
            issuer,
            client_id: r.string_or("OIDC_CLIENT_ID", "chatons-desktop"),
            client_secret: r.secret("OIDC_CLIENT_SECRET"),
            jwt_signing_key: r.secret("JWT_SIGNING_KEY"),
            access_token_ttl: r.seconds("CHATONS_CLOUD_ACCESS_TOKEN_TTL_SECONDS", 3600),
            refresh_token_ttl: r.seconds("CHATONS_CLOUD_REFRESH_TOKEN_TTL_SECONDS", 30 * 24 * 3600),
            id_token_ttl: r.seconds("CHATONS_CLOUD_ID_TOKEN_TTL_SECONDS", 3600),
            auth_code_ttl: r.seconds("CHATONS_DESKTOP_AUTH_REQUEST_TTL_SECONDS", 300),
            device_code_ttl: r.seconds("CHATONS_DEVICE_CODE_TTL_SECONDS", 600),
            device_poll_interval: r.int_in("CHATONS_DEVICE_POLL_INTERVAL_SECONDS", 5, 1, 60),
            email_verification_ttl: r
                .seconds("CHATONS_CLOUD_EMAIL_VERIFICATION_TTL_SECONDS", 86_400),
            password_reset_ttl: r.seconds("CHATONS_CLOUD_PASSWORD_RESET_TTL_SECONDS", 3600),
            secrets_key: r.secret("CHATONS_SECRETS_ENCRYPTION_KEY"),
            secrets_previous_keys: r.secret("CHATONS_SECRETS_PREVIOUS_KEYS"),
            admin_emails: r
                .list("CHATONS_ADMIN_EMAILS")
                .into_iter()
                .map(|e| e.to_lowercase())
                .collect(),
            dev_auto_verify_emails: r.bool("CHATONS_DEV_AUTO_VERIFY_EMAILS", false),
            oidc_retired_keys: r.string("JWT_RETIRED_PUBLIC_KEYS"),
            oidc_extra_clients: r.string("OIDC_EXTRA_CLIENTS"),
            portal_session_ttl: r.seconds("CHATONS_PORTAL_SESSION_TTL_SECONDS", 43_200),
            token_rate_per_second: r.int_in("CHATONS_TOKEN_RATE_PER_SECOND", 20, 1, 1_000_000),
            refresh_reuse_grace: Duration::from_secs(r.int_in(
                "CHATONS_REFRESH_REUSE_GRACE_SECONDS",
                30,
                0,
                3600,
            )),
            housekeeping_interval: r.seconds("CHATONS_HOUSEKEEPING_INTERVAL_SECONDS", 3600),
            invites_per_hour_per_account: r.int_in(
                "CHATONS_INVITES_PER_HOUR_PER_ACCOUNT",
                20,
                1,
                100_000,
            ),
            invites_per_hour_per_org: r.int_in("CHATONS_INVITES_PER_HOUR_PER_ORG", 50, 1, 100_000),
            max_instances_per_user: r.int_in("CHATONS_MAX_INSTANCES_PER_USER", 20, 1, 100_000)
                as usize,
            trusted_proxies: crate::net::TrustedProxies::new(trusted),
            data_dir: r.string_or("CHATONS_DATA_DIR", ".chatons-data").into(),
            smtp,
            common,
        };
        if config.common.profile.is_production() {
            if config.dev_auto_verify_emails {
                r.fail(
                    "CHATONS_DEV_AUTO_VERIFY_EMAILS",
                    "is development-only: under CHATONS_PROFILE=production an address is verified only by its link",
                );
            }
            if !config.admin_emails.is_empty() && config.smtp.is_none() {
                r.fail(
                    "CHATONS_ADMIN_EMAILS",
                    "admins must prove their address with the verification mail, and SMTP_HOST is not set (no mail can be sent)",
                );
            }
        }
        r.finish()?;
        let mut config = config;
        if config.common.cors_origins.is_empty() {
            // Default allow-list: the web portal's own origin, never a reflected one.
            config.common.cors_origins = vec![config.web_url.origin().ascii_serialization()];
        }
        Ok(config)
    }
}
