//! Config problems: each names its field path, the offending value (never a secret's) and
//! what is allowed; all of them come back at once.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// One thing wrong with a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where, as a field path: `destinations[1].bucket`, `export.part_size`; empty for the
    /// file as a whole (unreadable, not TOML, ...).
    pub path: String,
    /// The offending value as it would be written in the config (strings quoted), when
    /// showing it helps; never set for a field that may hold a secret.
    pub value: Option<String>,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl ConfigProblem {
    /// A problem at `path`; `value` is dropped when the path names a field that may hold a
    /// secret.
    pub fn new(path: impl Into<String>, value: Option<String>, message: impl Into<String>) -> Self {
        let path = path.into();
        let value = if is_sensitive_path(&path) { None } else { value };
        ConfigProblem { path, value, message: message.into() }
    }

    pub(super) fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(path, None, message)
    }

    pub(super) fn with_str(path: impl Into<String>, value: &str, message: impl Into<String>) -> Self {
        Self::new(path, Some(format!("{value:?}")), message)
    }

    pub(super) fn with_num(path: impl Into<String>, value: impl fmt::Display, message: impl Into<String>) -> Self {
        Self::new(path, Some(value.to_string()), message)
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.path.is_empty(), &self.value) {
            (true, _) => write!(f, "{}", self.message),
            (false, None) => write!(f, "{}: {}", self.path, self.message),
            (false, Some(value)) => write!(f, "{} = {}: {}", self.path, value, self.message),
        }
    }
}

/// Every problem found in a configuration, in the order of the file. Displayed one per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_problems(.0))]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

pub(super) fn render_problems(problems: &[ConfigProblem]) -> String {
    match problems {
        [] => "invalid configuration".to_owned(),
        [one] => format!("invalid configuration: {one}"),
        many => {
            let mut out = format!("invalid configuration ({} problems):", many.len());
            for p in many {
                out.push_str("\n  ");
                out.push_str(&p.to_string());
            }
            out
        }
    }
}

impl ConfigErrors {
    /// The problems, in the order of the file.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigProblem> {
        self.0.iter()
    }

    /// The first problem at exactly `path`, if any.
    pub fn at(&self, path: &str) -> Option<&ConfigProblem> {
        self.0.iter().find(|p| p.path == path)
    }

    /// One problem with the config as a whole (unreadable, missing, not set).
    pub fn file(message: impl Into<String>) -> Self {
        ConfigErrors(vec![ConfigProblem::at("", message)])
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigProblem;
    type IntoIter = std::slice::Iter<'a, ConfigProblem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Whether a field path names something that may hold a secret, whose value must never be
/// shown.
pub(super) fn is_sensitive_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    ["password", "passwd", "secret", "token", "private_key", "access_key", "api_key", "credential"]
        .iter()
        .any(|word| lower.contains(word))
}
