"""Interest tags against the interests the synthetic generator planted, beside their baselines and a ceiling.

Runs the product on the decay bench's synthetic data and time split (bench/product.py): `interest etl` (which
carries the planted interests, pseudonymized, into planted/), `interest train --config tiny-cpu` and `interest
evaluate` (metrics.json["tags"]: precision@3 of the profiles' tags, k = min(3, planted interests), at the deepest
catalog level, for every held-out user (below) and for the migrated ones), per training seed. The planted interests
are one truth per user, so the settings are chosen on other users: interest_core.drift.fitting_users splits the
users by a fixed hash of the pseudonym, and every figure reported is on the held-out half (model, baselines and
ceiling). Then, on the first seed's model:

* the settings sweep on the FITTING half (its validation rows: history up to the validation target):
  data.tag_half_life_days in {7, 14, 30, 90} (one ETL each) x export.tag_predicted_weight in {0, 0.1, 0.25, 0.5};
  the defaults should be the best of these; the held-out half's figures at the chosen setting are printed after;
* a ceiling that no profile can beat by counting: the generator's own events of each held-out user since their
  migration (the oracle knows when it happened), all of them, not only the model's last max_len, ranked by count.

    .venv/bin/python bench/tags_bench.py [--seeds 42 1 7]
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import hmac
import json
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from product import SYNTHETIC, SYNTHETIC_CUTOFF, SYNTHETIC_HORIZON_DAYS, cli, train_and_evaluate  # noqa: E402

PRESET = "tiny-cpu"
HALF_LIVES = (7.0, 14.0, 30.0, 90.0)


def sweep(run: Path, out: Path) -> tuple[dict, dict]:
    """precision@3 on the fitting half's validation rows for each (data.tag_half_life_days,
    export.tag_predicted_weight); the half-life is the ETL's, so each one gets its own ETL of the same events (the
    model is the same). Also metrics.json["tags"] of the held-out half's test rows at the best of them (each one,
    when several tie)."""
    from interest.profiles import ProfileScorer, settings_from
    from interest.tag_scores import tag_metrics
    from interest_core.batches import read_eval_split
    from interest_core.config import config_from_dict
    from interest_core.data_versions import resolve_data_dir

    r = json.loads((run / "run.json").read_text())
    cfg = config_from_dict(r["config"])
    results, scored = {}, {}
    for hl in HALF_LIVES:
        data = out / "data" if hl == cfg.data.tag_half_life_days else out / f"data_hl{hl:g}"
        if not data.exists():
            etl(out, data, "--set", f"data.tag_half_life_days={hl}")
        data = resolve_data_dir(data)
        horizon = json.loads((data / "manifest.json").read_text())["split"]["horizon_days"]
        scorer = ProfileScorer(run, data, settings_from(cfg, horizon, tag_half_life_days=hl))
        rows = read_eval_split(data, "valid")
        for beta in (0.0, 0.1, 0.25, 0.5):
            t = tag_metrics(scorer, data, rows, beta=beta, users="fitting")
            results[f"half_life={hl:g}d beta={beta}"] = (t["precision@3"], t["migrated"]["precision@3"])
            scored[f"half_life={hl:g}d beta={beta}"] = (scorer, data, beta)
    top = max(v for v, _ in results.values())
    return results, {k: tag_metrics(scorer, data, read_eval_split(data, "test"), beta=beta)
                     for k, (scorer, data, beta) in scored.items() if results[k][0] == top}


def etl(out: Path, data: Path, *extra: str) -> None:
    cli("etl", "--input", str(out / "synthetic"), "--format", "synthetic", "--output", str(data), "--config", PRESET,
        "--allow-insecure-demo-key", "--split", "time", "--cutoff", SYNTHETIC_CUTOFF, "--horizon-days",
        str(SYNTHETIC_HORIZON_DAYS), *extra)


def ceiling(synthetic: Path, data: Path) -> tuple[float, int]:
    """precision@3 of counting each held-out test user's every event since migration (the insecure demo key maps
    ids)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from interest_core.data_versions import resolve_data_dir
    from interest_core.drift import fitting_users
    from spark_jobs.pseudonymize import INSECURE_DEMO_KEY

    users = pq.read_table(Path(resolve_data_dir(data)) / "test", columns=["user_id"]).column(0).to_pylist()
    test_users = {u for u, fit in zip(users, fitting_users(users)) if not fit}
    truth = pq.read_table(synthetic / "ground_truth.parquet").to_pylist()
    items = pq.read_table(synthetic / "items.parquet", columns=["item_id", "category"]).to_pydict()
    cat = dict(zip(items["item_id"], items["category"]))
    ev = pq.read_table(synthetic / "events", columns=["user_id", "item_id", "ts"])
    ts = pc.cast(ev["ts"], "int64").to_numpy() // 1000
    by_user: dict[str, list] = collections.defaultdict(list)
    for u, i, t in zip(ev["user_id"].to_pylist(), ev["item_id"].to_pylist(), ts.tolist()):
        by_user[u].append((t, cat[i]))
    scores = []
    for g in truth:
        if hmac.new(INSECURE_DEMO_KEY, g["user_id"].encode(), hashlib.sha256).hexdigest() not in test_users:
            continue
        since = int(g["migration_ts"].timestamp()) if g["migrated"] else -1
        planted = set(g["interests_after"] if g["migrated"] else g["interests"])
        counts = collections.Counter(c for t, c in by_user[g["user_id"]] if t >= since)
        k = min(3, len(planted))
        top = [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]
        scores.append(len(set(top) & planted) / k)
    return float(np.mean(scores)), len(scores)


def line(t: dict) -> str:
    """metrics.json["tags"] in one line: the model's figures and its baselines'."""
    b = t["baselines"]
    return (f"{t['n_users']:,} held-out test users | tags precision@3 {t['precision@3']:.4f} (migrated "
            f"{t['migrated']['precision@3']:.4f}, {t['migrated']['n_users']} users; level 1 {t['by_level']['1']:.4f})"
            f" | history alone {b['history']['precision@3']:.4f} frequency {b['frequency']['precision@3']:.4f} "
            f"popularity {b['popularity']['precision@3']:.4f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", nargs="+", type=int, default=[42])
    p.add_argument("--out", default="/tmp/interest_tags")
    a = p.parse_args()
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    from interest.synthetic import generate

    generate(out / "synthetic", **SYNTHETIC)
    etl(out, out / "data")
    runs = []
    for seed in a.seeds:
        metrics, train_s = train_and_evaluate(out / "data", out / f"run_{seed}", "--config", PRESET, "--set",
                                              f"train.seed={seed}")
        t = metrics["tags"]
        runs.append(t)
        print(f"seed {seed}: {line(t)} | train {train_s:.0f}s", flush=True)
    for name, key in (("tags", None), ("history alone", "history"), ("frequency", "frequency"),
                      ("popularity", "popularity")):
        p3 = [(r if key is None else r["baselines"][key])["precision@3"] for r in runs]
        print(f"{name}: mean over {len(runs)} seeds {np.mean(p3):.4f} (sd {np.std(p3):.4f})")
    ceil, n = ceiling(out / "synthetic", out / "data")
    print(f"ceiling (count every event since migration, {n:,} held-out test users): {ceil:.4f}", flush=True)
    grid, chosen = sweep(out / f"run_{a.seeds[0]}", out)
    for k, (v, m) in grid.items():
        best = "  <- best" if k in chosen else ""
        print(f"fitting half, valid rows, {k}: precision@3 {v:.4f} migrated {m:.4f}{best}")
    for k, t in chosen.items():
        print(f"seed {a.seeds[0]} at the best {k}: {line(t)}")
    (out / "tags.json").write_text(json.dumps({"runs": runs, "ceiling": ceil, "fitting_sweep": grid,
                                               "chosen": chosen}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
