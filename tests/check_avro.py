#!/usr/bin/env python3
"""Checks byob's Avro files with fastavro, an independent implementation.

Usage: check_avro.py DIR

DIR/expected.json (written by the Rust test) lists the files, their codecs and the rows they
must hold, as JSON: timestamps and times as integer microseconds, dates as days, decimals (and
UInt64) as strings, bytes as hex, non-finite floats as "NaN"/"inf"/"-inf". Each file is read
with fastavro and compared row by row; then the rows fastavro read are written back with
fastavro (same schema and codec, several blocks) to DIR/fastavro-<codec>.avro, for the Rust
test to read with byob's reader.

Needs fastavro, plus cramjam (snappy) and backports.zstd (zstandard) on Python < 3.14.
Exits 1 on the first file that does not match, printing up to 10 differences.
"""

import datetime
import decimal
import json
import math
import os
import sys

import fastavro

EPOCH = datetime.datetime(1970, 1, 1)
EPOCH_UTC = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
DAY0 = datetime.date(1970, 1, 1)
MICRO = datetime.timedelta(microseconds=1)


def same(expected, got):
    """Whether fastavro's value `got` is the value `expected` of expected.json."""
    if got is None or expected is None:
        return got is None and expected is None
    if isinstance(got, bool):
        return isinstance(expected, bool) and got == expected
    if isinstance(got, float):
        want = float(expected)
        if math.isnan(want) or math.isnan(got):
            return math.isnan(want) and math.isnan(got)
        return want == got and math.copysign(1, want) == math.copysign(1, got)
    if isinstance(got, decimal.Decimal):
        want = decimal.Decimal(expected)
        return want == got and want.as_tuple().exponent == got.as_tuple().exponent
    if isinstance(got, datetime.datetime):
        micros = (got - (EPOCH_UTC if got.tzinfo else EPOCH)) // MICRO
        return micros == expected
    if isinstance(got, datetime.date):
        return (got - DAY0).days == expected
    if isinstance(got, datetime.time):
        micros = ((got.hour * 60 + got.minute) * 60 + got.second) * 1_000_000 + got.microsecond
        return micros == expected
    if isinstance(got, bytes):
        return got.hex() == expected
    if isinstance(got, list):
        return isinstance(expected, list) and len(got) == len(expected) and all(map(same, expected, got))
    return type(got) is type(expected) and got == expected


def check(directory, entry, columns, rows):
    path = os.path.join(directory, entry["path"])
    with open(path, "rb") as f:
        reader = fastavro.reader(f)
        codec = reader.metadata.get("avro.codec", "null")
        schema = reader.writer_schema
        records = list(reader)
    problems = []
    if codec != entry["codec"]:
        problems.append(f"codec {codec!r}, expected {entry['codec']!r}")
    names = [field["name"] for field in schema["fields"]]
    if names != columns:
        problems.append(f"fields {names}, expected {columns}")
    want = rows[: entry["rows"]]
    if len(records) != len(want):
        problems.append(f"{len(records)} rows, expected {len(want)}")
    for i, (record, expected) in enumerate(zip(records, want)):
        for name, value in zip(columns, expected):
            if not same(value, record.get(name)):
                problems.append(f"row {i} column {name}: fastavro read {record.get(name)!r}, expected {value!r}")
    if problems:
        print(f"FAIL {entry['path']}:", file=sys.stderr)
        for problem in problems[:10]:
            print(f"  {problem}", file=sys.stderr)
        sys.exit(1)
    print(f"ok {entry['path']}: codec {codec}, {len(records)} rows match")
    if records:
        out = os.path.join(directory, f"fastavro-{codec}.avro")
        with open(out, "wb") as f:
            fastavro.writer(f, schema, records, codec=codec, sync_interval=2000)
        print(f"wrote {os.path.basename(out)} with fastavro")


def main():
    directory = sys.argv[1]
    with open(os.path.join(directory, "expected.json")) as f:
        expected = json.load(f)
    print(f"fastavro {fastavro.__version__}, Python {sys.version.split()[0]}")
    for entry in expected["files"]:
        check(directory, entry, expected["columns"], expected["rows"])
    print(f"check_avro: {len(expected['files'])} files read by fastavro match")


if __name__ == "__main__":
    main()
