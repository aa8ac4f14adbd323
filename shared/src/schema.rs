//! The portable column type names written into `receipt.json`.
//!
//! A loader in any language must be able to create a table from the receipt alone, so types
//! are described in a small, documented vocabulary instead of Arrow's Rust spelling:
//!
//! | name | Arrow type | meaning |
//! |---|---|---|
//! | `boolean` | Boolean | |
//! | `int8` `int16` `int32` `int64` | Int8..Int64 | signed integers |
//! | `uint8` `uint16` `uint32` `uint64` | UInt8..UInt64 | unsigned integers |
//! | `float32` `float64` | Float32, Float64 | IEEE 754 |
//! | `decimal(p,s)` | Decimal128 (p <= 38), Decimal256 | exact numbers |
//! | `string` | Utf8, LargeUtf8, Utf8View | UTF-8 text (JSON documents are strings) |
//! | `binary` | Binary, LargeBinary, BinaryView | bytes |
//! | `date` | Date32 | calendar date |
//! | `time(ms)` `time(us)` `time(ns)` | Time32/Time64 | time of day, no zone |
//! | `timestamp(us)` | Timestamp without zone | wall-clock date and time |
//! | `timestamptz(us)` | Timestamp with a zone | an instant, stored as UTC |
//! | `interval` | Interval(MonthDayNano) | months, days and nanoseconds |
//! | `list<T>` | List/LargeList of T | one-dimensional arrays |
//!
//! Timestamp and time units are `s`, `ms`, `us` or `ns`.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, IntervalUnit, Schema, TimeUnit};
use serde::{Deserialize, Serialize};

/// One column as the receipt describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSchema {
    /// The column name, exactly as in the files.
    pub name: String,
    /// The portable type name (see the module documentation).
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether the column may hold nulls.
    pub nullable: bool,
}

/// Describes an Arrow schema in the portable vocabulary. Errors name the first column whose
/// type has no portable name.
pub fn describe(schema: &Schema) -> Result<Vec<ColumnSchema>, String> {
    schema
        .fields()
        .iter()
        .map(|f| {
            let data_type = type_name(f.data_type())
                .ok_or_else(|| format!("column {:?} has type {}, which byob cannot export", f.name(), f.data_type()))?;
            Ok(ColumnSchema { name: f.name().clone(), data_type, nullable: f.is_nullable() })
        })
        .collect()
}

/// The Arrow schema a loader reads the files with.
pub fn to_arrow(columns: &[ColumnSchema]) -> Result<Schema, String> {
    let fields = columns
        .iter()
        .map(|c| {
            let dt = parse_type_name(&c.data_type).map_err(|e| format!("column {:?}: {e}", c.name))?;
            Ok(Field::new(&c.name, dt, c.nullable))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Schema::new(fields))
}

fn unit_name(unit: &TimeUnit) -> &'static str {
    match unit {
        TimeUnit::Second => "s",
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "us",
        TimeUnit::Nanosecond => "ns",
    }
}

fn parse_unit(s: &str) -> Option<TimeUnit> {
    Some(match s {
        "s" => TimeUnit::Second,
        "ms" => TimeUnit::Millisecond,
        "us" => TimeUnit::Microsecond,
        "ns" => TimeUnit::Nanosecond,
        _ => return None,
    })
}

/// `schema` with the top-level column types `retype` maps replaced (names, nullability and
/// metadata kept); `schema` itself when it maps none.
pub fn retyped(
    schema: &arrow::datatypes::SchemaRef,
    retype: impl Fn(&DataType) -> Option<DataType>,
) -> arrow::datatypes::SchemaRef {
    if !schema.fields().iter().any(|f| retype(f.data_type()).is_some()) {
        return Arc::clone(schema);
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match retype(f.data_type()) {
            Some(data_type) => f.as_ref().clone().with_data_type(data_type),
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The portable name of an Arrow type, or `None` when it has none.
pub fn type_name(dt: &DataType) -> Option<String> {
    use DataType::*;
    Some(match dt {
        Boolean => "boolean".into(),
        Int8 => "int8".into(),
        Int16 => "int16".into(),
        Int32 => "int32".into(),
        Int64 => "int64".into(),
        UInt8 => "uint8".into(),
        UInt16 => "uint16".into(),
        UInt32 => "uint32".into(),
        UInt64 => "uint64".into(),
        Float32 => "float32".into(),
        Float64 => "float64".into(),
        Decimal128(p, s) | Decimal256(p, s) => format!("decimal({p},{s})"),
        Utf8 | LargeUtf8 | Utf8View => "string".into(),
        Binary | LargeBinary | BinaryView => "binary".into(),
        Date32 => "date".into(),
        Time32(u) | Time64(u) => format!("time({})", unit_name(u)),
        Timestamp(u, None) => format!("timestamp({})", unit_name(u)),
        Timestamp(u, Some(_)) => format!("timestamptz({})", unit_name(u)),
        Interval(IntervalUnit::MonthDayNano) => "interval".into(),
        List(f) | LargeList(f) => format!("list<{}>", type_name(f.data_type())?),
        _ => return None,
    })
}

/// Parses a portable type name back into the Arrow type byob writes for it.
pub fn parse_type_name(s: &str) -> Result<DataType, String> {
    use DataType::*;
    let bad = || format!("unknown type {s:?}");
    Ok(match s {
        "boolean" => Boolean,
        "int8" => Int8,
        "int16" => Int16,
        "int32" => Int32,
        "int64" => Int64,
        "uint8" => UInt8,
        "uint16" => UInt16,
        "uint32" => UInt32,
        "uint64" => UInt64,
        "float32" => Float32,
        "float64" => Float64,
        "string" => Utf8,
        "binary" => Binary,
        "date" => Date32,
        "interval" => Interval(IntervalUnit::MonthDayNano),
        _ => {
            if let Some(inner) = s.strip_prefix("list<").and_then(|r| r.strip_suffix('>')) {
                let item = parse_type_name(inner)?;
                List(Arc::new(Field::new_list_field(item, true)))
            } else if let Some(args) = s.strip_prefix("decimal(").and_then(|r| r.strip_suffix(')')) {
                let (p, sc) = args.split_once(',').ok_or_else(bad)?;
                let p: u8 = p.trim().parse().map_err(|_| bad())?;
                let sc: i8 = sc.trim().parse().map_err(|_| bad())?;
                if p == 0 || p > 76 {
                    return Err(bad());
                }
                if p <= 38 { Decimal128(p, sc) } else { Decimal256(p, sc) }
            } else if let Some(u) = s.strip_prefix("timestamptz(").and_then(|r| r.strip_suffix(')')) {
                Timestamp(parse_unit(u).ok_or_else(bad)?, Some("UTC".into()))
            } else if let Some(u) = s.strip_prefix("timestamp(").and_then(|r| r.strip_suffix(')')) {
                Timestamp(parse_unit(u).ok_or_else(bad)?, None)
            } else if let Some(u) = s.strip_prefix("time(").and_then(|r| r.strip_suffix(')')) {
                match parse_unit(u).ok_or_else(bad)? {
                    u @ (TimeUnit::Second | TimeUnit::Millisecond) => Time32(u),
                    u => Time64(u),
                }
            } else {
                return Err(bad());
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        let names = [
            "boolean",
            "int8",
            "int16",
            "int32",
            "int64",
            "uint8",
            "uint16",
            "uint32",
            "uint64",
            "float32",
            "float64",
            "decimal(18,2)",
            "decimal(38,0)",
            "decimal(50,10)",
            "string",
            "binary",
            "date",
            "time(ms)",
            "time(us)",
            "time(ns)",
            "time(s)",
            "timestamp(us)",
            "timestamp(ns)",
            "timestamptz(us)",
            "timestamptz(ms)",
            "interval",
            "list<int64>",
            "list<list<string>>",
        ];
        for name in names {
            let dt = parse_type_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(type_name(&dt).as_deref(), Some(name), "{name} -> {dt}");
        }
    }

    #[test]
    fn zone_is_recorded_as_utc_instant() {
        let dt = DataType::Timestamp(TimeUnit::Microsecond, Some("America/New_York".into()));
        assert_eq!(type_name(&dt).as_deref(), Some("timestamptz(us)"));
        assert_eq!(
            parse_type_name("timestamptz(us)").ok(),
            Some(DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))
        );
    }

    #[test]
    fn bad_names_are_rejected_with_the_name() {
        for bad in ["", "int", "decimal(0,1)", "decimal(18)", "timestamp(h)", "list<nope>", "String"] {
            let err = parse_type_name(bad).expect_err(bad);
            assert!(err.contains("unknown type"), "{bad}: {err}");
        }
    }

    #[test]
    fn describe_names_the_unsupported_column() {
        let schema =
            Schema::new(vec![Field::new("ok", DataType::Int64, false), Field::new("weird", DataType::Null, true)]);
        let err = describe(&schema).expect_err("Null has no portable name");
        assert!(err.contains("\"weird\""), "{err}");
    }

    #[test]
    fn describe_then_to_arrow_keeps_names_and_nullability() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("amount", DataType::Decimal128(18, 2), true),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        ]);
        let cols = describe(&schema).expect("describable");
        assert_eq!(to_arrow(&cols).expect("parsable"), schema);
    }
}
