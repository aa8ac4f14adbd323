//! Database and warehouse credentials from AWS Secrets Manager, in the RDS secret format:
//!
//! ```json
//! {"engine": "postgres", "host": "db.internal", "port": 5432, "username": "byob",
//!  "password": "...", "dbname": "platform"}
//! ```
//!
//! A secret is read by name or ARN. Its password lives in [`Password`], whose `Debug` and
//! `Display` print `[redacted]`; [`Secret`]'s `Display` is a connection URL without it.
//!
//! This module must never log, display or put into an error any part of a secret's value:
//! errors name the secret id and the field that is wrong, never what the field holds (serde's
//! own messages quote values, so they are not passed on).

use std::fmt;

use aws_config::SdkConfig;
use serde_json::Value;

use super::AwsError;
use super::retry::{describe, error_code, is_retriable};

/// A password that never shows itself: `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Password {
        Password(password.into())
    }

    /// The password itself, for the one place that needs it (a database driver's config).
    /// Never format it into a message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Credentials in the RDS secret format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    /// `username` (required).
    pub username: String,
    /// `password` (required); redacted in every output.
    pub password: Password,
    /// `host` (required).
    pub host: String,
    /// `port`: a number or a numeric string; `None` when absent (the engine's default).
    pub port: Option<u16>,
    /// `dbname`, when present.
    pub dbname: Option<String>,
    /// `engine`, e.g. `postgres`, when present.
    pub engine: Option<String>,
    /// `sslmode` (byob's addition to the RDS format): `disable`, `prefer` or `require`
    /// (`verify-ca` and `verify-full` mean `require`: byob verifies every certificate), when
    /// present.
    pub sslmode: Option<crate::config::TlsMode>,
}

impl fmt::Display for Secret {
    /// `engine://username@host:port/dbname`, without the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}@{}", self.engine.as_deref().unwrap_or("db"), self.username, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        if let Some(db) = &self.dbname {
            write!(f, "/{db}")?;
        }
        Ok(())
    }
}

const FORMAT: &str =
    "the RDS secret format is a JSON object {\"username\", \"password\", \"host\", \"port\", \"dbname\", \"engine\"}";

impl Secret {
    /// Parses a secret string in the RDS format. `secret_id` names the secret in errors; the
    /// text itself never appears in one.
    pub fn parse(secret_id: &str, text: &str) -> Result<Secret, AwsError> {
        let invalid = |reason: String| AwsError::Secret { secret_id: secret_id.to_owned(), reason, retryable: false };
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
            return Err(invalid(format!("its SecretString is not a JSON object; {FORMAT}")));
        };
        let string = |field: &str, required: bool| -> Result<Option<String>, AwsError> {
            match map.get(field) {
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(Value::String(_)) | None | Some(Value::Null) if !required => Ok(None),
                Some(Value::String(_)) | None | Some(Value::Null) => {
                    Err(invalid(format!("field {field:?} is missing or empty; {FORMAT}")))
                }
                Some(_) => Err(invalid(format!("field {field:?} must be a string (its value is not shown)"))),
            }
        };
        let required = |field: &str| string(field, true).map(Option::unwrap_or_default);
        let port = match map.get("port") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.as_u64().and_then(|p| u16::try_from(p).ok()).ok_or_else(|| {
                invalid("field \"port\" must be a port number, 1-65535 (its value is not shown)".to_owned())
            })?),
            Some(Value::String(s)) => Some(s.trim().parse::<u16>().map_err(|_| {
                invalid("field \"port\" must be a port number, 1-65535 (its value is not shown)".to_owned())
            })?),
            Some(_) => return Err(invalid("field \"port\" must be a number (its value is not shown)".to_owned())),
        };
        Ok(Secret {
            username: required("username")?,
            password: Password(required("password")?),
            host: required("host")?,
            port,
            dbname: string("dbname", false)?,
            engine: string("engine", false)?,
            sslmode: match string("sslmode", false)?.as_deref() {
                None => None,
                Some("disable") => Some(crate::config::TlsMode::Disable),
                Some("prefer") => Some(crate::config::TlsMode::Prefer),
                Some("require" | "verify-ca" | "verify-full") => Some(crate::config::TlsMode::Require),
                Some(other) => {
                    return Err(invalid(format!(
                        "field \"sslmode\" is {other:?}; use disable, prefer, require, verify-ca or verify-full"
                    )));
                }
            },
        })
    }
}

/// Reads the secret `secret_id` (a name or an ARN) with `client` and parses it.
pub async fn read(client: &aws_sdk_secretsmanager::Client, secret_id: &str) -> Result<Secret, AwsError> {
    Secret::parse(secret_id, &read_string(client, secret_id).await?)
}

/// The `SecretString` of `secret_id` as stored (errors say what to fix, never the value).
pub async fn read_string(client: &aws_sdk_secretsmanager::Client, secret_id: &str) -> Result<String, AwsError> {
    let output = client.get_secret_value().secret_id(secret_id).send().await.map_err(|e| {
        let code = error_code(&e).unwrap_or_default();
        let hint = match code.as_str() {
            "ResourceNotFoundException" => " (check the name or ARN and the region)",
            "AccessDeniedException" => {
                " (our role needs secretsmanager:GetSecretValue on it, and kms:Decrypt on its key)"
            }
            "DecryptionFailure" => " (our role needs kms:Decrypt on the secret's KMS key)",
            _ => "",
        };
        AwsError::Secret {
            secret_id: secret_id.to_owned(),
            reason: format!("{}{hint}", describe(&e)),
            retryable: is_retriable(&e),
        }
    })?;
    match output.secret_string() {
        Some(text) => Ok(text.to_owned()),
        None => Err(AwsError::Secret {
            secret_id: secret_id.to_owned(),
            reason: format!("it has no SecretString (a binary secret?); {FORMAT}"),
            retryable: false,
        }),
    }
}

/// Reads the secret `secret_id` with a Secrets Manager client built from `config`.
pub async fn read_with(config: &SdkConfig, secret_id: &str) -> Result<Secret, AwsError> {
    read(&aws_sdk_secretsmanager::Client::new(config), secret_id).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECRET: &str = r#"{"engine":"postgres","host":"db.internal","port":5432,"username":"byob","password":"hunter2-s3cr3t","dbname":"platform","dbInstanceIdentifier":"x"}"#;

    #[test]
    fn sslmode_is_read_when_present() {
        let with = |mode: &str| Secret::parse("s", &SECRET.replacen('{', &format!("{{\"sslmode\":\"{mode}\","), 1));
        assert_eq!(Secret::parse("s", SECRET).unwrap().sslmode, None);
        assert_eq!(with("disable").unwrap().sslmode, Some(crate::config::TlsMode::Disable));
        assert_eq!(with("verify-full").unwrap().sslmode, Some(crate::config::TlsMode::Require));
        let e = with("sometimes").unwrap_err().to_string();
        assert!(e.contains("sslmode") && e.contains("verify-full"), "{e}");
    }

    #[test]
    fn parses_the_rds_format_and_never_shows_the_password() {
        let s = Secret::parse("prod/byob", SECRET).unwrap();
        assert_eq!((s.username.as_str(), s.host.as_str(), s.port), ("byob", "db.internal", Some(5432)));
        assert_eq!(s.dbname.as_deref(), Some("platform"));
        assert_eq!(s.password.expose(), "hunter2-s3cr3t");
        for shown in [format!("{s:?}"), format!("{s:#?}"), s.to_string(), format!("{}", s.password)] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert_eq!(s.to_string(), "postgres://byob@db.internal:5432/platform");
        let s = Secret::parse("x", r#"{"host":"h","port":"6543","username":"u","password":"p"}"#).unwrap();
        assert_eq!((s.port, s.engine), (Some(6543), None));
    }

    #[test]
    fn errors_name_the_field_never_the_value() {
        for (text, field) in [
            (r#"{"host":"h","username":"u"}"#, "password"),
            (r#"{"host":"h","username":"u","password":12345678}"#, "password"),
            (r#"{"host":"h","username":"u","password":"hunter2","port":"hunter2"}"#, "port"),
            (r#"{"host":"h","username":"u","password":"hunter2","port":99999}"#, "port"),
            (r#"{"host":"h","password":"hunter2"}"#, "username"),
            (r#"hunter2 is not json"#, "JSON object"),
            (r#"["hunter2"]"#, "JSON object"),
        ] {
            let e = Secret::parse("prod/db", text).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains("prod/db"), "{e}");
            assert!(!e.contains("hunter2") && !e.contains("12345678") && !e.contains("99999"), "{e}");
        }
    }
}
