//! The JSON account API: password signup, sign-in and sign-out, each with a session of the
//! desktop client (the portal's pages and the OIDC login page share `app::accounts`).

use cloud_common::time::iso;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::app::access::{self, Scope};
use crate::app::accounts::{self, Attempt, Registered, Signup, SignupInput};
use crate::app::second_factor;
use crate::app::tokens;
use crate::domain::rules;
use crate::domain::*;
use crate::sessions::{IssuedTokens, SessionRequest};
use crate::views::*;
use crate::web::caller::{Caller, apply_admin_list};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignupBody {
    #[schema(required = true, nullable = false, format = Email, min_length = 3, max_length = 254)]
    pub email: Option<String>,
    #[schema(required = true, schema_with = crate::schema::name)]
    pub display_name: Option<String>,
    #[schema(required = true, nullable = false, min_length = 8, max_length = 1024)]
    pub password: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct LoginBody {
    #[schema(required = true, nullable = false, format = Email, min_length = 3, max_length = 254)]
    pub email: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1, max_length = 1024)]
    pub password: Option<String>,
    /// A code of the authenticator app (or a recovery code): required, and only read, when the
    /// account has two-step sign-in on (401 `second_factor_required` without it).
    #[serde(rename = "totpCode")]
    #[schema(nullable = false, max_length = 64)]
    pub totp_code: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignupResponse {
    pub user: UserView,
    pub session: SessionView,
    pub requires_email_verification: bool,
}

/// The signup answer that tells nothing about the address (see `signup`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignupPendingResponse {
    pub ok: bool,
    pub requires_email_verification: bool,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub user: UserView,
    pub session: SessionView,
}

/// Sessions of the JSON account API: issued to the desktop client id with a refresh token.
fn json_api_session(
    state: &AppState,
    user: &UserId,
    active_org: Option<OrgId>,
    amr: &str,
) -> SessionRequest {
    SessionRequest {
        user: user.clone(),
        client_id: state.config.client_id.clone(),
        scope: "openid profile email offline_access".into(),
        active_org,
        with_refresh: true,
        auth_time: now(),
        amr: amr.to_owned(),
    }
}

pub fn session_view(t: &IssuedTokens) -> SessionView {
    SessionView {
        access_token: t.access_token.clone(),
        refresh_token: t.refresh_token.clone().unwrap_or_default(),
        expires_at: iso(t.session.expires_at),
        refresh_expires_at: t.session.refresh_expires_at.map(iso),
    }
}

/// What a signup answers: 201 with a session, or 202 telling nothing about the address.
pub enum SignupAnswer {
    Created(Box<SignupResponse>),
    Pending(SignupPendingResponse),
}

/// A session of the JSON API for `user` (see [`json_api_session`]).
async fn issue(
    state: &AppState,
    user: &UserId,
    active_org: Option<OrgId>,
    amr: &str,
) -> Result<IssuedTokens, DomainError> {
    tokens::issue(state, &json_api_session(state, user, active_org, amr)).await
}

/// Creates an account with its personal organization (owner) and a default project. Where the
/// server verifies addresses by mail (SMTP configured, or the production profile) the answer is
/// [`SignupAnswer::Pending`], the same whether or not the address already had an account (its
/// owner is told by mail). A development server without SMTP keeps the first system's answer:
/// created with a session, 409 for a taken address.
pub async fn signup(
    state: &AppState,
    ip: std::net::IpAddr,
    body: SignupBody,
) -> Result<SignupAnswer, DomainError> {
    accounts::throttle(state, ip, Attempt::Signup, body.email.as_deref())?;
    let new = SignupInput {
        email: body.email.as_deref(),
        display_name: body.display_name.as_deref(),
        password: body.password.as_deref(),
    };
    let registered = if state.config.signup_hides_accounts() {
        match accounts::sign_up(state, new).await? {
            Signup::Created(r) if r.user.email_verified_at.is_some() => *r,
            Signup::Created(_) | Signup::AlreadyRegistered => {
                return Ok(SignupAnswer::Pending(SignupPendingResponse {
                    ok: true,
                    requires_email_verification: true,
                    message: "If the address can be used, a mail was sent to it: open its link, then sign in.".into(),
                }));
            }
        }
    } else {
        accounts::register(state, new).await?
    };
    let Registered {
        mut user,
        organization: org_id,
        plans,
    } = registered;
    let now = now();
    let tokens = issue(state, &user.id, Some(org_id), AMR_PASSWORD).await?;
    apply_admin_list(&state.config.admin_emails, &mut user);
    Ok(SignupAnswer::Created(Box::new(SignupResponse {
        user: user_view(&user, &plans, now),
        session: session_view(&tokens),
        requires_email_verification: user.email_verified_at.is_none(),
    })))
}

/// Signs in with email and password. Unknown email and wrong password answer the same 401 in
/// the same time.
pub async fn login(
    state: &AppState,
    ip: std::net::IpAddr,
    body: LoginBody,
) -> Result<LoginResponse, DomainError> {
    let (Some(email), Some(password)) = (
        rules::trimmed(body.email.as_deref()),
        body.password.as_deref().filter(|p| !p.is_empty()),
    ) else {
        return Err(DomainError::invalid("email and password are required"));
    };
    if password.chars().count() > rules::MAX_PASSWORD {
        return Err(DomainError::InvalidCredentials);
    }
    let Some(mut user) = accounts::sign_in_with_password(state, ip, &email, password).await? else {
        return Err(DomainError::InvalidCredentials);
    };
    let amr = if second_factor::required(state, &user.id).await? {
        let Some(code) = body.totp_code.as_deref().filter(|c| !c.trim().is_empty()) else {
            return Err(DomainError::SecondFactorRequired);
        };
        second_factor::check(state, &user, ip, code).await?;
        AMR_PASSWORD_AND_OTP
    } else {
        AMR_PASSWORD
    };
    let scope = Scope::load(state, &user.id, None).await?;
    let tokens = issue(state, &user.id, scope.active.clone(), amr).await?;
    apply_admin_list(&state.config.admin_emails, &mut user);
    let plans = access::plans(state).await?;
    Ok(LoginResponse {
        user: user_view(&user, &plans, now()),
        session: session_view(&tokens),
    })
}

/// Revokes the presented session and every token rotated from it.
pub async fn logout(state: &AppState, caller: &Caller) -> Result<OkBody, DomainError> {
    accounts::sign_out(state, &caller.session.family_id).await?;
    Ok(OkBody { ok: true })
}
