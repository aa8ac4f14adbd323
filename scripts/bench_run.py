#!/usr/bin/env python3
"""The driver of scripts/bench (a benchmark, not a test): exports one Parquet input with byob,
DuckDB, polars and pyarrow, each case in a process of its own under /usr/bin/time -v, and
prints one table. Run it through scripts/bench, which installs the tools and builds byob.

    bench_run.py run --byob BIN --input PATH --work DIR [--tools ...] [--cases ...]
    bench_run.py case TOOL FORMAT CODEC OUT --input-list JSON ...   (one export; internal)
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

# (format, codec) in table order. byob's uncompressed renderings come first: they measure
# encoding alone and are what pigz compresses.
CASES = [
    ("csv", "none"),
    ("jsonl", "none"),
    ("parquet", "zstd"),
    ("parquet", "snappy"),
    ("parquet", "gzip"),
    ("csv", "gzip"),
    ("jsonl", "gzip"),
]
COMPARED = [c for c in CASES if c[1] != "none"]
TOOLS = ["byob", "duckdb", "polars", "polars-sink", "pyarrow"]
GZIP_LEVEL = 6
ZSTD_LEVEL = 3
RUN_ID = "2024-01-01T00:00"


def parquet_files(path):
    """The input's Parquet files, chosen exactly as byob chooses them: a file is itself; a
    folder's `*.parquet` files, sorted, hidden and `_`-prefixed names skipped."""
    if os.path.isfile(path):
        return [os.path.abspath(path)]
    if not os.path.isdir(path):
        sys.exit(f"bench: --input {path}: no such file or folder")
    names = sorted(
        n
        for n in os.listdir(path)
        if n.endswith(".parquet") and not n.startswith((".", "_")) and os.path.isfile(os.path.join(path, n))
    )
    if not names:
        sys.exit(f"bench: --input {path}: no *.parquet files")
    return [os.path.abspath(os.path.join(path, n)) for n in names]


# ---------------------------------------------------------------------------------------
# One export, in its own process (what /usr/bin/time measures).


def output_path(out, fmt, codec):
    ext = {"parquet": ".parquet", "csv": ".csv", "jsonl": ".jsonl"}[fmt]
    return os.path.join(out, "data" + ext + (".gz" if codec == "gzip" and fmt != "parquet" else ""))


def sql_string(s):
    return "'" + s.replace("'", "''") + "'"


def case_duckdb(files, out, fmt, codec, rg_rows):
    import duckdb

    con = duckdb.connect()
    source = "read_parquet([" + ", ".join(sql_string(f) for f in files) + "])"
    if fmt == "parquet":
        options = f"FORMAT parquet, COMPRESSION {codec}, ROW_GROUP_SIZE {rg_rows}"
        if codec == "zstd":
            options += f", COMPRESSION_LEVEL {ZSTD_LEVEL}"
    elif fmt == "csv":
        options = "FORMAT csv, HEADER true, COMPRESSION gzip"
    else:
        options = "FORMAT json, COMPRESSION gzip"
    con.execute(f"COPY (SELECT * FROM {source}) TO {sql_string(output_path(out, fmt, codec))} ({options})")


def polars_options(fmt, codec, rg_rows):
    if fmt == "parquet":
        level = {"zstd": ZSTD_LEVEL, "gzip": GZIP_LEVEL}.get(codec)
        return {"compression": codec, "compression_level": level, "row_group_size": rg_rows}
    return {"compression": "gzip", "compression_level": GZIP_LEVEL}


def case_polars(files, out, fmt, codec, rg_rows):
    import polars as pl

    df = pl.read_parquet(files)
    write = {"parquet": df.write_parquet, "csv": df.write_csv, "jsonl": df.write_ndjson}[fmt]
    write(output_path(out, fmt, codec), **polars_options(fmt, codec, rg_rows))


def case_polars_sink(files, out, fmt, codec, rg_rows):
    import polars as pl

    lf = pl.scan_parquet(files)
    sink = {"parquet": lf.sink_parquet, "csv": lf.sink_csv, "jsonl": lf.sink_ndjson}[fmt]
    sink(output_path(out, fmt, codec), **polars_options(fmt, codec, rg_rows))


def case_pyarrow(files, out, fmt, codec, rg_rows):
    import gzip

    import pyarrow.csv as pcsv
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    table = ds.dataset(files, format="parquet").to_table()
    path = output_path(out, fmt, codec)
    if fmt == "parquet":
        level = {"zstd": ZSTD_LEVEL, "gzip": GZIP_LEVEL}.get(codec)
        pq.write_table(table, path, compression=codec, compression_level=level, row_group_size=rg_rows)
    elif fmt == "csv":
        # Arrow's own gzip stream cannot take a level (its default is 9): use zlib at level 6.
        with gzip.open(path, "wb", compresslevel=GZIP_LEVEL) as f:
            pcsv.write_csv(table, f)
    else:
        raise SystemExit("pyarrow has no JSON writer")


CASE_FUNCTIONS = {
    "duckdb": case_duckdb,
    "polars": case_polars,
    "polars-sink": case_polars_sink,
    "pyarrow": case_pyarrow,
}

# What each tool cannot do (printed as '-').
UNSUPPORTED = {
    ("pyarrow", "jsonl", "gzip"),
}


def supported(tool, fmt, codec):
    if codec == "none":
        return tool == "byob"
    return (tool, fmt, codec) not in UNSUPPORTED


def run_case_main(args):
    files = json.loads(args.input_list)
    CASE_FUNCTIONS[args.tool](files, args.out, args.format, args.codec, args.row_group_rows)


# ---------------------------------------------------------------------------------------
# The driver.


class Result:
    def __init__(self, tool, fmt, codec):
        self.tool, self.fmt, self.codec = tool, fmt, codec
        self.wall = self.cpu = self.rss_mb = self.out_bytes = None
        self.rows_per_group = None
        self.input_bytes = None
        self.failed = None
        self.skipped = False
        self.outputs = []


def timed(cmd, time_file, stdout=None, label=""):
    """Runs cmd under /usr/bin/time -v; returns (wall seconds, cpu seconds, peak RSS MiB)."""
    started = time.monotonic()
    with open(time_file + ".stderr", "wb") as err:
        # The tool's own messages go to a log, not into the table.
        proc = subprocess.run(["/usr/bin/time", "-v", "-o", time_file, *cmd], stdout=stdout or err, stderr=err)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        with open(time_file + ".stderr", "rb") as err:
            tail = err.read()[-3000:].decode("utf-8", "replace")
        raise RuntimeError(f"{label}: exit {proc.returncode}\n{tail}")
    fields = {}
    with open(time_file) as f:
        for line in f:
            key, _, value = line.strip().rpartition(": ")
            fields[key] = value
    cpu = float(fields["User time (seconds)"]) + float(fields["System time (seconds)"])
    rss_mb = int(fields["Maximum resident set size (kbytes)"]) / 1024
    return wall, cpu, rss_mb


def files_under(folder, skip=("receipt.json", "receipt.run.json")):
    found = []
    for root, _, names in os.walk(folder):
        found += [os.path.join(root, n) for n in names if n not in skip and not n.startswith(".")]
    return sorted(found)


def check_parquet(paths, rows, label):
    import pyarrow.parquet as pq

    total = groups = 0
    for p in paths:
        md = pq.ParquetFile(p).metadata
        total += md.num_rows
        groups += md.num_row_groups
    if total != rows:
        raise RuntimeError(f"{label}: wrote {total} rows, the input has {rows}")
    return total / max(groups, 1)


def describe_input(files):
    import pyarrow.parquet as pq

    rows = groups = arrow_bytes = file_bytes = 0
    columns = None
    for f in files:
        pf = pq.ParquetFile(f)
        rows += pf.metadata.num_rows
        groups += pf.metadata.num_row_groups
        file_bytes += os.path.getsize(f)
        columns = pf.metadata.num_columns
        for batch in pf.iter_batches(batch_size=65536):
            arrow_bytes += batch.nbytes
    return {"rows": rows, "row_groups": groups, "arrow_bytes": arrow_bytes, "file_bytes": file_bytes, "columns": columns}


def versions(byob, label):
    import duckdb
    import polars
    import pyarrow

    def first_line(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"

    return {
        "byob": label or first_line([byob, "--version"]),
        "duckdb": duckdb.__version__,
        "polars": polars.__version__,
        "pyarrow": pyarrow.__version__,
        "pigz": first_line(["pigz", "--version"]),
        "python": platform.python_version(),
    }


def machine():
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    except OSError:
        model = "?"
    try:
        with open("/proc/meminfo") as f:
            mem_gib = int(f.readline().split()[1]) / 1024 / 1024
    except (OSError, ValueError, IndexError):
        mem_gib = 0
    return f"{os.cpu_count()} cores ({model}), {mem_gib:.0f} GiB RAM"


def load_average():
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def mb(n):
    return n / 1e6


def fmt_num(v, spec):
    return "-" if v is None else format(v, spec)


def run_main(args):
    files = parquet_files(args.input)
    tools = args.tools.split(",")
    for t in tools:
        if t not in TOOLS:
            sys.exit(f"bench: unknown tool {t!r} (known: {', '.join(TOOLS)})")
    cases = CASES if args.cases == "all" else [tuple(c.split("/")) for c in args.cases.split(",")]
    for c in cases:
        if c not in CASES:
            sys.exit(f"bench: unknown case {'/'.join(c)!r} (known: {', '.join('/'.join(c) for c in CASES)})")
    if "byob" not in tools:
        sys.exit("bench: byob must be one of --tools: every ratio is to byob")
    # pigz compresses byob's uncompressed rendering of each text format compared.
    for fmt in ["jsonl", "csv"]:
        if (fmt, "gzip") in cases and (fmt, "none") not in cases:
            cases.insert(0, (fmt, "none"))

    os.makedirs(args.work, exist_ok=True)
    load_start = load_average()
    print(f"machine: {machine()}; load average at start {load_start}", file=sys.stderr)
    print(f"reading the input ({len(files)} file(s)) for its size...", file=sys.stderr)
    info = describe_input(files)
    rows = info["rows"]
    tool_versions = versions(args.byob, args.byob_label)
    rg_rows = args.row_group_rows
    print(f"input: {rows} rows, {info['row_groups']} row groups, {mb(info['arrow_bytes']):.0f} MB as Arrow", file=sys.stderr)

    results = []
    failures = []

    def measure(result, cmd, out_dir, stdout_path=None, parquet=False):
        label = f"{result.tool} {result.fmt}/{result.codec}"
        print(f"[{time.strftime('%H:%M:%S')}] {label} ...", file=sys.stderr, flush=True)
        time_file = os.path.join(args.work, "time.txt")
        try:
            # With --repeat: the fastest run's wall and CPU time, the highest peak RSS of all.
            runs = []
            for _ in range(args.repeat):
                if stdout_path:
                    with open(stdout_path, "wb") as stdout:
                        runs.append(timed(cmd, time_file, stdout=stdout, label=label))
                else:
                    runs.append(timed(cmd, time_file, label=label))
            result.wall, result.cpu, _ = min(runs)
            result.rss_mb = max(r[2] for r in runs)
            result.outputs = files_under(out_dir)
            result.out_bytes = sum(os.path.getsize(p) for p in result.outputs)
            if not result.outputs or result.out_bytes == 0:
                raise RuntimeError(f"{label}: wrote nothing into {out_dir}")
            if parquet:
                result.rows_per_group = check_parquet(result.outputs, rows, label)
            print(
                f"    {result.wall:.1f} s wall, {result.cpu:.1f} s CPU, {result.rss_mb:.0f} MiB peak RSS, "
                f"{mb(result.out_bytes):.0f} MB",
                file=sys.stderr,
                flush=True,
            )
        except RuntimeError as e:
            result.failed = str(e)
            failures.append(str(e).splitlines()[0])
            print(f"bench: FAILED: {e}", file=sys.stderr, flush=True)

    def fresh(name):
        path = os.path.join(args.work, name)
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        return path

    def pigz(rendering):
        """pigz over byob's uncompressed rendering of the same rows; then the rendering goes."""
        result = Result("pigz -p 2 -6", rendering.fmt, "gzip")
        pigz_results.append(result)
        out = fresh(f"pigz-{rendering.fmt}")
        result.input_bytes = rendering.out_bytes
        command = ["pigz", "-p", "2", f"-{GZIP_LEVEL}", "-c", *rendering.outputs]
        measure(result, command, out, stdout_path=os.path.join(out, "data.gz"))
        shutil.rmtree(out, ignore_errors=True)

    # byob first: its Parquet row groups set the row-group size the other tools are given.
    pigz_results = []
    text_bytes = {}
    for fmt, codec in cases:
        result = Result("byob", fmt, codec)
        out = fresh(f"byob-{fmt}-{codec}")
        cmd = [args.byob, "export", "--input", args.input, "--out", out, "--format", fmt, "--codec", codec, "--run", RUN_ID]
        measure(result, cmd, out, parquet=fmt == "parquet")
        results.append(result)
        if codec == "none" and result.failed is None:
            text_bytes[fmt] = result.out_bytes
            if (fmt, "gzip") in cases:
                pigz(result)
        shutil.rmtree(out, ignore_errors=True)
        if rg_rows is None and fmt == "parquet" and codec == "zstd" and result.rows_per_group:
            rg_rows = int(round(result.rows_per_group))
    if rg_rows is None:
        rg_rows = 122_880
    results += pigz_results

    for tool in [t for t in TOOLS if t in tools and t != "byob"]:
        for fmt, codec in [c for c in cases if c[1] != "none"]:
            result = Result(tool, fmt, codec)
            results.append(result)
            if not supported(tool, fmt, codec):
                result.skipped = True
                continue
            out = fresh(f"{tool}-{fmt}-{codec}")
            cmd = [
                sys.executable,
                os.path.abspath(__file__),
                "case",
                tool,
                fmt,
                codec,
                out,
                "--input-list",
                json.dumps(files),
                "--row-group-rows",
                str(rg_rows),
            ]
            measure(result, cmd, out, parquet=fmt == "parquet")
            shutil.rmtree(out, ignore_errors=True)

    load_end = load_average()
    print_report(args, results, info, text_bytes, tool_versions, rg_rows, load_start, load_end, files)
    if failures:
        print("\nbench: FAILED steps:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)


def print_report(args, results, info, text_bytes, tool_versions, rg_rows, load_start, load_end, files):
    rows = info["rows"]
    byob_wall = {(r.fmt, r.codec): r.wall for r in results if r.tool == "byob" and r.wall}

    def input_bytes(r):
        if r.fmt == "parquet":
            return info["arrow_bytes"]
        return text_bytes.get(r.fmt)

    print()
    print(
        f"byob bench: {rows:,} rows x {info['columns']} columns from {args.input} "
        f"({len(files)} file(s), {info['row_groups']} row groups, {mb(info['file_bytes']):.0f} MB on disk, "
        f"{mb(info['arrow_bytes']):.0f} MB as Arrow"
        + "".join(f", {mb(b):.0f} MB as {f.upper()}" for f, b in sorted(text_bytes.items()))
        + ")"
    )
    print(f"machine: {machine()}, nproc {os.cpu_count()}; load average at start {load_start}, at end {load_end}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in tool_versions.items()))
    print(
        f"settings: gzip level {GZIP_LEVEL} (byob, polars, pyarrow, pigz; DuckDB's own default: not settable), "
        f"zstd level {ZSTD_LEVEL} (byob, DuckDB, polars, pyarrow); row groups: byob's defaults "
        f"(32 MiB encoded or 1 Mi rows), others {rg_rows:,} rows (byob's zstd average); byob: one "
        "slice per 5 M rows, files rolled at 1 M rows or 256 MiB; DuckDB: default threads; "
        "wall time includes process start and the imports of Python tools"
        + (f"; fastest of {args.repeat} runs per case (peak RSS: the highest)" if args.repeat > 1 else "")
    )
    print()
    header = ["tool", "format", "codec", "wall s", "CPU s", "rows/s", "input MB/s", "output MB", "peak RSS MiB", "rows/row group", "x byob"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|")
    for r in results:
        name = {"polars-sink": "polars (sink_*)", "polars": "polars (write_*)", "pyarrow": "pyarrow (write_table)", "duckdb": "DuckDB COPY"}.get(r.tool, r.tool)
        if r.skipped:
            cells = [name, r.fmt, r.codec] + ["-"] * (len(header) - 3)
        elif r.failed:
            cells = [name, r.fmt, r.codec, "FAILED"] + [""] * (len(header) - 4)
        else:
            size = r.input_bytes or input_bytes(r)
            compared = byob_wall.get((r.fmt, r.codec))
            if r.tool == "byob":
                ratio = "1.00" if r.codec != "none" else ""
            else:
                ratio = fmt_num(r.wall / compared if compared else None, ".2f")
            cells = [
                name,
                r.fmt,
                r.codec,
                f"{r.wall:.1f}",
                f"{r.cpu:.1f}",
                f"{rows / r.wall / 1000:.0f} k",
                fmt_num(mb(size) / r.wall if size else None, ".0f"),
                f"{mb(r.out_bytes):.0f}",
                f"{r.rss_mb:.0f}",
                fmt_num(r.rows_per_group, ",.0f"),
                ratio,
            ]
        print("| " + " | ".join(cells) + " |")
    print()
    print(
        "input MB/s: Parquet rows per the rows' Arrow size; CSV and JSON lines per their uncompressed text "
        "(byob's rendering, the bytes pigz compresses). x byob: the tool's wall time / byob's for the same "
        "format and codec (above 1: byob is faster); for pigz, / byob's gzip export of the same rows."
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--byob", required=True)
    run.add_argument("--byob-label", default=None, help="how byob is named in the versions line")
    run.add_argument("--input", required=True)
    run.add_argument("--work", required=True)
    run.add_argument("--tools", default=",".join(TOOLS))
    run.add_argument("--cases", default="all")
    run.add_argument("--row-group-rows", type=int, default=None)
    run.add_argument("--repeat", type=int, default=1, help="runs per case; the fastest counts")
    case = sub.add_parser("case")
    case.add_argument("tool", choices=sorted(CASE_FUNCTIONS))
    case.add_argument("format", choices=["parquet", "csv", "jsonl"])
    case.add_argument("codec", choices=["zstd", "snappy", "gzip"])
    case.add_argument("out")
    case.add_argument("--input-list", required=True)
    case.add_argument("--row-group-rows", type=int, required=True)
    args = parser.parse_args()
    if args.command == "run":
        run_main(args)
    else:
        run_case_main(args)


if __name__ == "__main__":
    main()
