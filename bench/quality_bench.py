"""Quality with default settings on real public data (issue 4, item 6).

MovieLens-100K is the public data set that reaches this machine (inside the recbole wheel, bench/public_data.py).
The bench runs the product's own commands with the `base` preset and no tuning:

    interest etl --format recbole --config base      (leave-one-out split)
    interest train --config base --model ARCH         (early stopping on validation NDCG@10)
    interest evaluate

and prints test NDCG@10 / HR@10 under the `full` and `full_exclude_seen` protocols (README: Metrics) for each
model and each baseline, plus model / best baseline.

    .venv/bin/python bench/quality_bench.py [--archs sasrec hstu] [--out /tmp/interest_quality]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from public_data import ml100k  # noqa: E402

PROTOCOLS = ("full", "full_exclude_seen")


def _cli(*args: str) -> float:
    t0 = time.time()
    subprocess.run([str(Path(sys.executable).parent / "interest"), *args], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", nargs="+", default=["sasrec", "hstu"], choices=["sasrec", "hstu"])
    p.add_argument("--out", default="/tmp/interest_quality")
    p.add_argument("--config", default="base", help="preset under test (the defaults: base)")
    a = p.parse_args()
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    src = ml100k()
    data = out / "data"
    etl_s = _cli("etl", "--input", str(src / "ml-100k.inter"), "--items", str(src / "ml-100k.item"),
                 "--format", "recbole", "--output", str(data), "--config", a.config, "--allow-insecure-demo-key")
    print(f"ml-100k: etl {etl_s:.0f}s", flush=True)
    summary = {"dataset": "ml-100k", "config": a.config, "etl_s": etl_s, "models": {}}
    for arch in a.archs:
        run = out / f"run_{arch}"
        train_s = _cli("train", "--data", str(data), "--output", str(run), "--config", a.config, "--model", arch)
        _cli("evaluate", "--run", str(run))
        metrics = json.loads((run / "metrics.json").read_text())
        info = json.loads((run / "run.json").read_text())
        row = {"train_s": train_s, "epochs_run": info["epochs_run"], "best_epoch": info["best_epoch"],
               "test": {pr: {k: metrics["test"][pr][k] for k in ("ndcg@10", "hr@10")} for pr in PROTOCOLS},
               "baselines": {b: {pr: {k: v[pr][k] for k in ("ndcg@10", "hr@10")} for pr in PROTOCOLS}
                             for b, v in metrics["baselines"].items()}}
        summary["models"][arch] = row
        for pr in PROTOCOLS:
            best_b = max(row["baselines"], key=lambda b: row["baselines"][b][pr]["ndcg@10"])
            m, b = row["test"][pr], row["baselines"][best_b][pr]
            print(f"ml-100k {arch:6s} {pr:17s}: test NDCG@10 {m['ndcg@10']:.4f} HR@10 {m['hr@10']:.4f} | best "
                  f"baseline {best_b} NDCG@10 {b['ndcg@10']:.4f} HR@10 {b['hr@10']:.4f} | model/baseline "
                  f"NDCG@10 {m['ndcg@10'] / max(b['ndcg@10'], 1e-12):.2f}x "
                  f"({info['epochs_run']} epochs, best {info['best_epoch']}, train {train_s:.0f}s)", flush=True)
    (out / "quality.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
