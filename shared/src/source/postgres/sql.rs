//! The only two ways text from a config or a request becomes SQL: a quoted identifier and a
//! quoted literal. Every table, schema and column name goes through [`ident`]; the tenant
//! value goes through [`literal`] (COPY cannot take bind parameters) and is checked against
//! a bound parameter before use, so even a quoting bug could not widen the filter.

use super::PostgresError;

/// `name` as a quoted identifier: `"name"`, with `"` doubled. Case is kept exactly.
pub(crate) fn ident(name: &str) -> Result<String, PostgresError> {
    if name.is_empty() || name.contains('\0') {
        return Err(PostgresError::Identifier(format!(
            "{name:?} is not a valid identifier (empty or with a NUL byte)"
        )));
    }
    Ok(crate::pg::ident(name))
}

/// `value` as a string literal, exactly as PostgreSQL's `quote_literal` writes it: `'...'`
/// with `'` doubled, and when there is a backslash, `E'...'` with `\` doubled too, so it
/// reads the same whatever `standard_conforming_strings` says. NUL cannot be in a
/// PostgreSQL string and is refused.
pub(crate) fn literal(value: &str) -> Result<String, PostgresError> {
    if value.contains('\0') {
        return Err(PostgresError::Identifier("a value with a NUL byte cannot be sent to PostgreSQL".into()));
    }
    let mut out = String::with_capacity(value.len() + 3);
    if value.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_always_quoted() {
        assert_eq!(ident("events").unwrap(), "\"events\"");
        assert_eq!(ident("Mixed Case").unwrap(), "\"Mixed Case\"");
        assert_eq!(ident("a\"; DROP TABLE x; --").unwrap(), "\"a\"\"; DROP TABLE x; --\"");
        assert!(ident("").is_err());
        assert!(ident("a\0b").is_err());
    }

    #[test]
    fn literals_match_quote_literal() {
        assert_eq!(literal("acme").unwrap(), "'acme'");
        assert_eq!(literal("o'brien").unwrap(), "'o''brien'");
        assert_eq!(literal(r"a\'b").unwrap(), r"E'a\\''b'");
        assert_eq!(literal("").unwrap(), "''");
        assert!(literal("a\0").is_err());
    }
}
