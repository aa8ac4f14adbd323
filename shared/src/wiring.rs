//! Wiring: from a config to the parts every runner uses: the source, each destination's sink,
//! the state store, the export settings, and the one SDK config they share (loaded once, from
//! the environment: no request is sent). The in-process runner ([`crate::run`]), the deployed
//! steps ([`crate::workflow`]) and `byob export` build their parts here and nowhere else.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_config::SdkConfig;

use crate::config::{Config, DestinationConfig, SourceConfig};
use crate::export::ExportSpec;
use crate::layout::{self, RunId};
use crate::sink::{LocalSink, ObjectSink, S3Sink};
use crate::source::Source;
use crate::source::lake::LakeSource;
use crate::state::{LocalState, S3State, StateStore};
use crate::{Error, Result};

/// How the slices of one run are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// All through one source in this process (`byob run`): a PostgreSQL source exports one
    /// snapshot that every slice imports, so the run is one consistent moment of the database.
    OneSource,
    /// Each step through its own source, as the deployed Lambda steps do: nothing is held
    /// between steps, each slice reads its own snapshot, and only bounds that stay exact
    /// across snapshots are planned (key ranges, not page ranges).
    SourcePerStep,
}

/// The source the config describes; a lake in S3 is read with `sdk`'s credentials.
pub fn source(config: &Config, sdk: &SdkConfig, reads: Reads) -> Arc<dyn Source> {
    match &config.source {
        SourceConfig::Parquet(parquet) => {
            let mut lake = LakeSource::new(parquet.path.clone()).with_s3(s3_client(sdk));
            for table in &config.tables {
                if let Some(p) = &table.path {
                    lake = lake.with_table_path(&table.name, p.clone());
                }
            }
            Arc::new(lake)
        }
        SourceConfig::Postgres(postgres) => Arc::new(
            crate::source::postgres::PgSource::from_config(postgres, &config.tables, &config.aws)
                .with_shared_snapshot(reads == Reads::OneSource),
        ),
    }
}

/// The sink a destination writes to: its local folder, or its bucket through the role chain
/// (`aws.writer_role_arn`, then the customer's role with its ExternalId), starting from `sdk`'s
/// credentials. STS session names carry the destination id and `run`. Nothing is sent to AWS
/// until the first object is written.
pub async fn sink(
    config: &Config,
    sdk: &SdkConfig,
    destination: &DestinationConfig,
    run: RunId,
) -> Result<Arc<dyn ObjectSink>> {
    match (&destination.folder, &destination.bucket) {
        (Some(folder), _) => Ok(Arc::new(LocalSink::new(folder.clone()))),
        (None, Some(_)) => {
            Ok(Arc::new(S3Sink::for_destination_with(sdk, config, destination, &run.to_string()).await?))
        }
        (None, None) => Err(Error::Plan(format!("destination {:?} has neither bucket nor folder", destination.id))),
    }
}

/// The export settings of a destination for `run`.
pub fn export_spec(config: &Config, destination: &DestinationConfig, run: RunId) -> Result<ExportSpec> {
    Ok(ExportSpec {
        run,
        prefix: layout::normalize_prefix(&destination.prefix)?,
        template: destination.key_template()?,
        format: destination.format.clone(),
        max_file_rows: destination.max_file_rows,
        max_file_bytes: destination.max_file_bytes.0,
        encoder: config.export.encoder_options(),
        metadata: BTreeMap::new(),
        manifest: destination.manifest,
        partition_by: destination.partition_by.clone(),
        pgp: destination
            .pgp_public_key
            .as_ref()
            .map(|text| {
                crate::format::pgp::RecipientKey::parse(text.as_bytes())
                    .map(Arc::new)
                    .map_err(|e| Error::Plan(format!("destination {:?}: pgp_public_key: {e}", destination.id)))
            })
            .transpose()?,
    })
}

/// The SDK config every AWS client of `config` starts from ([`crate::aws::sdk_config`]).
pub async fn sdk(config: &Config) -> SdkConfig {
    crate::aws::sdk_config(&config.aws).await
}

/// The state store the config names: a local folder, or `s3://bucket/prefix` of our account.
pub fn state(config: &Config, sdk: &SdkConfig) -> Arc<dyn StateStore> {
    let path = config.state.path.to_string_lossy();
    match path.strip_prefix("s3://") {
        Some(rest) => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            Arc::new(S3State::new(s3_client(sdk), bucket, prefix))
        }
        None => Arc::new(LocalState::new(config.state.path.clone())),
    }
}

/// An S3 client of our own account; path-style addressing when an endpoint is configured.
fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some()).build();
    aws_sdk_s3::Client::from_conf(config)
}
