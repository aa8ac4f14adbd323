//! The PostgreSQL source connected through an RDS-format secret in Secrets Manager (a moto
//! server standing in for it) instead of a URL: the connector comes from the secret, its
//! name never shows the password, and a slice reads through it.

#![allow(clippy::unwrap_used)]

use byob_testkit::moto;
use byob_testkit::postgres as postgres_harness;

use arrow::array::AsArray;
use arrow::datatypes::Int32Type;
use byob::config::TlsMode;
use byob::format::Codec;
use byob::source::Bounds;
use byob::source::postgres::{Connector, PgSource};
use postgres_harness::export_parquet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rds_secret_in_secrets_manager_connects_the_source() {
    let Some(pg) = postgres_harness::shared() else { return };
    let Some(moto) = moto::Moto::start() else { return };
    // GIVEN a database, and its credentials as RDS writes them into Secrets Manager
    let db = pg.database("secret").await;
    postgres_harness::client(&pg.url(&db))
        .await
        .batch_execute(
            "CREATE TABLE t (id int, tenant_id text); INSERT INTO t VALUES (1, 'acme'), (2, 'globex'), (3, 'acme');",
        )
        .await
        .unwrap();
    let admin = moto.admin_config();
    let secret = serde_json::json!({
        "engine": "postgres", "host": "127.0.0.1", "port": pg.port, "username": "postgres",
        "password": "never-shown-pw", "dbname": db, "dbInstanceIdentifier": "platform"
    });
    aws_sdk_secretsmanager::Client::new(&admin)
        .create_secret()
        .name("byob/platform-db")
        .secret_string(secret.to_string())
        .send()
        .await
        .unwrap();

    // WHEN the source's connector is made from the secret
    let secret = byob::aws::secrets::read_with(&admin, "byob/platform-db").await.unwrap();
    let connector = Connector::from_secret(&secret, Some(TlsMode::Prefer), None).unwrap();

    // THEN it names the server without the password, and reads the tenant's rows
    assert_eq!(connector.name(), format!("postgres://postgres@127.0.0.1:{}/{db}", pg.port));
    assert!(!format!("{connector:?}").contains("never-shown-pw"));
    let exported = export_parquet(&PgSource::new(connector), "t", "acme", Some(&["id"]), &Bounds::Whole, Codec::Gzip)
        .await
        .unwrap();
    let mut ids: Vec<i32> = exported.rows.column(0).as_primitive::<Int32Type>().values().to_vec();
    ids.sort();
    assert_eq!(ids, [1, 3]);
}
