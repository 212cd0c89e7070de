"""Re-engagement list (the decay head's intervention): users whose P(active within H) is below a threshold, ranked
by the activity at risk, each with items to win them back.

    activity_at_risk = (1 - P(active within H)) * events in the last 90 days before the cutoff
    items            = the model's top-K among items of the user's decayed interest categories (the deepest
                       level's time-decayed tags, interest_core.tags.user_tags), leaving out items the user bought;
                       when the catalogue has no categories for the user's items, the top-K over all items
                       (from_interests = false)
Everything is as of the cutoff (decay_test rows: every user with a history up to it).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from interest_core import decay
from interest_core.batches import INPUT_COLUMNS, collate
from interest_core.contract import FIRST_ITEM_ID


def reengagement(model, rows: dict, h: np.ndarray, horizon_days: float, below: float, item_cat: np.ndarray,
                 tags: list[list[int]], category_names: dict[int, str], item_ids: np.ndarray, top_k: int,
                 batch_size: int) -> pa.Table:
    """rows: decay_test columns; h (N, K) their hazards; tags: per user the category ids of their decayed
    interests. Returns the table written to reengage.parquet, ranked (rank 1 = most activity at risk)."""
    a = decay.elapsed_s(rows)
    p = decay.p_active_within(h, a, horizon_days * decay.DAY_S)
    risk = (1 - p) * np.asarray(rows["frequency_90d"], np.float64)
    chosen = np.flatnonzero(p < below)
    chosen = chosen[np.lexsort((chosen, -risk[chosen]))]  # most at risk first, ties by row order
    top_items, top_scores, from_interests = [], [], []
    max_len = model.args.max_len
    with torch.no_grad():
        for start in range(0, len(chosen), batch_size):
            idx = chosen[start:start + batch_size]
            part = {k: [rows[k][i] for i in idx] for k in INPUT_COLUMNS}
            scores = model.score_all(collate(part, max_len)).double()  # (B, V)
            for r, i in enumerate(idx):
                s = scores[r]
                s[torch.as_tensor(list(rows["bought_items"][i]), dtype=torch.long)] = float("-inf")
                wanted = torch.from_numpy(np.isin(item_cat, tags[i]) & (item_cat > 0)) if tags[i] else None
                use = wanted is not None and bool(wanted[FIRST_ITEM_ID:].any())
                if use:
                    s = torch.where(wanted, s, torch.tensor(float("-inf"), dtype=s.dtype))
                k = min(top_k, int(torch.isfinite(s).sum()))
                v, j = s.topk(k)
                top_items.append(j.tolist()), top_scores.append(v.tolist()), from_interests.append(use)
    return pa.table({
        "rank": pa.array(np.arange(1, len(chosen) + 1), pa.int32()),
        "user_id": [rows["user_id"][i] for i in chosen],
        "horizon_days": pa.array(np.full(len(chosen), horizon_days), pa.float64()),
        "p_active": p[chosen],
        "events_90d": pa.array(np.asarray(rows["frequency_90d"])[chosen], pa.int32()),
        "activity_at_risk": risk[chosen],
        "days_since_last": a[chosen] / decay.DAY_S,
        "interest_tags": [[category_names.get(c, str(c)) for c in tags[i]] for i in chosen],
        "items": pa.array(top_items, pa.list_(pa.int32())),
        "item_ids": [[str(item_ids[j]) for j in r] for r in top_items],
        "scores": top_scores,
        "from_interests": pa.array(from_interests, pa.bool_()),
    })
