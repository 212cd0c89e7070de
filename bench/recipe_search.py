"""Recipe choices on the VALIDATION split only: train each variant with `interest train` on the same shards and
print its best validation score (the test split is never read here).

    .venv/bin/python bench/recipe_search.py --data /tmp/interest_quality/data --model sasrec \
        --variant base= --variant dropout5=model.dropout=0.5 --variant ffn4=model.ffn_mult=4,model.ffn_activation=gelu

Each --variant is NAME=key=value,key=value (empty after NAME= for the defaults). Prints one line per variant:
best validation eval.select, the step and epoch it was reached at, steps run and wall seconds.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="ETL output directory")
    p.add_argument("--model", default="sasrec", choices=["sasrec", "hstu", "gru", "vae"])
    p.add_argument("--config", default="base")
    p.add_argument("--out", default="/tmp/interest_recipes")
    p.add_argument("--variant", action="append", required=True, help="NAME=key=value,key=value")
    a = p.parse_args()
    interest = Path(sys.executable).parent / "interest"
    for spec in a.variant:
        name, _, sets = spec.partition("=")
        overrides = [x for kv in sets.split(",") if kv for x in ("--set", kv)]
        run = Path(a.out) / f"{a.model}_{name}"
        t0 = time.time()
        subprocess.run([str(interest), "train", "--data", a.data, "--output", str(run), "--config", a.config,
                        "--model", a.model, *overrides], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        info = json.loads((run / "run.json").read_text())
        print(f"{a.model} {name:14s} valid {info['selection']['metric']} {info['best_valid_score']:.4f} at step "
              f"{info['best_step']} (epoch {info['best_epoch']:.1f}); {info['steps_run']} steps, "
              f"{time.time() - t0:.0f}s  [{sets}]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
