"""ETL sizing for `interest plan --events N`: input, shuffle and shard bytes, executors, executor memory, shuffle
partitions, shard files and hours, from one measured ETL run (`etl_calibration.json`, written by
`bench/etl_bench.py --calibration-out cluster/etl_calibration.json`).

The rules, each from the measured run and nothing else:
- bytes scale with events (input, shuffle and shard bytes per event as measured);
- work scales with events: the run's stage_seconds x its cores, per million events, is the core-seconds the ETL
  spends per million events, stage by stage; hours = core-seconds / (executors x cores per executor), i.e. linear
  scaling and no straggler (the bench prints 2N/N for the machine; a cluster adds shuffle-fetch time on top);
- shuffle partitions grow with events so that a partition holds no more rows than one of the measured run's, and so
  do the shard files: the ETL sorts each output file's users in one task (the split is repartitioned into
  data.num_files partitions), so a file may hold no more than one of the measured run's files (shard bytes /
  its data.num_files; a multiple of 8, so per-rank reads stay even at the usual world sizes). Then a core needs the
  memory a core of the measured run used (its JVM peak / its cores), and an executor that many times its cores
  plus Spark's memory overhead (10%, at least 384 MiB). Checked once: 100M events on 2 cores with a 6g heap and
  the 160 partitions and 80 files this rule gives completes (JVM peak 6.6 GB, 1.4 GiB spilled; README: Known limits).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

CALIBRATION = Path(__file__).resolve().with_name("etl_calibration.json")
MIB, GIB = 2**20, 2**30


def load_calibration(path: str | Path | None = None) -> dict:
    p = Path(path) if path else CALIBRATION
    if not p.exists():
        raise FileNotFoundError(f"no ETL calibration at {p}: run bench/etl_bench.py --events 10000000 --no-double "
                                f"--calibration-out {p}")
    cal = json.loads(p.read_text())
    for key in ("measured", "core_seconds_per_million_events", "bytes_per_event"):
        if key not in cal:
            raise ValueError(f"{p}: missing key {key!r}; rewrite it with bench/etl_bench.py --calibration-out")
    return cal


def _round_up(x: float, multiple: int) -> int:
    return max(multiple, multiple * math.ceil(x / multiple))


def plan_etl(events: int, num_files: int, calibration: dict, executors: int | None = None, executor_cores: int = 4,
             target_hours: float = 1.0) -> dict:
    """The ETL's size on a Spark cluster for `events` raw events (see the module docstring for every rule)."""
    if events < 1 or executor_cores < 1 or (executors is not None and executors < 1) or target_hours <= 0:
        raise ValueError("events, executor_cores and executors must be >= 1 and target_hours > 0")
    m, per_event = calibration["measured"], calibration["bytes_per_event"]
    stage_core_s = {k: v * events / 1e6 for k, v in calibration["core_seconds_per_million_events"].items()}
    core_s = sum(stage_core_s.values())
    if executors is None:
        executors = max(1, math.ceil(core_s / (executor_cores * target_hours * 3600)))
    cores = executors * executor_cores
    partitions = _round_up(m["shuffle_partitions"] * events / m["events"], cores)
    per_core_mib = m["jvm_peak_mb"] / m["cores"]
    heap_mib = per_core_mib * executor_cores
    overhead_mib = max(384, 0.10 * heap_mib)
    shard_bytes = per_event["output"] * events
    file_bytes_measured = per_event["output"] * m["events"] / m["num_files"]
    files = _round_up(shard_bytes / file_bytes_measured, 8)
    return {
        "events": events,
        "bytes": {"input_gib": per_event["input"] * events / GIB, "shuffle_gib": per_event["shuffle"] * events / GIB,
                  "shards_gib": shard_bytes / GIB},
        "executors": executors, "executor_cores": executor_cores,
        "executor_memory": f"{math.ceil(heap_mib / 1024)}g",
        "executor_memory_overhead": f"{math.ceil(overhead_mib)}m",
        "shuffle_partitions": partitions,
        "shards": {"num_files": files, "file_mib": shard_bytes / files / MIB,
                   "num_files_configured": num_files, "file_mib_configured": shard_bytes / num_files / MIB},
        "core_hours": core_s / 3600,
        "hours": core_s / cores / 3600,
        "stage_core_hours": {k: v / 3600 for k, v in sorted(stage_core_s.items(), key=lambda kv: -kv[1])},
        "calibration": {"events": m["events"], "cores": m["cores"], "etl_seconds": m["etl_seconds"],
                        "command": m.get("command", "")},
    }


def spark_submit_env(etl: dict) -> str:
    """Shell assignments the spark-submit templates in cluster/spark/ read (`eval "$(interest plan ... --spark-env)"`)."""
    values = {"SPARK_EXECUTORS": etl["executors"], "SPARK_EXECUTOR_CORES": etl["executor_cores"],
              "SPARK_EXECUTOR_MEMORY": etl["executor_memory"],
              "SPARK_EXECUTOR_MEMORY_OVERHEAD": etl["executor_memory_overhead"],
              "SPARK_SHUFFLE_PARTITIONS": etl["shuffle_partitions"],
              "ETL_NUM_FILES": etl["shards"]["num_files"]}
    return "\n".join(f"export {k}={v}" for k, v in values.items())
