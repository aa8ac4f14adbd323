//! Incremental dumps: watermarks, the range each run of a table covers, and how a plan decides
//! between a full and an incremental dump.
//!
//! A table with a `watermark` column (a timestamp or integer that only grows when a row is
//! written: `updated_at`, an ingestion sequence) can be dumped incrementally: each run exports
//! the tenant's rows whose watermark lies in `(from, to]`, where `from` is the `to` of the last
//! run this destination *completed* (read from our own state, never the customer's bucket) and
//! `to` is the tenant's largest watermark when the run is planned. A failed run records nothing,
//! so the next run covers its range too. The plan fixes the range in every task of the table, so
//! every slice, in whatever process, reads the same rows.
//!
//! A full dump of such a table exports every row whose watermark is at most `to` (and the rows
//! whose watermark is NULL), and starts a new chain: incremental runs build on it until
//! `full_every` asks for the next full dump.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub mod columns;

use crate::layout::RunId;
use crate::schema::ColumnSchema;

/// Whether a table's dump holds every row or only the rows written since the last one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableMode {
    /// Every row: the loader replaces the table.
    #[default]
    Full,
    /// Only rows whose watermark is in the receipt's range: the loader merges them in.
    Incremental,
}

impl TableMode {
    /// `full` or `incremental`.
    pub fn as_str(self) -> &'static str {
        match self {
            TableMode::Full => "full",
            TableMode::Incremental => "incremental",
        }
    }
}

/// What kind of column a watermark is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WatermarkKind {
    /// smallint, integer, bigint (and their unsigned Parquet cousins that fit in an int8).
    Integer,
    /// A timestamp, with or without a time zone (without: its wall clock read as UTC).
    Timestamp,
    /// A date.
    Date,
}

impl WatermarkKind {
    /// `integer`, `timestamp` or `date`.
    pub fn as_str(self) -> &'static str {
        match self {
            WatermarkKind::Integer => "integer",
            WatermarkKind::Timestamp => "timestamp",
            WatermarkKind::Date => "date",
        }
    }
}

/// One value of a watermark column. In JSON (the plan, the receipt, the loader's history): an
/// integer as a number, a timestamp as RFC 3339 UTC (`2024-01-02T03:04:05.123456Z`), a date as
/// `2024-01-02`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Watermark {
    /// An integer watermark.
    Integer(i64),
    /// A timestamp watermark, nanoseconds since 1970-01-01 UTC (1677-2262).
    Timestamp(i64),
    /// A date watermark, days since 1970-01-01.
    Date(i32),
}

impl Watermark {
    /// The kind of column this value comes from.
    pub fn kind(self) -> WatermarkKind {
        match self {
            Watermark::Integer(_) => WatermarkKind::Integer,
            Watermark::Timestamp(_) => WatermarkKind::Timestamp,
            Watermark::Date(_) => WatermarkKind::Date,
        }
    }

    /// A timestamp of `micros` microseconds since 1970, or `None` outside 1677-2262.
    pub fn from_micros(micros: i64) -> Option<Watermark> {
        micros.checked_mul(1000).map(Watermark::Timestamp)
    }

    /// This value moved back by `lookback`, saturating; `None` when the lookback does not fit
    /// the kind (a duration on an integer column, a number on a timestamp).
    pub fn minus(self, lookback: &Lookback) -> Option<Watermark> {
        Some(match (self, lookback) {
            (Watermark::Integer(v), Lookback::Amount(n)) => Watermark::Integer(v.saturating_sub(*n)),
            (Watermark::Timestamp(v), Lookback::Duration(span)) => {
                Watermark::Timestamp(v.saturating_sub(span.seconds().saturating_mul(1_000_000_000)))
            }
            (Watermark::Date(v), Lookback::Duration(span)) => {
                let days = i32::try_from(span.0.div_ceil(86_400)).unwrap_or(i32::MAX);
                Watermark::Date(v.saturating_sub(days))
            }
            _ => return None,
        })
    }
}

impl fmt::Display for Watermark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Watermark::Integer(v) => write!(f, "{v}"),
            Watermark::Timestamp(nanos) => {
                let at = DateTime::<Utc>::from_timestamp_nanos(nanos);
                f.write_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
            }
            Watermark::Date(days) => {
                match days.checked_add(EPOCH_DAYS_FROM_CE).and_then(NaiveDate::from_num_days_from_ce_opt) {
                    Some(date) => write!(f, "{}", date.format("%Y-%m-%d")),
                    None => write!(f, "{days} days after 1970-01-01"),
                }
            }
        }
    }
}

impl std::str::FromStr for Watermark {
    type Err = String;

    /// A date (`2024-01-02`) or an RFC 3339 timestamp; integers are JSON numbers, not text.
    fn from_str(text: &str) -> Result<Watermark, String> {
        if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Ok(Watermark::Date(date.num_days_from_ce() - EPOCH_DAYS_FROM_CE));
        }
        let at = DateTime::parse_from_rfc3339(text)
            .map_err(|_| format!("{:?} is not a watermark (a date YYYY-MM-DD or an RFC 3339 timestamp)", cut(text)))?;
        at.timestamp_nanos_opt()
            .map(Watermark::Timestamp)
            .ok_or_else(|| format!("timestamp {text:?} is outside 1677-2262, which watermarks cover"))
    }
}

/// chrono's day number of 1970-01-01 (0001-01-01 is day 1).
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

fn cut(text: &str) -> String {
    text.chars().take(64).collect()
}

impl Serialize for Watermark {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Watermark::Integer(v) => serializer.serialize_i64(*v),
            other => serializer.collect_str(other),
        }
    }
}

impl<'de> Deserialize<'de> for Watermark {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Watermark, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Integer(i64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Integer(v) => Ok(Watermark::Integer(v)),
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A length of time written `<n><unit>`, unit `s`, `m`, `h` or `d`: `"90m"`, `"7d"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span(u64);

impl Span {
    /// The span in seconds.
    pub fn seconds(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }

    /// Parses `<n><unit>`.
    pub fn parse(text: &str) -> Result<Span, String> {
        let bad = || {
            format!("{:?} is not a duration: write a number and a unit s, m, h or d, e.g. \"2h\" or \"7d\"", cut(text))
        };
        let text = text.trim();
        let unit = text.chars().last().ok_or_else(bad)?;
        let scale: u64 = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let number: u64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
        let seconds = number.checked_mul(scale).filter(|&s| s > 0).ok_or_else(bad)?;
        Ok(Span(seconds))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        match () {
            _ if s.is_multiple_of(86_400) => write!(f, "{}d", s / 86_400),
            _ if s.is_multiple_of(3600) => write!(f, "{}h", s / 3600),
            _ if s.is_multiple_of(60) => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Span, D::Error> {
        Span::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// How far back an incremental run re-reads, for rows that arrive late: a duration for a
/// timestamp or date watermark (`"30m"`), a number for an integer one (`1000`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Lookback {
    /// For integer watermarks.
    Amount(i64),
    /// For timestamp and date watermarks.
    Duration(Span),
}

impl fmt::Display for Lookback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lookback::Amount(n) => write!(f, "{n}"),
            Lookback::Duration(span) => write!(f, "{span}"),
        }
    }
}

/// Which rows of a table a read takes by their watermark, fixed at plan time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// The watermark column.
    pub column: String,
    /// Only rows whose watermark is greater than this; `None` (a full dump): every row up to
    /// `through`, and the rows whose watermark is NULL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Watermark>,
    /// Only rows whose watermark is at most this; `None`: no row had a watermark when the run
    /// was planned (a full dump then takes only the NULL rows, an incremental one nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<Watermark>,
}

impl Window {
    /// Whether a row with watermark `value` (`None`: NULL) is in the window.
    pub fn holds(&self, value: Option<Watermark>) -> bool {
        match (value, self.after) {
            (None, after) => after.is_none(),
            (Some(v), after) => after.is_none_or(|a| v > a) && self.through.is_some_and(|t| v <= t),
        }
    }

    /// Whether a row group whose watermark lies in `[min, max]` (statistics; `None`: unknown)
    /// may hold rows of the window. Only an incremental window skips anything.
    pub fn may_overlap(&self, min: Option<Watermark>, max: Option<Watermark>) -> bool {
        let Some(after) = self.after else { return true };
        let Some(through) = self.through else { return false };
        !(max.is_some_and(|m| m <= after) || min.is_some_and(|m| m > through))
    }
}

/// What an incremental-capable table's tasks carry from the plan: the mode and range of this
/// run, and what the receipt says about them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Increment {
    /// Full or incremental, this run.
    pub mode: TableMode,
    /// The range this run covers and its chain.
    pub range: Range,
    /// Incremental: the run whose range this one continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builds_on: Option<RunId>,
    /// The columns the loader merges on (`primary_key`); empty: rows are replaced by range.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_key: Vec<String>,
}

/// The watermark range of one table in one run, as the receipt states it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// The watermark column.
    pub column: String,
    /// Incremental: the `to` of the run this one builds on (exclusive); absent for a full dump.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Watermark>,
    /// The tenant's largest watermark when the run was planned (inclusive); absent when no row
    /// had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Watermark>,
    /// With a lookback: the rows were read from here (exclusive), before `from`, so rows that
    /// arrived late are exported again (the loader's merge makes that harmless).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reexported_from: Option<Watermark>,
    /// The run of the full dump this chain of incremental runs starts at.
    pub full_run: RunId,
}

impl Increment {
    /// The rows this run reads.
    pub fn window(&self) -> Window {
        Window {
            column: self.range.column.clone(),
            after: self.range.reexported_from.or(self.range.from),
            through: self.range.to,
        }
    }
}

/// The table, as it was found at plan time: its watermark's kind and largest value, and the
/// columns an export would write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HighWater {
    /// The watermark column's kind.
    pub kind: WatermarkKind,
    /// The tenant's largest watermark (NULLs ignored); `None` when no row has one.
    pub max: Option<Watermark>,
    /// The columns the request exports, as the receipt describes them.
    pub columns: Vec<ColumnSchema>,
}

/// What a table's configuration asks of one destination's run.
#[derive(Clone, Debug)]
pub struct Wanted<'a> {
    /// The watermark column.
    pub column: &'a str,
    /// Whether the table is configured incremental (else full with a range, which lets a later
    /// configuration switch to incremental build on it).
    pub incremental: bool,
    /// `primary_key`.
    pub primary_key: &'a [String],
    /// `lookback`.
    pub lookback: Option<Lookback>,
    /// The destination's `full_every`.
    pub full_every: Option<Span>,
}

/// What the last run this destination completed said about the table.
#[derive(Clone, Debug)]
pub struct Previous<'a> {
    /// That run.
    pub run: RunId,
    /// Its receipt's range of the table (`None`: it had none).
    pub range: Option<&'a Range>,
    /// The columns it wrote.
    pub columns: &'a [ColumnSchema],
}

/// Decides this run's mode and range for one table: incremental only when the last completed
/// run of the destination left a range on the same column with a `to`, wrote the same columns,
/// and `full_every` has not passed since the chain's full dump; otherwise full. Returns the
/// increment and, for a full dump of an incremental table, why it is full.
pub fn decide(
    run: RunId,
    wanted: &Wanted<'_>,
    previous: Option<&Previous<'_>>,
    found: &HighWater,
) -> Result<(Increment, Option<String>), String> {
    if let Some(lookback) = &wanted.lookback {
        let fits = matches!(
            (found.kind, lookback),
            (WatermarkKind::Integer, Lookback::Amount(_))
                | (WatermarkKind::Timestamp | WatermarkKind::Date, Lookback::Duration(_))
        );
        if !fits {
            return Err(format!(
                "lookback {lookback} does not fit watermark column {:?}, which is {} ({})",
                wanted.column,
                found.kind.as_str(),
                if found.kind == WatermarkKind::Integer {
                    "give a number, e.g. lookback = 1000"
                } else {
                    "give a duration, e.g. lookback = \"30m\""
                }
            ));
        }
    }
    let full = |reason: Option<String>| {
        let increment = Increment {
            mode: TableMode::Full,
            range: Range {
                column: wanted.column.to_owned(),
                from: None,
                to: found.max,
                reexported_from: None,
                full_run: run,
            },
            builds_on: None,
            primary_key: wanted.primary_key.to_vec(),
        };
        Ok((increment, reason))
    };
    if !wanted.incremental {
        return full(None);
    }
    let Some(previous) = previous else { return full(Some("no earlier run of this destination finished".into())) };
    let Some(range) = previous.range else {
        return full(Some(format!("run {} has no watermark range for it", previous.run)));
    };
    if range.column != wanted.column {
        return full(Some(format!("its watermark column changed from {:?} since run {}", range.column, previous.run)));
    }
    let Some(from) = range.to else {
        return full(Some(format!("no row had a watermark in run {}", previous.run)));
    };
    if from.kind() != found.kind {
        return full(Some(format!("the watermark column's type changed since run {}", previous.run)));
    }
    if previous.columns != found.columns.as_slice() {
        return full(Some(format!("its columns changed since run {}", previous.run)));
    }
    if let Some(every) = wanted.full_every {
        let age = run.datetime().signed_duration_since(range.full_run.datetime()).num_seconds();
        if age >= every.seconds() {
            return full(Some(format!(
                "full_every = \"{every}\" has passed since the full dump of run {}",
                range.full_run
            )));
        }
    }
    // The range never moves backwards: rows deleted since leave `to` where it was.
    let to = found.max.map_or(from, |max| max.max(from));
    let reexported_from = wanted.lookback.as_ref().and_then(|l| from.minus(l));
    let increment = Increment {
        mode: TableMode::Incremental,
        range: Range {
            column: wanted.column.to_owned(),
            from: Some(from),
            to: Some(to),
            reexported_from,
            full_run: range.full_run,
        },
        builds_on: Some(previous.run),
        primary_key: wanted.primary_key.to_vec(),
    };
    Ok((increment, None))
}

#[cfg(test)]
mod tests;
