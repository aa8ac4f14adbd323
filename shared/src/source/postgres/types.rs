//! PostgreSQL column types -> Arrow types: the one table every exported column goes through.
//!
//! | PostgreSQL | Arrow | notes |
//! |---|---|---|
//! | `boolean` | Boolean | |
//! | `smallint` `integer` `bigint` | Int16 Int32 Int64 | |
//! | `real` `double precision` | Float32 Float64 | NaN and ±Infinity kept |
//! | `numeric(p,s)`, 1 <= p <= 38, 0 <= s <= p | Decimal128(p,s) | exact; `NaN` is an error naming the column |
//! | `numeric` (no typmod, p > 38, s < 0 or s > p) | Utf8 | PostgreSQL's own text form (`-12.3400`, `NaN`, `Infinity`) |
//! | `text` `varchar` `char(n)` `name` | Utf8 | `char(n)` keeps its padding, as PostgreSQL sends it |
//! | `uuid` | Utf8 | lowercase, hyphenated |
//! | `json` `jsonb` | Utf8 | the document's text (`jsonb` normalized by PostgreSQL) |
//! | enum types | Utf8 | the label |
//! | `bytea` | Binary | |
//! | `date` | Date32 | `infinity` / `-infinity` -> the largest / smallest Date32 |
//! | `time` | Time64(us) | |
//! | `timestamp` | Timestamp(us) | `infinity` / `-infinity` -> i64::MAX / i64::MIN µs |
//! | `timestamptz` | Timestamp(us, "UTC") | the instant; same infinities |
//! | `interval` | Utf8 | ISO 8601 duration exactly as PostgreSQL prints it with `intervalstyle = iso_8601` (`P1Y2M3DT4H5M6.5S`, `PT0S`): exact, every reader parses it, and Parquet cannot store Arrow's month-day-nano intervals |
//! | domains | as their base type | |
//! | one-dimensional arrays of the above | List | NULL elements kept; lower bounds dropped; a multi-dimensional value is an error naming the column |
//!
//! Anything else (geometric types, ranges, `money`, `inet`, `xml`, composite types, ...) is
//! rejected when the slice is opened, before any file is written, naming table, column and
//! type; cast it in a per-table `query` (e.g. `SELECT id, ip::text AS ip FROM t`).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};
use tokio_postgres::types::{Kind as PgKind, Type};

/// How one scalar value is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scalar {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// UTF-8 text as sent (text, varchar, char, name, json, enum labels).
    Text,
    /// `jsonb`: a version byte, then the text.
    Jsonb,
    Uuid,
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Interval,
    /// `numeric(p,s)` that fits Decimal128.
    Decimal {
        precision: u8,
        scale: i8,
    },
    /// Any other `numeric`, as its text.
    NumericText,
}

impl Scalar {
    /// The Arrow type values of this scalar are stored as.
    pub(crate) fn data_type(self) -> DataType {
        match self {
            Scalar::Bool => DataType::Boolean,
            Scalar::Int2 => DataType::Int16,
            Scalar::Int4 => DataType::Int32,
            Scalar::Int8 => DataType::Int64,
            Scalar::Float4 => DataType::Float32,
            Scalar::Float8 => DataType::Float64,
            Scalar::Text | Scalar::Jsonb | Scalar::Uuid | Scalar::Interval | Scalar::NumericText => DataType::Utf8,
            Scalar::Bytea => DataType::Binary,
            Scalar::Date => DataType::Date32,
            Scalar::Time => DataType::Time64(TimeUnit::Microsecond),
            Scalar::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Scalar::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Scalar::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
        }
    }
}

/// How one column is decoded: a scalar, or a one-dimensional array of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColumnKind {
    Scalar(Scalar),
    List(Scalar),
}

impl ColumnKind {
    /// The Arrow type of the column.
    pub(crate) fn data_type(self) -> DataType {
        match self {
            ColumnKind::Scalar(s) => s.data_type(),
            ColumnKind::List(s) => DataType::List(Arc::new(Field::new_list_field(s.data_type(), true))),
        }
    }
}

/// A column of a slice as PostgreSQL describes it: how the source decodes it. (The loader's
/// [`crate::load::postgres::PgColumn`] is the other direction: a portable type as a target column.)
#[derive(Clone, Debug)]
pub(crate) struct SourceColumn {
    /// The column name, exactly as PostgreSQL reports it.
    pub name: String,
    /// How it is decoded.
    pub kind: ColumnKind,
    /// PostgreSQL's name of its type, for messages (`numeric(18,2)`, `text[]`).
    pub type_name: String,
    /// Whether it may hold NULL (false only for a table column declared NOT NULL).
    pub nullable: bool,
}

/// `numeric(p,s)`'s precision and scale from a type modifier, or `None` when unconstrained.
/// PostgreSQL 15 stores the scale as an 11-bit signed number, so it may be negative.
pub(crate) fn numeric_typmod(typmod: i32) -> Option<(i32, i32)> {
    if typmod < 4 {
        return None;
    }
    let t = typmod - 4;
    let precision = (t >> 16) & 0xffff;
    let scale = ((t & 0x7ff) ^ 1024) - 1024;
    Some((precision, scale))
}

/// PostgreSQL's display name of a type with its modifier, for messages.
pub(crate) fn display_type(ty: &Type, typmod: i32) -> String {
    match ty.kind() {
        PgKind::Array(element) => format!("{}[]", display_type(element, typmod)),
        _ if *ty == Type::NUMERIC => match numeric_typmod(typmod) {
            Some((p, s)) => format!("numeric({p},{s})"),
            None => "numeric".to_owned(),
        },
        _ if ty.schema() == "pg_catalog" || ty.schema() == "public" => ty.name().to_owned(),
        _ => format!("{}.{}", ty.schema(), ty.name()),
    }
}

/// Maps a column type (with its type modifier) to how it is decoded, or `None` when byob
/// cannot export it.
pub(crate) fn column_kind(ty: &Type, typmod: i32) -> Option<ColumnKind> {
    match ty.kind() {
        PgKind::Array(element) => scalar(element, typmod).map(ColumnKind::List),
        _ => scalar(ty, typmod).map(ColumnKind::Scalar),
    }
}

fn scalar(ty: &Type, typmod: i32) -> Option<Scalar> {
    match ty.kind() {
        PgKind::Enum(_) => return Some(Scalar::Text),
        PgKind::Domain(base) => return scalar(base, typmod),
        PgKind::Simple => {}
        _ => return None,
    }
    Some(match *ty {
        Type::BOOL => Scalar::Bool,
        Type::INT2 => Scalar::Int2,
        Type::INT4 => Scalar::Int4,
        Type::INT8 => Scalar::Int8,
        Type::FLOAT4 => Scalar::Float4,
        Type::FLOAT8 => Scalar::Float8,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON => Scalar::Text,
        Type::JSONB => Scalar::Jsonb,
        Type::UUID => Scalar::Uuid,
        Type::BYTEA => Scalar::Bytea,
        Type::DATE => Scalar::Date,
        Type::TIME => Scalar::Time,
        Type::TIMESTAMP => Scalar::Timestamp,
        Type::TIMESTAMPTZ => Scalar::TimestampTz,
        Type::INTERVAL => Scalar::Interval,
        Type::NUMERIC => match numeric_typmod(typmod) {
            Some((p, s)) if (1..=38).contains(&p) && (0..=p).contains(&s) => {
                // Both fit: p <= 38 and 0 <= s <= p.
                Scalar::Decimal { precision: p as u8, scale: s as i8 }
            }
            _ => Scalar::NumericText,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_type_modifiers() {
        // numeric(18,2): ((18 << 16) | 2) + 4
        assert_eq!(numeric_typmod((18 << 16 | 2) + 4), Some((18, 2)));
        assert_eq!(numeric_typmod(-1), None);
        // numeric(3,-2) in PostgreSQL 15: the scale is 11-bit two's complement.
        assert_eq!(numeric_typmod(((3 << 16) | (-2i32 & 0x7ff)) + 4), Some((3, -2)));
        assert_eq!(
            column_kind(&Type::NUMERIC, (18 << 16 | 2) + 4),
            Some(ColumnKind::Scalar(Scalar::Decimal { precision: 18, scale: 2 }))
        );
        assert_eq!(column_kind(&Type::NUMERIC, -1), Some(ColumnKind::Scalar(Scalar::NumericText)));
        assert_eq!(column_kind(&Type::NUMERIC, (40 << 16 | 2) + 4), Some(ColumnKind::Scalar(Scalar::NumericText)));
        assert_eq!(
            column_kind(&Type::NUMERIC, ((3 << 16) | (-2i32 & 0x7ff)) + 4),
            Some(ColumnKind::Scalar(Scalar::NumericText))
        );
        assert_eq!(display_type(&Type::NUMERIC_ARRAY, (10 << 16 | 3) + 4), "numeric(10,3)[]");
    }

    #[test]
    fn arrays_and_unsupported_types() {
        assert_eq!(column_kind(&Type::INT4_ARRAY, -1), Some(ColumnKind::List(Scalar::Int4)));
        assert_eq!(
            ColumnKind::List(Scalar::Text).data_type(),
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
        );
        for ty in [Type::POINT, Type::INET, Type::MONEY, Type::XML, Type::INT4_RANGE, Type::POINT_ARRAY, Type::TIMETZ] {
            assert_eq!(column_kind(&ty, -1), None, "{ty}");
        }
        assert_eq!(display_type(&Type::POINT_ARRAY, -1), "point[]");
    }
}
