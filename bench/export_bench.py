"""Batch export at scale: users per second and the driver's peak memory at 200k and 1M users.

Runs the product once on a small synthetic data set with a time split (`interest generate`, `interest etl`,
`interest train --config tiny-cpu --epochs 1`: the model's quality is not what is measured), then replicates its
test/ and decay_test/ shards to N users: every user is copied with a suffixed pseudonym, each shard keeps its part
number and is sorted by user_id as the ETL writes it. `interest export` runs on each size in a fresh process; its
export.json records the profiles stage's users/s and the driver's own peak RSS (Ray's actors are other
processes). Printed: users/s (profiles, re-engagement, whole command) per size and the peak-RSS ratio 1M / 200k
(flat = the driver never holds all users).

    .venv/bin/python bench/export_bench.py [--users 200000 1000000] [--out /tmp/interest_export_bench]
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from product import cli  # noqa: E402

from interest_core.data_versions import resolve_data_dir  # noqa: E402

SMALL = dict(users=3000, items=1000, days=60, events=60_000, seed=5, start="2024-01-01")
CUTOFF, HORIZON = "2024-02-16", 7
COPY = ("manifest.json", "_SUCCESS", "items", "vocab", "decay_valid")


def base_run(out: Path) -> tuple[Path, Path]:
    from interest.synthetic import generate

    generate(out / "synthetic", **SMALL)
    cli("etl", "--input", str(out / "synthetic"), "--format", "synthetic", "--output", str(out / "data"),
        "--config", "tiny-cpu", "--allow-insecure-demo-key", "--split", "time", "--cutoff", CUTOFF,
        "--horizon-days", str(HORIZON))
    cli("train", "--data", str(out / "data"), "--output", str(out / "run"), "--config", "tiny-cpu", "--epochs", "1")
    return resolve_data_dir(out / "data"), out / "run"


def scaled(data: Path, run: Path, users: int, out: Path) -> Path:
    """A copy of data/ whose test and decay_test splits hold `users` users, and a run reading it."""
    dst = out / f"data_{users}"
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    for name in COPY:
        (shutil.copytree if (data / name).is_dir() else shutil.copy2)(data / name, dst / name)
    total = sum(pq.read_metadata(f).num_rows for f in (data / "test").glob("*.parquet"))
    reps = math.ceil(users / total)
    for split in ("test", "decay_test"):
        (dst / split).mkdir()
        for f in sorted((data / split).glob("*.parquet")):
            t = pq.read_table(f)
            copies = [t.set_column(0, "user_id", pc.binary_join_element_wise(t["user_id"], f"{r:06d}", "-"))
                      for r in range(reps)]
            big = pa.concat_tables(copies).sort_by("user_id")
            pq.write_table(big, dst / split / f.name, row_group_size=65_536)
    run_dst = out / f"run_{users}"
    shutil.rmtree(run_dst, ignore_errors=True)
    shutil.copytree(run / "model", run_dst / "model")
    meta = json.loads((run / "run.json").read_text()) | {"data_dir": str(dst)}
    (run_dst / "run.json").write_text(json.dumps(meta))
    return run_dst


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", nargs="+", type=int, default=[200_000, 1_000_000])
    p.add_argument("--out", default="/tmp/interest_export_bench")
    a = p.parse_args()
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    data, run = base_run(out)
    results = {}
    for n in a.users:
        r = scaled(data, run, n, out)
        wall = cli("export", "--run", str(r), "--output", str(out / f"export_{n}"))
        e = json.loads((out / f"export_{n}" / "export.json").read_text())
        t = e["timings"]
        results[n] = e | {"wall_s": wall}
        print(f"{e['profiles']:,} users: profiles {e['users_per_s']:,.0f} users/s ({t['profiles_s']:.0f}s), "
              f"re-engagement {e['reengage']:,} users in {t.get('reengage_s', 0):.0f}s, whole export "
              f"{e['profiles'] / wall:,.0f} users/s ({wall:.0f}s), driver peak RSS {e['driver_peak_rss_mb']:,.0f} MB ("
              + ", ".join(f"{k} {v:,.0f}" for k, v in e.get("driver_peak_rss_mb_by_stage", {}).items()) + ")",
              flush=True)
        shutil.rmtree(out / f"data_{n}", ignore_errors=True)  # disk: the next size starts from the small data
    if len(results) >= 2:
        lo, hi = min(results), max(results)
        rss = results[hi]["driver_peak_rss_mb"] / results[lo]["driver_peak_rss_mb"]
        speed = results[hi]["users_per_s"] / results[lo]["users_per_s"]
        print(f"driver peak RSS {hi:,} / {lo:,} users: {rss:.2f}x for {hi / lo:.0f}x the users; profiles users/s "
              f"ratio {speed:.2f}")
    (out / "export_bench.json").write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2,
                                                      default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
