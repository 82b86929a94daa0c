//! The messages the portal sends. Every value that came from a user (names, organization
//! names) is HTML-escaped in the HTML part; links are built from `CHATONS_CLOUD_WEB_URL`.

use url::Url;

use super::Mail;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

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

fn page(greeting: &str, paragraphs: &[String], action: Option<(&str, &str)>) -> String {
    let mut html = String::from(
        "<!doctype html><html><body style=\"font-family:system-ui,sans-serif;color:#1d1b19\">",
    );
    html.push_str(&format!("<p>{}</p>", escape(greeting)));
    for p in paragraphs {
        html.push_str(&format!("<p>{}</p>", escape(p)));
    }
    if let Some((label, href)) = action {
        html.push_str(&format!(
            "<p><a href=\"{}\" style=\"background:#d9572b;color:#fff;padding:10px 16px;border-radius:8px;text-decoration:none\">{}</a></p><p style=\"color:#6b655e\">{}</p>",
            escape(href),
            escape(label),
            escape(href)
        ));
    }
    html.push_str("<p style=\"color:#6b655e\">— Chatons Cloud</p></body></html>");
    html
}

fn text(greeting: &str, paragraphs: &[String], action: Option<(&str, &str)>) -> String {
    let mut t = format!("{greeting}\n\n");
    for p in paragraphs {
        t.push_str(p);
        t.push_str("\n\n");
    }
    if let Some((label, href)) = action {
        t.push_str(&format!("{label}: {href}\n\n"));
    }
    t.push_str("— Chatons Cloud\n");
    t
}

fn mail(
    to: &str,
    subject: &str,
    greeting: &str,
    paragraphs: Vec<String>,
    action: Option<(&str, &str)>,
) -> Mail {
    Mail {
        recipient: to.to_owned(),
        subject: subject.to_owned(),
        text_body: text(greeting, &paragraphs, action),
        html_body: page(greeting, &paragraphs, action),
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
        assert!(m.html_body.contains("&lt;script&gt;"));
        assert!(m.text_body.contains("https://w/cloud/verify-email?token=t"));
        let i = invite("a@b.c", "Eve \"&\"", "Org <b>", "https://w/x?token=1&a=2");
        assert!(i.html_body.contains("Org &lt;b&gt;"));
        assert!(i.html_body.contains("token=1&amp;a=2"));
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
