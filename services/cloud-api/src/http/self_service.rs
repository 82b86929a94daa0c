//! The JSON routes of account self-service (the rules are in `app::self_service`, which the
//! portal's settings pages call too).

use crate::app::self_service::{self, *};
use crate::views::OkBody;

json_routes! { tag = "accounts";
    /// Sets a new password after checking the current one (throttled as a login). Every other
    /// session of the account ends; the one making the request stays signed in. A wrong
    /// current password is 403.
    change_password: post "/v1/account/password" [ip; body ChangePasswordBody;]
        -> 200 OkBody [400, 401, 403, 409, 429] => self_service::change_password;
    /// Mails a single-use confirmation link to a new address (after checking the current
    /// password); the address changes when the link is followed. The answer is the same
    /// whether or not the new address already has an account.
    change_email: post "/v1/account/email" [ip; body ChangeEmailBody;]
        -> 200 OkBody [400, 401, 403, 429] => self_service::request_email_change;
    /// The live sessions of the account (web portal, desktop, command line), newest first,
    /// with the one making the request marked `current`.
    sessions: get "/v1/account/sessions" [] -> 200 SessionsResponse [401] => self_service::sessions;
    /// Ends one session of the account and every token refreshed from it. Another account's
    /// session is 404.
    revoke_session: delete "/v1/account/sessions/{id}" [path "id";]
        -> 200 OkBody [401, 404] => self_service::revoke_session;
    /// Ends every session of the account except the one making the request.
    revoke_other_sessions: post "/v1/account/sessions/revoke-others" []
        -> 200 RevokedResponse [401] => self_service::revoke_other_sessions;
    /// Deletes the account (the address typed again and the password): the user, their
    /// personal organization and any organization they are the only member of. 409
    /// `last_owner` while they are the last owner of an organization with other members.
    delete_account: post "/v1/account/delete" [ip; body DeleteAccountBody;]
        -> 200 DeletedResponse [400, 401, 403, 409 = "Last owner of an organization with other members", 429]
        => self_service::delete_account;
}

/// The route of the mailed change-of-address link (no bearer token: holding the link is the
/// proof).
pub mod links {
    use crate::app::self_service::{self, ConfirmEmailBody};
    use crate::views::OkBody;

    json_routes! { tag = "accounts", public;
        /// Makes the new address the account's (verified) with the token of a change-of-address
        /// link. 400 `invalid_token` for a used or expired link; 409 when another account took
        /// the address meanwhile.
        confirm_email_change: post "/v1/web/confirm-email-change" [body ConfirmEmailBody;]
            -> 200 OkBody [400, 409] => self_service::confirm_email;
    }
}
