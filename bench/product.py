"""How a bench runs the product: `interest` subprocesses timed whole (output silenced), and the synthetic data set
with a time split that the decay and next-action benches share."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# `interest generate` arguments and the time split of the synthetic decay / next-action benches
SYNTHETIC = dict(users=4000, items=1500, days=120, events=200_000, seed=11, start="2024-01-01")
SYNTHETIC_CUTOFF, SYNTHETIC_HORIZON_DAYS = "2024-03-25", 30


def cli(*args: str) -> float:
    """Runs `interest ARGS...` from the repository; seconds it took (raises when it fails)."""
    t0 = time.time()
    subprocess.run([str(Path(sys.executable).parent / "interest"), *args], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - t0


def generated_input(out: Path, params: dict[str, str]) -> list[str]:
    """`interest generate --out OUT/synthetic` with params (flag -> value); the ETL's --input/--format for it."""
    synth = out / "synthetic"
    cli("generate", "--out", str(synth), *[x for k, v in params.items() for x in (f"--{k}", str(v))])
    return ["--input", str(synth), "--format", "synthetic"]


def train_and_evaluate(data: Path, run: Path, *train_args: str) -> tuple[dict, float]:
    """`interest train --data DATA --output RUN TRAIN_ARGS...` then `interest evaluate`: (metrics.json, train
    seconds)."""
    train_s = cli("train", "--data", str(data), "--output", str(run), *train_args)
    cli("evaluate", "--run", str(run))
    return json.loads((run / "metrics.json").read_text()), train_s
