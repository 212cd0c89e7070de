"""Interest decay against its classical baselines: P(active again within H days after the cutoff).

Runs the product's own commands with a time split on
  * synthetic data (the generator's planted churn hazard: after each session a user leaves with probability
    churn_base_hazard * exp(-churn_buy_decay * purchases so far));
  * CDNOW (the purchase log inside the lifetimes wheel, one event per customer-day, bench/public_data.py;
    calibration 1997-01-01 .. 1998-03-31 for the model's input, holdout (1998-03-31, +90 days] for the labels):

    interest etl --split time --cutoff C --horizon-days H    (training ends at C - H; validation labels on
                                                             (C - H, C], test labels on (C, C + H])
    interest train --config CONFIG                           (the survival head trains with next-item)
    interest evaluate                                        (metrics.json["decay"])

and prints the head's AUC / Brier / ECE beside recency, frequency and BG/NBD (README: Interest decay); on synthetic
data also the Bayes-optimal prediction from the generator's own process and parameters (bench/decay_oracle.py), the
ceiling of any predictor there.

    .venv/bin/python bench/decay_bench.py [--data synthetic cdnow] [--seeds 42] [--set key=value ...]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from decay_oracle import bayes_oracle  # noqa: E402
from product import (SYNTHETIC, SYNTHETIC_CUTOFF, SYNTHETIC_HORIZON_DAYS, cli,  # noqa: E402
                     train_and_evaluate)
from public_data import cdnow  # noqa: E402

# name -> (input, format, cutoff, horizon days, preset)
DATASETS = {
    "synthetic": (None, "synthetic", SYNTHETIC_CUTOFF, SYNTHETIC_HORIZON_DAYS, "tiny-cpu"),
    "cdnow": (None, "generic", "1998-03-31", 90, "base"),
}


def _input(name: str, out: Path) -> Path:
    if name == "cdnow":
        return cdnow()
    from interest.synthetic import generate

    generate(out / "synthetic", **SYNTHETIC)
    return out / "synthetic"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--seeds", nargs="+", type=int, default=[42])
    p.add_argument("--out", default="/tmp/interest_decay")
    p.add_argument("--set", action="append", default=[], dest="overrides", help="e.g. model.decay_loss_weight=0.5")
    a = p.parse_args()
    out_root = Path(a.out)
    summary = {}
    for name in a.data:
        _, fmt, cutoff, horizon, preset = DATASETS[name]
        out = out_root / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        src = _input(name, out)
        data_sets = [x for o in a.overrides if o.startswith("data.") for x in ("--set", o)]
        train_sets = [x for o in a.overrides if not o.startswith("data.") for x in ("--set", o)]
        etl_s = cli("etl", "--input", str(src), "--format", fmt, "--output", str(out / "data"), "--config", preset,
                     "--allow-insecure-demo-key", "--split", "time", "--cutoff", cutoff, "--horizon-days",
                     str(horizon), *data_sets)
        rows = []
        for seed in a.seeds:
            run = out / f"run_{seed}"
            metrics, train_s = train_and_evaluate(out / "data", run, "--config", preset, "--set",
                                                  f"train.seed={seed}", *train_sets)
            d = metrics["decay"]
            rows.append(d)
            base = d["baselines"]
            print(f"{name} seed {seed}: P(active within {horizon} d) for {d['n_users']} users "
                  f"({d['positive_rate']:.1%} active) | model AUC {d['auc']:.4f} Brier {d['brier']:.4f} "
                  f"ECE {d['ece']:.4f} | " + " | ".join(f"{b} AUC {v['auc']:.4f} Brier {v['brier']:.4f}"
                                                        for b, v in base.items())
                  + f" | etl {etl_s:.0f}s train {train_s:.0f}s", flush=True)
        best_auc = max(v["auc"] for v in rows[0]["baselines"].values())
        best_brier = min(v["brier"] for v in rows[0]["baselines"].values())
        mean = {k: statistics.mean(r[k] for r in rows) for k in ("auc", "brier", "ece")}
        print(f"{name}: model AUC {mean['auc']:.4f} (best baseline {best_auc:.4f}, +{mean['auc'] - best_auc:.4f}) "
              f"Brier {mean['brier']:.4f} (best baseline {best_brier:.4f}) ECE {mean['ece']:.4f} "
              f"({len(rows)} seeds)", flush=True)
        summary[name] = {"cutoff": cutoff, "horizon_days": horizon, "config": preset, "runs": rows}
        if name == "synthetic":
            ceiling = bayes_oracle(src, cutoff, horizon)
            print(f"{name}: Bayes-optimal (the generator's process and parameters) AUC {ceiling['auc']:.4f} Brier "
                  f"{ceiling['brier']:.4f} for {ceiling['n_users']} users (best baseline + 0.03 = "
                  f"{best_auc + 0.03:.4f})", flush=True)
            summary[name]["bayes_optimal"] = ceiling
    (out_root / "decay.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
