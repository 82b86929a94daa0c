//! Accounts: signup and password sign-in, shared by the JSON API, the portal and the OIDC login
//! page.

use crate::AppState;
use crate::domain::rules::{self, MAX_NAME};
use crate::domain::*;
use crate::issuer::PORTAL_CLIENT;
use crate::password::needs_upgrade;
use crate::sessions::{self, IssuedTokens, SessionPolicy, SessionRequest};
use crate::store::NewAccount;

/// A credential attempt, for the rate limits (`crate::ratelimit`). Each kind has one bucket per
/// client IP and one per account, shared by every endpoint that takes it (JSON API, portal,
/// authorization page), so switching endpoints buys no extra guesses.
#[derive(Debug, Clone, Copy)]
pub enum Attempt {
    Login,
    Signup,
    /// A code of the authenticator app or a recovery code (counted per user).
    SecondFactor,
    /// A device-login user code looked up or answered (counted per user).
    DeviceCode,
}

impl Attempt {
    fn key(self) -> &'static str {
        match self {
            Attempt::Login => "login",
            Attempt::Signup => "signup",
            Attempt::SecondFactor => "totp",
            Attempt::DeviceCode => "device",
        }
    }
}

/// Takes one attempt of `kind` from the client's and (when given) the account's bucket;
/// [`DomainError::RateLimited`] when either is empty.
pub fn throttle(
    state: &AppState,
    ip: std::net::IpAddr,
    kind: Attempt,
    email: Option<&str>,
) -> DomainResult<()> {
    let account = email.map(account_key).filter(|e| !e.is_empty());
    throttle_account(state, ip, kind, account.as_deref())
}

/// [`throttle`] for an account already named by its key (a user id for the attempts made
/// while signed in or half signed in, which have no address to normalize).
pub fn throttle_account(
    state: &AppState,
    ip: std::net::IpAddr,
    kind: Attempt,
    account: Option<&str>,
) -> DomainResult<()> {
    let limited = |wait: std::time::Duration| DomainError::RateLimited(wait.as_secs().max(1));
    state
        .limiters
        .per_ip
        .check(&format!("{}:{ip}", kind.key()))
        .map_err(limited)?;
    if let Some(account) = account {
        state
            .limiters
            .per_account
            .check(&format!("{}:{account}", kind.key()))
            .map_err(limited)?;
    }
    Ok(())
}

/// The key an address is counted under: its normalized form when it has one, so variants of
/// one address (case, full-width letters) share a bucket.
fn account_key(email: &str) -> String {
    rules::normalize_email(email).unwrap_or_else(|_| email.trim().to_lowercase())
}

/// Throttled ([`Attempt::Login`]) password sign-in: the user whose email and password these
/// are, or `None` (same time either way: an unknown email is checked against a dummy hash). A legacy scrypt hash that verifies is replaced by
/// argon2id here, at the first login that knows the password; a failure to store the new hash
/// is logged and the login still succeeds (the next one retries).
#[tracing::instrument(skip_all)]
pub async fn sign_in_with_password(
    state: &AppState,
    ip: std::net::IpAddr,
    email: &str,
    password: &str,
) -> DomainResult<Option<User>> {
    throttle(state, ip, Attempt::Login, Some(email))?;
    // An account imported from the first system may predate the address rules: look it up as
    // typed when the address does not normalize.
    let user = state.store.user_by_email(&account_key(email)).await?;
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let ok = state.hasher.verify(password, stored.as_deref()).await?;
    // A disabled account answers like a wrong password (after the same hash check), so every
    // sign-in adapter refuses it without a case of its own.
    let Some(mut user) = user.filter(|u| ok && u.disabled_at.is_none()) else {
        return Ok(None);
    };
    if let Some(old) = stored.filter(|h| needs_upgrade(h)) {
        let new = state.hasher.hash(password).await?;
        match state
            .store
            .replace_password_hash(&user.id, &old, &new)
            .await
        {
            Ok(true) => {
                tracing::info!(user = %user.id, "Legacy password hash upgraded to argon2id.");
                user.password_hash = Some(new);
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(user = %user.id, error = %e, "Could not store the upgraded password hash.")
            }
        }
    }
    Ok(Some(user))
}

/// What a signup did, as far as the caller may know.
pub enum Signup {
    Created(Box<Registered>),
    /// The address already had an account; its owner was told by mail. Same work (a password
    /// hash) as a new account, so neither the answer nor its timing tells.
    AlreadyRegistered,
}

/// [`register`], except that a taken address is not an error: its owner gets an "already
/// registered" mail and the caller gets [`Signup::AlreadyRegistered`] (adapters that must not
/// reveal accounts answer both cases alike).
pub async fn sign_up(state: &AppState, new: SignupInput<'_>) -> Result<Signup, DomainError> {
    match register(state, new).await {
        Ok(r) => Ok(Signup::Created(Box::new(r))),
        Err(e) if e.is_conflict() => {
            let _ = state.hasher.hash(new.password.unwrap_or("")).await;
            let email = rules::normalize_email(new.email.unwrap_or(""))?;
            if let Ok(Some(owner)) = state.store.user_by_email(&email).await {
                crate::app::email::send_already_registered(state, &owner).await;
            }
            Ok(Signup::AlreadyRegistered)
        }
        Err(e) => Err(e),
    }
}

/// What a signup form or body gives (each checked by [`register`]).
#[derive(Debug, Clone, Copy)]
pub struct SignupInput<'a> {
    pub email: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub password: Option<&'a str>,
}

/// A new account: the user, its personal organization and the plans (for the views).
pub struct Registered {
    pub user: User,
    pub organization: OrgId,
    pub plans: Vec<Plan>,
}

/// Validates and creates an account (user, personal organization, default project) and, when
/// the email must be verified, queues the verification mail. Shared by `POST /v1/web/signup`
/// and the portal's signup page. Duplicate email → 409.
pub async fn register(state: &AppState, new: SignupInput<'_>) -> Result<Registered, DomainError> {
    let (Some(email), Some(name), Some(password)) = (
        rules::trimmed(new.email),
        rules::trimmed(new.display_name),
        new.password.filter(|p| !p.is_empty()),
    ) else {
        return Err(DomainError::invalid(
            "email, displayName, and password are required",
        ));
    };
    let email = rules::normalize_email(&email)?;
    let name = rules::bounded(name, MAX_NAME, "displayName")?;
    rules::validate_password(password)?;
    if state.store.user_by_email(&email).await?.is_some() {
        return Err(DomainError::conflict(
            "An account with this email already exists",
        ));
    }
    let hash = state
        .hasher
        .hash(password)
        .await
        .map_err(DomainError::from)?;
    let now = now();
    let plans = crate::app::access::plans(state).await?;
    let default_plan = plans
        .iter()
        .find(|p| p.is_default)
        .map(|p| p.id.clone())
        .unwrap_or_else(|| "plus".into());
    // An address is verified only by its link (the first system took it as verified when it
    // sent no mail, which made the first signup with an admin address an admin). Development
    // can opt out explicitly; production refuses that setting.
    let verified = state.config.dev_auto_verify_emails.then_some(now);
    let user = User {
        id: UserId::generate(),
        email,
        display_name: name.clone(),
        is_admin: false,
        subscription_plan: Some(default_plan),
        password_hash: Some(hash),
        email_verified_at: verified,
        complimentary: None,
        disabled_at: None,
        created_at: now,
    };
    let org = Organization {
        id: OrgId::generate(),
        slug: rules::slugify(&name),
        name: format!("{name}'s organization"),
        owner_user_id: Some(user.id.clone()),
        is_personal: true,
        created_at: now,
    };
    let project = crate::app::projects::new_project(&org, &user.id, "Cloud Workspace".into(), now);
    let org_id = org.id.clone();
    match state
        .store
        .create_account(NewAccount {
            user: user.clone(),
            organization: org,
            default_project: project,
        })
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(DomainError::conflict(
                "An account with this email already exists",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    if user.email_verified_at.is_none() {
        crate::app::email::send_verification(state, &user).await;
    }
    Ok(Registered {
        user,
        organization: org_id,
        plans,
    })
}

/// A portal (browser) session for `user`. The browser's previous session, if it had one, ends
/// with it: one browser, one session.
pub async fn start_portal_session(
    state: &AppState,
    user: &UserId,
    previous: Option<&FamilyId>,
    amr: &str,
) -> Result<IssuedTokens, DomainError> {
    let ttl = state.config.portal_session_ttl;
    let issued = sessions::issue_session(
        state.store.as_ref(),
        SessionPolicy {
            access_ttl: ttl,
            refresh_ttl: ttl,
        },
        &SessionRequest {
            user: user.clone(),
            client_id: PORTAL_CLIENT.to_owned(),
            scope: "portal".to_owned(),
            active_org: None,
            with_refresh: false,
            auth_time: now(),
            amr: amr.to_owned(),
        },
    )
    .await?;
    if let Some(old) = previous
        && let Err(e) = sessions::revoke_family(state.store.as_ref(), old).await
    {
        tracing::warn!(error = %e, "The browser's previous portal session could not be ended.");
    }
    Ok(issued)
}

/// Ends a session family (sign-out).
pub async fn sign_out(state: &AppState, family: &FamilyId) -> Result<(), DomainError> {
    Ok(sessions::revoke_family(state.store.as_ref(), family).await?)
}
