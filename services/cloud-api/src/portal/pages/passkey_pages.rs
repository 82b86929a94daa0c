//! Passkeys on the portal: the script's JSON calls (registration on the security page, sign-in
//! on the login page) and the removal form. The rules are `app::passkeys`'.

use axum::Json;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::json;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use super::*;
use crate::app::passkeys;
use crate::portal::ScriptPost;

/// A refusal as the script reads it (JSON `message`).
fn refused(e: impl Into<ApiError>) -> Response {
    let e: ApiError = e.into();
    e.into_response()
}

fn signed_in(ctx: &Ctx) -> Result<Caller, EarlyAnswer> {
    ctx.caller
        .clone()
        .ok_or_else(|| refused(ApiError::unauthorized("Sign in again.")).into())
}

/// `POST /cloud/account/security/passkeys/options`: what `navigator.credentials.create` needs.
pub async fn passkey_options(
    State(state): State<AppState>,
    ScriptPost(ctx, _): ScriptPost<serde_json::Value>,
) -> Page {
    let caller = signed_in(&ctx)?;
    let (ceremony, options) = passkeys::start_registration(&state, &caller.user)
        .await
        .map_err(refused)?;
    Ok(Json(json!({"ceremony": ceremony, "publicKey": options["publicKey"]})).into_response())
}

#[derive(Deserialize)]
pub struct RegisterBody {
    ceremony: String,
    name: Option<String>,
    credential: RegisterPublicKeyCredential,
}

/// `POST /cloud/account/security/passkeys`: the browser's new credential.
pub async fn passkey_register(
    State(state): State<AppState>,
    ScriptPost(ctx, body): ScriptPost<RegisterBody>,
) -> Page {
    let caller = signed_in(&ctx)?;
    let name = body.name.as_deref();
    let added =
        passkeys::finish_registration(&state, &caller.user, &body.ceremony, name, &body.credential)
            .await
            .map_err(refused)?;
    Ok(Json(json!({"id": added.id, "name": added.name})).into_response())
}

/// `POST /cloud/account/security/passkeys/{id}/delete` (a form, no script needed).
pub async fn passkey_delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Posted<Empty>,
) -> Page {
    let (ctx, caller, Empty {}) = form.signed_in("/cloud/account/security")?;
    match passkeys::remove(&state, &caller.user.id, &id).await {
        Ok(()) => Ok(after_post("/cloud/account/security?notice=passkey-removed")),
        Err(e) => Err(ok_or_page(&ctx, e)),
    }
}

/// `POST /cloud/login/passkey/options`: what `navigator.credentials.get` needs.
pub async fn passkey_sign_in_options(
    State(state): State<AppState>,
    ip: ClientIp,
    ScriptPost(_, _): ScriptPost<serde_json::Value>,
) -> Page {
    let (ceremony, options) = passkeys::start_sign_in(&state, ip.0)
        .await
        .map_err(refused)?;
    let options = serde_json::to_value(&options).map_err(|e| refused(ApiError::internal(e)))?;
    Ok(Json(json!({"ceremony": ceremony, "publicKey": options["publicKey"]})).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInBody {
    ceremony: String,
    credential: PublicKeyCredential,
    return_to: Option<String>,
}

/// `POST /cloud/login/passkey`: the assertion; a portal session (`amr` `pop mfa`) and where to
/// go next.
pub async fn passkey_sign_in(
    State(state): State<AppState>,
    ScriptPost(ctx, body): ScriptPost<SignInBody>,
) -> Page {
    let user = passkeys::finish_sign_in(&state, &body.ceremony, &body.credential)
        .await
        .map_err(refused)?;
    let previous = ctx.caller.as_ref().map(|c| &c.session.family_id);
    let issued = accounts::start_portal_session(&state, &user.id, previous, AMR_PASSKEY)
        .await
        .map_err(refused)?;
    let ttl = state.config.portal_session_ttl.as_secs() as i64;
    let cookie = web::set_cookie(web::SESSION_COOKIE, &issued.access_token, ttl, ctx.https);
    let redirect = safe_return(&state, body.return_to.as_deref())
        .unwrap_or_else(|| "/cloud/account?notice=welcome".to_owned());
    let mut response = Json(json!({"redirect": redirect})).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}
