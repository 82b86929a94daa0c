//! Parsing of the token endpoint's body, without I/O: form-encoded (RFC 6749 §4.1.3, §6, RFC 8628
//! §3.4) or the desktop's camelCase JSON. Public so the fuzz target `token_request` drives it directly.

use axum::http::StatusCode;
use cloud_common::ApiError;
use serde::Deserialize;

/// Form-encoded (RFC 6749) or the desktop's camelCase JSON.
#[derive(Debug, Default, Deserialize)]
pub struct TokenRequest {
    #[serde(alias = "grantType")]
    pub grant_type: Option<String>,
    pub code: Option<String>,
    #[serde(alias = "redirectUri")]
    pub redirect_uri: Option<String>,
    #[serde(alias = "codeVerifier")]
    pub code_verifier: Option<String>,
    #[serde(alias = "refreshToken")]
    pub refresh_token: Option<String>,
    #[serde(alias = "clientId")]
    pub client_id: Option<String>,
    #[serde(alias = "clientSecret")]
    pub client_secret: Option<String>,
    /// RFC 8628: the device code being redeemed, and the scope a device asks for.
    pub device_code: Option<String>,
    pub scope: Option<String>,
}

/// An RFC 6749 §5.2 error (`error_description`, and `message` for the common envelope).
pub fn oauth_error(status: StatusCode, error: &'static str, description: &str) -> ApiError {
    let mut e = ApiError::new(status, error, description.to_owned())
        .with_field("error_description", description);
    if status == StatusCode::UNAUTHORIZED {
        e.www_authenticate = Some("Basic");
    }
    e
}

/// The request and whether it was JSON (any `content_type` naming json; otherwise a form). A
/// JSON body without `grant_type` is the desktop's code exchange. Errors are 400.
pub fn parse_token_request(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(TokenRequest, bool), ApiError> {
    if content_type.is_some_and(|ct| ct.contains("json")) {
        let mut req: TokenRequest = cloud_common::extract::parse_json(body)?;
        req.grant_type
            .get_or_insert_with(|| "authorization_code".to_owned());
        Ok((req, true))
    } else {
        serde_urlencoded::from_bytes(body)
            .map(|r| (r, false))
            .map_err(|e| {
                oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("invalid form body: {e}"),
                )
            })
    }
}
