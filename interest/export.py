"""`interest export --run RUN --output DIR`: user profiles (Parquet) and model files for downstream use.

profiles.parquet, one row per user with a test row (history = all their events):
  user_id (pseudonym), embedding (list<float>), top_items / top_item_ids (top-K recommendations, seen items
  included), top_scores, interest_tags (top categories by time-decayed weight), interest_weights, p_buy_next
  (the next-action head's P(the user's next event is a purchase), null without a buy type), segment
  (k-means cluster of the embedding), and from the decay head as of the cutoff (null without one, i.e. under
  split=leave-one-out, or for a user with no history up to the cutoff): p_active_7d, p_active_30d, p_active_90d,
  expected_days_to_next (restricted to 365 days), half_life_days (null beyond 365 days), survival (S(t) at
  interest_core.decay.DECAY_DAYS), churn_risk = 1 - P(active within the data's horizon).
reengage.parquet (decay head only): interest/reengage.py.
model/: model.pt (state dict, load with torch.load(weights_only=True)), meta.json (model args, config),
items.parquet (item id <-> index with features), segments.json (k-means centroids).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from interest import decay_scores
from interest.action_scores import p_next
from interest.reengage import reengagement
from interest_core import decay
from interest_core.batches import read_eval_split
from interest_core.config import config_from_dict
from interest_core.contract import FIRST_ITEM_ID, load_manifest
from interest_core.scoring import score_batches
from ray_train.models.saved import load_model

TAG_HALF_LIFE_DAYS = 14.0


def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding; returns (labels, centroids)."""
    rng = np.random.default_rng(seed)
    k = max(1, min(k, len(x)))
    centroids = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None, :] - np.asarray(centroids)[None]) ** 2).sum(-1), axis=1)
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(len(x), 1 / len(x))
        centroids.append(x[rng.choice(len(x), p=p)])
    c = np.asarray(centroids)
    labels = np.zeros(len(x), dtype=np.int64)
    for _ in range(iters):
        labels = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
        new = np.stack([x[labels == j].mean(0) if (labels == j).any() else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return labels, c


def interest_tags(items_lists: list, ts_lists: list, item_category: np.ndarray, top: int = 3,
                  half_life_days: float = TAG_HALF_LIFE_DAYS) -> tuple[list[list[int]], list[list[float]]]:
    """Per user: category ids weighted by the sum of 0.5 ** (age / half-life) over the history's events (age from
    the user's last event), the top ones and their normalised weights."""
    tags, weights = [], []
    for items, ts in zip(items_lists, ts_lists):
        ts = np.asarray(ts, dtype=np.float64)
        w = 0.5 ** ((ts.max() - ts) / (half_life_days * 86400)) if len(ts) else ts
        acc: dict[int, float] = {}
        for it, wi in zip(items, w):
            c = int(item_category[it]) if it < len(item_category) else 0
            if c > 0:
                acc[c] = acc.get(c, 0.0) + float(wi)
        best = sorted(acc.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        total = sum(acc.values()) or 1.0
        tags.append([c for c, _ in best])
        weights.append([v / total for _, v in best])
    return tags, weights


def _decay_columns(model, data_dir: Path, horizon: float, user_ids: list[str], batch_size: int
                   ) -> tuple[dict, dict | None, object]:
    """Profile columns from the decay head for user_ids (null where a user has no decay_test row), the decay_test
    rows and their hazards, calibrated on decay_valid (None, None without a decay head or decay rows)."""
    n = len(user_ids)
    names = [f"p_active_{d}d" for d in decay_scores.P_ACTIVE_DAYS] + ["expected_days_to_next", "half_life_days",
                                                                      "churn_risk"]
    got = decay_scores.calibrated(model, data_dir, horizon, model.args.max_len, batch_size)
    if got is None:
        return ({c: pa.array([None] * n, pa.float64()) for c in names} |
                {"survival": pa.array([None] * n, pa.list_(pa.float64()))}), None, None
    _, rows, _, h, _ = got
    a = decay.elapsed_s(rows)
    outs = decay_scores.user_outputs(h, a)
    outs["churn_risk"] = 1 - decay.p_active_within(h, a, horizon * decay.DAY_S)
    where = {u: i for i, u in enumerate(rows["user_id"])}
    at = [where.get(u) for u in user_ids]
    col = lambda v: pa.array([None if i is None or not np.isfinite(v[i]) else float(v[i]) for i in at],  # noqa
                             pa.float64())
    cols = {c: col(outs[c]) for c in names}
    cols["survival"] = pa.array([None if i is None else outs["survival"][i].tolist() for i in at],
                                pa.list_(pa.float64()))
    return cols, rows, h


def export_run(run_dir: str | Path, out_dir: str | Path, top_k: int = 20, n_segments: int = 8,
               reengage_below: float = 0.5) -> Path:
    run_dir, out = Path(run_dir), Path(out_dir)
    run = json.loads((run_dir / "run.json").read_text())
    data_dir = Path(run["data_dir"])
    horizon = float(load_manifest(data_dir)["split"]["horizon_days"])
    cfg = config_from_dict(run["config"])
    model, meta = load_model(run_dir)
    max_len = model.args.max_len
    # The test row's history plus its target is the user's whole sequence: profiles use everything known.
    rows = read_eval_split(data_dir, "test")
    pairs = {"items": "target_item", "event_types": "target_event_type", "ts": "target_ts"}
    full = {k: [(list(h) + [t])[-max_len:] for h, t in zip(rows[k], rows[tk])] for k, tk in pairs.items()}
    full["dt"] = [(list(d) + [t - ts[-1]])[-max_len:] for d, t, ts in zip(rows["dt"], rows["target_ts"], rows["ts"])]
    emb, top_idx, top_val, buy_next = [], [], [], []
    buy_type = cfg.data.buy_event_type or 0

    def scorer(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = model.encode(batch)
        e = hidden[:, -1]
        emb.append(e.numpy())
        buy_next.append(p_next(model, hidden, batch, buy_type))
        return model.scores(e)

    for _, _, scores in score_batches(scorer, full, max_len=max_len, batch_size=cfg.eval.batch_size):
        v, i = scores.topk(min(top_k, scores.shape[1] - FIRST_ITEM_ID), dim=1)
        top_idx.append(i.numpy()), top_val.append(v.numpy())
    emb_np = np.concatenate(emb) if emb else np.zeros((0, meta["model_args"]["dim"]), np.float32)
    items = pq.read_table(data_dir / "items").to_pydict()
    num_items = meta["model_args"]["num_items"]
    item_ids = np.array([""] * num_items, dtype=object)
    item_ids[np.asarray(items["item_idx"])] = items["item_id"]
    item_cat = np.zeros(num_items, dtype=np.int64)
    item_cat[np.asarray(items["item_idx"])] = items["category_idx"]
    cat_names = {c: n for c, n in zip(items["category_idx"], items["category"]) if n is not None}
    labels, centroids = kmeans(emb_np.astype(np.float64), n_segments) if len(emb_np) else (np.zeros(0), [])
    tag_ids, weights = interest_tags(full["items"], full["ts"], item_cat)
    tags = [[cat_names.get(c, str(c)) for c in t] for t in tag_ids]
    decay_cols, decay_rows, hz = _decay_columns(model, data_dir, horizon, rows["user_id"], cfg.eval.batch_size)
    ti = np.concatenate(top_idx) if top_idx else np.zeros((0, top_k), np.int64)
    table = pa.table({
        "user_id": rows["user_id"],
        "embedding": [list(map(float, e)) for e in emb_np],
        "top_items": [list(map(int, r)) for r in ti],
        "top_item_ids": [[str(item_ids[j]) for j in r] for r in ti],
        "top_scores": [list(map(float, r)) for r in (np.concatenate(top_val) if top_val else [])],
        "interest_tags": tags, "interest_weights": weights,
        "p_buy_next": pa.array(np.concatenate(buy_next) if buy_next and buy_next[0] is not None
                               else [None] * len(rows["user_id"]), pa.float64()),
        "segment": pa.array(labels.astype(np.int32)),
        **decay_cols,
    })
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / "profiles.parquet")
    (out / "reengage.parquet").unlink(missing_ok=True)
    if decay_rows is not None:
        decay_tags, _ = interest_tags(decay_rows["items"], decay_rows["ts"], item_cat)
        table = reengagement(model, decay_rows, hz, horizon, reengage_below, item_cat, decay_tags, cat_names,
                             item_ids, top_k, cfg.eval.batch_size)
        pq.write_table(table, out / "reengage.parquet")
    model_out = out / "model"
    model_out.mkdir(exist_ok=True)
    for name in ("model.pt", "meta.json"):
        shutil.copy2(run_dir / "model" / name, model_out / name)
    pq.write_table(pq.read_table(data_dir / "items"), model_out / "items.parquet")
    (model_out / "segments.json").write_text(json.dumps({"k": int(len(centroids)), "centroids": [
        list(map(float, c)) for c in centroids]}))
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="trained run directory, e.g. --run runs/r1")
    p.add_argument("--output", required=True, help="export directory, e.g. --output exports/r1")
    p.add_argument("--top-k", type=int, default=20, help="recommendations per user, e.g. --top-k 50")
    p.add_argument("--segments", type=int, default=8, help="k-means segments over user embeddings, e.g. --segments 12")
    p.add_argument("--reengage-below", type=float, default=0.5,
                   help="re-engagement list: users whose P(active within the horizon) is below this, "
                        "e.g. --reengage-below 0.3")


def run(args: argparse.Namespace) -> int:
    if not 0 < args.reengage_below <= 1:
        raise SystemExit(f"--reengage-below {args.reengage_below}: give a probability in (0, 1], e.g. 0.3")
    out = export_run(args.run, args.output, args.top_k, args.segments, args.reengage_below)
    n = pq.read_metadata(out / "profiles.parquet").num_rows
    print(f"export: {n} user profiles -> {out / 'profiles.parquet'}; model files -> {out / 'model'}")
    if (out / "reengage.parquet").exists():
        print(f"export: {pq.read_metadata(out / 'reengage.parquet').num_rows} users to re-engage (P(active) < "
              f"{args.reengage_below:g}) -> {out / 'reengage.parquet'}")
    return 0
