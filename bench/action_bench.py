"""Next action (the type of a user's next event) against its classical baselines, on synthetic data.

Runs the product's own commands with the decay bench's time split (cutoff C, horizon H):

    interest etl --split time --cutoff C --horizon-days H    (action_test/: every event in (C, C + H])
    interest train --config tiny-cpu                          (the next-action head trains with next-item)
    interest evaluate                                         (metrics.json["event_type"])

and prints the head's macro / per-type AUC and log loss beside the type frequencies and the first-order transition
P(next type | current type) (both from evaluate), and beside a hand-built reference that knows the generator's
funnel: an MLP on session features of the events before each target (current type, gaps, purchases pending
after a cart, views of the last 1 / 5 minutes, items viewed but not carted, hour), trained on the targets up to
C - H and scored on the same held-out events. The generator draws carts, favourites and purchases after a view
or a cart with fixed probabilities and delays, so no predictor sees much of them coming; the reference says how
much.

    .venv/bin/python bench/action_bench.py [--seeds 42] [--set key=value ...]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(REPO / "bench"))

from interest_core.binary import auc  # noqa: E402
from product import (SYNTHETIC, SYNTHETIC_CUTOFF, SYNTHETIC_HORIZON_DAYS, cli,  # noqa: E402
                     train_and_evaluate)

CUTOFF, HORIZON, PRESET = SYNTHETIC_CUTOFF, SYNTHETIC_HORIZON_DAYS, "tiny-cpu"
TYPES = ["view", "cart", "fav", "buy"]


def session_features(events_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(features (N, F), next type (N,), time of the next event (N,), time of the user's first event (N,)) for
    every event that has a next one."""
    import pyarrow.parquet as pq

    import pyarrow.compute as pc

    table = pq.read_table(events_dir, columns=["user_id", "event_type", "ts", "item_id"])
    t = table.drop_columns("ts").to_pandas()
    t["ts"] = pc.cast(table["ts"], "int64").to_numpy() // 1000  # timestamp[ms] -> unix seconds
    t = t.sort_values(["user_id", "ts"], kind="stable").reset_index(drop=True)
    kind = t.event_type.map({x: i for i, x in enumerate(TYPES)}).to_numpy()
    user, ts, item = t.user_id.to_numpy(), t.ts.to_numpy(), t.item_id.to_numpy()
    feats, nxt, when, first = [], [], [], []
    prev_user, carts, recent, prev_ts, first_ts = None, {}, [], None, 0
    for i in range(len(t) - 1):
        if user[i] != prev_user:
            prev_user, carts, recent, prev_ts, first_ts = user[i], {}, [], None, ts[i]
        gap = 0 if prev_ts is None else ts[i] - prev_ts
        prev_ts = ts[i]
        if kind[i] == 1:
            carts[item[i]] = ts[i]
        elif kind[i] == 3:
            carts.pop(item[i], None)
        recent = [r for r in recent if ts[i] - r[0] <= 900] + [(ts[i], kind[i], item[i])]
        if user[i + 1] != user[i]:
            continue
        views = [r for r in recent if r[1] == 0]
        feats.append([*np.eye(4)[kind[i]], np.log1p(gap), sum(ts[i] - v <= 900 for v in carts.values()),
                      sum(ts[i] - r[0] <= 300 for r in views), sum(ts[i] - r[0] <= 60 for r in views),
                      len({r[2] for r in views if ts[i] - r[0] <= 300} - set(carts)), (ts[i] % 86400) / 86400])
        nxt.append(kind[i + 1])
        when.append(ts[i + 1])
        first.append(first_ts)
    return np.asarray(feats, np.float32), np.asarray(nxt), np.asarray(when), np.asarray(first)


def reference(events_dir: Path, cutoff_s: int, horizon_s: int, seed: int) -> dict:
    """The hand-built reference: trained on targets up to C - H, scored on the held-out events the product scores
    (targets in (C, C + H] of users with an event up to C)."""
    import torch
    import torch.nn as nn

    x, y, when, first = session_features(events_dir)
    train = when <= cutoff_s - horizon_s
    test = (when > cutoff_s) & (when <= cutoff_s + horizon_s) & (first <= cutoff_s)
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
    xt = torch.from_numpy((x - mu) / sd)
    yt = torch.from_numpy(y)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(x.shape[1], 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 4))
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    idx = torch.from_numpy(np.flatnonzero(train))
    for _ in range(15):
        perm = idx[torch.randperm(len(idx))]
        for s in range(0, len(perm), 2048):
            i = perm[s:s + 2048]
            loss = nn.functional.cross_entropy(net(xt[i]), yt[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        p = torch.softmax(net(xt[test]), -1).numpy()
    yy = y[test]
    per = {TYPES[k]: auc(p[:, k], yy == k) for k in range(4) if 0 < (yy == k).sum() < len(yy)}
    return {"macro_auc": float(np.mean(list(per.values()))), "per_type_auc": per, "n_targets": int(len(yy)),
            "log_loss": float(-np.mean(np.log(np.clip(p[np.arange(len(yy)), yy], 1e-12, 1))))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", nargs="+", type=int, default=[42])
    p.add_argument("--out", default="/tmp/interest_action")
    p.add_argument("--set", action="append", default=[], dest="overrides", help="e.g. model.event_type_loss_weight=0.5")
    a = p.parse_args()
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    from interest.synthetic import generate

    generate(out / "synthetic", **SYNTHETIC)
    data_sets = [x for o in a.overrides if o.startswith("data.") for x in ("--set", o)]
    train_sets = [x for o in a.overrides if not o.startswith("data.") for x in ("--set", o)]
    etl_s = cli("etl", "--input", str(out / "synthetic"), "--format", "synthetic", "--output", str(out / "data"),
                 "--config", PRESET, "--allow-insecure-demo-key", "--split", "time", "--cutoff", CUTOFF,
                 "--horizon-days", str(HORIZON), *data_sets)
    cutoff_s = int(datetime.fromisoformat(CUTOFF).replace(tzinfo=timezone.utc).timestamp())  # a date: its midnight
    ref = reference(out / "synthetic" / "events", cutoff_s, HORIZON * 86400, a.seeds[0])
    fmt = lambda d: " ".join(f"{k} {v:.4f}" for k, v in d["per_type_auc"].items())  # noqa: E731
    runs = []
    for seed in a.seeds:
        run = out / f"run_{seed}"
        metrics, train_s = train_and_evaluate(out / "data", run, "--config", PRESET, "--set", f"train.seed={seed}",
                                              *train_sets)
        e = metrics["event_type"]
        runs.append(e)
        tr, fq = e["baselines"]["transition"], e["baselines"]["frequency"]
        print(f"seed {seed}: {e['n_targets']:,} held-out events | model macro AUC {e['macro_auc']:.4f} log loss "
              f"{e['log_loss']:.4f} ({fmt(e)}) | transition {tr['macro_auc']:.4f} / {tr['log_loss']:.4f} | "
              f"frequency log loss {fq['log_loss']:.4f} | balanced acc {e['balanced_accuracy']:.4f} | etl {etl_s:.0f}s "
              f"train {train_s:.0f}s", flush=True)
    print(f"reference (session features + MLP, {ref['n_targets']:,} events): macro AUC {ref['macro_auc']:.4f} log "
          f"loss {ref['log_loss']:.4f} ({fmt(ref)})", flush=True)
    (out / "action.json").write_text(json.dumps({"runs": runs, "reference": ref}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
