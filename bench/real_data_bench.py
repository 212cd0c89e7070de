"""Every capability on a real shop's log, model against its baselines: the UCI Online Retail file.

The file is not in the repository and cannot be downloaded here: pass its path (UCI Machine Learning Repository,
"Online Retail", id 352, https://archive.ics.uci.edu/dataset/352/online+retail; docs/online-retail.md). The bench
runs the product's own commands with their defaults and no tuning (hyper-parameters are chosen on validation inside
`interest train`; the test split is read once per run by `interest evaluate`):

    interest etl --format online-retail                 then  interest categories  then  the ETL again with --items
      leave-one-out by invoice (data.baskets, the default), the same with data.baskets=false (within invoice),
      --split time --cutoff 2011-09-09 --horizon-days 90 (and 30), --cold-items 0.1
    interest train [--model ARCH] --set train.seed=S    then  interest evaluate   (each capability below)
    interest export                                      (profiles, segments, re-engagement list)

and prints one table per capability, mean +- std over seeds:

  next item   test NDCG@10 / HR@10 (full ranking, repeats allowed) of `interest train` without a model flag and of
              each backbone, against popularity, co-occurrence, repeat-last and the others; the within-invoice
              figure of the default model; how many test targets are repeat purchases
  decay       AUC, Brier, ECE of the calibrated survival head at 90 and 30 days against BG/NBD, recency, frequency
  cold items  NDCG@10 / HR@10 on the held-out items of the content tower (text and price) against content kNN,
              recent popularity and random
  profiles    segment sizes, the share of users with an interest tag, the top segments' categories as words

    .venv/bin/python bench/real_data_bench.py --online-retail PATH [--seeds 42 1 7] [--only next_item decay ...]
        [--horizons 90 30] [--archs sasrec hstu gru] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from product import cli, train_and_evaluate  # noqa: E402

from interest_core.data_versions import current_version, resolve_data_dir  # noqa: E402

UCI = "https://archive.ics.uci.edu/dataset/352/online+retail"
CAPABILITIES = ("next_item", "decay", "cold_items", "profiles")
CUTOFF, HORIZONS = "2011-09-09", (90, 30)
NEXT_ITEM_BASELINES = ("popularity", "recent_popularity", "cooccurrence", "repeat_last", "repeat_last_category")
KEYS = ("ndcg@10", "hr@10")


def mean_std(xs: list[float]) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "n/a"
    return f"{statistics.mean(xs):.4f} +- {statistics.stdev(xs):.4f}" if len(xs) > 1 else f"{xs[0]:.4f}"


def prepare(src: Path, out: Path, key: Path, only: set[str], horizons: list[int]) -> dict[str, Path]:
    """The ETL outputs each capability reads (each built once; a rerun of the bench reuses them)."""
    def etl(name: str, *extra: str) -> Path:
        data = out / name
        if current_version(data) is None:
            s = cli("etl", "--input", str(src), "--format", "online-retail", "--output", str(data),
                    "--hmac-key-file", str(key), *extra)
            print(f"etl {name}: {s:.0f}s", flush=True)
        return resolve_data_dir(data)

    catalog = out / "catalog.parquet"
    if not catalog.exists():
        first = etl("data_plain")
        s = cli("categories", "--data", str(out / "data_plain"), "--output", str(catalog))
        print(f"categories: {s:.0f}s ({json.loads(catalog.with_suffix('.json').read_text())['clusters']} "
              f"categories for {first})", flush=True)
    items = ("--items", str(catalog))
    sets = {"loo": etl("data_loo", *items)}
    if "next_item" in only:
        sets["loo_within"] = etl("data_loo_within", *items, "--set", "data.baskets=false")
    if {"decay", "profiles"} & only:
        for h in horizons:
            sets[f"time{h}"] = etl(f"data_time{h}", *items, "--split", "time", "--cutoff", CUTOFF,
                                   "--horizon-days", str(h))
    if "cold_items" in only:
        sets["cold"] = etl("data_cold", *items, "--cold-items", "0.1")
    return sets


def _run(data: Path, run: Path, *args: str) -> tuple[dict, float]:
    """train + evaluate, or the metrics of a finished run (a rerun of the bench resumes where it stopped)."""
    if (run / "metrics.json").exists():
        return json.loads((run / "metrics.json").read_text()), json.loads((run / "run.json").read_text())["wall_time_s"]
    return train_and_evaluate(data, run, *args)


def next_item(sets: dict[str, Path], out: Path, seeds: list[int], archs: list[str]) -> dict:
    test = pq.read_table(sets["loo"] / "test", columns=["target_item", "seen_items"]).to_pylist()
    repeats = sum(r["target_item"] in set(r["seen_items"]) for r in test)
    print(f"\n== next item (leave-one-out by invoice, full ranking over all items; {repeats:,} of {len(test):,} test "
          f"targets ({repeats / len(test):.0%}) are items the user bought before)", flush=True)
    rows: dict[str, list[dict]] = {}
    base: list[dict] = []
    for label, data, extra in [("default", sets["loo"], []), *[(a, sets["loo"], ["--model", a]) for a in archs],
                               ("default, within invoice", sets["loo_within"], [])]:
        for seed in seeds:
            tag = label.replace(", ", "_").replace(" ", "_")
            m, s = _run(data, out / f"next_{tag}_{seed}", *extra, "--set", f"train.seed={seed}")
            rows.setdefault(label, []).append({k: m["test"]["full"][k] for k in KEYS} | {"train_s": s})
            if label == "default":
                base.append({b: {k: m["baselines"][b]["full"][k] for k in KEYS} for b in m["baselines"]})
            print(f"  {label} seed {seed}: test NDCG@10 {m['test']['full']['ndcg@10']:.4f} HR@10 "
                  f"{m['test']['full']['hr@10']:.4f} ({s:.0f}s)", flush=True)
    print(f"{'scorer':28s} {'NDCG@10':>18s} {'HR@10':>18s}")
    for label, rs in rows.items():
        print(f"{label:28s} {mean_std([r['ndcg@10'] for r in rs]):>18s} {mean_std([r['hr@10'] for r in rs]):>18s}")
    names = [b for b in NEXT_ITEM_BASELINES if b in base[0]] + sorted(set(base[0]) - set(NEXT_ITEM_BASELINES))
    for b in names:
        print(f"{b:28s} {mean_std([x[b]['ndcg@10'] for x in base]):>18s} {mean_std([x[b]['hr@10'] for x in base]):>18s}")
    best = max(names, key=lambda b: statistics.mean(x[b]["ndcg@10"] for x in base))
    model = statistics.mean(r["ndcg@10"] for r in rows["default"])
    best_score = statistics.mean(x[best]["ndcg@10"] for x in base)
    print(f"default model / best baseline ({best}): {model / best_score:.2f}x (target >= 1.10x)", flush=True)
    return {"repeat_targets": repeats, "test_users": len(test), "models": rows, "baselines": base,
            "best_baseline": best, "ratio": model / best_score}


def decay(sets: dict[str, Path], out: Path, seeds: list[int], horizons: list[int]) -> dict:
    result = {}
    for h in horizons:
        print(f"\n== decay (time split: cutoff {CUTOFF}, horizon {h} days; labels and BG/NBD count purchases)",
              flush=True)
        rows = []
        for seed in seeds:
            m, s = _run(sets[f"time{h}"], out / f"decay{h}_{seed}", "--set", f"train.seed={seed}")
            d = m["decay"]
            rows.append({"model": {k: d[k] for k in ("auc", "brier", "ece")},
                         "baselines": {b: {k: v.get(k) for k in ("auc", "brier", "ece")}
                                       for b, v in d["baselines"].items()}, "users": d["n_users"], "train_s": s})
            print(f"  seed {seed}: AUC {d['auc']:.4f} Brier {d['brier']:.4f} ECE {d['ece']:.4f} ({s:.0f}s)",
                  flush=True)
        print(f"{'scorer':12s} {'AUC':>18s} {'Brier':>18s} {'ECE':>18s}  ({rows[0]['users']:,} test users)")
        print(f"{'model':12s} " + " ".join(f"{mean_std([r['model'][k] for r in rows]):>18s}"
                                           for k in ("auc", "brier", "ece")))
        for b in rows[0]["baselines"]:
            print(f"{b:12s} " + " ".join(f"{mean_std([r['baselines'][b][k] for r in rows]):>18s}"
                                         for k in ("auc", "brier", "ece")))
        result[h] = rows
    return result


def cold_items(sets: dict[str, Path], out: Path, seeds: list[int]) -> dict:
    print("\n== cold items (--cold-items 0.1, leave-one-out: test targets among items held out of training)",
          flush=True)
    rows = []
    for seed in seeds:
        m, s = _run(sets["cold"], out / f"cold_{seed}", "--set", "model.item_features=[price,text]",
                    "--set", f"train.seed={seed}")
        seg = m["cold_start"]["cold_items"]
        rows.append({"users": seg["users"], "scorers": {n: {k: v.get(k) for k in KEYS}
                                                        for n, v in seg["scorers"].items()}, "train_s": s})
        print(f"  seed {seed}: {seg['users']} users, model NDCG@10 {seg['scorers']['model'].get('ndcg@10')} "
              f"({s:.0f}s)", flush=True)
    print(f"{'scorer':20s} {'NDCG@10':>18s} {'HR@10':>18s}  ({rows[0]['users']} test users with a cold target)")
    for n in rows[0]["scorers"]:
        print(f"{n:20s} " + " ".join(f"{mean_std([r['scorers'][n][k] for r in rows]):>18s}" for k in KEYS))
    return {"rows": rows}


def profiles(sets: dict[str, Path], out: Path, seed: int, horizon: int) -> dict:
    print(f"\n== profiles (time split {CUTOFF}, {horizon} days; export of the seed-{seed} run)", flush=True)
    run, exp = out / f"decay{horizon}_{seed}", out / f"export_{seed}"
    s = cli("export", "--run", str(run), "--output", str(exp))
    prof = pq.read_table(exp / "profiles", columns=["interest_tags"]).to_pylist()
    tagged = sum(bool(r["interest_tags"]) for r in prof)
    segs = pq.read_table(exp / "segments.parquet", columns=["segment", "users", "top_categories"]).to_pylist()
    print(f"export {s:.0f}s: {len(prof):,} profiles, {tagged / len(prof):.0%} with an interest tag; "
          f"{len(segs)} segments, sizes {sorted((r['users'] for r in segs), reverse=True)}")
    for r in sorted(segs, key=lambda r: -r["users"])[:5]:
        print(f"  segment {r['segment']} ({r['users']} users): {', '.join(r['top_categories'][:3])}")
    return {"profiles": len(prof), "tagged_share": tagged / len(prof),
            "segments": [{k: r[k] for k in ("segment", "users", "top_categories")} for r in segs]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--online-retail", required=True, help="the UCI Online Retail CSV (or .csv.gz)")
    p.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 7])
    p.add_argument("--archs", nargs="*", default=["sasrec", "hstu", "gru"], help="backbones beside the default")
    p.add_argument("--only", nargs="+", default=list(CAPABILITIES), choices=CAPABILITIES)
    p.add_argument("--horizons", nargs="+", type=int, default=list(HORIZONS),
                   help="decay horizons in days (the first one's run is exported for profiles), e.g. --horizons 90")
    p.add_argument("--out", default="/tmp/interest_real_data")
    a = p.parse_args()
    src = Path(a.online_retail)
    if not src.is_file():
        print(f"--online-retail {src}: no such file. The UCI Online Retail data set is published at {UCI} "
              f"(CC BY 4.0); save it as CSV (or .csv.gz) and pass its path", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    key = out / "hmac.key"
    if not key.exists():
        import secrets

        key.write_text(secrets.token_hex(32))
    only = set(a.only)
    sets = prepare(src, out, key, only, a.horizons)
    summary: dict = {"input": str(src), "seeds": a.seeds}
    if "next_item" in only:
        summary["next_item"] = next_item(sets, out, a.seeds, a.archs)
    if {"decay", "profiles"} & only:
        summary["decay"] = decay(sets, out, a.seeds, a.horizons)
    if "cold_items" in only:
        summary["cold_items"] = cold_items(sets, out, a.seeds)
    if "profiles" in only:
        summary["profiles"] = profiles(sets, out, a.seeds[0], a.horizons[0])
    (out / "real_data.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"\n-> {out / 'real_data.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
