//! Date partitions of a table's rows (`partition_by`): each row's partition is the UTC day or
//! month of a date or timestamp column, and a batch splits into one batch per partition, in
//! the order each partition first appears, rows keeping their order.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Date32Type, Date64Type, Int64Type, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, NaiveDate};

use crate::config::{Grain, PartitionBy};
use crate::format::FormatError;
use crate::layout::UNPARTITIONED;

/// The partition of rows whose column is NULL: Hive's name, which Spark, Trino and Athena read
/// back as NULL.
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// How a table's rows map to partitions.
#[derive(Clone, Debug)]
pub(crate) enum Partitioner {
    /// Every row in [`UNPARTITIONED`]: the destination partitions, the table lacks the column.
    All,
    /// By the day or month of column `index`.
    ByDate { index: usize, grain: Grain, micros_per_unit: Option<i64> },
}

impl Partitioner {
    /// The partitioner of `schema` for `by`; a column of another type is an error naming it.
    pub(crate) fn new(by: &PartitionBy, schema: &SchemaRef) -> Result<Partitioner, FormatError> {
        let Some((index, field)) = schema.column_with_name(&by.column) else {
            return Ok(Partitioner::All);
        };
        let micros_per_unit = match field.data_type() {
            DataType::Date32 | DataType::Date64 => None,
            DataType::Timestamp(unit, _) => Some(match unit {
                TimeUnit::Second => 1_000_000,
                TimeUnit::Millisecond => 1_000,
                TimeUnit::Microsecond => 1,
                TimeUnit::Nanosecond => -1_000, // divide: 1,000 nanoseconds a microsecond
            }),
            other => {
                return Err(FormatError::Invalid(format!(
                    "partition_by column {:?} has type {other}; partitions need a date or timestamp column",
                    by.column
                )));
            }
        };
        Ok(Partitioner::ByDate { index, grain: by.grain, micros_per_unit })
    }

    /// `batch` split by partition: `(value, rows)` in the order each value first appears.
    pub(crate) fn split(&self, batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>, FormatError> {
        let Partitioner::ByDate { index, grain, micros_per_unit } = self else {
            return Ok(vec![(UNPARTITIONED.to_owned(), batch.clone())]);
        };
        let column = batch.column(*index);
        // The UTC day (days since 1970-01-01) of every row; timestamps of any unit are read as
        // their i64 values (a cast that reinterprets).
        let days: Vec<Option<i64>> = match (column.data_type(), micros_per_unit) {
            (DataType::Date32, _) => column.as_primitive::<Date32Type>().iter().map(|d| d.map(i64::from)).collect(),
            (DataType::Date64, _) => {
                column.as_primitive::<Date64Type>().iter().map(|d| d.map(|ms| ms.div_euclid(86_400_000))).collect()
            }
            (_, Some(per)) => {
                let ticks = arrow::compute::cast(column, &DataType::Int64)?;
                let per = *per;
                ticks
                    .as_primitive::<Int64Type>()
                    .iter()
                    .map(|v| {
                        v.map(|v| {
                            let micros = if per < 0 { v.div_euclid(-per) } else { v.saturating_mul(per) };
                            micros.div_euclid(86_400_000_000)
                        })
                    })
                    .collect()
            }
            (other, None) => {
                return Err(FormatError::Invalid(format!("partition column has type {other}, not a date")));
            }
        };
        let mut order: Vec<Option<i64>> = Vec::new();
        let mut rows: HashMap<Option<i64>, Vec<u32>> = HashMap::new();
        for (i, day) in days.into_iter().enumerate() {
            let key = day.map(|d| match grain {
                Grain::Day => d,
                Grain::Month => month_of(d),
            });
            let list = rows.entry(key).or_insert_with(|| {
                order.push(key);
                Vec::new()
            });
            list.push(u32::try_from(i).map_err(|_| FormatError::Invalid("a batch of over 4 G rows".into()))?);
        }
        if order.len() == 1 {
            return Ok(vec![(name(order[0], *grain), batch.clone())]);
        }
        order
            .into_iter()
            .map(|key| {
                let indices = UInt32Array::from(rows.remove(&key).unwrap_or_default());
                Ok((name(key, *grain), take_record_batch(batch, &indices)?))
            })
            .collect()
    }
}

/// Days since 1970-01-01 -> the first day of its month, as a key.
fn month_of(days: i64) -> i64 {
    date(days).map_or(days, |d| i64::from(d.year()) * 12 + i64::from(d.month0()))
}

fn date(days: i64) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::try_days(days)?)
}

fn name(key: Option<i64>, grain: Grain) -> String {
    match (key, grain) {
        (None, _) => NULL_PARTITION.to_owned(),
        (Some(days), Grain::Day) => {
            date(days).map_or_else(|| format!("day{days}"), |d| d.format("%Y-%m-%d").to_string())
        }
        (Some(month), Grain::Month) => format!("{:04}-{:02}", month.div_euclid(12), month.rem_euclid(12) + 1),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("at", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), true),
        ]));
        // 2024-01-31T23:59:59.999Z, 2024-02-01T00:00Z, NULL, 2024-01-31T00:00Z, 1969-12-31T12:00Z
        let at = TimestampMillisecondArray::from(vec![
            Some(1_706_745_599_999),
            Some(1_706_745_600_000),
            None,
            Some(1_706_659_200_000),
            Some(-43_200_000),
        ])
        .with_timezone("UTC");
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])), Arc::new(at)])
            .expect("batch")
    }

    fn split(grain: Grain) -> Vec<(String, Vec<i64>)> {
        let b = batch();
        let p = Partitioner::new(&PartitionBy { column: "at".into(), grain }, &b.schema()).expect("partitioner");
        p.split(&b)
            .expect("split")
            .into_iter()
            .map(|(name, rows)| {
                let ids = rows.column(0).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec();
                (name, ids)
            })
            .collect()
    }

    #[test]
    fn rows_go_to_their_utc_day_or_month_in_first_seen_order() {
        let s = |v: &str| v.to_owned();
        assert_eq!(
            split(Grain::Day),
            vec![
                (s("2024-01-31"), vec![1, 4]),
                (s("2024-02-01"), vec![2]),
                (s(NULL_PARTITION), vec![3]),
                (s("1969-12-31"), vec![5])
            ]
        );
        assert_eq!(
            split(Grain::Month),
            vec![
                (s("2024-01"), vec![1, 4]),
                (s("2024-02"), vec![2]),
                (s(NULL_PARTITION), vec![3]),
                (s("1969-12"), vec![5])
            ]
        );
    }

    #[test]
    fn a_missing_column_is_one_partition_and_a_wrong_type_is_an_error() {
        let b = batch();
        let missing = Partitioner::new(&PartitionBy { column: "nope".into(), grain: Grain::Day }, &b.schema());
        let parts = missing.expect("all").split(&b).expect("split");
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].0, UNPARTITIONED);
        let wrong = Partitioner::new(&PartitionBy { column: "id".into(), grain: Grain::Day }, &b.schema());
        assert!(
            matches!(wrong, Err(FormatError::Invalid(m)) if m.contains("\"id\"") && m.contains("date or timestamp"))
        );
    }
}
