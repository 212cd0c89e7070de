"""The capacity planner against measurement: `interest plan`'s memory per worker and step time for real DeepSpeed
training on the CPU (2 ranks, gloo, fp32) at ZeRO 0-3 and 2-3 model sizes, with DeepSpeed's own model-state
estimators in the same table; and the planner's ETL time against ETL runs at two sizes.

    .venv/bin/python bench/plan_vs_measured.py                        # sizes S, M; ZeRO 0-3; ETL at 1M and 2M
    .venv/bin/python bench/plan_vs_measured.py --sizes S --stages 0 3 --no-etl --steps 3   # quick look

Memory: each rank's peak resident set during the steps minus its resident set as an idle worker: one that has
already built a DeepSpeed engine for a tiny model (1,000 items) and trained it two steps, i.e. with the runtime in
place (imports, process group, DeepSpeed's shared-memory all-reduce workspace, thread pools, warm allocator) and no
model; the peak is read from VmHWM after resetting it (/proc/self/clear_refs). Nothing is fitted to the measurement.
Predicted: plan(..., bf16=False) (fp32 on the CPU), whose phase-by-phase model is in cluster/memory_model.py.
DeepSpeed's estimators count model states for GPU mixed precision and are printed beside them as they are. Step
time: the planner's FLOP count at an effective FLOP rate calibrated on the first (size, stage) row, then predicted
for the others.
ETL: the calibration (bench/etl_bench.py's) of the smaller run predicts the larger run's wall time on this
machine's cores (cluster/etl_plan.py's linear rule); the target is +-30%.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

# model sizes: config overrides of the base preset (the item table dominates, as in production catalogs)
SIZES = {"S": ["model.dim=64", "model.n_layers=2", "model.n_heads=2"],
         "M": ["model.dim=128", "model.n_layers=4", "model.n_heads=4"],
         "L": ["model.dim=256", "model.n_layers=4", "model.n_heads=4"]}
NUM_ITEMS = 400_000
NUM_EVENT_TYPES = 5
MIB = 2 ** 20


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def _train(engine, batch, steps: int) -> list[float]:
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss, _ = engine(batch)
        engine.backward(loss)
        engine.step()
        times.append(time.perf_counter() - t0)
    return times


def _batch(cfg, num_items: int, seed: int) -> dict:
    import numpy as np

    from interest_core.batches import collate

    rng = np.random.default_rng(seed)
    b, length = cfg.train.micro_batch_size, cfg.data.max_len + 1
    rows = {"items": [rng.integers(2, num_items, length).tolist() for _ in range(b)],
            "event_types": [rng.integers(1, NUM_EVENT_TYPES, length).tolist() for _ in range(b)],
            "ts": [np.cumsum(rng.integers(1, 3600, length)).tolist() for _ in range(b)]}
    return collate(rows, cfg.data.max_len, targets=True)


def _overrides(size: str, stage: int, micro_batch: int) -> list[str]:
    return SIZES[size] + [f"train.zero_stage={stage}", f"train.micro_batch_size={micro_batch}", "train.workers=2"]


def _rank(rank: int, world: int, port: int, overrides: list[str], steps: int, queue) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "DS_ACCELERATOR": "cpu"})
    devnull = os.open(os.devnull, os.O_WRONLY)  # DeepSpeed's build and accelerator lines: the table stays readable
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    import gc

    import torch
    import torch.distributed as dist

    from interest_core.config import load_config
    from interest_core.modelargs import model_args
    from ray_train.engine import build_engine, ensure_accelerator_env
    from ray_train.models import build_model

    ensure_accelerator_env()
    import deepspeed

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    deepspeed.init_distributed(dist_backend="gloo")
    cfg = load_config("base", overrides)
    warm, _ = build_engine(build_model(model_args(cfg, 1000, NUM_EVENT_TYPES, cfg.data.max_len)), cfg.train, world, 2)
    _train(warm, _batch(cfg, 1000, rank), 2)  # the idle worker: runtime in place, no model
    del warm
    gc.collect()
    batch = _batch(cfg, NUM_ITEMS, rank)
    idle = _status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    torch.manual_seed(0)
    engine, _ = build_engine(build_model(model_args(cfg, NUM_ITEMS, NUM_EVENT_TYPES, cfg.data.max_len)), cfg.train,
                             world, steps)
    times = _train(engine, batch, steps)
    queue.put({"rank": rank, "idle_mb": idle, "peak_mb": _status_mb("VmHWM"),
               "step_s": sorted(times[1:])[len(times[1:]) // 2]})
    dist.barrier()
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure_training(size: str, stage: int, micro_batch: int, steps: int) -> dict:
    ctx = mp.get_context("spawn")
    queue, port = ctx.Queue(), _free_port()
    procs = [ctx.Process(target=_rank, args=(r, 2, port, _overrides(size, stage, micro_batch), steps, queue))
             for r in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join(timeout=120)
        if p.exitcode != 0:
            raise RuntimeError(f"rank process exited with {p.exitcode} ({size}, ZeRO-{stage})")
    above_idle = max(r["peak_mb"] - r["idle_mb"] for r in results)
    return {"measured_mb": above_idle, "step_s": max(r["step_s"] for r in results), "ranks": results}


def predicted(size: str, stage: int, micro_batch: int) -> dict:
    from cluster.plan import plan
    from interest_core.config import load_config
    from interest_core.modelargs import model_args

    cfg = load_config("base", _overrides(size, stage, micro_batch))
    r = plan(cfg, NUM_ITEMS, NUM_EVENT_TYPES, gpus=2, bf16=False)
    return {"plan_mb": r["memory_gib_per_rank"]["total"] * 1024, "params": r["model"]["params"],
            "phase": r["memory_gib_per_rank"]["peak_phase"],
            "flops_step": r["model"]["flops_per_token"] * micro_batch * cfg.data.max_len,
            "largest_layer": model_args(cfg, NUM_ITEMS, NUM_EVENT_TYPES, cfg.data.max_len).dim * NUM_ITEMS}


def deepspeed_estimate_mb(stage: int, params: int, largest_layer: int) -> float | None:
    """DeepSpeed's model-state estimate per GPU for 2 GPUs, no offload (mixed precision, as it assumes)."""
    if stage == 3:
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

        return estimate_zero3_model_states_mem_needs(params, largest_layer, 2, 1, cpu_offload=False)[1] / MIB
    if stage in (1, 2):
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

        return estimate_zero2_model_states_mem_needs(params, 2, 1, cpu_offload=False)[1] / MIB
    return None


def etl_rows(sizes: list[int], workdir: Path) -> list[str]:
    from etl_bench import calibration, etl_cmd, manifest, shards, synth, timed

    from cluster.etl_plan import plan_etl

    runs = {}
    for n in sizes:
        data = synth(workdir, n)
        wall, peaks = timed(etl_cmd(data, workdir / f"etl_{n}", "base"), workdir / f"eventlog_{n}")
        m = manifest(workdir / f"etl_{n}")
        runs[n] = {"events": n, "etl_s": wall, "cores": os.cpu_count(), "stage_seconds": m["stage_seconds"],
                   "shuffle_partitions": m["config"]["data"]["shuffle_partitions"],
                   "num_files": m["config"]["data"]["num_files"],
                   "spark_driver_memory": m["config"]["data"]["spark_driver_memory"], "rows": m["rows"],
                   "shards": shards(workdir / f"etl_{n}"),
                   "input_bytes": sum(f.stat().st_size for f in (data / "events").rglob("*.parquet")), **peaks}
    small, big = sizes[0], sizes[-1]
    cal = calibration(runs[small])
    p = plan_etl(big, 8, cal, executors=1, executor_cores=os.cpu_count())
    # the planner predicts the ETL's stage time (stage_seconds); the whole process adds JVM start and setup
    measured_stages = sum(runs[big]["stage_seconds"].values())
    return [f"| ETL {big:,} events (calibrated on {small:,}) | {p['hours'] * 3600:.0f} s | {measured_stages:.0f} s "
            f"(whole process {runs[big]['etl_s']:.0f} s) | {p['hours'] * 3600 / measured_stages:.2f} |"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["S", "M"], choices=sorted(SIZES))
    ap.add_argument("--stages", nargs="+", type=int, default=[0, 1, 2, 3])
    ap.add_argument("--micro-batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--no-etl", action="store_true")
    ap.add_argument("--no-train", action="store_true", help="the ETL half only")
    ap.add_argument("--etl-events", nargs=2, type=int, default=[1_000_000, 2_000_000])
    ap.add_argument("--workdir", default="/tmp/interest_plan_vs_measured")
    args = ap.parse_args()
    if not args.no_train:
        print("| size | ZeRO | params | planned MB/rank (peak phase) | measured MB/rank (peak - idle) | planned / "
              "measured | DeepSpeed estimate MB/GPU | step s measured | step s predicted |")
        print("|---|---|---|---|---|---|---|---|---|")
    rate = None
    results = []
    for size in [] if args.no_train else args.sizes:
        for stage in args.stages:
            pred, got = predicted(size, stage, args.micro_batch), measure_training(size, stage, args.micro_batch,
                                                                                   args.steps)
            rate = rate or pred["flops_step"] / got["step_s"]  # calibrated on the first row
            ds = deepspeed_estimate_mb(stage, pred["params"], pred["largest_layer"])
            results.append({"size": size, "stage": stage, **pred, **got})
            print(f"| {size} | {stage} | {pred['params'] / 1e6:.1f}M | {pred['plan_mb']:.0f} ({pred['phase']}) | "
                  f"{got['measured_mb']:.0f} | {pred['plan_mb'] / got['measured_mb']:.2f} | "
                  f"{'-' if ds is None else f'{ds:.0f}'} | "
                  f"{got['step_s']:.3f} | {pred['flops_step'] / rate:.3f} |", flush=True)
    if not args.no_etl:
        print("\n| ETL | predicted | measured | predicted / measured |\n|---|---|---|---|")
        for line in etl_rows(args.etl_events, Path(args.workdir)):
            print(line, flush=True)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    (Path(args.workdir) / "plan_vs_measured.json").write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
