//! The account page.

use super::*;

// Account -----------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

pub(super) fn known_notice(key: Option<&str>) -> Option<String> {
    match key? {
        "verified" => Some("Your email is confirmed.".into()),
        "resent" => Some("A new confirmation link is on its way.".into()),
        "welcome" => Some("You are signed in.".into()),
        _ => None,
    }
}

pub async fn account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    let Some(caller) = &ctx.caller else {
        return to_login("/cloud/account");
    };
    let memberships = match Scope::of(&state, caller).await {
        Ok(scope) => scope.memberships,
        Err(e) => return ok_or_page(&ctx, e),
    };
    let page = AccountPage {
        signed_in: true,
        csrf_token: ctx.csrf.clone(),
        notice: known_notice(q.notice.as_deref()),
        name: caller.user.display_name.clone(),
        email: caller.user.email.clone(),
        verified: caller.user.email_verified_at.is_some(),
        orgs: org_rows(&memberships),
    };
    ctx.page(StatusCode::OK, &page)
}
