//! TLS to PostgreSQL against a cluster of the test's own that accepts TCP connections only over
//! TLS, with a certificate from a CA of its own: the certificate is verified against `ca_file`
//! (no fallback to plain text after a failed check), the session is encrypted, and slices read
//! over it.

#![allow(clippy::unwrap_used)]

use byob_testkit::postgres as postgres_harness;

use arrow::array::AsArray;
use arrow::datatypes::Int32Type;
use byob::config::TlsMode;
use byob::format::Codec;
use byob::source::Bounds;
use byob::source::postgres::{Connector, PgSource};
use postgres_harness::{PgServer, export_parquet};

async fn encrypted(connector: &Connector) -> bool {
    let client = connector.connect().await.unwrap();
    client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn tls_is_verified_and_used_when_the_server_requires_it() {
    let server = match PgServer::start_tls() {
        Ok(server) => server,
        Err(reason) => return postgres_harness::skip_banner(&reason),
    };
    let url = format!("postgresql://postgres@127.0.0.1:{}/postgres", server.port);
    let ca = server.ca.as_deref();

    // GIVEN the server's CA: required TLS connects, verified, encrypted
    let required = Connector::from_url(&url, Some(TlsMode::Require), ca).unwrap();
    assert!(encrypted(&required).await);
    // and prefer (the default) uses TLS when the server offers it
    assert!(encrypted(&Connector::from_url(&url, None, ca).unwrap()).await);

    // a slice reads over it
    let client = required.connect().await.unwrap();
    client
        .batch_execute("CREATE TABLE t (id int, tenant_id text); INSERT INTO t VALUES (1, 'acme'), (2, 'x');")
        .await
        .unwrap();
    let rows =
        export_parquet(&PgSource::new(required.clone()), "t", "acme", Some(&["id"]), &Bounds::Whole, Codec::Zstd)
            .await
            .unwrap()
            .rows;
    assert_eq!(rows.column(0).as_primitive::<Int32Type>().values().to_vec(), [1]);

    // WITHOUT the CA the certificate is not trusted, and prefer does not fall back to plain text
    for mode in [TlsMode::Require, TlsMode::Prefer] {
        let e = Connector::from_url(&url, Some(mode), None).unwrap().connect().await.err().unwrap().to_string();
        assert!(e.to_lowercase().contains("certificate") || e.contains("UnknownIssuer"), "{mode:?}: {e}");
    }
    // and without TLS this server refuses the connection
    let e = Connector::from_url(&url, Some(TlsMode::Disable), ca).unwrap().connect().await.err().unwrap().to_string();
    assert!(e.contains("pg_hba.conf") && e.contains("no encryption"), "{e}");
    // The URL's own sslmode works the same way.
    assert!(encrypted(&Connector::from_url(&format!("{url}?sslmode=require"), None, ca).unwrap()).await);
}
