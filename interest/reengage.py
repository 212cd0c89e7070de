"""Re-engagement list (the decay head's intervention): users whose P(active within H) is below a threshold
(export.reengage_below), ranked by the activity at risk, each with items to win them back.

    activity_at_risk = (1 - P(active within H)) * events in the last 90 days before the cutoff
    items            = the model's top-K among items of the user's interest categories (the deepest level's
                       categories of the last max_len events, weighted 0.5 ** (age / data.tag_half_life_days),
                       interest_core.tags.window_shares), leaving out items the user bought; when the
                       catalogue has no categories for the user's items, the top-K over all items
                       (from_interests = false)
Everything is as of the cutoff (decay_test rows: every user with a history up to it). `candidates` scores one
batch of rows; interest.export.batch ranks them across all shards (rank 1 = most activity at risk, ties by
pseudonym).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from interest_core import decay
from interest_core.batches import collate
from interest_core.contract import FIRST_ITEM_ID
from interest_core.tags import top_tags, window_shares

REENGAGE_SCHEMA = pa.schema([
    pa.field("rank", pa.int32()),
    pa.field("user_id", pa.string()),
    pa.field("horizon_days", pa.float64()),
    pa.field("p_active", pa.float64()),
    pa.field("events_90d", pa.int32()),
    pa.field("activity_at_risk", pa.float64()),
    pa.field("days_since_last", pa.float64()),
    pa.field("interest_tags", pa.list_(pa.string())),
    pa.field("items", pa.list_(pa.int32())),
    pa.field("item_ids", pa.list_(pa.string())),
    pa.field("scores", pa.list_(pa.float64())),
    pa.field("from_interests", pa.bool_()),
])


@torch.no_grad()
def candidates(scorer, rows: dict) -> pa.Table:
    """decay_test rows (columns) -> the users below the threshold, REENGAGE_SCHEMA without rank. scorer: an
    interest.profiles.ProfileScorer whose settings carry the hazard calibration."""
    s, model, max_len = scorer.s, scorer.model, scorer.max_len
    names = [f.name for f in REENGAGE_SCHEMA if f.name != "rank"]
    if s.hazard_scale is None or "decay" not in model.heads or not rows["user_id"]:
        return pa.Table.from_pylist([], pa.schema([REENGAGE_SCHEMA.field(n) for n in names]))
    batch = collate(rows, max_len)
    h = decay.scale_hazards(model.decay_hazards(batch).numpy(), s.hazard_scale)
    a = decay.elapsed_s(rows)
    p = decay.p_active_within(h, a, s.horizon_days * decay.DAY_S)
    risk = (1 - p) * np.asarray(rows["frequency_90d"], np.float64)
    chosen = np.flatnonzero(p < s.reengage_below)
    leaf = scorer.levels.item_tag[-1]
    half_life = np.full(len(chosen), s.tag_half_life_days * decay.DAY_S)
    tags, _ = top_tags([window_shares(batch["items"].numpy()[chosen], batch["ts"].numpy()[chosen], half_life,
                                      leaf)], s.tags_per_level)
    scores = model.score_all({k: v[torch.from_numpy(chosen)] for k, v in batch.items()}).double()  # (C, V)
    top_items, top_scores, from_interests = [], [], []
    for r, i in enumerate(chosen):
        sc = scores[r]
        sc[torch.as_tensor(list(rows["bought_items"][i]), dtype=torch.long)] = float("-inf")
        wanted = [t for t in tags[r] if t > 0]
        mask = torch.from_numpy(np.isin(leaf, wanted) & (leaf > 0)) & torch.isfinite(sc) if wanted else None
        use = mask is not None and bool(mask[FIRST_ITEM_ID:].any())  # else every item: all of theirs were bought
        if use:
            sc = torch.where(mask, sc, torch.tensor(float("-inf"), dtype=sc.dtype))
        v, j = sc.topk(min(s.top_k, int(torch.isfinite(sc).sum())))
        top_items.append(j.tolist()), top_scores.append(v.tolist()), from_interests.append(use)
    level_names = scorer.levels.names[-1]
    return pa.table({
        "user_id": [rows["user_id"][i] for i in chosen],
        "horizon_days": np.full(len(chosen), s.horizon_days),
        "p_active": p[chosen],
        "events_90d": pa.array(np.asarray(rows["frequency_90d"])[chosen], pa.int32()),
        "activity_at_risk": risk[chosen],
        "days_since_last": a[chosen] / decay.DAY_S,
        "interest_tags": [[level_names[t] for t in r if t > 0] for r in tags],
        "items": pa.array(top_items, pa.list_(pa.int32())),
        "item_ids": [[str(x) for x in scorer.item_ids[r]] for r in top_items],
        "scores": pa.array(top_scores, pa.list_(pa.float64())),
        "from_interests": pa.array(from_interests, pa.bool_()),
    }, schema=pa.schema([REENGAGE_SCHEMA.field(n) for n in names]))
