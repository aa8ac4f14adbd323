//! What every PostgreSQL client of ours (the source, the loader, the config's URL check) says
//! about a PostgreSQL error (its text, and whether trying again can help) and how it quotes an
//! identifier. A leaf.

/// A tokio-postgres error with its causes (its own `Display` is only the kind, "db error"); a
/// server's error as `SEVERITY: message` with its SQLSTATE code. None of the causes ever holds
/// a password; where the text may quote what the caller passed in (a URL being parsed), pass
/// it through [`crate::redact::redact_url`].
pub fn pg_message(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{db} ({})", db.code().code());
    }
    let mut message = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        message.push_str(": ");
        message.push_str(&e.to_string());
        cause = e.source();
    }
    message
}

/// Whether a step that failed with `error` may succeed when run again: the connection broke
/// or could not be made (no SQLSTATE), or the server said so by its SQLSTATE class:
/// `08` connection exception, `40` transaction rollback (serialization failure, deadlock),
/// `53` insufficient resources (too many connections, disk full), `57` operator intervention
/// (shutdown, cancelled statement, starting up), `58` system error, `55P03` lock not
/// available. Everything else is permanent: `28` authentication, `3D` unknown database, `42`
/// missing table or column, syntax, privilege; `22` bad data.
pub fn is_transient(error: &tokio_postgres::Error) -> bool {
    let Some(code) = error.code() else { return true };
    let code = code.code();
    ["08", "40", "53", "57", "58"].iter().any(|class| code.starts_with(class)) || code == "55P03"
}

/// `name` as a quoted SQL identifier: `"name"`, with `"` doubled, case kept exactly (the
/// quoting PostgreSQL and DuckDB share). The one implementation: the source checks names
/// first (no NUL, not empty) and the loader's names are validated identifiers.
pub fn ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}
