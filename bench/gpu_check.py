"""A five-minute check of the GPU path on one GPU, with nothing installed beyond `make install` (and torch's CUDA build,
README: Install). It trains `base`, and `large` at the largest catalog the planner fits on the card, through the
product's own `interest train` (Ray Train + DeepSpeed: NCCL, bf16, one rank) on data `interest generate` makes, and
prints each beside `interest plan`'s prediction for the same config; the base run is repeated on the CPU.

    .venv/bin/python bench/gpu_check.py                                   # about 5 minutes on an H100
    .venv/bin/python bench/gpu_check.py --budget-s 600 --workdir /tmp/gc --require-gpu

Per config it prints: the path used (the worker's device, process-group backend, ranks, bf16 and the weights' dtype,
recorded by the trainer in history.json); training tokens/s (sequences x max_len, the positions the planner counts)
and targets/s (positions that carry a loss), over the longest validation window after the first (no build, no
warm-up); the peak GPU memory (torch.cuda.max_memory_allocated of the worker's training windows, the build included)
beside the planner's memory per rank, as planned / measured; MFU = tokens/s x the planner's FLOPs per token / the
card's dense bf16 peak; the final validation NDCG@10, and base's beside the same run on the CPU (fp32, gloo).
Without a GPU it says so at once and exits 0, or 2 with --require-gpu. A stage that fails or outlasts --budget-s
is reported with its log, and the other configs still run. Exit 1 when any stage failed or the GPU path was not used.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from platform_table import H100_BF16_TFLOPS  # noqa: E402

PRESETS = ("base", "large")
# `interest generate` per preset: base's small catalog keeps its CPU run short; large's catalog is chosen per card
DATA = {"base": {"users": 4000, "items": 5000, "days": 60, "events": 400_000, "seed": 7},
        "large": {"users": 4000, "days": 60, "events": 1_000_000, "seed": 7}}
LARGE_ITEMS = (100_000, 50_000, 20_000, 10_000, 5_000)  # tried largest first: the first the planner fits
# large's 64 files and 400 shuffle partitions are sized for billions of events; they only cost time here
ETL_SETS = {"base": [], "large": ["data.num_files=8", "data.shuffle_partitions=16"]}
VALID_USERS = 1000  # eval.max_valid_users: validation stays a few seconds (ZeRO-3 scores on a CPU copy)
# dense bf16 tensor-core peaks (TFLOPs) by device name, the most specific first; another card needs --peak-tflops
PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", H100_BF16_TFLOPS), ("GH200", 989.0),
               ("H200", 989.0), ("A100", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0))
INTEREST = str(Path(sys.executable).parent / "interest")


class StageFailed(RuntimeError):
    """A stage that failed or ran out of budget; the message names it, why, and its log."""


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def _steps(text: str) -> int:
    value = int(text)
    if value < 2 or value % 2:
        raise argparse.ArgumentTypeError(f"must be an even number >= 2 (validated at the half and at the end), "
                                         f"got {text}")
    return value


def _items(text: str) -> int:
    value = int(text)
    if value < 100:
        raise argparse.ArgumentTypeError(f"must be >= 100 items, got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench/gpu_check.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--workdir", default="/tmp/interest_gpu_check",
                    help="generated data, shards, runs and logs; data and shards are reused by a rerun, e.g. "
                         "--workdir /tmp/gc (default %(default)s)")
    ap.add_argument("--budget-s", type=_positive(float), default=300.0,
                    help="wall-clock seconds for the whole check; a stage still running then is stopped and "
                         "reported, e.g. --budget-s 600 (default %(default)s)")
    ap.add_argument("--steps", type=_steps, default=200,
                    help="optimizer steps per training run (whole epochs when an epoch is shorter), e.g. --steps 400 "
                         "(default %(default)s)")
    ap.add_argument("--large-items", type=_items, default=None,
                    help="catalog of large's generated data (default: the largest of "
                         f"{', '.join(f'{n:,}' for n in LARGE_ITEMS)} that the planner fits on this card), e.g. "
                         "--large-items 20000")
    ap.add_argument("--peak-tflops", type=_positive(float), default=None,
                    help="the card's dense bf16 peak for MFU (default: known cards by name), e.g. --peak-tflops 989")
    ap.add_argument("--require-gpu", action="store_true",
                    help="exit 2 instead of 0 when there is no GPU, e.g. in a job that must measure one")
    return ap.parse_args(argv)


def find_gpu() -> tuple[dict | None, str]:
    """({name, mem_gib, torch, cuda}, "") for the first CUDA device, or (None, why there is none)."""
    import torch

    if torch.version.cuda is None:
        return None, (f"torch {torch.__version__} is a CPU build. On a machine with an NVIDIA GPU install torch's "
                      f"CUDA build first (README: Install, GPU cluster), then run this again")
    if not torch.cuda.is_available():
        return None, (f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device "
                      f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')!r}; is the driver "
                      f"loaded? nvidia-smi should list the GPU)")
    props = torch.cuda.get_device_properties(0)
    return {"name": props.name, "mem_gib": props.total_memory / 2**30, "torch": torch.__version__,
            "cuda": torch.version.cuda, "count": torch.cuda.device_count()}, ""


def peak_tflops(name: str) -> float | None:
    return next((t for key, t in PEAK_TFLOPS if key in name), None)


def large_catalog(card_gib: float) -> int | None:
    """The largest of LARGE_ITEMS at which `large` on one rank fits the card by the planner, None if none does."""
    from cluster.plan import plan
    from interest_core.config import load_config

    cfg = load_config("large", ["train.workers=1"])
    return next((n for n in LARGE_ITEMS if plan(cfg, n, gpus=1, gpu_mem_gib=card_gib)["memory_gib_per_rank"]["fits"]),
                None)


class Budget:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def _last_line(log: Path) -> str:
    lines = [x.strip() for x in log.read_text(errors="replace").splitlines() if x.strip()]
    return lines[-1][:300] if lines else "(no output)"


def _stop(p: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):  # the group has ended already
            os.killpg(p.pid, sig)
        try:
            p.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_stage(name: str, argv: list[str], log: Path, budget: Budget, env: dict | None = None) -> float:
    """Runs argv with its output in log; the seconds it took. StageFailed when it fails or outlasts the budget (its
    process group is sent SIGTERM, on which `interest train` stops its Ray instance, then SIGKILL)."""
    if budget.left() <= 0:
        raise StageFailed(f"{name}: not started, --budget-s is spent")
    t0 = time.monotonic()
    with log.open("w") as out:
        p = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            rc = p.wait(timeout=budget.left())
        except subprocess.TimeoutExpired:
            _stop(p)
            raise StageFailed(f"{name}: stopped at the --budget-s limit after {time.monotonic() - t0:.0f}s "
                              f"(log: {log})") from None
        except BaseException:  # Ctrl-C: the stage (its own session, which no terminal signal reaches) goes too
            _stop(p)
            raise
    if rc:
        raise StageFailed(f"{name}: exit {rc}: {_last_line(log)} (log: {log})")
    return time.monotonic() - t0


def make_data(work: Path, preset: str, items: int, budget: Budget) -> Path:
    """`interest generate` then `interest etl --config PRESET`; both are skipped when a rerun finds them done."""
    from interest_core.data_versions import current_version

    gen = DATA[preset] | {"items": items}
    synth = work / f"synth_{preset}_{gen['items']}_{gen['events']}"
    data = work / f"data_{preset}_{gen['items']}_{gen['events']}"
    if not (synth / "generator.json").exists():
        run_stage(f"generate {preset}", [INTEREST, "generate", "--out", str(synth),
                                         *[x for k, v in gen.items() for x in (f"--{k}", str(v))]],
                  work / "logs" / f"generate_{preset}.log", budget)
    if current_version(data) is None:
        run_stage(f"etl {preset}", [INTEREST, "etl", "--input", str(synth), "--format", "synthetic", "--output",
                                    str(data), "--config", preset, "--allow-insecure-demo-key",
                                    *[x for s in ETL_SETS[preset] for x in ("--set", s)]],
                  work / "logs" / f"etl_{preset}.log", budget)
    return data


def schedule(train_rows: int, preset: str, steps: int) -> list[str]:
    """`--set` overrides for a one-rank run of about `steps` optimizer steps, validated at the half and at the end:
    one capped epoch when an epoch is longer, else whole epochs (a capped epoch reads its other batches untrained)."""
    from interest_core.config import load_config
    from ray_train.loop import steps_per_epoch

    per_epoch, _ = steps_per_epoch(train_rows, 1, load_config(preset, ["train.workers=1"]))
    epochs, cap = (1, steps) if per_epoch >= steps else (-(-steps // per_epoch), per_epoch)
    return [f"train.epochs={epochs}", f"train.max_steps_per_epoch={cap}", f"train.val_every_steps={epochs * cap // 2}",
            f"eval.max_valid_users={VALID_USERS}"]


def train(work: Path, preset: str, data: Path, steps: int, budget: Budget, on_gpu: bool) -> dict:
    """`interest train --workers 1` on the GPU (Ray's own choice: it uses the GPU it finds) or on the CPU (no CUDA
    device visible); {"run": run.json, "history": history.json, "seconds"}."""
    from interest_core.contract import load_manifest
    from interest_core.data_versions import resolve_data_dir

    where = "gpu" if on_gpu else "cpu"
    run = work / f"run_{preset}_{where}"
    shutil.rmtree(run, ignore_errors=True)
    sets = schedule(load_manifest(resolve_data_dir(data))["rows"]["train"], preset, steps)
    env = None
    if not on_gpu:
        env = os.environ | {"CUDA_VISIBLE_DEVICES": ""}
        sets.append(f"train.cpus_per_worker={max(1, (os.cpu_count() or 2) // 2)}")
    secs = run_stage(f"train {preset} on the {where.upper()}",
                     [INTEREST, "train", "--data", str(data), "--output", str(run), "--config", preset, "--workers",
                      "1", *[x for s in sets for x in ("--set", s)]], work / "logs" / f"train_{preset}_{where}.log",
                     budget, env)
    return {"run": json.loads((run / "run.json").read_text()),
            "history": json.loads((run / "history.json").read_text()), "seconds": secs}


def path_problem(history: list[dict]) -> str | None:
    """Why a run was not on the GPU path (NCCL, one rank, bf16 weights), None when it was."""
    gpu = [h["gpu"] for h in history if "gpu" in h]
    if not gpu:
        return "trained on the CPU: the trainer recorded no GPU (did Ray see the GPU? see the train log)"
    g = gpu[-1]
    wrong = [f"{k}={g[k]!r}" for k, want in (("backend", "nccl"), ("world_size", 1), ("bf16", True),
                                              ("param_dtype", "bfloat16")) if g[k] != want]
    return f"not the expected GPU path: {', '.join(wrong)}" if wrong else None


def summarize(got: dict, targets_per_row: float, card_gib: float, tflops: float | None) -> dict:
    """One table row from a run's run.json and history.json, beside the planner's prediction for its config."""
    from cluster.plan import plan
    from interest_core.config import config_from_dict

    run, history = got["run"], got["history"]
    cfg = config_from_dict(run["config"])
    vocab = run["manifest"]["vocab"]
    gpu = [h["gpu"] for h in history if "gpu" in h]
    planned = plan(cfg, vocab["num_items"], vocab["num_event_types"], gpus=run["world_size"], gpu_mem_gib=card_gib,
                   gpu_tflops=tflops or H100_BF16_TFLOPS, bf16=bool(gpu))
    window = max(history[1:] or history, key=lambda h: h["sequences"])
    tokens = window["seq_per_s"] * cfg.data.max_len
    peak = max(g["peak_allocated_mib"] for g in gpu) / 1024 if gpu else None
    mem = planned["memory_gib_per_rank"]
    return {"catalog": vocab["num_items"], "steps": run["steps_run"], "seconds": got["seconds"],
            "path": f"{gpu[-1]['device']}, {gpu[-1]['backend']}, {gpu[-1]['world_size']} rank, "
                    f"{gpu[-1]['param_dtype']}" if gpu else "CPU", "problem": path_problem(history),
            "tokens_per_s": tokens, "targets_per_s": window["seq_per_s"] * targets_per_row,
            "peak_gib": peak, "plan_gib": mem["total"], "plan_phase": mem["peak_phase"], "plan_fits": mem["fits"],
            "plan_over_measured": mem["total"] / peak if peak else None,
            "mfu": tokens * planned["model"]["flops_per_token"] / (tflops * 1e12) if gpu and tflops else None,
            "ndcg10": history[-1]["valid"]["ndcg@10"]}


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(rows: dict[str, dict], cpu: dict | None) -> str:
    out = ["| config | catalog | path | steps (s) | tokens/s | targets/s | peak GPU GiB | planned GiB (phase) | "
           "planned / measured | MFU | valid NDCG@10 | on the CPU |", "|" + "---|" * 12]
    for preset, r in rows.items():
        on_cpu = f"{cpu['ndcg10']:.4f} ({r['ndcg10'] / cpu['ndcg10']:.2f}x)" if preset == "base" and cpu and \
            cpu["ndcg10"] else "-"
        out.append(f"| {preset} | {r['catalog']:,} | {r['path']} | {r['steps']} ({r['seconds']:.0f}) | "
                   f"{r['tokens_per_s']:,.0f} | {r['targets_per_s']:,.0f} | {_fmt(r['peak_gib'], '.2f')} | "
                   f"{r['plan_gib']:.2f} ({r['plan_phase']}) | {_fmt(r['plan_over_measured'], '.2f')} | "
                   f"{_fmt(r['mfu'], '.1%')} | {r['ndcg10']:.4f} | {on_cpu} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    gpu, why = find_gpu()
    if gpu is None:
        print(f"gpu_check: no GPU: {why}. Nothing was measured.", flush=True)
        return 2 if args.require_gpu else 0
    from quality_bench import train_targets

    from interest_core.data_versions import resolve_data_dir

    t0, budget, work = time.monotonic(), Budget(args.budget_s), Path(args.workdir)
    (work / "logs").mkdir(parents=True, exist_ok=True)
    tflops = args.peak_tflops or peak_tflops(gpu["name"])
    items = args.large_items or large_catalog(gpu["mem_gib"])
    print(f"gpu_check: {gpu['name']} ({gpu['mem_gib']:.1f} GiB; {gpu['count']} visible, one used), torch "
          f"{gpu['torch']}, CUDA {gpu['cuda']}; bf16 peak "
          f"{f'{tflops:.0f} TFLOPs' if tflops else 'unknown (give --peak-tflops for MFU)'}; budget "
          f"{args.budget_s:.0f}s, {args.steps} steps per run, workdir {work}", flush=True)
    failures: list[str] = []
    presets = [p for p in PRESETS if p != "large" or items]
    if not items:
        failures.append("large: fits this card at none of the catalogs tried (`interest plan --config large "
                        "--gpus 1` says what would)")
    with ThreadPoolExecutor(len(presets)) as pool:  # the two data sets are made side by side
        made = {p: pool.submit(make_data, work, p, DATA[p].get("items", items), budget) for p in presets}
    data: dict[str, Path] = {}
    for p, fut in made.items():
        try:
            data[p] = fut.result()
        except StageFailed as exc:
            failures.append(str(exc))
    runs: dict[str, dict] = {}
    for p, on_gpu in [(p, True) for p in presets] + [("base", False)]:
        if p not in data:
            continue
        try:
            got = train(work, p, data[p], args.steps, budget, on_gpu)
        except StageFailed as exc:
            failures.append(str(exc))
            continue
        version = resolve_data_dir(data[p])
        row = summarize(got, train_targets(version) / got["run"]["manifest"]["rows"]["train"], gpu["mem_gib"], tflops)
        runs[f"{p}_{'gpu' if on_gpu else 'cpu'}"] = row
        print(f"gpu_check: {p} on the {'GPU' if on_gpu else 'CPU'}: {row['steps']} steps in {row['seconds']:.0f}s, "
              f"valid NDCG@10 {row['ndcg10']:.4f}", flush=True)
        if on_gpu and row["problem"]:
            failures.append(f"{p}: {row['problem']}")
    print(table({p: runs[f"{p}_gpu"] for p in presets if f"{p}_gpu" in runs}, runs.get("base_cpu")))
    for f in failures:
        print(f"gpu_check: FAILED {f}", flush=True)
    (work / "gpu_check.json").write_text(json.dumps({"gpu": gpu, "peak_tflops": tflops, "runs": runs,
                                                     "failures": failures}, indent=2))
    print(f"gpu_check: {time.monotonic() - t0:.0f}s; results in {work / 'gpu_check.json'}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
