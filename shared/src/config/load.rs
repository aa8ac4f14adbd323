//! Loading: TOML or JSON text -> one `serde_json::Value` -> each section on its own, every
//! unknown field and type error collected, relative paths resolved.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

impl Config {
    /// Reads a `.toml` or `.json` config file, resolves relative local paths against the
    /// file's folder, normalizes prefixes and validates. Every problem is reported at once.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors::file(format!("cannot read {}: {e}", path.display())))?;
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let base = absolute.parent().unwrap_or(Path::new(""));
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("toml") => Self::from_toml_str(&text, base),
            Some("json") => Self::from_json_str(&text, base),
            _ => Err(ConfigErrors::file(format!(
                "{}: config files end in .toml or .json, which says how to read them",
                path.display()
            ))),
        }
    }

    /// Parses TOML text; relative local paths are resolved against `base_dir`.
    pub fn from_toml_str(s: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
        let value = toml::from_str::<Value>(s).map_err(|e| {
            let place = e.span().map(|span| {
                let before = &s[..span.start.min(s.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(" at line {line}, column {column}")
            });
            ConfigErrors::file(format!("not valid TOML{}: {}", place.unwrap_or_default(), e.message().trim()))
        })?;
        Self::from_value(value, base_dir)
    }

    /// Parses JSON text; relative local paths are resolved against `base_dir`.
    pub fn from_json_str(s: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
        let value = serde_json::from_str::<Value>(s).map_err(|e| ConfigErrors::file(format!("not valid JSON: {e}")))?;
        Self::from_value(value, base_dir)
    }

    /// Builds a config from an already parsed document (e.g. a config embedded in an event):
    /// reports every unknown field and type error, resolves relative local paths against
    /// `base_dir`, normalizes prefixes and validates.
    pub fn from_value(value: Value, base_dir: &Path) -> Result<Config, ConfigErrors> {
        let mut problems = Vec::new();
        let mut parts = Parts::from_value(value, &mut problems);
        parts.resolve_paths(base_dir);
        parts.view().validate(&mut problems);
        match parts.complete() {
            Some(mut config) if problems.is_empty() => {
                for d in &mut config.destinations {
                    // Validated above, so normalizing cannot fail; keep the original if it did.
                    if let Ok(prefix) = layout::normalize_prefix(&d.prefix) {
                        d.prefix = prefix;
                    }
                }
                Ok(config)
            }
            _ => Err(ConfigErrors(problems)),
        }
    }

    /// Checks every rule and reports every problem at once.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut problems = Vec::new();
        View {
            source: Some(&self.source),
            source_present: true,
            tables: self.tables.iter().map(Some).collect(),
            destinations: self.destinations.iter().map(Some).collect(),
            export: Some(&self.export),
            aws: Some(&self.aws),
            state: Some(&self.state),
        }
        .validate(&mut problems);
        if problems.is_empty() { Ok(()) } else { Err(ConfigErrors(problems)) }
    }

    /// The config's fingerprint: the sha256 (hex) of its canonical JSON form, after paths are
    /// resolved and defaults applied, so two loads of the same settings agree however the file
    /// is formatted, and any changed setting changes it. A run's plan records it and every later
    /// step of the run checks it ([`crate::workflow`]): one run, one config.
    pub fn sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        // Every map in the schema is a BTreeMap with string keys: the form is deterministic and
        // serializing cannot fail; were it to, the error text still makes a stable fingerprint.
        let canonical = serde_json::to_vec(self).unwrap_or_else(|e| e.to_string().into_bytes());
        hex::encode(Sha256::digest(canonical))
    }

    /// The destination with this id.
    pub fn destination(&self, id: &str) -> Option<&DestinationConfig> {
        self.destinations.iter().find(|d| d.id == id)
    }

    /// The table with this name.
    pub fn table(&self, name: &str) -> Option<&TableConfig> {
        self.tables.iter().find(|t| t.name == name)
    }
}

impl<'de> Deserialize<'de> for Config {
    /// Runs the loader's pipeline: every unknown field and type error is reported and the
    /// config is validated. Relative paths stay relative (to the current directory).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Config::from_value(value, Path::new("")).map_err(de::Error::custom)
    }
}

/// The sections of a config as far as they could be read: `None` where a section (or list
/// element) had a type error, so validation can still check everything else.
pub(super) struct Parts {
    source: Option<SourceConfig>,
    source_present: bool,
    tables: Vec<Option<TableConfig>>,
    destinations: Vec<Option<DestinationConfig>>,
    export: Option<ExportConfig>,
    aws: Option<AwsConfig>,
    state: Option<StateConfig>,
}

impl Parts {
    pub(super) fn from_value(value: Value, problems: &mut Vec<ConfigProblem>) -> Parts {
        let mut parts = Parts {
            source: None,
            source_present: false,
            tables: Vec::new(),
            destinations: Vec::new(),
            export: Some(ExportConfig::default()),
            aws: Some(AwsConfig::default()),
            state: Some(StateConfig::default()),
        };
        let Value::Object(map) = value else {
            problems.push(ConfigProblem::at(
                "",
                "the configuration must be a table (TOML) or an object (JSON) at the top level",
            ));
            return parts;
        };
        for (key, value) in map {
            match key.as_str() {
                "source" => {
                    parts.source_present = true;
                    parts.source = source_from_value(value, problems);
                }
                "tables" => {
                    parts.tables = list_at(value, "tables", problems, |v| match v {
                        Value::String(name) => {
                            Value::Object([("name".to_owned(), Value::String(name))].into_iter().collect())
                        }
                        other => other,
                    });
                }
                "destinations" => parts.destinations = list_at(value, "destinations", problems, |v| v),
                "export" => parts.export = deserialize_at(value, "export", problems),
                "aws" => parts.aws = deserialize_at(value, "aws", problems),
                "state" => parts.state = deserialize_at(value, "state", problems),
                _ => problems.push(unknown_field(push_key(String::new(), &key))),
            }
        }
        parts
    }

    pub(super) fn resolve_paths(&mut self, base: &Path) {
        if let Some(source) = &mut self.source {
            source.resolve_paths(base);
        }
        for table in self.tables.iter_mut().flatten() {
            if let Some(path) = &mut table.path {
                resolve(base, path);
            }
        }
        for destination in self.destinations.iter_mut().flatten() {
            if let Some(folder) = &mut destination.folder {
                resolve(base, folder);
            }
        }
        if let Some(state) = &mut self.state {
            resolve(base, &mut state.path);
        }
    }

    pub(super) fn view(&self) -> View<'_> {
        View {
            source: self.source.as_ref(),
            source_present: self.source_present,
            tables: self.tables.iter().map(Option::as_ref).collect(),
            destinations: self.destinations.iter().map(Option::as_ref).collect(),
            export: self.export.as_ref(),
            aws: self.aws.as_ref(),
            state: self.state.as_ref(),
        }
    }

    pub(super) fn complete(self) -> Option<Config> {
        Some(Config {
            source: self.source?,
            tables: self.tables.into_iter().collect::<Option<_>>()?,
            destinations: self.destinations.into_iter().collect::<Option<_>>()?,
            export: self.export?,
            aws: self.aws?,
            state: self.state?,
        })
    }
}

/// Resolves a relative local path against `base`; URLs (`s3://...`) and empty paths (which
/// validation reports) are left alone.
pub(super) fn resolve(base: &Path, path: &mut PathBuf) {
    let is_url = path.to_str().is_some_and(|s| s.contains("://"));
    if path.is_relative() && !is_url && !path.as_os_str().is_empty() && !base.as_os_str().is_empty() {
        *path = base.join(&*path);
    }
}

pub(super) fn source_from_value(value: Value, problems: &mut Vec<ConfigProblem>) -> Option<SourceConfig> {
    let Value::Object(mut map) = value else {
        problems
            .push(ConfigProblem::at("source", "must be a table, e.g. [source] type = \"parquet\", path = \"lake\""));
        return None;
    };
    let types = SourceConfig::TYPES.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>().join(", ");
    match map.remove("type") {
        Some(Value::String(kind)) => match kind.as_str() {
            "parquet" => deserialize_at(Value::Object(map), "source", problems).map(SourceConfig::Parquet),
            "postgres" => deserialize_at(Value::Object(map), "source", problems).map(SourceConfig::Postgres),
            _ => {
                problems.push(ConfigProblem::with_str(
                    "source.type",
                    &kind,
                    format!("unknown source type; one of {types}"),
                ));
                None
            }
        },
        Some(other) => {
            problems.push(ConfigProblem::with_num("source.type", &other, format!("must be a string, one of {types}")));
            None
        }
        None => {
            problems.push(ConfigProblem::at("source.type", format!("is required: the kind of source, one of {types}")));
            None
        }
    }
}

pub(super) fn list_at<T: DeserializeOwned>(
    value: Value,
    base: &str,
    problems: &mut Vec<ConfigProblem>,
    shorthand: impl Fn(Value) -> Value,
) -> Vec<Option<T>> {
    let Value::Array(items) = value else {
        problems.push(ConfigProblem::at(base, format!("must be a list ([[{base}]] in TOML, an array in JSON)")));
        return Vec::new();
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| deserialize_at(shorthand(item), &format!("{base}[{i}]"), problems))
        .collect()
}

/// Deserializes one section, recording every unknown field and the first type error (with
/// its path) as problems. Returns `None` on a type error.
pub(super) fn deserialize_at<T: DeserializeOwned>(
    value: Value,
    base: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<T> {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(ignored_path(base, &path));
    let result: Result<T, _> = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(value, &mut record));
    problems.extend(unknown.into_iter().map(unknown_field));
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            let mut path = base.to_owned();
            for segment in error.path().iter() {
                path = match segment {
                    serde_path_to_error::Segment::Seq { index } => format!("{path}[{index}]"),
                    serde_path_to_error::Segment::Map { key } => push_key(path, key),
                    serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => path,
                };
            }
            problems.push(type_problem(path, &error.into_inner().to_string()));
            None
        }
    }
}

/// Turns serde's message into a problem, moving a named field into the path.
pub(super) fn type_problem(path: String, message: &str) -> ConfigProblem {
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, rest)| (name.to_owned(), rest.to_owned()))
    };
    // serde_path_to_error's path may already end at the field (it does for unknown fields).
    let with_field = |path: String, field: &str| {
        let full = push_key(String::new(), field);
        if path == full || path.ends_with(&format!(".{full}")) { path } else { push_key(path, field) }
    };
    if let Some((field, _)) = named("missing field `") {
        return ConfigProblem::at(with_field(path, &field), "is required");
    }
    if let Some((field, rest)) = named("unknown field `") {
        let expected = rest.trim_start_matches(',').trim();
        return ConfigProblem::at(
            with_field(path, &field),
            format!("unknown field: byob does not read it; {expected}"),
        );
    }
    if is_sensitive_path(&path) {
        return ConfigProblem::at(path, "has the wrong type (the value is not shown: this field may hold a secret)");
    }
    ConfigProblem::at(path, message)
}

pub(super) fn unknown_field(path: String) -> ConfigProblem {
    ConfigProblem::at(path, "unknown field: byob does not read it (misspelled, or in the wrong section?)")
}

pub(super) fn push_key(mut path: String, key: &str) -> String {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !path.is_empty() {
        path.push('.');
    }
    if plain {
        path.push_str(key);
    } else {
        path.push_str(&format!("{key:?}"));
    }
    path
}

pub(super) fn ignored_path(base: &str, path: &serde_ignored::Path<'_>) -> String {
    match path {
        serde_ignored::Path::Root => base.to_owned(),
        serde_ignored::Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(base, parent)),
        serde_ignored::Path::Map { parent, key } => push_key(ignored_path(base, parent), key),
        serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => ignored_path(base, parent),
    }
}
