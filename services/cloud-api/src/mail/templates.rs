//! The messages the portal sends, rendered from `templates/mail/` (askama escapes every value in
//! the HTML part: names and organization names come from users); links are built from
//! `CHATONS_CLOUD_WEB_URL`.

use askama::Template;
use url::Url;

use super::Mail;

/// `<web url><path>`.
pub fn page_url(web_url: &Url, path: &str) -> String {
    let mut u = web_url.clone();
    u.set_path(path);
    u.set_query(None);
    u.to_string()
}

/// `<web url><path>?token=<token>`.
pub fn link(web_url: &Url, path: &str, token: &str) -> String {
    let mut u = web_url.clone();
    u.set_path(path);
    u.query_pairs_mut().clear().append_pair("token", token);
    u.to_string()
}

/// The button of a mail: its label and the link it opens.
struct Action<'a> {
    label: &'a str,
    href: &'a str,
}

/// The HTML part; askama escapes every value (names and organization names come from users).
#[derive(Template)]
#[template(path = "mail/message.html")]
struct HtmlBody<'a> {
    greeting: &'a str,
    paragraphs: &'a [String],
    action: Option<Action<'a>>,
}

/// The plain-text part (`.txt`: nothing is escaped), from the same values.
#[derive(Template)]
#[template(path = "mail/message.txt")]
struct TextBody<'a> {
    m: &'a HtmlBody<'a>,
}

fn mail(
    to: &str,
    subject: &str,
    greeting: &str,
    paragraphs: Vec<String>,
    action: Option<(&str, &str)>,
) -> Mail {
    let html = HtmlBody {
        greeting,
        paragraphs: &paragraphs,
        action: action.map(|(label, href)| Action { label, href }),
    };
    let text = TextBody { m: &html };
    Mail {
        recipient: to.to_owned(),
        subject: subject.to_owned(),
        // Rendering plain strings into a fixed template cannot fail; an empty body would be
        // visible in the outbox rather than a panic in a request.
        text_body: text.render().unwrap_or_default(),
        html_body: html.render().unwrap_or_default(),
    }
}

pub fn verification(to: &str, name: &str, url: &str, ttl_hours: u64) -> Mail {
    mail(
        to,
        "Confirm your email for Chatons Cloud",
        &format!("Hello {name},"),
        vec![format!(
            "Please confirm your email address to finish setting up your Chatons Cloud account. The link works once and expires in {ttl_hours} hours."
        )],
        Some(("Confirm my email", url)),
    )
}

pub fn password_reset(to: &str, name: &str, url: &str, ttl_minutes: u64) -> Mail {
    mail(
        to,
        "Reset your Chatons Cloud password",
        &format!("Hello {name},"),
        vec![
            format!(
                "Someone asked to reset the password of your Chatons Cloud account. The link works once and expires in {ttl_minutes} minutes."
            ),
            "If it was not you, ignore this mail: your password stays the same.".to_owned(),
        ],
        Some(("Choose a new password", url)),
    )
}

pub fn password_changed(to: &str, name: &str) -> Mail {
    mail(
        to,
        "Your Chatons Cloud password was changed",
        &format!("Hello {name},"),
        vec!["Your password was changed and every signed-in device was signed out. If it was not you, reset your password now and contact support.".to_owned()],
        None,
    )
}

/// Sent instead of a second account when someone signs up with an address that has one.
pub fn already_registered(to: &str, name: &str, login_url: &str, forgot_url: &str) -> Mail {
    mail(
        to,
        "You already have a Chatons Cloud account",
        &format!("Hello {name},"),
        vec![
            "Someone (maybe you) tried to create a Chatons Cloud account with this address, which already has one. Nothing was changed.".to_owned(),
            format!("Forgot your password? Reset it here: {forgot_url}"),
        ],
        Some(("Sign in", login_url)),
    )
}

pub fn invite(to: &str, inviter: &str, org: &str, url: &str) -> Mail {
    mail(
        to,
        // A fixed subject: what an inviter types only appears inside the mail, escaped.
        "You are invited to an organization on Chatons Cloud",
        "Hello,",
        vec![format!(
            "{inviter} invited you to join the organization \u{201c}{org}\u{201d} on Chatons Cloud. Sign in (or create an account with this address), then accept the invitation."
        )],
        Some(("Accept the invitation", url)),
    )
}

/// Account self-service: the password was changed from the account settings.
pub fn password_changed_here(to: &str, name: &str) -> Mail {
    mail(
        to,
        "Your Chatons Cloud password was changed",
        &format!("Hello {name},"),
        vec!["Your password was changed from your account settings and every other signed-in device was signed out. If it was not you, reset your password now and contact support.".to_owned()],
        None,
    )
}

/// Sent to the NEW address of a change of address: following the link makes it the account's.
pub fn email_change(to: &str, name: &str, url: &str, ttl_hours: u64) -> Mail {
    mail(
        to,
        "Confirm your new email for Chatons Cloud",
        &format!("Hello {name},"),
        vec![
            format!(
                "You asked to use this address for your Chatons Cloud account. Confirm it to make the change; until then your account keeps its current address. The link works once and expires in {ttl_hours} hours."
            ),
            "If it was not you, ignore this mail: nothing changes.".to_owned(),
        ],
        Some(("Confirm my new email", url)),
    )
}

/// Sent instead of a link when the new address already has an account (the form answers the
/// same either way).
pub fn email_change_taken(to: &str) -> Mail {
    mail(
        to,
        "Confirm your new email for Chatons Cloud",
        "Hello,",
        vec!["Someone (maybe you) asked to move a Chatons Cloud account to this address, which already has an account. Nothing was changed: an address belongs to one account only.".to_owned()],
        None,
    )
}

/// Sent to the OLD address once a change of address is confirmed.
pub fn email_changed(to: &str, name: &str, new_email: &str) -> Mail {
    mail(
        to,
        "Your Chatons Cloud email was changed",
        &format!("Hello {name},"),
        vec![format!(
            "Your Chatons Cloud account now uses the address {new_email}; this address no longer signs in. If it was not you, contact support."
        )],
        None,
    )
}

/// Sent once an account was deleted by its owner.
pub fn account_deleted(to: &str, name: &str) -> Mail {
    mail(
        to,
        "Your Chatons Cloud account was deleted",
        &format!("Hello {name},"),
        vec!["Your Chatons Cloud account, its personal organization and everything in it were deleted, and every device was signed out. You can create a new account with this address at any time.".to_owned()],
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_in_html() {
        let m = verification(
            "a@b.c",
            "<script>x</script>",
            "https://w/cloud/verify-email?token=t",
            24,
        );
        assert!(!m.html_body.contains("<script>"));
        assert!(m.html_body.contains("&#60;script&#62;"), "{}", m.html_body);
        assert!(m.text_body.contains("https://w/cloud/verify-email?token=t"));
        assert!(
            m.text_body.starts_with("Hello <script>x</script>,\n\n"),
            "{}",
            m.text_body
        );
        assert!(
            m.text_body
                .contains("Confirm my email: https://w/cloud/verify-email?token=t\n")
        );
        let i = invite("a@b.c", "Eve \"&\"", "Org <b>", "https://w/x?token=1&a=2");
        assert!(i.html_body.contains("Org &#60;b&#62;"), "{}", i.html_body);
        assert!(i.html_body.contains("token=1&#38;a=2"), "{}", i.html_body);
        assert!(!i.html_body.contains("Eve \"&\""));
    }

    #[test]
    fn links_carry_the_token() {
        let u = Url::parse("https://portal.example/").unwrap_or_else(|_| unreachable!());
        assert_eq!(
            link(&u, "/cloud/reset-password", "a b"),
            "https://portal.example/cloud/reset-password?token=a+b"
        );
    }
}
