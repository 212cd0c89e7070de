"""Scoring a valid/test split under the three protocols, with segments. Used by the trainer (each rank scores its
part, counts are all-reduced) and by `interest evaluate` (model and baselines in one process).

Segments (test split): cold_users (history <= data.cold_user_max_events events), warm_users, cold_items (target
never occurs in any training sequence), drifted_users (target category known and outside the user's historic
top-3 categories), and event_type=<name> by the target's event type.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from interest.metrics import PROTOCOLS, MetricAccumulator, draw_negatives, sampled_ranks, target_ranks
from ray_train.data import collate_eval

Scorer = Callable[[dict[str, torch.Tensor], dict[str, list], slice], torch.Tensor]


def row_segments(rows: dict[str, list], i: int, cold_max: int, event_types: list[str]) -> list[str]:
    segs = ["cold_users" if rows["history_len"][i] <= cold_max else "warm_users"]
    if rows["target_is_cold_item"][i]:
        segs.append("cold_items")
    cat = rows["target_category"][i]
    if cat and rows["top_categories"][i] and cat not in rows["top_categories"][i]:
        segs.append("drifted_users")
    et = rows["target_event_type"][i]
    if 0 < et < len(event_types):
        segs.append(f"event_type={event_types[et]}")
    return segs


def new_accumulators(ks) -> dict[str, MetricAccumulator]:
    return {p: MetricAccumulator(ks) for p in PROTOCOLS}


@torch.no_grad()
def score_rows(scorer: Scorer, rows: dict[str, list], accs: dict[str, MetricAccumulator], *, max_len: int,
               num_items: int, batch_size: int, negatives_seed: int, n_negatives: int,
               protocols=PROTOCOLS, segments: Callable[[int], list[str]] | None = None) -> None:
    """Adds every row's rank under each protocol to accs[protocol] (group "all" plus its segments)."""
    n = len(rows["user_id"])
    for start in range(0, n, batch_size):
        sl = slice(start, min(n, start + batch_size))
        part = {k: v[sl] for k, v in rows.items()}
        batch = collate_eval(part, max_len)
        scores = scorer(batch, part, sl).float()  # (B, num_items)
        targets = torch.tensor(part["target_item"], dtype=torch.int64)
        ranks = {}
        if "full" in protocols:
            ranks["full"] = target_ranks(scores, targets)
        if "full_exclude_seen" in protocols:
            seen = [torch.tensor(s, dtype=torch.int64) for s in part["seen_items"]]
            ranks["full_exclude_seen"] = target_ranks(scores, targets, exclude=seen)
        if "sampled100" in protocols:
            negs = draw_negatives(num_items, [np.asarray(s, dtype=np.int64) for s in part["seen_items"]],
                                  np.asarray(part["target_item"]), n_negatives, negatives_seed, part["user_id"])
            ranks["sampled100"] = sampled_ranks(scores, targets, torch.from_numpy(negs))
        for proto, r in ranks.items():
            accs[proto].add(r, "all")
            if segments is not None:
                for j in range(len(r)):
                    for seg in segments(start + j):
                        accs[proto].add(r[j:j + 1], seg)


def results(accs: dict[str, MetricAccumulator]) -> dict[str, dict]:
    """{protocol: {group: metrics}}."""
    return {p: acc.result() for p, acc in accs.items()}
