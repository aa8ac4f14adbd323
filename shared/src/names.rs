//! AWS name rules that every layer shares: STS role session names. A leaf: imports nothing
//! of the crate, so the config's validation and the role chain both use it.

/// STS's limit on session names.
pub const MAX_SESSION_NAME: usize = 64;

/// A session name for `destination` and `label`: `byob-<destination>-<label>`, every
/// character outside `[A-Za-z0-9_+=,.@-]` replaced by `-`, at most 64 characters (the
/// destination id is shortened first, so the run stays readable).
pub fn session_name(destination: &str, label: &str) -> String {
    let label = sanitize(label);
    let room = MAX_SESSION_NAME.saturating_sub("byob-".len() + 1 + label.len());
    let destination: String = sanitize(destination).chars().take(room).collect();
    let name = if destination.is_empty() { format!("byob-{label}") } else { format!("byob-{destination}-{label}") };
    name.chars().take(MAX_SESSION_NAME).collect()
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if session_char(c) { c } else { '-' }).collect()
}

fn session_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// Checks an STS `RoleSessionName`: 2-64 characters of `[A-Za-z0-9_+=,.@-]`.
pub fn check_session_name(s: &str) -> Result<(), String> {
    let len = s.chars().count();
    if !(2..=MAX_SESSION_NAME).contains(&len) || !s.chars().all(session_char) {
        return Err(format!(
            "session name {s:?} is invalid: 2-{MAX_SESSION_NAME} characters of letters, digits and _+=,.@-"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_carry_destination_and_run_and_are_valid() {
        assert_eq!(session_name("acme-eu", "2023-03-14T04:03"), "byob-acme-eu-2023-03-14T04-03");
        let long = "d".repeat(64);
        let name = session_name(&long, "2023-03-14T04:03");
        assert_eq!(name.len(), 64);
        assert!(name.ends_with("-2023-03-14T04-03"), "{name}");
        check_session_name(&name).unwrap();
        for (dest, label) in [("a b/c", "x:y"), ("é", "ü"), ("", "run"), ("x", &"l".repeat(100))] {
            let name = session_name(dest, label);
            check_session_name(&name).unwrap_or_else(|e| panic!("{dest:?} {label:?}: {e}"));
        }
        assert!(check_session_name("a").is_err());
        assert!(check_session_name("a:b").is_err());
        assert!(check_session_name(&"a".repeat(65)).is_err());
    }
}
