"""ETL benchmark: full Spark pipeline vs DuckDB's bare "group by user, list of items ordered by ts" on the same
Parquet, and scaling from N to 2N events. Prints ratios (machines here are noisy; absolute seconds are context).

    .venv/bin/python bench/etl_bench.py --events 10000000            # both sizes: N and 2N
    .venv/bin/python bench/etl_bench.py --events 1000000 --no-double # quick look

Targets (issue 3): pipeline / DuckDB <= 2.5; wall(2N) / wall(N) <= 2.1; driver peak RSS flat across sizes.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def synth(root: Path, events: int) -> Path:
    from interest.synthetic import generate

    out = root / f"synth_{events}"
    if not (out / "generator.json").exists():
        generate(out, users=max(1000, events // 50), items=max(1000, events // 200), days=90, events=events, seed=11)
    return out


def duckdb_groupby(events_dir: Path, out: Path) -> float:
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    t0 = time.perf_counter()
    con.execute(f"COPY (SELECT user_id, list(item_id ORDER BY ts) AS items FROM read_parquet('{events_dir}/*.parquet') "
                f"GROUP BY user_id) TO '{out}' (FORMAT PARQUET)")
    return time.perf_counter() - t0


def spark_groupby(events_dir: Path, out: Path) -> float:
    """Spark's bare group-by (same query as DuckDB's), timed inside one session so JVM start-up is excluded."""
    from spark_jobs.session import get_spark
    from pyspark.sql import functions as F

    spark = get_spark("bench-groupby", shuffle_partitions=8, driver_memory="4g")
    try:
        t0 = time.perf_counter()
        df = spark.read.parquet(str(events_dir))
        df.groupBy("user_id").agg(F.transform(F.array_sort(F.collect_list(F.struct("ts", "item_id"))),
                                              lambda e: e["item_id"]).alias("items")) \
            .write.mode("overwrite").parquet(str(out))
        return time.perf_counter() - t0
    finally:
        spark.stop()


def run_etl(synth_dir: Path, out: Path, config: str) -> tuple[float, dict]:
    """Wall time of `python -m spark_jobs.etl` and the peak RSS of the Python driver and of the JVM."""
    cmd = [sys.executable, "-m", "spark_jobs.etl", "--input", str(synth_dir), "--format", "synthetic",
           "--output", str(out), "--config", config, "--allow-insecure-demo-key"]
    peaks = {"python_driver_mb": 0.0, "jvm_mb": 0.0}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    done = threading.Event()

    def poll():
        p = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                peaks["python_driver_mb"] = max(peaks["python_driver_mb"], p.memory_info().rss / 2**20)
                for c in p.children(recursive=True):
                    if "java" in c.name():
                        peaks["jvm_mb"] = max(peaks["jvm_mb"], c.memory_info().rss / 2**20)
            except psutil.Error:
                pass
            time.sleep(0.5)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    output = proc.communicate()[0]
    done.set()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(output[-3000:])
    return wall, peaks


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--config", default="base")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "interest_etl_bench"))
    ap.add_argument("--no-double", action="store_true", help="skip the 2N run")
    args = ap.parse_args()
    root = Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    sizes = [args.events] if args.no_double else [args.events, 2 * args.events]
    results = {}
    for n in sizes:
        data = synth(root, n)
        actual = json.loads((data / "generator.json").read_text())["counts"]["events"] \
            if "counts" in json.loads((data / "generator.json").read_text()) else n
        duck = duckdb_groupby(data / "events", root / f"duck_{n}.parquet")
        spark_bare = spark_groupby(data / "events", root / f"spark_groupby_{n}")
        wall, peaks = run_etl(data, root / f"etl_{n}", args.config)
        manifest = json.loads((root / f"etl_{n}" / "manifest.json").read_text())
        results[n] = {"events": actual, "duckdb_s": duck, "spark_groupby_s": spark_bare, "etl_s": wall, "etl_job_s": manifest["wall_time_s"],
                      **peaks}
        print(f"N={n:,}: etl {wall:.1f}s (job {manifest['wall_time_s']:.1f}s, ex-JVM start), duckdb group-by "
              f"{duck:.1f}s -> ratio {wall / duck:.2f} (target <= 2.5); Spark bare group-by {spark_bare:.1f}s = "
              f"{spark_bare / duck:.1f}x DuckDB, ETL job / Spark bare group-by = "
              f"{manifest['wall_time_s'] / spark_bare:.1f}; python driver peak "
              f"{peaks['python_driver_mb']:.0f} MB, JVM peak {peaks['jvm_mb']:.0f} MB", flush=True)
    if len(sizes) == 2:
        a, b = results[sizes[0]], results[sizes[1]]
        print(f"scaling: wall(2N)/wall(N) = {b['etl_s'] / a['etl_s']:.2f} (target <= 2.1); "
              f"python driver RSS 2N/N = {b['python_driver_mb'] / a['python_driver_mb']:.2f}; "
              f"JVM RSS 2N/N = {b['jvm_mb'] / a['jvm_mb']:.2f}")
    print(json.dumps({str(k): v for k, v in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
