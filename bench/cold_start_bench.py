"""Cold start and the content tower: zero-shot items on synthetic data and on MovieLens-100K, against baselines.

For each data set the bench runs the product's own commands:

    interest etl ... --cold-items 0.1              (a tenth of the items lose every training event)
    interest train ...                             (ID only)
    interest train ... --set model.item_features=[...]   (ID + content; the text cache is shared by the runs)
    interest train ... --set model.graph_hops=2          (ID + graph), and both
    interest evaluate --run BOTH --compare ID --compare CONTENT --compare GRAPH   (["cold_start"], ["ablation"])

and prints, per variant, test NDCG@10 over all users and HR@50 on the cold segments (cold_items: targets held out of
training, full ranking over all items; cold_users), beside the uniform random ranking, popularity, recent popularity
and the content-kNN baseline (cosine between an item's text embedding and the mean embedding of the user's
history). Targets (issue: cold start): synthetic cold items HR@50 >= 10x random and above recent popularity;
MovieLens-100K >= 3x random and above content kNN; ID + content + graph NDCG@10 >= ID only on both.

    .venv/bin/python bench/cold_start_bench.py [--datasets synthetic ml100k] [--seeds 42] [--cold-items 0.1]
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

from product import cli, generated_input  # noqa: E402
from public_data import ml100k_input  # noqa: E402

from interest_core.data_versions import resolve_data_dir  # noqa: E402

# data set -> (preset, the item features its catalog has)
DATASETS = {"synthetic": ("tiny-cpu", ("category", "brand", "price", "text")),
            "ml100k": ("base", ("category", "text"))}
SYNTHETIC = dict(users="3000", items="1500", events="150000", seed="7")
KEY = "hr@50"


def etl(name: str, out: Path, preset: str, cold: float) -> Path:
    data = out / "data"
    src = generated_input(out, SYNTHETIC) if name == "synthetic" else ml100k_input()
    cli("etl", *src, "--output", str(data), "--config", preset, "--allow-insecure-demo-key", "--cold-items", str(cold))
    return resolve_data_dir(data)


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--seeds", nargs="+", type=int, default=[42])
    p.add_argument("--cold-items", type=float, default=0.1)
    p.add_argument("--graph-hops", type=int, default=2, help="model.graph_hops of the +graph variants")
    p.add_argument("--out", default="/tmp/interest_cold_start")
    p.add_argument("--set", action="append", default=[], dest="overrides", help="training override, every variant")
    a = p.parse_args()
    root = Path(a.out)
    shutil.rmtree(root, ignore_errors=True)
    summary: dict = {}
    for name in a.datasets:
        preset, features = DATASETS[name]
        out = root / name
        data = etl(name, out, preset, a.cold_items)
        m = json.loads((data / "manifest.json").read_text())
        print(f"{name}: {m['split']['cold_items']['items_held_out']} of {m['vocab']['items_in_vocab']} items held out "
              f"of training (--cold-items {a.cold_items})", flush=True)
        content = ["--set", f"model.item_features=[{','.join(features)}]"]
        graph = ["--set", f"model.graph_hops={a.graph_hops}"]
        variants = {"id": [], "content": content, "graph": graph, "both": content + graph}
        sets = [x for o in a.overrides for x in ("--set", o)]
        rows = []
        for seed in a.seeds:
            runs = {}
            for v, extra in variants.items():
                run = out / f"{v}_{seed}"
                cli("train", "--data", str(data), "--output", str(run), "--config", preset, "--set",
                    f"train.seed={seed}", "--set", f"train.text_cache_dir={out / 'text_cache'}", *extra, *sets)
                runs[v] = run
            for v in ("id", "content", "graph"):
                cli("evaluate", "--run", str(runs[v]))
            cli("evaluate", "--run", str(runs["both"]), *[x for v in ("id", "content", "graph")
                                                          for x in ("--compare", str(runs[v]))])
            met = json.loads((runs["both"] / "metrics.json").read_text())
            cs, ab = met["cold_start"], met["ablation"]["variants"]
            row = {"seed": seed, "ablation": ab, "cold_start": cs}
            rows.append(row)
            base = cs["cold_items"]["scorers"]
            print(f"{name} seed {seed}: cold-item users {cs['cold_items']['users']}, cold users "
                  f"{cs['cold_users']['users']}", flush=True)
            for v, r in ab.items():
                print(f"  {v:42s} NDCG@10 all {_fmt(r['all'].get('ndcg@10'))} | {KEY} cold items "
                      f"{_fmt(r['cold_items'].get(KEY))} | cold users {_fmt(r['cold_users'].get(KEY))}", flush=True)
            for b in ("random", "popularity", "recent_popularity", "content_knn", "repeat_last_category"):
                if b in base:
                    print(f"  baseline {b:33s} NDCG@10 all {_fmt(met['baselines'][b]['full'].get('ndcg@10'))} | "
                          f"{KEY} cold items {_fmt(base[b].get(KEY))} | cold users "
                          f"{_fmt(cs['cold_users']['scorers'][b].get(KEY))}", flush=True)
        summary[name] = rows
        if len(rows) > 1:
            for v in rows[0]["ablation"]:
                xs = [r["ablation"][v]["cold_items"].get(KEY) for r in rows]
                nd = [r["ablation"][v]["all"].get("ndcg@10") for r in rows]
                print(f"{name} {v}: {KEY} cold items {statistics.mean(xs):.4f} +- {statistics.stdev(xs):.4f}, "
                      f"NDCG@10 all {statistics.mean(nd):.4f} +- {statistics.stdev(nd):.4f} ({len(rows)} seeds)")
    (root / "cold_start.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
