//! Arrow columns as watermarks: which Arrow types can be one, their values in watermark units,
//! and the rows of a batch a [`Window`] holds. Used by the lake source (row filters, row-group
//! statistics, the high-water of a tenant).

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array};
use arrow::compute::kernels::cast::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::error::ArrowError;

use super::{Watermark, WatermarkKind, Window};

/// The watermark kind of an Arrow type, or `None` when it cannot be one (strings, floats,
/// `UInt64` whose values may not fit an int8, `Date64`).
pub fn kind_of(data_type: &DataType) -> Option<WatermarkKind> {
    use DataType::*;
    match data_type {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 => Some(WatermarkKind::Integer),
        Timestamp(_, _) => Some(WatermarkKind::Timestamp),
        Date32 => Some(WatermarkKind::Date),
        _ => None,
    }
}

/// A value in `kind`'s unit (integer, nanoseconds, days) as a watermark.
pub fn watermark(kind: WatermarkKind, value: i64) -> Watermark {
    match kind {
        WatermarkKind::Integer => Watermark::Integer(value),
        WatermarkKind::Timestamp => Watermark::Timestamp(value),
        // Date32 values are i32: the cast from them never leaves that range.
        WatermarkKind::Date => Watermark::Date(i32::try_from(value).unwrap_or(i32::MAX)),
    }
}

/// The values of `array` (a column of a type [`kind_of`] accepts) in watermark units, NULLs
/// kept. A timestamp outside 1677-2262 (nanoseconds overflow) is an error, never a wrapped value.
pub fn values(array: &ArrayRef) -> Result<Int64Array, ArrowError> {
    let strict = CastOptions { safe: false, ..CastOptions::default() };
    let as_int = match array.data_type() {
        DataType::Timestamp(unit, tz) => {
            // Same time zone, nanosecond unit: the stored instant, scaled (never shifted).
            let nanos = match unit {
                TimeUnit::Nanosecond => array.clone(),
                _ => cast_with_options(array, &DataType::Timestamp(TimeUnit::Nanosecond, tz.clone()), &strict)?,
            };
            cast_with_options(&nanos, &DataType::Int64, &strict)?
        }
        DataType::Date32 => {
            cast_with_options(&cast_with_options(array, &DataType::Int32, &strict)?, &DataType::Int64, &strict)?
        }
        other if kind_of(other).is_some() => cast_with_options(array, &DataType::Int64, &strict)?,
        other => return Err(ArrowError::CastError(format!("a {other} column cannot be a watermark"))),
    };
    as_int
        .as_any()
        .downcast_ref::<Int64Array>()
        .cloned()
        .ok_or_else(|| ArrowError::CastError("the watermark did not cast to int64".into()))
}

/// Which rows of `array` the window holds (never NULL: a row is in or out).
pub fn mask(array: &ArrayRef, kind: WatermarkKind, window: &Window) -> Result<BooleanArray, ArrowError> {
    let values = values(array)?;
    Ok(values.iter().map(|v| Some(window.holds(v.map(|v| watermark(kind, v))))).collect())
}

/// The largest value of `array`, NULLs ignored.
pub fn max(array: &ArrayRef, kind: WatermarkKind) -> Result<Option<Watermark>, ArrowError> {
    Ok(arrow::compute::max(&values(array)?).map(|v| watermark(kind, v)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Date32Array, Int32Array, StringArray, TimestampMicrosecondArray, TimestampNanosecondArray};

    use super::*;

    #[test]
    fn columns_become_watermarks_in_their_units() {
        let micros: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![Some(1_000_001), None]).with_timezone("+02:00"));
        assert_eq!(kind_of(micros.data_type()), Some(WatermarkKind::Timestamp));
        assert_eq!(values(&micros).unwrap().iter().collect::<Vec<_>>(), vec![Some(1_000_001_000), None]);
        assert_eq!(max(&micros, WatermarkKind::Timestamp).unwrap(), Some(Watermark::Timestamp(1_000_001_000)));
        let dates: ArrayRef = Arc::new(Date32Array::from(vec![19_724, -3]));
        assert_eq!(values(&dates).unwrap().values().to_vec(), vec![19_724, -3]);
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![5, 7]));
        assert_eq!(max(&ints, WatermarkKind::Integer).unwrap(), Some(Watermark::Integer(7)));
        let text: ArrayRef = Arc::new(StringArray::from(vec!["a"]));
        assert_eq!(kind_of(text.data_type()), None);
        assert!(values(&text).is_err());
        let far: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![i64::MAX / 2]));
        assert!(values(&far).is_err(), "a timestamp past 2262 must not wrap");
        let nanos: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![3]));
        assert_eq!(values(&nanos).unwrap().value(0), 3);
    }

    #[test]
    fn masks_hold_exactly_the_window() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), Some(2), None, Some(3)]));
        let window =
            Window { column: "w".into(), after: Some(Watermark::Integer(1)), through: Some(Watermark::Integer(2)) };
        let got = mask(&ints, WatermarkKind::Integer, &window).unwrap();
        assert_eq!(got.iter().collect::<Vec<_>>(), vec![Some(false), Some(true), Some(false), Some(false)]);
        let full = Window { after: None, ..window };
        let got = mask(&ints, WatermarkKind::Integer, &full).unwrap();
        assert_eq!(got.iter().collect::<Vec<_>>(), vec![Some(true), Some(true), Some(true), Some(false)]);
    }
}
