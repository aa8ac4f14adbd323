#!/usr/bin/env python3
"""Checks a finished local dump with readers that share no code with byob.

Usage: check_dump.py <demo-dir>   (the folder `byob demo --dir` wrote; reads its byob.toml)

For every destination: the root receipt equals the run's immutable copy; every file listed
exists with the listed size and sha256; nothing else lies in the run folder; keys follow the
layout; pyarrow (and DuckDB, for Parquet) open every file and count exactly the listed rows;
the schema names match; every row belongs to the destination's tenant.
"""
import csv
import gzip
import hashlib
import io
import json
import os
import re
import sys
import tomllib

import duckdb
import pyarrow.parquet as pq

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, file=sys.stderr)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rows_of(path, fmt):
    """(row count, column names, tenant values) read independently of byob."""
    kind, codec = fmt["type"], fmt.get("codec", "gzip")
    if kind == "parquet":
        table = pq.read_table(path)
        n = duckdb.sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()[0][0]
        check(n == table.num_rows, f"{path}: DuckDB counts {n}, pyarrow {table.num_rows}")
        return table.num_rows, table.column_names, set(table.column("tenant_id").to_pylist())
    raw = open(path, "rb").read()
    text = (gzip.decompress(raw) if codec == "gzip" else raw).decode("utf-8")
    if kind == "csv":
        delim = {",": ",", ";": ";", "\t": "\t"}[fmt.get("delimiter", ",")]
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
        header = next(reader)
        body = list(reader)
        col = header.index("tenant_id")
        return len(body), header, {r[col] for r in body}
    lines = [json.loads(l) for l in text.splitlines() if l]
    names = list(lines[0].keys()) if lines else []
    return len(lines), names, {l["tenant_id"] for l in lines}


def main(demo_dir):
    config = tomllib.load(open(os.path.join(demo_dir, "byob.toml"), "rb"))
    checked_files = 0
    for dest in config["destinations"]:
        root = os.path.join(demo_dir, dest["folder"], dest.get("prefix", ""))
        receipt_path = os.path.join(root, "receipt.json")
        check(os.path.exists(receipt_path), f"{dest['id']}: no receipt.json at {receipt_path}")
        if not os.path.exists(receipt_path):
            continue
        receipt = json.load(open(receipt_path))
        run = receipt["run"]
        check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d", run) is not None, f"run id {run!r}")
        copy = json.load(open(os.path.join(root, run, "receipt.run.json")))
        check(copy == receipt, f"{dest['id']}: run copy differs from the root receipt")
        check(receipt["version"] == 1, "receipt version")
        fmt = receipt["format"]
        listed = set()
        for table, t in receipt["tables"].items():
            check(t["folder"] == f"{run}/{table}", f"{table}: folder {t['folder']!r}")
            check(t["total_file_count"] == len(t["files"]) >= 1, f"{table}: file count")
            check(t["row_count"] == sum(f["rows"] for f in t["files"]), f"{table}: row_count")
            check(t["byte_count"] == sum(f["bytes"] for f in t["files"]), f"{table}: byte_count")
            for f in t["files"]:
                key = f["key"]
                listed.add(key)
                check(re.fullmatch(rf"{re.escape(run)}/{table}/{table}_\d{{12}}\.{re.escape(ext(fmt))}", key) is not None,
                      f"key {key!r} does not follow the layout")
                path = os.path.join(root, key)
                check(os.path.getsize(path) == f["bytes"], f"{key}: size")
                check(sha256(path) == f["sha256"], f"{key}: sha256")
                n, names, tenants = rows_of(path, fmt)
                check(n == f["rows"], f"{key}: {n} rows read, {f['rows']} listed")
                check(names == [c["name"] for c in t["schema"]], f"{key}: columns {names}")
                check(tenants <= {dest["tenant"]}, f"{key}: rows of other tenants {tenants - {dest['tenant']}}")
                checked_files += 1
        on_disk = set()
        for dirpath, _, names in os.walk(os.path.join(root, run)):
            for name in names:
                on_disk.add(os.path.relpath(os.path.join(dirpath, name), root))
        extra = on_disk - listed - {f"{run}/receipt.run.json"}
        check(not extra, f"{dest['id']}: files not in the receipt: {sorted(extra)[:5]}")
        print(f"{dest['id']}: {len(receipt['tables'])} tables, {sum(t['row_count'] for t in receipt['tables'].values())} rows OK")
    check(checked_files > 0, "no files were checked")
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")
    print(f"checked {checked_files} files with pyarrow and DuckDB: all match their receipts")


def ext(fmt):
    kind, codec = fmt["type"], fmt.get("codec", "gzip")
    if kind == "parquet":
        return {"gzip": "parquet.gz", "zstd": "zstd.parquet", "snappy": "snappy.parquet", "none": "parquet"}[codec]
    return kind + (".gz" if codec == "gzip" else "")


if __name__ == "__main__":
    main(sys.argv[1])
