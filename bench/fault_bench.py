"""A worker killed mid-run: does the resumed run end where an uninterrupted one of the same seed does?

Runs the product's own commands on MovieLens-100K (from the recbole wheel) or the synthetic data set:

    interest etl ...
    interest train --data D --output clean ...                  (uninterrupted)
    interest train --data D --output killed ...                 (SIGKILL one of the 2 Ray Train workers once the run
                                                                 has validated --kill-after times)
    interest evaluate --run clean / --run killed

and prints each run's best validation score, test NDCG@10 and HR@10, the restarts seen, and the ratio killed /
clean (goal: within 2%). Ray Train restarts the worker group (train.max_failures, default 3), which resumes from the
latest complete checkpoint; the resumed data order is not bit-identical (Ray Data's streaming split), so the two
runs are compared on their final metrics, not their weights.

    .venv/bin/python bench/fault_bench.py [--dataset ml100k] [--seed 42] [--kill-after 3]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from product import SYNTHETIC, cli  # noqa: E402
from public_data import ml100k  # noqa: E402

from interest_core.data_versions import resolve_data_dir  # noqa: E402
from ray_train import checkpoints  # noqa: E402


def etl(dataset: str, out: Path) -> tuple[Path, str]:
    data = out / "data"
    if dataset == "synthetic":
        cli("generate", "--out", str(out / "synthetic"), *[x for k, v in SYNTHETIC.items() for x in (f"--{k}", str(v))])
        cli("etl", "--input", str(out / "synthetic"), "--format", "synthetic", "--output", str(data),
            "--config", "tiny-cpu", "--allow-insecure-demo-key")
        return resolve_data_dir(data), "tiny-cpu"
    src = ml100k()
    cli("etl", "--input", str(src / "ml-100k.inter"), "--items", str(src / "ml-100k.item"), "--format", "recbole",
        "--output", str(data), "--config", "base", "--allow-insecure-demo-key")
    return resolve_data_dir(data), "base"


def train(data: Path, run: Path, preset: str, args: list[str], kill_after: int | None) -> dict:
    """Trains, killing one worker once the run has validated kill_after times (None: never);
    {"seconds", "killed_at_step", "restarts"}."""
    cmd = [str(Path(sys.executable).parent / "interest"), "train", "--data", str(data), "--output", str(run),
           "--config", preset, "--workers", "2", *args]
    log = open(run.parent / f"{run.name}.log", "w")
    t0 = time.time()
    # unbuffered: the validation lines must reach the log as they happen, the kill waits for them
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                            env=os.environ | {"PYTHONUNBUFFERED": "1"})
    killed_at = None
    while proc.poll() is None:
        time.sleep(1)
        if kill_after is None or killed_at is not None:
            continue
        steps = [checkpoints.step_of(c) for c in checkpoints.complete_checkpoints(run)]
        validations = (run.parent / f"{run.name}.log").read_text().count(") validation:")
        if steps and validations >= kill_after:
            workers = [p for p in psutil.Process(proc.pid).children(recursive=True)
                       if "RayTrainWorker" in " ".join(_cmdline(p))]
            if len(workers) == 2:
                os.kill(workers[1].pid, signal.SIGKILL)
                killed_at = max(steps)
    log.close()
    if proc.returncode:
        raise RuntimeError(f"train failed ({proc.returncode}); see {log.name}")
    text = (run.parent / f"{run.name}.log").read_text()
    return {"seconds": time.time() - t0, "killed_at_step": killed_at,
            "restarts": text.count("resuming from checkpoint")}


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="ml100k", choices=["ml100k", "synthetic"])
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--kill-after", type=int, default=3, help="kill after this many validations (each checkpoints)")
    p.add_argument("--set", action="append", default=[], dest="overrides", help="training override, both runs")
    p.add_argument("--out", default="/tmp/interest_fault_bench")
    a = p.parse_args()
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    data, preset = etl(a.dataset, out)
    args = ["--set", f"train.seed={a.seed}", *[x for o in a.overrides for x in ("--set", o)]]
    results = {}
    for name, kill in (("clean", None), ("killed", a.kill_after)):
        run = out / name
        info = train(data, run, preset, args, kill)
        cli("evaluate", "--run", str(run))
        m = json.loads((run / "metrics.json").read_text())
        r = json.loads((run / "run.json").read_text())
        results[name] = info | {"best_valid": r["best_valid_score"], "steps_run": r["steps_run"],
                                "test_ndcg@10": m["test"]["full"]["ndcg@10"], "test_hr@10": m["test"]["full"]["hr@10"]}
        print(f"{name}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                      for k, v in results[name].items()), flush=True)
    c, k = results["clean"], results["killed"]
    for key in ("best_valid", "test_ndcg@10", "test_hr@10"):
        ratio = k[key] / c[key] if c[key] else float("nan")
        print(f"{key}: killed / clean = {ratio:.4f} ({'within' if abs(ratio - 1) <= 0.02 else 'OUTSIDE'} 2%)")
    (out / "fault_bench.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
