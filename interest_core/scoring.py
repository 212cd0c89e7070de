"""The one batched scorer: rows -> batches -> scores over the catalog -> ranks under each protocol -> metrics.

Training validation (each rank scores its part, counts are all-reduced), `interest evaluate` (the model and the
baselines on the same rows and the same negatives) and `interest export` (top-K per user) all go through
`score_batches`; a scorer is any function from a model batch to (B, num_items) scores.

Segments (test split): cold_users (history <= data.cold_user_max_events events), warm_users, cold_items (target
never occurs in any training sequence), drifted_users (target category known and outside the user's historic
top-3 categories), and event_type=<name> by the target's event type.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from interest_core.batches import collate, row_batches
from interest_core.decay import NUM_DECAY_BUCKETS
from interest_core.metrics import PROTOCOLS, MetricAccumulator, draw_negatives, sampled_ranks, target_ranks

Scorer = Callable[[dict[str, torch.Tensor]], torch.Tensor]
"""Model batch -> (B, num_items) scores; padding and OOV columns may be anything (never candidates)."""


@torch.no_grad()
def score_batches(scorer: Scorer, rows: dict[str, list], *, max_len: int, batch_size: int
                  ) -> Iterator[tuple[slice, dict[str, list], torch.Tensor]]:
    """(slice, the rows in it, float scores (B, num_items)) for consecutive batches of eval.batch_size rows."""
    for sl, part in row_batches(rows, batch_size):
        yield sl, part, scorer(collate(part, max_len)).float()


@torch.no_grad()
def score_hazards(hazard_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor], rows: dict[str, list], *,
                  max_len: int, batch_size: int) -> np.ndarray:
    """(N, K) float64 hazards of the next event after each row's most recent event; hazard_fn maps a model batch
    to (B, K) hazards (the decay head on the encoder's states)."""
    out = [hazard_fn(collate(part, max_len)).double().numpy() for _, part in row_batches(rows, batch_size)]
    return np.concatenate(out) if out else np.zeros((0, NUM_DECAY_BUCKETS))


def draw_split_negatives(rows: dict[str, list], num_items: int, n: int, seed: int) -> np.ndarray:
    """(rows, n) sampled negatives of a split, drawn once: each row depends only on the seed and the user's
    pseudonym, so every scorer (and every rank) ranks the target against the same items."""
    return draw_negatives(num_items, [np.asarray(s, dtype=np.int64) for s in rows["seen_items"]],
                          np.asarray(rows["target_item"]), n, seed, rows["user_id"])


def row_segments(rows: dict[str, list], i: int, cold_max: int, event_types: list[str],
                 migrated: set[str] | frozenset = frozenset()) -> list[str]:
    """The segments of eval row i; `migrated`: the pseudonyms the interest-migration flag marks."""
    segs = ["cold_users" if rows["history_len"][i] <= cold_max else "warm_users"]
    if rows["target_is_cold_item"][i]:
        segs.append("cold_items")
    cat = rows["target_category"][i]
    if cat and rows["top_categories"][i] and cat not in rows["top_categories"][i]:
        segs.append("drifted_users")
    if rows["user_id"][i] in migrated:
        segs.append("migrated")
    et = rows["target_event_type"][i]
    if 0 < et < len(event_types):
        segs.append(f"event_type={event_types[et]}")
    return segs


def new_accumulators(ks, protocols=PROTOCOLS) -> dict[str, MetricAccumulator]:
    return {p: MetricAccumulator(ks) for p in protocols}


def score_rows(scorer: Scorer, rows: dict[str, list], accs: dict[str, MetricAccumulator], *, max_len: int,
               batch_size: int, negatives: np.ndarray | None = None,
               segments: Callable[[int], list[str]] | None = None) -> None:
    """Adds every row's rank under each protocol of `accs` to accs[protocol] (group "all" plus its segments).
    `negatives` (rows, M) from draw_split_negatives is needed for sampled100."""
    if "sampled100" in accs and negatives is None:
        raise ValueError("the sampled100 protocol needs the split's negatives (draw_split_negatives)")
    for sl, part, scores in score_batches(scorer, rows, max_len=max_len, batch_size=batch_size):
        targets = torch.tensor(part["target_item"], dtype=torch.int64)
        ranks = {}
        if "full" in accs:
            ranks["full"] = target_ranks(scores, targets)
        if "full_exclude_seen" in accs:
            seen = [torch.tensor(s, dtype=torch.int64) for s in part["seen_items"]]
            ranks["full_exclude_seen"] = target_ranks(scores, targets, exclude=seen)
        if "sampled100" in accs:
            ranks["sampled100"] = sampled_ranks(scores, targets, torch.from_numpy(negatives[sl]))
        for proto, r in ranks.items():
            accs[proto].add(r, "all")
            if segments is not None:
                for j in range(len(r)):
                    for seg in segments(sl.start + j):
                        accs[proto].add(r[j:j + 1], seg)


def results(accs: dict[str, MetricAccumulator]) -> dict[str, dict]:
    """{protocol: {group: metrics}}."""
    return {p: acc.result() for p, acc in accs.items()}
