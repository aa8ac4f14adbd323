//! Slices: how one table's rows (of one tenant) are cut into parts that export on their own.
//!
//! A slice is a WHERE condition. With a `slice_key` (an integer, `timestamp`, `timestamptz`
//! or `date` column) the tenant's key range `[min, max]` is cut into `count` equal-width
//! ranges: slice 0 is `key < c1 OR key IS NULL`, slice i is `c_i <= key < c_i+1`, the last
//! is `key >= c_last` (so NULLs, infinities and rows outside the range seen when the cuts
//! were made still belong to exactly one slice). Without a slice key, a plain table is cut
//! by heap pages: `ctid` ranges over `pg_relation_size` (a TID range scan since
//! PostgreSQL 14), the first slice open below and the last open above. Views, partitioned
//! tables and per-table queries without a slice key are not split.
//!
//! The cut points are computed once per (table, tenant, count) and kept by the source, so
//! every slice of one run renders them identically: whatever the data does, each row
//! satisfies exactly one slice's condition.

use tokio_postgres::types::Type;

use super::PostgresError;

/// Slices never number more than this, whatever the estimate says.
pub(crate) const MAX_SLICES: u32 = 10_000;

/// How a table is cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Not split: slice 0 holds every row, any other slice none.
    Whole,
    /// `ctid` page ranges: `count - 1` ascending cut pages.
    Pages(Vec<u64>),
    /// Ranges of the slice key (a quoted column): `count - 1` ascending cuts, as SQL literals.
    Keys { column: String, cuts: Vec<String> },
}

impl Layout {
    /// The WHERE condition of slice `index`.
    pub(crate) fn condition(&self, index: u32) -> String {
        let index = index as usize;
        match self {
            Layout::Whole => if index == 0 { "TRUE" } else { "FALSE" }.to_owned(),
            Layout::Pages(cuts) => {
                let tid = |page: u64| format!("'({page},0)'::tid");
                range(
                    index,
                    cuts.len() + 1,
                    |i| format!("ctid >= {}", tid(cuts[i - 1])),
                    |i| format!("ctid < {}", tid(cuts[i])),
                )
                .unwrap_or_else(|| "FALSE".to_owned())
            }
            Layout::Keys { column, cuts } => {
                match range(
                    index,
                    cuts.len() + 1,
                    |i| format!("{column} >= {}", cuts[i - 1]),
                    |i| format!("{column} < {}", cuts[i]),
                ) {
                    // NULL keys compare as neither: they go to the first slice.
                    Some(cond) if index == 0 && !cuts.is_empty() => format!("({cond} OR {column} IS NULL)"),
                    Some(cond) => cond,
                    None => "FALSE".to_owned(),
                }
            }
        }
    }
}

/// `lower(i) AND upper(i)` for slice `i` of `count`, open below for the first and above for
/// the last; `None` past the last slice.
fn range(
    index: usize,
    count: usize,
    lower: impl Fn(usize) -> String,
    upper: impl Fn(usize) -> String,
) -> Option<String> {
    if index >= count {
        return None;
    }
    let mut parts = Vec::with_capacity(2);
    if index > 0 {
        parts.push(lower(index));
    }
    if index + 1 < count {
        parts.push(upper(index));
    }
    Some(if parts.is_empty() { "TRUE".to_owned() } else { parts.join(" AND ") })
}

/// What kind of column a slice key is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// smallint, integer, bigint: cut on the value.
    Int,
    /// timestamp: cut on microseconds since 1970 (wall clock read as UTC).
    Timestamp,
    /// timestamptz: cut on microseconds since 1970.
    TimestampTz,
    /// date: cut on days since 1970.
    Date,
}

impl KeyKind {
    /// The kind of a slice key column of type `ty`, or `None` if it cannot be one.
    pub(crate) fn of(ty: &Type) -> Option<KeyKind> {
        match *ty {
            Type::INT2 | Type::INT4 | Type::INT8 => Some(KeyKind::Int),
            Type::TIMESTAMP => Some(KeyKind::Timestamp),
            Type::TIMESTAMPTZ => Some(KeyKind::TimestampTz),
            Type::DATE => Some(KeyKind::Date),
            _ => None,
        }
    }

    /// A query returning the key's smallest and largest finite value (as int8 in this kind's
    /// unit) among the rows `filter` selects from `from`.
    pub(crate) fn min_max_sql(self, key: &str, from: &str, filter: &str) -> String {
        match self {
            KeyKind::Int => format!("SELECT min({key})::int8, max({key})::int8 FROM {from} WHERE {filter}"),
            KeyKind::Timestamp | KeyKind::TimestampTz => format!(
                "SELECT (extract(epoch FROM min({key})) * 1000000)::int8, (extract(epoch FROM max({key})) * 1000000)::int8 \
                 FROM {from} WHERE {filter} AND isfinite({key})"
            ),
            KeyKind::Date => format!(
                "SELECT (min({key}) - DATE '1970-01-01')::int8, (max({key}) - DATE '1970-01-01')::int8 \
                 FROM {from} WHERE {filter} AND isfinite({key})"
            ),
        }
    }

    /// A cut point as an SQL literal of the key's type, or `None` if it cannot be written.
    pub(crate) fn literal(self, value: i64) -> Option<String> {
        match self {
            KeyKind::Int => Some(value.to_string()),
            KeyKind::Timestamp | KeyKind::TimestampTz => {
                let at = chrono::DateTime::from_timestamp_micros(value)?.naive_utc();
                let text = at.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
                if !text.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                    // Years outside 0000-9999 are written with a sign PostgreSQL reads differently.
                    return None;
                }
                Some(match self {
                    KeyKind::TimestampTz => format!("'{text}+00'::timestamptz"),
                    _ => format!("'{text}'::timestamp"),
                })
            }
            KeyKind::Date => {
                let days = i32::try_from(value).ok()?.checked_add(719_163)?;
                let date = chrono::NaiveDate::from_num_days_from_ce_opt(days)?;
                let text = date.format("%Y-%m-%d").to_string();
                text.as_bytes().first().is_some_and(u8::is_ascii_digit).then(|| format!("'{text}'::date"))
            }
        }
    }
}

/// `count - 1` ascending cut points splitting `[min, max]` into `count` equal-width ranges.
pub(crate) fn cuts(min: i64, max: i64, count: u32) -> Vec<i64> {
    let (min, max) = (i128::from(min), i128::from(max.max(min)));
    let span = max - min + 1;
    (1..i128::from(count))
        .map(|i| {
            // min <= cut <= max + 1 <= i64::MAX + 1; clamp the one value that could overflow.
            i64::try_from(min + span * i / i128::from(count)).unwrap_or(i64::MAX)
        })
        .collect()
}

/// `count - 1` ascending cut pages splitting `pages` heap pages into `count` ranges.
pub(crate) fn page_cuts(pages: u64, count: u32) -> Vec<u64> {
    (1..u64::from(count)).map(|i| (u128::from(pages) * u128::from(i) / u128::from(count)) as u64).collect()
}

/// How many slices `estimated_rows` rows need at `target` rows each: at least 1, at most
/// `limit` (and [`MAX_SLICES`]).
pub(crate) fn slice_count(estimated_rows: f64, target: u64, limit: u64) -> u32 {
    let wanted = if estimated_rows.is_finite() && estimated_rows > 0.0 {
        (estimated_rows / target.max(1) as f64).ceil() as u64
    } else {
        1
    };
    let capped = wanted.min(limit).clamp(1, u64::from(MAX_SLICES));
    u32::try_from(capped).unwrap_or(MAX_SLICES)
}

/// The planner's row estimate from the first line of `EXPLAIN` output (`... rows=123 ...`).
pub(crate) fn explain_rows(first_line: &str) -> Result<f64, PostgresError> {
    first_line
        .split("rows=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse::<f64>().ok())
        .ok_or_else(|| PostgresError::Settings(format!("cannot read the row estimate from EXPLAIN: {first_line:?}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cuts_are_ascending_and_inside_the_range() {
        assert_eq!(cuts(0, 99, 4), [25, 50, 75]);
        assert_eq!(cuts(-10, 9, 2), [0]);
        assert_eq!(cuts(5, 5, 3), [5, 5]);
        assert_eq!(cuts(i64::MIN, i64::MAX, 2), [0]);
        let c = cuts(i64::MAX - 1, i64::MAX, 3);
        assert!(c.windows(2).all(|w| w[0] <= w[1]), "{c:?}");
        assert_eq!(page_cuts(10, 3), [3, 6]);
        assert_eq!(page_cuts(0, 2), [0]);
    }

    #[test]
    fn conditions_cover_every_value_once() {
        let layout = Layout::Keys { column: "\"k\"".into(), cuts: vec!["10".into(), "20".into()] };
        assert_eq!(layout.condition(0), "(\"k\" < 10 OR \"k\" IS NULL)");
        assert_eq!(layout.condition(1), "\"k\" >= 10 AND \"k\" < 20");
        assert_eq!(layout.condition(2), "\"k\" >= 20");
        assert_eq!(layout.condition(3), "FALSE");
        let pages = Layout::Pages(vec![7]);
        assert_eq!(pages.condition(0), "ctid < '(7,0)'::tid");
        assert_eq!(pages.condition(1), "ctid >= '(7,0)'::tid");
        assert_eq!(Layout::Whole.condition(0), "TRUE");
        assert_eq!(Layout::Whole.condition(1), "FALSE");
        assert_eq!(Layout::Keys { column: "\"k\"".into(), cuts: vec![] }.condition(0), "TRUE");
    }

    #[test]
    fn key_literals() {
        assert_eq!(KeyKind::Int.literal(-5).unwrap(), "-5");
        assert_eq!(
            KeyKind::TimestampTz.literal(1_672_531_200_000_001).unwrap(),
            "'2023-01-01 00:00:00.000001+00'::timestamptz"
        );
        assert_eq!(KeyKind::Timestamp.literal(0).unwrap(), "'1970-01-01 00:00:00.000000'::timestamp");
        assert_eq!(KeyKind::Date.literal(19_358).unwrap(), "'2023-01-01'::date");
        assert_eq!(KeyKind::Date.literal(i64::MAX), None);
        assert_eq!(KeyKind::Timestamp.literal(i64::MAX), None);
    }

    #[test]
    fn counts_and_estimates() {
        assert_eq!(slice_count(0.0, 100, 10), 1);
        assert_eq!(slice_count(1000.0, 100, 1000), 10);
        assert_eq!(slice_count(1001.0, 100, 1000), 11);
        assert_eq!(slice_count(1e12, 1, 5), 5);
        assert_eq!(slice_count(f64::NAN, 1, 5), 1);
        assert_eq!(explain_rows("Seq Scan on events  (cost=0.00..1.05 rows=1234 width=4)").unwrap(), 1234.0);
        assert!(explain_rows("Result").is_err());
    }
}
