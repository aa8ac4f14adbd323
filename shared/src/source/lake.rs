//! TODO(helper): Parquet lake source.
