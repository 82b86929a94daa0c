//! The verification page of device login (RFC 8628 §3.3): a signed-in user enters the code a
//! terminal shows (or follows the link that carries it), checks which client asks for what, and
//! approves or denies.

use super::*;
use crate::app::device::{self, PendingLogin};

const DEVICE: &str = "/cloud/device";

#[derive(Template)]
#[template(path = "portal/device_login.html")]
struct DeviceLoginPage {
    signed_in: bool,
    csrf_token: String,
    email: String,
    typed: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/device_confirm.html")]
struct DeviceConfirmPage {
    signed_in: bool,
    csrf_token: String,
    email: String,
    client_label: String,
    user_code: String,
    scopes: Vec<String>,
    minutes_left: i64,
}

#[derive(Debug, Default, Deserialize)]
pub struct DeviceQuery {
    user_code: Option<String>,
}

/// Where the login page comes back to: this page, with the code the link carried.
fn back_to(user_code: Option<&str>) -> String {
    match user_code.filter(|c| !c.trim().is_empty()) {
        Some(code) => format!(
            "{DEVICE}?{}",
            serde_urlencoded::to_string([("user_code", code)]).unwrap_or_default()
        ),
        None => DEVICE.to_owned(),
    }
}

/// `GET /cloud/device[?user_code=]`: the code form, or the confirmation of the grant it names.
pub async fn device_page(
    State(state): State<AppState>,
    ip: ClientIp,
    ctx: Ctx,
    Query(q): Query<DeviceQuery>,
) -> Page {
    let caller = ctx.caller_or_login(&back_to(q.user_code.as_deref()))?;
    let Some(typed) = q.user_code.filter(|c| !c.trim().is_empty()) else {
        return Ok(code_form(&ctx, &caller, StatusCode::OK, "", None));
    };
    match device::pending(&state, &caller, ip.0, &typed).await {
        Ok(Some(login)) => Ok(confirm(&ctx, &caller, login)),
        Ok(None) => Ok(code_form(
            &ctx,
            &caller,
            StatusCode::NOT_FOUND,
            &typed,
            Some("This code is unknown or expired. Check it, or start again on the device."),
        )),
        Err(DomainError::RateLimited(_)) => Ok(code_form(
            &ctx,
            &caller,
            StatusCode::TOO_MANY_REQUESTS,
            &typed,
            Some(TOO_MANY),
        )),
        Err(e) => Err(ok_or_page(&ctx, e)),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct DeviceForm {
    user_code: Option<String>,
    action: Option<String>,
}

/// `POST /cloud/device`: approve or deny (CSRF-checked).
pub async fn device_submit(
    State(state): State<AppState>,
    ip: ClientIp,
    form: Posted<DeviceForm>,
) -> Page {
    let (ctx, caller, form) = form.signed_in(DEVICE)?;
    let typed = form.user_code.unwrap_or_default();
    let approve = match form.action.as_deref() {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return Ok(ctx.notice(
                StatusCode::BAD_REQUEST,
                "Not possible",
                "Choose Approve or Deny.",
                Some((DEVICE, "Back")),
            ));
        }
    };
    Ok(match device::decide(&state, &caller, ip.0, &typed, approve).await {
        Ok(()) if approve => ctx.notice(
            StatusCode::OK,
            "Device connected",
            "The device is signed in. You can close this page and go back to it.",
            None,
        ),
        Ok(()) => ctx.notice(
            StatusCode::OK,
            "Request denied",
            "The device was not signed in. If you did not start this request, nothing else is needed.",
            None,
        ),
        Err(DomainError::RateLimited(_)) => code_form(
            &ctx,
            &caller,
            StatusCode::TOO_MANY_REQUESTS,
            &typed,
            Some(TOO_MANY),
        ),
        Err(DomainError::NotFound(_)) => code_form(
            &ctx,
            &caller,
            StatusCode::NOT_FOUND,
            &typed,
            Some("This request was already answered or has expired. Start again on the device."),
        ),
        Err(e) => ok_or_page(&ctx, e),
    })
}

fn code_form(
    ctx: &Ctx,
    caller: &Caller,
    status: StatusCode,
    typed: &str,
    error: Option<&str>,
) -> Response {
    ctx.page(
        status,
        &DeviceLoginPage {
            signed_in: true,
            csrf_token: ctx.csrf.clone(),
            email: caller.user.email.clone(),
            typed: typed.chars().take(32).collect(),
            error: error.map(str::to_owned),
        },
    )
}

fn confirm(ctx: &Ctx, caller: &Caller, login: PendingLogin) -> Response {
    ctx.page(
        StatusCode::OK,
        &DeviceConfirmPage {
            signed_in: true,
            csrf_token: ctx.csrf.clone(),
            email: caller.user.email.clone(),
            client_label: login.client_label,
            user_code: login.user_code,
            scopes: login.scopes.iter().map(|s| scope_text(s)).collect(),
            minutes_left: login.minutes_left,
        },
    )
}

/// What a scope lets the device do, in words.
fn scope_text(scope: &str) -> String {
    match scope {
        "openid" => "confirm who you are".to_owned(),
        "profile" => "read your name".to_owned(),
        "email" => "read your email address".to_owned(),
        "offline_access" => "stay signed in until you sign it out".to_owned(),
        other => format!("use the permission “{other}”"),
    }
}
