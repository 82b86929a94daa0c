//! RFC 8628 endpoints: device authorization, and the token endpoint's device code grant. The
//! rules are `app::device`'s; this maps them to the RFC's wire format.

use super::*;
use crate::app::device::{self, DeviceError};
use crate::domain::DomainError;

/// The device authorization response (RFC 8628 §3.2).
#[derive(Serialize)]
struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: String,
    expires_in: u64,
    interval: u64,
}

/// `POST /oidc/device/authorize`: form-encoded `client_id` (with the client's credentials when
/// it has a secret) and an optional `scope`.
#[tracing::instrument(skip_all)]
pub async fn device_authorize(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match device_authorize_inner(&state, ip, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn device_authorize_inner(
    state: &AppState,
    ip: ClientIp,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    if let Err(wait) = state.limiters.token.check(&format!("device:{}", ip.0)) {
        return Err(ApiError::too_many_requests(wait.as_secs()));
    }
    let req: TokenRequest = serde_urlencoded::from_bytes(body).map_err(|e| {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("invalid form body: {e}"),
        )
    })?;
    let client = authenticate_client(state, headers, &req)?;
    let started = device::start(state, client, req.scope.as_deref())
        .await
        .map_err(device_error)?;
    Ok(no_store(
        Json(DeviceAuthorization {
            device_code: started.device_code,
            user_code: started.user_code,
            verification_uri: started.verification_uri,
            verification_uri_complete: started.verification_uri_complete,
            expires_in: started.expires_in,
            interval: started.interval,
        })
        .into_response(),
    ))
}

/// `grant_type=urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4–3.5).
pub(super) async fn redeem_device_code(
    state: &AppState,
    client: &Client,
    req: &TokenRequest,
) -> Result<Response, ApiError> {
    let Some(device_code) = req.device_code.as_deref() else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "device_code is required",
        ));
    };
    let (user, issued) = device::redeem(state, client, device_code)
        .await
        .map_err(device_error)?;
    token_response(state, &user, &issued, None).await
}

/// The RFC 8628 §3.5 error for `e` (all 400, like every token-endpoint refusal).
fn device_error(e: DeviceError) -> ApiError {
    let code = match e {
        DeviceError::Domain(d @ DomainError::Invalid(_)) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &d.to_string());
        }
        DeviceError::Domain(d) => return d.into(),
        DeviceError::UnauthorizedClient => "unauthorized_client",
        DeviceError::AuthorizationPending => "authorization_pending",
        DeviceError::SlowDown(_) => "slow_down",
        DeviceError::AccessDenied => "access_denied",
        DeviceError::ExpiredToken => "expired_token",
        DeviceError::InvalidGrant(_) => "invalid_grant",
    };
    oauth_error(StatusCode::BAD_REQUEST, code, &e.to_string())
}
