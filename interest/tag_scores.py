"""metrics.json["tags"]: the profiles' interest tags against the interests a synthetic data set planted.

For every user of the scored half (below) with planted interests (data_dir/planted/, written by the ETL from the
generator's ground truth: after a migration, the new interests), precision@k = |top-k tags ∩ planted| / k with k =
min(3, number of planted interests), averaged over users, at the deepest catalog level (the planted interests'
level) and at every coarser one (planted interests cut to that level). The tags are those `interest export` writes
(interest.profiles.ProfileScorer, one event earlier: below), against three baselines: `history` (the same tags
without the model: the whole history's time-decayed categories alone), `frequency` (the history's three most
frequent categories, the ETL's top_categories; coarser levels sum them with weights 3, 2, 1) and `popularity`
(everyone gets the catalogue's most frequent categories). None when the data set has no planted interests (real
data).

Every scorer sees the same events: the row's history, without its target (the model too, ProfileScorer.tag_ids;
the export's profiles add the target). The planted interests are one truth per user whatever the split, so the tag
settings are chosen on other users than the ones reported, split by a fixed hash of the pseudonymous user id as
for the migration flag (interest_core.drift.fitting_users): bench/tags_bench.py sweeps the settings on the
`fitting` half; metrics.json["tags"] scores the `held_out` half only (the model and every baseline alike).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from interest.profiles import ProfileScorer
from interest_core import drift
from interest_core.batches import pad_left, row_batches
from interest_core.tags import SEP, pad_lists, popular_tags, precision_at_k, top_tags

K = 3
HALVES = ("held_out", "fitting")  # drift.fitting_users False / True


def tag_metrics(scorer: ProfileScorer, data_dir: str | Path, rows: dict[str, list], beta: float | None = None,
                users: str = "held_out") -> dict | None:
    """rows: a valid/test split's rows (as read_eval_split reads them), of which only the users of the `users`
    half are scored; beta overrides export.tag_predicted_weight (the bench's sweep on the fitting half)."""
    if users not in HALVES:
        raise ValueError(f"users={users!r}: the half of the users to score is one of {', '.join(HALVES)}")
    planted_dir = Path(data_dir) / "planted"
    if not planted_dir.is_dir():
        return None
    keep = np.flatnonzero(drift.fitting_users(rows["user_id"]) == (users == "fitting"))
    rows = {k: [v[i] for i in keep] for k, v in rows.items()}
    planted = pq.read_table(planted_dir, columns=["user_id", "interests", "interests_before"]).to_pydict()
    truth_of = dict(zip(planted["user_id"], planted["interests"]))
    migrated = {u for u, b in zip(planted["user_id"], planted["interests_before"]) if b is not None}
    levels = scorer.levels
    ids = [{name: i for i, name in enumerate(names)} for names in levels.names]
    # a planted interest the catalogue lacks keeps a place in the truth (k counts it) that no tag can match
    unknown: dict[str, int] = {}
    truth = [[{ids[lv].get(name, None) or -2 - unknown.setdefault(name, len(unknown))
               for name in {SEP.join(p.split(SEP)[: lv + 1]) for p in (truth_of.get(u) or [])}}
              for u in rows["user_id"]] for lv in range(levels.depth)]
    beta = scorer.s.tag_predicted_weight if beta is None else beta
    got: dict[str, list[list[np.ndarray]]] = {v: [[] for _ in range(levels.depth)] for v in ("model", "history")}
    for _, part in row_batches(rows, scorer.s.batch_size):
        for name, b in (("model", beta), ("history", 0.0)):
            for lv, t in enumerate(scorer.tag_ids(part, beta=b, top=max(K, scorer.s.tags_per_level))):
                got[name][lv].append(t)
    tags = {name: [np.concatenate(x) if x else np.zeros((0, max(K, scorer.s.tags_per_level)), np.int64) for x in per_level]
            for name, per_level in got.items()}
    top3 = pad_lists(rows["top_categories"], K, np.int64)  # (B, 3) category ids by count, 0 = none
    rank_weight = np.broadcast_to(np.array([3.0, 2.0, 1.0]), top3.shape) * (top3 > 0)
    tags["frequency"] = [top_tags([(levels.category_tag[lv][top3], rank_weight)], K)[0] for lv in range(levels.depth)]
    history = pad_left(rows["items"], scorer.max_len)
    n = len(rows["user_id"])
    tags["popularity"] = [np.tile(popular_tags(history, levels.item_tag[lv], K), (n, 1))
                          for lv in range(levels.depth)]
    is_migrated = np.array([u in migrated for u in rows["user_id"]], dtype=bool)

    def scores(t: list[np.ndarray]) -> dict:
        p, users = precision_at_k(t[-1], truth[-1], K)
        pm, users_m = precision_at_k(t[-1][is_migrated], [x for x, m in zip(truth[-1], is_migrated) if m], K)
        return {f"precision@{K}": p, "n_users": users, "migrated": {f"precision@{K}": pm, "n_users": users_m},
                "by_level": {str(lv + 1): precision_at_k(t[lv], truth[lv], K)[0] for lv in range(levels.depth)}}

    out = scores(tags["model"])
    out["baselines"] = {name: scores(tags[name]) for name in ("history", "frequency", "popularity")}
    out["levels"] = levels.depth
    out["users"] = users
    out["settings"] = {"predicted_weight": beta, "half_life_days": scorer.s.tag_half_life_days}
    return out
