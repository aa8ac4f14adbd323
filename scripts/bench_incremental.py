"""Benchmark driver of scripts/bench-incremental (not a test): an incremental dump of a table
where 1 % of the rows changed, against the full dump of the same table, from a Parquet lake
and from PostgreSQL. Prints one Markdown table: wall seconds, rows exported, bytes the source
read (the lake: byob's own count of ranged reads; PostgreSQL: heap and index blocks touched,
from pg_statio, times 8 KiB), peak RSS.

The table (`events`, one tenant): event_id, tenant_id, updated_at (the watermark; the lake's
files are written in its order, as an ingestion-ordered lake is), user_id, kind, url, amount.
The change: 1 % of the rows (every 100th event_id) get a new updated_at and amount; the lake
receives them as a new file (a new version of each row, as an append-only lake does), PostgreSQL
as an UPDATE.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

START_US = 1_709_251_200_000_000  # 2024-03-01T00:00:00Z
FILE_ROWS = 500_000
ROW_GROUP_ROWS = 125_000


def table(first, count, stamp_from, step_us):
    ids = pa.array(range(first, first + count), pa.int64())
    kinds = ["page_view", "click", "signup", "purchase", "search", "share", "logout", "login"]
    return pa.table(
        {
            "event_id": ids,
            "tenant_id": pa.array(["acme"] * count),
            "updated_at": pa.array([stamp_from + i * step_us for i in range(count)], pa.timestamp("us", tz="UTC")),
            "user_id": pa.array([(first + i) * 7919 % 1_000_003 for i in range(count)], pa.int64()),
            "kind": pa.array([kinds[(first + i) % 8] for i in range(count)]),
            "url": pa.array([f"https://app.example.com/p/{(first + i) * 2654435761 % 10**9}/view?ref={i % 97}" for i in range(count)]),
            "amount": pa.array([((first + i) % 10_000) / 100 for i in range(count)], pa.float64()),
        }
    )


def write_lake(root, rows):
    folder = os.path.join(root, "lake", "events")
    os.makedirs(folder, exist_ok=True)
    for n, first in enumerate(range(0, rows, FILE_ROWS)):
        count = min(FILE_ROWS, rows - first)
        t = table(first, count, START_US + first * 1_000_000, 1_000_000)
        pq.write_table(t, os.path.join(folder, f"part-{n:04}.parquet"), row_group_size=ROW_GROUP_ROWS, compression="zstd")
    return folder


def changed_ids(rows, percent):
    every = max(1, round(100 / percent))
    return list(range(0, rows, every))


def append_changes(folder, rows, ids, now_us):
    t = table(0, len(ids), now_us, 1)
    t = t.set_column(0, "event_id", pa.array(ids, pa.int64()))
    t = t.set_column(6, "amount", pa.array([float(i % 10_000) / 100 + 1 for i in ids], pa.float64()))
    pq.write_table(t, os.path.join(folder, "part-9999-changes.parquet"), row_group_size=ROW_GROUP_ROWS, compression="zstd")


def config(root, source):
    text = f"""{source}

[[tables]]
name = "events"
mode = "incremental"
watermark = "updated_at"
primary_key = ["event_id"]

[[destinations]]
id = "acme"
tenant = "acme"
folder = "out/acme"
format = {{ type = "parquet", codec = "zstd" }}

[state]
path = "state"
"""
    path = os.path.join(root, "byob.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def run_byob(byob, config_path, run):
    cmd = ["/usr/bin/time", "-v", byob, "run", "--config", config_path, "--run", run]
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"byob run {run} failed:\n{done.stdout}\n{done.stderr}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 1024
    line = next(l for l in done.stdout.splitlines() if l.startswith("acme") and " events " in l)
    parts = line.split()
    mode, rows = parts[2], int(parts[3])
    read = re.search(r"read (\S+ \S+) from the source", done.stdout)
    return {"wall": wall, "rss": rss, "mode": mode, "rows": rows, "read": read.group(1) if read else None}


def psql(bindir, port, sql, db="bench"):
    out = subprocess.run(
        [os.path.join(bindir, "psql"), "-X", "-q", "-At", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", db, "-c", sql],
        capture_output=True, text=True,
    )
    if out.returncode != 0:
        sys.exit(f"psql failed: {sql[:200]}\n{out.stderr}")
    return out.stdout.strip()


def blocks(bindir, port):
    sql = (
        "SELECT coalesce(sum(heap_blks_read + heap_blks_hit + coalesce(idx_blks_read, 0) + coalesce(idx_blks_hit, 0)), 0) "
        "FROM pg_statio_user_tables WHERE relname = 'events'"
    )
    return int(psql(bindir, port, sql))


def human(n):
    for unit in ["B", "KiB", "MiB", "GiB"]:
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--byob", required=True)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--percent", type=float, default=1.0)
    ap.add_argument("--pg-bindir")
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="byob-bench-incremental-")
    results = []

    # The lake.
    lake_root = os.path.join(work, "lake-run")
    os.makedirs(lake_root, exist_ok=True)
    print(f"==> writing a {args.rows:,}-row lake table", file=sys.stderr)
    folder = write_lake(lake_root, args.rows)
    cfg = config(lake_root, '[source]\ntype = "parquet"\npath = "lake"')
    full = run_byob(args.byob, cfg, "2024-03-01T04:00")
    ids = changed_ids(args.rows, args.percent)
    append_changes(folder, args.rows, ids, START_US + args.rows * 1_000_000 + 3_600_000_000)
    incremental = run_byob(args.byob, cfg, "2024-03-01T05:00")
    results.append(("lake", full, incremental, len(ids)))

    if args.pg_bindir:
        bindir = args.pg_bindir
        data = os.path.join(work, "pg")
        port = 55_000 + os.getpid() % 5000
        # initdb and postgres refuse root: run them as the postgres user (or nobody) then.
        as_user = []
        if os.geteuid() == 0:
            import pwd
            user = next(u for u in ["postgres", "nobody"] if any(p.pw_name == u for p in pwd.getpwall()))
            as_user = ["runuser", "-u", user, "--"]
            os.makedirs(data, exist_ok=True)
            subprocess.run(["chown", "-R", user, data], check=True)
            os.chmod(work, 0o755)
        subprocess.run(as_user + [os.path.join(bindir, "initdb"), "-D", data, "-U", "postgres", "-A", "trust"], check=True, capture_output=True)
        started = subprocess.run(
            as_user + [os.path.join(bindir, "pg_ctl"), "-D", data, "-w", "-l", os.path.join(data, "server.log"),
             "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c shared_buffers=256MB", "start"],
            capture_output=True, text=True,
        )
        if started.returncode != 0:
            sys.exit(f"PostgreSQL did not start: {started.stderr}")
        try:
            psql(bindir, port, "CREATE DATABASE bench", db="postgres")
            psql(bindir, port,
                 "CREATE TABLE events (event_id bigint PRIMARY KEY, tenant_id text NOT NULL, updated_at timestamptz NOT NULL, "
                 "user_id bigint, kind text, url text, amount double precision)")
            print(f"==> loading {args.rows:,} rows into PostgreSQL", file=sys.stderr)
            csv = os.path.join(work, "events.csv")
            with pacsv.CSVWriter(csv, table(0, 1, START_US, 1).schema) as writer:
                for first in range(0, args.rows, FILE_ROWS):
                    writer.write_table(table(first, min(FILE_ROWS, args.rows - first), START_US + first * 1_000_000, 1_000_000))
            psql(bindir, port, f"\\copy events FROM '{csv}' CSV HEADER")
            os.remove(csv)
            psql(bindir, port, "CREATE INDEX events_tenant_updated ON events (tenant_id, updated_at)")
            psql(bindir, port, "VACUUM ANALYZE events")
            pg_root = os.path.join(work, "pg-run")
            os.makedirs(pg_root, exist_ok=True)
            url = f"postgresql://postgres@127.0.0.1:{port}/bench?sslmode=disable"
            cfg = config(pg_root, f'[source]\ntype = "postgres"\nurl = "{url}"')
            before = blocks(bindir, port)
            full = run_byob(args.byob, cfg, "2024-03-01T04:00")
            full["read"] = human((blocks(bindir, port) - before) * 8192) + " (blocks)"
            every = max(1, round(100 / args.percent))
            psql(bindir, port, f"UPDATE events SET updated_at = now(), amount = amount + 1 WHERE event_id % {every} = 0")
            psql(bindir, port, "VACUUM ANALYZE events")
            before = blocks(bindir, port)
            incremental = run_byob(args.byob, cfg, "2024-03-01T05:00")
            incremental["read"] = human((blocks(bindir, port) - before) * 8192) + " (blocks)"
            results.append(("PostgreSQL", full, incremental, len(ids)))
        finally:
            subprocess.run(as_user + [os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "fast", "stop"], capture_output=True)

    print()
    print(f"{args.rows:,} rows, {args.percent:g} % changed; byob {args.byob}")
    print()
    print("| source | run | mode | rows exported | wall s | source read | peak RSS MiB | x full |")
    print("|---|---|---|---|---|---|---|---|")
    for source, full, incr, changed in results:
        for label, r in [("full", full), ("incremental", incr)]:
            ratio = f"{r['wall'] / full['wall']:.3f}" if label == "incremental" else "1"
            print(f"| {source} | {label} | {r['mode']} | {r['rows']:,} | {r['wall']:.2f} | {r['read']} | {r['rss']:.0f} | {ratio} |")
    if not args.work:
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
