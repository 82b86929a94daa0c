//! The account page.

use super::*;

// Account -----------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct NoticeQuery {
    pub(super) notice: Option<String>,
}

const ACCOUNT_NOTICES: &[(&str, &str)] = &[
    ("verified", "Your email is confirmed."),
    ("resent", "A new confirmation link is on its way."),
    ("welcome", "You are signed in."),
];

pub async fn account(State(state): State<AppState>, ctx: Ctx, q: Query<NoticeQuery>) -> Page {
    let caller = ctx.caller_or_login("/cloud/account")?;
    let memberships = memberships(&state, &ctx, &caller).await?;
    let page = AccountPage {
        signed_in: true,
        csrf_token: ctx.csrf.clone(),
        notice: notice_of(ACCOUNT_NOTICES, q.notice.as_deref()),
        name: caller.user.display_name.clone(),
        email: caller.user.email.clone(),
        verified: caller.user.email_verified_at.is_some(),
        orgs: org_rows(&memberships),
        is_admin: caller.user.is_admin,
    };
    Ok(ctx.page(StatusCode::OK, &page))
}
