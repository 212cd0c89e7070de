"""The README's table for the platform team: the base and large presets on 8, 16 and 64 H100 80GB GPUs (memory per
GPU, step and epoch time at a stated MFU) and the ETL's executors and hours for 1B and 10B events, all from
`interest plan`'s own functions (cluster/plan.py, cluster/etl_plan.py with cluster/etl_calibration.json).

    .venv/bin/python bench/platform_table.py                 # Markdown on stdout
    .venv/bin/python bench/platform_table.py --mfu 0.2 --num-items 4000000

Training sequences per epoch come from the events through the measured run's train rows per event.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cluster.etl_plan import load_calibration, plan_etl  # noqa: E402
from cluster.plan import plan, suggest  # noqa: E402
from interest_core.config import load_config  # noqa: E402

H100_BF16_TFLOPS = 989.0  # dense bf16 peak of an H100 SXM
H100_MEM_GIB = 80.0


def _time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1000:.1f} ms"
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.1f} s"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mfu", type=float, default=0.3)
    ap.add_argument("--num-items", type=int, default=1_000_000)
    ap.add_argument("--executor-cores", type=int, default=8)
    ap.add_argument("--etl-hours", type=float, default=1.0)
    args = ap.parse_args()
    cal = load_calibration()
    rows_per_event = cal["train_rows_per_event"]
    print(f"Training at MFU {args.mfu:.0%} of {H100_BF16_TFLOPS:.0f} bf16 TFLOPs per H100 80GB, {args.num_items:,} "
          f"items; training sequences = events x {rows_per_event:.4f} (the measured run's train rows per event).\n")
    print("| preset | GPUs | ZeRO | params | memory/GPU (GiB) | step | epoch, 1B events | epoch, 10B events |")
    print("|---|---|---|---|---|---|---|---|")
    for preset in ("base", "large"):
        cfg = load_config(preset)
        for gpus in (8, 16, 64):
            kw = {"gpu_mem_gib": H100_MEM_GIB, "gpu_tflops": H100_BF16_TFLOPS, "mfu": args.mfu}
            r1 = plan(cfg, args.num_items, gpus=gpus, train_sequences=int(1e9 * rows_per_event), **kw)
            r10 = plan(cfg, args.num_items, gpus=gpus, train_sequences=int(1e10 * rows_per_event), **kw)
            fix = suggest(cfg, args.num_items, gpus=gpus, current=r1, **kw)
            mem = f"{r1['memory_gib_per_rank']['total']:.1f}" + ("" if fix is None else f" (fits with {fix['change']})")
            print(f"| {preset} | {gpus} | {cfg.train.zero_stage} | {r1['model']['params'] / 1e6:.0f}M | {mem} | "
                  f"{_time(r1['time']['seconds_per_step'])} | {_time(r1['time']['seconds_per_epoch'])} | "
                  f"{_time(r10['time']['seconds_per_epoch'])} |")
    print(f"\nETL ({args.executor_cores} cores per executor; executors for a {args.etl_hours:g} h target; calibrated on "
          f"{cal['measured']['events']:,} events on {cal['measured']['cores']} cores: {cal['measured']['command']}):\n")
    print("| events | input | shuffle | shards (files) | executors | executor memory | shuffle partitions | core-hours "
          "| hours |")
    print("|---|---|---|---|---|---|---|---|---|")
    for events in (1e9, 1e10):
        e = plan_etl(int(events), load_config("base").data.num_files, cal, executor_cores=args.executor_cores,
                     target_hours=args.etl_hours)
        b = e["bytes"]
        print(f"| {events:.0e} | {b['input_gib']:,.0f} GiB | {b['shuffle_gib']:,.0f} GiB | {b['shards_gib']:,.0f} GiB ({e['shards']['num_files']:,}) | "
              f"{e['executors']} | {e['executor_memory']} + {e['executor_memory_overhead']} | "
              f"{e['shuffle_partitions']:,} | {e['core_hours']:,.0f} | {e['hours']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
