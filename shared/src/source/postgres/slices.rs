//! Slices: how one table's rows (of one tenant) are cut into parts that export on their own.
//!
//! The dump step plans every slice's exact bounds ([`Bounds`]) and each export task carries
//! its own, so a slice read minutes later, in another process and another snapshot, reads
//! exactly its planned part: slices never overlap and leave no gap, however the table changes.
//!
//! With a slice key (the configured `slice_key`, else, when slices are read in separate
//! snapshots, the table's single-column primary key; an integer, `timestamp`, `timestamptz`
//! or `date` column) the tenant's key range `[min, max]` seen at plan time is cut into `count`
//! equal-width ranges: slice 0 is `key < c1 OR key IS NULL` (and -infinity), slice i is
//! `c_i <= key < c_i+1`, the last `c_last <= key < max + 1` (and +infinity). Rows whose key
//! is above the planned maximum (written after the plan) are in no slice of this run; the
//! next run has them. A key must not change once written: an updated key can move a row from
//! a slice not yet read to one already read, or back.
//!
//! Without a key, a plain table is cut by heap pages: `ctid` ranges over
//! `pg_relation_size` (a TID range scan since PostgreSQL 14). Page ranges are exact only
//! inside the one snapshot they were cut in (an updated row moves to another page), so they
//! are planned only when every slice imports the planner's exported snapshot (`byob run`),
//! and carry its id. Views, partitioned tables and queries without a slice key, and tables
//! without a usable key read in separate snapshots, are one slice.

use tokio_postgres::types::Type;

use super::PostgresError;
use crate::increment::{Watermark, WatermarkKind, Window};
use crate::source::Bounds;

/// Slices never number more than this, whatever the estimate says.
pub(crate) const MAX_SLICES: u32 = 10_000;

/// The WHERE condition of `bounds`; `column` is the key's quoted name and `kind` its kind
/// (for key bounds). `None` for bounds PostgreSQL does not plan.
pub(crate) fn condition(bounds: &Bounds, key: Option<(&str, KeyKind)>) -> Option<String> {
    match bounds {
        Bounds::Whole => Some("TRUE".to_owned()),
        Bounds::Pages { from, to, .. } => {
            let tid = |page: u64| format!("'({page},0)'::tid");
            let mut parts = Vec::with_capacity(2);
            if let Some(from) = from {
                parts.push(format!("ctid >= {}", tid(*from)));
            }
            if let Some(to) = to {
                parts.push(format!("ctid < {}", tid(*to)));
            }
            Some(if parts.is_empty() { "TRUE".to_owned() } else { parts.join(" AND ") })
        }
        Bounds::Keys { from, to, nulls, infinity, .. } => {
            let (column, kind) = key?;
            let mut parts = Vec::with_capacity(2);
            if let Some(from) = from {
                parts.push(format!("{column} >= {}", kind.literal(*from)?));
            }
            if let Some(to) = to {
                parts.push(format!("{column} < {}", kind.literal(*to)?));
            }
            let mut condition = if parts.is_empty() { "TRUE".to_owned() } else { parts.join(" AND ") };
            if *infinity && kind != KeyKind::Int {
                condition = format!("({condition} OR {column} = 'infinity')");
            }
            if *nulls {
                condition = format!("({condition} OR {column} IS NULL)");
            }
            Some(condition)
        }
        Bounds::RowGroups { .. } | Bounds::Rows { .. } => None,
    }
}

/// The WHERE condition of a watermark window on `column` (quoted) of `kind`: an incremental
/// window `column > after AND column <= through`; a full one also the NULL rows (and, for
/// timestamps and dates, `'infinity'`, which no range ever reaches). `None` when a bound is not
/// of the column's kind or cannot be written as a literal.
pub(crate) fn window_condition(column: &str, kind: KeyKind, window: &Window) -> Option<String> {
    let literal = |bound: Watermark| -> Option<String> {
        match (kind, bound) {
            (KeyKind::Int, Watermark::Integer(v)) => kind.literal(v),
            // PostgreSQL keeps microseconds: `w > t` and `w <= t` read the same at t's microsecond.
            (KeyKind::Timestamp | KeyKind::TimestampTz, Watermark::Timestamp(nanos)) => {
                kind.literal(nanos.div_euclid(1000))
            }
            (KeyKind::Date, Watermark::Date(days)) => kind.literal(i64::from(days)),
            _ => None,
        }
    };
    let through = match window.through {
        Some(bound) => Some(literal(bound)?),
        None => None,
    };
    match window.after {
        Some(after) => {
            let after = literal(after)?;
            Some(match through {
                Some(through) => format!("({column} > {after} AND {column} <= {through})"),
                None => "FALSE".to_owned(),
            })
        }
        None => {
            let infinity = if kind == KeyKind::Int { String::new() } else { format!(" OR {column} = 'infinity'") };
            Some(match through {
                Some(through) => format!("({column} IS NULL OR {column} <= {through}{infinity})"),
                None => format!("({column} IS NULL{infinity})"),
            })
        }
    }
}

/// The bounds of `count` key slices of `column` over `[min, max]`, or `None` if a cut point
/// cannot be written as a literal of the key's type.
pub(crate) fn key_bounds(column: &str, kind: KeyKind, min: i64, max: i64, count: u32) -> Option<Vec<Bounds>> {
    let cuts = cuts(min, max, count);
    // The last slice ends after the largest key the plan saw.
    let end = max.max(min).checked_add(1);
    let bounds: Vec<Bounds> = (0..count as usize)
        .map(|i| {
            let last = i + 1 == count as usize;
            Bounds::Keys {
                column: column.to_owned(),
                from: if i == 0 { None } else { Some(cuts[i - 1]) },
                to: if last { end } else { Some(cuts[i]) },
                nulls: i == 0,
                infinity: last && kind != KeyKind::Int,
            }
        })
        .collect();
    // Every bound must render.
    let quoted = "k";
    bounds.iter().all(|b| condition(b, Some((quoted, kind))).is_some()).then_some(bounds)
}

/// The bounds of `count` page slices of `pages` heap pages, cut in `snapshot`.
pub(crate) fn page_bounds(pages: u64, count: u32, snapshot: &str) -> Vec<Bounds> {
    let cuts = page_cuts(pages, count);
    (0..count as usize)
        .map(|i| Bounds::Pages {
            from: if i == 0 { None } else { Some(cuts[i - 1]) },
            to: cuts.get(i).copied(),
            snapshot: snapshot.to_owned(),
        })
        .collect()
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

    /// The watermark kind of a key of this kind.
    pub(crate) fn watermark_kind(self) -> WatermarkKind {
        match self {
            KeyKind::Int => WatermarkKind::Integer,
            KeyKind::Timestamp | KeyKind::TimestampTz => WatermarkKind::Timestamp,
            KeyKind::Date => WatermarkKind::Date,
        }
    }

    /// A value in this kind's unit ([`KeyKind::min_max_sql`]) as a watermark; `None` for a
    /// timestamp outside the years 1677-2262.
    pub(crate) fn watermark(self, value: i64) -> Option<Watermark> {
        match self {
            KeyKind::Int => Some(Watermark::Integer(value)),
            KeyKind::Timestamp | KeyKind::TimestampTz => Watermark::from_micros(value),
            KeyKind::Date => i32::try_from(value).ok().map(Watermark::Date),
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
        let bounds = key_bounds("\"k\"", KeyKind::Int, 0, 29, 3).unwrap();
        let key = Some(("\"k\"", KeyKind::Int));
        let rendered: Vec<String> = bounds.iter().map(|b| condition(b, key).unwrap()).collect();
        assert_eq!(
            rendered,
            ["(\"k\" < 10 OR \"k\" IS NULL)", "\"k\" >= 10 AND \"k\" < 20", "\"k\" >= 20 AND \"k\" < 30"]
        );
        let days = key_bounds("\"d\"", KeyKind::Date, 0, 1, 2).unwrap();
        assert_eq!(
            condition(&days[1], Some(("\"d\"", KeyKind::Date))).unwrap(),
            "(\"d\" >= '1970-01-02'::date AND \"d\" < '1970-01-03'::date OR \"d\" = 'infinity')"
        );
        let pages = page_bounds(14, 2, "00000003-1");
        assert_eq!(condition(&pages[0], None).unwrap(), "ctid < '(7,0)'::tid");
        assert_eq!(condition(&pages[1], None).unwrap(), "ctid >= '(7,0)'::tid");
        assert_eq!(condition(&Bounds::Whole, None).unwrap(), "TRUE");
        assert_eq!(condition(&Bounds::Rows { from: 0, to: 1 }, None), None);
        assert_eq!(condition(&bounds[0], None), None, "key bounds need the key");
        assert_eq!(key_bounds("\"t\"", KeyKind::Timestamp, i64::MAX - 10, i64::MAX, 2), None);
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
