//! Run ids, key templates and the bucket layout: where every object of a dump lands.
//!
//! The default layout is Dreamdata's, bit for bit:
//!
//! ```text
//! <prefix>/receipt.json                                  rewritten last
//! <prefix>/<YYYY-MM-DDTHH:MM>/<table>/<table>_000000000000.parquet.gz
//! <prefix>/<YYYY-MM-DDTHH:MM>/receipt.run.json           immutable copy of that run's receipt
//! ```
//!
//! Everything here is a pure function of its inputs: the same run, table and shard always give
//! the same key, which is what makes a retried or re-run dump overwrite exactly what it wrote
//! before instead of leaving duplicates. Keys are computed RELATIVE to the destination's
//! prefix; [`join`] puts the prefix in front at the very last moment, so the receipt (whose
//! `folder` and `key` fields are relative to the prefix) and the sink agree by construction.
//!
//! This module must never produce an absolute key, a `.` or `..` segment, an empty segment,
//! or a character outside S3's safe set (other than the `:` of the run id, which Dreamdata's
//! layout requires).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a run id, key template, prefix or name is invalid. Every message names the bad input
/// and says what is allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// A run id is not `YYYY-MM-DDTHH:MM`.
    #[error("run id {input:?} is invalid: {reason}")]
    RunId {
        /// The text that was given.
        input: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// A scheduled time is not an RFC 3339 timestamp.
    #[error("scheduled time {input:?} is invalid: {reason}")]
    ScheduledTime {
        /// The text that was given.
        input: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// A key template breaks one of the layout rules.
    #[error("key template {template:?} is invalid: {reason}")]
    Template {
        /// The template that was given.
        template: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// A destination prefix breaks one of the layout rules.
    #[error("prefix {prefix:?} is invalid: {reason}")]
    Prefix {
        /// The prefix that was given.
        prefix: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// A table name cannot be used in keys and file names.
    #[error("table name {name:?} is invalid: {reason}")]
    TableName {
        /// The name that was given.
        name: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// A destination id cannot be used in keys, session names and file names.
    #[error("destination id {id:?} is invalid: {reason}")]
    DestinationId {
        /// The id that was given.
        id: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
}

impl LayoutError {
    /// What is wrong and what is allowed, without repeating the input (the config validator
    /// shows the input next to the field path itself).
    pub fn reason(&self) -> &str {
        match self {
            LayoutError::RunId { reason, .. }
            | LayoutError::ScheduledTime { reason, .. }
            | LayoutError::Template { reason, .. }
            | LayoutError::Prefix { reason, .. }
            | LayoutError::TableName { reason, .. }
            | LayoutError::DestinationId { reason, .. } => reason,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Run ids
// ---------------------------------------------------------------------------------------------

const RUN_ID_RULE: &str = "a run id is a UTC minute written YYYY-MM-DDTHH:MM, e.g. 2023-03-14T04:03";

/// The id of one dump: the UTC minute its schedule fired, written `YYYY-MM-DDTHH:MM`.
///
/// It is the scheduled time, not the time the code happened to run, so a retried or re-run
/// dump computes exactly the same keys and overwrites its own files instead of duplicating
/// them. Ordering is chronological (and equals the ordering of the strings).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId(NaiveDateTime);

impl RunId {
    /// Parses `YYYY-MM-DDTHH:MM` strictly: exactly 16 characters, zero-padded, a real date.
    pub fn parse(s: &str) -> Result<RunId, LayoutError> {
        let err = |reason: String| LayoutError::RunId { input: s.to_owned(), reason };
        let b = s.as_bytes();
        let shape_ok = b.len() == 16
            && b.iter().enumerate().all(|(i, &c)| match i {
                4 | 7 => c == b'-',
                10 => c == b'T',
                13 => c == b':',
                _ => c.is_ascii_digit(),
            });
        if !shape_ok {
            return Err(err(RUN_ID_RULE.to_owned()));
        }
        let num = |r: std::ops::Range<usize>| -> u32 { b[r].iter().fold(0, |acc, &c| acc * 10 + u32::from(c - b'0')) };
        let (year, month, day, hour, minute) = (num(0..4), num(5..7), num(8..10), num(11..13), num(14..16));
        Self::from_parts(year, month, day, hour, minute)
            .ok_or_else(|| err(format!("no such date or time; {RUN_ID_RULE}")))
    }

    /// The run id of the minute `year-month-day hour:minute` (UTC), or `None` if there is no
    /// such minute or the year is outside 0000-9999.
    pub fn from_parts(year: u32, month: u32, day: u32, hour: u32, minute: u32) -> Option<RunId> {
        if year > 9999 {
            return None;
        }
        let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
        Some(RunId(date.and_hms_opt(hour, minute, 0)?))
    }

    /// The run id of an EventBridge Scheduler `<aws.scheduler.scheduled-time>` (RFC 3339,
    /// e.g. `2022-03-22T18:59:43Z`): converted to UTC and truncated to the minute, so every
    /// retry of the same scheduled invocation gets the same run id.
    pub fn from_scheduled_time(s: &str) -> Result<RunId, LayoutError> {
        let time = DateTime::parse_from_rfc3339(s.trim()).map_err(|e| LayoutError::ScheduledTime {
            input: s.to_owned(),
            reason: format!("{e}; expected an RFC 3339 timestamp such as 2022-03-22T18:59:43Z"),
        })?;
        Self::from_datetime(time.with_timezone(&Utc)).map_err(|_| LayoutError::ScheduledTime {
            input: s.to_owned(),
            reason: "the year must be between 0000 and 9999".to_owned(),
        })
    }

    /// The run id of the minute containing `time`; the year must be 0000-9999 so the id
    /// keeps its fixed width.
    pub fn from_datetime(time: DateTime<Utc>) -> Result<RunId, LayoutError> {
        let t = time.naive_utc();
        let year = u32::try_from(t.year()).ok();
        year.and_then(|y| Self::from_parts(y, t.month(), t.day(), t.hour(), t.minute())).ok_or_else(|| {
            LayoutError::RunId { input: time.to_rfc3339(), reason: "the year must be between 0000 and 9999".to_owned() }
        })
    }

    /// The current minute (UTC): for runs started by hand rather than by a schedule.
    pub fn now() -> RunId {
        let t = Utc::now().naive_utc();
        // Truncate to the minute; `with_second(0)` and `with_nanosecond(0)` cannot fail on a
        // valid time, but fall back to the untruncated time rather than panic.
        let minute = t.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(t);
        RunId(minute)
    }

    /// The minute as a UTC timestamp.
    pub fn datetime(&self) -> DateTime<Utc> {
        self.0.and_utc()
    }

    /// Four-digit year, e.g. `2023` (the `{YYYY}` placeholder).
    pub fn year(&self) -> String {
        format!("{:04}", self.0.year())
    }

    /// Two-digit month, e.g. `03` (the `{MM}` placeholder).
    pub fn month(&self) -> String {
        format!("{:02}", self.0.month())
    }

    /// Two-digit day of the month, e.g. `14` (the `{DD}` placeholder).
    pub fn day(&self) -> String {
        format!("{:02}", self.0.day())
    }

    /// Two-digit hour, e.g. `04` (the `{HH}` placeholder).
    pub fn hour(&self) -> String {
        format!("{:02}", self.0.hour())
    }

    /// Two-digit minute, e.g. `03`.
    pub fn minute(&self) -> String {
        format!("{:02}", self.0.minute())
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.0;
        write!(f, "{:04}-{:02}-{:02}T{:02}:{:02}", t.year(), t.month(), t.day(), t.hour(), t.minute())
    }
}

impl FromStr for RunId {
    type Err = LayoutError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunId::parse(s)
    }
}

impl Serialize for RunId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RunId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RunId::parse(&s).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Shards, receipts, names
// ---------------------------------------------------------------------------------------------

/// The distance between the first shard numbers of two consecutive slices of a table.
///
/// A big table is split into slices that export in parallel, each on its own; slice `i`
/// numbers its files from `i * SHARD_STRIDE`, so two slices never pick the same key and no
/// coordination is needed. A slice would need more than a million files (a petabyte at the
/// default 256 MiB per file) to overflow into the next slice's range; and with 12 digits a
/// table can have up to 999,999 slices.
pub const SHARD_STRIDE: u64 = 1_000_000;

/// The largest shard number that still has 12 digits.
pub const MAX_SHARD: u64 = 999_999_999_999;

/// The shard number as written in keys: 12 zero-padded digits, e.g. `000000000001`
/// (BigQuery's and Dreamdata's naming). Numbers above [`MAX_SHARD`] get more digits.
pub fn shard_name(n: u64) -> String {
    format!("{n:012}")
}

/// The file name of the latest receipt, `<prefix>/receipt.json` (relative key `receipt.json`):
/// the one key of a dump that ends in `receipt.json`, so an S3 notification with that suffix
/// (what Dreamdata tells its customers to set) fires exactly once per dump.
pub const RECEIPT_FILE: &str = "receipt.json";

/// The file name of each run's immutable receipt copy, `<prefix>/<run>/receipt.run.json`:
/// deliberately NOT ending in `receipt.json`, so it never fires the receipt notification.
pub const RUN_RECEIPT_FILE: &str = "receipt.run.json";

/// The key of a run's immutable receipt, relative to the prefix: `<run>/receipt.run.json`.
pub fn run_receipt_key(run: &RunId) -> String {
    format!("{run}/{RUN_RECEIPT_FILE}")
}

/// The longest identifier every warehouse target holds: PostgreSQL keeps at most 63 bytes of a
/// name and silently truncates longer ones (two long names can then collide).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Checks a table name: 1-63 characters of ASCII letters, digits and `_`, not starting with
/// a digit. Table names become key segments, file names and warehouse table names, so they
/// must be safe in all three without quoting, and fit PostgreSQL's 63-byte names.
pub fn validate_table_name(s: &str) -> Result<(), LayoutError> {
    let err = |reason: &str| LayoutError::TableName {
        name: s.to_owned(),
        reason: format!("{reason}; table names are 1-63 ASCII letters, digits and '_', not starting with a digit"),
    };
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    if s.len() > MAX_IDENTIFIER_BYTES {
        return Err(err(&format!("it is {} characters long", s.len())));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_')) {
        return Err(err(&format!("it contains {c:?}")));
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(err("it starts with a digit"));
    }
    Ok(())
}

/// Checks a destination id: 1-64 characters of lowercase ASCII letters, digits, `_` and `-`,
/// starting with a letter or digit. Ids appear in STS session names (the customer's
/// CloudTrail), state keys and local file names.
pub fn validate_destination_id(s: &str) -> Result<(), LayoutError> {
    let err = |reason: &str| LayoutError::DestinationId {
        id: s.to_owned(),
        reason: format!(
            "{reason}; destination ids are 1-64 lowercase letters, digits, '_' and '-', starting with a letter or digit"
        ),
    };
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    if s.len() > 64 {
        return Err(err(&format!("it is {} characters long", s.len())));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')) {
        return Err(err(&format!("it contains {c:?}")));
    }
    if s.starts_with(['_', '-']) {
        return Err(err("it starts with a symbol"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Prefixes
// ---------------------------------------------------------------------------------------------

/// The longest prefix allowed, in bytes: half of S3's 1,024-byte key limit, leaving the rest
/// for the run, table and file name.
pub const MAX_PREFIX_BYTES: usize = 512;

/// The characters S3 documents as safe in keys, besides ASCII letters and digits.
const SAFE_SYMBOLS: &str = "!-_.*'()=";
const SAFE_RULE: &str = "ASCII letters, digits and !-_.*'()=";

fn is_safe_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || SAFE_SYMBOLS.contains(c)
}

/// Checks and normalizes a destination prefix (the folder inside the bucket that receives
/// everything): no leading `/` (keys are never absolute), one trailing `/` is dropped, no
/// empty, `.` or `..` segments, only S3's safe characters, at most 512 bytes. The empty
/// prefix (the bucket root) is allowed.
pub fn normalize_prefix(p: &str) -> Result<String, LayoutError> {
    let err = |reason: String| LayoutError::Prefix { prefix: p.to_owned(), reason };
    if p.starts_with('/') {
        return Err(err(
            "it starts with '/'; a prefix is relative to the bucket root, e.g. \"exports/acme\"".to_owned()
        ));
    }
    if p.len() > MAX_PREFIX_BYTES {
        return Err(err(format!("it is {} bytes long; at most {MAX_PREFIX_BYTES} are allowed", p.len())));
    }
    let trimmed = p.strip_suffix('/').unwrap_or(p);
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for segment in trimmed.split('/') {
        if segment.is_empty() {
            return Err(err("it has an empty segment ('//'); segments are separated by a single '/'".to_owned()));
        }
        if segment == "." || segment == ".." {
            return Err(err(format!("it has a {segment:?} segment; '.' and '..' are not allowed in keys")));
        }
        if let Some(c) = segment.chars().find(|c| !is_safe_char(*c)) {
            return Err(err(format!("it contains {c:?}; prefixes use {SAFE_RULE}, with '/' between segments")));
        }
    }
    Ok(trimmed.to_owned())
}

/// Joins a (normalized) prefix and a relative key with exactly one `/`; an empty prefix
/// gives the relative key unchanged.
pub fn join(prefix: &str, relative: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    let relative = relative.trim_start_matches('/');
    match (prefix.is_empty(), relative.is_empty()) {
        (true, _) => relative.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) => format!("{prefix}/{relative}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Key templates
// ---------------------------------------------------------------------------------------------

/// The placeholders a key template may use, as listed in error messages.
pub const PLACEHOLDERS: &str =
    "{prefix} (only as the first segment), {run}, {table}, {partition}, {shard}, {YYYY}, {MM}, {DD}, {HH}, {ext}";

/// What `{partition}` renders as for a table without the destination's `partition_by` column,
/// and for the one empty file of a partitioned table with no rows.
pub const UNPARTITIONED: &str = "all";

/// The longest key template allowed, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placeholder {
    Run,
    Table,
    Partition,
    Shard,
    Year,
    Month,
    Day,
    Hour,
    Ext,
}

impl Placeholder {
    fn from_name(name: &str) -> Option<Placeholder> {
        Some(match name {
            "run" => Placeholder::Run,
            "table" => Placeholder::Table,
            "partition" => Placeholder::Partition,
            "shard" => Placeholder::Shard,
            "YYYY" => Placeholder::Year,
            "MM" => Placeholder::Month,
            "DD" => Placeholder::Day,
            "HH" => Placeholder::Hour,
            "ext" => Placeholder::Ext,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Placeholder(Placeholder),
}

/// Where each file of a table goes, relative to the destination's prefix.
///
/// The default is Dreamdata's layout, [`KeyTemplate::DEFAULT`]. A template is a `/`-separated
/// list of segments made of literal text (S3's safe characters) and placeholders:
/// `{run}` (`2023-03-14T04:03`), `{table}`, `{shard}` (12 digits), `{YYYY}` `{MM}` `{DD}`
/// `{HH}` (of the run), `{ext}` (e.g. `parquet.gz`), `{partition}` (a date partition's value,
/// `2024-01-02`, with `partition_by`); `{prefix}/` may open the template and is ignored,
/// because keys always live under the prefix.
///
/// The rules guarantee what loaders rely on: keys are never absolute and never contain `.`,
/// `..` or empty segments; `{shard}` is in the file name (the last segment) only, so all files
/// of a table share one folder; and `{run}` and `{table}` are both in that folder, so every
/// table of every run has a folder of its own (the receipt's `tables.*.folder`), which no
/// other run or table writes to. `{partition}` comes after the segments holding `{run}` and
/// `{table}` (the table's folder is what precedes it), so partitions are subfolders or file
/// name parts inside the table's folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyTemplate {
    source: String,
    segments: Vec<Vec<Piece>>,
}

impl Default for KeyTemplate {
    /// [`KeyTemplate::DEFAULT`].
    fn default() -> Self {
        use Piece::{Literal as L, Placeholder as P};
        KeyTemplate {
            source: Self::DEFAULT.to_owned(),
            segments: vec![
                vec![P(Placeholder::Run)],
                vec![P(Placeholder::Table)],
                vec![
                    P(Placeholder::Table),
                    L("_".to_owned()),
                    P(Placeholder::Shard),
                    L(".".to_owned()),
                    P(Placeholder::Ext),
                ],
            ],
        }
    }
}

impl KeyTemplate {
    /// Dreamdata's layout: `2023-03-14T04:03/companies/companies_000000000000.parquet.gz`.
    pub const DEFAULT: &'static str = "{run}/{table}/{table}_{shard}.{ext}";

    /// Parses and checks a template; the error says which rule it breaks and what is allowed.
    pub fn parse(s: &str) -> Result<KeyTemplate, LayoutError> {
        let err = |reason: String| LayoutError::Template { template: s.to_owned(), reason };
        if s.is_empty() {
            return Err(err(format!("it is empty; the default is {:?}", Self::DEFAULT)));
        }
        if s.len() > MAX_TEMPLATE_BYTES {
            return Err(err(format!("it is {} bytes long; at most {MAX_TEMPLATE_BYTES} are allowed", s.len())));
        }
        if s.starts_with('/') {
            return Err(err("it starts with '/'; keys are relative to the destination's prefix".to_owned()));
        }
        let body = match s.strip_prefix("{prefix}") {
            Some(rest) => rest.strip_prefix('/').ok_or_else(|| {
                err("{prefix} must be a whole first segment, followed by '/', e.g. \"{prefix}/{run}/...\"".to_owned())
            })?,
            None => s,
        };

        let raw_segments: Vec<&str> = body.split('/').collect();
        let mut segments = Vec::with_capacity(raw_segments.len());
        for raw in &raw_segments {
            if raw.is_empty() {
                return Err(err(
                    "it has an empty segment ('//' or a trailing '/'); segments are separated by a single '/' and the last one names the file"
                        .to_owned(),
                ));
            }
            if *raw == "." || *raw == ".." {
                return Err(err(format!("it has a {raw:?} segment; '.' and '..' are not allowed in keys")));
            }
            segments.push(Self::parse_segment(raw).map_err(&err)?);
        }

        let Some((last, folder)) = segments.split_last() else {
            return Err(err("it has no segments".to_owned()));
        };
        let has = |pieces: &[Vec<Piece>], p: Placeholder| {
            pieces.iter().flatten().any(|piece| *piece == Piece::Placeholder(p))
        };
        if has(folder, Placeholder::Shard) {
            return Err(err(
                "{shard} may appear only in the file name (the last segment), so all files of a table share one folder"
                    .to_owned(),
            ));
        }
        if has(folder, Placeholder::Ext) {
            // The folder (the receipt's `folder`) does not depend on the format, and a segment
            // of only {ext} would render empty.
            return Err(err("{ext} may appear only in the file name (the last segment)".to_owned()));
        }
        if !has(std::slice::from_ref(last), Placeholder::Shard) {
            return Err(err(
                "it has no {shard} in the file name (the last segment); every file needs its own number".to_owned()
            ));
        }
        for (p, name) in [(Placeholder::Run, "{run}"), (Placeholder::Table, "{table}")] {
            if !has(folder, p) {
                return Err(err(format!(
                    "{name} must appear in the folder part (before the last '/'), so every table of every run gets a folder of its own, e.g. {:?}",
                    Self::DEFAULT
                )));
            }
        }
        let template = KeyTemplate { source: s.to_owned(), segments };
        let table_folder = template.table_folder_segments();
        for (p, name) in [(Placeholder::Run, "{run}"), (Placeholder::Table, "{table}")] {
            if !has(table_folder, p) {
                return Err(err(format!(
                    "{{partition}} must come after the segments holding {name} (and {{run}}/{{table}}), so each table's partitions stay inside its folder, e.g. \"{{run}}/{{table}}/{{partition}}/{{table}}_{{shard}}.{{ext}}\""
                )));
            }
        }
        Ok(template)
    }

    fn parse_segment(raw: &str) -> Result<Vec<Piece>, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = raw.char_indices();
        while let Some((start, c)) = chars.next() {
            match c {
                '{' => {
                    let rest = &raw[start + 1..];
                    let close = rest.find('}');
                    let reopen = rest.find('{');
                    let end = match (close, reopen) {
                        (Some(close), Some(reopen)) if reopen < close => None,
                        (close, _) => close,
                    }
                    .ok_or_else(|| {
                        format!("'{{' at {:?} has no matching '}}'; braces only surround placeholders", &raw[start..])
                    })?;
                    let name = &rest[..end];
                    let placeholder = match Placeholder::from_name(name) {
                        Some(p) => p,
                        None if name == "prefix" => {
                            return Err(
                                "{prefix} is allowed only as the very first segment, \"{prefix}/...\"".to_owned()
                            );
                        }
                        None => {
                            return Err(format!("unknown placeholder {{{name}}}; the known ones are {PLACEHOLDERS}"));
                        }
                    };
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Placeholder(placeholder));
                    // Skip the name and the closing brace.
                    for _ in 0..name.chars().count() + 1 {
                        chars.next();
                    }
                }
                '}' => return Err("'}' without a matching '{'; braces only surround placeholders".to_owned()),
                c if is_safe_char(c) => literal.push(c),
                c => {
                    return Err(format!(
                        "it contains {c:?}; literal text in keys uses {SAFE_RULE}, with '/' between segments"
                    ));
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(pieces)
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `{partition}` appears anywhere.
    pub fn has_partition(&self) -> bool {
        self.segments.iter().flatten().any(|p| *p == Piece::Placeholder(Placeholder::Partition))
    }

    /// The folder segments before the first one holding `{partition}` (the file name excluded).
    fn table_folder_segments(&self) -> &[Vec<Piece>] {
        let folder = self.segments.split_last().map(|(_, folder)| folder).unwrap_or_default();
        let end = folder
            .iter()
            .position(|segment| segment.contains(&Piece::Placeholder(Placeholder::Partition)))
            .unwrap_or(folder.len());
        &folder[..end]
    }

    fn render_segment(
        pieces: &[Piece],
        out: &mut String,
        run: &RunId,
        table: &str,
        partition: &str,
        shard: u64,
        ext: &str,
    ) {
        for piece in pieces {
            match piece {
                Piece::Literal(s) => out.push_str(s),
                Piece::Placeholder(p) => match p {
                    Placeholder::Run => out.push_str(&run.to_string()),
                    Placeholder::Table => out.push_str(table),
                    Placeholder::Partition => out.push_str(partition),
                    Placeholder::Shard => out.push_str(&shard_name(shard)),
                    Placeholder::Year => out.push_str(&run.year()),
                    Placeholder::Month => out.push_str(&run.month()),
                    Placeholder::Day => out.push_str(&run.day()),
                    Placeholder::Hour => out.push_str(&run.hour()),
                    Placeholder::Ext => out.push_str(ext),
                },
            }
        }
    }

    /// The key of file number `shard` of `table` in `run`, relative to the prefix; `ext` has
    /// no leading dot (e.g. `parquet.gz`). `table` must satisfy [`validate_table_name`]. A
    /// `{partition}` renders as [`UNPARTITIONED`].
    pub fn render(&self, run: &RunId, table: &str, shard: u64, ext: &str) -> String {
        self.render_partition(run, table, UNPARTITIONED, shard, ext)
    }

    /// [`KeyTemplate::render`] for a file of `partition` (a [`partition value`](crate::layout::UNPARTITIONED)
    /// made of safe characters, e.g. `2024-01-02`).
    pub fn render_partition(&self, run: &RunId, table: &str, partition: &str, shard: u64, ext: &str) -> String {
        let mut out = String::new();
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            Self::render_segment(segment, &mut out, run, table, partition, shard, ext);
        }
        out
    }

    /// The folder holding every file of `table` in `run`, relative to the prefix and without
    /// a trailing slash: the receipt's `tables.*.folder`, e.g. `2023-03-14T04:03/companies`
    /// (with `{partition}`, the part before the first segment holding it).
    pub fn folder(&self, run: &RunId, table: &str) -> String {
        let mut out = String::new();
        for (i, segment) in self.table_folder_segments().iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            // The table folder never contains {shard}, {ext} or {partition}.
            Self::render_segment(segment, &mut out, run, table, "", 0, "");
        }
        out
    }
}

impl fmt::Display for KeyTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for KeyTemplate {
    type Err = LayoutError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyTemplate::parse(s)
    }
}

impl Serialize for KeyTemplate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for KeyTemplate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        KeyTemplate::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
