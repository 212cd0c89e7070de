"""Quality with default settings on real public data: MovieLens-100K against its classical baselines.

MovieLens-100K is the public data set that reaches this machine (inside the recbole wheel, bench/public_data.py).
The bench runs the product's own commands with the `base` preset and no tuning:

    interest etl --format recbole --config base      (leave-one-out split)
    interest train --config base --model ARCH --set train.seed=S   (early stopping on validation NDCG@10)
    interest evaluate                                 (the test split, read once per run)

and prints test NDCG@10 / HR@10 under the `full` and `full_exclude_seen` protocols (docs/metrics.md) for each
model and seed, mean +- std over seeds, every baseline, the time to the best validation score and the training
targets per second (targets that carry a loss, per wall second of training).

    .venv/bin/python bench/quality_bench.py [--archs sasrec hstu gru vae] [--seeds 1 2 3] [--set key=value ...]
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

from product import cli as _cli  # noqa: E402
from public_data import ml100k  # noqa: E402

from interest_core.data_versions import resolve_data_dir  # noqa: E402

PROTOCOLS = ("full", "full_exclude_seen")


def train_targets(data: Path) -> int:
    """Targets that carry a loss in one pass over the train split (each training event but a user's first)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t = pq.read_table(data / "train", columns=["items", "first_target"])
    return int(pc.sum(pc.subtract(pc.list_value_length(t["items"]), t["first_target"])).as_py())


def ties_by_item_rank(src: Path, out: Path) -> Path:
    """A copy of ml-100k whose .inter file lists each user's equal-timestamp rows by item frequency rank (most
    frequent first, ties by id as strings), file order otherwise kept: what the ETL made of ties before they
    kept the input's order (the item index was the frequency rank, and ties were sorted by it)."""
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    inter = pd.read_csv(src / "ml-100k.inter", sep="\t", dtype=str)
    user, item, ts = inter.columns[0], inter.columns[1], inter.columns[3]
    counts = inter[item].value_counts()
    rank = {it: r for r, it in enumerate(sorted(counts.index, key=lambda i: (-counts[i], i)))}
    inter["_pos"] = range(len(inter))
    first = inter.groupby([user, ts])["_pos"].transform("min")  # a tie group stays where it started
    inter["_rank"] = inter[item].map(rank)
    inter = inter.sort_values(["_pos"]).assign(_group=first).sort_values(["_group", "_rank"], kind="stable")
    inter.drop(columns=["_pos", "_rank", "_group"]).to_csv(out / "ml-100k.inter", sep="\t", index=False)
    shutil.copy2(src / "ml-100k.item", out / "ml-100k.item")
    return out


def _mean_std(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.4f} +- {statistics.stdev(xs):.4f}" if len(xs) > 1 else f"{xs[0]:.4f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", nargs="+", default=["sasrec", "hstu"], choices=["sasrec", "hstu", "gru", "vae"])
    p.add_argument("--seeds", nargs="+", type=int, default=[42])
    p.add_argument("--out", default="/tmp/interest_quality")
    p.add_argument("--config", default="base", help="preset under test (the defaults: base)")
    p.add_argument("--set", action="append", default=[], dest="overrides", help="ablations only, e.g. data.stride=50")
    p.add_argument("--ties-by-item-rank", action="store_true",
                   help="ablation only: reorder each user's equal-timestamp ratings in the input by item frequency "
                        "rank (the order the ETL used before it kept the input's order)")
    a = p.parse_args()
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    src = ml100k()
    if a.ties_by_item_rank:
        src = ties_by_item_rank(src, out / "ties_by_rank")
    data = out / "data"
    data_sets = [x for o in a.overrides if o.startswith("data.") for x in ("--set", o)]
    train_sets = [x for o in a.overrides if not o.startswith("data.") for x in ("--set", o)]
    etl_s = _cli("etl", "--input", str(src / "ml-100k.inter"), "--items", str(src / "ml-100k.item"),
                 "--format", "recbole", "--output", str(data), "--config", a.config, "--allow-insecure-demo-key",
                 *data_sets)
    targets = train_targets(resolve_data_dir(data))
    print(f"ml-100k: etl {etl_s:.0f}s; {targets} training targets per epoch", flush=True)
    summary = {"dataset": "ml-100k", "config": a.config, "overrides": a.overrides, "etl_s": etl_s,
               "train_targets": targets, "models": {}}
    for arch in a.archs:
        rows = []
        for seed in a.seeds:
            run = out / f"run_{arch}_{seed}"
            train_s = _cli("train", "--data", str(data), "--output", str(run), "--config", a.config, "--model", arch,
                           "--set", f"train.seed={seed}", *train_sets)
            _cli("evaluate", "--run", str(run))
            metrics = json.loads((run / "metrics.json").read_text())
            info = json.loads((run / "run.json").read_text())
            history = json.loads((run / "history.json").read_text())
            best = next(h for h in history if h["step"] == info["best_step"])
            row = {"seed": seed, "train_s": train_s, "best_step": info["best_step"], "best_epoch": info["best_epoch"],
                   "steps_run": info["steps_run"], "to_best_s": best["wall_s"],
                   "targets_per_s": targets * info["epochs_run"] / max(history[-1]["wall_s"], 1e-9),
                   "valid": info["best_valid_score"],
                   "test": {pr: {k: metrics["test"][pr][k] for k in ("ndcg@10", "hr@10")} for pr in PROTOCOLS},
                   "baselines": {b: {pr: {k: v[pr][k] for k in ("ndcg@10", "hr@10")} for pr in PROTOCOLS}
                                 for b, v in metrics["baselines"].items()}}
            rows.append(row)
            t = row["test"]["full"]
            print(f"ml-100k {arch:6s} seed {seed}: valid NDCG@10 {row['valid']:.4f} | test full NDCG@10 "
                  f"{t['ndcg@10']:.4f} HR@10 {t['hr@10']:.4f} | exclude-seen NDCG@10 "
                  f"{row['test']['full_exclude_seen']['ndcg@10']:.4f} | best at step {row['best_step']} (epoch "
                  f"{row['best_epoch']:.1f}) after {row['to_best_s']:.0f}s, {row['targets_per_s']:.0f} targets/s, "
                  f"train {train_s:.0f}s", flush=True)
        summary["models"][arch] = rows
        for pr in PROTOCOLS:
            nd = [r["test"][pr]["ndcg@10"] for r in rows]
            hr = [r["test"][pr]["hr@10"] for r in rows]
            print(f"ml-100k {arch:6s} {pr:17s}: test NDCG@10 {_mean_std(nd)} HR@10 {_mean_std(hr)} "
                  f"({len(rows)} seeds)", flush=True)
    base = next(iter(summary["models"].values()))[0]["baselines"]
    for b, v in base.items():
        print(f"ml-100k baseline {b:20s}: " + " | ".join(
            f"{pr} NDCG@10 {v[pr]['ndcg@10']:.4f} HR@10 {v[pr]['hr@10']:.4f}" for pr in PROTOCOLS), flush=True)
    (out / "quality.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
