//! The security page (`/cloud/account/security`): two-step sign-in (TOTP) and passkeys.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::*;
use crate::app::second_factor::{self, TotpStatus};

const SECURITY: &str = "/cloud/account/security";

const SECURITY_NOTICES: &[(&str, &str)] = &[
    ("totp-off", "Two-step sign-in is off."),
    ("passkey-added", "Passkey added."),
    ("passkey-removed", "Passkey removed."),
];

pub(super) struct PasskeyRow {
    id: String,
    name: String,
    created: String,
    last_used: String,
}

pub(super) struct PendingSetup {
    secret: String,
    qr_base64: String,
}

#[derive(Template)]
#[template(path = "portal/security.html")]
struct SecurityPage {
    signed_in: bool,
    csrf_token: String,
    email: String,
    notice: Option<String>,
    error: Option<String>,
    totp_on: bool,
    recovery_left: u64,
    pending: Option<PendingSetup>,
    /// Shown once, right after enrolment.
    recovery_codes: Option<Vec<String>>,
    passkeys: Vec<PasskeyRow>,
}

/// The enrolment QR code: an SVG the page shows as a `data:` image (the CSP allows those, and
/// no script is needed).
fn qr_svg_base64(uri: &str) -> DomainResult<String> {
    let code = qrcode::QrCode::new(uri.as_bytes())
        .map_err(|e| DomainError::Internal(format!("QR code: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    Ok(STANDARD.encode(svg))
}

/// The page as `caller` sees it now; `shown` adds what one answer shows (a notice, an error,
/// the recovery codes).
async fn render(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    status: StatusCode,
    shown: Shown,
) -> Page {
    let totp = second_factor::status(state, &caller.user)
        .await
        .map_err(|e| ok_or_page(ctx, e))?;
    let (totp_on, recovery_left, pending) = match totp {
        TotpStatus::Off => (false, 0, None),
        TotpStatus::Pending(e) => {
            let qr_base64 = qr_svg_base64(&e.uri).map_err(|e| ok_or_page(ctx, e))?;
            let setup = PendingSetup {
                secret: e.secret,
                qr_base64,
            };
            (false, 0, Some(setup))
        }
        TotpStatus::On {
            recovery_codes_left,
        } => (true, recovery_codes_left, None),
    };
    let day = |t: Timestamp| t.format("%Y-%m-%d").to_string();
    let passkeys = crate::app::passkeys::list(state, &caller.user.id)
        .await
        .map_err(|e| ok_or_page(ctx, e))?
        .into_iter()
        .map(|p| PasskeyRow {
            id: p.id,
            name: p.name,
            created: day(p.created_at),
            last_used: p.last_used_at.map(day).unwrap_or_else(|| "never".into()),
        })
        .collect();
    Ok(ctx.page(
        status,
        &SecurityPage {
            signed_in: true,
            csrf_token: ctx.csrf.clone(),
            email: caller.user.email.clone(),
            notice: shown.notice,
            error: shown.error,
            totp_on,
            recovery_left,
            pending,
            recovery_codes: shown.recovery_codes,
            passkeys,
        },
    ))
}

#[derive(Default)]
struct Shown {
    notice: Option<String>,
    error: Option<String>,
    recovery_codes: Option<Vec<String>>,
}

pub async fn security_page(State(state): State<AppState>, ctx: Ctx, q: Query<NoticeQuery>) -> Page {
    let caller = ctx.caller_or_login(SECURITY)?;
    let notice = notice_of(SECURITY_NOTICES, q.notice.as_deref());
    let shown = Shown {
        notice,
        ..Shown::default()
    };
    render(&state, &ctx, &caller, StatusCode::OK, shown).await
}

/// `POST …/totp/begin`: a new secret to scan.
pub async fn totp_begin(State(state): State<AppState>, form: Posted<Empty>) -> Page {
    let (ctx, caller, Empty {}) = form.signed_in(SECURITY)?;
    if let Err(e) = second_factor::begin(&state, &caller.user).await {
        return refused_here(&state, &ctx, &caller, e).await;
    }
    Ok(after_post(SECURITY))
}

#[derive(Debug, Default, Deserialize)]
pub struct CodeForm {
    code: Option<String>,
}

/// `POST …/totp/confirm`: the first code turns it on; the recovery codes are shown once.
pub async fn totp_confirm(
    State(state): State<AppState>,
    ip: ClientIp,
    form: Posted<CodeForm>,
) -> Page {
    let (ctx, caller, form) = form.signed_in(SECURITY)?;
    let code = form.code.unwrap_or_default();
    match second_factor::confirm(&state, &caller.user, ip.0, &code).await {
        Ok(codes) => {
            let shown = Shown {
                recovery_codes: Some(codes),
                ..Shown::default()
            };
            render(&state, &ctx, &caller, StatusCode::OK, shown).await
        }
        Err(e) => refused_here(&state, &ctx, &caller, e).await,
    }
}

/// `POST …/totp/disable`, with a fresh code.
pub async fn totp_disable(
    State(state): State<AppState>,
    ip: ClientIp,
    form: Posted<CodeForm>,
) -> Page {
    let (ctx, caller, form) = form.signed_in(SECURITY)?;
    let code = form.code.unwrap_or_default();
    match second_factor::disable(&state, &caller.user, ip.0, &code).await {
        Ok(()) => Ok(after_post(&format!("{SECURITY}?notice=totp-off"))),
        Err(e) => refused_here(&state, &ctx, &caller, e).await,
    }
}

/// The page again with why `e` refused the form (client errors), or the error page.
async fn refused_here(state: &AppState, ctx: &Ctx, caller: &Caller, e: DomainError) -> Page {
    let message = match &e {
        DomainError::Unauthorized(_) => "Wrong or already used code.".to_owned(),
        DomainError::RateLimited(_) => TOO_MANY.to_owned(),
        e if e.is_client_error() => e.to_string(),
        _ => return Err(ok_or_page(ctx, e)),
    };
    let status = ApiError::from(e).status;
    let shown = Shown {
        error: Some(message),
        ..Shown::default()
    };
    render(state, ctx, caller, status, shown).await
}
