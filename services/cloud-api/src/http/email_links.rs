//! The JSON routes of the emailed links: forgot password, reset password, verify email (the
//! rules are in `app::email`). They take no bearer token. (`POST /v1/web/login` is in
//! `accounts`: `crate::dispatch` routes it, as it also takes the first system's form posts.)

use crate::app::email::{self, ForgotBody, ResetBody, VerifyBody};
use crate::views::OkBody;

json_routes! { tag = "accounts", public;
    /// Mails a single-use reset link when the address has an account. The answer is the same,
    /// at once, either way.
    forgot_password: post "/v1/web/forgot-password" [ip; body ForgotBody;]
        -> 200 OkBody [400, 429] => email::forgot;
    /// Sets a new password with the token of a reset link; every session of the account is
    /// revoked.
    reset_password: post "/v1/web/reset-password" [body ResetBody;]
        -> 200 OkBody [400] => email::reset;
    /// Confirms an address with the token of a verification link.
    verify_email: post "/v1/web/verify-email" [body VerifyBody;]
        -> 200 OkBody [400] => email::verify;
}
