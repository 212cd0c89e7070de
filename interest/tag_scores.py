"""metrics.json["tags"]: the profiles' interest tags against the interests a synthetic data set planted.

For every test user with planted interests (data_dir/planted/, written by the ETL from the generator's ground
truth: after a migration, the new interests), precision@k = |top-k tags ∩ planted| / k with k = min(3, number of
planted interests), averaged over users, at the deepest catalog level (the planted interests' level) and at every
coarser one (planted interests cut to that level). The tags are those `interest export` writes
(interest.profiles.ProfileScorer), against three baselines: `frequency` (the history's most frequent categories),
`recency` (time-decayed with a 14-day half-life, no model) and `popularity` (everyone gets the catalog's
most frequent categories). None when the data set has no planted interests (real data).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from interest.profiles import ProfileScorer
from interest_core.batches import pad_left, read_decay_split, row_batches
from interest_core.tags import SEP, popular_tags, precision_at_k

K = 3
RECENCY_HALF_LIFE_DAYS = 14.0


def tag_metrics(scorer: ProfileScorer, data_dir: str | Path, rows: dict[str, list]) -> dict | None:
    """rows: the test split's rows (as read by read_eval_split)."""
    planted_dir = Path(data_dir) / "planted"
    if not planted_dir.is_dir():
        return None
    planted = pq.read_table(planted_dir, columns=["user_id", "interests", "interests_before"]).to_pydict()
    truth_of = dict(zip(planted["user_id"], planted["interests"]))
    migrated = {u for u, b in zip(planted["user_id"], planted["interests_before"]) if b is not None}
    levels = scorer.levels
    ids = [{name: i for i, name in enumerate(names)} for names in levels.names]
    truth = [[{ids[lv].get(SEP.join(p.split(SEP)[: lv + 1])) for p in (truth_of.get(u) or [])} - {None}
              for u in rows["user_id"]] for lv in range(levels.depth)]
    decay_rows = read_decay_split(data_dir, "test")
    s = scorer.s
    variants = {"model": {}, "frequency": {"beta": 0.0, "half_life_days": float("inf")},
                "recency": {"beta": 0.0, "half_life_days": RECENCY_HALF_LIFE_DAYS}}
    got: dict[str, list[list[np.ndarray]]] = {v: [[] for _ in range(levels.depth)] for v in variants}
    for sl, part in row_batches(rows, s.batch_size):
        for name, kw in variants.items():
            for lv, t in enumerate(scorer.tag_ids(part, decay_rows, **kw)):
                got[name][lv].append(t)
    tags = {name: [np.concatenate(x) if x else np.zeros((0, K), np.int64) for x in per_level]
            for name, per_level in got.items()}
    history = pad_left(rows["items"], scorer.max_len)
    n = len(rows["user_id"])
    tags["popularity"] = [np.tile(popular_tags(history, levels.item_tag[lv], K), (n, 1))
                          for lv in range(levels.depth)]
    is_migrated = np.array([u in migrated for u in rows["user_id"]])

    def scores(t: list[np.ndarray]) -> dict:
        p, users = precision_at_k(t[-1], truth[-1], K)
        pm, users_m = precision_at_k(t[-1][is_migrated], [x for x, m in zip(truth[-1], is_migrated) if m], K)
        return {f"precision@{K}": p, "n_users": users, "migrated": {f"precision@{K}": pm, "n_users": users_m},
                "by_level": {str(lv + 1): precision_at_k(t[lv], truth[lv], K)[0] for lv in range(levels.depth)}}

    out = scores(tags["model"])
    out["baselines"] = {name: scores(tags[name]) for name in ("frequency", "recency", "popularity")}
    out["levels"] = levels.depth
    out["settings"] = {"half_life_days": s.tag_half_life_days, "predicted_weight": s.tag_predicted_weight}
    return out
