//! Reaching the server: connection settings from a URL or an RDS-format secret, TLS with
//! rustls, and the redacted name every message uses.
//!
//! A [`Connector`] never shows its password: its `Debug` and [`Connector::name`] are
//! `postgres://user@host:port/dbname`, and no error built here contains the URL or the
//! secret's text.
//!
//! TLS follows `sslmode` (`disable`, `prefer` (the default), `require`) from the URL or the
//! source's `tls` setting. Whenever TLS is used the server's certificate chain and host name
//! are verified (libpq's `verify-full`) against the system's roots plus the PEM bundle in
//! `ca_file` (e.g. Amazon RDS's global bundle). `prefer` falls back to plain text only when
//! the server does not offer TLS at all, never after a failed verification. SCRAM channel
//! binding is not offered (`channel_binding=prefer` then authenticates without it).

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, NoTls, TlsConnect, TlsStream};
use tokio_postgres::{Client, Socket};

use super::PostgresError;
use crate::config::TlsMode;
use crate::pg::pg_message;
use crate::redact::redact_url;

/// How long establishing a connection may take unless the URL says `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How to reach one PostgreSQL server: connection settings (never shown) and TLS.
#[derive(Clone)]
pub struct Connector {
    config: tokio_postgres::Config,
    tls: Option<MakeRustls>,
    name: String,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Connector").field(&self.name).finish()
    }
}

impl Connector {
    /// Settings from a `postgres://` / `postgresql://` URL (or a libpq `key=value` string).
    /// `tls` overrides the URL's `sslmode`; `ca_file` adds trusted roots (PEM).
    pub fn from_url(url: &str, tls: Option<TlsMode>, ca_file: Option<&Path>) -> Result<Connector, PostgresError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| PostgresError::Settings(redact_url(&pg_message(&e), url)))?;
        Self::from_config(config, tls, ca_file)
    }

    /// Settings from an AWS Secrets Manager secret in the RDS format (`username`,
    /// `password`, `host`, `port`, `dbname`, `engine`), as [`crate::aws::secrets`] reads it:
    /// `port` defaults to 5432 and `dbname` to the user name, as libpq does; TLS is `tls`, else
    /// the secret's `sslmode`, else `prefer`.
    pub fn from_secret(
        secret: &crate::aws::Secret,
        tls: Option<TlsMode>,
        ca_file: Option<&Path>,
    ) -> Result<Connector, PostgresError> {
        if let Some(engine) = &secret.engine
            && !engine.to_ascii_lowercase().contains("postgres")
        {
            return Err(PostgresError::Settings(format!("the secret is for engine {engine:?}, not PostgreSQL")));
        }
        let mut config = tokio_postgres::Config::new();
        config
            .user(&secret.username)
            .password(secret.password.expose().as_bytes())
            .host(&secret.host)
            .port(secret.port.unwrap_or(5432))
            .dbname(secret.dbname.as_deref().unwrap_or(&secret.username))
            .ssl_mode(SslMode::Prefer);
        Self::from_config(config, tls.or(secret.sslmode), ca_file)
    }

    fn from_config(
        mut config: tokio_postgres::Config,
        tls: Option<TlsMode>,
        ca_file: Option<&Path>,
    ) -> Result<Connector, PostgresError> {
        if let Some(mode) = tls {
            config.ssl_mode(match mode {
                TlsMode::Disable => SslMode::Disable,
                TlsMode::Prefer => SslMode::Prefer,
                TlsMode::Require => SslMode::Require,
            });
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("byob");
        }
        let tls = match config.get_ssl_mode() {
            SslMode::Disable => None,
            _ => Some(MakeRustls::new(ca_file)?),
        };
        let name = display_name(&config);
        Ok(Connector { config, tls, name })
    }

    /// `postgres://user@host:port/dbname`: the connection named without its password.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The TLS mode connections use.
    pub fn tls_mode(&self) -> TlsMode {
        match self.config.get_ssl_mode() {
            SslMode::Disable => TlsMode::Disable,
            SslMode::Require => TlsMode::Require,
            _ => TlsMode::Prefer,
        }
    }

    /// Opens a connection. Its background task runs on the current Tokio runtime and ends
    /// when the returned client is dropped.
    pub async fn connect(&self) -> Result<Client, PostgresError> {
        match &self.tls {
            Some(tls) => spawn(self.config.connect(tls.clone()).await),
            None => spawn(self.config.connect(NoTls).await),
        }
    }
}

fn spawn<S, T>(
    connected: Result<(Client, tokio_postgres::Connection<S, T>), tokio_postgres::Error>,
) -> Result<Client, PostgresError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = connected.map_err(|e| {
        let plain_server =
            std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("does not support TLS"));
        if plain_server {
            PostgresError::Tls(
                "the server does not offer TLS, and TLS is required: enable TLS on the server, or, for a server on a \
                 trusted network only, say sslmode=disable (in the URL or the secret; BYOB_LOAD_TLS=disable or \
                 --tls disable for the loader, tls = \"disable\" for a source)"
                    .to_owned(),
            )
        } else {
            PostgresError::Connect(e)
        }
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection ended with an error");
        }
    });
    Ok(client)
}

/// `postgres://user@host:port/dbname` from settings: everything but the password.
fn display_name(config: &tokio_postgres::Config) -> String {
    let user = config.get_user().unwrap_or("");
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                Host::Tcp(h) => h.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            match ports.get(i).or(ports.first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let at = if user.is_empty() { String::new() } else { format!("{user}@") };
    format!("postgres://{at}{}/{}", hosts.join(","), config.get_dbname().unwrap_or(""))
}

/// The system's trusted roots, loaded once per process.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!(error = %e, "skipping a system root certificate");
        }
        found.certs
    })
}

/// Makes rustls TLS sessions for tokio-postgres.
#[derive(Clone)]
struct MakeRustls {
    config: Arc<rustls::ClientConfig>,
}

impl MakeRustls {
    fn new(ca_file: Option<&Path>) -> Result<MakeRustls, PostgresError> {
        let mut roots = rustls::RootCertStore::empty();
        let (_added, _ignored) = roots.add_parsable_certificates(system_roots().iter().cloned());
        if let Some(path) = ca_file {
            let tls_error = |e: &dyn fmt::Display| PostgresError::Tls(format!("ca_file {}: {e}", path.display()));
            let mut found = 0;
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| tls_error(&e))? {
                roots.add(cert.map_err(|e| tls_error(&e))?).map_err(|e| tls_error(&e))?;
                found += 1;
            }
            if found == 0 {
                return Err(tls_error(&"holds no PEM certificate"));
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PostgresError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(MakeRustls { config: Arc::new(config) })
    }
}

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, io::Error> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("host {domain:?}: {e}")))?;
        Ok(RustlsConnect { config: self.config.clone(), name })
    }
}

/// One TLS handshake.
struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let stream = tokio_rustls::TlsConnector::from(self.config).connect(self.name, stream).await?;
            Ok(RustlsStream(Box::new(stream)))
        })
    }
}

/// A TLS session over a socket.
struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl AsyncRead for RustlsStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.0.as_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(self.0.as_mut()).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.0.as_mut()).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.0.as_mut()).poll_shutdown(cx)
    }
}

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

/// Where a connection's settings come from before they are resolved.
#[derive(Clone, Debug)]
pub(crate) enum ConnectSpec {
    /// Already resolved.
    Ready(Connector),
    /// A URL, parsed on first use (the config was validated, so this rarely fails).
    Url { url: RedactedUrl, tls: Option<TlsMode>, ca_file: Option<PathBuf> },
    /// An AWS Secrets Manager secret (ARN or name) in the RDS format.
    Secret { id: String, tls: Option<TlsMode>, ca_file: Option<PathBuf>, aws: crate::config::AwsConfig },
}

/// A connection URL whose `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct RedactedUrl(pub(crate) String);

impl fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<postgres URL>")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_never_show_the_password() {
        let url = "postgresql://byob:s3cr3t-pw@db.internal:6543/platform?sslmode=disable";
        let c = Connector::from_url(url, None, None).unwrap();
        assert_eq!(c.name(), "postgres://byob@db.internal:6543/platform");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let e = Connector::from_url("postgresql://byob:s3cr3t-pw@db.internal:6543/platform?bogus=1", None, None)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cr3t"), "{e}");
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn rds_secrets() {
        let json = r#"{"username":"byob","password":"p@ss:w/rd","host":"db.abc.eu-west-1.rds.amazonaws.com","port":5432,"dbname":"platform","engine":"postgres"}"#;
        let secret = crate::aws::Secret::parse("prod/db", json).unwrap();
        let c = Connector::from_secret(&secret, Some(TlsMode::Require), None).unwrap();
        assert_eq!(c.name(), "postgres://byob@db.abc.eu-west-1.rds.amazonaws.com:5432/platform");
        assert_eq!(c.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(c.config.get_password(), Some(&b"p@ss:w/rd"[..]));
        assert!(!format!("{c:?}").contains("p@ss"));
        let secret =
            crate::aws::Secret::parse("x", r#"{"username":"u","password":"x","host":"h","port":"6000"}"#).unwrap();
        let c = Connector::from_secret(&secret, None, None).unwrap();
        assert_eq!(c.name(), "postgres://u@h:6000/u");
        assert_eq!(c.config.get_ssl_mode(), SslMode::Prefer);
        let secret =
            crate::aws::Secret::parse("x", r#"{"username":"u","password":"hunter2","host":"h","engine":"mysql"}"#)
                .unwrap();
        let e = Connector::from_secret(&secret, None, None).unwrap_err().to_string();
        assert!(e.contains("mysql") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let Err(e) = MakeRustls::new(Some(Path::new("/nonexistent/rds.pem"))) else {
            panic!("a missing file was accepted")
        };
        let e = e.to_string();
        assert!(e.contains("/nonexistent/rds.pem"), "{e}");
    }
}
