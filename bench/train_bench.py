"""Trainer benchmark (issue 4). Prints ratios measured in the same run:

  1. full stack (Ray Train + Ray Data + DeepSpeed, 1 worker) training seq/s  /  a minimal plain-PyTorch
     single-process loop on the same model, micro batch and thread count            (target >= 0.8)
  2. Ray Data ingest rows/s for one worker (read_parquet -> iter_torch_batches with the trainer's collate)
     /  training consumption seq/s of the plain loop, at the tiny and base presets  (target >= 5)

    .venv/bin/python bench/train_bench.py [--events 300000] [--presets tiny-cpu base]

--fixed-cost instead times what every training pays besides its steps: one-step trainings of the tiny preset (2
workers, ZeRO-2) in one Ray instance, alternating the trainer as it is with the trainer as it was (train shards read
by Ray Data's tasks, Ray Train's 2 s controller poll), and prints the ratio of their medians:

    .venv/bin/python bench/train_bench.py --fixed-cost [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from interest_core.data_versions import current_version  # noqa: E402


def make_shards(root: Path, events: int, preset: str) -> Path:
    from interest.synthetic import generate

    synth = root / f"synth_{events}"
    if not (synth / "generator.json").exists():
        generate(synth, users=max(1000, events // 40), items=max(500, events // 150), days=60, events=events, seed=5)
    data = root / f"data_{events}_{preset}"
    if current_version(data) is None:
        subprocess.run([sys.executable, "-m", "spark_jobs.etl", "--input", str(synth), "--format", "synthetic",
                        "--output", str(data), "--config", preset, "--allow-insecure-demo-key"], check=True,
                       cwd=REPO, stdout=subprocess.DEVNULL)
    return current_version(data)


def plain_loop(data: Path, preset: str, steps: int, threads: int) -> float:
    """seq/s of a bare PyTorch loop: batches pre-collated in memory, AdamW, same model and micro batch."""
    import pyarrow.parquet as pq
    import torch

    from interest_core.batches import INPUT_COLUMNS, collate
    from interest_core.config import load_config
    from interest_core.contract import load_manifest, split_files
    from interest_core.modelargs import model_args_for_data
    from ray_train.models.model import InterestModel

    torch.set_num_threads(threads)
    cfg, manifest = load_config(preset), load_manifest(data)
    args = model_args_for_data(cfg, manifest)
    table = pq.ParquetDataset(split_files(data, "train")).read(columns=list(INPUT_COLUMNS))
    micro = cfg.train.micro_batch_size
    n = table.num_rows // micro
    batches = [collate(table.slice(i * micro, micro), args.max_len, targets=True) for i in range(n)]
    model = InterestModel(args).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for i in range(3):  # warm-up
        loss, _ = model(batches[i % n])
        loss.backward(), opt.step(), opt.zero_grad()
    t0 = time.perf_counter()
    for i in range(steps):
        loss, _ = model(batches[i % n])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        opt.zero_grad()
    return steps * micro / (time.perf_counter() - t0)


def ray_ingest(data: Path, preset: str, max_rows: int) -> float:
    """rows/s one consumer gets from Ray Data with the trainer's collate (no training)."""
    import ray

    from interest_core.config import load_config
    from ray_train.data import arrow_train_collate, train_dataset

    cfg = load_config(preset)
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        from interest_core.contract import load_manifest

        ds = train_dataset(data, cfg, load_manifest(data)["rows"]["train"], 1)  # what the trainer feeds its workers
        collate = arrow_train_collate(cfg.data.max_len)
        for _ in ds.iter_torch_batches(batch_size=cfg.train.micro_batch_size, collate_fn=collate):
            break  # warm-up: start the read tasks
        rows, t0 = 0, time.perf_counter()
        for epoch in range(100):
            for b in ds.iter_torch_batches(batch_size=cfg.train.micro_batch_size, collate_fn=collate,
                                           local_shuffle_buffer_size=4 * cfg.train.micro_batch_size,
                                           local_shuffle_seed=epoch):
                rows += b["items"].shape[0]
            if rows >= max_rows:
                break
        return rows / (time.perf_counter() - t0)
    finally:
        ray.shutdown()


def full_stack(data: Path, preset: str, out: Path, steps: int, zero_stage: int) -> float:
    """seq/s that `interest train` (1 worker, ZeRO-2, DeepSpeed CPU) reports for its second epoch."""
    subprocess.run([sys.executable, "-m", "ray_train.train", "--data", str(data), "--output", str(out),
                    "--config", preset, "--workers", "1", "--zero-stage", str(zero_stage), "--epochs", "2",
                    "--set", f"train.max_steps_per_epoch={steps}", "--set", "eval.max_valid_users=200",
                    "--set", "train.cpus_per_worker=1"],
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = json.loads((out / "history.json").read_text())
    return history[-1]["seq_per_s"]


def fixed_cost(root: Path, repeats: int) -> dict:
    """Median wall seconds of a one-step training, as the trainer is and as it was (module docstring)."""
    import ray

    from interest_core.config import load_config
    from ray_train import data as train_data
    from ray_train import train

    shards = make_shards(root, 15_000, "tiny-cpu")
    train.init_ray(load_config("tiny-cpu", ["train.ray_num_cpus=8"]), None)
    walls: dict[str, list[float]] = {"now": [], "before": []}
    try:
        for i in range(repeats):
            for variant in ("before", "now"):
                old = variant == "before"
                train_data.DRIVER_READ_MAX_MB = 0 if old else 64
                os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = "2.0" if old else "0.5"
                out = root / f"fixed_{variant}_{i}_{int(time.time())}"
                parser = argparse.ArgumentParser()
                train.add_arguments(parser)
                args = parser.parse_args(["--data", str(shards), "--output", str(out), "--config", "tiny-cpu",
                                          "--epochs", "1", "--set", "train.max_steps_per_epoch=1",
                                          "--set", "train.progress=lines"])
                t0 = time.perf_counter()
                train.run(args)
                walls[variant].append(time.perf_counter() - t0)
    finally:
        ray.shutdown()
    med = {k: sorted(v)[len(v) // 2] for k, v in walls.items()}
    print(f"one-step training, tiny preset, 2 workers: {med['now']:.1f} s now / {med['before']:.1f} s before = "
          f"{med['now'] / med['before']:.2f} (medians of {repeats}; each run: "
          f"{', '.join(f'{w:.1f}' for w in walls['now'])} / {', '.join(f'{w:.1f}' for w in walls['before'])})",
          flush=True)
    return {"walls_s": walls, "median_s": med, "ratio": med["now"] / med["before"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--presets", nargs="+", default=["tiny-cpu", "base"])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--zero-stage", type=int, default=2)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "interest_train_bench"))
    ap.add_argument("--fixed-cost", action="store_true", help="time a one-step training's fixed cost instead")
    ap.add_argument("--repeats", type=int, default=3, help="--fixed-cost: runs of each variant")
    args = ap.parse_args()
    root = Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    if args.fixed_cost:
        print(json.dumps(fixed_cost(root, args.repeats), indent=2))
        return 0
    report = {}
    for preset in args.presets:
        data = make_shards(root, args.events, preset)
        plain = plain_loop(data, preset, args.steps, threads=1)
        full = full_stack(data, preset, root / f"run_{preset}_{int(time.time())}", args.steps, args.zero_stage)
        ingest = ray_ingest(data, preset, max_rows=20_000)
        report[preset] = {"plain_seq_per_s": plain, "full_stack_seq_per_s": full, "ingest_rows_per_s": ingest,
                          "full_over_plain": full / plain, "ingest_over_consumption": ingest / plain}
        print(f"[{preset}, ZeRO-{args.zero_stage}] full stack {full:.0f} seq/s / plain loop {plain:.0f} seq/s = {full / plain:.2f} "
              f"(target >= 0.8); ingest {ingest:.0f} rows/s / consumption {plain:.0f} seq/s = "
              f"{ingest / plain:.1f} (target >= 5)", flush=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
