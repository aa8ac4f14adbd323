//! TODO(helper-3): placeholder so the crate compiles; replaced by the config schema.

/// Placeholder.
#[derive(Debug, thiserror::Error)]
#[error("config errors")]
pub struct ConfigErrors(pub Vec<String>);
