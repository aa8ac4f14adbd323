//! Secret redaction for error text: a connection URL or its password never reaches a log line
//! or an error message. A leaf the config's validation, the PostgreSQL source and the loader
//! share.

/// `message` with anything that looks like the URL's password removed.
pub fn redact_url(message: &str, url: &str) -> String {
    let mut out = message.replace(url, "<the connection URL>");
    if let Some(password) = url_password(url)
        && !password.is_empty()
    {
        out = out.replace(password, "<password>");
    }
    out
}

/// The password part of `scheme://user:password@host...`, if any.
fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo.split_once(':').map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_passwords_are_redacted() {
        assert_eq!(
            redact_url("failed for postgresql://u:pw1@h/d", "postgresql://u:pw1@h/d"),
            "failed for <the connection URL>"
        );
        assert_eq!(redact_url("pw1 leaked", "postgresql://u:pw1@h/d"), "<password> leaked");
        assert_eq!(redact_url("nothing to hide", "postgresql://u@h/d"), "nothing to hide");
        assert_eq!(url_password("postgresql://u@h/d"), None);
        assert_eq!(url_password("postgresql://u:p@ss@h/d"), Some("p@ss"));
    }
}
