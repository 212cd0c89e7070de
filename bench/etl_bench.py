"""ETL cost: the full pipeline against Spark's own bare "group by user, items ordered by ts, write Parquet" over the
same input, both timed as whole processes (JVM start-up included in both), alternating order, median of --repeats;
DuckDB's group-by as the single-machine reference; N and 2N events; and a skewed case.

    .venv/bin/python bench/etl_bench.py --events 10000000                  # N and 2N, 3 repeats each
    .venv/bin/python bench/etl_bench.py --events 1000000 --no-double --repeats 1   # quick look
    .venv/bin/python bench/etl_bench.py --events 2000000 --no-double --skew        # + a bot and a hot item
    .venv/bin/python bench/etl_bench.py --events 100000000 --once --set data.shuffle_partitions=160 \
        --set data.num_files=80 --set data.spark_driver_memory=6g   # the scale run, sized by `interest plan --events 1e8 --executors 1 --executor-cores 2`
    .venv/bin/python bench/etl_bench.py --events 10000000 --no-double --calibration-out cluster/etl_calibration.json

The bare query is frozen as `BARE_GROUPBY` below. Printed per size: the ETL / bare ratio (target <= 3), the
manifest's stage_seconds (where the ETL's time goes), the peak RSS of the ETL's Python driver and JVM, and 2N / N.
--skew adds one user with --bot-events events (a bot; beyond data.max_events_per_user they are quarantined with
reason user_event_cap) and moves --hot-share of all events to one item, then times the ETL on it against the same
data without the skew.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BARE_GROUPBY = """
import sys
from pyspark.sql import functions as F
from spark_jobs.session import get_spark
spark = get_spark("bench-groupby", shuffle_partitions=8, driver_memory="4g")
df = spark.read.parquet(sys.argv[1])
df.groupBy("user_id").agg(F.transform(F.array_sort(F.collect_list(F.struct("ts", "item_id"))),
                                      lambda e: e["item_id"]).alias("items")).write.mode("overwrite").parquet(sys.argv[2])
spark.stop()
"""


def synth(root: Path, events: int) -> Path:
    from interest.synthetic import generate

    out = root / f"synth_{events}"
    if not (out / "generator.json").exists():
        generate(out, users=max(1000, events // 50), items=max(1000, events // 200), days=90, events=events, seed=11)
    return out


def skewed(src: Path, bot_events: int, hot_share: float, seed: int = 3) -> Path:
    """src's events with one bot user of bot_events events and hot_share of all events moved to one item."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out = src.parent / f"{src.name}_skew_{bot_events}_{hot_share}"
    if (out / "generator.json").exists():
        return out
    rng = np.random.default_rng(seed)
    (out / "events").mkdir(parents=True, exist_ok=True)
    table = pq.read_table(src / "events")
    hot = table.column("item_id")[0].as_py()
    move = pa.array(rng.random(table.num_rows) < hot_share)
    table = table.set_column(table.schema.get_field_index("item_id"), "item_id",
                             pc.if_else(move, pa.scalar(hot), table.column("item_id")))
    rows = rng.integers(0, table.num_rows, bot_events)
    bot = table.take(pa.array(rows))
    bot = bot.set_column(bot.schema.get_field_index("user_id"), "user_id", pa.array(["bot-0"] * bot_events))
    bot = bot.set_column(bot.schema.get_field_index("session_id"), "session_id", pa.array(["bot-0-1"] * bot_events))
    pq.write_table(table, out / "events" / "part-00000.parquet")
    pq.write_table(bot, out / "events" / "part-00001.parquet")
    for name in ("items.parquet", "generator.json"):
        (out / name).write_bytes((src / name).read_bytes())
    return out


def duckdb_groupby(events_dir: Path, out: Path) -> float:
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    t0 = time.perf_counter()
    con.execute(f"COPY (SELECT user_id, list(item_id ORDER BY ts) AS items FROM read_parquet('{events_dir}/*.parquet') "
                f"GROUP BY user_id) TO '{out}' (FORMAT PARQUET)")
    return time.perf_counter() - t0


def event_log_env(log_dir: Path) -> dict:
    """The environment that makes a PySpark process write Spark's event log (uncompressed, one file) to log_dir:
    pyspark's launcher passes PYSPARK_SUBMIT_ARGS to spark-submit, so neither the ETL nor the bare query changes."""
    log_dir.mkdir(parents=True, exist_ok=True)
    confs = {"spark.eventLog.enabled": "true", "spark.eventLog.dir": log_dir.as_uri(),
             "spark.eventLog.compress": "false", "spark.eventLog.rolling.enabled": "false"}
    args = " ".join(f"--conf {k}={v}" for k, v in confs.items())
    return {**os.environ, "PYSPARK_SUBMIT_ARGS": f"{args} pyspark-shell"}


def event_log_metrics(log_dir: Path) -> dict:
    """Totals over the one event log in log_dir (Spark's listener events, one JSON per line): jobs, stages,
    stages that write a shuffle, tasks, records read (from files and from cached frames: records read / events is
    the number of passes over the data; Spark's input *bytes* of a Parquet scan count only what Hadoop's stream
    statistics see), shuffle bytes written, bytes spilled (memory
    and disk) and output bytes written. Skipped stages (a shuffle's output reused) are not counted."""
    logs = [p for p in log_dir.iterdir() if p.is_file()]
    if len(logs) != 1:
        raise RuntimeError(f"expected one Spark event log in {log_dir}, found {len(logs)}")
    m = {"jobs": 0, "stages": 0, "shuffle_stages": 0, "tasks": 0, "records_read": 0, "shuffle_write_bytes": 0,
         "spill_memory_bytes": 0, "spill_disk_bytes": 0, "output_bytes": 0}
    with logs[0].open() as f:
        for line in f:
            if '"Event":"SparkListenerJobStart"' in line:
                m["jobs"] += 1
                continue
            if not ('"Event":"SparkListenerTaskEnd"' in line or '"Event":"SparkListenerStageCompleted"' in line):
                continue
            ev = json.loads(line)
            if ev["Event"] == "SparkListenerStageCompleted":
                m["stages"] += 1
                acc = {a.get("Name"): a.get("Value") for a in ev["Stage Info"].get("Accumulables", [])}
                if int(acc.get("internal.metrics.shuffle.write.bytesWritten") or 0) > 0:
                    m["shuffle_stages"] += 1
                continue
            tm = ev.get("Task Metrics") or {}
            m["tasks"] += 1
            m["records_read"] += tm.get("Input Metrics", {}).get("Records Read", 0)
            m["shuffle_write_bytes"] += tm.get("Shuffle Write Metrics", {}).get("Shuffle Bytes Written", 0)
            m["spill_memory_bytes"] += tm.get("Memory Bytes Spilled", 0)
            m["spill_disk_bytes"] += tm.get("Disk Bytes Spilled", 0)
            m["output_bytes"] += tm.get("Output Metrics", {}).get("Bytes Written", 0)
    return m


def timed(cmd: list[str], log_dir: Path | None = None) -> tuple[float, dict]:
    """Wall time of a whole process and the peak RSS of it (Python driver) and of its JVM child; with log_dir,
    also the Spark event log's totals (event_log_metrics) under "spark"."""
    peaks = {"python_driver_mb": 0.0, "jvm_mb": 0.0}
    env = None
    if log_dir is not None:
        shutil.rmtree(log_dir, ignore_errors=True)
        env = event_log_env(log_dir)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
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
    if log_dir is not None:
        peaks["spark"] = event_log_metrics(log_dir)
    return wall, peaks


ETL_SETS: list[str] = []  # --set overrides for every ETL run of this bench (main() fills it)


def etl_cmd(data: Path, out: Path, config: str) -> list[str]:
    return [sys.executable, "-m", "spark_jobs.etl", "--input", str(data), "--format", "synthetic", "--output",
            str(out), "--config", config, "--allow-insecure-demo-key", *[x for o in ETL_SETS for x in ("--set", o)]]


def manifest(out: Path) -> dict:
    from interest_core.data_versions import resolve_data_dir

    return json.loads((resolve_data_dir(out) / "manifest.json").read_text())


def shards(out: Path) -> dict:
    """Parquet files and bytes of the published version, per split."""
    from interest_core.data_versions import resolve_data_dir

    d = resolve_data_dir(out)
    result = {}
    for split in sorted(p.name for p in d.iterdir() if p.is_dir()):
        files = list((d / split).rglob("*.parquet"))
        sizes = [f.stat().st_size for f in files]
        result[split] = {"files": len(files), "bytes": sum(sizes), "max_file_bytes": max(sizes, default=0)}
    return result


def measure(root: Path, data: Path, n: int, config: str, repeats: int) -> dict:
    """ETL and bare group-by, `repeats` times each in alternating order; medians. Every run writes Spark's event
    log; the last run of each gives the pass counts and bytes (event_log_metrics)."""
    etl_s, bare_s, peaks, bare_peaks = [], [], {}, {}
    for r in range(repeats):
        order = ("etl", "bare") if r % 2 == 0 else ("bare", "etl")
        for which in order:
            if which == "etl":
                wall, peaks = timed(etl_cmd(data, root / f"etl_{n}", config), root / f"eventlog_etl_{n}")
                etl_s.append(wall)
            else:
                wall, bare_peaks = timed([sys.executable, "-c", BARE_GROUPBY, str(data / "events"),
                                          str(root / f"bare_{n}")], root / f"eventlog_bare_{n}")
                bare_s.append(wall)
    m = manifest(root / f"etl_{n}")
    data_cfg = m["config"]["data"]
    return {"events": n, "shuffle_partitions": data_cfg["shuffle_partitions"], "num_files": data_cfg["num_files"],
            "spark_driver_memory": data_cfg["spark_driver_memory"], "etl_s": statistics.median(etl_s), "bare_s": statistics.median(bare_s), "etl_runs": etl_s,
            "bare_runs": bare_s, "stage_seconds": m.get("stage_seconds"), "quarantine": m["quarantine"],
            "rows": m["rows"],
            "bare_spark": bare_peaks["spark"], "shards": shards(root / f"etl_{n}"), "cores": os.cpu_count(),
            "input_bytes": sum(f.stat().st_size for f in (data / "events").rglob("*.parquet")), **peaks}


def _passes(r: dict) -> str:
    e, b = r["spark"], r["bare_spark"]
    return (f"  Spark work (event log), ETL vs bare: jobs {e['jobs']} vs {b['jobs']}, stages {e['stages']} vs "
            f"{b['stages']}, stages writing a shuffle {e['shuffle_stages']} vs {b['shuffle_stages']}, rows read "
            f"{e['records_read'] / r['events']:.1f} vs {b['records_read'] / r['events']:.1f} x the events, shuffle written "
            f"{e['shuffle_write_bytes'] / 2**20:.0f} vs {b['shuffle_write_bytes'] / 2**20:.0f} MB, spilled (disk) "
            f"{e['spill_disk_bytes'] / 2**20:.0f} vs {b['spill_disk_bytes'] / 2**20:.0f} MB, written "
            f"{e['output_bytes'] / 2**20:.0f} vs {b['output_bytes'] / 2**20:.0f} MB")


def calibration(r: dict) -> dict:
    """What the capacity planner's ETL sizing reads (cluster/etl_calibration.json): per-stage core-seconds per
    million events and bytes per event, from one measured ETL run on this machine."""
    n, cores, s = r["events"], r["cores"], r["spark"]
    return {"measured": {"events": n, "cores": cores, "etl_seconds": round(r["etl_s"], 1),
                         "jvm_peak_mb": round(r["jvm_mb"]), "shuffle_partitions": r["shuffle_partitions"],
                         "num_files": r["num_files"],
                         "spark_driver_memory": r["spark_driver_memory"],
                         "command": " ".join(["bench/etl_bench.py", *sys.argv[1:]])},
            "core_seconds_per_million_events": {k: round(v * cores * 1e6 / n, 3)
                                                for k, v in (r["stage_seconds"] or {}).items()},
            "bytes_per_event": {"input": round(r["input_bytes"] / n, 2),
                                "shuffle": round(s["shuffle_write_bytes"] / n, 2),
                                "output": round(sum(v["bytes"] for v in r["shards"].values()) / n, 2)},
            "train_rows_per_event": round(r["rows"]["train"] / n, 5), "shuffle_stages": s["shuffle_stages"]}


def _line(n: int, r: dict, duck: float) -> str:
    stages = ", ".join(f"{k} {v:.0f}" for k, v in (r["stage_seconds"] or {}).items())
    return (f"N={n:,}: ETL {r['etl_s']:.1f}s vs Spark bare group-by {r['bare_s']:.1f}s (whole processes, median of "
            f"{len(r['etl_runs'])}) -> {r['etl_s'] / r['bare_s']:.2f}x (target <= 3); DuckDB group-by {duck:.1f}s; "
            f"ETL python driver peak {r['python_driver_mb']:.0f} MB, JVM peak {r['jvm_mb']:.0f} MB; stages (s): "
            f"{stages}")


def scale_run(root: Path, n: int, config: str) -> int:
    """One ETL at n events, for the scale figures: completes or fails, with what it spilled and wrote."""
    t0 = time.perf_counter()
    data = synth(root, n)
    gen_s = time.perf_counter() - t0
    wall, peaks = timed(etl_cmd(data, root / f"etl_{n}", config), root / f"eventlog_etl_{n}")
    m, s, out = manifest(root / f"etl_{n}"), peaks["spark"], shards(root / f"etl_{n}")
    files = sum(v["files"] for v in out.values())
    print(f"scale N={n:,} (generated in {gen_s:.0f}s): ETL {wall:.0f}s; python driver peak "
          f"{peaks['python_driver_mb']:.0f} MB, JVM peak {peaks['jvm_mb']:.0f} MB; spilled {s['spill_disk_bytes'] / 2**30:.2f}"
          f" GiB to disk ({s['spill_memory_bytes'] / 2**30:.2f} GiB in memory); shuffle written "
          f"{s['shuffle_write_bytes'] / 2**30:.2f} GiB; {files} shard files, "
          f"{sum(v['bytes'] for v in out.values()) / 2**30:.2f} GiB, largest file "
          f"{max(v['max_file_bytes'] for v in out.values()) / 2**20:.0f} MB; stages (s): "
          + ", ".join(f"{k} {v:.0f}" for k, v in (m.get("stage_seconds") or {}).items()), flush=True)
    (root / f"etl_scale_{n}.json").write_text(json.dumps({"events": n, "etl_s": wall, **peaks, "shards": out,
                                                           "stage_seconds": m.get("stage_seconds")}, indent=2))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--config", default="base")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "interest_etl_bench"))
    ap.add_argument("--no-double", action="store_true", help="skip the 2N run")
    ap.add_argument("--skew", action="store_true", help="also time the ETL on a skewed copy of the N-event data")
    ap.add_argument("--bot-events", type=int, default=1_000_000)
    ap.add_argument("--hot-share", type=float, default=0.3)
    ap.add_argument("--set", action="append", default=[], dest="overrides",
                    help="config override for the ETL runs, e.g. --set data.shuffle_partitions=160 (the planner's)")
    ap.add_argument("--once", action="store_true",
                    help="the scale run: the ETL alone, once, at --events (wall, peak RSS, spill, shards)")
    ap.add_argument("--calibration-out", default=None,
                    help="write the planner's ETL calibration from the N-event run, e.g. cluster/etl_calibration.json")
    args = ap.parse_args()
    root = Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    ETL_SETS.extend(args.overrides)
    if args.once:
        return scale_run(root, args.events, args.config)
    sizes = [args.events] if args.no_double else [args.events, 2 * args.events]
    results = {}
    for n in sizes:
        data = synth(root, n)
        duck = duckdb_groupby(data / "events", root / f"duck_{n}.parquet")
        results[n] = measure(root, data, n, args.config, args.repeats) | {"duckdb_s": duck}
        print(_line(n, results[n], duck), flush=True)
        print(_passes(results[n]), flush=True)
    if len(sizes) == 2:
        a, b = results[sizes[0]], results[sizes[1]]
        print(f"scaling: ETL 2N/N = {b['etl_s'] / a['etl_s']:.2f}; bare group-by 2N/N = {b['bare_s'] / a['bare_s']:.2f};"
              f" JVM RSS 2N/N = {b['jvm_mb'] / max(a['jvm_mb'], 1):.2f}")
    if args.skew:
        n = sizes[0]
        data = skewed(synth(root, n), args.bot_events, args.hot_share)
        wall, peaks = timed(etl_cmd(data, root / f"etl_skew_{n}", args.config))
        q = manifest(root / f"etl_skew_{n}")["quarantine"]
        results["skew"] = {"etl_s": wall, **peaks, "quarantine": q}
        print(f"skew (N={n:,} + a bot of {args.bot_events:,} events, {args.hot_share:.0%} of events on one item): ETL "
              f"{wall:.1f}s = {wall / results[n]['etl_s']:.2f}x the unskewed median; JVM peak {peaks['jvm_mb']:.0f} "
              f"MB; quarantined user_event_cap {q.get('by_reason', {}).get('user_event_cap', 0):,} rows of "
              f"{q.get('users_capped', 0)} user(s)", flush=True)
    if args.calibration_out:
        Path(args.calibration_out).write_text(json.dumps(calibration(results[sizes[0]]), indent=2) + "\n")
        print(f"calibration -> {args.calibration_out}")
    (root / "etl_bench.json").write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
