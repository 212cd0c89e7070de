"""New users: user side features (age, gender, occupation, region) against the same model without them.

For each data set the bench runs the product's own commands on one ETL output that carries the users file:

    interest etl ... --users USERS --cold-users 0.1      (synthetic: the generator's users.parquet, found by itself)
    interest train ...                                   (ID only)
    interest train ... --set model.user_features=true    (+ user side features)
    interest evaluate --run USERS_RUN --compare ID_RUN   (metrics.json["cold_start"], ["ablation"])

and prints test NDCG@10 / HR@10 / HR@50 over all users and on the cold_users segment (history of at most
data.cold_user_max_events events), beside popularity and recent popularity, full ranking over all items.
--cold-users 0.1 is the new-user protocol: a tenth of the users never train, and their test history is cut to their
first 1-3 events (MovieLens-100K has no user with fewer than 20 ratings, so without it the segment is empty).
MovieLens-100K's users file is RecBole's ml-100k.user (age, gender, occupation, zip code -> region = ZIP3).

    .venv/bin/python bench/new_users_bench.py [--datasets synthetic ml100k] [--seeds 42] [--cold-users 0.1]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from product import cli, generated_input  # noqa: E402
from public_data import ml100k_input  # noqa: E402

from interest_core.data_versions import resolve_data_dir  # noqa: E402

PRESETS = {"synthetic": "tiny-cpu", "ml100k": "base"}
SYNTHETIC = dict(users="3000", items="1500", events="150000", seed="7")
KEYS = ("ndcg@10", "hr@10", "hr@50")


def etl(name: str, out: Path, cold_users: float) -> Path:
    data = out / "data"
    src = generated_input(out, SYNTHETIC) if name == "synthetic" else ml100k_input(users=True)
    cli("etl", *src, "--output", str(data), "--config", PRESETS[name], "--allow-insecure-demo-key",
        "--cold-users", str(cold_users))
    return resolve_data_dir(data)


def _fmt(row: dict) -> str:
    return " ".join(f"{k} {row[k]:.4f}" if row.get(k) is not None else f"{k} n/a" for k in KEYS)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    p.add_argument("--seeds", nargs="+", type=int, default=[42])
    p.add_argument("--cold-users", type=float, default=0.1)
    p.add_argument("--out", default="/tmp/interest_new_users")
    a = p.parse_args()
    root = Path(a.out)
    shutil.rmtree(root, ignore_errors=True)
    summary: dict = {}
    for name in a.datasets:
        out = root / name
        data = etl(name, out, a.cold_users)
        m = json.loads((data / "manifest.json").read_text())
        print(f"{name}: users file {m['users']['users']} users, {m['users']['users_with_events']} with events; "
              f"{m['split']['cold_users']['users_held_out']} users held out of training (--cold-users "
              f"{a.cold_users})", flush=True)
        for seed in a.seeds:
            runs = {}
            for variant, extra in (("id", []), ("users", ["--set", "model.user_features=true"])):
                runs[variant] = out / f"{variant}_{seed}"
                cli("train", "--data", str(data), "--output", str(runs[variant]), "--config", PRESETS[name],
                    "--set", f"train.seed={seed}", *extra)
            cli("evaluate", "--run", str(runs["id"]))
            cli("evaluate", "--run", str(runs["users"]), "--compare", str(runs["id"]))
            met = json.loads((runs["users"] / "metrics.json").read_text())
            cs = met["cold_start"]["cold_users"]
            summary.setdefault(name, []).append({"seed": seed, "ablation": met["ablation"], "cold_users": cs})
            print(f"{name} seed {seed}: cold users {cs['users']} of {met['test']['full'].get('n_users')}", flush=True)
            for v, r in met["ablation"]["variants"].items():
                print(f"  {v:24s} all: {_fmt(r['all'])} | cold users: {_fmt(r['cold_users'])}", flush=True)
            for b in ("popularity", "recent_popularity"):
                if b in cs["scorers"]:
                    print(f"  baseline {b:15s} all: {_fmt(met['baselines'][b]['full'])} | cold users: "
                          f"{_fmt(cs['scorers'][b])}", flush=True)
    (root / "new_users.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
