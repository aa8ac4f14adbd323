//! The one configuration schema of byob, read from TOML or JSON, and its validation.
//!
//! Every field is documented here (why it exists, with an example); the same text is the
//! reference for `tests/fixtures/config/byob.example.toml`, which shows every field and is
//! checked to validate.
//!
//! Loading is one pipeline for both syntaxes: the text becomes a `serde_json::Value` (TOML via
//! `toml::from_str`), each section is deserialized on its own with `serde_path_to_error` (so a
//! type error names its field path) and `serde_ignored` (so EVERY unknown field is reported,
//! not just the first: the effect of `deny_unknown_fields`, with a complete list), relative
//! local paths are resolved against the config file's folder, and [`Config::validate`] checks
//! every rule. All problems come back at once in [`ConfigErrors`], one line each, naming the
//! field path, the offending value and what is allowed, so a platform engineer fixes a config
//! in one round trip and nothing is written before the config is known to be good.
//!
//! Because unknown fields are collected by the loader rather than by `deny_unknown_fields`
//! on each struct, deserialize a whole [`Config`] (its `Deserialize` runs the same pipeline)
//! or call [`Config::load`] / [`Config::from_toml_str`] / [`Config::from_json_str`]; the
//! section types on their own ignore unknown fields.
//!
//! This module must never echo the value of a field that may hold a secret (password, secret,
//! token, key material) in a problem: such values are left out of every message.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::format::{EncoderOptions, Format};
use crate::increment::{Lookback, Span, TableMode};
use crate::layout::{self, KeyTemplate, LayoutError};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const TIB: u64 = 1024 * GIB;

mod load;
mod names;
mod problems;
mod schedule;
mod schema;
mod sizes;
mod validate;

#[allow(unused_imports)]
pub use load::*;
pub use names::*;
pub use problems::*;
pub use schedule::{Schedule, firing_expression};
pub use schema::*;
pub use sizes::*;
#[allow(unused_imports)]
pub use validate::*;

#[cfg(test)]
mod tests;
